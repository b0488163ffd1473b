"""Event representations and slicing checked against straightforward per-event / per-query Python loops."""

import h5py
import numpy as np
import pytest

from dae_jax.events import (
    dsec_window,
    get_representation,
    histogram,
    histogram_from_voxels,
    nearest_index,
    normalize_timestamps,
    representations,
    tencode,
    tencode_from_voxels,
    voxel_grid,
    voxel_grid_from_voxels,
    window_indices,
)

H, W = 12, 17


def random_events(n: int, seed: int, pixels: int = 40, signed: bool = False):
    """Time-sorted events on a few pixels (many collisions), with float and out-of-range coordinates."""
    rng = np.random.default_rng(seed)
    sites = np.stack([rng.uniform(-1.5, W + 1.5, pixels), rng.uniform(-1.5, H + 1.5, pixels)], axis=1)
    sites[:4] = [[-0.5, 3.2], [W - 0.01, H - 0.01], [0.0, 0.0], [W, 2.0]]
    pick = rng.integers(0, pixels, n)
    x = (sites[pick, 0] + rng.uniform(-0.3, 0.3, n)).astype(np.float32)
    y = (sites[pick, 1] + rng.uniform(-0.3, 0.3, n)).astype(np.float32)
    p = rng.integers(0, 2, n).astype(np.float32)
    if signed:
        p = 2 * p - 1
    t = np.sort(rng.uniform(0.0, 1.0, n)).astype(np.float32)
    return x, y, p, t


def tencode_loop(x, y, p, t, height, width, normalize=True, white_frame=False):
    out = np.full((3, height, width), 255.0 if white_frame else 0.0)
    if len(x) == 0:
        return out
    first, last = float(t[0]), float(t[-1])
    for xi, yi, pi, ti in zip(x, y, p, t, strict=True):
        if 0 <= xi < width and 0 <= yi < height:
            pol = 1.0 if pi > 0 else 0.0
            t_norm = (float(ti) - first) / (last - first) if last != first else 0.0
            out[:, int(yi), int(xi)] = [255.0 * pol, 255.0 * (1.0 - t_norm), 255.0 * (1.0 - pol)]
    return out / 255.0 if normalize else out


def voxel_loop(x, y, p, t, bins, height, width):
    grid = np.zeros((bins, height, width))
    first, last = float(t[0]), float(t[-1])
    for xi, yi, pi, ti in zip(x.tolist(), y.tolist(), p.tolist(), t.tolist(), strict=True):
        tn = (bins - 1) * (ti - first) / (last - first) if last != first else 0.0
        for xl in (int(xi), int(xi) + 1):
            for yl in (int(yi), int(yi) + 1):
                for tl in (int(tn), int(tn) + 1):
                    if 0 <= xl < width and 0 <= yl < height and 0 <= tl < bins:
                        w = (1 - abs(xl - xi)) * (1 - abs(yl - yi)) * (1 - abs(tl - tn))
                        grid[tl, yl, xl] += (1.0 if pi > 0 else -1.0) * w
    return grid


def normalize_loop(grid):
    values = grid[grid != 0]
    mean = values.sum() / values.size
    std = np.sqrt((values**2).sum() / values.size - mean**2)
    return np.where(grid != 0, (grid - mean) / std, 0.0)


def histogram_loop(x, y, p, height, width, remove_int_artifact=False):
    counts = np.zeros((2, height, width))
    for xi, yi, pi in zip(x.tolist(), y.tolist(), p.tolist(), strict=True):
        if not (0 <= xi < width and 0 <= yi < height):
            continue
        c = 1 if pi > 0 else 0
        if not remove_int_artifact:
            counts[c, int(yi), int(xi)] += 1
            continue
        for xl in (int(xi), int(xi) + 1):
            for yl in (int(yi), int(yi) + 1):
                if xl < width and yl < height:
                    counts[c, yl, xl] += ((1 - abs(xl - xi)) + (1 - abs(yl - yi))) / 4
    return np.minimum(counts, 200)


