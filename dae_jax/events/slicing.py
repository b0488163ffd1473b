"""Time-window slicing of sorted event streams and nearest-timestamp matching between data streams."""

from typing import Any

import numpy as np

WINDOW_US = 50_000


def window_indices(t: np.ndarray, t_ref: Any, window_us: int = WINDOW_US) -> tuple[np.ndarray, np.ndarray]:
    """Index bounds (start, stop) into sorted timestamps t of the windows [t_ref - window_us, t_ref).

    t[start:stop] are exactly the events with t_ref - window_us <= t < t_ref (slice by time, SPEC 7.3);
    vectorised over an array of reference times, whose shape the outputs take.
    """
    t = np.asarray(t)
    t_ref = np.asarray(t_ref)
    return np.searchsorted(t, t_ref - window_us, side="left"), np.searchsorted(t, t_ref, side="left")


def dsec_window(t: Any, ms_to_idx: Any, t_offset: Any, t0_abs: int, t1_abs: int) -> slice:
    """Slice of the DSEC event arrays with t0_abs <= t + t_offset < t1_abs, reading only a coarse part of t.

    t (microseconds relative to t_offset) and ms_to_idx (index of the first event with t >= ms*1000) may be
    numpy arrays or h5py datasets. As in the reference, the window first maps to the coarse range
    ms_to_idx[floor(t0/1000)]:ms_to_idx[ceil(t1/1000)] (only that part of t is read), then an exact search
    trims it; if ceil(t1/1000) is past the end of ms_to_idx the window is empty (slice(0, 0)). Defined where
    the reference crashes: an empty coarse range gives an empty slice, and a window starting before t_offset
    is clamped to ms 0 instead of failing.
    """
    offset = int(np.asarray(t_offset).reshape(-1)[0])
    t0, t1 = int(t0_abs) - offset, int(t1_abs) - offset
    if t1 <= t0:
        raise ValueError(f"empty or reversed window: t0_abs={t0_abs}, t1_abs={t1_abs}")
    ms0 = max(t0 // 1000, 0)
    ms1 = max(-(-t1 // 1000), 0)
    if ms1 >= len(ms_to_idx):
        return slice(0, 0)
    lo, hi = int(ms_to_idx[ms0]), int(ms_to_idx[ms1])
    coarse = np.asarray(t[lo:hi], dtype=np.int64)
    start, stop = np.searchsorted(coarse, [t0, t1], side="left")
    return slice(lo + int(start), lo + int(stop))


def nearest_index(ref_ts: np.ndarray, query_ts: Any) -> np.ndarray:
    """Index into sorted ref_ts of the timestamp nearest to each query, ties going to the earlier one.

    SPEC 7.5: the insertion index is clipped to [1, len - 1] and the closer of its two neighbours wins.
    Defined here: a single reference timestamp matches all queries (index 0); empty ref_ts raises ValueError.
    """
    ref = np.asarray(ref_ts)
    query = np.asarray(query_ts)
    if ref.size == 0:
        raise ValueError("nearest_index needs at least one reference timestamp")
    if ref.size == 1:
        return np.zeros(query.shape, dtype=np.intp)
    dtype = np.result_type(ref.dtype, query.dtype, np.int64)
    ref, query = ref.astype(dtype), query.astype(dtype)
    right = np.clip(np.searchsorted(ref, query, side="left"), 1, ref.size - 1)
    left_closer = np.abs(query - ref[right - 1]) <= np.abs(query - ref[right])
    return np.where(left_closer, right - 1, right)


def normalize_timestamps(t: np.ndarray) -> np.ndarray:
    """Float32 timestamps shifted to start at 0 and divided by the last one, as the loaders do.

    Defined where the reference divides 0 by 0: when all timestamps are equal (including a single event) the
    result is all zeros. An empty input gives an empty array.
    """
    t = np.asarray(t)
    if t.size == 0:
        return np.zeros(0, dtype=np.float32)
    shifted = (t - t[0]).astype(np.float32)
    return shifted / shifted[-1] if shifted[-1] != 0 else shifted
