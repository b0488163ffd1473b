"""Reader of EventScape, the CARLA dataset released with RAM-Net (Gehrig et al., RA-L 2021): raw events, RGB, depth.

Layout under `root` (one folder per release archive, named after it; see MANUAL_DOWNLOAD_INSTRUCTIONS):

    <root>/Town01-03_train/Town01/<sequence>/...   (also Town02/, Town03/)
    <root>/Town05_val/Town05/<sequence>/...
    <root>/Town05_test/Town05/<sequence>/...

where a sequence is any sub-folder of a town folder (names such as sequence_139 are not relied on). Per sequence,
with <p> a file prefix (town and sequence number, e.g. `05_139`; only the part after it is matched) and <i> the
frame index with at least four digits:

    depth/data/<p>_<i>_depth.npy       float z-depth in metres (CARLA: 1000 * normalised depth; 1000 = far plane)
    depth/data/timestamps.txt           rows "<index> <seconds>", one per frame
    events/data/<p>_<i>_events.npz      arrays x, y, t, p: the DVS events of the interval ending at frame i
    events/data/timestamps.txt          same rows as depth (plus boundary_timestamps.txt, not needed here)
    rgb/data/<p>_<i>_image.png          8-bit RGB frame, + timestamps.txt
    semantic/data/<p>_<i>_gt_labelIds.png, depth/frames/, events/frames/, vehicle_data/   (not read)

Conversions: timestamp_us = rint(seconds * 1e6). Depth metres = float32(value of the .npy file), NaN/inf and
values <= 0 set to 0 (invalid); the far plane (1000 m, sky) is kept. (RAM-Net's training target is the log depth
1 + ln(clip(d, 0, 1000) / 1000) / 5.70378 computed from these metres; it is not what the files store.) The unit of
the events' `t` is inferred per sequence from its magnitude against the frame clock (s, ms, µs or ns; CARLA's DVS
writes int64 ns) and rounded to the nearest µs (int64); polarity p > 0 becomes 1, else 0. Each example holds the
events of [t_ref - 50 ms, t_ref), gathered across event files, with t_ref the frame timestamp.

Provenance. From uzh-rpg/rpg_ramnet: the archives and splits (README.md), the file patterns and the
timestamps.txt format, depth read as metres clipped at 1000 (data_loader/dataset.py, event_dataset.py,
configs/*.json), and from its issues #2, #7, #10, #11: the archives unpack to Town0X folders and ship raw events
as events/data/*.npz, no voxel grids. The npz keys x, y, t, p come from third-party converters of the release.
Assumed: the unit of t (handled by inference), that file i holds the events since frame i - 1 (a margin of one
file on each side is read) and that the depth .npy holds metres in any float dtype, shaped (H, W) or (H, W, 1).
"""

from __future__ import annotations

import math
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from dae_jax.data.readers import (
    DatasetFormatError,
    MissingDataError,
    load_npy,
    qualified_name,
    read_rgb,
    read_seconds_table,
    require,
)
from dae_jax.events.slicing import WINDOW_US, window_indices

HEIGHT, WIDTH = 256, 512
EVENT_FORMAT = "events"
CLIP_DISTANCE_M = 1000.0
BASE_URL = "https://rpg.ifi.uzh.ch/data/RAM_Net/dataset"
PROJECT_PAGE = "https://rpg.ifi.uzh.ch/RAMNet.html"

DEPTH_DIR, EVENTS_DIR, RGB_DIR = "depth/data", "events/data", "rgb/data"
STAMPS = "timestamps.txt"
DEPTH_SUFFIX, EVENTS_SUFFIX, RGB_SUFFIX = "depth.npy", "events.npz", "image.png"
EVENT_KEYS = ("x", "y", "t", "p")
# Ticks per second of the units the events' t may be stored in: s, ms, µs, ns.
TIME_UNITS = (1.0, 1e3, 1e6, 1e9)
# An event file may hold events up to this far from its frame's timestamp before it counts as another clock.
CLOCK_SLACK_US = 1_000_000


class Split(NamedTuple):
    """One release archive: its folder name (the zip's stem), the towns it holds and the published sequence count."""

    folder: str
    towns: tuple[str, ...]
    num_sequences: int


SPLITS: dict[str, Split] = {
    "train": Split("Town01-03_train", ("Town01", "Town02", "Town03"), 536),
    "validation": Split("Town05_val", ("Town05",), 103),
    "test": Split("Town05_test", ("Town05",), 119),
}

MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
EventScape is not downloaded automatically. From the RAM-Net project page ({PROJECT_PAGE}) fetch the three
archives (about 71, 12 and 14 GB):

  {BASE_URL}/Town01-03_train.zip   (train: Town01, Town02, Town03; 536 sequences)
  {BASE_URL}/Town05_val.zip        (validation: Town05; 103 sequences)
  {BASE_URL}/Town05_test.zip       (test: Town05, other places than validation; 119 sequences)

