"""Reader of the official DSEC train release (SPEC 7.2): left events, disparity ground truth as depth, images.

Per sequence `<root>/train/<seq>/`: `calibration/cam_to_cam.yaml`, `disparity/timestamps.txt` (int64 µs per
line) with `disparity/event/%06d.png` (16-bit, disparity * 256, 0 = invalid, even indices),
`events/left/events.h5` (events/{x, y, p, t}, ms_to_idx, t_offset; Blosc-compressed, hence `hdf5plugin`) and
`events/left/rectify_map.h5`; optionally `images/timestamps.txt` with `images/left/<folder>/%06d.png`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin  # noqa: F401  (registers the Blosc filter the event files are compressed with)
import numpy as np
import yaml

from dae_jax.data.readers import (
    DatasetFormatError,
    MissingDataError,
    check_counts,
    check_crop,
    check_sorted,
    read_png,
    read_rgb,
    require,
    sorted_files,
    split_folders,
)
from dae_jax.events.slicing import WINDOW_US, dsec_window, nearest_index

HEIGHT, WIDTH = 480, 640
CROP = (320, 640)

# Number of disparity maps per sequence (a sequence yields one example fewer: the first map is dropped).
VALIDATION_FRAMES: dict[str, int] = {
    "interlaken_00_f": 746,
    "interlaken_00_g": 668,
    "thun_00_a": 120,
    "zurich_city_05_a": 877,
    "zurich_city_05_b": 815,
    "zurich_city_06_a": 762,
    "zurich_city_07_a": 732,
    "zurich_city_08_a": 394,
    "zurich_city_09_d": 850,
    "zurich_city_10_b": 1203,
}
TRAIN_FRAMES: dict[str, int] = {
    "interlaken_00_c": 269,
    "interlaken_00_d": 996,
    "interlaken_00_e": 996,
    "zurich_city_00_a": 470,
    "zurich_city_00_b": 732,
    "zurich_city_01_a": 341,
    "zurich_city_01_b": 663,
    "zurich_city_01_c": 489,
    "zurich_city_01_d": 398,
    "zurich_city_01_e": 996,
    "zurich_city_01_f": 787,
    "zurich_city_02_a": 118,
    "zurich_city_02_b": 613,
    "zurich_city_02_c": 1442,
    "zurich_city_02_d": 922,
    "zurich_city_02_e": 923,
    "zurich_city_03_a": 442,
    "zurich_city_04_a": 351,
    "zurich_city_04_b": 135,
    "zurich_city_04_c": 591,
    "zurich_city_04_d": 479,
    "zurich_city_04_e": 135,
    "zurich_city_04_f": 430,
    "zurich_city_09_a": 907,
    "zurich_city_09_b": 184,
    "zurich_city_09_c": 662,
    "zurich_city_09_e": 409,
    "zurich_city_10_a": 1158,
    "zurich_city_11_a": 233,
    "zurich_city_11_b": 967,
    "zurich_city_11_c": 979,
}
EXPECTED_FRAMES: dict[str, int] = {**TRAIN_FRAMES, **VALIDATION_FRAMES}
SPLITS: dict[str, tuple[str, ...]] = {"train": tuple(TRAIN_FRAMES), "validation": tuple(VALIDATION_FRAMES)}

CALIBRATION = "calibration/cam_to_cam.yaml"
DISPARITY_STAMPS = "disparity/timestamps.txt"
DISPARITY_DIR = "disparity/event"
EVENTS = "events/left/events.h5"
RECTIFY_MAP = "events/left/rectify_map.h5"
IMAGE_STAMPS = "images/timestamps.txt"
EVENT_DATASETS = ("events/x", "events/y", "events/p", "events/t", "ms_to_idx", "t_offset")


def list_sequences(root: str | Path, split: str) -> list[Path]:
    """Sequence folders `<root>/train/<seq>` of `split` (train, or validation = the test set), in table order."""
    table = {name: tuple(f"train/{seq}" for seq in seqs) for name, seqs in SPLITS.items()}
    return split_folders(root, split, table, "DSEC")


def sequence_name(path: str | Path) -> str:
    """The sequence folder's name, e.g. 'zurich_city_00_a' (unique in the release)."""
    return Path(path).name


