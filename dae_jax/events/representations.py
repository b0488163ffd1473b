"""Event representations (Tencode, voxel grid, histogram) as vectorised numpy functions.

Events are four 1-D arrays of equal length: x and y (pixel coordinates, possibly sub-pixel floats), p
(polarity, {0, 1} or {-1, +1}) and t (timestamps of any unit). Events are assumed to be sorted by time:
"latest" and "first/last event of the window" always refer to array order. Outputs are float32 arrays shaped
(C, H, W).
"""

import inspect
import itertools
from collections.abc import Callable

import numpy as np

EventsToArray = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]

HISTOGRAM_CLIP = 200.0


def _events(*arrays: np.ndarray) -> list[np.ndarray]:
    """Turn the event columns into numpy arrays and check that they are 1-D and of equal length."""
    out = [np.asarray(a) for a in arrays]
    if any(a.ndim != 1 for a in out) or len({a.shape[0] for a in out}) != 1:
        raise ValueError(f"event arrays must be 1-D and of equal length, got shapes {[a.shape for a in out]}")
    return out


def binary_polarity(p: np.ndarray) -> np.ndarray:
    """Return a boolean "is positive" array from polarities given as {0, 1} or {-1, +1}.

    Raises ValueError, naming the values found, for anything else (e.g. 0.5, or a mix of -1 and 0).
    """
    p = np.asarray(p)
    if p.size == 0:
        return np.zeros(0, dtype=bool)
    negative = -1 if p.min() < 0 else 0
    if not np.all((p == 1) | (p == negative)):
        raise ValueError(f"polarity must be in {{0, 1}} or {{-1, +1}}, got values {np.unique(p).tolist()}")
    return p == 1


def _unit_time(t: np.ndarray) -> np.ndarray:
    """Map t linearly to [0, 1] by its first and last values (float64); all zeros when those are equal."""
    t = np.asarray(t, dtype=np.float64)
    span = t[-1] - t[0]
    if span == 0:
        return np.zeros_like(t)
    return (t - t[0]) / span


def _in_image(x: np.ndarray, y: np.ndarray, height: int, width: int) -> np.ndarray:
    """Mask of events with 0 <= x < width and 0 <= y < height, tested on the (possibly float) coordinates."""
    return (x >= 0) & (x < width) & (y >= 0) & (y < height)


def tencode(
    x: np.ndarray,
    y: np.ndarray,
    p: np.ndarray,
    t: np.ndarray,
    height: int,
    width: int,
    normalize: bool = True,
    white_frame: bool = False,
) -> np.ndarray:
    """Tencode (3, H, W): the latest event per pixel sets R = 255p, G = 255(1 - t_norm), B = 255(1 - p).

    Matches the reference: coordinates are kept when 0 <= x < W and 0 <= y < H and truncated to pixels; later
    events overwrite earlier ones (no accumulation); t_norm = (t - t[0]) / (t[-1] - t[0]) uses the first and
    last event of the window, not its bounds; untouched pixels keep the init (0, or 255 with white_frame); the
    result is divided by 255 if normalize. An empty window returns the raw init unchanged (255 with
    white_frame even when normalize), reproducing the reference. Defined where the reference is not: equal
    first/last timestamps (e.g. one event) give t_norm = 0 (G = 255) instead of NaN; polarity may be {-1, +1}
    (-1 counts as negative) and any other values raise ValueError. Timestamps are handled in float64, so G can
    differ from the float32 reference in the last bit.
    """
    x, y, p, t = _events(x, y, p, t)
    init = 255.0 if white_frame else 0.0
    out = np.full((3, height * width), init, dtype=np.float32)
    if x.size == 0:
        return out.reshape(3, height, width)
    positive = binary_polarity(p)
    t_norm = _unit_time(t)

    kept = np.flatnonzero(_in_image(x, y, height, width))
    pixel = y[kept].astype(np.int64) * width + x[kept].astype(np.int64)
    latest = np.full(height * width, -1, dtype=np.int64)
    np.maximum.at(latest, pixel, kept)
    hit = np.flatnonzero(latest >= 0)
    event = latest[hit]

    out[0, hit] = np.where(positive[event], 255.0, 0.0)
    out[1, hit] = 255.0 * (1.0 - t_norm[event])
    out[2, hit] = np.where(positive[event], 0.0, 255.0)
    out = out.reshape(3, height, width)
    return out / np.float32(255.0) if normalize else out


