"""The pass-through initialisation of DepthAnyEvent-R's recurrent layers (config.train.recurrent_init)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dae_jax.models.recurrent import RecurrentConvLayer, zero_state
from dae_jax.train.state import passthrough_recurrent


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


@pytest.mark.parametrize("cell", ["convlstm", "convgru"])
def test_first_step_passes_the_input_on(cell):
    """From the zero state a pass-through layer gives, per pixel of the 1-px cropped map, the input through ReLU and
    tanh scaled by the open gates: ConvLSTM s * tanh(s * tanh(relu(x))), ConvGRU s * tanh(relu(x)), s = sigmoid(3)."""
    f = 6
    layer = RecurrentConvLayer(f, cell)
    x = np.random.default_rng(0).normal(size=(2, 7, 9, f)).astype(np.float32) * 2
    state = zero_state(cell, 2, 7, 9, f)
    params = {"depth_head": {"gru_layer_1": jax.jit(layer.init)(jax.random.PRNGKey(1), x, state)["params"]}}
    params = passthrough_recurrent(params)
    out, _ = layer.apply({"params": params["depth_head"]["gru_layer_1"]}, x, state)
    s, inner = _sigmoid(3.0), np.tanh(np.maximum(np.asarray(x)[:, 1:-1, 1:-1], 0))
    expected = s * np.tanh(s * inner) if cell == "convlstm" else s * inner
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_other_parameters_untouched():
    """Only gru_layer_* change; the rest of the tree is returned as it was."""
    layer = RecurrentConvLayer(4)
    x = jnp.ones((1, 5, 5, 4))
    gru = jax.jit(layer.init)(jax.random.PRNGKey(0), x, zero_state("convlstm", 1, 5, 5, 4))["params"]
    other = {"kernel": jnp.arange(6.0)}
    params = {"pretrained": {"w": jnp.ones(3)}, "depth_head": {"gru_layer_2": gru, "layer1_rn": other}}
    out = passthrough_recurrent(params)
    assert out["pretrained"] is params["pretrained"] and out["depth_head"]["layer1_rn"] is other
    gates = out["depth_head"]["gru_layer_2"]["recurrent_block"]["Gates"]
    np.testing.assert_array_equal(gates["bias"], np.r_[np.full(4, 3.0), np.zeros(4), np.full(4, 3.0), np.zeros(4)])


def test_bad_value_is_refused():
    from configs import common
    from dae_jax.train.loop import validate

    config = common.get_config()
    config.train.recurrent_init = "identity"
    with pytest.raises(ValueError, match="config.train.recurrent_init must be one of"):
        validate(config)
