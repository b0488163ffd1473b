"""Miniature MVSEC (E2Depth release) and DSEC (official train release) sequences in their exact on-disk formats.

Same file and folder names, HDF5 dataset names, dtypes, compression and PNG bit depths as the releases, with
small sizes; each writer returns the arrays it wrote so tests can compare against brute-force computations.

DSEC events.h5: every dataset but the scalar t_offset uses HDF5 filter 32001 (Blosc) with the zstd codec (h5dump
of a release file in uzh-rpg/DSEC issue #42; the maintainer confirms Blosc + ZSTD there and in issue #18). The
level and shuffle are not documented: we use clevel 1 with byte shuffle (uzh-rpg's usual `_blosc_opts` defaults)
and h5py's automatic chunking. Dtypes follow the DSEC README and issue #3 (x, y uint16).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import hdf5plugin
import numpy as np
import yaml
from PIL import Image

BLOSC_ZSTD = hdf5plugin.Blosc(cname="zstd", clevel=1, shuffle=hdf5plugin.Blosc.SHUFFLE)

MVSEC_SHAPE = (260, 346)
MVSEC_START_NS = 1_504_645_177_421_093_750  # a day2-like ROS time in nanoseconds
DSEC_SHAPE = (480, 640)
DSEC_T_OFFSET = 49_599_300_523  # µs, the magnitude of a release's t_offset
# Rectified event-camera intrinsics and baseline close to a release's cams_03 Q matrix.
DSEC_F, DSEC_CX, DSEC_CY, DSEC_BASELINE = 569.7632987676102, 335.0999870300293, 221.23667526245117, 0.5999817
# Raw left event camera (cam0): [fx, fy, cx, cy], radtan [k1, k2, p1, p2], and its rectifying rotation R_rect0.
DSEC_CAM0 = [553.4686750102932, 553.3994078799127, 319.40585293125274, 237.58089816423463]
DSEC_DISTORTION = [-0.09356476362537607, 0.19445779814646236, 7.642434250503745e-05, 0.0007044]
DSEC_R_RECT0 = [
    [0.9999785, -0.0012515, 0.0064250],
    [0.0012572, 0.9999988, -0.0008859],
    [-0.0064239, 0.0008940, 0.9999790],
]


def seconds_text(ns: int) -> str:
    """Seconds with nine decimals (the nanoseconds of a ROS stamp)."""
    return f"{ns // 10**9}.{ns % 10**9:09d}"


def reference_us(ns: int) -> int:
    """The reference's conversion of a seconds string: float64 * 1e6 truncated to int64."""
    return int(np.int64(np.float64(seconds_text(ns)) * 1e6))


def write_timestamps_table(path: Path, ns: list[int]) -> list[int]:
    """E2Depth timestamps.txt ('index seconds' per line); returns the µs the reference reads from it."""
    path.write_text("".join(f"{i} {seconds_text(v)}\n" for i, v in enumerate(ns)))
    return [reference_us(v) for v in ns]


def write_png(path: Path, pixels: np.ndarray) -> None:
    """PNG of uint8 (H, W) grayscale, uint8 (H, W, 3) RGB or uint16 (H, W) 16-bit grayscale pixels."""
    image = Image.fromarray(pixels)
    assert (
        image.mode == {(np.uint8, 2): "L", (np.uint8, 3): "RGB", (np.uint16, 2): "I;16"}[pixels.dtype.type, pixels.ndim]
    )
    image.save(path, compress_level=1)


def png_bit_depth(path: Path) -> int:
    """Bit depth byte of a PNG's IHDR chunk."""
    return Path(path).read_bytes()[24]


def _tie_ns(before_ns: int, center_ns: int) -> int:
    """A stamp after center_ns whose reference µs is exactly as far from center_ns's as before_ns's."""
    after = 2 * center_ns - before_ns
    for _ in range(10):
        gap = 2 * reference_us(center_ns) - reference_us(before_ns) - reference_us(after)
        if gap == 0:
            return after
        after += 1000 * gap
    raise AssertionError("could not build a timestamp tie")