def num_frames(path: str | Path) -> int:
    """Number of examples read_sequence yields: the disparity maps minus the dropped first one."""
    return max(len(sorted_files(Path(path) / DISPARITY_DIR, "*.png")) - 1, 0)


def verify(root: str | Path, split: str) -> dict[str, int]:
    """Check each sequence of `split` has exactly the release's disparity maps (%06d.png, even indices 0..2N-2).

    Returns {sequence: disparity maps}; otherwise DatasetFormatError lists every sequence that differs.
    """
    counts, wrong = {}, []
    for path in list_sequences(root, split):
        expected = {f"{2 * i:06d}.png" for i in range(EXPECTED_FRAMES[path.name])}
        folder = path / DISPARITY_DIR
        found = {p.name for p in sorted_files(folder, "*.png")} if folder.is_dir() else set()
        counts[path.name] = len(found)
        if found != expected:
            wrong.append(
                f"{folder}: {len(found)} PNGs, expected {len(expected)} "
                f"({len(expected - found)} missing, {len(found - expected)} unexpected)"
            )
    if wrong:
        raise DatasetFormatError(f"DSEC {split!r} does not match the release: " + "; ".join(wrong))
    return counts


def read_focal_baseline(path: Path) -> float:
    """f * B from cam_to_cam.yaml's disparity_to_depth: cams_03 Q matrix: f = |Q[2][3]|, B = |1 / Q[3][2]|."""
    try:
        calibration = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise DatasetFormatError(f"{path}: not valid YAML ({err})") from err
    section = calibration.get("disparity_to_depth") if isinstance(calibration, dict) else None
    if not isinstance(section, dict) or "cams_03" not in section:
        raise DatasetFormatError(f"{path}: no field disparity_to_depth: cams_03 (the event cameras' 4x4 Q matrix)")
    try:
        q = np.asarray(section["cams_03"], dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise DatasetFormatError(f"{path}: disparity_to_depth: cams_03 is not a numeric matrix ({err})") from err
    if q.shape != (4, 4) or q[3, 2] == 0:
        raise DatasetFormatError(f"{path}: disparity_to_depth: cams_03 must be a 4x4 Q with Q[3][2] != 0")
    return float(abs(q[2, 3]) * abs(1.0 / q[3, 2]))


def disparity_to_depth(disparity_png: np.ndarray, focal_baseline: float) -> np.ndarray:
    """float32 depth (m) from a 16-bit disparity PNG: f*B / (value / 256), 0 where value = 0.

    This is the reference's arithmetic: disparity = float32(value) / 256, depth = float32(f*B) * (1 / disparity)
    in float32 (true division can differ by 1 ulp).
    """
    disparity = disparity_png.astype(np.float32) / np.float32(256.0)
    valid = disparity > 0
    depth = np.zeros(disparity.shape, np.float32)
    depth[valid] = np.float32(focal_baseline) * (np.float32(1.0) / disparity[valid])
    return depth


def read_timestamps_us(path: Path) -> np.ndarray:
    """int64 µs timestamps, one per line, checked to be sorted."""
    if not path.is_file():
        raise MissingDataError(f"missing timestamps file {path}")
    try:
        stamps = np.loadtxt(path, dtype=np.int64, ndmin=1)
    except ValueError as err:
        raise DatasetFormatError(f"{path}: expected one integer (µs) per line ({err})") from err
    if stamps.ndim != 1:
        raise DatasetFormatError(f"{path}: expected one integer (µs) per line, got a table of shape {stamps.shape}")
    check_sorted(stamps, path)
    return stamps


def _open_h5(path: Path) -> h5py.File:
    """Open an HDF5 file read-only; truncated or corrupt files raise DatasetFormatError naming the path."""
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise DatasetFormatError(f"{path}: not a readable HDF5 file (truncated or corrupt?): {err}") from err


def read_rectify_map(path: Path) -> np.ndarray:
    """The (480, 640, 2) float32 map rectify_map[y, x] = (x_rect, y_rect) of rectify_map.h5."""
    with _open_h5(path) as f:
        if not isinstance(f.get("rectify_map"), h5py.Dataset):
            raise DatasetFormatError(f"{path}: missing dataset 'rectify_map'")
        if f["rectify_map"].shape != (HEIGHT, WIDTH, 2):
            raise DatasetFormatError(
                f"{path}: dataset 'rectify_map' has shape {f['rectify_map'].shape}, expected {(HEIGHT, WIDTH, 2)}"
            )
        try:
            return np.asarray(f["rectify_map"], dtype=np.float32)
        except OSError as err:
            raise DatasetFormatError(f"{path}: cannot read 'rectify_map' (corrupt?): {err}") from err


def _check_events_layout(f: h5py.File, path: Path) -> None:
    """Raise DatasetFormatError unless events.h5 has the release's datasets with consistent shapes."""
    missing = [name for name in EVENT_DATASETS if not isinstance(f.get(name), h5py.Dataset)]
    if missing:
        raise DatasetFormatError(
            f"{path}: missing dataset(s) {', '.join(missing)} (expected {', '.join(EVENT_DATASETS)})"
        )
    lengths = {name: f[name].shape for name in EVENT_DATASETS[:4]}
    if len(set(lengths.values())) != 1 or len(lengths["events/t"]) != 1:
        raise DatasetFormatError(f"{path}: events/x, y, p, t must be 1-D of one length, got shapes {lengths}")
    if f["ms_to_idx"].ndim != 1 or f["t_offset"].size != 1:
        raise DatasetFormatError(
            f"{path}: expected 1-D ms_to_idx and a scalar t_offset, got {f['ms_to_idx'].shape}, {f['t_offset'].shape}"
        )


def read_sequence(
    path: str | Path,
    load_rgb: bool = False,
    image_folder: str = "rectified",
    crop: tuple[int, int] | None = CROP,
    window_us: int = WINDOW_US,
) -> Iterator[dict[str, Any]]:
    """Uniform examples of one sequence, one per disparity map after the first, in time order.

    Files and layouts are checked before iterating. Events are the left camera's in [t_ref - window_us, t_ref),
    rectified through rectify_map (float sub-pixel coordinates). `crop` is the reference's center crop (h, w) of
    the 480x640 frame (None: none): depth is cropped, events are shifted and those outside dropped, and the image
    is cropped when it is 480x640 (event-camera frame, e.g. the unofficial ev_inf); images of another size (the
    official 1080x1440 `rectified` frame camera) are returned whole. Images match disparity by nearest timestamp.
    """
    path = Path(path)
    box = None
    if crop is not None:
        check_crop((HEIGHT, WIDTH), crop, path / RECTIFY_MAP)
        box = (round((HEIGHT - crop[0]) / 2), round((WIDTH - crop[1]) / 2), crop[0], crop[1])
    require(path, [CALIBRATION, DISPARITY_STAMPS, DISPARITY_DIR, EVENTS, RECTIFY_MAP], "DSEC sequence")
    focal_baseline = read_focal_baseline(path / CALIBRATION)
    stamps = read_timestamps_us(path / DISPARITY_STAMPS)
    disparity_files = sorted_files(path / DISPARITY_DIR, "*.png")
    check_counts(disparity_files, stamps, path / DISPARITY_DIR, path / DISPARITY_STAMPS)
    if disparity_files[0].stem != "000000":
        raise DatasetFormatError(
            f"{path / DISPARITY_DIR}: the first disparity map is {disparity_files[0].name}, expected 000000.png"
        )
    stamps, disparity_files = stamps[1:], disparity_files[1:]
    rectify_map = read_rectify_map(path / RECTIFY_MAP)
    with _open_h5(path / EVENTS) as f:
        _check_events_layout(f, path / EVENTS)
    image_files: list[Path] = []
    image_index = np.zeros(0, np.intp)
    if load_rgb:
        require(path, [IMAGE_STAMPS, f"images/left/{image_folder}"], "DSEC sequence (images)")
        image_files = sorted_files(path / "images/left" / image_folder, "*.png")
        image_stamps = read_timestamps_us(path / IMAGE_STAMPS)
        check_counts(image_files, image_stamps, path / "images/left" / image_folder, path / IMAGE_STAMPS)
        image_index = nearest_index(image_stamps, stamps)
    return _iterate(
        path, stamps, disparity_files, focal_baseline, rectify_map, image_files, image_index, box, window_us
    )


def _iterate(
    path: Path,
    stamps: np.ndarray,
    disparity_files: list[Path],
    focal_baseline: float,
    rectify_map: np.ndarray,
    image_files: list[Path],
    image_index: np.ndarray,
    box: tuple[int, int, int, int] | None,
    window_us: int,
) -> Iterator[dict[str, Any]]:
    """Read, rectify and crop (box = top, left, height, width) frame by frame what read_sequence checked."""
    events_path = path / EVENTS
    with _open_h5(events_path) as f:
        x_ds, y_ds, p_ds, t_ds = (f[name] for name in EVENT_DATASETS[:4])
        try:
            ms_to_idx = np.asarray(f["ms_to_idx"], dtype=np.int64)
            t_offset = int(np.asarray(f["t_offset"]).reshape(-1)[0])
        except OSError as err:
            raise DatasetFormatError(f"{events_path}: cannot read ms_to_idx / t_offset (corrupt?): {err}") from err
        for i, (t_ref, disparity_file) in enumerate(zip(stamps.tolist(), disparity_files, strict=True)):
            try:
                window = dsec_window(t_ds, ms_to_idx, t_offset, t_ref - window_us, t_ref)
                x, y, p = x_ds[window], y_ds[window], p_ds[window]
                t = t_ds[window].astype(np.int64) + t_offset
            except OSError as err:
                raise DatasetFormatError(f"{events_path}: cannot read events (corrupt?): {err}") from err
            if x.size and (int(x.max()) >= WIDTH or int(y.max()) >= HEIGHT or int(p.max()) > 1):
                raise DatasetFormatError(
                    f"{events_path}: events before t={t_ref} µs out of range (x < {WIDTH}, y < {HEIGHT}, p in {{0, 1}})"
                )
            rectified = rectify_map[y.astype(np.intp), x.astype(np.intp)]
            xr, yr, p = rectified[:, 0], rectified[:, 1], p.astype(np.uint8)
            disparity = read_png(disparity_file)
            if disparity.dtype != np.uint16 or disparity.shape != (HEIGHT, WIDTH):
                raise DatasetFormatError(
                    f"{disparity_file}: expected a 16-bit {HEIGHT}x{WIDTH} PNG, got {disparity.dtype} {disparity.shape}"
                )
            depth = disparity_to_depth(disparity, focal_baseline)
            rgb = read_rgb(image_files[image_index[i]]) if image_files else None
            if box is not None:
                top, left, height, width = box
                xr, yr = xr - np.float32(left), yr - np.float32(top)
                inside = (xr >= 0) & (xr < width) & (yr >= 0) & (yr < height)
                xr, yr, p, t = xr[inside], yr[inside], p[inside], t[inside]
                depth = depth[top : top + height, left : left + width]
                if rgb is not None and rgb.shape[:2] == (HEIGHT, WIDTH):
                    rgb = rgb[top : top + height, left : left + width]
            yield {
                "sequence": path.name,
                "frame_index": i,
                "timestamp_us": np.int64(t_ref),
                "event_format": "events",
                "events": {
                    "x": np.ascontiguousarray(xr, dtype=np.float32),
                    "y": np.ascontiguousarray(yr, dtype=np.float32),
                    "p": np.ascontiguousarray(p),
                    "t": np.ascontiguousarray(t),
                },
                "rgb": None if rgb is None else np.ascontiguousarray(rgb),
                "depth": np.ascontiguousarray(depth),
            }