Each archive unpacks to town folders (Town0X/<sequence>/...), and val and test both contain a Town05 folder,
so extract every archive into its own folder named after it:

  unzip Town01-03_train.zip -d <root>/Town01-03_train
  unzip Town05_val.zip      -d <root>/Town05_val
  unzip Town05_test.zip     -d <root>/Town05_test

giving <root>/Town01-03_train/Town01/<sequence>/{{depth,events,rgb,semantic}}/data/... and so on. If an archive
adds its own top folder, move its Town0X folders up so they sit directly under <root>/<archive name>/.
"""


def split_dir(root: str | Path, split: str) -> Path:
    """Folder of `split` under root (<root>/<archive name>); unknown splits list the valid ones."""
    if split not in SPLITS:
        raise ValueError(f"unknown EventScape split {split!r}; valid splits: {', '.join(SPLITS)}")
    root = Path(root)
    if not root.is_dir():
        raise MissingDataError(f"EventScape root {root} is not a directory\n{MANUAL_DOWNLOAD_INSTRUCTIONS}")
    folder = root / SPLITS[split].folder
    if not folder.is_dir():
        raise MissingDataError(
            f"missing EventScape split folder {folder} (expected towns {', '.join(SPLITS[split].towns)} in it)\n"
            f"{MANUAL_DOWNLOAD_INSTRUCTIONS}"
        )
    return folder


def _natural_key(name: str) -> list[Any]:
    """Sort key that orders embedded numbers by value (sequence_9 before sequence_10)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def list_sequences(root: str | Path, split: str) -> list[Path]:
    """Sequence folders of `split`, town by town, in natural name order; every expected town must be present."""
    folder = split_dir(root, split)
    require(folder, SPLITS[split].towns, f"EventScape split {split!r} folder")
    sequences = []
    for town in SPLITS[split].towns:
        found = [p for p in (folder / town).iterdir() if p.is_dir() and not p.name.startswith((".", "_"))]
        if not found:
            raise MissingDataError(f"no sequence folders in {folder / town}")
        sequences += sorted(found, key=lambda p: _natural_key(p.name))
    return sequences


def sequence_name(path: str | Path) -> str:
    """'<town>/<sequence>', e.g. 'Town05/sequence_139' (validation and test both have Town05, but distinct
    sequences)."""
    return qualified_name(path)