def write_mvsec_sequence(
    seq_dir: Path,
    num_depth: int = 6,
    num_voxels: int | None = None,
    num_rgb: int = 9,
    rgb_folder: str = "davis",
    seed: int = 0,
) -> dict[str, Any]:
    """One E2Depth-release sequence: depth/data, events/voxels and rgb/<rgb_folder> with their timestamps.

    Depth at ~20 Hz (float32 260x346 with NaN and inf holes), voxel grids float32 (5, 260, 346) synchronised with
    depth, or when num_voxels = num_depth - 1 stamped near depth frames 1.. (the counts differ); grayscale 8-bit
    DAVIS frames at ~31 Hz, one of them at an exact timestamp tie with depth frame 2.
    """
    rng = np.random.default_rng(seed)
    h, w = MVSEC_SHAPE
    depth_ns = [MVSEC_START_NS + k * 50_000_000 + int(rng.integers(-400_000, 400_000)) for k in range(num_depth)]
    num_voxels = num_depth if num_voxels is None else num_voxels
    if num_voxels == num_depth:
        voxel_ns = list(depth_ns)
    else:
        voxel_ns = [depth_ns[k + 1] + int(rng.integers(-3_000_000, 3_000_000)) for k in range(num_voxels)]
    rgb_ns = [depth_ns[0] - 20_000_000 + k * 31_000_000 + int(rng.integers(-500_000, 500_000)) for k in range(num_rgb)]
    below = max(k for k in range(num_rgb) if rgb_ns[k] < depth_ns[2])
    rgb_ns[below + 1] = _tie_ns(rgb_ns[below], depth_ns[2])
    assert rgb_ns == sorted(rgb_ns)

    depth_dir, voxel_dir, rgb_dir = seq_dir / "depth/data", seq_dir / "events/voxels", seq_dir / "rgb" / rgb_folder
    for folder in (depth_dir, voxel_dir, rgb_dir):
        folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {
        "depth_us": write_timestamps_table(depth_dir / "timestamps.txt", depth_ns),
        "voxel_us": write_timestamps_table(voxel_dir / "timestamps.txt", voxel_ns),
        "rgb_us": write_timestamps_table(rgb_dir / "timestamps.txt", rgb_ns),
        "rgb_tie": (below, 2),
        "depth": [],
        "voxels": [],
        "rgb": [],
    }
    rows, cols = np.mgrid[0:h, 0:w]
    for k in range(num_depth):
        depth = (4.0 + 60.0 * rng.random((h, w))).astype(np.float32)
        depth[: 40 + 10 * k] = np.nan  # sky: no LiDAR return
        depth[rng.random((h, w)) < 0.05] = np.nan
        depth[h - 1, w - 1 - k] = np.inf
        np.save(depth_dir / f"depth_{k:010d}.npy", depth)
        out["depth"].append(depth)
    for k in range(num_voxels):
        voxels = rng.standard_normal((5, h, w)).astype(np.float32)
        voxels[rng.random((5, h, w)) < 0.8] = 0.0
        np.save(voxel_dir / f"event_tensor_{k:010d}.npy", voxels)
        out["voxels"].append(voxels)
    for k in range(num_rgb):
        frame = ((rows + 2 * cols + 17 * k) % 256).astype(np.uint8)
        write_png(rgb_dir / f"frame_{k:010d}.png", frame)
        out["rgb"].append(frame)
    return out


def dsec_q_matrix() -> list[list[float]]:
    """A cams_03 Q matrix as in a release's cam_to_cam.yaml (f = Q[2][3], B = 1 / Q[3][2])."""
    return [
        [1.0, 0.0, 0.0, -DSEC_CX],
        [0.0, 1.0, 0.0, -DSEC_CY],
        [0.0, 0.0, 0.0, DSEC_F],
        [0.0, 0.0, 1.0 / DSEC_BASELINE, -0.0],
    ]


