"""Data-pipeline benchmarks: Tencode throughput (against a per-event loop, and against the previous np.maximum.at
encoder and a PyTorch index_put_ encoder) and input-pipeline throughput (make_loader on a DSEC-sized synthetic
TFDS dataset of raw events, written once to --data-dir).

Run from the repository root:
  python bench/data.py [--only tencode pipeline] [--events N] [--repeats N] [--encoder-events N ...]
      [--encoder-rounds N] [--encoder-repeats N] [--data-dir /tmp/dae_jax_bench] [--window-events N] [--frames N]
      [--batches N] [--warmup N] [--workers 0 2]
"""

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numba
import numpy as np
import tensorflow_datasets as tfds
import torch

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


SENSOR_T0_US = 1_700_000_000_000_000  # an absolute timestamp in microseconds, as cameras record them


def sensor_events(n: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """A raw sensor window: n events on random pixels (uint16 x, y), {0, 1} polarity (uint8), sorted int64 µs t."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, WIDTH, n).astype(np.uint16)
    y = rng.integers(0, HEIGHT, n).astype(np.uint16)
    p = rng.integers(0, 2, n).astype(np.uint8)
    t = SENSOR_T0_US + np.sort(rng.integers(0, 50_000, n))
    return x, y, p, t


def tencode_maximum_at(
    x: np.ndarray, y: np.ndarray, p: np.ndarray, t: np.ndarray, height: int, width: int
) -> np.ndarray:
    """The previous numpy Tencode (normalised, black init): np.maximum.at keeps each pixel's largest event index.

    Same steps as the old dae_jax.events.tencode: polarity check over all events, float64 t_norm, in-image mask,
    scatter of the event indices, then the three channels gathered from the surviving events.
    """
    negative = -1 if p.min() < 0 else 0
    if not np.all((p == 1) | (p == negative)):
        raise ValueError("polarity must be in {0, 1} or {-1, +1}")
    t = t.astype(np.float64)
    t_norm = (t - t[0]) / (t[-1] - t[0]) if t[-1] != t[0] else np.zeros_like(t)
    kept = np.flatnonzero((x >= 0) & (x < width) & (y >= 0) & (y < height))
    latest = np.full(height * width, -1, dtype=np.int64)
    np.maximum.at(latest, y[kept].astype(np.int64) * width + x[kept].astype(np.int64), kept)
    hit = np.flatnonzero(latest >= 0)
    event = latest[hit]
    positive = p[event] == 1
    out = np.zeros((3, height * width), dtype=np.float32)
    out[0, hit] = np.where(positive, 255.0, 0.0)
    out[1, hit] = 255.0 * (1.0 - t_norm[event])
    out[2, hit] = np.where(positive, 0.0, 255.0)
    return out.reshape(3, height, width) / np.float32(255.0)


def tencode_torch(x: np.ndarray, y: np.ndarray, p: np.ndarray, t: np.ndarray, height: int, width: int) -> np.ndarray:
    """Tencode (normalised) as the official DepthAnyEvent code computes it: index_put_ per channel, no accumulation.

    Later events win only because the single-threaded CPU kernel writes in array order; t_norm is float64 as in
    tencode. Integer coordinates only (.long() truncates before the bounds test).
    """
    xs, ys = torch.from_numpy(x).long(), torch.from_numpy(y).long()
    ps, ts = torch.from_numpy(p).float(), torch.from_numpy(t).double()
    t_norm = (ts - ts[0]) / (ts[-1] - ts[0])
    keep = (xs >= 0) & (xs < width) & (ys >= 0) & (ys < height)
    xs, ys, ps, t_norm = xs[keep], ys[keep], ps[keep], t_norm[keep]
    image = torch.zeros(3, height, width)
    image[0].index_put_((ys, xs), 255 * ps, accumulate=False)
    image[1].index_put_((ys, xs), (255 * (1 - t_norm)).float(), accumulate=False)
    image[2].index_put_((ys, xs), 255 * (1 - ps), accumulate=False)
    return (image / 255).numpy()


def bench_tencode(
    loop_events: int, events: int, repeats: int, encoder_events: list[int], encoder_rounds: int, encoder_repeats: int
) -> dict[str, float]:
    """Events/s of tencode() against a per-event loop, then against the np.maximum.at and torch encoders.

    The loop runs on the first `loop_events` of `events` DSEC-like float events (checked equal to 1e-6), best of
    `repeats` (3 at most for the loop). The three encoders run on each size of `encoder_events` raw sensor events
    (see bench_encoders); torch with one thread (set here and restored after).
    """
    x, y, p, t = synthetic_events(max(events, loop_events))
    small = tuple(a[:loop_events] for a in (x, y, p, t))
    large = tuple(a[:events] for a in (x, y, p, t))
    np.testing.assert_allclose(tencode(*small, HEIGHT, WIDTH), tencode_loop(*small, HEIGHT, WIDTH), atol=1e-6)

    loop_s = best_seconds(lambda: tencode_loop(*small, HEIGHT, WIDTH), min(repeats, 3))
    tencode_s = best_seconds(lambda: tencode(*large, HEIGHT, WIDTH), repeats)
    loop_rate, tencode_rate = loop_events / loop_s, events / tencode_s
    print(f"tencode {HEIGHT}x{WIDTH}, float32 x/y/p/t (DSEC-like)")
    print(f"  per-event loop : {loop_events:>10,d} events {loop_s:8.3f} s {loop_rate:14,.0f} events/s")
    print(f"  tencode        : {events:>10,d} events {tencode_s:8.3f} s {tencode_rate:14,.0f} events/s")
    print(f"  speed-up       : {tencode_rate / loop_rate:.1f}x")
    rates = {"loop_events_per_s": loop_rate, "tencode_events_per_s": tencode_rate}

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rates |= bench_encoders(encoder_events, encoder_rounds, encoder_repeats)
    finally:
        torch.set_num_threads(threads)
    return rates


def bench_encoders(sizes: list[int], rounds: int, repeats: int) -> dict[str, float]:
    """Events/s of tencode, tencode_maximum_at and tencode_torch on raw sensor windows (outputs bit-identical).

    The encoders take turns for `rounds` rounds of `repeats` consecutive calls each on the same window and keep
    their best call: the consecutive calls find the inputs and buffers warm in the caches (a call after unrelated
    work also pays for that memory traffic), the rounds spread each encoder over the slow and quiet spells of a
    shared machine.
    """
    encoders = {"tencode": tencode, "np.maximum.at": tencode_maximum_at, "torch index_put_": tencode_torch}
    print(f"tencode encoders, {HEIGHT}x{WIDTH}, time-sorted events on random pixels (uint16 x/y, uint8 p, int64 us t)")
    print(f"  best call of {rounds} rounds x {repeats} consecutive calls each (warm caches), after one untimed call "
          f"that checks the outputs bit-identical; torch {torch.__version__} with "
          f"torch.set_num_threads({torch.get_num_threads()}), numba {numba.__version__} (single-threaded kernel)")
    first = sensor_events(sizes[0], seed=sizes[0])
    start = time.perf_counter()
    tencode(*first, HEIGHT, WIDTH)
    seconds = time.perf_counter() - start
    print(f"  first tencode call on these dtypes (numba compiles the kernel, or loads it from its disk cache): "
          f"{seconds:.2f} s")
    header = "".join(f"{name + ' ev/s':>24}" for name in encoders)
    print(f"  {'events':>10}{header}{'tencode/torch':>15}{'tencode/maximum.at':>20}")
    rates = {}
    for n in sizes:
        events = sensor_events(n, seed=n)
        expected = tencode(*events, HEIGHT, WIDTH).view(np.uint32)
        for name, encode in encoders.items():
            if not np.array_equal(encode(*events, HEIGHT, WIDTH).view(np.uint32), expected):
                raise AssertionError(f"{name} differs from tencode on {n:,d} events")
        best = dict.fromkeys(encoders, float("inf"))
        for _ in range(rounds):
            for name, encode in encoders.items():
                best[name] = min(best[name], best_seconds(partial(encode, *events, HEIGHT, WIDTH), repeats))
        row = {name: n / s for name, s in best.items()}
        rates |= {f"{name} {n} events_per_s": rate for name, rate in row.items()}
        columns = "".join(f"{rate:>24,.0f}" for rate in row.values())
        vs_torch, vs_old = row["tencode"] / row["torch index_put_"], row["tencode"] / row["np.maximum.at"]
        print(f"  {n:>10,d}{columns}{vs_torch:>14.1f}x{vs_old:>19.1f}x")
    return rates


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
    "tencode": lambda args: bench_tencode(
        args.loop_events, args.events, args.repeats, args.encoder_events, args.encoder_rounds, args.encoder_repeats
    ),
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
    parser.add_argument("--encoder-events", type=int, nargs="+", default=[200_000, 2_000_000])
    parser.add_argument("--encoder-rounds", type=int, default=5)
    parser.add_argument("--encoder-repeats", type=int, default=5)
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