def tencode_from_voxels(v: np.ndarray, normalize: bool = True, white_frame: bool = False) -> np.ndarray:
    """Tencode (3, H, W) from an (n, H, W) voxel grid (MVSEC release): only the sign of each bin matters.

    The newest bin i with a non-zero value decides the pixel: (255, g_i, 0) if positive, (0, g_i, 255) if
    negative, with g_i = 255*(1 - i/(n-1)); pixels with no non-zero bin (NaN counts as zero) keep the init (0,
    or 255 with white_frame). Unlike tencode, the white init is divided by 255 too when normalize, as in the
    reference.
    """
    v = np.asarray(v)
    if v.ndim != 3:
        raise ValueError(f"voxels must be (n, H, W), got shape {v.shape}")
    n = v.shape[0]
    positive, negative = v > 0, v < 0
    nonzero = positive | negative
    newest = n - 1 - np.argmax(nonzero[::-1], axis=0)
    hit = nonzero.any(axis=0)
    newest_positive = np.take_along_axis(positive, newest[None], axis=0)[0]
    green = (255.0 * (1.0 - np.linspace(0.0, 1.0, n))).astype(np.float32)

    init = np.float32(255.0 if white_frame else 0.0)
    out = np.stack(
        [
            np.where(hit, np.where(newest_positive, 255.0, 0.0), init),
            np.where(hit, green[newest], init),
            np.where(hit, np.where(newest_positive, 0.0, 255.0), init),
        ]
    ).astype(np.float32)
    return out / np.float32(255.0) if normalize else out


def _normalize_nonzero(grid: np.ndarray) -> np.ndarray:
    """Standardise the non-zero entries (population mean/std over them), leaving zeros at zero.

    The statistics are computed in float64. When all non-zero entries are equal (std = 0, where the reference
    divides by zero) or there are none, the grid is returned unchanged.
    """
    nonzero = grid != 0
    values = grid[nonzero].astype(np.float64)
    if values.size == 0 or values.min() == values.max():
        return grid
    out = np.zeros_like(grid)
    out[nonzero] = (values - values.mean()) / values.std()
    return out


def voxel_grid(
    x: np.ndarray,
    y: np.ndarray,
    p: np.ndarray,
    t: np.ndarray,
    num_bins: int,
    height: int,
    width: int,
    normalize: bool = True,
) -> np.ndarray:
    """Voxel grid (num_bins, H, W): each event adds 2p - 1 trilinearly to its 8 neighbours in (t, y, x).

    As in the reference, t is mapped to [0, num_bins - 1] by the first and last event, the lower neighbour is
    the truncated coordinate int(x) (so for -1 < x < 0 the x0 + 1 neighbour gets the negative weight x, as the
    reference does), weights (1-|dx|)(1-|dy|)(1-|dt|) are accumulated and neighbours outside the grid are
    dropped; see _normalize_nonzero for normalize. Defined here: equal first/last timestamps put every event
    at t = 0; polarity as in binary_polarity.
    """
    x, y, p, t = _events(x, y, p, t)
    size = num_bins * height * width
    if x.size == 0:
        return np.zeros((num_bins, height, width), dtype=np.float32)
    value = np.where(binary_polarity(p), 1.0, -1.0)
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    t = (num_bins - 1) * _unit_time(t)
    x0, y0, t0 = np.trunc(x), np.trunc(y), np.trunc(t)

    grid = np.zeros(size, dtype=np.float64)
    for dx, dy, dt in itertools.product((0, 1), repeat=3):
        xl, yl, tl = x0 + dx, y0 + dy, t0 + dt
        inside = (xl >= 0) & (xl < width) & (yl >= 0) & (yl < height) & (tl >= 0) & (tl < num_bins)
        weight = value * (1 - np.abs(xl - x)) * (1 - np.abs(yl - y)) * (1 - np.abs(tl - t))
        index = ((tl * height + yl) * width + xl)[inside].astype(np.int64)
        grid += np.bincount(index, weights=weight[inside], minlength=size)
    grid = grid.astype(np.float32).reshape(num_bins, height, width)
    return _normalize_nonzero(grid) if normalize else grid