def random_voxels(seed: int, n: int = 5):
    rng = np.random.default_rng(seed)
    v = rng.choice(np.array([-1.5, -0.2, 0.0, 0.0, 0.0, 0.7, 2.0], np.float32), size=(n, 6, 7))
    v[:, 0, 0] = 0.0
    v[2, 1, 1] = np.nan
    return v


# --- Tencode ---


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "normalize,white_frame", [(True, False), (False, False), (True, True), (False, True)]
)
def test_tencode_matches_loop(seed, normalize, white_frame):
    x, y, p, t = random_events(3000, seed)
    out = tencode(x, y, p, t, H, W, normalize=normalize, white_frame=white_frame)
    assert out.shape == (3, H, W) and out.dtype == np.float32
    np.testing.assert_allclose(
        out, tencode_loop(x, y, p, t, H, W, normalize, white_frame), rtol=1e-6, atol=1e-4
    )


def test_tencode_latest_event_wins():
    x = np.array([2.7, 2.1, 2.9, 5.0])
    y = np.array([1.5, 1.0, 1.2, 0.0])
    out = tencode(x, y, np.array([1, 1, 0, 1]), np.array([0.0, 1.0, 2.0, 4.0]), 3, 6, normalize=False)
    np.testing.assert_allclose(out[:, 1, 2], [0.0, 127.5, 255.0])
    np.testing.assert_allclose(out[:, 0, 5], [255.0, 0.0, 0.0])


def test_tencode_empty_returns_raw_init():
    empty = np.zeros(0, np.float32)
    assert np.all(tencode(empty, empty, empty, empty, H, W) == 0)
    np.testing.assert_array_equal(
        tencode(empty, empty, empty, empty, H, W, normalize=True, white_frame=True), 255.0
    )


def test_tencode_all_outside_with_white_frame_is_normalised():
    out = tencode(
        np.array([-1.0, W]), np.array([0.0, 0.0]), np.array([0, 1]), np.array([0, 1]), H, W, white_frame=True
    )
    np.testing.assert_array_equal(out, 1.0)


def test_tencode_single_event_and_equal_timestamps():
    single = tencode(np.array([3.5]), np.array([2.2]), np.array([1]), np.array([7.0]), H, W, normalize=False)
    np.testing.assert_array_equal(single[:, 2, 3], [255.0, 255.0, 0.0])
    assert np.isfinite(single).all() and np.count_nonzero(single.sum(0)) == 1
    x, y, p, _ = random_events(200, 5)
    out = tencode(x, y, p, np.full(200, 0.25), H, W)
    assert np.isfinite(out).all()
    hit = (out[0] + out[2]) > 0
    np.testing.assert_array_equal(out[1][hit], 1.0)


def test_tencode_signed_polarity_equals_binary():
    x, y, p, t = random_events(1000, 3, signed=True)
    np.testing.assert_array_equal(tencode(x, y, p, t, H, W), tencode(x, y, (p > 0).astype(np.int8), t, H, W))


@pytest.mark.parametrize("bad", [[0.0, 0.5, 1.0], [-1, 0, 1], [0, 2], [-1, np.nan]])
def test_bad_polarity_raises(bad):
    n = len(bad)
    with pytest.raises(ValueError, match="polarity"):
        tencode(np.zeros(n), np.zeros(n), np.array(bad), np.arange(n), H, W)
    with pytest.raises(ValueError, match="polarity"):
        histogram(np.zeros(n), np.zeros(n), np.array(bad), H, W)


