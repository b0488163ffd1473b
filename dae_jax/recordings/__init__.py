"""Event-camera recordings as users' cameras write them: AEDAT4 (iniVation), Prophesee EVT 2.0 / 3.0 `.raw`, and
plain HDF5 / NPZ arrays of x, y, t, p with an optional folder of frames.

`open_recording(path)` picks the reader from the file's extension (and, for `.raw`, its header) and returns a
`Recording`: the sensor size, the events as time-ordered `Events` chunks (read lazily, so a recording larger than
memory can be streamed), and the frames with their timestamps, if any. Every reader normalises to one convention:
x, y uint16 pixel coordinates inside the sensor, t int64 microseconds, p uint8 in {0, 1} (1 = brightness
increase). Malformed input raises `RecordingError` naming the file and the byte or event position.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

DEFAULT_CHUNK = 1 << 20  # events per chunk when a reader is free to choose


class RecordingError(ValueError):
    """A recording is missing, truncated, of an unknown format, or holds invalid events; the message says where."""


@dataclasses.dataclass(frozen=True)
class Events:
    """A time-ordered run of events: x, y uint16; t int64 µs; p uint8 in {0, 1}; all of one length."""

    x: np.ndarray
    y: np.ndarray
    t: np.ndarray
    p: np.ndarray

    def __len__(self) -> int:
        return int(self.t.shape[0])

    def __getitem__(self, index: slice) -> Events:
        return Events(self.x[index], self.y[index], self.t[index], self.p[index])

    @staticmethod
    def empty() -> Events:
        return Events(np.zeros(0, np.uint16), np.zeros(0, np.uint16), np.zeros(0, np.int64), np.zeros(0, np.uint8))

    @staticmethod
    def concatenate(parts: list[Events]) -> Events:
        """One run from consecutive runs (an empty list gives an empty run)."""
        if not parts:
            return Events.empty()
        return Events(*(np.concatenate([getattr(e, k) for e in parts]) for k in ("x", "y", "t", "p")))

    def as_dict(self) -> dict[str, np.ndarray]:
        """The x, y, t, p arrays by name (the schema of dae_jax.data.readers examples)."""
        return {"x": self.x, "y": self.y, "t": self.t, "p": self.p}


@dataclasses.dataclass
class Recording:
    """An opened recording. Subclasses implement `event_chunks` and, where the format has them, `frames`.

    `height`, `width`: the sensor size; `frame_timestamps`: int64 µs of the frames, sorted (empty without frames).
    """

    path: Path
    height: int
    width: int
    frame_timestamps: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))
    images: list[Path] = dataclasses.field(default_factory=list)  # frames from a folder (`frame_folder`), if any

    def event_chunks(self, chunk_size: int = DEFAULT_CHUNK) -> Iterator[Events]:
        """The events in time order, in chunks of at most chunk_size (validated: sorted, inside the sensor)."""
        raise NotImplementedError

    def frames(self) -> Iterator[tuple[int, np.ndarray]]:
        """(timestamp µs, uint8 (H, W, 3) RGB; grayscale replicated) for every frame, in time order."""
        from PIL import Image

        for stamp, image_path in zip(self.frame_timestamps.tolist(), self.images, strict=True):
            with Image.open(image_path) as image:
                if image.mode in ("I;16", "I;16B", "I"):  # 16-bit grayscale: its top 8 bits
                    pixels = (np.asarray(image).astype(np.uint32) >> 8).astype(np.uint8)
                    yield stamp, np.repeat(pixels[..., None], 3, axis=-1)
                else:
                    yield stamp, np.asarray(image.convert("RGB"))

    def read_events(self) -> Events:
        """Every event of the recording at once (for files that fit in memory)."""
        return Events.concatenate(list(self.event_chunks()))


def check_events(events: Events, path: Path | str, first_index: int, last_t: int | None, height: int,
                 width: int, byte_offsets: np.ndarray | None = None) -> None:
    """Raise RecordingError unless the chunk (starting at event `first_index` of the file, after an event at time
    `last_t`) is time-ordered and inside the height x width sensor; the message names the first bad event (and, given
    `byte_offsets`, the file offset each event was decoded from)."""
    n = len(events)
    if n == 0:
        return

    def where(i: int) -> str:
        return f"event {first_index + i}" + ("" if byte_offsets is None else f" (byte offset {int(byte_offsets[i])})")

    t = events.t
    if last_t is not None and t[0] < last_t:
        raise RecordingError(f"{path}: {where(0)} at t={int(t[0])} µs is earlier than the event before it "
                             f"(t={int(last_t)} µs); events must be in time order")
    back = t[1:] < t[:-1]
    if back.any():
        i = int(np.argmax(back)) + 1
        raise RecordingError(f"{path}: {where(i)} at t={int(t[i])} µs is earlier than the event before "
                             f"it (t={int(t[i - 1])} µs); events must be in time order")
    if events.x.max() >= width or events.y.max() >= height:  # reductions first: the common case allocates nothing
        i = int(np.argmax((events.x >= width) | (events.y >= height)))
        raise RecordingError(f"{path}: {where(i)} at (x={int(events.x[i])}, y={int(events.y[i])}) is "
                             f"outside the {width}x{height} sensor")


def checked(runs: Iterable[Events], path: Path | str, height: int, width: int) -> Iterator[Events]:
    """The runs unchanged, each validated by check_events as it streams past (event indices count from the start)."""
    first, last_t = 0, None
    for run in runs:
        check_events(run, path, first, last_t, height, width)
        if len(run):
            first, last_t = first + len(run), int(run.t[-1])
        yield run


def rechunk(runs: Iterable[Events], chunk_size: int) -> Iterator[Events]:
    """Chunks of exactly chunk_size events (the last may be shorter) cut from consecutive runs of any length."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    pending: list[Events] = []
    count = 0
    for run in runs:
        if not len(run):
            continue
        pending.append(run)
        count += len(run)
        if count < chunk_size:
            continue
        merged = pending[0] if len(pending) == 1 else Events.concatenate(pending)
        full = count - count % chunk_size
        for start in range(0, full, chunk_size):
            yield merged[start:start + chunk_size]
        pending = [merged[full:]] if full < count else []
        count -= full
    if count:
        yield Events.concatenate(pending)


