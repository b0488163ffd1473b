"""Decoding speed of Prophesee `.raw` recordings (EVT 3.0 and EVT 2.0) against the I/O floor.

A synthetic 1280x720 recording of about --events events is written in each format by the encoders below (NumPy,
written for this benchmark from the word formats), then `open_recording(path).event_chunks()` is consumed to the end
(decoding, validating and cutting into 2^20-event chunks) and timed, best of --repeats. The file was just written,
so it is read from the page cache: the floor is `np.fromfile` of the same bytes, best of --repeats, and the ratio
says how much slower than that plain read the decoding is. The first run of each format (which imports numba and
compiles its kernel or loads it from numba's cache) is reported apart.

The EVT 3.0 stream is a busy scene: about --rate events/s in groups of events on one row at one time. Groups holding
a --vectors share of the events are packed as VECT_BASE_X + one or two VECT_12 words (each bit set with probability
0.4), the others are single ADDR_X events; EVT_ADDR_Y for every group, EVT_TIME_LOW / EVT_TIME_HIGH when the time
changes. EVT 2.0 gets the same events (one CD word each, EVT_TIME_HIGH every 64 µs). The decoded events are checked
against the encoded ones after the timing.

Run from the repository root:
  python bench/raw_decode.py [--events 10e6] [--rate 20e6] [--vectors 0.5] [--repeats 3]
"""

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dae_jax.recordings import open_recording  # noqa: E402

HEIGHT, WIDTH = 720, 1280
VECTOR_BIT = 0.4  # probability of each bit of a vector group's masks (its first is always set)
VECTOR_EVENTS = 1 + 11 * VECTOR_BIT + 0.5 * 12 * VECTOR_BIT  # expected events of a vector group


def scene_groups(n_events: int, rate: float, vectors: float, seed: int = 0) -> dict[str, np.ndarray]:
    """Groups of events (one row, one time, one polarity each) in time order: per group its time t (µs), row y,
    polarity p, first column x, and masks m1, m2 (bit k: an event at x + k, resp. x + 12 + k; m1 == 0 marks a
    single event at x). About a `vectors` share of the events are in vector groups; enough groups for at least
    n_events events."""
    rng = np.random.default_rng(seed)
    vector_groups = vectors / (VECTOR_EVENTS * (1 - vectors) + vectors)  # share of the groups
    groups = int(n_events / (vector_groups * VECTOR_EVENTS + 1 - vector_groups) * 1.05) + 16
    is_vector = rng.random(groups) < vector_groups
    bits = rng.random((groups, 24)) < VECTOR_BIT
    bits[:, 0] = True  # a vector group starts at its VECT_BASE_X column
    bits[rng.random(groups) < 0.5, 12:] = False  # half the vector groups have one VECT_12 word
    weights = 1 << np.arange(12)
    m1 = np.where(is_vector, bits[:, :12] @ weights, 0)
    m2 = np.where(is_vector, bits[:, 12:] @ weights, 0)
    x = np.where(is_vector, rng.integers(0, WIDTH - 24, groups), rng.integers(0, WIDTH, groups))
    events = np.where(is_vector, np.bitwise_count(m1) + np.bitwise_count(m2), 1)
    t = 1_000 + (np.cumsum(events) / rate * 1e6).astype(np.int64)
    keep = int(np.searchsorted(np.cumsum(events), n_events)) + 1
    return {"t": t[:keep], "y": rng.integers(0, HEIGHT, groups)[:keep], "p": rng.integers(0, 2, groups)[:keep],
            "x": x[:keep], "m1": m1[:keep], "m2": m2[:keep]}