def tencode_reference(x, y, p, t, height, width, normalize=True, white_frame=False):
    """Per-event Python loop with Tencode's arithmetic spelled out, the expected value for bit-exact checks.

    t_norm in float64 from the first and last timestamps (as Python floats), G = 255 (1 - t_norm) rounded once to
    float32, the bounds tested on the exact coordinates, the later event written over the earlier one.
    """
    out = np.full((3, height, width), 255.0 if white_frame else 0.0, dtype=np.float32)
    if len(x) == 0:
        return out
    values = set(p.tolist())
    if not (values <= {0, 1} or values <= {-1, 1}):
        raise ValueError("polarity")
    first, last = float(t[0]), float(t[-1])
    for xi, yi, pi, ti in zip(x.tolist(), y.tolist(), p.tolist(), t.tolist(), strict=True):
        if 0 <= xi < width and 0 <= yi < height:
            t_norm = (float(ti) - first) / (last - first) if last != first else 0.0
            green = np.float32(255.0 * (1.0 - t_norm))
            out[:, int(yi), int(xi)] = [255.0, green, 0.0] if pi == 1 else [0.0, green, 255.0]
    return out / np.float32(255.0) if normalize else out


def assert_same_bits(actual, expected):
    assert actual.shape == expected.shape and actual.dtype == expected.dtype == np.float32
    np.testing.assert_array_equal(actual.view(np.uint32), expected.view(np.uint32))


T_US = 1_600_000_000_000_000  # an absolute time in microseconds (2020), far beyond float32 precision


def typed_events(n: int, seed: int, coordinates: str, polarity: str, times: str):
    """Events on a few pixel sites (so pixels repeat), some outside the image, in the dtypes named.

    coordinates: float32 / float64 (sub-pixel, including -0.5, which truncates to 0 but is outside), int64 (with
    negatives) or uint16 (with values >= W and >= H); polarity: '01' (uint8) or 'pm' (int8 -1/+1); times: float32 in
    [0, 1], int64 microseconds near T_US ('us' sorted, 'shuffled' not), or int64 beyond 2**53 (not exact in float64).
    """
    rng = np.random.default_rng(seed)
    if coordinates in ("float32", "float64"):
        x, y, _, _ = random_events(n, seed)
        x, y = x.astype(coordinates), y.astype(coordinates)
    else:
        low = -2 if coordinates == "int64" else 0
        sites = np.stack([rng.integers(low, W + 3, 40), rng.integers(low, H + 3, 40)], axis=1)
        sites[:2] = [[W, 0], [0, H]]
        pick = rng.integers(0, 40, n)
        x, y = sites[pick, 0].astype(coordinates), sites[pick, 1].astype(coordinates)
    p = rng.integers(0, 2, n).astype(np.uint8)
    if polarity == "pm":
        p = (2 * p.astype(np.int8) - 1).astype(np.int8)
    if times == "float32":
        t = np.sort(rng.uniform(0.0, 1.0, n)).astype(np.float32)
    elif times == "shuffled":
        t = rng.integers(0, 50_000, n) + T_US
    else:
        t = np.sort(rng.integers(0, 50_000, n)) + (T_US if times == "us" else 2**62)
    return x, y, p, t


@pytest.mark.parametrize("n", [1, 2, 700, 5000])
@pytest.mark.parametrize(
    "coordinates,polarity,times",
    [("float32", "01", "float32"), ("float64", "pm", "us"), ("uint16", "01", "us"), ("int64", "pm", "beyond_2_53")],
)
@pytest.mark.parametrize("normalize,white_frame", [(True, False), (False, False), (True, True), (False, True)])
def test_tencode_bit_identical_to_reference(n, coordinates, polarity, times, normalize, white_frame):
    x, y, p, t = typed_events(n, n, coordinates, polarity, times)
    assert_same_bits(
        tencode(x, y, p, t, H, W, normalize=normalize, white_frame=white_frame),
        tencode_reference(x, y, p, t, H, W, normalize, white_frame),
    )


@pytest.mark.parametrize(
    "coordinates,polarity,times",
    [("float32", "01", "us"), ("uint16", "01", "us"), ("uint16", "01", "shuffled"), ("int64", "pm", "beyond_2_53")],
)
def test_tencode_large_windows_bit_identical_to_reference(coordinates, polarity, times):
    """From _SHARED_KERNEL_EVENTS events on, the kernel runs on the input dtypes instead of float64 copies."""
    n = representations._SHARED_KERNEL_EVENTS + 3000
    x, y, p, t = typed_events(n, 11, coordinates, polarity, times)
    for normalize, white_frame in [(True, False), (False, True)]:
        assert_same_bits(
            tencode(x, y, p, t, H, W, normalize=normalize, white_frame=white_frame),
            tencode_reference(x, y, p, t, H, W, normalize, white_frame),
        )


