"""Reader of the MVSEC E2Depth processed release (SPEC 7.1): voxel grids, depth .npy maps and DAVIS frames.

Per sequence folder: `depth/data/depth_%010d.npy` + `timestamps.txt`, `events/voxels/event_tensor_%010d.npy`
+ `timestamps.txt` and `rgb/davis/` (train, validation) or `rgb/davis_left_sync/` (test) `frame_%010d.png` +
`timestamps.txt`. Timestamp files are whitespace tables whose column 1 is the time in seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from dae_jax.data.readers import (
    DatasetFormatError,
    check_counts,
    check_crop,
    check_sorted,
    load_npy,
    qualified_name,
    read_rgb,
    read_seconds_table,
    require,
    sorted_files,
    split_folders,
)
from dae_jax.events.slicing import nearest_index

HEIGHT, WIDTH = 260, 346
CROP = (HEIGHT, WIDTH)

SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("train/mvsec_dataset_day2/train", "train/mvsec_dataset_day2/validation"),
    "validation": ("train/mvsec_dataset_day2/test",),
    "test": (
        "test/mvsec_outdoor_day1",
        "test/mvsec_outdoor_night1",
        "test/mvsec_outdoor_night2",
        "test/mvsec_outdoor_night3",
    ),
}
# Expected number of depth maps (and voxel grids) per sequence folder, as the reference's validator checks them.
EXPECTED_FILES: dict[str, int] = {
    "train/mvsec_dataset_day2/train": 8524,
    "train/mvsec_dataset_day2/validation": 1827,
    "train/mvsec_dataset_day2/test": 1827,
    "test/mvsec_outdoor_day1": 5125,
    "test/mvsec_outdoor_night1": 5111,
    "test/mvsec_outdoor_night2": 5478,
    "test/mvsec_outdoor_night3": 5411,
}

DEPTH_DIR = "depth/data"
VOXEL_DIR = "events/voxels"
STAMPS = "timestamps.txt"


def list_sequences(root: str | Path, split: str) -> list[Path]:
    """Sequence folders of `split` (train, validation or test) under the release root, in table order."""
    return split_folders(root, split, SPLITS, "MVSEC")


def sequence_name(path: str | Path) -> str:
    """'<parent>/<folder>', e.g. 'mvsec_dataset_day2/train': unique across splits, unlike the folder name alone."""
    return qualified_name(path)


def default_rgb_folder(path: str | Path) -> str:
    """The reference's image folder: davis_left_sync for the test split (sequences under <root>/test/), else davis."""
    return "davis_left_sync" if Path(path).parent.name == "test" else "davis"


def read_timestamps_us(path: Path) -> np.ndarray:
    """int64 µs from column 1 (seconds) of a timestamps table, as float64(seconds) * 1e6 truncated (SPEC 7.5)."""
    table = read_seconds_table(path)
    stamps = (table[:, 1] * 1e6).astype(np.int64)
    check_sorted(stamps, path)
    return stamps


def _stream(folder: Path, pattern: str) -> tuple[list[Path], np.ndarray]:
    """Sorted data files of a folder and their timestamps, checked to be one per file."""
    files = sorted_files(folder, pattern)
    stamps = read_timestamps_us(folder / STAMPS)
    check_counts(files, stamps, folder, folder / STAMPS)
    return files, stamps


def num_frames(path: str | Path) -> int:
    """Number of examples read_sequence yields: one per voxel grid."""
    return len(sorted_files(Path(path) / VOXEL_DIR, "event_tensor_*.npy"))


