"""Varied worlds: per sequence a scene family, a camera pose and lighting drawn from a seed, so that the position
of a pixel in the image does not tell its depth.

Families: `street` (the canyon of scene.make_scene), `open` ground with scattered obstacles, a `room`, a
`corridor`, and close `clutter`. Any family may add objects that cross the view 1-5 m in front of the camera and
objects that move on their own. The camera drives along +z at a random height, heading, pitch and roll; an object
that would come within 0.4 m (clutter: 1.5 m) of the camera at any time is left out. `speed_scale` multiplies the
camera's speed after the draws (the scene is then built around the longer path); `texture_scale` multiplies every
texture period at the end, so the layout is the unscaled one of the seed.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .render import Trajectory
from .scene import CHECKER, NOISE, STRIPES, WINDOWS, Box, Ground, Scene, Sphere, Texture, make_scene, random_texture

FAMILIES = ("street", "open", "room", "corridor", "clutter")
CLEARANCE = {"clutter": 1.5, "other": 0.4}  # metres kept between every object and the camera centre at all times
_OBJECT_KINDS = (CHECKER, STRIPES, NOISE)


@dataclasses.dataclass(frozen=True)
class World:
    """A scene and the camera's drive through it."""

    family: str
    scene: Scene
    trajectory: Trajectory


def _trajectory(rng: np.random.Generator, family: str) -> Trajectory:
    """The family's camera: speed (m/s), height (m), sway (m), heading, pitch (+ = down) and roll (radians)."""
    ranges = {  # speed, height, sway, |heading|, pitch, |roll|
        "street": ((2.0, 6.0), (1.0, 2.2), (0.1, 0.8), 0.6, (-0.15, 0.25), 0.2),
        "open": ((2.0, 6.0), (1.0, 2.2), (0.1, 0.8), np.pi, (-0.15, 0.25), 0.2),
        "room": ((0.6, 1.6), (0.9, 1.8), (0.0, 0.4), 1.4, (-0.2, 0.3), 0.2),
        "corridor": ((0.8, 2.0), (0.9, 1.8), (0.0, 0.2), 0.5, (-0.15, 0.2), 0.2),
        "clutter": ((1.0, 3.0), (0.9, 1.8), (0.0, 0.5), 1.2, (-0.15, 0.25), 0.2),
    }[family]
    speed, height, sway, heading, pitch, roll = ranges
    return dataclasses.replace(
        Trajectory.random(rng), speed=float(rng.uniform(*speed)), height=float(rng.uniform(*height)),
        sway_amplitude=float(rng.uniform(*sway)), heading=float(rng.uniform(-heading, heading)),
        pitch=float(rng.uniform(*pitch)), roll=float(rng.uniform(-roll, roll)))


def _lighting(rng: np.random.Generator) -> dict:
    """Sky colour (clear, overcast or dusk), sun direction and ambient level."""
    sky = [np.array([0.55, 0.7, 0.95]), np.full(3, 0.75), np.array([0.95, 0.65, 0.45])][rng.integers(0, 3)]
    elevation, azimuth = rng.uniform(0.15, 1.3), rng.uniform(-np.pi, np.pi)
    sun = (np.cos(elevation) * np.sin(azimuth), np.sin(elevation), np.cos(elevation) * np.cos(azimuth))
    return {"sky_color": tuple(float(c) for c in sky * rng.uniform(0.6, 1.0)),
            "sun_direction": tuple(float(c) for c in sun), "ambient": float(rng.uniform(0.2, 0.55))}


def _floor(rng: np.random.Generator, period: tuple[float, float]) -> Ground:
    """One textured floor, no road."""
    texture = random_texture(rng, (NOISE, CHECKER, STRIPES), period)
    return Ground(0.0, 0.0, texture, texture, texture, texture, 1.0, markings=False)


def _box(rng: np.random.Generator, x: float, z: float, half: np.ndarray, bottom: float,
         period: tuple[float, float] = (0.2, 1.5)) -> Box:
    """A box with half sizes `half` (x, y, z) standing at (x, bottom, z)."""
    lo = (x - half[0], bottom, z - half[2])
    hi = (x + half[0], bottom + 2 * half[1], z + half[2])
    return Box(tuple(float(v) for v in lo), tuple(float(v) for v in hi), random_texture(rng, _OBJECT_KINDS, period))