def write_cam_to_cam(path: Path, with_cams_03: bool = True) -> None:
    """calibration/cam_to_cam.yaml with intrinsics, extrinsics and disparity_to_depth (cams_03, cams_12)."""
    calibration = {
        "intrinsics": {
            "cam0": {
                "camera_matrix": DSEC_CAM0,
                "distortion_coeffs": DSEC_DISTORTION,
                "distortion_model": "radtan",
                "resolution": [640, 480],
            },
            "camRect0": {"camera_matrix": [DSEC_F, DSEC_F, DSEC_CX, DSEC_CY], "resolution": [640, 480]},
        },
        "extrinsics": {"R_rect0": DSEC_R_RECT0},
        "disparity_to_depth": {
            "cams_03": dsec_q_matrix(),
            "cams_12": [
                [1.0, 0.0, 0.0, -718.0],
                [0.0, 1.0, 0.0, -541.0],
                [0.0, 0.0, 0.0, 1150.0],
                [0.0, 0.0, 1.7, 0.0],
            ],
        },
    }
    if not with_cams_03:
        del calibration["disparity_to_depth"]["cams_03"]
    path.write_text(yaml.safe_dump(calibration, default_flow_style=None, sort_keys=False))


def dsec_rectify_map() -> np.ndarray:
    """(480, 640, 2) float32 map raw (y, x) -> rectified (x, y): radtan undistortion, rectifying rotation, K_rect."""
    fx, fy, cx, cy = DSEC_CAM0
    k1, k2, p1, p2 = DSEC_DISTORTION
    rotation = np.array(DSEC_R_RECT0)
    v, u = np.mgrid[0 : DSEC_SHAPE[0], 0 : DSEC_SHAPE[1]].astype(np.float64)
    xd, yd = (u - cx) / fx, (v - cy) / fy
    x, y = xd.copy(), yd.copy()
    for _ in range(20):
        r2 = x * x + y * y
        radial = 1 + k1 * r2 + k2 * r2 * r2
        x = (xd - (2 * p1 * x * y + p2 * (r2 + 2 * x * x))) / radial
        y = (yd - (p1 * (r2 + 2 * y * y) + 2 * p2 * x * y)) / radial
    ray = np.stack([x, y, np.ones_like(x)], axis=-1) @ rotation.T
    x_rect = DSEC_F * ray[..., 0] / ray[..., 2] + DSEC_CX
    y_rect = DSEC_F * ray[..., 1] / ray[..., 2] + DSEC_CY
    return np.stack([x_rect, y_rect], axis=-1).astype(np.float32)


def write_rectify_map(path: Path, rectify_map: np.ndarray) -> None:
    """rectify_map.h5 with the single dataset 'rectify_map'."""
    with h5py.File(path, "w") as f:
        f.create_dataset("rectify_map", data=rectify_map)


