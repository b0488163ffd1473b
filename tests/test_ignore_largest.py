"""config.loss.ignore_largest_fraction (Depth Anything V2's noisy-label treatment) against NumPy references:
the reduced mask, the loss on it, injected outliers, the untouched default and the validation."""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import common
from dae_jax.train import losses
from dae_jax.train.step import make_train_step, per_image_loss

SPACES = {
    "logdepth": {"label_space": "logdepth", "si_lambda": 0.5, "gradient_weight": 0.5, "gradient_scales": 3},
    "ssi": {"label_space": "disparity", "disparity_loss": "ssi", "ssi_alpha": 0.5, "gradient_scales": 3},
    "max_normalized": {"label_space": "disparity", "disparity_loss": "max_normalized", "ssi_alpha": 0.5,
                       "gradient_scales": 3},
}


def ref_drop(values: np.ndarray, mask: np.ndarray, fraction: float) -> np.ndarray:
    """Per image: sort the valid pixels by (value descending, index), unmask the first floor(fraction * n)."""
    out = mask.astype(bool).copy()
    for i in range(values.shape[0]):
        flat_values, flat_out = values[i].reshape(-1), out[i].reshape(-1)
        valid = [j for j in range(flat_values.size) if flat_out[j]]
        k = math.floor(Fraction(str(fraction)) * len(valid))  # exact decimal arithmetic
        for j in sorted(valid, key=lambda j: (-flat_values[j], j))[:k]:
            flat_out[j] = False
    return out


def ref_residual(space: str, p: np.ndarray, t: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Per-pixel |residual| of one image (H, W) for a label space, in NumPy."""
    if space == "logdepth":
        d = t - p
        return np.abs(d - d[m].mean()) if m.any() else np.abs(d)
    if space == "max_normalized":
        return np.abs(p - t / (t[m].max() if m.any() else 1.0))
    if m.sum() < 2:
        return np.abs(t)
    (scale, shift), *_ = np.linalg.lstsq(np.stack([p[m], np.ones(m.sum())], 1), t[m], rcond=None)
    return np.abs(scale * p + shift - t)


def existing_loss(cfg: dict, p: np.ndarray, t: np.ndarray, m: np.ndarray) -> float:
    """One image's loss on mask m through the loss functions of dae_jax.train.losses (no per_image_loss)."""
    return float(_existing_loss(tuple(sorted(cfg.items())))(*(jnp.asarray(a)[None] for a in (p, t, m))))


@functools.cache
def _existing_loss(cfg_items: tuple):
    """existing_loss's computation for one config, compiled once (eagerly, JAX would compile it op by op)."""
    cfg = dict(cfg_items)

    def loss(p, t, m):
        if cfg["label_space"] == "logdepth":
            return (losses.si_loss(p, t, m, cfg["si_lambda"])
                    + cfg["gradient_weight"] * losses.multiscale_gradient_loss(p, t, m, 1, cfg["gradient_scales"]))
        if cfg["disparity_loss"] == "ssi":
            return losses.ssi_loss(p, t, m, cfg["ssi_alpha"], cfg["gradient_scales"], "batch")
        t = t / jnp.maximum(jnp.max(jnp.where(m, t, 0.0)), 1e-12)
        return (losses.midas_mse(p, t, m, "batch")
                + cfg["ssi_alpha"] * losses.gradient_loss(p, t, m, cfg["gradient_scales"], "batch"))

    return jax.jit(loss)


@pytest.fixture
def float64():
    """Residuals are ranked in float64 here and in NumPy, so that rounding cannot reorder near neighbours."""
    with jax.enable_x64(True):
        yield


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.29, 0.5, 0.7, 0.9])
def test_drop_largest_matches_numpy_reference(seed, fraction):
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.0, 3.0, (6, 7, 9)).astype(np.float32)
    values[1] = rng.integers(0, 3, (7, 9))  # many ties
    values[2] = 1.0  # all tied
    mask = rng.uniform(size=values.shape) < rng.uniform(0.2, 0.9)
    mask[3] = False  # empty
    mask[4] = True  # full
    mask[5] = False
    mask[5, 2, 3] = True  # a single valid pixel: floor keeps it
    got = jax.jit(losses.drop_largest, static_argnums=2)(jnp.asarray(values), jnp.asarray(mask), fraction)
    expected = ref_drop(values, mask, fraction)
    np.testing.assert_array_equal(np.asarray(got), expected)
    assert not np.any(np.asarray(got) & ~mask)
    # Exactly floor(fraction * n) pixels leave each mask, e.g. 0.7 of 10 is 7 (not 6 from float rounding)
    dropped = mask.sum((1, 2)) - np.asarray(got).sum((1, 2))
    np.testing.assert_array_equal(dropped, [math.floor(Fraction(str(fraction)) * n) for n in mask.sum((1, 2))])


def test_drop_largest_counts_exactly_and_under_vmap():
    values = jnp.arange(10.0)[None]
    for fraction, kept in [(0.7, [0, 1, 2]), (0.3, list(range(7))), (0.1, list(range(9))), (0.05, list(range(10))),
                           (0.99999, [0])]:
        np.testing.assert_array_equal(np.flatnonzero(losses.drop_largest(values, values >= 0, fraction)), kept)
    batched = jax.vmap(lambda v, m: losses.drop_largest(v[None], m[None], 0.5)[0])
    values = np.random.default_rng(3).uniform(size=(4, 5, 6))
    np.testing.assert_array_equal(batched(jnp.asarray(values), jnp.asarray(values > 0.2)),
                                  ref_drop(values, values > 0.2, 0.5))


