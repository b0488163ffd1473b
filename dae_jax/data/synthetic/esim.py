"""ESIM-style event simulation: per-pixel log-intensity threshold crossings between rendered sub-frames.

Each pixel keeps a reference log intensity. Between two sub-frames the log intensity is taken as linear in
time; every time it moves a full contrast threshold C away from the reference an event fires at the
interpolated crossing time and the reference moves by +-C. Events are dicts of arrays x, y (uint16),
t (int64 microseconds), p (uint8, 1 = brighter, 0 = darker), sorted by t.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

EVENT_DTYPES = {"x": np.uint16, "y": np.uint16, "t": np.int64, "p": np.uint8}


def log_intensity(luminance: np.ndarray, eps: float = 1e-2) -> np.ndarray:
    """log(eps + luminance) as float32; eps bounds the response in near-black regions (as a real sensor)."""
    return np.log(np.float32(eps) + np.asarray(luminance, np.float32))


def empty_events() -> dict[str, np.ndarray]:
    """An event dict with no events."""
    return {key: np.zeros(0, dtype) for key, dtype in EVENT_DTYPES.items()}


def concatenate_events(chunks: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Join time-ordered, non-overlapping event chunks into one event dict."""
    if not chunks:
        return empty_events()
    return {key: np.concatenate([c[key] for c in chunks]).astype(dtype)
            for key, dtype in EVENT_DTYPES.items()}


class EventSimulator:
    """Stateful ESIM: feed log-intensity frames in time order with `step`, get the events of each interval."""

    def __init__(self, log_frame: np.ndarray, t_us: float, contrast_threshold: float = 0.2,
                 threshold_sigma: float = 0.0, noise_rate_hz: float = 0.0, seed: int = 0,
                 min_threshold: float = 0.01) -> None:
        """Start at `log_frame` (H, W) at time `t_us`; thresholds get fixed per-pixel Gaussian mismatch."""
        self.height, self.width = log_frame.shape
        self._rng = np.random.default_rng(seed)
        shape = log_frame.size
        noise = self._rng.standard_normal((2, shape))
        thresholds = np.maximum(contrast_threshold + threshold_sigma * noise, min_threshold)
        self.c_pos, self.c_neg = thresholds.astype(np.float32)
        self._c_min = float(min(self.c_pos.min(), self.c_neg.min()))
        self.reference = np.array(log_frame, np.float32).reshape(-1)
        self._last = self.reference.copy()
        self._t = float(t_us)
        self.noise_rate_hz = noise_rate_hz

    def step(self, log_frame: np.ndarray, t_us: float) -> dict[str, np.ndarray]:
        """Events fired while the log intensity moves linearly from the previous frame to `log_frame`."""
        t0, t1 = self._t, float(t_us)
        if t1 <= t0:
            raise ValueError(f"frames must be strictly increasing in time, got {t1} after {t0}")
        new = np.array(log_frame, np.float32).reshape(-1)
        diff = new - self.reference
        pix = np.flatnonzero(np.abs(diff) >= self._c_min)
        d = diff[pix]
        positive = d > 0
        threshold = np.where(positive, self.c_pos[pix], self.c_neg[pix])
        count = np.floor(np.abs(d) / threshold).astype(np.int64)
        fired = np.flatnonzero(count)
        pix, count, threshold = pix[fired], count[fired], threshold[fired]
        step = np.where(positive[fired], 1.0, -1.0)
        rep = np.repeat(np.arange(len(pix)), count)
        k = np.arange(len(rep)) - np.repeat(np.cumsum(count) - count, count) + 1
        where = pix[rep]
        level = self.reference[where] + step[rep] * k * threshold[rep]
        start, end = self._last[where], new[where]
        frac = np.clip((level - start) / (end - start), 0.0, 1.0)
        events = {
            "x": where % self.width,
            "y": where // self.width,
            "t": np.rint(t0 + frac * (t1 - t0)).astype(np.int64),
            "p": (step[rep] > 0).astype(np.uint8),
        }
        self.reference[pix] += step * count * threshold
        self._last, self._t = new, t1
        if self.noise_rate_hz > 0:
            events = concatenate_events([events, self._noise(t0, t1)])
        order = np.argsort(events["t"], kind="stable")
        return {key: events[key][order].astype(dtype) for key, dtype in EVENT_DTYPES.items()}

    def _noise(self, t0: float, t1: float) -> dict[str, np.ndarray]:
        """Uniform background activity: Poisson count at noise_rate_hz per pixel, random pixel/time/sign."""
        n = self._rng.poisson(self.noise_rate_hz * self.height * self.width * (t1 - t0) * 1e-6)
        pix = self._rng.integers(0, self.height * self.width, n)
        return {
            "x": pix % self.width,
            "y": pix // self.width,
            "t": np.rint(self._rng.uniform(t0, t1, n)).astype(np.int64),
            "p": self._rng.integers(0, 2, n).astype(np.uint8),
        }


def simulate_events(log_frames: np.ndarray, timestamps_us: Sequence[float],
                    **kwargs: Any) -> dict[str, np.ndarray]:
    """Events of log-intensity frames (N, H, W) at increasing times; kwargs go to EventSimulator."""
    sim = EventSimulator(log_frames[0], timestamps_us[0], **kwargs)
    pairs = zip(log_frames[1:], timestamps_us[1:], strict=True)
    return concatenate_events([sim.step(frame, t) for frame, t in pairs])