def test_tencode_reference_keeps_latest_and_truncates():
    x = np.array([-0.5, 0.0, 2.9, 2.1, W - 0.01, W, 3.0])
    y = np.array([0.0, -0.5, 1.99, 1.0, H - 0.01, 0.0, -1.0])
    p = np.array([1, 1, 0, 1, 0, 1, 1])
    t = np.array([0, 1, 2, 3, 4, 5, 10]) + T_US
    out = tencode(x, y, p, t, H, W, normalize=False)
    assert_same_bits(out, tencode_reference(x, y, p, t, H, W, normalize=False))
    np.testing.assert_array_equal(out[:, 1, 2], [255.0, np.float32(255.0 * 0.7), 0.0])
    np.testing.assert_array_equal(out[:, H - 1, W - 1], [0.0, np.float32(255.0 * 0.6), 255.0])
    assert np.count_nonzero(out.sum(0)) == 2  # -0.5, x = W and y = -1 are outside


@pytest.mark.parametrize("normalize,white_frame", [(True, False), (False, True)])
def test_tencode_timestamps_out_of_order_or_nan(normalize, white_frame):
    x, y, p, _ = random_events(3000, 8)
    rng = np.random.default_rng(8)
    unsorted = rng.integers(0, 1000, 3000) + T_US  # G outside [0, 255] for events before t[0] or after t[-1]
    nan_inside = np.sort(rng.uniform(0.0, 1.0, 3000))
    nan_inside[1234] = np.nan
    nan_last = nan_inside.copy()
    nan_last[-1] = np.nan  # every t_norm is NaN
    flat_with_inf = np.full(3000, 2.0)
    flat_with_inf[5] = np.inf  # t[0] == t[-1]: t_norm is 0 everywhere
    for t in (unsorted, nan_inside, nan_last, flat_with_inf):
        assert_same_bits(
            tencode(x, y, p, t, H, W, normalize=normalize, white_frame=white_frame),
            tencode_reference(x, y, p, t, H, W, normalize, white_frame),
        )


def test_tencode_single_event_and_empty_window_match_reference():
    one = (np.array([3.5]), np.array([2.2]), np.array([-1]), np.array([T_US]))
    outside = (np.array([W + 0.5]), np.array([2.2]), np.array([1]), np.array([T_US]))
    empty = (np.zeros(0, np.uint16), np.zeros(0, np.uint16), np.zeros(0, np.uint8), np.zeros(0, np.int64))
    for events in (one, outside, empty):
        for normalize, white_frame in [(True, False), (False, False), (True, True), (False, True)]:
            assert_same_bits(
                tencode(*events, H, W, normalize=normalize, white_frame=white_frame),
                tencode_reference(*events, H, W, normalize, white_frame),
            )


def test_tencode_strided_big_endian_and_other_dtypes():
    x, y, p, t = typed_events(2 * representations._SHARED_KERNEL_EVENTS + 2000, 9, "float32", "01", "us")
    expected = tencode_reference(x[::2], y[::2], p[::2], t[::2], H, W)
    assert_same_bits(tencode(x[::2], y[::2], p[::2], t[::2], H, W), expected)
    swapped = [a[::2].astype(a.dtype.newbyteorder(">")) for a in (x, y, p, t)]
    assert_same_bits(tencode(*swapped, H, W), expected)
    halves = (x[::2].astype(np.float16), y[::2].astype(np.float16), p[::2].astype(bool), t[::2])
    assert_same_bits(tencode(*halves, H, W), tencode_reference(*halves, H, W))


