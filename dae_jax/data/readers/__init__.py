"""Format-level readers of the real datasets (MVSEC E2Depth release, official DSEC train release).

`mvsec` and `dsec` each offer `list_sequences(root, split)`, `read_sequence(path, ...)` (an iterator of
uniform examples, see below), `num_frames(path)` and `verify(root, split)`. They know the on-disk formats and
nothing downstream; this module holds what they share: the error types, split lookup and PNG reading.

An example is a dict: `sequence` (str), `frame_index` (int, position in the sequence), `timestamp_us`
(int64 reference time), `event_format` ("events" or "voxels") with either `events` (dict x, y float32; p
uint8 in {0, 1}; t int64 absolute µs: the window [t_ref - 50 ms, t_ref)) or `voxels` (float32 (C, H, W)),
`rgb` (uint8 (H, W, 3) or None) and `depth` (float32 (H, W) metres, 0 = invalid, or None).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image


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