def voxel_grid_from_voxels(v: np.ndarray, num_bins: int, normalize: bool = True) -> np.ndarray:
    """Resample an (n, H, W) voxel grid to num_bins bins by nearest neighbour: bin c takes bin c*n//num_bins.

    This is the reference's 'nearest' interpolation of the bin axis (computed exactly in integers), followed
    by the same normalisation as voxel_grid.
    """
    v = np.asarray(v, dtype=np.float32)
    if v.ndim != 3:
        raise ValueError(f"voxels must be (n, H, W), got shape {v.shape}")
    source = (np.arange(num_bins) * v.shape[0]) // num_bins
    grid = v[source]
    return _normalize_nonzero(grid) if normalize else grid


def histogram(
    x: np.ndarray,
    y: np.ndarray,
    p: np.ndarray,
    height: int,
    width: int,
    remove_int_artifact: bool = False,
) -> np.ndarray:
    """Event counts (2, H, W): channel 0 = negative events, channel 1 = positive ones, clipped at 200.

    Events are kept when 0 <= x < W and 0 <= y < H and counted at the truncated pixel. With
    remove_int_artifact each event instead splats ((1-|dx|) + (1-|dy|))/4 to its 4 integer neighbours;
    neighbours past the right or bottom border are dropped (the reference's flat indexing wraps them into the
    next row or channel instead).
    """
    x, y, p = _events(x, y, p)
    kept = _in_image(x, y, height, width)
    channel = binary_polarity(p)[kept].astype(np.int64)
    x = x[kept].astype(np.float64)
    y = y[kept].astype(np.float64)
    x0, y0 = np.trunc(x), np.trunc(y)
    size = 2 * height * width

    if remove_int_artifact:
        counts = np.zeros(size, dtype=np.float64)
        for dx, dy in itertools.product((0, 1), repeat=2):
            xl, yl = x0 + dx, y0 + dy
            inside = (xl < width) & (yl < height)
            weight = ((1 - np.abs(xl - x)) + (1 - np.abs(yl - y))) / 4
            index = ((channel * height + yl) * width + xl)[inside].astype(np.int64)
            counts += np.bincount(index, weights=weight[inside], minlength=size)
    else:
        index = (channel * height + y0.astype(np.int64)) * width + x0.astype(np.int64)
        counts = np.bincount(index, minlength=size)
    return np.minimum(counts, HISTOGRAM_CLIP).astype(np.float32).reshape(2, height, width)


def histogram_from_voxels(v: np.ndarray) -> np.ndarray:
    """Histogram (2, H, W) from voxels: channel 0 = sum of the positive values, 1 = sum of |negative| ones.

    This channel order is the opposite of histogram(), as in the reference; no clipping is applied.
    """
    v = np.asarray(v, dtype=np.float32)
    if v.ndim != 3:
        raise ValueError(f"voxels must be (n, H, W), got shape {v.shape}")
    zero = np.float32(0.0)
    return np.stack([np.where(v > 0, v, zero).sum(axis=0), np.where(v < 0, -v, zero).sum(axis=0)])


_REPRESENTATIONS: dict[str, Callable[..., np.ndarray]] = {
    "tencode": tencode,
    "voxel_grid": voxel_grid,
    "histogram": histogram,
}


def get_representation(name: str, **kwargs: object) -> EventsToArray:
    """Return a callable (x, y, p, t) -> array for a representation named in a config, with its options bound.

    Options are checked against the function's signature here, so a misspelt or missing config key fails at
    construction; representations that ignore time (histogram) drop t.
    """
    if name not in _REPRESENTATIONS:
        raise ValueError(f"unknown event representation {name!r}; known: {sorted(_REPRESENTATIONS)}")
    convert = _REPRESENTATIONS[name]
    signature = inspect.signature(convert)
    uses_time = "t" in signature.parameters
    signature.bind(*[None] * (4 if uses_time else 3), **kwargs)

    def represent(x: np.ndarray, y: np.ndarray, p: np.ndarray, t: np.ndarray) -> np.ndarray:
        return convert(x, y, p, t, **kwargs) if uses_time else convert(x, y, p, **kwargs)

    return represent
