"""EventScape reader on miniature release-layout fixtures: listing, frames, event windows, depth, RGB, errors."""

import shutil

import numpy as np
import pytest

from dae_jax.data.readers import DatasetFormatError, MissingDataError
from dae_jax.data.readers import eventscape as es
from tests.fixtures_eventscape import prefix, write_root, write_sequence, write_timestamps


@pytest.fixture
def written(tmp_path):
    return write_sequence(tmp_path / "Town05_test")


def brute_force_window(files, t_ref_us):
    """All written events (ns rounded to µs) with t_ref - 50 ms <= t < t_ref, sorted by (t, x, y, p)."""
    t = np.round(np.concatenate([f["t"] for f in files]) / 1000).astype(np.int64)
    x, y, p = (np.concatenate([f[k] for f in files]) for k in ("x", "y", "p"))
    keep = (t >= t_ref_us - 50_000) & (t < t_ref_us)
    return sort_events(x[keep].astype(np.float32), y[keep].astype(np.float32), t[keep], p[keep].astype(np.uint8))


def sort_events(x, y, t, p):
    order = np.lexsort((p, y, x, t))
    return x[order], y[order], t[order], p[order]


def test_split_listing_in_natural_order_ignoring_stray_entries(tmp_path):
    written = write_root(tmp_path)
    (tmp_path / "Town01-03_train" / "Town01" / "__MACOSX").mkdir()
    (tmp_path / "Town01-03_train" / "Town01" / "notes.txt").write_text("x")
    train = es.list_sequences(tmp_path, "train")
    assert [es.sequence_name(p) for p in train] == [
        "Town01/sequence_2", "Town01/sequence_10", "Town02/sequence_0", "Town03/sequence_5"]
    for split in ("validation", "test"):
        assert es.list_sequences(tmp_path, split) == written[split]
    assert sum(s.num_sequences for s in es.SPLITS.values()) == 536 + 103 + 119


def test_verify_counts_frames_and_sequences(tmp_path, monkeypatch):
    write_root(tmp_path)
    with pytest.raises(DatasetFormatError, match="Town01-03_train: 4 sequences, the release has 536"):
        es.verify(tmp_path, "train")
    monkeypatch.setitem(es.SPLITS, "validation", es.SPLITS["validation"]._replace(num_sequences=1))
    assert es.verify(tmp_path, "validation") == {"Town05/sequence_1": 3}


def test_split_errors_name_what_is_expected(tmp_path):
    with pytest.raises(ValueError, match="valid splits: train, validation, test"):
        es.list_sequences(tmp_path, "val")
    with pytest.raises(MissingDataError, match="is not a directory"):
        es.list_sequences(tmp_path / "absent", "train")
    with pytest.raises(MissingDataError, match="(?s)Town05_val.*unzip Town05_val.zip"):
        es.list_sequences(tmp_path, "validation")
    write_root(tmp_path)
    shutil.rmtree(tmp_path / "Town01-03_train" / "Town02")
    with pytest.raises(MissingDataError, match="missing Town02"):
        es.list_sequences(tmp_path, "train")
    shutil.rmtree(tmp_path / "Town05_val" / "Town05" / "sequence_1")
    with pytest.raises(MissingDataError, match="no sequence folders"):
        es.list_sequences(tmp_path, "validation")


def test_frames_timestamps_and_names(written):
    examples = list(es.read_sequence(written["path"]))
    assert es.num_frames(written["path"]) == len(examples) == 6
    assert [ex["frame_index"] for ex in examples] == list(range(6))
    stamps = np.array([ex["timestamp_us"] for ex in examples])
    np.testing.assert_array_equal(stamps, np.rint(written["seconds"] * 1e6).astype(np.int64))
    assert stamps.dtype == np.int64 and np.all(np.diff(stamps) == 40_000)
    assert {ex["sequence"] for ex in examples} == {"Town05/sequence_139"}
    assert {ex["event_format"] for ex in examples} == {es.EVENT_FORMAT} == {"events"}


def test_event_windows_match_brute_force(written):
    for ex in es.read_sequence(written["path"]):
        ev = ex["events"]
        assert (ev["x"].dtype, ev["y"].dtype, ev["t"].dtype, ev["p"].dtype) == (
            np.float32, np.float32, np.int64, np.uint8)
        assert np.all(np.diff(ev["t"]) >= 0) and set(np.unique(ev["p"])) <= {0, 1}
        got = sort_events(ev["x"], ev["y"], ev["t"], ev["p"])
        expected = brute_force_window(written["events"], ex["timestamp_us"])
        for a, b in zip(got, expected, strict=True):
            np.testing.assert_array_equal(a, b)
        t_ref = ex["timestamp_us"]
        assert t_ref not in ev["t"]
        if ex["frame_index"] >= 2:
            assert ev["t"][0] == t_ref - 50_000
    first = next(es.read_sequence(written["path"]))
    assert first["events"]["t"].size == 0


@pytest.mark.parametrize("event_time", ["us", "s"])
def test_event_time_unit_is_inferred(tmp_path, written, event_time):
    other = write_sequence(tmp_path / "other", event_time=event_time)
    for a, b in zip(es.read_sequence(written["path"]), es.read_sequence(other["path"]), strict=True):
        for k in ("x", "y", "t", "p"):
            np.testing.assert_array_equal(a["events"][k], b["events"][k])