def sensor_geometry(path: Path | str, found: tuple[int, int] | None, sensor_size: tuple[int, int] | None,
                    source: str) -> tuple[int, int]:
    """(height, width) from the file (`found`, read from `source`) or else the user's sensor_size; the two must agree
    when both are given, and one must be."""
    if found is not None:
        if sensor_size is not None and tuple(sensor_size) != tuple(found):
            raise RecordingError(f"{path}: sensor_size {tuple(sensor_size)} (height, width) disagrees with the "
                                 f"{found[1]}x{found[0]} (width x height) given by the {source}")
        return int(found[0]), int(found[1])
    if sensor_size is None:
        raise RecordingError(f"{path}: the file gives no sensor size ({source}); pass sensor_size=(height, width)")
    return int(sensor_size[0]), int(sensor_size[1])


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def frame_folder(folder: Path) -> tuple[list[Path], np.ndarray]:
    """The images of a frames folder in name order and their timestamps from its timestamps.txt (one µs a line)."""
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    table = folder / "timestamps.txt"
    if not table.is_file():
        raise RecordingError(f"{table}: missing; a frames folder needs one timestamp (µs) per image")
    stamps = []
    for number, line in enumerate(table.read_text().splitlines(), 1):
        if line.strip():
            try:
                stamps.append(int(line))
            except ValueError:
                raise RecordingError(f"{table}: line {number} {line!r} is not an integer µs timestamp") from None
    stamps = np.array(stamps, np.int64)
    if len(stamps) != len(images):
        raise RecordingError(f"{table}: {len(stamps)} timestamps for {len(images)} images in {folder}")
    back = np.flatnonzero(stamps[1:] < stamps[:-1])
    if back.size:
        i = int(back[0]) + 1
        raise RecordingError(f"{table}: timestamp {i + 1} ({stamps[i]} µs, of {images[i].name}) is earlier than the "
                             f"one before it ({stamps[i - 1]} µs); frames must be in time order")
    return images, stamps


def frames_beside(path: Path) -> Path:
    """Where a recording's frames folder is looked for by default: `<file path without its suffix>_frames/`."""
    return path.with_name(path.stem + "_frames")


def open_recording(path: str | Path, sensor_size: tuple[int, int] | None = None,
                   frames_dir: str | Path | None = None) -> Recording:
    """Open a recording by its extension: .aedat4, .raw (EVT 2.0 / 3.0), .h5/.hdf5, .npz.

    `sensor_size` (height, width) supplies the geometry where the file states none (EVT headers that name no
    geometry and no known sensor, plain files without width/height); one that contradicts the file is an error.
    Frames: the format's own (AEDAT4), else the images of `frames_dir` or, by default, of `frames_beside(path)`
    when that folder exists (a Prophesee camera records no frames; an RGB camera beside it does).
    """
    path = Path(path)
    if not path.is_file():
        raise RecordingError(f"{path}: no such recording file")
    suffix = path.suffix.lower()
    if suffix == ".aedat4":
        from dae_jax.recordings import aedat4

        recording = aedat4.open_aedat4(path, sensor_size)
    elif suffix == ".raw":
        from dae_jax.recordings import evt

        recording = evt.open_raw(path, sensor_size)
    elif suffix in (".h5", ".hdf5", ".npz"):
        from dae_jax.recordings import plain

        recording = plain.open_plain(path, sensor_size)
    else:
        raise RecordingError(f"{path}: unknown recording format {suffix!r}; expected one of {', '.join(EXTENSIONS)}")
    folder = Path(frames_dir) if frames_dir is not None else frames_beside(path)
    if frames_dir is not None and not folder.is_dir():
        raise RecordingError(f"{folder}: no such frames folder")
    if recording.frame_timestamps.size == 0 and folder.is_dir():
        recording.images, recording.frame_timestamps = frame_folder(folder)
    return recording


EXTENSIONS = (".aedat4", ".raw", ".h5", ".hdf5", ".npz")
