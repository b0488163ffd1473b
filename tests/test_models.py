"""Model behaviour that needs no PyTorch: options, config validation and input errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dae_jax.models import model_from_config, model_to_config, param_shapes
from dae_jax.train.state import init_params


def test_init_params_draws_the_bits_of_flax_init():
    """init_params compiles at XLA optimisation level 1 (dae_jax.train.state.INIT_COMPILER_OPTIONS), for its
    compile time, on a fixed input size: the draws must be those of the model's own init compiled at XLA's default
    level (2, named here: tests/conftest.py sets the session's level to 0) on another input."""
    model = model_from_config({"encoder": "tiny"})
    rng, x = jax.random.PRNGKey(3), jnp.zeros((1, 28, 28, 3))
    default = jax.jit(model.init).lower(rng, x).compile(compiler_options={"xla_backend_optimization_level": 2})
    expected = default(rng, x)["params"]
    got = init_params(model, jax.random.PRNGKey(3))
    assert jax.tree.structure(got) == jax.tree.structure(expected)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.slow
def test_remat_and_bfloat16_keep_the_function():
    x = jax.random.uniform(jax.random.PRNGKey(1), (2, 70, 84, 3))
    base = model_from_config({"encoder": "tiny", "activation": "softplus"})
    params = init_params(base, jax.random.PRNGKey(0))
    loss = lambda m: lambda p: jnp.mean(m.apply({"params": p}, x))  # noqa: E731
    out, grads = jax.value_and_grad(loss(base))(params)
    remat = model_from_config({"encoder": "tiny", "activation": "softplus"}, remat=True)
    out_r, grads_r = jax.value_and_grad(loss(remat))(params)
    np.testing.assert_allclose(out_r, out, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(grads_r), jax.tree.leaves(grads), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)
    bf16 = model_from_config({"encoder": "tiny", "activation": "softplus"}, dtype=jnp.bfloat16)
    y, y16 = base.apply({"params": params}, x), bf16.apply({"params": params}, x)
    assert y16.dtype == jnp.float32  # depth comes back in float32
    assert float(jnp.abs(y16 - y).max() / jnp.abs(y).max()) < 5e-2


def test_attention_per_head_loop_equals_the_batched_form(monkeypatch):
    """XLA:CPU runs the attention one image and head at a time; accelerators run the batched form."""
    from dae_jax.models import vit

    q, k, v = (jax.random.normal(jax.random.PRNGKey(i), (2, 50, 3, 16)) for i in range(3))
    on_cpu = jax.jit(vit.attention)(q, k, v)
    monkeypatch.setattr(vit.jax, "default_backend", lambda: "tpu")
    batched = jax.jit(vit.attention)(q, k, v)
    assert "while" not in str(jax.make_jaxpr(vit.attention)(q, k, v))
    logits = np.einsum("bqhd,bkhd->bhqk", np.asarray(q, np.float64), np.asarray(k, np.float64))
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    expected = np.einsum("bhqk,bkhd->bqhd", weights / weights.sum(-1, keepdims=True), np.asarray(v, np.float64))
    np.testing.assert_allclose(on_cpu, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(batched, expected, rtol=1e-5, atol=1e-6)


def test_config_round_trip_and_param_counts():
    for cfg in ({"model_type": "DAv2", "encoder": "vits"},
                {"model_type": "RecDAv2", "encoder": "vits", "recurrent_block_type": "convgru"},
                {"model_type": "DAv2", "encoder": "vitb", "input_channels": 5}):
        model = model_from_config(cfg)
        assert model_from_config(model_to_config(model)) == model
    sizes = {"vits": 24_785_089, "vitb": 97_470_785, "vitl": 335_315_649, "vitg": 1_258_132_225}
    for encoder, count in sizes.items():
        shapes = param_shapes(model_from_config({"encoder": encoder}))
        assert sum(int(np.prod(s.shape)) for s in jax.tree.leaves(shapes)) == count, encoder
    rec = param_shapes(model_from_config({"model_type": "RecDAv2", "encoder": "vits"}))
    assert sum(int(np.prod(s.shape)) for s in jax.tree.leaves(rec)) == 26_113_473


@pytest.mark.parametrize("cfg,message", [
    ({"encoder": "vitx"}, "unknown encoder 'vitx'"),
    ({"encoder": "vits", "activation": "tanh"}, "activation must be one of"),
    ({"encoder": "vits", "model_type": "RecDAv2", "recurrent_block_type": "lstm"}, "recurrent must be None or one of"),
    ({"encoder": "vits", "model_type": "DAv3"}, "model_type must be one of"),
    ({"encoder": "vits", "activaton": "relu"}, r"unknown model config keys \['activaton'\]"),
    ({"model_type": "DAv2"}, "needs an 'encoder'"),
    ({"encoder": "vits", "official": True, "input_channels": 5}, "teacher takes 3-channel frames"),
])
def test_bad_model_configs_are_refused(cfg, message):
    with pytest.raises(ValueError, match=message):
        param_shapes(model_from_config(cfg))


def test_bad_inputs_are_refused():
    model = model_from_config({"encoder": "tiny"})
    params = init_params(model, jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="multiple of 14 in H and W, got 30x28"):
        model.apply({"params": params}, jnp.zeros((1, 30, 28, 3)))
    with pytest.raises(ValueError, match="expected 3 input channels"):
        model.apply({"params": params}, jnp.zeros((1, 28, 28, 4)))
    rec = model_from_config({"model_type": "RecDAv2", "encoder": "tiny"})
    with pytest.raises(ValueError, match="at least 70x70, got 56x70"):
        rec.init(jax.random.PRNGKey(0), jnp.zeros((1, 1, 56, 70, 3)))
