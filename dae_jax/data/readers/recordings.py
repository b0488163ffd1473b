"""Reader of a folder of users' recordings (`dae_jax.recordings` formats) as sequences of the uniform schema.

Each recording file is a sequence; each of its frames gives one example: the frame as RGB (grayscale replicated),
the events of the `window_us` before it, no depth. Frames whose window would start before the first event are
left out (the camera's event stream had not started). The split is `test.txt` in the folder (one recording name
per line, the file name without its extension) when present, else the last `test_fraction` of the names in sorted
order (at least one when there are two or more recordings and the fraction is > 0).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from dae_jax.data.readers import DatasetFormatError, MissingDataError
from dae_jax.events.slicing import WINDOW_US
from dae_jax.recordings import EXTENSIONS, Recording, open_recording
from dae_jax.recordings.windows import EventWindower, WindowSpec

SPLITS = ("train", "test")
TEST_LIST = "test.txt"


def recording_files(root: str | Path) -> list[Path]:
    """The recording files directly in `root`, sorted by name; none is an error naming the extensions looked for."""
    root = Path(root)
    if not root.is_dir():
        raise MissingDataError(f"recordings folder {root} is not a directory")
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS)
    if not files:
        raise MissingDataError(f"{root}: no recordings (files ending in {', '.join(EXTENSIONS)})")
    names = [p.stem for p in files]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DatasetFormatError(f"{root}: recordings {twice} exist in more than one format; keep one of each")
    return files


def list_sequences(root: str | Path, split: str, test_fraction: float = 0.2) -> list[Path]:
    """The recordings of `split` ('train' or 'test'), by `test.txt` or by `test_fraction` (module docstring)."""
    if split not in SPLITS:
        raise ValueError(f"unknown recordings split {split!r}; valid splits: {', '.join(SPLITS)}")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    files = recording_files(root)
    listed = Path(root) / TEST_LIST
    if listed.is_file():
        test = {line.strip() for line in listed.read_text().splitlines() if line.strip()}
        unknown = sorted(test - {p.stem for p in files})
        if unknown:
            raise DatasetFormatError(f"{listed}: names {unknown} are not recordings in {root}")
    else:
        n = len(files)
        k = min(max(math.ceil(test_fraction * n), 1), n - 1) if test_fraction > 0 and n > 1 else 0
        test = {p.stem for p in files[n - k:]} if k else set()
    return [p for p in files if (p.stem in test) == (split == "test")]


def _first_event_time(recording: Recording) -> int | None:
    for chunk in recording.event_chunks(1024):
        if len(chunk):
            return int(chunk.t[0])
    return None


def _kept_frames(recording: Recording, window_us: int) -> np.ndarray:
    """Mask over the recording's frames of those whose window starts at or after the first event."""
    if recording.frame_timestamps.size == 0:
        raise DatasetFormatError(f"{recording.path}: the recording has no frames, and distillation needs them")
    first = _first_event_time(recording)
    if first is None:
        raise DatasetFormatError(f"{recording.path}: the recording has no events")
    return recording.frame_timestamps - window_us >= first


def describe(path: Path, window_us: int = WINDOW_US, sensor_size: tuple[int, int] | None = None) -> tuple[int, ...]:
    """(height, width, examples) of a recording, opened once (an AEDAT4 file decodes its frames to time them)."""
    recording = open_recording(path, sensor_size)
    return recording.height, recording.width, int(_kept_frames(recording, window_us).sum())


def read_sequence(path: Path, window_us: int = WINDOW_US,
                  sensor_size: tuple[int, int] | None = None) -> Iterator[dict[str, Any]]:
    """Examples of one recording in time order (dae_jax.data.readers schema, depth None)."""
    recording = open_recording(path, sensor_size)
    kept = _kept_frames(recording, window_us)
    windower = EventWindower(WindowSpec(mode="frames", duration_us=window_us), recording.frame_timestamps[kept])
    frames = (f for f, keep in zip(recording.frames(), kept, strict=True) if keep)

    def examples(windows):
        for window in windows:
            t_frame, rgb = next(frames)
            if t_frame != window.t_us:
                raise DatasetFormatError(f"{path}: frame {window.index} at {t_frame} µs does not match its "
                                         f"timestamp {window.t_us} µs")
            if rgb.shape[:2] != (recording.height, recording.width):
                raise DatasetFormatError(f"{path}: frame at {t_frame} µs is {rgb.shape[1]}x{rgb.shape[0]}, the "
                                         f"sensor {recording.width}x{recording.height}")
            e = window.events
            yield {"sequence": path.stem, "frame_index": window.index, "timestamp_us": window.t_us,
                   "event_format": "events", "rgb": rgb, "depth": None,
                   "events": {"x": e.x.astype(np.float32), "y": e.y.astype(np.float32), "t": e.t,
                              "p": e.p}}

    for chunk in recording.event_chunks():
        yield from examples(windower.push(chunk))
    yield from examples(windower.flush())
