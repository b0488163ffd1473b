"""Vectorised numpy ray casting of a procedural Scene seen by a pinhole camera moving along the road.

Intersections are analytic (plane, slab test for boxes, quadratic for spheres) over all pixels at once, each
object restricted to the screen rectangle its bounds project to; shading is Lambert with a sun plus ambient,
procedural textures with distance-based contrast fading (a cheap mip-map against aliasing) and fog towards
the sky colour that reaches it exactly at the depth cap.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .scene import CHECKER, NOISE, SOLID, STRIPES, WINDOWS, Scene, Texture

LUMA = np.array([0.299, 0.587, 0.114], np.float32)
NEAR = 0.05
_TILE, _CELL = 512, 16


@dataclass(frozen=True)
class Camera:
    """Pinhole intrinsics in pixels; pixel (u, v) centres sit at integer coordinates."""

    height: int
    width: int
    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def davis(cls, height: int = 260, width: int = 346) -> Camera:
        """DAVIS346-like intrinsics (MVSEC-like, ~75 degree horizontal field of view) scaled to the size."""
        fx, fy = 226.0 * width / 346, 226.0 * height / 260
        return cls(height, width, fx, fy, (width - 1) / 2, (height - 1) / 2)

    def rays(self) -> np.ndarray:
        """Camera-frame rays (3, H, W): x right, y down, z forward; z = 1, so the ray parameter is z-depth."""
        v, u = np.mgrid[0:self.height, 0:self.width].astype(np.float32)
        return np.stack([(u - self.cx) / self.fx, (v - self.cy) / self.fy, np.ones_like(u)])


@dataclass(frozen=True)
class Trajectory:
    """Forward motion along +z with sinusoidal sway; the view turns with the sway, plus yaw and pitch wobble,
    on top of a fixed heading, pitch and roll."""

    speed: float = 4.0
    height: float = 1.5
    sway_amplitude: float = 0.5
    sway_frequency: float = 0.2
    sway_phase: float = 0.0
    yaw_amplitude: float = 0.05
    yaw_frequency: float = 0.25
    yaw_phase: float = 0.0
    pitch_amplitude: float = 0.01
    pitch_frequency: float = 0.5
    pitch_phase: float = 0.0
    heading: float = 0.0  # fixed yaw of the view from the direction of travel (+z), radians
    pitch: float = 0.0  # fixed pitch, radians (positive looks down)
    roll: float = 0.0  # fixed roll about the optical axis, radians (positive lowers the right side)

    @classmethod
    def random(cls, rng: np.random.Generator) -> Trajectory:
        """A random smooth drive at 3-5 m/s with up to 0.8 m sway and a few degrees of yaw/pitch wobble."""
        phases = rng.uniform(0.0, 2 * np.pi, 3)
        return cls(float(rng.uniform(3.0, 5.0)), float(rng.uniform(1.3, 1.8)),
                   float(rng.uniform(0.2, 0.8)), float(rng.uniform(0.1, 0.35)), float(phases[0]),
                   float(rng.uniform(0.02, 0.08)), float(rng.uniform(0.1, 0.4)), float(phases[1]),
                   float(rng.uniform(0.0, 0.02)), float(rng.uniform(0.3, 1.0)), float(phases[2]))

    @property
    def corridor_half_width(self) -> float:
        """Largest lateral distance of the camera from x = 0, plus a margin."""
        return self.sway_amplitude + 0.5

    def pose(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Orthogonal camera-to-world matrix (3, 3) and camera centre (3,) at time t seconds."""
        w = 2 * np.pi * self.sway_frequency
        x = self.sway_amplitude * np.sin(w * t + self.sway_phase)
        dx = self.sway_amplitude * w * np.cos(w * t + self.sway_phase)
        yaw = self.heading + np.arctan2(dx, self.speed) + self.yaw_amplitude * np.sin(
            2 * np.pi * self.yaw_frequency * t + self.yaw_phase)
        pitch = self.pitch + self.pitch_amplitude * np.sin(2 * np.pi * self.pitch_frequency * t + self.pitch_phase)
        cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
        cr, sr = np.cos(self.roll), np.sin(self.roll)
        yaw_m = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
        pitch_m = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
        roll_m = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
        flip = np.diag([1.0, -1.0, 1.0])
        return yaw_m @ pitch_m @ flip @ roll_m, np.array([x, self.height, self.speed * t])


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of linear RGB (..., 3), written out to stay off multi-threaded BLAS."""
    return rgb[..., 0] * LUMA[0] + rgb[..., 1] * LUMA[1] + rgb[..., 2] * LUMA[2]


def _texture_table(textures: list[Texture]) -> dict[str, np.ndarray]:
    """Per-texture attributes as 1-D arrays, so per-pixel texture ids can gather them cheaply."""
    color_a = np.array([t.color_a for t in textures], np.float32)
    color_b = np.array([t.color_b for t in textures], np.float32)
    return {
        "kind": np.array([t.kind for t in textures], np.int32),
        "period": np.array([t.period for t in textures], np.float32),
        "cos": np.cos([t.angle for t in textures]).astype(np.float32),
        "sin": np.sin([t.angle for t in textures]).astype(np.float32),
        "seed": np.array([t.seed for t in textures], np.uint32),
        "color_a": np.ascontiguousarray(color_a.T),
        "color_b": np.ascontiguousarray(color_b.T),
        "luma_a": color_a @ LUMA,
        "luma_b": color_b @ LUMA,
    }


def _hash01(ix: np.ndarray, iy: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """Deterministic integer hash of int32 lattice points to floats in [0, 1)."""
    h = ix.view(np.uint32) * np.uint32(0x8DA6B343)
    h ^= iy.view(np.uint32) * np.uint32(0xD8163841)
    h ^= seed
    h ^= h >> np.uint32(13)
    h *= np.uint32(0x5BD1E995)
    h ^= h >> np.uint32(15)
    return (h >> np.uint32(8)).astype(np.float32) * np.float32(2.0**-24)


@functools.cache
def _noise_tile() -> np.ndarray:
    """Fixed tileable fractal value noise (3 octaves, coarse lattice of 16 texels), flattened, in [0, 1]."""
    rng = np.random.default_rng(0)
    coord = np.arange(_TILE, dtype=np.float64)
    tile = np.zeros((_TILE, _TILE))
    for octave, weight in enumerate((0.55, 0.3, 0.15)):
        cells = _TILE // _CELL * 2**octave
        lattice = rng.random((cells, cells))
        pos = coord * cells / _TILE
        i0 = np.floor(pos).astype(int)
        f = pos - i0
        f = f * f * (3 - 2 * f)
        rows = lattice[i0] * (1 - f)[:, None] + lattice[(i0 + 1) % cells] * f[:, None]
        tile += weight * (rows[:, i0] * (1 - f) + rows[:, (i0 + 1) % cells] * f)
    tile = (tile - tile.min()) / (tile.max() - tile.min())
    return tile.astype(np.float32).reshape(-1)


def _sample_noise(u: np.ndarray, v: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """Bilinear lookup of the noise tile at (u, v) in coarse-lattice units, shifted by a per-seed offset."""
    tile, mask = _noise_tile(), np.int32(_TILE - 1)
    tu = u * np.float32(_CELL) + (seed & np.uint32(0xFFF)).astype(np.float32)
    tv = v * np.float32(_CELL) + (seed >> np.uint32(20)).astype(np.float32)
    fu, fv = np.floor(tu), np.floor(tv)
    su, sv = tu - fu, tv - fv
    iu, iv = fu.astype(np.int32), fv.astype(np.int32)
    r0, c0 = (iv & mask) * np.int32(_TILE), iu & mask
    r1, c1 = ((iv + 1) & mask) * np.int32(_TILE), (iu + 1) & mask
    top = tile[r0 + c0]
    top += (tile[r0 + c1] - top) * su
    bottom = tile[r1 + c0]
    bottom += (tile[r1 + c1] - bottom) * su
    return top + (bottom - top) * sv


def _fade(footprint: np.ndarray, period: np.ndarray) -> np.ndarray:
    """Pattern contrast kept: 1 while a period spans >= 4 pixels, 0 once it spans <= 2 (Nyquist)."""
    return np.clip(2.0 - 4.0 * footprint / period, 0.0, 1.0)


def _parity(x: np.ndarray) -> np.ndarray:
    """1 where floor(x) is odd, else 0 (square wave of period 2)."""
    return (np.floor(x).astype(np.int32) & 1).astype(np.float32)


def _pattern(kind: int, u: np.ndarray, v: np.ndarray, tex: np.ndarray | int, table: dict[str, np.ndarray],
             footprint: np.ndarray) -> np.ndarray:
    """Anti-aliased pattern value in [0, 1] for texture coordinates (u, v) in metres of textures `tex`."""
    if kind == SOLID:
        return np.zeros_like(u)
    period, seed = table["period"][tex], table["seed"][tex]
    if kind == NOISE:
        noise = _sample_noise(u / period, v / period, seed)
        return np.clip(0.5 + 2.0 * (noise - 0.5) * _fade(footprint, period / 2), 0.0, 1.0)
    if kind == CHECKER:
        raw = _parity(2 * u / period + _parity(2 * v / period))
    elif kind == STRIPES:
        raw = _parity(2 * (u * table["cos"][tex] + v * table["sin"][tex]) / period)
    elif kind == WINDOWS:
        cu, cv = u / period, v / (1.15 * period)
        fu, fv = np.floor(cu), np.floor(cv)
        wu, wv = cu - fu, cv - fv
        glass = (wu > 0.22) & (wu < 0.78) & (wv > 0.3) & (wv < 0.82)
        shade = 0.55 + 0.45 * _hash01(fu.astype(np.int32), fv.astype(np.int32), seed)
        raw = np.where(glass, shade, np.float32(0.0))
    else:
        raise ValueError(f"unknown texture kind {kind}")
    return 0.5 + (raw - 0.5) * _fade(footprint, period)


class Renderer:
    """Ray caster for one scene and camera; caches rays, object bounds and the texture table."""

    def __init__(self, scene: Scene, camera: Camera) -> None:
        self.scene, self.camera = scene, camera
        self._rays = camera.rays().reshape(3, -1)
        self._ray_norm = np.sqrt((self._rays**2).sum(0))
        self._ray_norm_sq = (self._ray_norm**2).reshape(camera.height, camera.width)
        ground = scene.ground
        textures = [ground.asphalt, ground.sidewalk, ground.verge, ground.marking]
        textures += [b.texture for b in scene.boxes] + [s.texture for s in scene.spheres]
        self._tex = _texture_table(textures)
        self._base_lo = np.array([b.lo for b in scene.boxes], np.float32).reshape(-1, 3)
        self._base_hi = np.array([b.hi for b in scene.boxes], np.float32).reshape(-1, 3)
        self._box_v = np.array([b.velocity for b in scene.boxes], np.float32).reshape(-1, 3)
        self._base_c = np.array([s.center for s in scene.spheres], np.float32).reshape(-1, 3)
        self._sph_v = np.array([s.velocity for s in scene.spheres], np.float32).reshape(-1, 3)
        self._sph_r = np.array([s.radius for s in scene.spheres], np.float32)
        self._moving = bool(self._box_v.any() or self._sph_v.any())
        self._first_box, self._first_sphere = 1, 1 + len(scene.boxes)
        n_objects = len(scene.boxes) + len(scene.spheres)
        self._tex_of_object = np.concatenate([[0], 4 + np.arange(n_objects)]).astype(np.int32)
        self._sun = np.array(scene.sun_direction, np.float32)
        self._sky = np.array(scene.sky_color, np.float32)
        self._time: float | None = None
        self._move_to(0.0)

    def _move_to(self, t: float) -> None:
        """Place the objects where they are at time t seconds (only moving scenes recompute anything)."""
        if self._time is not None and (not self._moving or t == self._time):
            return
        self._time = t
        shift = np.float32(t)
        self._box_lo = self._base_lo + shift * self._box_v
        self._box_hi = self._base_hi + shift * self._box_v
        self._box_lo_t = np.ascontiguousarray(self._box_lo.T)
        self._box_hi_t = np.ascontiguousarray(self._box_hi.T)
        self._sph_c = self._base_c + shift * self._sph_v
        self._sph_c_t = np.ascontiguousarray(self._sph_c.T)
        corners = np.array([[i & 1, (i >> 1) & 1, (i >> 2) & 1] for i in range(8)], np.float32)
        self._box_corners = self._box_lo[:, None] + corners[None] * (self._box_hi - self._box_lo)[:, None]

    def _rects(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Conservative pixel rectangles (v0, v1, u0, u1) of camera-frame bounding boxes (empty if unseen)."""
        cam = self.camera
        z0, z1 = np.maximum(lo[:, 2], NEAR), np.maximum(hi[:, 2], NEAR)
        xs = np.stack([lo[:, 0] / z0, lo[:, 0] / z1, hi[:, 0] / z0, hi[:, 0] / z1])
        ys = np.stack([lo[:, 1] / z0, lo[:, 1] / z1, hi[:, 1] / z0, hi[:, 1] / z1])
        u0 = np.clip(np.floor(cam.fx * xs.min(0) + cam.cx), 0, cam.width)
        u1 = np.clip(np.ceil(cam.fx * xs.max(0) + cam.cx) + 1, 0, cam.width)
        v0 = np.clip(np.floor(cam.fy * ys.min(0) + cam.cy), 0, cam.height)
        v1 = np.clip(np.ceil(cam.fy * ys.max(0) + cam.cy) + 1, 0, cam.height)
        seen = (hi[:, 2] > NEAR) & (lo[:, 2] < self.scene.max_depth)
        rects = np.stack([v0, v1, u0, u1], 1).astype(np.int64)
        rects[~seen] = 0
        return rects

    def _intersect(self, d: np.ndarray, o: np.ndarray, rot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nearest hit per pixel: z-depth (max_depth if nothing is hit) and object id (-1 sky, 0 ground)."""
        h, w = self.camera.height, self.camera.width
        depth = np.full((h, w), self.scene.max_depth, np.float32)
        ids = np.full((h, w), -1, np.int32)
        if o[1] > 0:
            with np.errstate(divide="ignore"):
                t = -o[1] / np.minimum(d[1], 0.0)
            hit = (t > NEAR) & (t < depth)
            np.copyto(depth, t, where=hit)
            ids[hit] = 0
        with np.errstate(divide="ignore"):
            inv = 1 / d
        cam = np.einsum("nkj,ji->nki", self._box_corners - o, rot)
        with np.errstate(invalid="ignore", over="ignore"):
            for k, (v0, v1, u0, u1) in enumerate(self._rects(cam.min(1), cam.max(1))):
                if v1 <= v0 or u1 <= u0:
                    continue
                ir = inv[:, v0:v1, u0:u1]
                a = (self._box_lo[k] - o)[:, None, None] * ir
                b = (self._box_hi[k] - o)[:, None, None] * ir
                near = np.minimum(a, b).max(0)
                far = np.maximum(a, b).min(0)
                best = depth[v0:v1, u0:u1]
                hit = (near <= far) & (near > NEAR) & (near < best)
                np.copyto(best, near, where=hit)
                np.copyto(ids[v0:v1, u0:u1], self._first_box + k, where=hit)
        centres = np.einsum("nj,ji->ni", self._sph_c - o, rot)
        radius = self._sph_r[:, None]
        for k, (v0, v1, u0, u1) in enumerate(self._rects(centres - radius, centres + radius)):
            if v1 <= v0 or u1 <= u0:
                continue
            dr = d[:, v0:v1, u0:u1]
            oc = o - self._sph_c[k]
            half_b = oc[0] * dr[0] + oc[1] * dr[1] + oc[2] * dr[2]
            a = self._ray_norm_sq[v0:v1, u0:u1]
            disc = half_b * half_b - a * (oc @ oc - self._sph_r[k] ** 2)
            t = (-half_b - np.sqrt(np.maximum(disc, 0.0))) / a
            best = depth[v0:v1, u0:u1]
            hit = (disc >= 0) & (t > NEAR) & (t < best)
            np.copyto(best, t, where=hit)
            np.copyto(ids[v0:v1, u0:u1], self._first_sphere + k, where=hit)
        return depth, ids

    def _shade(self, out: np.ndarray, idx: np.ndarray, t: np.ndarray, tex: np.ndarray | int,
               cosine: np.ndarray, lambert: np.ndarray | float, u: np.ndarray, v: np.ndarray) -> None:
        """Write textured, lit, fogged colours of the flat pixels `idx` into `out` ((3, n) RGB or (n,) luma).

        `cosine` is |normal . ray| / |ray| (for the texture footprint), `lambert` is normal . sun.
        """
        table, scene = self._tex, self.scene
        footprint = t / (min(self.camera.fx, self.camera.fy) * np.maximum(cosine, 0.05))
        if np.ndim(tex) == 0:
            pattern = _pattern(int(table["kind"][tex]), u, v, tex, table, footprint)
        else:
            kinds = table["kind"][tex]
            pattern = np.empty_like(t)
            for kind in np.flatnonzero(np.bincount(kinds, minlength=5)):
                sel = np.flatnonzero(kinds == kind)
                pattern[sel] = _pattern(int(kind), u[sel], v[sel], tex[sel], table, footprint[sel])
        light = scene.ambient + (1 - scene.ambient) * np.maximum(lambert, 0.0)
        far = np.flatnonzero(t > scene.fog_start)
        fog = np.clip((t[far] - scene.fog_start) / (scene.max_depth - scene.fog_start), 0.0, 1.0)
        fog = fog * fog * (3 - 2 * fog)
        if out.ndim == 1:
            channels = [(out, table["luma_a"], table["luma_b"], self._sky @ LUMA)]
        else:
            channels = [(out[c], table["color_a"][c], table["color_b"][c], self._sky[c]) for c in range(3)]
        for target, color_a, color_b, sky in channels:
            base = color_a[tex]
            value = (base + (color_b[tex] - base) * pattern) * light
            value[far] += (sky - value[far]) * fog
            target[idx] = value

    def _shade_ground(self, out: np.ndarray, ids: np.ndarray, depth: np.ndarray, d: np.ndarray,
                      o: np.ndarray) -> None:
        """Road (noise), lane and edge markings (solid), sidewalk (checker) and verge on the y = 0 plane."""
        idx = np.flatnonzero(ids == 0)
        if not len(idx):
            return
        g = self.scene.ground
        t = depth[idx]
        x, z = o[0] + t * d[0][idx], o[2] + t * d[2][idx]
        cosine = np.abs(d[1][idx]) / self._ray_norm[idx]
        ax = np.abs(x)
        curb = g.road_half_width + g.sidewalk_width
        region = np.where(ax < g.road_half_width, 0, np.where(ax < curb, 1, 2))
        if g.markings:
            dash = z / g.dash_period
            marking = (ax < 0.08) & (dash - np.floor(dash) < 0.5)
            marking |= (ax > g.road_half_width - 0.3) & (ax < g.road_half_width - 0.15)
            region[marking] = 3
        for tex in range(4):
            sel = np.flatnonzero(region == tex)
            if len(sel):
                self._shade(out, idx[sel], t[sel], tex, cosine[sel], self._sun[1], x[sel], z[sel])

    def _shade_boxes(self, out: np.ndarray, ids: np.ndarray, depth: np.ndarray, d: np.ndarray,
                     o: np.ndarray) -> None:
        """Box faces: the hit face is the last slab entered; texture coordinates run along it from `lo`."""
        idx = np.flatnonzero((ids >= self._first_box) & (ids < self._first_sphere))
        if not len(idx):
            return
        k = ids[idx] - self._first_box
        t = depth[idx]
        dirs = [d[i][idx] for i in range(3)]
        lo = [self._box_lo_t[i][k] for i in range(3)]
        hi = [self._box_hi_t[i][k] for i in range(3)]
        with np.errstate(divide="ignore", invalid="ignore"):
            enter = [(np.where(dirs[i] > 0, lo[i], hi[i]) - o[i]) / dirs[i] for i in range(3)]
        axis = np.where(enter[0] >= enter[1], np.where(enter[0] >= enter[2], 0, 2),
                        np.where(enter[1] >= enter[2], 1, 2))
        x, y, z = (o[i] + t * dirs[i] - lo[i] for i in range(3))
        u = np.where(axis == 0, z, x)
        v = np.where(axis == 1, z, y)
        along = np.where(axis == 0, dirs[0], np.where(axis == 1, dirs[1], dirs[2]))
        sun = np.where(axis == 0, self._sun[0], np.where(axis == 1, self._sun[1], self._sun[2]))
        cosine = np.abs(along) / self._ray_norm[idx]
        lambert = -np.sign(along) * sun
        self._shade(out, idx, t, self._tex_of_object[ids[idx]], cosine, lambert, u, v)

    def _shade_spheres(self, out: np.ndarray, ids: np.ndarray, depth: np.ndarray, d: np.ndarray,
                       o: np.ndarray) -> None:
        """Spheres: texture coordinates are arc length around the vertical axis and height over the centre."""
        idx = np.flatnonzero(ids >= self._first_sphere)
        if not len(idx):
            return
        k = ids[idx] - self._first_sphere
        t, radius = depth[idx], self._sph_r[k]
        dirs = [d[i][idx] for i in range(3)]
        normal = [(o[i] + t * dirs[i] - self._sph_c_t[i][k]) / radius for i in range(3)]
        cosine = np.abs(sum(n * r for n, r in zip(normal, dirs, strict=True))) / self._ray_norm[idx]
        lambert = sum(n * s for n, s in zip(normal, self._sun, strict=True))
        u = np.arctan2(normal[0], normal[2]) * radius
        self._shade(out, idx, t, self._tex_of_object[ids[idx]], cosine, lambert, u, normal[1] * radius)

    def render(self, cam_to_world: np.ndarray, origin: np.ndarray, rgb: bool = True,
               t: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Render (image, depth) with moving objects at time t seconds: linear RGB (H, W, 3) or luminance (H, W)
        in [0, 1]; z-depth (m), 0 = sky."""
        self._move_to(t)
        cam = self.camera
        rot = np.asarray(cam_to_world, np.float32)
        o = np.asarray(origin, np.float32)
        x, y = self._rays[0], self._rays[1]
        d = (rot[:, 0, None] * x + rot[:, 1, None] * y + rot[:, 2, None]).reshape(3, cam.height, cam.width)
        depth, ids = self._intersect(d, o, rot)
        n = cam.height * cam.width
        if rgb:
            out = np.repeat(self._sky[:, None], n, axis=1)
        else:
            out = np.full(n, self._sky @ LUMA, np.float32)
        flat = (ids.reshape(-1), depth.reshape(-1), d.reshape(3, -1), o)
        self._shade_ground(out, *flat)
        self._shade_boxes(out, *flat)
        self._shade_spheres(out, *flat)
        depth[ids < 0] = 0.0
        image = out.T.reshape(cam.height, cam.width, 3) if rgb else out.reshape(cam.height, cam.width)
        return image, depth


def render_frame(scene: Scene, camera: Camera, trajectory: Trajectory,
                 t: float) -> tuple[np.ndarray, np.ndarray]:
    """One-off render of linear RGB (H, W, 3) and z-depth (H, W, 0 = sky) at time t seconds."""
    return Renderer(scene, camera).render(*trajectory.pose(t), t=t)
