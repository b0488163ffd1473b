"""Synthetic event-camera sequences: a seeded varied world (world.py), a moving camera, RGB + metric depth + ESIM
events.

Time line of a sequence: the simulator starts at t = 0 us and frame i is at warmup + i / frame_rate, so every
frame (the first included) has at least `warmup_us` of events before it. Luminance is rendered every
1 / (frame_rate * subframes_per_frame) seconds; RGB and depth only at frame times.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import math
import multiprocessing
import os
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Any

import numpy as np

from .esim import EventSimulator, concatenate_events, log_intensity
from .render import Camera, Renderer, luminance
from .world import FAMILIES, make_world

DEFAULT_SPLITS = {"train": 10, "test": 5}
_M_TOP_PAD = -2


def _ordered_map(fn: Callable[..., Any], args: Iterable[tuple], executor: Executor | None,
                 ahead: int) -> Iterator[Any]:
    """fn(*a) for each a, in order; with an executor, at most `ahead` calls run ahead of the consumer
    (queued calls are cancelled if the consumer stops early)."""
    if executor is None:
        yield from (fn(*a) for a in args)
        return
    pending: deque[Future] = deque()
    try:
        for a in args:
            pending.append(executor.submit(fn, *a))
            if len(pending) > ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()


def _pad_heap() -> None:
    """Worker initializer: glibc's M_TOP_PAD = 64 MB stops the heap being trimmed and regrown (page faults)
    around every frame's numpy temporaries, ~1.4x faster rendering. Only in our own workers; else a no-op."""
    try:
        ctypes.CDLL(ctypes.util.find_library("c")).mallopt(_M_TOP_PAD, 64 << 20)
    except (OSError, AttributeError):
        pass


def to_srgb8(linear: np.ndarray) -> np.ndarray:
    """Gamma-encode linear RGB in [0, 1] to uint8 (what a frame camera / the RGB teacher sees)."""
    return np.rint(np.clip(linear, 0.0, 1.0) ** (1 / 2.2) * 255).astype(np.uint8)


def generate_sequence(seed: int, num_frames: int = 20, frame_rate_hz: float = 20.0, height: int = 260,
                      width: int = 346, subframes_per_frame: int = 20, contrast_threshold: float = 0.2,
                      threshold_sigma: float = 0.03, noise_rate_hz: float = 0.0, warmup_us: float = 60_000.0,
                      max_depth: float = 100.0, family: str | None = None, with_events: bool = True,
                      speed_scale: float = 1.0, texture_scale: float = 1.0) -> dict[str, Any]:
    """One sequence of a world of `family` (None: drawn from the seed): `events` (dict x, y, t, p),
    `frame_timestamps_us` (N,), `rgb` (N, H, W, 3) uint8, `depth` (N, H, W) float32 metres (0 = sky / beyond
    max_depth), `intrinsics` [fx, fy, cx, cy] and `family`. With `with_events` False only the frames are rendered
    (no luminance between them, no ESIM; `events` is empty): a frame model's training set, many times faster.
    `speed_scale` and `texture_scale` go to world.make_world.
    """
    world_seq, esim_seq = np.random.SeedSequence(seed).spawn(2)
    step_us = 1e6 / (frame_rate_hz * subframes_per_frame)
    first = math.ceil(warmup_us / step_us - 1e-9)
    last = first + (num_frames - 1) * subframes_per_frame
    world = make_world(int(world_seq.generate_state(1)[0]), last * step_us * 1e-6, max_depth, family, speed_scale,
                       texture_scale)
    trajectory = world.trajectory
    camera = Camera.davis(height, width)
    renderer = Renderer(world.scene, camera)
    rgb = np.empty((num_frames, height, width, 3), np.uint8)
    depth = np.empty((num_frames, height, width), np.float32)
    simulator, chunks = None, []
    for k in range(last + 1) if with_events else range(first, last + 1, subframes_per_frame):
        frame, offset = divmod(k - first, subframes_per_frame)
        is_frame = k >= first and offset == 0
        t = k * step_us * 1e-6
        image, frame_depth = renderer.render(*trajectory.pose(t), rgb=is_frame, t=t)
        if is_frame:
            rgb[frame], depth[frame] = to_srgb8(image), frame_depth
        if not with_events:
            continue
        log = log_intensity(luminance(image) if is_frame else image)
        if simulator is None:
            simulator = EventSimulator(log, 0.0, contrast_threshold, threshold_sigma, noise_rate_hz,
                                       int(esim_seq.generate_state(1)[0]))
        else:
            chunks.append(simulator.step(log, k * step_us))
    frame_ts = np.rint((first + subframes_per_frame * np.arange(num_frames)) * step_us).astype(np.int64)
    return {
        "events": concatenate_events(chunks),
        "frame_timestamps_us": frame_ts,
        "rgb": rgb,
        "depth": depth,
        "intrinsics": np.array([camera.fx, camera.fy, camera.cx, camera.cy], np.float32),
        "family": world.family,
    }


def _sequence_of_family(seed: int, family: str, **kwargs: Any) -> dict[str, Any]:
    """generate_sequence with the family as a positional argument (for the process pool)."""
    return generate_sequence(seed, family=family, **kwargs)


def sequence_seed(seed: int, split: str, index: int) -> int:
    """Seed of sequence `index` of `split`, derived from the dataset seed (distinct scenes per split)."""
    return int(np.random.SeedSequence([seed, zlib.crc32(split.encode()), index]).generate_state(1)[0])


def generate_dataset(seed: int = 0, splits: Mapping[str, int] | None = None, frames_per_sequence: int = 100,
                     workers: int | None = None, families: Sequence[str] = FAMILIES,
                     **sequence_kwargs: Any) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Yield (split, name, sequence) in a fixed order, e.g. ("train", "synth_train_000", {...}).

    Sequence i of a split is of family families[i % len(families)], so every split with at least as many
    sequences as families holds each of them.

    With workers > 1 (default: up to 2) sequences are generated in spawned processes (safe next to JAX, and
    with a faster heap setting, see _pad_heap), at most one per worker ahead of the consumer, so a calling
    script needs the usual `if __name__ == "__main__":` guard. The output does not depend on `workers`.
    """
    if not families or any(f not in FAMILIES for f in families):
        raise ValueError(f"families must be a non-empty selection of {FAMILIES}, got {tuple(families)}")
    jobs = [(split, f"synth_{split}_{i:03d}", sequence_seed(seed, split, i), families[i % len(families)])
            for split, count in (DEFAULT_SPLITS if splits is None else splits).items() for i in range(count)]
    workers = min(2, os.cpu_count() or 1) if workers is None else workers
    context = multiprocessing.get_context("spawn")
    pool = (ProcessPoolExecutor(workers, mp_context=context, initializer=_pad_heap) if workers > 1
            else contextlib.nullcontext())
    with pool as executor:
        make = functools.partial(_sequence_of_family, num_frames=frames_per_sequence, **sequence_kwargs)
        sequences = _ordered_map(make, ((job_seed, family) for _, _, job_seed, family in jobs), executor, workers)
        for (split, name, _, _), sequence in zip(jobs, sequences, strict=True):
            yield split, name, sequence