def ms_to_idx_of(t: np.ndarray) -> np.ndarray:
    """uint64 index of the first event with t >= ms * 1000, for every ms up to the last event's."""
    return np.searchsorted(t, np.arange(int(t[-1]) // 1000 + 1, dtype=np.int64) * 1000, side="left").astype(np.uint64)


def write_events_h5(
    path: Path, x: np.ndarray, y: np.ndarray, p: np.ndarray, t: np.ndarray, t_offset: int, skip: tuple[str, ...] = ()
) -> None:
    """events.h5 in the release layout (datasets named in `skip` are left out, to build broken files)."""
    datasets = {
        "events/x": x.astype(np.uint16),
        "events/y": y.astype(np.uint16),
        "events/p": p.astype(np.uint8),
        "events/t": t.astype(np.uint32),
        "ms_to_idx": ms_to_idx_of(t),
    }
    with h5py.File(path, "w") as f:
        for name, data in datasets.items():
            if name not in skip:
                f.create_dataset(name, data=data, chunks=True, **BLOSC_ZSTD)
        if "t_offset" not in skip:
            f.create_dataset("t_offset", data=np.int64(t_offset))


def write_dsec_sequence(
    seq_dir: Path,
    num_disparity: int = 6,
    num_events: int = 50_000,
    image_folders: dict[str, tuple[int, int]] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """One official-train-release sequence: calibration, disparity (10 Hz, even indices), left events, images.

    Events: uniform in time over the sequence plus events placed exactly on every window edge. Disparity: sparse
    16-bit maps (~30 % valid). Images (20 Hz, 2N - 1 of them, disparity k at image 2k) go in each of
    `image_folders` {name: (H, W)}; disparity stamp 2 sits at an exact tie between images 3 and 4 (`rgb_tie`).
    """
    rng = np.random.default_rng(seed)
    image_folders = {"rectified": (1080, 1440)} if image_folders is None else image_folders
    h, w = DSEC_SHAPE
    image_us = [
        DSEC_T_OFFSET + 40_000 + 50_000 * j + int(rng.integers(-300, 300)) for j in range(2 * num_disparity - 1)
    ]
    disparity_us = [image_us[2 * k] + int(rng.integers(-2_000, 2_000)) for k in range(num_disparity)]
    image_us[3] = image_us[4] - 20_000
    disparity_us[2] = (image_us[3] + image_us[4]) // 2
    image_us[4] = 2 * disparity_us[2] - image_us[3]

    relative = np.array(disparity_us, dtype=np.int64) - DSEC_T_OFFSET
    edges = np.concatenate([relative - 50_000, relative - 50_001, relative - 1, relative])
    end = int(relative[-1]) + 20_000
    t = np.sort(np.concatenate([rng.integers(0, end, num_events - edges.size), edges[edges >= 0]]))
    x = rng.integers(0, w, t.size)
    y = rng.integers(0, h, t.size)
    p = rng.integers(0, 2, t.size)

    for sub in ("calibration", "disparity/event", "disparity/image", "events/left"):
        (seq_dir / sub).mkdir(parents=True, exist_ok=True)
    write_cam_to_cam(seq_dir / "calibration/cam_to_cam.yaml")
    (seq_dir / "calibration/cam_to_lidar.yaml").write_text("T_lidar_camRect1:\n- [1.0, 0.0, 0.0, 0.0]\n")
    (seq_dir / "disparity/timestamps.txt").write_text("".join(f"{v}\n" for v in disparity_us))
    rectify_map = dsec_rectify_map()
    write_rectify_map(seq_dir / "events/left/rectify_map.h5", rectify_map)
    write_events_h5(seq_dir / "events/left/events.h5", x, y, p, t, DSEC_T_OFFSET)

    disparity = []
    for k in range(num_disparity):
        values = rng.integers(1, 80 * 256, (h, w)).astype(np.uint16)
        values[rng.random((h, w)) < 0.7] = 0
        values[0, :4] = [1, 2, 3, 65535]
        for folder in ("event", "image"):
            write_png(seq_dir / f"disparity/{folder}/{2 * k:06d}.png", values)
        disparity.append(values)

    images: dict[str, list[np.ndarray]] = {}
    if image_folders:
        (seq_dir / "images").mkdir(exist_ok=True)
        (seq_dir / "images/timestamps.txt").write_text("".join(f"{v}\n" for v in image_us))
    for folder, (ih, iw) in image_folders.items():
        (seq_dir / "images/left" / folder).mkdir(parents=True, exist_ok=True)
        rows, cols = np.mgrid[0:ih, 0:iw]
        images[folder] = []
        for j in range(len(image_us)):
            frame = np.stack([(rows + 11 * j) % 256, (cols + 7 * j) % 256, np.full_like(rows, j)], -1).astype(np.uint8)
            write_png(seq_dir / "images/left" / folder / f"{j:06d}.png", frame)
            images[folder].append(frame)
    if image_folders:
        exposure = "".join(f"{v - 2_500}, {v + 2_500}\n" for v in image_us)
        (seq_dir / "images/left/exposure_timestamps.txt").write_text(
            "# exposure_start_timestamp_us, exposure_end_timestamp_us\n" + exposure
        )
    return {
        "x": x.astype(np.uint16),
        "y": y.astype(np.uint16),
        "p": p.astype(np.uint8),
        "t": t.astype(np.uint32),
        "t_offset": DSEC_T_OFFSET,
        "rectify_map": rectify_map,
        "disparity_us": disparity_us,
        "disparity": disparity,
        "focal_baseline": DSEC_F * DSEC_BASELINE,
        "image_us": image_us,
        "images": images,
        "rgb_tie": (3, 2),
    }
