"""iniVation AEDAT4 recordings (DV software, dv-processing), read with dv-processing's MonoCameraRecording.

The first stream of event type is the event stream (the one named 'events' if there are several) and likewise for
frames. Sensor size: the event stream's resolution. Frames are 8-bit gray, BGR or BGRA (dv-processing keeps
OpenCV's channel order: its own colour constants are BGR, dv.visualization.colors.red() is (0, 0, 255)); they are
returned as RGB. dv-processing decodes a frame to give its timestamp, so opening a
recording decodes every frame once, keeps only the timestamps, and `frames()` decodes them again as it streams.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from dae_jax.recordings import (
    DEFAULT_CHUNK,
    Events,
    Recording,
    RecordingError,
    checked,
    rechunk,
    sensor_geometry,
)


def _dv_message(error: Exception) -> str:
    """dv-processing's error text without the C++ stack trace it appends, on one line."""
    text = str(error).split("Stacktrace:")[0]
    return re.sub(r"\s+", " ", text).strip()


def _call(path: Path, what: str, call: Callable[[], Any]) -> Any:
    """call(), with dv-processing's RuntimeError turned into a RecordingError naming the file."""
    try:
        return call()
    except RuntimeError as error:
        raise RecordingError(f"{path}: dv-processing could not {what}: {_dv_message(error)}") from error


def _until_none(path: Path, what: str, call: Callable[[], Any]) -> Iterator[Any]:
    """call()'s results until it gives None (dv-processing's end of a stream)."""
    while (item := _call(path, what, call)) is not None:
        yield item


def _stream_of(reader: Any, is_type: Callable[[str], bool], preferred: str) -> str | None:
    """The stream named `preferred` if it is of the type, else the first stream of the type, else None."""
    names = [name for name in reader.getStreamNames() if is_type(name)]
    return preferred if preferred in names else (names[0] if names else None)


def open_aedat4(path: str | Path, sensor_size: tuple[int, int] | None = None) -> Recording:
    """Open an AEDAT4 file: find its event (required) and frame (optional) streams, the sensor size, the frames'
    timestamps. `sensor_size` (height, width) must match the event stream's resolution when the file gives one."""
    import dv_processing as dv

    path = Path(path)
    if not path.is_file():
        raise RecordingError(f"{path}: no such recording file")
    reader = _call(path, "open the AEDAT4 file", lambda: dv.io.MonoCameraRecording(str(path)))
    events = _stream_of(reader, reader.isStreamOfEventType, "events")
    if events is None:
        raise RecordingError(f"{path}: no event stream in the AEDAT4 file (streams: "
                             f"{', '.join(reader.getStreamNames()) or 'none'})")
    resolution = reader.getEventResolution(events)
    found = None if resolution is None else (int(resolution[1]), int(resolution[0]))
    height, width = sensor_geometry(path, found, sensor_size, "event stream's resolution")
    frames = _stream_of(reader, reader.isStreamOfFrameType, "frames")
    read_frames = _until_none(path, "read a frame", lambda: reader.getNextFrame(frames)) if frames else ()
    stamps = np.array([frame.timestamp for frame in read_frames], np.int64)
    if np.any(stamps[1:] < stamps[:-1]):
        i = int(np.flatnonzero(stamps[1:] < stamps[:-1])[0]) + 1
        raise RecordingError(f"{path}: frame {i} at t={stamps[i]} µs is earlier than the frame before it")
    return Aedat4Recording(path, height, width, stamps, events_stream=events, frames_stream=frames)


def rgb_of(image: np.ndarray, path: Path) -> np.ndarray:
    """uint8 (H, W, 3) RGB from a dv frame image: gray (H, W) or (H, W, 1) replicated, BGR / BGRA reordered."""
    if image.dtype != np.uint8:
        raise RecordingError(f"{path}: frame of pixel type {image.dtype}; expected 8-bit")
    if image.ndim == 2:
        image = image[..., None]
    channels = image.shape[-1]
    if channels == 1:
        return np.repeat(image, 3, axis=-1)
    if channels in (3, 4):
        return np.ascontiguousarray(image[..., 2::-1])
    raise RecordingError(f"{path}: frame with {channels} channels; expected gray, BGR or BGRA")


@dataclasses.dataclass(kw_only=True)
class Aedat4Recording(Recording):
    """An AEDAT4 file; each `event_chunks` / `frames` call reads the file anew with its own dv reader."""

    events_stream: str
    frames_stream: str | None

    def _reader(self) -> Any:
        import dv_processing as dv

        return _call(self.path, "open the AEDAT4 file", lambda: dv.io.MonoCameraRecording(str(self.path)))

    def _batches(self) -> Iterator[Events]:
        reader = self._reader()
        for batch in _until_none(self.path, "read events", lambda: reader.getNextEventBatch(self.events_stream)):
            a = batch.numpy()
            yield Events(a["x"].astype(np.uint16), a["y"].astype(np.uint16), a["timestamp"].astype(np.int64),
                         a["polarity"].astype(np.uint8))

    def event_chunks(self, chunk_size: int = DEFAULT_CHUNK) -> Iterator[Events]:
        return rechunk(checked(self._batches(), self.path, self.height, self.width), chunk_size)

    def frames(self) -> Iterator[tuple[int, np.ndarray]]:
        if self.frames_stream is None:
            return
        reader = self._reader()
        for frame in _until_none(self.path, "read a frame", lambda: reader.getNextFrame(self.frames_stream)):
            yield int(frame.timestamp), rgb_of(frame.image, self.path)
