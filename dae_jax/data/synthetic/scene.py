"""Procedural street-like 3D world (textured ground, buildings, boxes, spheres) built from a seed.

World frame: x to the right of the road, y up (ground is y = 0), z forward along the road. The camera path
runs along z near x = 0; every object keeps a lateral clearance from it so the camera never enters one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SOLID, CHECKER, STRIPES, NOISE, WINDOWS = range(5)


@dataclass(frozen=True)
class Texture:
    """Procedural albedo: a pattern in [0, 1] blends `color_a` (0) into `color_b` (1); period in metres."""

    kind: int
    period: float
    color_a: tuple[float, float, float]
    color_b: tuple[float, float, float]
    angle: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class Box:
    """Axis-aligned box from corner `lo` to corner `hi` (metres) at t = 0, moving at `velocity` (m/s)."""

    lo: tuple[float, float, float]
    hi: tuple[float, float, float]
    texture: Texture
    velocity: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Sphere:
    """Sphere of `radius` metres around `center` at t = 0, moving at `velocity` (m/s)."""

    center: tuple[float, float, float]
    radius: float
    texture: Texture
    velocity: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Ground:
    """The y = 0 plane: road (|x| < road_half_width) with lane markings (if `markings`), then sidewalk, then
    verge; with zero widths and no markings it is one textured floor."""

    road_half_width: float
    sidewalk_width: float
    asphalt: Texture
    sidewalk: Texture
    verge: Texture
    marking: Texture
    dash_period: float
    markings: bool = True


@dataclass(frozen=True)
class Scene:
    """Everything the renderer needs: geometry, textures, lighting and the depth cap (beyond it is sky)."""

    ground: Ground
    boxes: tuple[Box, ...]
    spheres: tuple[Sphere, ...]
    sky_color: tuple[float, float, float]
    sun_direction: tuple[float, float, float]
    ambient: float = 0.35
    max_depth: float = 100.0
    fog_start: float = 50.0


def _color(rng: np.random.Generator, lo: float, hi: float) -> tuple[float, float, float]:
    """A random hue scaled so its brightest channel lies in [lo, hi]."""
    base = rng.uniform(0.25, 1.0, 3)
    base = base / base.max() * rng.uniform(lo, hi)
    return tuple(float(c) for c in base)


def random_texture(rng: np.random.Generator, kinds: tuple[int, ...], period: tuple[float, float]) -> Texture:
    """A random texture of one of `kinds` with clearly different dark and bright albedos (edges -> events)."""
    kind = int(rng.choice(kinds))
    dark, bright = _color(rng, 0.1, 0.35), _color(rng, 0.45, 0.9)
    if rng.random() < 0.5:
        dark, bright = bright, dark
    angle = float(rng.choice([0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4]))
    return Texture(kind, float(rng.uniform(*period)), dark, bright, angle, int(rng.integers(0, 2**31)))


def _ground(rng: np.random.Generator) -> Ground:
    """Random road and sidewalk widths with noisy asphalt, tiled sidewalk and a textured verge."""
    grey = rng.uniform(0.1, 0.2)
    asphalt = Texture(NOISE, float(rng.uniform(1.0, 2.0)), (grey * 0.6,) * 3, (grey * 1.5,) * 3,
                      seed=int(rng.integers(0, 2**31)))
    tile = rng.uniform(0.3, 0.5)
    sidewalk = Texture(CHECKER, float(rng.uniform(0.8, 1.6)), (tile * 0.6,) * 3, (tile,) * 3)
    verge = random_texture(rng, (NOISE, CHECKER, STRIPES), (0.6, 2.0))
    white = float(rng.uniform(0.75, 0.95))
    marking = Texture(SOLID, 1.0, (white,) * 3, (white,) * 3)
    road, walk, dash = rng.uniform(3.0, 5.0), rng.uniform(1.5, 3.5), rng.uniform(4.0, 8.0)
    return Ground(float(road), float(walk), asphalt, sidewalk, verge, marking, float(dash))


def _buildings(rng: np.random.Generator, ground: Ground, z_start: float, z_end: float) -> list[Box]:
    """Rows of buildings with window/stripe/noise facades on both sides of the road, with gaps, setbacks."""
    boxes = []
    curb = ground.road_half_width + ground.sidewalk_width
    for side in (-1.0, 1.0):
        z = z_start - rng.uniform(0.0, 10.0)
        while z < z_end:
            length, depth = rng.uniform(6.0, 20.0), rng.uniform(6.0, 15.0)
            front = curb + rng.uniform(0.0, 5.0)
            height = rng.uniform(4.0, 25.0)
            if rng.random() < 0.6:
                texture = random_texture(rng, (WINDOWS,), (2.5, 4.0))
            else:
                texture = random_texture(rng, (STRIPES, NOISE, CHECKER), (0.8, 3.0))
            xs = sorted((side * front, side * (front + depth)))
            boxes.append(Box((xs[0], 0.0, z), (xs[1], height, z + length), texture))
            z += length + rng.uniform(0.5, 8.0)
    return boxes


def _props(rng: np.random.Generator, ground: Ground, clearance: float, z_start: float, z_end: float,
           path_end: float) -> tuple[list[Box], list[Sphere]]:
    """Boxes and spheres on the sidewalks beside the path, plus a few on the road beyond the path's end."""
    boxes, spheres = [], []
    curb = ground.road_half_width + ground.sidewalk_width
    sites = []
    for side in (-1.0, 1.0):
        for z in rng.uniform(z_start, z_end, rng.poisson((z_end - z_start) / 7.0)):
            sites.append((side, float(z), False))
    for z in rng.uniform(path_end + 8.0, z_end, rng.integers(2, 6)):
        sites.append((float(rng.choice([-1.0, 1.0])), float(z), True))
    for side, z, ahead in sites:
        texture = random_texture(rng, (CHECKER, STRIPES, NOISE), (0.3, 1.5))
        if rng.random() < 0.6:
            half = rng.uniform(0.2, 1.25, 3) * np.array([1.0, 1.2, 1.0])
            inner = rng.uniform(0.0, ground.road_half_width) if ahead else clearance
            centre_x = side * (inner + half[0] + (0.0 if ahead else rng.uniform(0.0, max(curb - inner, 0.5))))
            bottom = rng.uniform(0.0, 2.0) if rng.random() < 0.2 else 0.0
            lo = (centre_x - half[0], bottom, z - half[2])
            hi = (centre_x + half[0], bottom + 2 * half[1], z + half[2])
            boxes.append(Box(tuple(float(v) for v in lo), tuple(float(v) for v in hi), texture))
        else:
            radius = rng.uniform(0.3, 1.5)
            inner = rng.uniform(0.0, ground.road_half_width) if ahead else clearance
            centre_x = side * (inner + radius + (0.0 if ahead else rng.uniform(0.0, max(curb - inner, 0.5))))
            lift = rng.uniform(0.0, 2.0) if rng.random() < 0.3 else 0.0
            spheres.append(Sphere((float(centre_x), float(radius + lift), z), float(radius), texture))
    return boxes, spheres