def read_timestamps(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(frame indices int64, seconds float64) of a timestamps.txt of rows '<index> <seconds>', strictly increasing."""
    table = read_seconds_table(path)
    indices, seconds = table[:, 0], table[:, 1]
    if np.any(indices != np.round(indices)) or len(np.unique(indices)) != len(indices):
        raise DatasetFormatError(f"{path}: column 0 must hold distinct integer frame indices")
    if not np.all(np.isfinite(seconds)) or np.any(np.diff(seconds) <= 0):
        raise DatasetFormatError(f"{path}: timestamps are not finite and strictly increasing")
    return indices.astype(np.int64), seconds


def _frame_files(folder: Path, suffix: str, indices: np.ndarray, stamps_file: Path) -> list[Path]:
    """The file '<prefix>_<index>_<suffix>' of each frame index, in the order of the timestamps file."""
    pattern = re.compile(rf"_(\d{{4,}})_{re.escape(suffix)}$")
    by_index: dict[int, Path] = {}
    for path in folder.iterdir():
        match = pattern.search(path.name)
        if match and path.is_file():
            index = int(match.group(1))
            if index in by_index:
                raise DatasetFormatError(f"{folder}: two files for frame {index}: {by_index[index].name}, {path.name}")
            by_index[index] = path
    if len(by_index) != len(indices):
        raise DatasetFormatError(
            f"{folder}: {len(by_index)} *_<index>_{suffix} files but {len(indices)} timestamps in {stamps_file}"
        )
    missing = [f"*_{i:04d}_{suffix}" for i in indices if int(i) not in by_index]
    if missing:
        raise MissingDataError(f"{folder}: missing {', '.join(missing[:5])} (indices from {stamps_file})")
    return [by_index[int(i)] for i in indices]


def _check_same_frames(
    indices: np.ndarray,
    seconds: np.ndarray,
    ref_indices: np.ndarray,
    ref_seconds: np.ndarray,
    stamps_file: Path,
    ref_file: Path,
) -> None:
    """Raise unless a modality's timestamps list the same frames at the same times (1 ms) as the depth maps'."""
    if len(indices) != len(ref_indices):
        raise DatasetFormatError(f"{stamps_file} has {len(indices)} frames but {ref_file} has {len(ref_indices)}")
    if np.any(indices != ref_indices) or np.max(np.abs(seconds - ref_seconds)) > 1e-3:
        raise DatasetFormatError(f"{stamps_file} and {ref_file} list different frame indices or times")


@dataclass(frozen=True)
class _Sequence:
    """The validated file lists of one sequence, frame by frame."""

    name: str
    seconds: np.ndarray
    timestamps_us: np.ndarray
    depth: list[Path]
    events: list[Path]
    rgb: list[Path] | None


def _open(path: str | Path, load_rgb: bool) -> _Sequence:
    """Check the folders, timestamps and per-frame files of a sequence folder (RGB only if load_rgb)."""
    path = Path(path)
    modalities = [(EVENTS_DIR, EVENTS_SUFFIX)] + ([(RGB_DIR, RGB_SUFFIX)] if load_rgb else [])
    require(path, [DEPTH_DIR] + [folder for folder, _ in modalities], "EventScape sequence")
    depth_stamps = path / DEPTH_DIR / STAMPS
    indices, seconds = read_timestamps(depth_stamps)
    files = {}
    for folder, suffix in modalities:
        stamps = path / folder / STAMPS
        _check_same_frames(*read_timestamps(stamps), indices, seconds, stamps, depth_stamps)
        files[folder] = _frame_files(path / folder, suffix, indices, stamps)
    return _Sequence(
        name=sequence_name(path),
        seconds=seconds,
        timestamps_us=np.rint(seconds * 1e6).astype(np.int64),
        depth=_frame_files(path / DEPTH_DIR, DEPTH_SUFFIX, indices, depth_stamps),
        events=files[EVENTS_DIR],
        rgb=files.get(RGB_DIR),
    )


def num_frames(path: str | Path) -> int:
    """Number of examples read_sequence yields: one per depth map (checked against the events' files and stamps)."""
    return len(_open(path, load_rgb=False).timestamps_us)


def verify(root: str | Path, split: str) -> dict[str, int]:
    """{sequence: frames} of `split` with every sequence's files checked; raises unless the release's count is there."""
    counts = {sequence_name(path): num_frames(path) for path in list_sequences(root, split)}
    expected = SPLITS[split].num_sequences
    if len(counts) != expected:
        raise DatasetFormatError(f"{split_dir(root, split)}: {len(counts)} sequences, the release has {expected}")
    return counts


def load_depth(path: Path) -> np.ndarray:
    """float32 (H, W) metres from a depth .npy; NaN, inf and values <= 0 become 0 (invalid)."""
    depth = load_npy(path)
    if depth.ndim == 3 and depth.shape[-1] == 1:
        depth = depth[..., 0]
    if depth.ndim != 2 or not np.issubdtype(depth.dtype, np.number):
        raise DatasetFormatError(f"{path}: expected a numeric (H, W) depth map, got {depth.dtype} {depth.shape}")
    depth = depth.astype(np.float32)
    depth[~(np.isfinite(depth) & (depth > 0))] = 0.0
    return depth


def load_raw_events(path: Path) -> dict[str, np.ndarray]:
    """The x, y, t, p arrays of an events .npz as stored (one-dimensional, equal lengths)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in EVENT_KEYS if k not in npz.files]
            if missing:
                raise DatasetFormatError(f"{path}: missing arrays {', '.join(missing)} (has {', '.join(npz.files)})")
            arrays = {k: npz[k] for k in EVENT_KEYS}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DatasetFormatError(f"{path}: not a readable .npz file ({err})") from err
    if any(a.ndim != 1 or len(a) != len(arrays["t"]) for a in arrays.values()):
        raise DatasetFormatError(f"{path}: x, y, t, p must be 1-D arrays of equal length")
    return arrays


def infer_time_unit(t: np.ndarray, frame_seconds: float, path: Path) -> float:
    """Ticks per second of event times t that end near a frame at `frame_seconds`, from their median magnitude."""
    ratio = float(np.median(t)) / frame_seconds
    if ratio > 0:
        unit = min(TIME_UNITS, key=lambda u: abs(math.log10(ratio / u)))
        if abs(math.log10(ratio / unit)) <= 0.5:
            return unit
    raise DatasetFormatError(
        f"{path}: event times (median {float(np.median(t))}) do not match the frame time {frame_seconds} s "
        "in seconds, ms, µs or ns"
    )


def events_to_us(t: np.ndarray, unit: float) -> np.ndarray:
    """Event times in `unit` ticks per second rounded to the nearest µs, int64 (exactly, for integer ns or µs)."""
    if np.issubdtype(t.dtype, np.integer) and unit >= 1e6:
        ticks = int(unit // 1e6)
        return (t.astype(np.int64) + ticks // 2) // ticks
    return np.rint(t.astype(np.float64) * (1e6 / unit)).astype(np.int64)


def read_sequence(path: str | Path, load_rgb: bool = True) -> Iterator[dict[str, Any]]:
    """Uniform examples of one sequence, one per frame in time order; folders and file lists are checked first.

    Each holds `sequence`, `frame_index` (position), `timestamp_us`, `event_format` ('events'), `events` (x, y
    float32, p uint8, t int64 µs in [t_ref - 50 ms, t_ref)), `rgb` (uint8 (H, W, 3) or None) and `depth`.
    """
    return _iterate(_open(path, load_rgb))


class _EventFiles:
    """The event files of a sequence, read once each while a window slides over them in time order."""

    def __init__(self, seq: _Sequence, shape: tuple[int, ...]):
        self.seq, self.shape = seq, shape
        self.unit: float | None = None
        self.cache: dict[int, dict[str, np.ndarray]] = {}
        stamps = seq.timestamps_us
        self.first_file = np.searchsorted(stamps, stamps - WINDOW_US, side="right")

    def window(self, i: int) -> dict[str, np.ndarray]:
        """Events with t_ref - 50 ms <= t < t_ref of frame i, from files first_file[i] - 1 .. i + 1 (margin one)."""
        lo, hi = max(int(self.first_file[i]) - 1, 0), min(i + 1, len(self.seq.events) - 1)
        for j in [j for j in self.cache if j < lo]:
            del self.cache[j]
        for j in range(lo, hi + 1):
            if j not in self.cache:
                self.cache[j] = self.load(j)
        merged = {k: np.concatenate([self.cache[j][k] for j in range(lo, hi + 1)]) for k in ("x", "y", "t", "p")}
        if np.any(np.diff(merged["t"]) < 0):
            order = np.argsort(merged["t"], kind="stable")
            merged = {k: v[order] for k, v in merged.items()}
        start, stop = window_indices(merged["t"], self.seq.timestamps_us[i])
        return {k: np.ascontiguousarray(v[start:stop]) for k, v in merged.items()}

    def load(self, j: int) -> dict[str, np.ndarray]:
        """Events of file j in the uniform dtypes, sorted by time, checked against the frame clock and image size.

        The first file with events at a positive frame time fixes the sequence's time unit; before that, integer
        times are taken as ns (CARLA) and float times as seconds.
        """
        seq, path = self.seq, self.seq.events[j]
        raw = load_raw_events(path)
        t = raw["t"]
        if t.size and self.unit is None and seq.seconds[j] > 0:
            self.unit = infer_time_unit(t, float(seq.seconds[j]), path)
        default = 1e9 if np.issubdtype(t.dtype, np.integer) else 1.0
        t_us = events_to_us(t, default if self.unit is None else self.unit)
        lower = seq.timestamps_us[j - 1] - CLOCK_SLACK_US if j > 0 else np.iinfo(np.int64).min
        if t_us.size and (t_us.max() > seq.timestamps_us[j] + CLOCK_SLACK_US or t_us.min() < lower):
            raise DatasetFormatError(f"{path}: event times lie far from frame {j}'s timestamp (not on the frame clock)")
        x, y = raw["x"].astype(np.float32), raw["y"].astype(np.float32)
        height, width = self.shape
        if x.size and (x.min() < 0 or y.min() < 0 or x.max() >= width or y.max() >= height):
            raise DatasetFormatError(f"{path}: event coordinates outside the {width}x{height} image")
        order = np.argsort(t_us, kind="stable")
        return {"x": x[order], "y": y[order], "t": t_us[order], "p": (raw["p"] > 0).astype(np.uint8)[order]}


def _iterate(seq: _Sequence) -> Iterator[dict[str, Any]]:
    """Load the frames of a checked sequence; the first depth map fixes the image size every file must have."""
    events: _EventFiles | None = None
    for i in range(len(seq.timestamps_us)):
        depth = load_depth(seq.depth[i])
        events = events or _EventFiles(seq, depth.shape)
        if depth.shape != events.shape:
            raise DatasetFormatError(f"{seq.depth[i]}: shape {depth.shape} differs from frame 0's {events.shape}")
        rgb = None
        if seq.rgb is not None:
            rgb = read_rgb(seq.rgb[i])
            if rgb.shape[:2] != depth.shape:
                raise DatasetFormatError(f"{seq.rgb[i]}: size {rgb.shape[:2]} differs from the depth's {depth.shape}")
        yield {
            "sequence": seq.name,
            "frame_index": i,
            "timestamp_us": np.int64(seq.timestamps_us[i]),
            "event_format": EVENT_FORMAT,
            "events": events.window(i),
            "rgb": rgb,
            "depth": depth,
        }
