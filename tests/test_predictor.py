"""The one prediction interface: both models through Predictor and predict_clips, against the models' own methods
called directly; the state carried across calls; one compiled function per model config."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dae_jax.models import model_from_config
from dae_jax.predictor import Predictor, predict_clips
from dae_jax.train.state import init_params

# The models and frame sizes of tests/test_predict_recordings.py, called with 1 or 4 frames as there: the same
# compiled functions serve both files.
CONFIGS = {kind: {"model_type": kind, "encoder": "tiny", "input_size_width": 98, "input_size_height": 70,
                  "activation": "sigmoid", "inv_prediction": True} for kind in ("DAv2", "RecDAv2")}


def _params(kind: str, seed: int) -> dict:
    return init_params(model_from_config(CONFIGS[kind]), jax.random.PRNGKey(seed))


def _frames(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(size=(n, 60, 80, 3)).astype(np.float32)


def test_dav2_frames_are_a_batch_of_independent_predictions():
    config = CONFIGS["DAv2"]
    model = model_from_config(config)
    params = _params("DAv2", 0)
    frames = _frames(4)
    got, state = Predictor(params, config)(frames)
    assert state is None and got.shape == (4, 60, 80) and got.dtype == np.float32
    expected = np.asarray(jax.jit(lambda p, x: model.apply({"params": p}, x, method=model.infer))(params, frames))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    alone, _ = Predictor(params, config)(frames[3:4])
    np.testing.assert_allclose(alone[0], expected[3], rtol=1e-5, atol=1e-6)


def test_recurrent_state_carried_across_calls_equals_one_step_at_a_time():
    config = CONFIGS["RecDAv2"]
    model = model_from_config(config)
    params = _params("RecDAv2", 1)
    frames = _frames(5, seed=1)
    step = jax.jit(lambda x, s: model.apply({"params": params}, x, s, method=model.infer_step))
    states, expected = None, []
    for frame in frames:  # the reference: the model's streaming method, one frame at a time
        depth, states = step(jnp.asarray(frame[None]), states)
        expected.append(np.asarray(depth[0]))
    predictor = Predictor(params, config)
    first, state = predictor(frames[:1])
    rest, _ = predictor(frames[1:], state)
    np.testing.assert_allclose(np.concatenate([first, rest]), np.stack(expected), rtol=1e-4, atol=1e-5)
    restarted, _ = predictor(frames[1:2])  # state None: the start of a sequence
    assert np.max(np.abs(restarted[0] - expected[1])) > 1e-4


def test_predict_clips_runs_dav2_clips_as_one_batch():
    """The traceable form the training step uses (DepthAnyEvent-R's is model.infer itself, as in the Predictor)."""
    config = CONFIGS["DAv2"]
    model = model_from_config(config)
    params = _params("DAv2", 2)
    clips = _frames(8, seed=2).reshape(2, 4, 60, 80, 3)
    depth, state = jax.jit(lambda p, x: predict_clips(model, p, x))(params, jnp.asarray(clips))
    assert depth.shape == (2, 4, 60, 80) and state is None
    predictor = Predictor(params, config)
    for b in range(2):
        np.testing.assert_allclose(np.asarray(depth[b]), predictor(clips[b])[0], rtol=1e-4, atol=1e-5)


def test_one_compiled_function_per_config_and_params_per_call():
    config = CONFIGS["DAv2"]
    a, b = _params("DAv2", 3), _params("DAv2", 4)
    pa, pb = Predictor(a, config), Predictor(b, dict(reversed(list(config.items()))))  # same config, other order
    assert pa._run is pb._run
    frames = _frames(1, seed=3)
    np.testing.assert_array_equal(pa(frames, params=b)[0], pb(frames)[0])
    assert not np.array_equal(pa(frames)[0], pb(frames)[0])
    with pytest.raises(ValueError, match="holds no params"):
        Predictor(None, config)(frames)
    with pytest.raises(ValueError, match=r"expected frames of shape \(N, h, w, 3\), got \(60, 80, 3\)"):
        pa(frames[0])