def make_scene(seed: int, path_length: float, corridor_half_width: float = 1.0,
               max_depth: float = 100.0) -> Scene:
    """Random street for a camera moving from z = 0 to z = path_length within |x| <= corridor_half_width.

    Props keep >= 2 m lateral clearance from the corridor and reach 80 m past the path end; buildings extend
    to the depth cap so the fog (from max_depth / 2) hides the end of the world.
    """
    rng = np.random.default_rng(seed)
    ground = _ground(rng)
    buildings = _buildings(rng, ground, -20.0, path_length + max_depth)
    boxes, spheres = _props(rng, ground, corridor_half_width + 2.0, -5.0, path_length + 80.0, path_length)
    elevation, azimuth = rng.uniform(np.radians(30), np.radians(60)), rng.uniform(-np.pi, np.pi)
    sun = (np.cos(elevation) * np.sin(azimuth), np.sin(elevation), np.cos(elevation) * np.cos(azimuth))
    sky = np.array([0.55, 0.7, 0.95]) * rng.uniform(0.8, 1.0)
    return Scene(ground, tuple(buildings + boxes), tuple(spheres), tuple(float(c) for c in sky),
                 tuple(float(c) for c in sun), float(rng.uniform(0.3, 0.45)), max_depth, max_depth / 2)
