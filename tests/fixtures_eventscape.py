"""Miniature EventScape sequences in the release layout, for the reader tests (see dae_jax/data/readers/eventscape).

Per sequence `<split folder>/<town>/sequence_<n>/`: `{depth,events,rgb,semantic}/data/<p>_<iiii>_<suffix>` with
<p> = '<town number>_<n:03d>' (e.g. 05_139), `timestamps.txt` rows '<index> <seconds>' in each folder and
`events/data/boundary_timestamps.txt` rows '<index> <start s> <end s>'. Depth is float32 metres with the sky at the
1000 m far plane, one NaN pixel and one 0 pixel; RGB is 8-bit RGB with the frame index in pixel (0, 0);
events are CARLA DVS arrays (x, y uint16, t int64 ns, p bool) in pixel-scan order, file i holding the events of
(t_{i-1}, t_i] and file 0 none. Frames are 40 ms apart, so a 50 ms window spans two event files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

HEIGHT, WIDTH = 16, 32
START_S, PERIOD_S = 12.35, 0.04
SKY_M = 1000.0


def prefix(town: str, sequence: str) -> str:
    """File prefix of a sequence: town number and zero-padded sequence number, e.g. '05_139'."""
    return f"{town.removeprefix('Town')}_{int(sequence.rsplit('_', 1)[1]):03d}"


def write_timestamps(path: Path, seconds: np.ndarray) -> None:
    """A timestamps.txt of rows '<index> <seconds>'."""
    path.write_text("".join(f"{i} {s:.6f}\n" for i, s in enumerate(seconds)))


def make_events(rng: np.random.Generator, seconds: np.ndarray) -> list[dict[str, np.ndarray]]:
    """Per-frame CARLA-style event arrays: file i has the events of (t_{i-1}, t_i] in ns, unsorted; file 0 none.

    Every file also holds an event exactly at its frame time, and one exactly 50 ms before the next frame, to
    exercise both window edges.
    """
    stamps_ns = np.rint(seconds * 1e9).astype(np.int64)
    files = [{"x": np.zeros(0, np.uint16), "y": np.zeros(0, np.uint16), "t": np.zeros(0, np.int64),
              "p": np.zeros(0, bool)}]
    for i in range(1, len(stamps_ns)):
        n = int(rng.integers(20, 60))
        t = rng.integers(stamps_ns[i - 1] + 1, stamps_ns[i] + 1, n)
        edges = [stamps_ns[i]] + ([stamps_ns[i + 1] - 50_000_000] if i + 1 < len(stamps_ns) else [])
        t = np.concatenate([t, edges])
        t[t % 1000 == 500] += 1  # no half-µs ties, so µs rounding agrees whatever unit t is stored in
        files.append({
            "x": rng.integers(0, WIDTH, len(t)).astype(np.uint16),
            "y": rng.integers(0, HEIGHT, len(t)).astype(np.uint16),
            "t": t.astype(np.int64),
            "p": rng.random(len(t)) < 0.5,
        })
    return files


def make_depth(rng: np.random.Generator) -> np.ndarray:
    """float32 metres: a near field, the sky at the far plane in the top rows, one NaN and one 0 pixel."""
    depth = rng.uniform(2.0, 200.0, (HEIGHT, WIDTH)).astype(np.float32)
    depth[:3] = SKY_M
    depth[5, 7] = np.nan
    depth[6, 8] = 0.0
    return depth


def write_sequence(split_dir: Path, town: str = "Town05", sequence: str = "sequence_139", num_frames: int = 6,
                   seed: int = 0, event_time: str = "ns") -> dict[str, Any]:
    """Write one sequence; returns its path, seconds, rgb and depth arrays and the event arrays as written.

    `event_time` stores t as 'ns' (int64, CARLA), 'us' (int64) or 's' (float64) to test the unit inference.
    """
    rng = np.random.default_rng(seed)
    path = split_dir / town / sequence
    seconds = START_S + PERIOD_S * np.arange(num_frames)
    name = prefix(town, sequence)
    for folder in ("depth/data", "events/data", "rgb/data", "semantic/data"):
        (path / folder).mkdir(parents=True)
        write_timestamps(path / folder / "timestamps.txt", seconds)
    bounds = np.concatenate([[seconds[0]], seconds])
    (path / "events/data/boundary_timestamps.txt").write_text(
        "".join(f"{i} {bounds[i]:.6f} {bounds[i + 1]:.6f}\n" for i in range(num_frames)))
    events = make_events(rng, seconds)
    rgbs, depths = [], []
    for i in range(num_frames):
        rgb = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
        rgb[0, 0] = i
        Image.fromarray(rgb).save(path / "rgb/data" / f"{name}_{i:04d}_image.png")
        depth = make_depth(rng)
        np.save(path / "depth/data" / f"{name}_{i:04d}_depth.npy", depth)
        labels = rng.integers(0, 23, (HEIGHT, WIDTH), dtype=np.uint8)
        Image.fromarray(np.repeat(labels[..., None], 3, axis=2)).save(
            path / "semantic/data" / f"{name}_{i:04d}_gt_labelIds.png")
        stored = dict(events[i])
        if event_time == "us":
            stored["t"] = (stored["t"] + 500) // 1000
        elif event_time == "s":
            stored["t"] = stored["t"] / 1e9
        np.savez(path / "events/data" / f"{name}_{i:04d}_events.npz", **stored)
        rgbs.append(rgb)
        depths.append(depth)
    return {"path": path, "seconds": seconds, "rgb": rgbs, "depth": depths, "events": events}


def write_root(root: Path, num_frames: int = 3) -> dict[str, list[Path]]:
    """A root with all three split folders: train Town01-03 (Town01 has sequence_2 and sequence_10),
    validation, test."""
    layout = {
        "train": ("Town01-03_train", [("Town01", "sequence_10"), ("Town01", "sequence_2"), ("Town02", "sequence_0"),
                                      ("Town03", "sequence_5")]),
        "validation": ("Town05_val", [("Town05", "sequence_1")]),
        "test": ("Town05_test", [("Town05", "sequence_3")]),
    }
    written = {}
    for split, (folder, sequences) in layout.items():
        written[split] = [write_sequence(root / folder, town, seq, num_frames, seed=k)["path"]
                          for k, (town, seq) in enumerate(sequences)]
    return written