@pytest.mark.parametrize("offset_ns, message", [
    (12_000_000_000, "do not match the frame time"),
    (12_350_000_000, "not on the frame clock"),
])
def test_events_on_another_clock_are_rejected(written, offset_ns, message):
    folder = written["path"] / "events/data"
    for i, f in enumerate(written["events"]):
        np.savez(folder / f"05_139_{i:04d}_events.npz", **dict(f, t=f["t"] - offset_ns))
    with pytest.raises(DatasetFormatError, match=message):
        list(es.read_sequence(written["path"]))


def test_depth_is_metres_with_invalid_zeroed(written):
    path = written["path"]
    np.save(path / "depth/data/05_139_0001_depth.npy", written["depth"][1].astype(np.float64)[..., None])
    for ex, raw in zip(es.read_sequence(path), written["depth"], strict=True):
        expected = np.where(np.isfinite(raw) & (raw > 0), raw, 0).astype(np.float32)
        assert ex["depth"].dtype == np.float32 and ex["depth"].shape == (16, 32)
        np.testing.assert_array_equal(ex["depth"], expected)
        assert ex["depth"][5, 7] == 0 and ex["depth"][6, 8] == 0 and np.all(ex["depth"][:3] == es.CLIP_DISTANCE_M)


def test_rgb_is_aligned_and_optional(written):
    path = written["path"]
    for ex, rgb in zip(es.read_sequence(path), written["rgb"], strict=True):
        assert ex["rgb"].dtype == np.uint8 and ex["rgb"][0, 0, 0] == ex["frame_index"]
        np.testing.assert_array_equal(ex["rgb"], rgb)
    shutil.rmtree(path / "rgb")
    with pytest.raises(MissingDataError, match="missing rgb/data"):
        es.read_sequence(path)
    assert all(ex["rgb"] is None for ex in es.read_sequence(path, load_rgb=False))


def test_missing_folders_and_files(written):
    path = written["path"]
    (path / "depth/data/timestamps.txt").unlink()
    with pytest.raises(MissingDataError, match="missing timestamps file .*depth/data/timestamps.txt"):
        es.read_sequence(path, load_rgb=False)
    shutil.rmtree(path / "events")
    with pytest.raises(MissingDataError, match=r"missing events/data \(expected: depth/data, events/data, rgb/data"):
        es.read_sequence(path)
    with pytest.raises(MissingDataError, match="missing events/data"):
        es.num_frames(path)


def test_count_mismatches(tmp_path, written):
    path = written["path"]
    (path / "depth/data/05_139_0003_depth.npy").unlink()
    with pytest.raises(DatasetFormatError, match=r"depth/data: 5 \*_<index>_depth.npy files but 6 timestamps"):
        es.num_frames(path)
    other = write_sequence(tmp_path / "other")["path"]
    (other / "rgb/data/05_139_0004_image.png").rename(other / "rgb/data/05_139_0009_image.png")
    with pytest.raises(MissingDataError, match=r"missing \*_0004_image.png"):
        es.read_sequence(other)
    write_timestamps(other / "events/data/timestamps.txt", written["seconds"][:5])
    with pytest.raises(DatasetFormatError, match="events/data/timestamps.txt has 5 frames but .*depth.* has 6"):
        es.num_frames(other)
    write_timestamps(other / "events/data/timestamps.txt", written["seconds"] + 0.01)
    with pytest.raises(DatasetFormatError, match="different frame indices or times"):
        es.num_frames(other)


@pytest.mark.parametrize("target, content, message", [
    ("depth/data/05_139_0002_depth.npy", b"not numpy", "not a readable .npy"),
    ("events/data/05_139_0002_events.npz", b"not a zip", "not a readable .npz"),
    ("rgb/data/05_139_0002_image.png", b"not a png", "not a readable PNG"),
    ("depth/data/timestamps.txt", b"0 a\n1 b\n", "not a numeric whitespace table"),
    ("depth/data/timestamps.txt", b"0 2.0\n1 1.0\n", "not finite and strictly increasing"),
])
def test_unreadable_files_name_their_path(written, target, content, message):
    (written["path"] / target).write_bytes(content)
    with pytest.raises(DatasetFormatError, match=message) as err:
        list(es.read_sequence(written["path"]))
    assert str(written["path"] / target) in str(err.value)


def test_malformed_event_files(written):
    folder = written["path"] / "events/data"
    f = written["events"][2]
    np.savez(folder / "05_139_0002_events.npz", x=f["x"], y=f["y"], t=f["t"])
    with pytest.raises(DatasetFormatError, match="missing arrays p"):
        list(es.read_sequence(written["path"]))
    np.savez(folder / "05_139_0002_events.npz", **dict(f, x=f["x"] + np.uint16(32)))
    with pytest.raises(DatasetFormatError, match="outside the 32x16 image"):
        list(es.read_sequence(written["path"]))


def test_download_instructions_name_every_archive_and_folder():
    for split in es.SPLITS.values():
        assert f"{es.BASE_URL}/{split.folder}.zip" in es.MANUAL_DOWNLOAD_INSTRUCTIONS
        assert f"-d <root>/{split.folder}" in es.MANUAL_DOWNLOAD_INSTRUCTIONS
    assert prefix("Town05", "sequence_7") == "05_007"