@pytest.mark.parametrize("where", ["last event, outside the image", "first event"])
def test_tencode_checks_every_polarity(where):
    x, y, p, t = typed_events(5000, 10, "uint16", "01", "us")
    p = p.astype(np.int64)
    if where == "first event":
        p[0] = -1  # -1 among 0 and 1
    else:
        x[-1], p[-1] = W + 5, 2
    with pytest.raises(ValueError, match="polarity"):
        tencode(x, y, p, t, H, W)


def test_tencode_rejects_images_beyond_int32_pixel_keys():
    with pytest.raises(ValueError, match="height \\* width"):
        tencode(np.zeros(1), np.zeros(1), np.ones(1), np.zeros(1), 2**16, 2**15)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("white_frame", [False, True])
def test_tencode_from_voxels_matches_loop(seed, white_frame):
    v = random_voxels(seed)
    n, h, w = v.shape
    expected = np.full((3, h, w), 255.0 if white_frame else 0.0)
    for i in range(n):
        green = 255.0 * (1 - i / (n - 1))
        for r in range(h):
            for c in range(w):
                if v[i, r, c] > 0:
                    expected[:, r, c] = [255.0, green, 0.0]
                elif v[i, r, c] < 0:
                    expected[:, r, c] = [0.0, green, 255.0]
    np.testing.assert_allclose(
        tencode_from_voxels(v, normalize=False, white_frame=white_frame), expected, atol=1e-4
    )
    np.testing.assert_allclose(tencode_from_voxels(v, white_frame=white_frame), expected / 255.0, atol=1e-6)


# --- Voxel grid and histogram ---


@pytest.mark.parametrize("seed,bins", [(0, 5), (1, 3), (2, 1)])
def test_voxel_grid_matches_loop(seed, bins):
    x, y, p, t = random_events(1500, seed)
    raw = voxel_grid(x, y, p, t, bins, H, W, normalize=False)
    expected = voxel_loop(x, y, p, t, bins, H, W)
    np.testing.assert_allclose(raw, expected, atol=1e-4)
    normalised = voxel_grid(x, y, p, t, bins, H, W, normalize=True)
    np.testing.assert_allclose(normalised, normalize_loop(raw.astype(np.float64)), atol=1e-4)
    assert np.array_equal(normalised != 0, raw != 0)


def test_voxel_grid_degenerate_cases():
    assert np.all(voxel_grid(*(np.zeros(0),) * 4, 5, H, W) == 0)
    single = voxel_grid(np.array([3.0]), np.array([2.0]), np.array([0]), np.array([9.0]), 5, H, W)
    assert single[0, 2, 3] == -1.0 and np.count_nonzero(single) == 1
    x, y, p, _ = random_events(300, 4)
    equal_t = voxel_grid(x, y, p, np.full(300, 3.0), 4, H, W, normalize=False)
    assert np.isfinite(equal_t).all() and not equal_t[2:].any()
    np.testing.assert_allclose(equal_t, voxel_loop(x, y, p, np.full(300, 3.0), 4, H, W), atol=1e-4)


@pytest.mark.parametrize("bins", [3, 5, 8, 10])
def test_voxel_grid_from_voxels(bins):
    v = random_voxels(3).astype(np.float32)
    v = np.nan_to_num(v)
    source = [int(np.floor(c * 5 / bins)) for c in range(bins)]
    np.testing.assert_array_equal(voxel_grid_from_voxels(v, bins, normalize=False), v[source])
    np.testing.assert_allclose(
        voxel_grid_from_voxels(v, bins), normalize_loop(v[source].astype(np.float64)), atol=1e-5
    )


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("remove_int_artifact", [False, True])
def test_histogram_matches_loop(seed, remove_int_artifact):
    x, y, p, _ = random_events(2000, seed)
    out = histogram(x, y, p, H, W, remove_int_artifact=remove_int_artifact)
    assert out.shape == (2, H, W) and out.dtype == np.float32
    np.testing.assert_allclose(out, histogram_loop(x, y, p, H, W, remove_int_artifact), atol=1e-4)