@pytest.fixture(params=[0, 1])
def images(request, float64):
    rng = np.random.default_rng(request.param)
    b, h, w = 3, 20, 24
    p = rng.uniform(0.1, 1.0, (b, h, w))
    t = 0.8 * p + 0.2 + rng.normal(0, 0.05, (b, h, w))
    t[rng.uniform(size=t.shape) < 0.03] += 3.0  # noisy labels
    m = rng.uniform(size=(b, h, w)) < 0.8
    if request.param == 1:
        m[2] = False  # an empty mask
    return p, t, m


@pytest.mark.parametrize("space", list(SPACES))
@pytest.mark.parametrize("fraction", [0.1, 0.35])
def test_loss_equals_loss_on_hand_reduced_mask(images, space, fraction):
    p, t, m = images
    cfg = {**SPACES[space], "ignore_largest_fraction": fraction}
    got = jax.jit(lambda *a: per_image_loss(cfg, *a))(*(jnp.asarray(a) for a in images))
    expected = []
    for i in range(p.shape[0]):
        reduced = ref_drop(ref_residual(space, p[i], t[i], m[i])[None], m[i][None], fraction)[0]
        expected.append(existing_loss(cfg, p[i], t[i], reduced))
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-14)
    assert not np.allclose(got[:2], [existing_loss(cfg, p[i], t[i], m[i]) for i in range(2)])  # it did something


@pytest.mark.parametrize("space", list(SPACES))
@pytest.mark.parametrize("gradient_weight", [0.0, 0.5])
def test_outliers_are_ignored(float64, space, gradient_weight):
    rng = np.random.default_rng(7)
    h, w = 24, 32
    truth = rng.uniform(0.2, 1.0, (h, w))
    truth[0, 0] = 1.0
    p = truth + rng.normal(0, 0.01, (h, w))
    t = {"logdepth": truth + 0.3, "ssi": 2.0 * truth + 0.5, "max_normalized": 5.0 * truth}[space]
    t = t + rng.normal(0, 0.01, (h, w))
    outliers = np.zeros((h, w), bool)
    outliers.flat[rng.choice(np.arange(1, h * w), 7, replace=False)] = True  # 7 of 768 pixels, share 0.0091
    # Huge label errors; under max normalisation a huge label would become the scale, so there they are 0
    t[outliers] = 0.0 if space == "max_normalized" else t[outliers] + 50.0
    cfg = {**SPACES[space], "gradient_weight": gradient_weight, "ssi_alpha": gradient_weight}
    full = np.ones((h, w), bool)
    p_, t_, full_, clean_ = (jnp.asarray(a)[None] for a in (p, t, full, ~outliers))

    def loss_fn(x, fraction, mask):
        return per_image_loss({**cfg, "ignore_largest_fraction": fraction}, x, t_, mask)[0]

    loss = jax.jit(loss_fn, static_argnums=1)
    # floor(0.01 * 768) = 7 pixels dropped
    value, grad = jax.jit(jax.value_and_grad(loss_fn), static_argnums=1)(p_, 0.01, full_)
    np.testing.assert_allclose(value, existing_loss(cfg, p, t, ~outliers), rtol=1e-12)
    np.testing.assert_allclose(value, loss(p_, 0.0, clean_), rtol=1e-12)
    assert float(loss(p_, 0.0, full_)) > 1.5 * float(value)  # the outliers did matter
    if space == "logdepth" and gradient_weight == 0:  # SI loss on the clean pixels, in NumPy
        d = (t - p)[~outliers]
        np.testing.assert_allclose(value, np.sqrt(d.var(ddof=1) + 0.5 * d.mean() ** 2), rtol=1e-12)
    if space != "logdepth" or gradient_weight == 0:
        # The multi-scale gradient loss of logdepth reads masked pixels through its Sobel and pooling windows
        # (as the reference does), so only there a dropped pixel keeps a gradient.
        assert np.all(np.asarray(grad)[0][outliers] == 0.0)
        assert np.all(np.asarray(grad)[0][~outliers] != 0.0)


@pytest.mark.parametrize("space", list(SPACES))
def test_fraction_zero_is_todays_code_path(images, space):
    args = tuple(jnp.asarray(a) for a in images)
    cfg = SPACES[space]
    todays = jax.jit(lambda *a: per_image_loss(cfg, *a))(*args)
    with_zero = jax.jit(lambda *a: per_image_loss({**cfg, "ignore_largest_fraction": 0.0}, *a))(*args)
    np.testing.assert_array_equal(np.asarray(with_zero), np.asarray(todays))
    # No extra work is traced: the same program, and no sort in it
    jaxpr = str(jax.make_jaxpr(lambda *a: per_image_loss({**cfg, "ignore_largest_fraction": 0.0}, *a))(*args))
    assert jaxpr == str(jax.make_jaxpr(lambda *a: per_image_loss(cfg, *a))(*args))
    assert "sort[" not in jaxpr
    assert "sort[" in str(jax.make_jaxpr(lambda *a: per_image_loss({**cfg, "ignore_largest_fraction": 0.1}, *a))(*args))
    p, t, m = images
    expected = [existing_loss(cfg, p[i], t[i], m[i]) for i in range(p.shape[0])]
    np.testing.assert_allclose(todays, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan")])
def test_bad_fraction_is_refused(bad):
    cfg = common.get_config().loss
    assert cfg.ignore_largest_fraction == 0.0
    cfg.ignore_largest_fraction = bad
    with pytest.raises(ValueError, match=r"config\.loss\.ignore_largest_fraction"):
        make_train_step(student=None, teacher=None, optimizer=None, objective="supervised", loss_cfg=cfg)
