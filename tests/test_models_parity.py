"""Numeric parity of the Flax models with the independent PyTorch reference in dae_jax/convert/torch_reference.py.

Weights go PyTorch -> Flax through the converter, so these tests cover the key table and the layouts too.
Tolerance: max |Δ| <= 1e-4 * max |output| (the issue's criterion), measured on the full preprocessing path.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from dae_jax.convert import torch_reference as ref  # noqa: E402
from dae_jax.convert import torch_to_flax  # noqa: E402
from dae_jax.models import DepthAnyEventR, DepthAnythingV2, target_size  # noqa: E402
from dae_jax.models.resize import resize_bicubic, resize_bilinear  # noqa: E402
from dae_jax.models.vit import interpolate_pos_embed  # noqa: E402
from dae_jax.train.state import init_params  # noqa: E402

torch.set_num_threads(2)
RTOL = 1e-4


def rel_err(a, b) -> float:
    """max |a - b| / max |b|."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


def to_flax(model: torch.nn.Module) -> dict:
    """Reference model weights -> Flax params through the converter."""
    return torch_to_flax({k: v.detach().numpy() for k, v in model.state_dict().items()})


def nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 1)))


@pytest.mark.parametrize("grid", [(19, 25), (23, 46), (10, 13), (37, 37), (37, 49), (49, 37), (5, 5)])
def test_pos_embed_interpolation_matches_torch(grid):
    pos = np.random.default_rng(0).normal(size=(1, 1370, 32)).astype(np.float32)
    expected = ref.interpolate_pos_embed(torch.from_numpy(pos), *grid).numpy()
    got = np.asarray(interpolate_pos_embed(jnp.asarray(pos), *grid))
    assert got.shape == expected.shape == (1, 1 + grid[0] * grid[1], 32)
    print(f"pos-embed {grid}: max|Δ| = {np.abs(got - expected).max():.1e}")
    np.testing.assert_allclose(got, expected, atol=5e-6, rtol=0)  # values are N(0, 1)


@pytest.mark.parametrize("src,dst", [((260, 346), (266, 350)), ((320, 640), (266, 532)), ((266, 350), (130, 173)),
                                     ((7, 9), (21, 4)), ((1, 5), (3, 5))])
def test_resize_matches_torch_interpolate(src, dst):
    x = np.random.default_rng(1).uniform(size=(2, *src, 3)).astype(np.float32)
    t = nchw(x)
    cases = [
        (resize_bicubic(jnp.asarray(x), dst), F.interpolate(t, dst, mode="bicubic", align_corners=False)),
        (resize_bilinear(jnp.asarray(x), dst, False), F.interpolate(t, dst, mode="bilinear", align_corners=False)),
        (resize_bilinear(jnp.asarray(x), dst, True), F.interpolate(t, dst, mode="bilinear", align_corners=True)),
    ]
    for got, expected in cases:
        np.testing.assert_allclose(np.asarray(got), np.moveaxis(expected.numpy(), 1, -1), atol=2e-6, rtol=0)


@pytest.mark.parametrize("src,dst", [((76, 100), (152, 200)), ((152, 200), (266, 350)), ((266, 350), (130, 173)),
                                     ((7, 9), (21, 4))])
def test_resize_gradients_match_torch_autograd(src, dst):
    """The resizes' own gradient (the transposed taps) against torch's backward of F.interpolate (each input sums
    up to ~10 float32 products whose order differs, hence a relative limit rather than 2e-6 absolute)."""
    rng = np.random.default_rng(3)
    x = rng.uniform(size=(2, *src, 4)).astype(np.float32)
    cotangent = rng.normal(size=(2, *dst, 4)).astype(np.float32)
    cases = [(resize_bicubic, dict(mode="bicubic", align_corners=False)),
             (functools.partial(resize_bilinear, align_corners=False), dict(mode="bilinear", align_corners=False)),
             (functools.partial(resize_bilinear, align_corners=True), dict(mode="bilinear", align_corners=True))]
    for resize, kwargs in cases:
        got = jax.jit(jax.grad(lambda a, resize=resize: jnp.sum(resize(a, dst) * cotangent)))(jnp.asarray(x))
        t = nchw(x).requires_grad_(True)
        (F.interpolate(t, dst, **kwargs) * nchw(cotangent)).sum().backward()
        assert rel_err(got, np.moveaxis(t.grad.numpy(), 1, -1)) <= 1e-5, (resize, kwargs)


def test_target_size_matches_reference_rule():
    rng = np.random.default_rng(2)
    sizes = [(260, 346), (320, 640), (480, 640), (518, 518), (100, 1000)]
    sizes += [tuple(int(v) for v in rng.integers(20, 1200, size=2)) for _ in range(300)]
    for h, w in sizes:
        for width, height in [(350, 266), (644, 322), (518, 518)]:
            assert target_size(h, w, width, height) == ref.target_size(h, w, width, height), (h, w, width, height)
    assert target_size(260, 346, 350, 266) == (266, 350)
    assert target_size(320, 640, 350, 266) == (266, 532)
    assert target_size(260, 346) == (518, 686)


