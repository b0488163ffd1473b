"""Depth losses of DepthAnyEvent's `losses.py`, as pure, jit-able JAX functions.

Every loss takes (prediction, target, mask) of shape (B, H, W); the mask is boolean or {0, 1}. Boolean
indexing of the reference becomes masked sums, so shapes stay static under `jit`. Empty masks give 0 where the
reference returns 0 (MSE, gradient terms), and also where it would return NaN (SiLog / Si with fewer than two
valid pixels, a scale of the multi-scale gradient loss without valid pixels), so that a crop of sky cannot
turn a training step into NaN; with valid pixels every value is the reference's.
"""

from __future__ import annotations

from fractions import Fraction

import jax.numpy as jnp
import numpy as np
from jax import lax

REDUCTIONS = ("batch", "image")
MAX_DENOMINATOR = 10_000  # drop_largest reads its fraction as the nearest ratio with at most this denominator


def drop_largest(values: jnp.ndarray, mask: jnp.ndarray, fraction: float) -> jnp.ndarray:
    """Per image (leading axis), the mask without its floor(fraction * n_valid) largest valid values (earlier first)."""
    batch, shape = values.shape[0], values.shape
    valid = mask.astype(bool).reshape(batch, -1)
    # Exact integer floor(n * num / den), split so that no product exceeds den^2 (int32-safe)
    ratio = Fraction(fraction).limit_denominator(MAX_DENOMINATOR)
    num, den = ratio.numerator, ratio.denominator
    n = jnp.sum(valid, axis=1, dtype=jnp.int32)
    count = jnp.minimum((n // den) * num + (n % den) * num // den, jnp.maximum(n - 1, 0))  # > 0.99995 reads as 1
    # Order: valid pixels first, largest value first, ties by pixel index; then every pixel's place in that order
    index = lax.broadcasted_iota(jnp.int32, valid.shape, 1)
    key = -lax.stop_gradient(values).reshape(batch, -1)
    order = lax.sort((~valid, key, index), dimension=1, num_keys=3)[2]
    rank = jnp.argsort(order, axis=1)
    return (valid & (rank >= count[:, None])).reshape(shape)


def masked_reduction(image_loss: jnp.ndarray, divisor: jnp.ndarray, reduction: str) -> jnp.ndarray:
    """'batch': sum(loss) / sum(divisor) (0 when that is 0); 'image': mean of loss / divisor (kept where 0)."""
    if reduction == "batch":
        total = jnp.sum(divisor)
        return jnp.where(total == 0, 0.0, jnp.sum(image_loss) / jnp.where(total == 0, 1.0, total))
    if reduction == "image":
        return jnp.mean(jnp.where(divisor != 0, image_loss / jnp.where(divisor != 0, divisor, 1.0), image_loss))
    raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def scale_and_shift(prediction: jnp.ndarray, target: jnp.ndarray, mask: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Per-image least-squares (s, b) minimising sum m (s p + b - t)^2; both 0 where the system is singular."""
    m = mask.astype(prediction.dtype)
    a00 = jnp.sum(m * prediction * prediction, (1, 2))
    a01 = jnp.sum(m * prediction, (1, 2))
    a11 = jnp.sum(m, (1, 2))
    b0 = jnp.sum(m * prediction * target, (1, 2))
    b1 = jnp.sum(m * target, (1, 2))
    det = a00 * a11 - a01 * a01
    safe = jnp.where(det != 0, det, 1.0)
    scale = jnp.where(det != 0, (a11 * b0 - a01 * b1) / safe, 0.0)
    shift = jnp.where(det != 0, (-a01 * b0 + a00 * b1) / safe, 0.0)
    return scale, shift


def midas_mse(prediction: jnp.ndarray, target: jnp.ndarray, mask: jnp.ndarray, reduction: str = "batch"):
    """MiDaS data term: per-image sum m (p - t)^2 over 2 * sum m (the reference's factor 2)."""
    m = mask.astype(prediction.dtype)
    image_loss = jnp.sum(m * jnp.square(prediction - target), (1, 2))
    return masked_reduction(image_loss, 2 * jnp.sum(m, (1, 2)), reduction)


def _gradient_term(prediction, target, m, reduction):
    diff = m * (prediction - target)
    grad_x = m[:, :, 1:] * m[:, :, :-1] * jnp.abs(diff[:, :, 1:] - diff[:, :, :-1])
    grad_y = m[:, 1:, :] * m[:, :-1, :] * jnp.abs(diff[:, 1:, :] - diff[:, :-1, :])
    image_loss = jnp.sum(grad_x, (1, 2)) + jnp.sum(grad_y, (1, 2))
    return masked_reduction(image_loss, jnp.sum(m, (1, 2)), reduction)


def gradient_loss(prediction: jnp.ndarray, target: jnp.ndarray, mask: jnp.ndarray, scales: int = 4,
                  reduction: str = "batch") -> jnp.ndarray:
    """MiDaS multi-scale gradient matching: |d/dx|, |d/dy| of the masked residual on every 2^s-th pixel."""
    m = mask.astype(prediction.dtype)
    total = 0.0
    for s in range(scales):
        step = 2**s
        total = total + _gradient_term(prediction[:, ::step, ::step], target[:, ::step, ::step],
                                       m[:, ::step, ::step], reduction)
    return total


def ssi_loss(prediction: jnp.ndarray, target: jnp.ndarray, mask: jnp.ndarray, alpha: float = 0.5, scales: int = 4,
             reduction: str = "batch") -> jnp.ndarray:
    """Scale-and-shift-invariant loss: fit (s, b) in closed form (not detached), then MSE + alpha * gradient."""
    scale, shift = scale_and_shift(prediction, target, mask)
    aligned = scale[:, None, None] * prediction + shift[:, None, None]
    total = midas_mse(aligned, target, mask, reduction)
    if alpha > 0:
        total = total + alpha * gradient_loss(aligned, target, mask, scales, reduction)
    return total


def _scale_invariant(diff: jnp.ndarray, valid: jnp.ndarray, lambd: float) -> jnp.ndarray:
    """sqrt(unbiased var(d) + lambd * mean(d)^2) over the valid entries of the whole batch."""
    v = valid.astype(diff.dtype)
    n = jnp.sum(v)
    d = jnp.where(valid, diff, 0.0)
    mean = jnp.sum(d) / jnp.maximum(n, 1)
    var = jnp.sum(v * jnp.square(d - mean)) / jnp.maximum(n - 1, 1)
    value = jnp.where(n > 1, var + lambd * jnp.square(mean), 0.0)
    # sqrt has an infinite slope at 0: give 0 with a zero gradient there (fewer than 2 pixels, or a perfect fit)
    return jnp.where(value > 0, jnp.sqrt(jnp.where(value > 0, value, 1.0)), 0.0)


def silog_loss(prediction: jnp.ndarray, target: jnp.ndarray, mask: jnp.ndarray, lambd: float = 0.5) -> jnp.ndarray:
    """SiLog of the reference: d = log(t + 1e-6) - log(p + 1e-6) on the mask, infinite entries dropped."""
    a = jnp.log(jnp.where(mask, target, 1.0) + 1e-6)
    b = jnp.log(jnp.where(mask, prediction, 1.0) + 1e-6)
    valid = mask.astype(bool) & ~jnp.isinf(a) & ~jnp.isinf(b)
    return _scale_invariant(a - b, valid, lambd)


def si_loss(prediction: jnp.ndarray, target: jnp.ndarray, mask: jnp.ndarray, lambd: float = 0.5) -> jnp.ndarray:
    """The same statistic on t - p without logarithms."""
    return _scale_invariant(target - prediction, mask.astype(bool), lambd)


_SOBEL_X = jnp.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8.0  # kornia's normalised Sobel


def _sobel(x: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """x and y derivatives of (B, H, W) with a normalised Sobel and replicate padding (kornia spatial_gradient)."""
    padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1)), mode="edge")[:, None]
    kernels = jnp.stack([_SOBEL_X, _SOBEL_X.T])[:, None].astype(x.dtype)
    out = lax.conv_general_dilated(padded, kernels, (1, 1), "VALID", precision=lax.Precision.HIGHEST)
    return out[:, 0], out[:, 1]


def _nearest(size_in: int, size_out: int) -> np.ndarray:
    """PyTorch 'nearest' source indices: floor(dst * (in / out)) in float32, clamped."""
    scale = np.float32(size_in) / np.float32(size_out)
    return np.minimum(np.floor(np.arange(size_out, dtype=np.float32) * scale).astype(np.int64), size_in - 1)


def multiscale_gradient_loss(prediction: jnp.ndarray, target: jnp.ndarray, mask: jnp.ndarray, start_scale: int = 1,
                             num_scales: int = 4) -> jnp.ndarray:
    """Mean over scales k of sum |Sobel(avgpool_k(p - t))| on the nearest-downsampled mask / count * 2B."""
    batch, h, w = prediction.shape
    diff = prediction - target
    total = 0.0
    for s in range(num_scales):
        k = start_scale * 2**s
        hk, wk = h // k, w // k
        pooled = diff[:, : hk * k, : wk * k].reshape(batch, hk, k, wk, k).mean(axis=(2, 4))
        gx, gy = _sobel(pooled)
        m = mask.astype(bool)[:, _nearest(h, hk)][:, :, _nearest(w, wk)]
        valid_x, valid_y = m & ~jnp.isnan(gx), m & ~jnp.isnan(gy)
        count = jnp.sum(valid_x) + jnp.sum(valid_y)
        magnitude = jnp.sum(jnp.where(valid_x, jnp.abs(gx), 0.0)) + jnp.sum(jnp.where(valid_y, jnp.abs(gy), 0.0))
        total = total + jnp.where(count > 0, magnitude / jnp.maximum(count, 1), 0.0) * batch * 2
    return total / num_scales
