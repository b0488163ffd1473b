"""Losses against direct PyTorch computations written from the reference's definitions (boolean indexing,
per-image loops, torch autograd), on random maps with random masks, empty masks included."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from dae_jax.convert import torch_reference as ref  # noqa: E402
from dae_jax.train import losses  # noqa: E402
from dae_jax.train.step import per_image_loss  # noqa: E402

# The functions under test, compiled once each: run eagerly, JAX would compile each of their ops on its own, about
# ten times the time of these tests.
scale_and_shift = jax.jit(losses.scale_and_shift)
midas_mse = jax.jit(losses.midas_mse, static_argnums=3)
gradient_loss = jax.jit(losses.gradient_loss, static_argnums=(3, 4))
ssi_value_and_grad = jax.jit(jax.value_and_grad(losses.ssi_loss), static_argnums=(3, 4, 5))
silog_loss, si_loss = jax.jit(losses.silog_loss), jax.jit(losses.si_loss)
multiscale_gradient_loss = jax.jit(losses.multiscale_gradient_loss, static_argnums=(3, 4))


@functools.cache
def _image_losses(cfg_items: tuple):
    return jax.jit(lambda p, t, m: per_image_loss(dict(cfg_items), p, t, m))


def image_losses(cfg: dict, p, t, m):
    """per_image_loss(cfg, p, t, m), compiled once per config."""
    return _image_losses(tuple(sorted(cfg.items())))(jnp.asarray(p), jnp.asarray(t), jnp.asarray(m))


def ref_reduction(image_loss, divisor, reduction):
    if reduction == "batch":
        return image_loss.sum() / divisor.sum() if divisor.sum() != 0 else torch.tensor(0.0, dtype=image_loss.dtype)
    out = image_loss.clone()
    nz = divisor != 0
    out[nz] = out[nz] / divisor[nz]
    return out.mean()


def ref_scale_shift(p, t, m):
    scales, shifts = [], []
    for i in range(p.shape[0]):
        pi, ti = p[i][m[i]], t[i][m[i]]
        a00, a01, a11 = (pi * pi).sum(), pi.sum(), torch.tensor(float(pi.numel()), dtype=p.dtype)
        b0, b1 = (pi * ti).sum(), ti.sum()
        det = a00 * a11 - a01 * a01
        ok = det != 0
        scales.append((a11 * b0 - a01 * b1) / det if ok else torch.zeros((), dtype=p.dtype))
        shifts.append((a00 * b1 - a01 * b0) / det if ok else torch.zeros((), dtype=p.dtype))
    return torch.stack(scales), torch.stack(shifts)


def ref_mse(p, t, m, reduction):
    mf = m.to(p.dtype)
    return ref_reduction(((p - t) ** 2 * mf).sum((1, 2)), 2 * mf.sum((1, 2)), reduction)


def ref_grad(p, t, m, reduction, scales=4):
    total = 0.0
    for s in range(scales):
        k = 2**s
        ps, ts, ms = p[:, ::k, ::k], t[:, ::k, ::k], m[:, ::k, ::k].to(p.dtype)
        d = (ps - ts) * ms
        gx = (d[:, :, 1:] - d[:, :, :-1]).abs() * ms[:, :, 1:] * ms[:, :, :-1]
        gy = (d[:, 1:] - d[:, :-1]).abs() * ms[:, 1:] * ms[:, :-1]
        total = total + ref_reduction(gx.sum((1, 2)) + gy.sum((1, 2)), ms.sum((1, 2)), reduction)
    return total


def ref_ssi(p, t, m, reduction, alpha=0.5):
    s, b = ref_scale_shift(p, t, m)
    aligned = s[:, None, None] * p + b[:, None, None]
    return ref_mse(aligned, t, m, reduction) + alpha * ref_grad(aligned, t, m, reduction)


@pytest.fixture(autouse=True)
def float64():
    """The comparisons are at float64 precision; x64 is switched on for these tests only."""
    with jax.enable_x64(True):
        yield


@pytest.fixture(params=[0, 1, 2])
def maps(request):
    rng = np.random.default_rng(request.param)
    b, h, w = 3, 37, 52
    p = rng.uniform(0.1, 2.0, (b, h, w))
    t = 0.7 * p + 0.3 + rng.normal(0, 0.1, (b, h, w))
    t[rng.uniform(size=t.shape) < 0.05] = 0.0  # some zero targets: log(1e-6) stays finite
    m = rng.uniform(size=(b, h, w)) < 0.7
    if request.param == 2:
        m[1] = False  # an image with an empty mask
    return p, t, m


@pytest.mark.parametrize("reduction", ["batch", "image"])
def test_ssi_mse_gradient_match_reference(maps, reduction):
    p, t, m = maps
    tp, tt, tm = (torch.tensor(a) for a in (p, t, m))
    jp, jt, jm = (jnp.asarray(a) for a in (p, t, m))
    s, b = scale_and_shift(jp, jt, jm)
    rs, rb = ref_scale_shift(tp, tt, tm)
    np.testing.assert_allclose(s, rs.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(b, rb.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(midas_mse(jp, jt, jm, reduction), ref_mse(tp, tt, tm, reduction), rtol=1e-10)
    np.testing.assert_allclose(gradient_loss(jp, jt, jm, 4, reduction), ref_grad(tp, tt, tm, reduction),
                               rtol=1e-10)
    # The loss and its gradient (the fit is not detached) against torch autograd.
    tp.requires_grad_(True)
    expected = ref_ssi(tp, tt, tm, reduction)
    expected.backward()
    value, grad = ssi_value_and_grad(jp, jt, jm, 0.5, 4, reduction)
    np.testing.assert_allclose(value, expected.item(), rtol=1e-10)
    np.testing.assert_allclose(grad, tp.grad.numpy(), rtol=1e-7, atol=1e-12)


def test_silog_si_and_multiscale_gradient_match_reference(maps):
    p, t, m = maps
    tp, tt, tm = (torch.tensor(a) for a in (p, t, m))
    jp, jt, jm = (jnp.asarray(a) for a in (p, t, m))
    np.testing.assert_allclose(silog_loss(jp, jt, jm), ref.silog_loss(tp, tt, tm).item(), rtol=1e-10)
    np.testing.assert_allclose(si_loss(jp, jt, jm), ref.silog_loss(tp, tt, tm, logs=False).item(), rtol=1e-10)
    for start, num in [(1, 4), (2, 3)]:
        np.testing.assert_allclose(multiscale_gradient_loss(jp, jt, jm, start, num),
                                   ref.multiscale_gradient_loss(tp, tt, tm, start, num).item(), rtol=1e-10)


def test_empty_masks_and_bad_reduction():
    z = jnp.ones((2, 8, 8))
    none = jnp.zeros((2, 8, 8), bool)
    assert float(jax.jit(losses.ssi_loss)(z, z * 2, none)) == 0.0
    assert float(midas_mse(z, z * 2, none, "image")) == 0.0
    with pytest.raises(ValueError, match="reduction must be one of"):
        losses.midas_mse(z, z, none, "pixel")
    assert jnp.isfinite(jax.jit(losses.ssi_loss)(z, z, ~none))


def test_empty_masks_give_zero_loss_and_finite_gradients():
    """A crop without valid ground truth (all sky) must not make a training step NaN."""
    p = jnp.linspace(0.1, 1.0, 2 * 16 * 16).reshape(2, 16, 16)
    none = jnp.zeros((2, 16, 16), bool)
    for fn in (losses.si_loss, losses.silog_loss, losses.multiscale_gradient_loss):
        value, grad = jax.jit(jax.value_and_grad(lambda x, fn=fn: fn(x, p * 2, none)))(p)
        assert float(value) == 0.0 and bool(jnp.all(jnp.isfinite(grad)))
    value, grad = jax.jit(jax.value_and_grad(lambda x: losses.si_loss(x, x, jnp.ones_like(none))))(p)  # a perfect fit
    assert float(value) == 0.0 and bool(jnp.all(jnp.isfinite(grad)))


def test_max_normalized_disparity_loss_matches_reference_and_trains_a_constant_prediction(maps):
    p, t, m = maps
    cfg = {"label_space": "disparity", "disparity_loss": "max_normalized", "ssi_alpha": 0.5, "gradient_scales": 4}
    tp, tt, tm = (torch.tensor(a) for a in (p, t, m))
    expected = []
    for i in range(p.shape[0]):  # per image: target over its masked max, then MSE + 0.5 * gradient loss
        peak = tt[i][tm[i]].max() if tm[i].any() else torch.tensor(1.0, dtype=tt.dtype)
        ti = (tt[i] / peak)[None]
        expected.append((ref_mse(tp[i][None], ti, tm[i][None], "batch")
                         + 0.5 * ref_grad(tp[i][None], ti, tm[i][None], "batch")).item())
    got = image_losses(cfg, p, t, m)
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    # A constant prediction: SSI gives no gradient (the fit degenerates), the max-normalised loss does.
    const = jnp.full(p.shape, 0.5)
    ssi = jax.jit(jax.grad(lambda x: jnp.sum(per_image_loss({**cfg, "disparity_loss": "ssi"}, x, t, m))))(const)
    normalized = jax.jit(jax.grad(lambda x: jnp.sum(per_image_loss(cfg, x, t, m))))(const)
    assert float(jnp.max(jnp.abs(ssi))) == 0.0
    assert float(jnp.max(jnp.abs(normalized[0]))) > 1e-6


def test_log_inverse_depth_loss_matches_reference(maps):
    """'log': the same MSE + gradient loss on log(x + 1/clip) of the prediction and of the metric target (negative
    predictions count as 0; no normalisation: the scale is learned)."""
    p, t, m = maps
    p = p - 0.2  # some negative predictions
    cfg = {"label_space": "disparity", "disparity_loss": "log", "ssi_alpha": 0.5, "gradient_scales": 4,
           "clip_distance": 80.0}
    tp, tt, tm = (torch.tensor(a) for a in (p, t, m))
    expected = []
    for i in range(p.shape[0]):
        li = torch.log(tt[i] + 1 / 80.0)[None]
        lp = torch.log(torch.clamp(tp[i], min=0.0) + 1 / 80.0)[None]
        expected.append((ref_mse(lp, li, tm[i][None], "batch") + 0.5 * ref_grad(lp, li, tm[i][None], "batch")).item())
    got = image_losses(cfg, p, t, m)
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    assert not np.allclose(got, image_losses({**cfg, "disparity_loss": "max_normalized"}, p, t, m))


def test_anchor_at_max_scores_the_prediction_as_the_protocol_does(maps):
    """anchor_at_max: each image's prediction is shifted so its maximum (over every pixel, masked or not) is 1, then
    the SI + multi-scale gradient loss of the reference applies; a constant added to a prediction changes nothing."""
    p, t, m = maps
    cfg = {"label_space": "logdepth", "si_lambda": 1.0, "gradient_weight": 0.5, "gradient_scales": 4,
           "anchor_at_max": True}
    tp, tt, tm = (torch.tensor(a) for a in (p, t, m))
    expected = []
    for i in range(p.shape[0]):
        if not m[i].any():  # an empty mask gives 0 (the reference's SiLog would be NaN)
            expected.append(0.0)
            continue
        anchored = (tp[i] - tp[i].max() + 1.0)[None]
        expected.append((ref.silog_loss(anchored, tt[i][None], tm[i][None], 1.0, logs=False)
                         + 0.5 * ref.multiscale_gradient_loss(anchored, tt[i][None], tm[i][None])).item())
    got = image_losses(cfg, p, t, m)
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    shifted = image_losses(cfg, p + np.array([0.3, -2.0, 0.5])[:, None, None], t, m)
    np.testing.assert_allclose(shifted, got, rtol=1e-6)
    assert not np.allclose(got, image_losses({**cfg, "anchor_at_max": False}, p, t, m))