def verify(root: str | Path, split: str) -> dict[str, int]:
    """Check the release's file counts for `split`, as the reference's validator does; returns {folder: depth maps}.

    Like the reference, a sequence passes when depth_%010d.npy and event_tensor_%010d.npy exist for every index
    below EXPECTED_FILES; otherwise DatasetFormatError lists every sequence that falls short.
    """
    counts, wrong = {}, []
    for path in list_sequences(root, split):
        rel = path.relative_to(Path(root)).as_posix()
        expected = EXPECTED_FILES[rel]
        for folder, prefix in ((DEPTH_DIR, "depth"), (VOXEL_DIR, "event_tensor")):
            files = sorted_files(path / folder, f"{prefix}_*.npy") if (path / folder).is_dir() else []
            names = {p.name for p in files}
            absent = sum(f"{prefix}_{i:010d}.npy" not in names for i in range(expected))
            if absent:
                wrong.append(f"{path / folder}: {absent} of {prefix}_0000000000..{expected - 1:010d}.npy missing")
            if folder == DEPTH_DIR:
                counts[rel] = len(files)
    if wrong:
        raise DatasetFormatError(f"MVSEC {split!r} does not match the release: " + "; ".join(wrong))
    return counts


def _load_npy(path: Path, ndim: int) -> np.ndarray:
    """float32 array of an .npy file with `ndim` dimensions; unreadable files raise DatasetFormatError."""
    array = load_npy(path)
    if array.ndim != ndim:
        raise DatasetFormatError(f"{path}: expected {ndim} dimensions, got shape {array.shape}")
    return array.astype(np.float32)


def read_sequence(
    path: str | Path,
    load_rgb: bool = True,
    rgb_folder: str | None = None,
    crop: tuple[int, int] | None = CROP,
) -> Iterator[dict[str, Any]]:
    """Uniform examples of one sequence, one per voxel grid, in time order; files are checked before iterating.

    Voxel i pairs with depth i, or with the nearest-timestamp depth map when the counts differ; the frame's
    timestamp is that depth map's, and the image is the one nearest to it. Depth NaN/inf become 0. `crop` is the
    reference's top-left crop (h, w) of voxels, depth and image (None: no crop). `rgb_folder` defaults to
    default_rgb_folder(path).
    """
    path = Path(path)
    require(path, [DEPTH_DIR, VOXEL_DIR], "MVSEC sequence")
    depth_files, depth_us = _stream(path / DEPTH_DIR, "depth_*.npy")
    voxel_files, voxel_us = _stream(path / VOXEL_DIR, "event_tensor_*.npy")
    if len(voxel_files) == len(depth_files):
        depth_index = np.arange(len(depth_files))
    else:
        depth_index = nearest_index(depth_us, voxel_us)
    frame_us = depth_us[depth_index]
    rgb_files: list[Path] = []
    rgb_index = np.zeros(0, np.intp)
    if load_rgb:
        folder = path / "rgb" / (rgb_folder or default_rgb_folder(path))
        rgb_files, rgb_us = _stream(folder, "frame_*.png")
        rgb_index = nearest_index(rgb_us, frame_us)
    return _iterate(path, voxel_files, [depth_files[i] for i in depth_index], frame_us, rgb_files, rgb_index, crop)


def _iterate(
    path: Path,
    voxel_files: list[Path],
    depth_files: list[Path],
    frame_us: np.ndarray,
    rgb_files: list[Path],
    rgb_index: np.ndarray,
    crop: tuple[int, int] | None,
) -> Iterator[dict[str, Any]]:
    """Load and crop the paired files of read_sequence frame by frame."""
    name = sequence_name(path)
    for i, (voxel_file, depth_file) in enumerate(zip(voxel_files, depth_files, strict=True)):
        voxels = _load_npy(voxel_file, 3)
        depth = _load_npy(depth_file, 2)
        depth[~np.isfinite(depth)] = 0.0
        rgb = read_rgb(rgb_files[rgb_index[i]]) if rgb_files else None
        if crop is not None:
            check_crop(voxels.shape[1:], crop, voxel_file)
            check_crop(depth.shape, crop, depth_file)
            voxels, depth = voxels[:, : crop[0], : crop[1]], depth[: crop[0], : crop[1]]
            if rgb is not None:
                check_crop(rgb.shape[:2], crop, rgb_files[rgb_index[i]])
                rgb = rgb[: crop[0], : crop[1]]
        yield {
            "sequence": name,
            "frame_index": i,
            "timestamp_us": np.int64(frame_us[i]),
            "event_format": "voxels",
            "voxels": np.ascontiguousarray(voxels),
            "rgb": None if rgb is None else np.ascontiguousarray(rgb),
            "depth": np.ascontiguousarray(depth),
        }
