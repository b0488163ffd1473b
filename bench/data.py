"""Data-pipeline benchmarks: Tencode throughput (vectorised encoder against a per-event loop) and input-pipeline
throughput (make_loader on a DSEC-sized synthetic TFDS dataset of raw events, written once to --data-dir).

Run from the repository root:
  /work/venv/bin/python bench/data.py [--only tencode pipeline] [--events N] [--repeats N]
      [--data-dir /tmp/dae_jax_bench] [--window-events N] [--frames N] [--batches N] [--warmup N]
      [--workers 0 2]
"""

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dae_jax.data import schema  # noqa: E402
from dae_jax.data.pipeline import InputConfig, make_loader  # noqa: E402
from dae_jax.events import tencode  # noqa: E402

HEIGHT, WIDTH = 480, 640


def synthetic_events(n: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """DSEC-like window: rectified float coordinates (some just outside), {0, 1} polarity, t in [0, 1]."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2.0, WIDTH + 2.0, n).astype(np.float32)
    y = rng.uniform(-2.0, HEIGHT + 2.0, n).astype(np.float32)
    p = rng.integers(0, 2, n).astype(np.float32)
    t = np.sort(rng.uniform(0.0, 1.0, n)).astype(np.float32)
    return x, y, p, t


def tencode_loop(
    x: np.ndarray, y: np.ndarray, p: np.ndarray, t: np.ndarray, height: int, width: int
) -> np.ndarray:
    """Straightforward per-event Tencode (normalised, black init): the baseline for the vectorised one."""
    out = np.zeros((3, height, width), dtype=np.float32)
    first, last = float(t[0]), float(t[-1])
    span = last - first
    for xi, yi, pi, ti in zip(x.tolist(), y.tolist(), p.tolist(), t.tolist(), strict=True):
        if 0 <= xi < width and 0 <= yi < height:
            t_norm = (ti - first) / span if span else 0.0
            out[:, int(yi), int(xi)] = (255.0 * pi, 255.0 * (1.0 - t_norm), 255.0 * (1.0 - pi))
    return out / np.float32(255.0)


def best_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Best wall time of `repeats` calls, which filters out scheduling noise on a shared machine."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_tencode(loop_events: int, events: int, repeats: int) -> dict[str, float]:
    """Events/s of tencode() on `events` events and of the loop on the first `loop_events` (checked equal)."""
    x, y, p, t = synthetic_events(max(events, loop_events))
    small = tuple(a[:loop_events] for a in (x, y, p, t))
    large = tuple(a[:events] for a in (x, y, p, t))
    np.testing.assert_allclose(tencode(*small, HEIGHT, WIDTH), tencode_loop(*small, HEIGHT, WIDTH), atol=1e-6)

    loop_s = best_seconds(lambda: tencode_loop(*small, HEIGHT, WIDTH), min(repeats, 3))
    vectorised_s = best_seconds(lambda: tencode(*large, HEIGHT, WIDTH), repeats)
    loop_rate, vectorised_rate = loop_events / loop_s, events / vectorised_s
    print(f"tencode {HEIGHT}x{WIDTH}")
    print(f"  per-event loop : {loop_events:>10,d} events {loop_s:8.3f} s {loop_rate:14,.0f} events/s")
    print(f"  vectorised     : {events:>10,d} events {vectorised_s:8.3f} s {vectorised_rate:14,.0f} events/s")
    print(f"  speed-up       : {vectorised_rate / loop_rate:.1f}x")
    return {"loop_events_per_s": loop_rate, "vectorised_events_per_s": vectorised_rate}


class DsecLikeEvents(tfds.core.GeneratorBasedBuilder):
    """Two sequences of random 480x640 frames: `window_events` raw events per 50 ms window, RGB and depth."""

    VERSION = tfds.core.Version("1.0.0")

    def __init__(self, *, frames: int, window_events: int, **kwargs):
        self.frames, self.window_events = frames, window_events
        config = tfds.core.BuilderConfig(name=f"f{frames}_e{window_events}")
        super().__init__(config=config, file_format="array_record", **kwargs)

    def _sequences(self) -> list[tuple[str, int]]:
        return [("seq_a", self.frames // 2), ("seq_b", self.frames - self.frames // 2)]

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            features=schema.example_features("events"),
            disable_shuffling=True,
            metadata=tfds.core.MetadataDict(
                schema.dataset_metadata({"train": self._sequences()}, HEIGHT, WIDTH, "events")
            ),
        )

    def _split_generators(self, dl_manager: Any) -> dict[str, Iterator[tuple[str, dict[str, Any]]]]:
        return {"train": self._generate_examples()}

    def _generate_examples(self) -> Iterator[tuple[str, dict[str, Any]]]:
        k = 0
        for name, frames in self._sequences():
            for f in range(frames):
                rng = np.random.default_rng(k)
                x, y, p, t = synthetic_events(self.window_events, seed=k)
                yield f"{name}_{f:06d}", {
                    "sequence": name,
                    "frame_index": f,
                    "timestamp_us": 50_000 * (f + 1),
                    "events": {"x": x, "y": y, "p": p.astype(np.uint8), "t": (50_000 * (f + t)).astype(np.int64)},
                    "rgb": rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8),
                    "depth": rng.uniform(0.0, 80.0, (HEIGHT, WIDTH)).astype(np.float32),
                }
                k += 1


def bench_pipeline(
    data_dir: str, frames: int, window_events: int, batches: int, warmup: int, workers: list[int]
) -> dict[str, float]:
    """Examples/s of make_loader (raw events -> Tencode, T=1, batch 8, random 320x640 crop + flip, RGB, depth).

    The dataset is written once and reused. Each rate is measured over `batches` batches after `warmup` ones,
    which pay for starting workers and drain the batches prefetched meanwhile (up to 6 with 2 workers).
    """
    builder = DsecLikeEvents(frames=frames, window_events=window_events, data_dir=data_dir)
    builder.download_and_prepare()
    print(f"pipeline: {builder.data_dir} ({frames} frames, {window_events:,d} events per window, {HEIGHT}x{WIDTH})")
    records = builder.as_data_source(split="train")
    read_s = best_seconds(lambda: records[1], 3)
    events = records[1]["events"]
    encode_s = best_seconds(lambda: tencode(events["x"], events["y"], events["p"], events["t"], HEIGHT, WIDTH), 3)
    print(f"  one frame, one thread: read + decode {1e3 * read_s:.0f} ms, Tencode {1e3 * encode_s:.0f} ms")
    rates = {"read_decode_s": read_s, "tencode_s": encode_s}
    for worker_count in workers:
        config = InputConfig(
            dataset_dir=builder.data_dir, split="train", batch_size=8, crop=(320, 640), random_crop=True, hflip=True,
            load_rgb=True, load_depth=True, num_epochs=None, worker_count=worker_count,
        )
        iterator = iter(make_loader(config, process_index=0, process_count=1))
        for _ in range(warmup):
            next(iterator)
        start = time.perf_counter()
        for _ in range(batches):
            batch = next(iterator)
        seconds = time.perf_counter() - start
        rates[f"workers_{worker_count}_examples_per_s"] = rate = batches * config.batch_size / seconds
        examples = batches * config.batch_size
        print(f"  worker_count={worker_count} read_threads={config.read_threads}: {examples} examples "
              f"{seconds:7.2f} s {rate:8.1f} examples/s, events {batch['events'].shape}")
    return rates


BENCHMARKS: dict[str, Callable[[argparse.Namespace], dict[str, float]]] = {
    "tencode": lambda args: bench_tencode(args.loop_events, args.events, args.repeats),
    "pipeline": lambda args: bench_pipeline(
        args.data_dir, args.frames, args.window_events, args.batches, args.warmup, args.workers
    ),
}


def main() -> None:
    """Run the selected benchmarks and print their throughput."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHMARKS), default=sorted(BENCHMARKS))
    parser.add_argument("--loop-events", type=int, default=200_000)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data-dir", default="/tmp/dae_jax_bench")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--window-events", type=int, default=1_000_000)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=6)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    args = parser.parse_args()
    for name in args.only:
        BENCHMARKS[name](args)


if __name__ == "__main__":
    main()
