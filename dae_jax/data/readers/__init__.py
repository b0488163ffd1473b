"""Format-level readers of the real datasets (MVSEC E2Depth release, official DSEC train release).

`mvsec`, `dsec` and `eventscape` are each a `SequenceReader`: `list_sequences(root, split)`, `sequence_name(path)`,
`num_frames(path)`, `read_sequence(path, load_rgb=...)` (an iterator of uniform examples, see below) and
`verify(root, split)`, with splits named from `SPLIT_NAMES`. They know the on-disk formats and nothing downstream;
this module holds what they share: the interface, the error types, split lookup, and PNG, .npy and timestamp
reading.

An example is a dict: `sequence` (str), `frame_index` (int, position in the sequence), `timestamp_us`
(int64 reference time), `event_format` ("events" or "voxels") with either `events` (dict x, y float32; p
uint8 in {0, 1}; t int64 absolute µs: the window [t_ref - 50 ms, t_ref)) or `voxels` (float32 (C, H, W)),
`rgb` (uint8 (H, W, 3) or None) and `depth` (float32 (H, W) metres, 0 = invalid, or None).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

SPLIT_NAMES = ("train", "validation", "test")  # the one split vocabulary of readers, builders and configs


@runtime_checkable
class SequenceReader(Protocol):
    """A dataset's format reader (a module), as the TFDS builders use it."""

    SPLITS: Mapping[str, Any]  # split name (from SPLIT_NAMES) -> where the release keeps it

    def list_sequences(self, root: str | Path, split: str) -> list[Path]: ...

    def sequence_name(self, path: str | Path) -> str: ...

    def num_frames(self, path: str | Path) -> int: ...

    def read_sequence(self, path: str | Path, load_rgb: bool = ...) -> Iterator[dict[str, Any]]: ...

    def verify(self, root: str | Path, split: str) -> dict[str, int]: ...


def qualified_name(path: str | Path) -> str:
    """'<parent>/<folder>' of a sequence folder: unique across splits where folder names alone repeat."""
    path = Path(path)
    return f"{path.parent.name}/{path.name}"


def load_npy(path: Path) -> np.ndarray:
    """The array of an .npy file (pickles refused); an unreadable file raises DatasetFormatError naming it."""
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise DatasetFormatError(f"{path}: not a readable .npy file ({err})") from err


class DatasetFormatError(ValueError):
    """A dataset file or folder does not have the expected content, layout or counts."""


class MissingDataError(DatasetFormatError, FileNotFoundError):
    """Expected dataset files or folders are absent; the message lists what was expected and what is missing."""


def require(base: Path, entries: Iterable[str], what: str) -> None:
    """Raise MissingDataError unless every relative path in `entries` exists under `base` (names all missing)."""
    entries = list(entries)
    missing = [e for e in entries if not (base / e).exists()]
    if missing:
        raise MissingDataError(f"{what} {base}: missing {', '.join(missing)} (expected: {', '.join(entries)})")


def split_folders(root: str | Path, split: str, table: Mapping[str, Sequence[str]], what: str) -> list[Path]:
    """Folders of `split` from `table` (split -> paths relative to root); all must exist."""
    if split not in table:
        raise ValueError(f"unknown {what} split {split!r}; valid splits: {', '.join(table)}")
    root = Path(root)
    if not root.is_dir():
        raise MissingDataError(f"{what} root {root} is not a directory")
    require(root, table[split], f"{what} split {split!r} under")
    return [root / rel for rel in table[split]]


def sorted_files(folder: Path, pattern: str) -> list[Path]:
    """Files in `folder` matching the glob `pattern`, sorted by name (the file names are zero-padded indices)."""
    if not folder.is_dir():
        raise MissingDataError(f"missing folder {folder} (expected files {pattern})")
    return sorted(p for p in folder.glob(pattern) if p.is_file())


def check_counts(files: Sequence[Path], timestamps: np.ndarray, folder: Path, stamps_file: Path) -> None:
    """Raise DatasetFormatError unless there is one file per timestamp (the reference would misalign or stop)."""
    if len(files) != len(timestamps):
        raise DatasetFormatError(f"{folder}: {len(files)} files but {len(timestamps)} timestamps in {stamps_file}")


def check_sorted(timestamps: np.ndarray, stamps_file: Path) -> None:
    """Raise DatasetFormatError if timestamps decrease (nearest-timestamp matching needs them sorted)."""
    if timestamps.size == 0:
        raise DatasetFormatError(f"{stamps_file}: no timestamps")
    if np.any(np.diff(timestamps) < 0):
        raise DatasetFormatError(f"{stamps_file}: timestamps are not sorted")


def read_png(path: Path) -> np.ndarray:
    """Pixel array of a PNG as stored (uint8 or uint16, (H, W) or (H, W, C)); unreadable files raise."""
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("I;16", "I;16B", "I;16L"):
                return np.asarray(image, dtype=np.uint16)
            if image.mode == "I":  # how older Pillow versions open 16-bit grayscale PNGs
                return np.asarray(image).astype(np.uint16)
            if image.mode in ("L", "RGB"):
                return np.asarray(image)
            if image.mode in ("LA", "RGBA", "P", "PA"):
                return np.asarray(image.convert("RGB"))
            raise DatasetFormatError(f"{path}: unsupported PNG mode {image.mode!r}")
    except OSError as err:
        raise DatasetFormatError(f"{path}: not a readable PNG ({err})") from err


def read_rgb(path: Path) -> np.ndarray:
    """uint8 (H, W, 3) image of an 8-bit PNG; grayscale gives 3 equal channels, like the reference's cv2.imread."""
    pixels = read_png(path)
    if pixels.dtype != np.uint8:
        raise DatasetFormatError(f"{path}: expected an 8-bit image, got {pixels.dtype}")
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=2)
    return np.ascontiguousarray(pixels)


def check_crop(size: tuple[int, ...], crop: tuple[int, int], path: Path) -> None:
    """Raise DatasetFormatError if an image of size (H, W) is smaller than the crop (h, w)."""
    if size[0] < crop[0] or size[1] < crop[1]:
        raise DatasetFormatError(f"{path}: size {size[0]}x{size[1]} is smaller than the crop {crop[0]}x{crop[1]}")


def read_seconds_table(path: Path) -> np.ndarray:
    """The float64 rows '<index> <seconds> ...' of a timestamps.txt (at least two columns); errors name the file."""
    if not path.is_file():
        raise MissingDataError(f"missing timestamps file {path} (rows '<index> <seconds>')")
    try:
        table = np.loadtxt(path, ndmin=2, dtype=np.float64)
    except ValueError as err:
        raise DatasetFormatError(f"{path}: not a numeric whitespace table ({err})") from err
    if table.size == 0 or table.shape[1] < 2:
        raise DatasetFormatError(f"{path}: expected rows of '<index> <seconds>', got an array of shape {table.shape}")
    return table
