"""One prediction interface for both models: raw frames and an optional state in, depth and the new state out.

DAv2 predicts the N frames of a call independently (a batch); DepthAnyEvent-R takes them as N consecutive time steps
of one sequence (a scan) and returns the state after the last, to be passed to the next call. Either way the
function is jitted once per input shape, and a state of None is the start of a sequence.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dae_jax.models import model_from_config

State = Any  # DepthAnyEvent-R's recurrent states (a pytree); always None for DAv2


class Predictor:
    """`predictor(frames, state) -> (depth, state)`: frames (N, h, w, C) float in [0, 1], depth (N, h, w) float32."""

    def __init__(self, params: Mapping, model_config: Mapping[str, Any]):
        self.model = model_from_config(model_config)
        self.params = jax.device_put(params)
        self.recurrent = self.model.recurrent is not None
        self._run = jax.jit(self._apply)

    def _apply(self, params: Mapping, frames: jnp.ndarray, state: State) -> tuple[jnp.ndarray, State]:
        variables = {"params": params}
        if self.recurrent:
            depth, state = self.model.apply(variables, frames[None], state, method=self.model.infer)
            return depth[0], state
        return self.model.apply(variables, frames, method=self.model.infer), None

    def __call__(self, frames: np.ndarray, state: State = None) -> tuple[np.ndarray, State]:
        frames = np.asarray(frames, np.float32)
        if frames.ndim != 4 or frames.shape[-1] != self.model.input_channels:
            raise ValueError(f"expected frames of shape (N, h, w, {self.model.input_channels}), got {frames.shape}")
        depth, state = self._run(self.params, jnp.asarray(frames), state)
        return np.asarray(depth), state
