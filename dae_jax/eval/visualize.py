"""Depth pictures with a fixed, documented colour scale, so pictures of different runs compare by eye.

Depth is shown as inverse depth on a fixed range: `near_m` (default 2 m) is brightest, `far_m` (default 80 m,
the evaluation clip) darkest, with a magma-like ramp; invalid pixels (depth <= 0 or not finite) are black.
"""

from __future__ import annotations

import numpy as np

# Anchor colours of the ramp from far (0) to near (1): black-purple-red-orange-pale yellow.
_ANCHORS = np.array(
    [[0, 0, 4], [59, 15, 112], [140, 41, 129], [222, 73, 104], [254, 159, 109], [252, 253, 191]], np.float64
)


def _ramp(u: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> uint8 RGB along the anchor colours."""
    pos = np.clip(u, 0.0, 1.0) * (len(_ANCHORS) - 1)
    lo = np.minimum(np.floor(pos).astype(int), len(_ANCHORS) - 2)
    frac = (pos - lo)[..., None]
    return (_ANCHORS[lo] * (1 - frac) + _ANCHORS[lo + 1] * frac).round().astype(np.uint8)


def colorize_depth(depth: np.ndarray, near_m: float = 2.0, far_m: float = 80.0) -> np.ndarray:
    """(H, W) metric depth -> (H, W, 3) uint8, inverse depth mapped linearly from 1/far_m to 1/near_m."""
    depth = np.asarray(depth, np.float64)
    valid = np.isfinite(depth) & (depth > 0)
    inv = np.where(valid, 1.0 / np.where(valid, depth, 1.0), 0.0)
    rgb = _ramp((inv - 1.0 / far_m) / (1.0 / near_m - 1.0 / far_m))
    return np.where(valid[..., None], rgb, 0).astype(np.uint8)


def colorize_relative(values: np.ndarray) -> np.ndarray:
    """(H, W) relative values (e.g. the teacher's inverse depth) -> uint8 RGB, scaled by the frame's 2-98% range."""
    values = np.asarray(values, np.float64)
    lo, hi = np.percentile(values, [2, 98])
    return _ramp((values - lo) / max(hi - lo, 1e-12))