@functools.cache
def _jitted(model, method):
    return jax.jit(lambda p, *a: model.apply({"params": p}, *a, method=method))


@pytest.mark.parametrize(
    "name,kind,size,input_size,kwargs",
    [
        ("student-mvsec", "dav2", (260, 346), (350, 266), dict(activation="softplus", inv_prediction=True)),
        ("student-dsec", "dav2", (320, 640), (644, 322), dict(activation="softplus", inv_prediction=True)),
        ("student-relu", "dav2", (64, 90), (98, 70), dict(activation="relu")),
        ("student-sigmoid-5ch", "dav2", (64, 90), (98, 70), dict(activation="sigmoid", input_channels=5)),
        ("teacher-mvsec", "official", (260, 346), (518, 518), {}),
        pytest.param("teacher-dsec", "official", (320, 640), (518, 518), {}, marks=pytest.mark.slow),
    ],
)
def test_dav2_parity_through_preprocessing(name, kind, size, input_size, kwargs):
    tmodel = ref.make_model(kind, "vits", seed=3, **kwargs)
    channels = kwargs.get("input_channels", 3)
    x = np.random.default_rng(4).uniform(size=(1, *size, channels)).astype(np.float32)
    with torch.no_grad():
        expected = ref.infer(tmodel, nchw(x), *input_size)[:, 0].numpy()
    model = DepthAnythingV2(
        encoder="vits", official=kind == "official", input_width=input_size[0], input_height=input_size[1],
        **kwargs,
    )
    got = _jitted(model, model.infer)(to_flax(tmodel), jnp.asarray(x))
    assert got.shape == expected.shape == (1, *size)
    assert np.abs(expected).max() > 0 and np.std(expected) > 0  # a non-degenerate output
    err = rel_err(got, expected)
    print(f"{name}: max|Δ|/max|out| = {err:.2e}")
    assert err <= RTOL


@pytest.mark.parametrize(
    "cell,size,input_size", [("convlstm", (260, 346), (350, 266)), ("convgru", (60, 80), (84, 70))]
)
def test_recurrent_clip_parity_and_streaming(cell, size, input_size):
    tmodel = ref.make_model("recdav2", "vits", seed=5, recurrent_block_type=cell, activation="softplus",
                            inv_prediction=True)
    clip = np.random.default_rng(6).uniform(size=(1, 3, *size, 3)).astype(np.float32)
    expected, states = [], None
    with torch.no_grad():
        for t in range(clip.shape[1]):
            depth, states = ref.infer(tmodel, nchw(clip[:, t]), *input_size, prev_states=states)
            expected.append(depth[:, 0].numpy())
    expected = np.stack(expected, axis=1)

    model = DepthAnyEventR(encoder="vits", recurrent=cell, activation="softplus", inv_prediction=True,
                           input_width=input_size[0], input_height=input_size[1])
    params = to_flax(tmodel)
    scanned, final = _jitted(model, model.infer)(params, jnp.asarray(clip))
    err = rel_err(scanned, expected)
    print(f"DepthAnyEvent-R {cell} 3-step clip: max|Δ|/max|out| = {err:.2e}")
    assert scanned.shape == expected.shape and err <= RTOL
    # The final states match PyTorch's too (NCHW -> NHWC), in the order (l4, l3, l2, l1).
    for got_s, exp_s in zip(jax.tree.leaves(final), jax.tree.leaves(states), strict=True):
        assert rel_err(got_s, np.moveaxis(exp_s.numpy(), 1, -1)) <= RTOL

    step = _jitted(model, model.infer_step)
    chained, s = [], None
    for t in range(clip.shape[1]):
        depth, s = step(params, jnp.asarray(clip[:, t]), s) if s is not None else step(params, jnp.asarray(clip[:, t]))
        chained.append(depth)
    chained = np.stack(chained, axis=1)
    print(f"DepthAnyEvent-R {cell} chained steps vs scan: max|Δ| = {np.abs(chained - scanned).max():.2e}")
    np.testing.assert_allclose(chained, np.asarray(scanned), atol=1e-5 * np.abs(scanned).max(), rtol=0)


def test_recurrent_state_is_carried_and_reset():
    """The recurrence matters (a carried state changes the output) and None means the zero state."""
    model = DepthAnyEventR(encoder="tiny", input_width=70, input_height=70)
    clip = np.random.default_rng(0).uniform(size=(1, 2, 70, 70, 3)).astype(np.float32)
    params = init_params(model, jax.random.PRNGKey(1))
    apply = jax.jit(model.apply)
    depth, states = apply({"params": params}, clip)
    again, _ = apply({"params": params}, clip, model.zero_states(1, 70, 70))
    np.testing.assert_array_equal(np.asarray(depth), np.asarray(again))
    carried, _ = apply({"params": params}, clip, states)
    assert np.abs(np.asarray(carried) - np.asarray(depth)).max() > 0
