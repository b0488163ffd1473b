"""Event representations (Tencode, voxel grid, histogram): vectorised numpy functions and a numba Tencode kernel.

Events are four 1-D arrays of equal length: x and y (pixel coordinates, possibly sub-pixel floats), p
(polarity, {0, 1} or {-1, +1}) and t (timestamps of any unit). Events are assumed to be sorted by time:
"latest" and "first/last event of the window" always refer to array order. Outputs are float32 arrays shaped
(C, H, W).
"""

import inspect
import itertools
from collections.abc import Callable

import numba
import numpy as np

EventsToArray = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]

HISTOGRAM_CLIP = 200.0


def _events(*arrays: np.ndarray) -> list[np.ndarray]:
    """Turn the event columns into numpy arrays and check that they are 1-D and of equal length."""
    out = [np.asarray(a) for a in arrays]
    if any(a.ndim != 1 for a in out) or len({a.shape[0] for a in out}) != 1:
        raise ValueError(f"event arrays must be 1-D and of equal length, got shapes {[a.shape for a in out]}")
    return out


def _polarity_error(p: np.ndarray) -> ValueError:
    """The error for polarities outside {0, 1} and {-1, +1}, naming the values found."""
    return ValueError(f"polarity must be in {{0, 1}} or {{-1, +1}}, got values {np.unique(p).tolist()}")


def binary_polarity(p: np.ndarray) -> np.ndarray:
    """Return a boolean "is positive" array from polarities given as {0, 1} or {-1, +1}.

    Raises ValueError, naming the values found, for anything else (e.g. 0.5, or a mix of -1 and 0).
    """
    p = np.asarray(p)
    if p.size == 0:
        return np.zeros(0, dtype=bool)
    negative = -1 if p.min() < 0 else 0
    if not np.all((p == 1) | (p == negative)):
        raise _polarity_error(p)
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


# Tencode kernel. Events go through in blocks of _BLOCK, whose buffers stay in L1 cache: vectorised loops compute
# each event's pixel key and payload, then a plain loop scatters the payloads into latest[key] in array order, so
# the latest event of each pixel is the one left (one random store per event, no read). A payload packs the float32
# bits of G = 255 (1 - t_norm) with the polarity bit at `shift`: in int32 the polarity takes the sign bit, which is
# free while 0 <= G <= 255 (always so for time-sorted events); other windows are redone with int64 payloads.
# _NO_EVENT is a valid payload in neither layout (it would be a positive event with a NaN G of payload 0x7fffffff).
_BLOCK = 2048
_NO_EVENT = -1
_NARROW, _WIDE = (np.int32, 31), (np.int64, 32)  # payload dtype, polarity bit
_G_MAX_BITS = int(np.float32(255.0).view(np.uint32))
_MAX_PIXELS = 2**31 - 1  # pixel keys, and the slot past the last pixel that collects out-of-image events, are int32
_SHARED_KERNEL_EVENTS = 2**16  # see _kernel_events


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _scatter_latest(x, y, p, t, x_end, y_end, width, shift, latest):
    """Fill latest[pixel] with the payload of the pixel's latest event; latest[-1] takes the out-of-image ones.

    Returns (zeros, minus_ones, others, top): whether some polarity is 0, -1, or neither 0, 1 nor -1, and the
    largest float32 bit pattern of G, above that of 255 iff some G is outside [0, 255] or NaN (for G >= 0 the bit
    patterns are in the order of the values, negative G have the sign bit).
    """
    n = x.size
    outside = latest.size - 1
    keys = np.empty(_BLOCK, np.int32)
    green = np.empty(_BLOCK, np.float32)
    payload = np.empty(_BLOCK, latest.dtype)
    t0 = np.float64(t[0])
    span = np.float64(t[n - 1]) - t0
    flat = span == 0
    zeros = minus_ones = others = False
    top = np.uint32(0)
    for start in range(0, n, _BLOCK):
        stop = min(start + _BLOCK, n)
        xs, ys, ps, ts = x[start:stop], y[start:stop], p[start:stop], t[start:stop]
        for j in range(stop - start):
            inside = (xs[j] >= 0) & (xs[j] < x_end) & (ys[j] >= 0) & (ys[j] < y_end)
            keys[j] = np.int32(ys[j]) * np.int32(width) + np.int32(xs[j]) if inside else outside
        for j in range(stop - start):
            green[j] = np.float32(255.0 * (1.0 - (0.0 if flat else (np.float64(ts[j]) - t0) / span)))
        for j in range(stop - start):
            v = ps[j]
            zero, minus_one = v == 0, v == -1
            zeros |= zero
            minus_ones |= minus_one
            others |= not (zero | minus_one | (v == 1))
            bits = np.float32(green[j]).view(np.uint32)
            top = max(top, bits)
            payload[j] = bits | (np.int64(v == 1) << shift)
        for j in range(stop - start):
            latest[keys[j]] = payload[j]
    return zeros, minus_ones, others, top


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _fill_tencode(latest, shift, init, normalize, red, green, blue):
    """Write the channels from the payloads: R = 255p, G, B = 255(1 - p), `init` where no event; / 255 if normalize."""
    top = np.float32(1.0) if normalize else np.float32(255.0)
    mask = (np.int64(1) << shift) - 1
    for k in range(red.size):
        v = np.int64(latest[k])
        hit = v != _NO_EVENT
        positive = np.float32((v >> shift) & 1)
        g = np.uint32(v & mask).view(np.float32)
        if normalize:
            g = g / np.float32(255.0)
        red[k] = positive * top if hit else init
        green[k] = g if hit else init
        blue[k] = top - positive * top if hit else init