def group_events(g: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The events of the groups in order (x increasing inside a group), as x, y, t, p arrays."""
    bits = ((g["m1"][:, None] >> np.arange(12)) & 1).astype(bool)
    bits = np.concatenate([bits, ((g["m2"][:, None] >> np.arange(12)) & 1).astype(bool)], axis=1)
    bits[:, 0] |= g["m1"] == 0  # a single event
    rows, columns = np.nonzero(bits)
    return {"x": (g["x"][rows] + columns).astype(np.uint16), "y": g["y"][rows].astype(np.uint16),
            "t": g["t"][rows], "p": g["p"][rows].astype(np.uint8)}


def evt3_words(g: dict[str, np.ndarray]) -> np.ndarray:
    """EVT 3.0 words of the groups: per group up to six word slots, [TIME_HIGH] [TIME_LOW] ADDR_Y, then ADDR_X or
    VECT_BASE_X VECT_12 [VECT_12], kept where used."""
    t = g["t"] % (1 << 24)
    high, low = t >> 12, t & 0xFFF
    new_high = np.r_[True, high[1:] != high[:-1]]
    new_time = new_high | np.r_[True, low[1:] != low[:-1]]
    single = g["m1"] == 0
    slots = np.stack([(0x8 << 12) | high, (0x6 << 12) | low, g["y"],
                      np.where(single, 0x2 << 12, 0x3 << 12) | (g["p"] << 11) | g["x"],
                      (0x4 << 12) | g["m1"], (0x4 << 12) | g["m2"]], axis=1)
    used = np.stack([new_high, new_time, np.ones_like(single), np.ones_like(single), ~single, g["m2"] != 0], axis=1)
    return slots[used].astype("<u2")


def evt2_words(events: dict[str, np.ndarray]) -> np.ndarray:
    """EVT 2.0 words: EVT_TIME_HIGH (timestamp bits 33..6) before each event whose bits 33..6 are new, then its CD
    word (type = polarity, timestamp bits 5..0, x, y)."""
    t = events["t"] % (1 << 34)
    high = t >> 6
    new_high = np.r_[True, high[1:] != high[:-1]]
    cd = ((events["p"].astype(np.int64) << 28) | ((t & 0x3F) << 22) | (events["x"].astype(np.int64) << 11)
          | events["y"])
    slots = np.stack([(0x8 << 28) | high, cd], axis=1)
    return slots[np.stack([new_high, np.ones_like(new_high)], axis=1)].astype("<u4")


def write_raw(path: Path, fmt: str, words: np.ndarray) -> int:
    """A `.raw` file with a `% format` header and `% end`; returns the header's size in bytes."""
    header = f"% format {fmt};height={HEIGHT};width={WIDTH}\n% end\n".encode("ascii")
    path.write_bytes(header + words.tobytes())
    return len(header)


def decoded(path: Path) -> int:
    """Events of the recording, consuming event_chunks() to the end."""
    return sum(len(chunk) for chunk in open_recording(path).event_chunks())


def timed(fn: Callable[[], object], repeats: int) -> tuple[list[float], object]:
    """Wall seconds of each of `repeats` calls, and the last call's result."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return times, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=float, default=10e6)
    parser.add_argument("--rate", type=float, default=20e6, help="events per second of the synthetic scene")
    parser.add_argument("--vectors", type=float, default=0.5, help="share of the EVT 3.0 events in vector words")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    groups = scene_groups(int(args.events), args.rate, args.vectors)
    events = group_events(groups)
    words = {"EVT3": evt3_words(groups), "EVT2": evt2_words(events)}
    n = len(events["t"])
    vector_events = int(np.sum(np.bitwise_count(groups["m1"]) + np.bitwise_count(groups["m2"])))
    print(f"{n / 1e6:.2f} M events on {WIDTH}x{HEIGHT} over {(events['t'][-1] - events['t'][0]) / 1e6:.2f} s; EVT 3.0: "
          f"{words['EVT3'].size / n:.2f} words/event, {vector_events / n:.0%} of the events in vector words")
    print(f"open_recording(path).event_chunks() consumed to the end (chunks of 2^20 events), best of {args.repeats}; "
          f"file in the page cache; floor: np.fromfile of the file, best of {args.repeats}; first run: the kernel's "
          f"compile or numba cache load (and, for the first format, importing numba)")
    with tempfile.TemporaryDirectory(prefix="raw_decode_") as folder:
        for fmt, stream in words.items():
            path = Path(folder) / f"bench_{fmt.lower()}.raw"
            header = write_raw(path, fmt, stream)
            (first,), _ = timed(partial(decoded, path), 1)
            decode, count = timed(partial(decoded, path), args.repeats)
            read, _ = timed(partial(np.fromfile, path, np.uint8, offset=header), args.repeats)
            got = open_recording(path).read_events()
            if count != n or any(not np.array_equal(getattr(got, k), events[k]) for k in "xytp"):
                raise SystemExit(f"{fmt}: the decoded events differ from the encoded ones")
            mb = path.stat().st_size / 1e6
            print(f"{fmt}: {n / min(decode) / 1e6:6.1f} M events/s ({min(decode) * 1e3:6.1f} ms, {mb:.0f} MB); "
                  f"np.fromfile {min(read) * 1e3:5.1f} ms ({mb / min(read) / 1e3:.1f} GB/s): decoding takes "
                  f"{min(decode) / min(read):.1f}x the read; first run {first * 1e3:.0f} ms", flush=True)


if __name__ == "__main__":
    main()
