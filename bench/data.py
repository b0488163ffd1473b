"""Data-pipeline benchmarks; for now Tencode throughput, vectorised encoder against a per-event loop.

Run from the repository root: /work/venv/bin/python bench/data.py [--only tencode] [--events N] [--repeats N]
"""

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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


BENCHMARKS: dict[str, Callable[[argparse.Namespace], dict[str, float]]] = {
    "tencode": lambda args: bench_tencode(args.loop_events, args.events, args.repeats),
}


def main() -> None:
    """Run the selected benchmarks and print their throughput."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHMARKS), default=sorted(BENCHMARKS))
    parser.add_argument("--loop-events", type=int, default=200_000)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    for name in args.only:
        BENCHMARKS[name](args)


if __name__ == "__main__":
    main()