def _kernel_events(events: list[np.ndarray], height: int, width: int) -> tuple[list[np.ndarray], tuple]:
    """The events as the kernel takes them, with the image bounds as numpy tests `x < width` on the input dtypes.

    Windows of fewer than _SHARED_KERNEL_EVENTS events become float64 so that they all share one compiled kernel;
    larger ones keep their dtype (C-contiguous, native byte order; float64 unless integer, float32 or float64),
    one compilation per combination, cached on disk. Every conversion keeps the values exactly, and a float
    coordinate's bound is first rounded to its own dtype, as numpy does, so the dtypes never change the result.
    """
    small = events[0].size < _SHARED_KERNEL_EVENTS
    arrays = []
    for a in events:
        dtype = a.dtype.newbyteorder("=")
        if small or (dtype.kind not in "iu" and dtype not in (np.float32, np.float64)):
            dtype = np.dtype(np.float64)
        arrays.append(np.ascontiguousarray(a, dtype=dtype))
    ends = []
    for a, converted, end in zip(events[:2], arrays[:2], (width, height), strict=True):
        if a.dtype.kind == "f":
            end = a.dtype.type(end)
        ends.append(converted.dtype.type(end) if converted.dtype.kind == "f" else end)
    return arrays, (ends[0], ends[1])


def _scatter(
    events: list[np.ndarray], ends: tuple, height: int, width: int, dtype: type, shift: int
) -> tuple[np.ndarray, bool, bool]:
    """Run _scatter_latest with `dtype` payloads on a fresh array; return (payloads, polarity bad, some G wild)."""
    latest = np.full(height * width + 1, _NO_EVENT, dtype=dtype)
    zeros, minus_ones, others, top = _scatter_latest(*events, *ends, width, shift, latest)
    return latest, bool(others or (zeros and minus_ones)), top > _G_MAX_BITS


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
    differ from the float32 reference in the last bit. Computed by one compiled pass over the events (see
    _scatter_latest), a few hundred million events/s on one core; H * W must be below 2**31 - 1.
    """
    x, y, p, t = _events(x, y, p, t)
    init = 255.0 if white_frame else 0.0
    if x.size == 0:
        return np.full((3, height, width), init, dtype=np.float32)
    if height * width >= _MAX_PIXELS:
        raise ValueError(f"tencode needs height * width < {_MAX_PIXELS}, got {height} x {width}")
    arrays, ends = _kernel_events([x, y, p, t], height, width)
    latest, bad_polarity, wild = _scatter(arrays, ends, height, width, *_NARROW)
    if bad_polarity:
        raise _polarity_error(p)
    shift = _NARROW[1]
    if wild:  # some G outside [0, 255] (timestamps out of order, or NaN): the sign bit is not free
        latest, _, _ = _scatter(arrays, ends, height, width, *_WIDE)
        shift = _WIDE[1]
    out = np.empty((3, height * width), dtype=np.float32)
    _fill_tencode(latest, shift, np.float32(init / 255.0 if normalize else init), normalize, *out)
    return out.reshape(3, height, width)


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