def _sphere(rng: np.random.Generator, x: float, z: float, radius: float, lift: float) -> Sphere:
    """A sphere resting `lift` metres above the ground at (x, z)."""
    return Sphere((float(x), float(radius + lift), float(z)), float(radius), random_texture(rng, _OBJECT_KINDS,
                                                                                            (0.2, 1.2)))


def _scatter(rng: np.random.Generator, count: int, x_range: tuple[float, float], z_range: tuple[float, float],
             size: tuple[float, float], tall: float, float_chance: float,
             float_height: float) -> tuple[list[Box], list[Sphere]]:
    """`count` boxes and spheres at uniform positions, sizes in `size` (half width, m), boxes up to `tall`x as
    high; some float up to `float_height` above the ground."""
    boxes, spheres = [], []
    for _ in range(count):
        x, z = rng.uniform(*x_range), rng.uniform(*z_range)
        lift = rng.uniform(0.0, float_height) if rng.random() < float_chance else 0.0
        if rng.random() < 0.65:
            half = rng.uniform(*size, 3) * np.array([1.0, rng.uniform(0.5, tall), 1.0])
            boxes.append(_box(rng, x, z, half, lift))
        else:
            spheres.append(_sphere(rng, x, z, rng.uniform(*size), lift))
    return boxes, spheres


def _ring(rng: np.random.Generator, count: int, centre_z: float, distance: tuple[float, float],
          width: tuple[float, float], height: tuple[float, float], period: tuple[float, float]) -> list[Box]:
    """`count` large blocks at random bearings and `distance` metres around (0, centre_z): landmarks that bound
    the view; half widths in `width`, half heights in `height`."""
    boxes = []
    for _ in range(count):
        angle, radius = rng.uniform(-np.pi, np.pi), rng.uniform(*distance)
        half = np.array([rng.uniform(*width), rng.uniform(*height), rng.uniform(*width)])
        boxes.append(_box(rng, radius * np.sin(angle), centre_z + radius * np.cos(angle), half, 0.0, period))
    return boxes


def _scene(rng: np.random.Generator, floor_period: tuple[float, float], boxes: list[Box], spheres: list[Sphere],
           max_depth: float) -> Scene:
    """A scene on a textured floor (lighting is drawn later by make_world)."""
    return Scene(_floor(rng, floor_period), tuple(boxes), tuple(spheres), (0.0,) * 3, (0.0, 1.0, 0.0),
                 max_depth=max_depth, fog_start=max_depth / 2)


def _street(rng: np.random.Generator, trajectory: Trajectory, path: float, max_depth: float) -> Scene:
    """The street canyon of scene.make_scene, seen from the family's camera."""
    return make_scene(int(rng.integers(0, 2**31)), path, trajectory.corridor_half_width, max_depth)


def _open(rng: np.random.Generator, trajectory: Trajectory, path: float, max_depth: float) -> Scene:
    """Open ground to the horizon with obstacles all around (the camera may look any way) and far landmarks."""
    reach = 60.0
    boxes, spheres = _scatter(rng, int(rng.integers(40, 100)), (-reach, reach), (-reach, path + reach),
                              (0.3, 2.0), 4.0, 0.1, 2.0)
    boxes += _ring(rng, int(rng.integers(3, 9)), path / 2, (40.0, 90.0), (3.0, 15.0), (2.0, 12.0), (1.0, 5.0))
    return _scene(rng, (0.5, 3.0), boxes, spheres, max_depth)