def test_histogram_clips_and_channel_order():
    out = histogram(np.full(300, 1.5), np.full(300, 0.5), np.repeat([1, 0], [250, 50]), 2, 3)
    assert out[1, 0, 1] == 200 and out[0, 0, 1] == 50 and out.sum() == 250


def test_histogram_from_voxels():
    v = np.nan_to_num(random_voxels(4))
    expected = np.zeros((2,) + v.shape[1:])
    for i in range(v.shape[0]):
        expected[0] += np.where(v[i] > 0, v[i], 0)
        expected[1] += np.where(v[i] < 0, -v[i], 0)
    np.testing.assert_allclose(histogram_from_voxels(v), expected, atol=1e-6)


def test_registry():
    x, y, p, t = random_events(500, 7)
    np.testing.assert_array_equal(
        get_representation("tencode", height=H, width=W)(x, y, p, t), tencode(x, y, p, t, H, W)
    )
    vox = get_representation("voxel_grid", num_bins=5, height=H, width=W, normalize=False)
    np.testing.assert_array_equal(vox(x, y, p, t), voxel_grid(x, y, p, t, 5, H, W, normalize=False))
    hist = get_representation("histogram", height=H, width=W, remove_int_artifact=True)
    np.testing.assert_array_equal(hist(x, y, p, t), histogram(x, y, p, H, W, True))
    with pytest.raises(ValueError, match="unknown"):
        get_representation("nope")
    with pytest.raises(TypeError):
        get_representation("tencode", height=H, width=W, white=True)
    with pytest.raises(TypeError):
        get_representation("voxel_grid", height=H, width=W)


# --- Slicing ---


