"""One prediction interface for both models: raw frames and an optional state in, depth and the new state out.

DAv2 predicts the N frames of a call independently (a batch); DepthAnyEvent-R takes them as N consecutive time steps
of one sequence (a scan) and returns the state after the last, to be passed to the next call. Either way the
function is jitted once per input shape, and a state of None is the start of a sequence.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dae_jax.models import model_from_config

State = Any  # DepthAnyEvent-R's recurrent states (a pytree); always None for DAv2


def predict_clips(model: Any, params: Mapping, clips: jnp.ndarray, state: State = None) -> tuple[jnp.ndarray, State]:
    """Both models' forward on raw clips (B, T, h, w, C) in [0, 1] -> (depth (B, T, h, w), state): DAv2 predicts
    every frame on its own (the state stays None), DepthAnyEvent-R scans T from `state` (None: the zero state).
    Traceable: the training step and the Predictor both call it."""
    if model.recurrent:
        return model.apply({"params": params}, clips, state, method=model.infer)
    b, t = clips.shape[:2]
    depth = model.apply({"params": params}, clips.reshape(b * t, *clips.shape[2:]), method=model.infer)
    return depth.reshape(b, t, *depth.shape[1:]), None


@functools.lru_cache(maxsize=16)
def _compiled(config_key: str) -> tuple[Any, Any]:
    """The model of a (JSON) model config and its jitted frames -> depth function, shared by every Predictor of
    that config: evaluating several checkpoints of one model traces and compiles it once."""
    model = model_from_config(json.loads(config_key))

    def apply(params: Mapping, frames: jnp.ndarray, state: State) -> tuple[jnp.ndarray, State]:
        depth, state = predict_clips(model, params, frames[None], state)
        return depth[0], state

    return model, jax.jit(apply)


class Predictor:
    """`predictor(frames, state) -> (depth, state)`: frames (N, h, w, C) float in [0, 1], depth (N, h, w) float32.

    `params` given to a call replace the stored ones for that call (training pictures and evaluation of params
    that change); the compiled function is the same.
    """

    def __init__(self, params: Mapping | None, model_config: Mapping[str, Any]):
        self.model, self._run = _compiled(json.dumps(dict(model_config), sort_keys=True))
        self.params = None if params is None else jax.device_put(params)
        self.recurrent = self.model.recurrent is not None

    def __call__(self, frames: np.ndarray, state: State = None, params: Mapping | None = None
                 ) -> tuple[np.ndarray, State]:
        frames = np.asarray(frames, np.float32)
        if frames.ndim != 4 or frames.shape[-1] != self.model.input_channels:
            raise ValueError(f"expected frames of shape (N, h, w, {self.model.input_channels}), got {frames.shape}")
        params = self.params if params is None else params
        if params is None:
            raise ValueError("this Predictor holds no params: pass them to the call")
        depth, state = self._run(params, jnp.asarray(frames), state)
        return np.asarray(depth), state
