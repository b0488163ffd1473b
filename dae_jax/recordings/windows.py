"""Cutting an event stream into windows as it arrives, in chunks of any size.

Three ways to cut (`WindowSpec.mode`):
- `duration`: window k holds the events with s + k*stride <= t < s + k*stride + duration, where s is `start_us`
  (default: the first event's time); a depth map every `stride_us` (default: `duration_us`, back to back).
- `count`: window k holds events k*stride .. k*stride + count - 1 of the stream (stride in events, default count).
- `frames`: one window per given end time e (the recording's frame timestamps): e - duration <= t < e.

A window is emitted as soon as it is complete: when an event at or past its end has arrived (duration, frames) or
its last event has (count). At the end of the stream `flush` emits what remains: frame windows all, duration and
count windows only if complete (a duration window ending after last event + 1 µs is dropped, as is a count window
short of events). The windows, and their events, do not depend on how the stream was chunked.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from dae_jax.recordings import Events

MODES = ("duration", "count", "frames")


@dataclasses.dataclass(frozen=True)
class WindowSpec:
    """How to cut windows; see the module docstring. Times in µs, counts in events."""

    mode: str = "duration"
    duration_us: int = 50_000
    stride_us: int = 0  # duration mode: 0 -> duration_us
    count: int = 0  # count mode: events per window
    stride_events: int = 0  # count mode: 0 -> count
    start_us: int | None = None  # duration mode: None -> the first event's time

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"window mode must be one of {MODES}, got {self.mode!r}")
        if self.mode in ("duration", "frames") and self.duration_us <= 0:
            raise ValueError(f"window duration_us must be > 0, got {self.duration_us}")
        if self.mode == "duration" and self.stride_us < 0:
            raise ValueError(f"window stride_us must be >= 0 (0: the duration), got {self.stride_us}")
        if self.mode == "count" and (self.count <= 0 or self.stride_events < 0):
            raise ValueError(f"count windows need count > 0 and stride_events >= 0, got {self.count}, "
                             f"{self.stride_events}")


DEFAULT_WINDOW = WindowSpec()  # 50 ms windows back to back: depth at 20 Hz


@dataclasses.dataclass(frozen=True)
class Window:
    """Window `index` of the stream, ending at `t_us` (exclusive end; the last event's time in count mode)."""

    index: int
    t_us: int
    events: Events


class EventWindower:
    """Feed `push(events)` with time-ordered chunks; it returns the windows each chunk completes, `flush` the rest."""

    def __init__(self, spec: WindowSpec, frame_timestamps: np.ndarray | None = None):
        if spec.mode == "frames":
            if frame_timestamps is None or len(frame_timestamps) == 0:
                raise ValueError("frames windows need the recording's frame timestamps, and it has none")
            ends = np.asarray(frame_timestamps, np.int64)
            if np.any(np.diff(ends) < 0):
                raise ValueError("frame timestamps must be sorted")
            self._ends = ends
        self.spec = spec
        self._buffer = Events.empty()
        self._first = 0  # stream index of the buffer's first event
        self._next = 0  # index of the next window to emit
        self._start = spec.start_us
        self._last_t: int | None = None

    def _bounds(self, k: int) -> tuple[int, int]:
        """[begin, end) of duration/frames window k in µs."""
        spec = self.spec
        if spec.mode == "frames":
            end = int(self._ends[k])
            return end - spec.duration_us, end
        begin = self._start + k * (spec.stride_us or spec.duration_us)
        return begin, begin + spec.duration_us

    def _time_window(self, k: int) -> Window:
        begin, end = self._bounds(k)
        lo, hi = np.searchsorted(self._buffer.t, [begin, end], side="left")
        return Window(k, end, self._buffer[int(lo):int(hi)])

    def _drop_before_time(self, t: int) -> None:
        keep = int(np.searchsorted(self._buffer.t, t, side="left"))
        self._buffer, self._first = self._buffer[keep:], self._first + keep

    def _pending(self) -> bool:
        return self.spec.mode == "duration" or self._next < len(self._ends)

    def _emit_time(self, final: bool) -> list[Window]:
        out = []
        while self._pending():
            begin, end = self._bounds(self._next)
            self._drop_before_time(begin)  # nothing before the pending window's start is needed again
            complete = self._last_t >= end or (final and (self.spec.mode == "frames" or end <= self._last_t + 1))
            if not complete:
                break
            out.append(self._time_window(self._next))
            self._next += 1
        return out

    def _emit_count(self) -> list[Window]:
        out, spec = [], self.spec
        stride = spec.stride_events or spec.count
        while True:
            lo = self._next * stride - self._first
            hi = lo + spec.count
            if hi > len(self._buffer):
                break
            events = self._buffer[lo:hi]
            out.append(Window(self._next, int(events.t[-1]), events))
            self._next += 1
            drop = min(self._next * stride - self._first, len(self._buffer))
            self._buffer, self._first = self._buffer[drop:], self._first + drop
        return out

    def push(self, events: Events) -> list[Window]:
        """Add the next chunk (time-ordered, after every earlier chunk); return the windows it completes."""
        if len(events) == 0:
            return []
        if self._last_t is not None and events.t[0] < self._last_t:
            raise ValueError(f"chunk starts at t={int(events.t[0])} µs, before the previous chunk's last event "
                             f"(t={self._last_t} µs)")
        if self._start is None:
            self._start = int(events.t[0])
        self._buffer = Events.concatenate([self._buffer, events])
        self._last_t = int(events.t[-1])
        return self._emit_count() if self.spec.mode == "count" else self._emit_time(final=False)

    def flush(self) -> list[Window]:
        """The windows still pending at the end of the stream (see the module docstring for which)."""
        if self._last_t is None:  # no event at all: empty frame windows, nothing else
            if self.spec.mode != "frames":
                return []
            self._last_t = int(self._ends[0]) - self.spec.duration_us - 1
        return [] if self.spec.mode == "count" else self._emit_time(final=True)