def _indoor(rng: np.random.Generator, trajectory: Trajectory, path: float, max_depth: float,
            corridor: bool) -> Scene:
    """A closed room or corridor around the camera's path: floor, four walls, ceiling, furniture or panels."""
    half = trajectory.sway_amplitude + (rng.uniform(0.7, 1.4) if corridor else rng.uniform(1.5, 4.5))
    ceiling = max(trajectory.height + rng.uniform(0.6, 2.0), 2.2)
    back = -rng.uniform(1.0, 4.0)
    end = path + (rng.uniform(4.0, 30.0) if corridor else rng.uniform(1.5, 8.0))
    wall = 0.2

    def slab(lo: tuple, hi: tuple) -> Box:
        return Box(tuple(float(v) for v in lo), tuple(float(v) for v in hi),
                   random_texture(rng, (CHECKER, STRIPES, NOISE, WINDOWS), (0.4, 2.5)))

    boxes = [slab((-half - wall, 0, back - wall), (-half, ceiling, end + wall)),
             slab((half, 0, back - wall), (half + wall, ceiling, end + wall)),
             slab((-half - wall, 0, end), (half + wall, ceiling, end + wall)),
             slab((-half - wall, 0, back - wall), (half + wall, ceiling, back)),
             slab((-half - wall, ceiling, back - wall), (half + wall, ceiling + wall, end + wall))]
    spheres = []
    for _ in range(int(rng.integers(2, 6) if corridor else rng.integers(4, 14))):
        side, z = rng.choice([-1.0, 1.0]), rng.uniform(back, end)
        if corridor:  # panels and pillars standing out of the walls
            depth, size = rng.uniform(0.05, 0.3), rng.uniform(0.3, 1.0)
            height = rng.uniform(0.5, 1.0) * ceiling
        else:  # cabinets, tables, shelves along the walls
            depth, size = rng.uniform(0.2, 0.8), rng.uniform(0.3, 1.5)
            height = rng.uniform(0.2, 0.9) * ceiling
        box_half = np.array([depth, height / 2, size])
        boxes.append(_box(rng, side * (half - depth), z, box_half, 0.0))
    if not corridor:
        extra_boxes, spheres = _scatter(rng, int(rng.integers(0, 6)), (-half, half), (back, end), (0.15, 0.6),
                                        2.0, 0.3, 1.0)
        boxes += extra_boxes
    return _scene(rng, (0.3, 1.5), boxes, spheres, max_depth)


def _clutter(rng: np.random.Generator, trajectory: Trajectory, path: float, max_depth: float) -> Scene:
    """Many small objects 1.5-8 m from the path, some floating, in a ring of blocks 10-30 m away (so that the
    nearest and farthest points of a view stay within the 40:1 range the log-depth labels hold)."""
    boxes, spheres = _scatter(rng, int(rng.integers(50, 120)), (-8.0, 8.0), (-8.0, path + 12.0), (0.1, 0.6), 3.0,
                              0.4, 2.5)
    boxes += _ring(rng, int(rng.integers(6, 14)), path / 2, (10.0, 30.0), (2.0, 10.0), (1.0, 10.0), (1.0, 4.0))
    return _scene(rng, (0.2, 1.5), boxes, spheres, max_depth)


def _movers(rng: np.random.Generator, trajectory: Trajectory, duration: float) -> tuple[list[Box], list[Sphere]]:
    """Objects crossing the view 1-5 m ahead of the camera (0-2), and objects moving on their own 4-25 m away
    (0-3); each is placed where the camera looks at a random time and moves horizontally."""
    boxes, spheres = [], []
    crossing, wandering = int(rng.integers(0, 3)), int(rng.integers(0, 4))
    for k in range(crossing + wandering):
        t = rng.uniform(0.15, 0.85) * duration
        rot, origin = trajectory.pose(t)
        view = rot @ np.array([0.0, 0.0, 1.0])
        ahead = np.array([view[0], 0.0, view[2]]) / max(np.hypot(view[0], view[2]), 1e-6)
        if k < crossing:
            distance, speed = rng.uniform(1.0, 5.0), rng.uniform(1.0, 4.0)
            direction = np.array([ahead[2], 0.0, -ahead[0]]) * rng.choice([-1.0, 1.0])
        else:
            distance, speed = rng.uniform(4.0, 25.0), rng.uniform(0.5, 5.0)
            angle = rng.uniform(-np.pi, np.pi)
            direction = np.array([np.sin(angle), 0.0, np.cos(angle)])
        velocity = tuple(float(v) for v in direction * speed)
        centre = origin + ahead * distance - direction * speed * t  # where it starts, to be ahead at time t
        size = rng.uniform(0.2, 0.6) if k < crossing else rng.uniform(0.3, 1.5)
        lift = rng.uniform(0.0, 1.2)
        if rng.random() < 0.6:
            box = _box(rng, centre[0], centre[2], np.array([size, size * rng.uniform(0.6, 2.0), size]), lift)
            boxes.append(dataclasses.replace(box, velocity=velocity))
        else:
            spheres.append(dataclasses.replace(_sphere(rng, centre[0], centre[2], size, lift), velocity=velocity))
    return boxes, spheres


