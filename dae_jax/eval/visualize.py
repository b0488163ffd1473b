"""Depth pictures with a fixed, documented colour scale, so pictures of different runs compare by eye.

Depth is shown as inverse depth on a fixed range: `near_m` (default 2 m) is brightest, `far_m` (default 80 m,
the evaluation clip) darkest, with a magma-like ramp; invalid pixels (depth <= 0 or not finite) are black.
Errors |prediction - target| use the same ramp from 0 (dark) to 10 m (bright).
"""

from __future__ import annotations

import numpy as np

from dae_jax.eval.metrics import CLIP_DISTANCE

# Anchor colours of the ramp from far (0) to near (1): black-purple-red-orange-pale yellow.
_ANCHORS = np.array(
    [[0, 0, 4], [59, 15, 112], [140, 41, 129], [222, 73, 104], [254, 159, 109], [252, 253, 191]], np.float64
)


def _ramp(u: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> uint8 RGB along the anchor colours."""
    pos = np.clip(np.asarray(u, np.float64), 0.0, 1.0) * (len(_ANCHORS) - 1)
    knots = np.arange(len(_ANCHORS), dtype=np.float64)  # piecewise linear between anchors; interp is one C pass
    return np.stack([np.interp(pos, knots, _ANCHORS[:, c]) for c in range(3)], -1).round().astype(np.uint8)


def colorize_depth(depth: np.ndarray, near_m: float = 2.0, far_m: float = CLIP_DISTANCE) -> np.ndarray:
    """(H, W) metric depth -> (H, W, 3) uint8, inverse depth mapped linearly from 1/far_m to 1/near_m."""
    depth = np.asarray(depth, np.float64)
    valid = np.isfinite(depth) & (depth > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.where(valid, 1.0 / depth, 0.0)
    rgb = _ramp((inv - 1.0 / far_m) / (1.0 / near_m - 1.0 / far_m))
    rgb[~valid] = 0
    return rgb


def colorize_relative(values: np.ndarray) -> np.ndarray:
    """(H, W) relative values (e.g. the teacher's inverse depth) -> uint8 RGB, scaled by the frame's 2-98% range."""
    values = np.asarray(values, np.float64)
    lo, hi = np.percentile(values, [2, 98])
    return _ramp((values - lo) / max(hi - lo, 1e-12))


def colorize_error(error_m: np.ndarray, valid: np.ndarray, max_error_m: float = 10.0) -> np.ndarray:
    """|prediction - target| in metres -> uint8 RGB on a fixed 0..max_error_m ramp; invalid pixels black."""
    rgb = _ramp(np.asarray(error_m, np.float64) / max_error_m)
    return np.where(np.asarray(valid)[..., None], rgb, 0).astype(np.uint8)


def event_image(encoding: np.ndarray) -> np.ndarray:
    """An (H, W, C) event encoding in [0, 1] -> uint8 RGB (Tencode is already a colour image: R+, B-, G time)."""
    x = np.asarray(encoding, np.float64)
    if x.shape[-1] != 3:  # other representations: show the per-pixel magnitude
        x = np.repeat(np.abs(x).sum(-1, keepdims=True), 3, -1)
        x = x / max(float(x.max()), 1e-12)
    return (np.clip(x, 0, 1) * 255).round().astype(np.uint8)


def save_frame_pictures(folder: str, index: int, events: np.ndarray, prediction_m: np.ndarray,
                        target_m: np.ndarray, near_m: float = 2.0, far_m: float = CLIP_DISTANCE) -> str:
    """Write events | prediction | ground truth | error side by side as <folder>/<index>.png; returns the path."""
    import os

    from PIL import Image

    valid = (target_m > 0) & np.isfinite(prediction_m)
    panels = [event_image(events), colorize_depth(prediction_m, near_m, far_m), colorize_depth(target_m, near_m, far_m),
              colorize_error(np.abs(prediction_m - target_m), valid)]
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{index:06d}.png")
    Image.fromarray(np.concatenate(panels, axis=1)).save(path)
    return path


def assemble_gif(folder: str, path: str, fps: float = 10.0) -> str | None:
    """Join the PNG frames of `folder` (sorted by name) into an animated GIF at `path`; None if there are none."""
    import glob

    from PIL import Image

    frames = [Image.open(f) for f in sorted(glob.glob(f"{folder}/*.png"))]
    if not frames:
        return None
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0)
    return path
