"""PyTorch-exact resizing in JAX: bicubic and bilinear interpolation as separable matrices.

`jax.image.resize` uses Keys' cubic with A = -0.5 and antialiasing, and knows no `align_corners`, so it cannot
reproduce `torch.nn.functional.interpolate`. Here every resize is two small interpolation matrices (one per
spatial axis) built in NumPy from PyTorch's coordinate rules. Each is applied by gathering only its nonzero taps
(2 for bilinear, 4 for bicubic) rather than as a dense product, which costs as much as a 3x3 convolution of the
same map; the gradient gathers the taps of the transposed matrix, because the transpose of a gather is a
scatter-add, which XLA:CPU runs (and constant-folds) slowly. Shapes are static: the taps are compile-time constants.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

CUBIC_A = -0.75  # PyTorch's (and OpenCV's) cubic convolution coefficient.


def _cubic_weights(t: np.ndarray, a: float = CUBIC_A) -> np.ndarray:
    """Weights of the 4 taps floor(src)-1 .. floor(src)+2 for fractional offsets t, shape (..., 4)."""

    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    one, two = t.dtype.type(1), t.dtype.type(2)
    return np.stack([far(t + one), near(t), near(one - t), far(two - t)], axis=-1)


def _source_coords(out_size: int, in_size: int, scale: float | None, align_corners: bool) -> np.ndarray:
    """PyTorch's `area_pixel_compute_source_index` for every output index, with its float32 CPU rounding.

    The scale is a float32; the coordinate is formed in double from it and rounded to float32 (this matches
    PyTorch's float32 kernels weight for weight, where an all-float32 or all-double formula does not).
    """
    dst = np.arange(out_size, dtype=np.float64)
    if align_corners:
        step = np.float32(in_size - 1) / np.float32(out_size - 1) if out_size > 1 else np.float32(0)
        return (dst * np.float64(step)).astype(np.float32)
    step = np.float32(1.0 / scale) if scale is not None else np.float32(in_size) / np.float32(out_size)
    return ((dst + 0.5) * np.float64(step) - 0.5).astype(np.float32)


@functools.lru_cache(maxsize=256)
def bicubic_matrix(
    in_size: int, out_size: int, scale_factor: float | None = None, align_corners: bool = False
) -> np.ndarray:
    """(out, in) float32 matrix of PyTorch bicubic interpolation along one axis (A=-0.75, clamped taps, no antialias).

    `scale_factor` reproduces `interpolate(scale_factor=...)`, which maps coordinates with the supplied factor
    rather than the size ratio (this matters for DINOv2's positional-embedding interpolation).
    """
    src = _source_coords(out_size, in_size, scale_factor, align_corners)
    base = np.floor(src)
    weights = _cubic_weights(src - base).astype(np.float64)
    taps = np.clip(base[:, None].astype(np.int64) + np.arange(-1, 3)[None, :], 0, in_size - 1)
    matrix = np.zeros((out_size, in_size), np.float64)
    np.add.at(matrix, (np.repeat(np.arange(out_size), 4), taps.ravel()), weights.ravel())
    return matrix.astype(np.float32)


@functools.lru_cache(maxsize=256)
def bilinear_matrix(in_size: int, out_size: int, align_corners: bool) -> np.ndarray:
    """(out, in) float32 matrix of PyTorch bilinear interpolation along one axis (size-based, no antialias)."""
    src = _source_coords(out_size, in_size, None, align_corners)
    if not align_corners:
        src = np.maximum(src, np.float32(0))  # PyTorch clamps negative source coordinates for linear modes.
    lo = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    hi = np.minimum(lo + 1, in_size - 1)
    frac = (src - lo).astype(np.float64)
    matrix = np.zeros((out_size, in_size), np.float64)
    rows = np.arange(out_size)
    np.add.at(matrix, (rows, lo), 1.0 - frac)
    np.add.at(matrix, (rows, hi), frac)
    return matrix.astype(np.float32)


def _taps(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The nonzero entries of each row of an (out, in) matrix as (out, K) column indices and weights, in column
    order, padded with weight 0 at column 0 up to the longest row's K."""
    counts = (matrix != 0).sum(1)
    k = max(int(counts.max()), 1)
    index, weight = np.zeros((matrix.shape[0], k), np.int32), np.zeros((matrix.shape[0], k), np.float32)
    for row, n in enumerate(counts):
        (cols,) = np.nonzero(matrix[row])
        index[row, :n], weight[row, :n] = cols, matrix[row, cols]
    return index, weight


def _gather_rows(x: jnp.ndarray, index: np.ndarray, weight: np.ndarray, axis: int) -> jnp.ndarray:
    """sum_k weight[o, k] * x[..., index[o, k], ...] along `axis`, the taps added in column order."""
    shape = [1] * x.ndim
    shape[axis] = -1
    out = None
    for k in range(index.shape[1]):
        term = jnp.take(x, index[:, k], axis=axis) * weight[:, k].reshape(shape)
        out = term if out is None else out + term
    return out


@functools.lru_cache(maxsize=512)
def _resampler(kind: str, in_size: int, out_size: int, align_corners: bool, axis: int):
    """x -> matrix @ x along `axis` for a cached interpolation matrix, with the transposed matrix's taps as its
    gradient."""
    matrix = bicubic_matrix(in_size, out_size) if kind == "bicubic" else bilinear_matrix(in_size, out_size,
                                                                                           align_corners)
    forward_taps, backward_taps = _taps(matrix), _taps(matrix.T)

    @jax.custom_vjp
    def resample(x):
        return _gather_rows(x, *forward_taps, axis)

    def backward(_, g):
        return (_gather_rows(g, *backward_taps, axis),)

    resample.defvjp(lambda x: (resample(x), None), backward)
    return resample


def _resize(x: jnp.ndarray, size: tuple[int, int], kind: str, align_corners: bool) -> jnp.ndarray:
    """Resize NHWC `x` rows then columns, in float32."""
    dtype, (h, w) = x.dtype, x.shape[1:3]
    x = _resampler(kind, h, size[0], align_corners, 1)(x.astype(jnp.float32))
    return _resampler(kind, w, size[1], align_corners, 2)(x).astype(dtype)


def resize_bicubic(x: jnp.ndarray, size: tuple[int, int]) -> jnp.ndarray:
    """`F.interpolate(x, size, mode='bicubic', align_corners=False)` for NHWC arrays."""
    return _resize(x, size, "bicubic", False)


def resize_bilinear(x: jnp.ndarray, size: tuple[int, int], align_corners: bool) -> jnp.ndarray:
    """`F.interpolate(x, size, mode='bilinear', align_corners=...)` for NHWC arrays."""
    if x.shape[1:3] == tuple(size):
        return x  # Both coordinate rules reduce to the identity at equal sizes.
    return _resize(x, size, "bilinear", align_corners)