def _clear_of_camera(scene: Scene, trajectory: Trajectory, duration: float, clearance: float) -> Scene:
    """The scene without the objects that come within `clearance` metres of the camera centre at any time
    (sampled every 5 ms), so the camera never enters or grazes one."""
    times = np.linspace(0.0, duration, max(int(duration / 0.005), 2))
    cams = np.array([trajectory.pose(t)[1] for t in times])

    def clear_box(box: Box) -> bool:
        shift = times[:, None] * np.array(box.velocity)
        outside = np.maximum(np.maximum(np.array(box.lo) + shift - cams, cams - np.array(box.hi) - shift), 0.0)
        return bool(np.sqrt((outside**2).sum(1)).min() > clearance)

    def clear_sphere(sphere: Sphere) -> bool:
        centres = np.array(sphere.center) + times[:, None] * np.array(sphere.velocity)
        return bool(np.sqrt(((centres - cams) ** 2).sum(1)).min() > sphere.radius + clearance)

    return dataclasses.replace(scene, boxes=tuple(filter(clear_box, scene.boxes)),
                               spheres=tuple(filter(clear_sphere, scene.spheres)))


def _scale_textures(scene: Scene, factor: float) -> Scene:
    """The scene with every texture period (ground, boxes, spheres) multiplied by `factor`."""
    def scaled(texture: Texture) -> Texture:
        return dataclasses.replace(texture, period=texture.period * factor)

    g = scene.ground
    ground = dataclasses.replace(g, asphalt=scaled(g.asphalt), sidewalk=scaled(g.sidewalk), verge=scaled(g.verge),
                                 marking=scaled(g.marking))
    return dataclasses.replace(scene, ground=ground,
                               boxes=tuple(dataclasses.replace(b, texture=scaled(b.texture)) for b in scene.boxes),
                               spheres=tuple(dataclasses.replace(s, texture=scaled(s.texture)) for s in scene.spheres))


def make_world(seed: int, duration: float, max_depth: float = 100.0, family: str | None = None,
               speed_scale: float = 1.0, texture_scale: float = 1.0) -> World:
    """The world of one sequence lasting `duration` seconds; `family` None draws one from FAMILIES. The camera's
    speed is multiplied by `speed_scale` (more parallax per event window) and every texture period by
    `texture_scale` (below 1: finer textures, so events cover surfaces, not only their outlines)."""
    if not (speed_scale > 0 and texture_scale > 0):
        raise ValueError(f"speed_scale and texture_scale must be positive, got {speed_scale} and {texture_scale}")
    rng = np.random.default_rng(seed)
    family = str(rng.choice(FAMILIES)) if family is None else family
    if family not in FAMILIES:
        raise ValueError(f"unknown scene family {family!r}; expected one of {FAMILIES}")
    trajectory = _trajectory(rng, family)
    trajectory = dataclasses.replace(trajectory, speed=trajectory.speed * speed_scale)
    path = trajectory.speed * duration
    if family == "street":
        scene = _street(rng, trajectory, path, max_depth)
    elif family == "open":
        scene = _open(rng, trajectory, path, max_depth)
    elif family in ("room", "corridor"):
        scene = _indoor(rng, trajectory, path, max_depth, corridor=family == "corridor")
    else:
        scene = _clutter(rng, trajectory, path, max_depth)
    boxes, spheres = _movers(rng, trajectory, duration)
    scene = dataclasses.replace(scene, boxes=scene.boxes + tuple(boxes), spheres=scene.spheres + tuple(spheres),
                                **_lighting(rng))
    clearance = CLEARANCE["clutter" if family == "clutter" else "other"]
    scene = _clear_of_camera(scene, trajectory, duration, clearance)
    return World(family, _scale_textures(scene, texture_scale), trajectory)
