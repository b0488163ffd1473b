"""Depth from a live event camera: push event chunks as the driver delivers them, get depth maps at a fixed rate.

    stream = DepthStream(Predictor(params, model_config), height=480, width=640)
    for chunk in camera:                      # any chunk size, time-ordered
        for frame in stream.push(chunk):      # a depth map per completed window (WindowSpec: 50 ms by default)
            show(frame.depth)
    stream.close()                            # the windows still pending at the end

Each window is encoded as Tencode and predicted as it completes; DepthAnyEvent-R's state is carried from window to
window, so a stream gives the depth maps that `dae_jax.predict.predict_recording` writes for the same events.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from dae_jax.events import tencode
from dae_jax.predictor import Predictor, State
from dae_jax.recordings import Events
from dae_jax.recordings.windows import DEFAULT_WINDOW, EventWindower, Window, WindowSpec


@dataclasses.dataclass(frozen=True)
class DepthFrame:
    """The prediction of window `index` (ending at `t_us`): its Tencode input (H, W, 3) and the raw output (H, W)."""

    index: int
    t_us: int
    encoding: np.ndarray
    depth: np.ndarray


def encode_window(window: Window, height: int, width: int) -> np.ndarray:
    """A window's events as the students' input: Tencode (H, W, 3) float32 in [0, 1]."""
    e = window.events
    return np.moveaxis(tencode(e.x, e.y, e.p, e.t, height, width), 0, -1)


class DepthStream:
    """Windows, encodes and predicts a live event stream one window at a time, carrying the recurrent state."""

    def __init__(self, predictor: Predictor, height: int, width: int, spec: WindowSpec = DEFAULT_WINDOW,
                 frame_timestamps: np.ndarray | None = None):
        self.predictor, self.height, self.width = predictor, height, width
        self._windower = EventWindower(spec, frame_timestamps)
        self._state: State = None

    def _predict(self, windows: list[Window]) -> list[DepthFrame]:
        out = []
        for window in windows:
            x = encode_window(window, self.height, self.width)
            depth, self._state = self.predictor(x[None], self._state)
            out.append(DepthFrame(window.index, window.t_us, x, depth[0]))
        return out

    def push(self, events: Events) -> list[DepthFrame]:
        """Add the next chunk of events; return the depth maps of the windows it completes (often none)."""
        return self._predict(self._windower.push(events))

    def close(self) -> list[DepthFrame]:
        """End of stream: the depth maps of the windows still pending."""
        return self._predict(self._windower.flush())
