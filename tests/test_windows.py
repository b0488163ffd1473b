"""Windows cut from event streams delivered in chunks of random sizes, against windows cut from the whole array."""

import numpy as np
import pytest

from dae_jax.recordings import Events
from dae_jax.recordings.windows import EventWindower, WindowSpec


def _stream(n=3000, seed=0, gap=True):
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(1_000_000, 1_400_000, n)).astype(np.int64)
    if gap:  # 120 ms without events: windows in it are empty but still emitted
        t = np.where(t > 1_200_000, t + 120_000, t)
    return Events(rng.integers(0, 64, n).astype(np.uint16), rng.integers(0, 48, n).astype(np.uint16), t,
                  rng.integers(0, 2, n).astype(np.uint8))


def _chunks(events, seed):
    """The stream cut at random places (including empty chunks and chunks of one event)."""
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.integers(0, len(events), 40))
    bounds = [0, *cuts.tolist(), len(events)]
    return [events[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _run(spec, chunks, stamps=None):
    windower = EventWindower(spec, stamps)
    out = [w for c in chunks for w in windower.push(c)] + windower.flush()
    return [(w.index, w.t_us, w.events.t.tolist(), w.events.x.tolist()) for w in out]


def _expected_time_windows(events, begins, ends):
    """Brute force: every event tested against every window's bounds."""
    return [(k, int(e), events.t[(events.t >= b) & (events.t < e)].tolist(),
             events.x[(events.t >= b) & (events.t < e)].tolist()) for k, (b, e) in enumerate(zip(begins, ends,
                                                                                                  strict=True))]


@pytest.mark.parametrize("stride", [0, 20_000, 70_000])
def test_duration_windows_match_brute_force_for_any_chunking(stride):
    events = _stream()
    spec = WindowSpec(mode="duration", duration_us=50_000, stride_us=stride)
    step = stride or 50_000
    t0, last = int(events.t[0]), int(events.t[-1])
    begins = [t0 + k * step for k in range(1000) if t0 + k * step + 50_000 <= last + 1]
    expected = _expected_time_windows(events, begins, [b + 50_000 for b in begins])
    assert len(expected) > 5
    for seed in range(3):
        assert _run(spec, _chunks(events, seed)) == expected
    assert _run(spec, [events]) == expected


def test_frame_windows_include_frames_before_and_after_the_events():
    events = _stream(gap=False)
    stamps = np.array([900_000, 1_010_000, 1_100_000, 1_100_000, 1_390_000, 1_500_000], np.int64)
    spec = WindowSpec(mode="frames", duration_us=50_000)
    expected = _expected_time_windows(events, stamps - 50_000, stamps)
    for seed in range(3):
        assert _run(spec, _chunks(events, seed), stamps) == expected
    assert _run(spec, [], stamps) == [(k, int(s), [], []) for k, s in enumerate(stamps)]


@pytest.mark.parametrize("stride", [0, 250, 700])
def test_count_windows_match_slices(stride):
    events = _stream()
    spec = WindowSpec(mode="count", count=500, stride_events=stride)
    step = stride or 500
    expected = [(k, int(events.t[k * step + 499]), events.t[k * step:k * step + 500].tolist(),
                 events.x[k * step:k * step + 500].tolist()) for k in range((len(events) - 500) // step + 1)]
    for seed in range(3):
        assert _run(spec, _chunks(events, seed)) == expected


def test_start_time_and_errors():
    events = _stream(gap=False)
    spec = WindowSpec(duration_us=100_000, start_us=1_050_000)
    got = _run(spec, _chunks(events, 0))
    assert got[0][1] == 1_150_000 and min(got[0][2]) >= 1_050_000
    windower = EventWindower(WindowSpec())
    windower.push(events[100:200])
    with pytest.raises(ValueError, match="before the previous chunk's last event"):
        windower.push(events[:50])
    with pytest.raises(ValueError, match="window mode must be one of"):
        WindowSpec(mode="seconds")
    with pytest.raises(ValueError, match="count windows need count > 0"):
        WindowSpec(mode="count")
    with pytest.raises(ValueError, match="need the recording's frame timestamps"):
        EventWindower(WindowSpec(mode="frames"), np.zeros(0, np.int64))