def sorted_times(n: int, seed: int, high: int = 400_000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = rng.integers(0, high, n)
    t[: n // 10] = rng.choice(t[n // 10 :], n // 10)
    return np.sort(t)


def test_window_indices_matches_boolean_selection():
    t = sorted_times(5000, 0)
    rng = np.random.default_rng(1)
    t_ref = np.concatenate(
        [rng.choice(t, 30), rng.choice(t, 30) + 50_000, rng.integers(-60_000, 500_000, 30)]
    )
    start, stop = window_indices(t, t_ref)
    assert start.shape == stop.shape == t_ref.shape
    for s, e, r in zip(start, stop, t_ref, strict=True):
        selected = np.flatnonzero((t >= r - 50_000) & (t < r))
        assert np.count_nonzero(t < r - 50_000) == s and s + selected.size == e
        np.testing.assert_array_equal(np.arange(s, e), selected)


def test_window_indices_edges():
    t = np.array([0, 10_000, 10_000, 60_000, 60_000, 70_000])
    start, stop = window_indices(t, 60_000)
    assert (int(start), int(stop)) == (1, 3)
    start, stop = window_indices(t, np.array([5, 60_001]), window_us=5)
    np.testing.assert_array_equal(start, [0, 3])
    np.testing.assert_array_equal(stop, [1, 5])


class RecordingArray:
    """Array stand-in that records the slices read from it, like a lazily read h5py dataset."""

    def __init__(self, data: np.ndarray):
        self.data, self.reads = data, []

    def __getitem__(self, key):
        self.reads.append(key)
        return self.data[key]


def dsec_layout(seed: int):
    t = sorted_times(4000, seed, high=200_000)
    ms_to_idx = np.searchsorted(t, np.arange(t[-1] // 1000 + 1) * 1000, side="left")
    return t, ms_to_idx, 1_600_000_000_123_456


def dsec_brute(t, ms_to_idx, offset, t0, t1):
    if -(-(t1 - offset) // 1000) >= ms_to_idx.size:
        return np.zeros(0, np.int64)
    return np.flatnonzero((t >= t0 - offset) & (t < t1 - offset))


@pytest.mark.parametrize("seed", [0, 1])
def test_dsec_window_matches_brute_force(seed):
    t, ms_to_idx, offset = dsec_layout(seed)
    rng = np.random.default_rng(seed + 10)
    ends = np.concatenate(
        [rng.choice(t, 40), rng.integers(0, 260_000, 40), [t[-1], t[-1] + 1, 1000 * ms_to_idx.size]]
    )
    ends = np.concatenate([ends, [50_000, 30_000, 1]]) + offset
    for t1 in ends.tolist():
        t0 = t1 - 50_000
        recorder = RecordingArray(t)
        window = dsec_window(recorder, ms_to_idx, np.array([offset]), t0, t1)
        expected = dsec_brute(t, ms_to_idx, offset, t0, t1)
        np.testing.assert_array_equal(np.arange(len(t))[window], expected)
        for read in recorder.reads:
            assert read.stop - read.start <= np.count_nonzero(
                (t >= t0 - offset - 1000) & (t < t1 - offset + 1000)
            )


def test_dsec_window_beyond_ms_to_idx_is_empty():
    t, ms_to_idx, offset = dsec_layout(2)
    last_ms = ms_to_idx.size - 1
    assert dsec_window(
        t, ms_to_idx, offset, offset + last_ms * 1000 - 50_000, offset + last_ms * 1000 + 1
    ) == slice(0, 0)
    inside = dsec_window(t, ms_to_idx, offset, offset + last_ms * 1000 - 50_000, offset + last_ms * 1000)
    assert inside.stop > inside.start
    with pytest.raises(ValueError):
        dsec_window(t, ms_to_idx, offset, offset + 10, offset + 10)


def test_dsec_window_reads_h5py(tmp_path):
    t, ms_to_idx, offset = dsec_layout(3)
    with h5py.File(tmp_path / "events.h5", "w") as f:
        f["events/t"] = t
        f["ms_to_idx"] = ms_to_idx
        f["t_offset"] = offset
        for t1 in [offset + 80_000, offset + 123_456, offset + 10_000_000]:
            window = dsec_window(f["events/t"], f["ms_to_idx"], f["t_offset"][()], t1 - 50_000, t1)
            expected = dsec_brute(t, ms_to_idx, offset, t1 - 50_000, t1)
            np.testing.assert_array_equal(np.arange(len(t))[window], expected)


def nearest_loop(ref, query):
    out = []
    for q in query.tolist():
        i = next((k for k, r in enumerate(ref.tolist()) if r >= q), len(ref))
        i = min(max(i, 1), len(ref) - 1)
        out.append(i - 1 if abs(q - ref[i - 1]) <= abs(q - ref[i]) else i)
    return np.array(out)


def test_nearest_index_matches_loop():
    rng = np.random.default_rng(0)
    ref = np.sort(rng.integers(0, 10_000, 300))
    ref[50:53] = ref[50]
    midpoints = (ref[:-1] + ref[1:])[::7] // 2
    query = np.concatenate([rng.integers(-500, 10_500, 500), ref[::5], midpoints])
    np.testing.assert_array_equal(nearest_index(ref, query), nearest_loop(ref, query))


def test_nearest_index_ties_and_small_refs():
    np.testing.assert_array_equal(
        nearest_index(np.array([0, 10, 20]), np.array([5, 15, -3, 30, 10])), [0, 1, 0, 2, 1]
    )
    np.testing.assert_array_equal(nearest_index(np.array([7]), np.array([0, 100])), [0, 0])
    np.testing.assert_array_equal(nearest_index(np.array([0.0, 1.0]), np.array([0.5])), [0])
    np.testing.assert_array_equal(
        nearest_index(np.array([0, 10], np.uint64), np.array([4, 6], np.uint64)), [0, 1]
    )
    with pytest.raises(ValueError):
        nearest_index(np.array([]), np.array([1]))


def test_normalize_timestamps():
    np.testing.assert_array_equal(
        normalize_timestamps(np.array([100, 150, 300])), np.float32([0.0, 0.25, 1.0])
    )
    np.testing.assert_array_equal(normalize_timestamps(np.array([5, 5, 5])), [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(normalize_timestamps(np.array([42])), [0.0])
    assert normalize_timestamps(np.array([], np.int64)).shape == (0,)
    assert normalize_timestamps(np.array([1, 2])).dtype == np.float32
