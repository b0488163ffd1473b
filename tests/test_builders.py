"""TFDS builders: the synthetic world from nothing, checked record by record against the generator."""

from __future__ import annotations

import numpy as np
import pytest

from dae_jax.data.synthetic.generate import generate_sequence, sequence_seed
from dae_jax.data.synthetic.world import FAMILIES
from dae_jax.events import tencode
from tfds_builders import build, builder_class, bytes_per_example
from tfds_builders.__main__ import main as build_cli
from tfds_builders.synthetic_events.synthetic_events_dataset_builder import SyntheticConfig

H, W, FRAMES = 48, 64, 4


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    builders = {}
    for fmt in ("events", "tencode"):
        config = SyntheticConfig(name=f"tiny_{fmt}", event_format=fmt, num_train=2, num_test=1,
                                 frames_per_sequence=FRAMES, height=H, width=W, workers=1)
        builders[fmt] = build("synthetic_events", config, data_dir)
    return builders


def test_synthetic_records_match_the_generator(synthetic):
    meta = synthetic["events"].info.metadata
    assert meta["height"] == H and meta["width"] == W and meta["event_format"] == "events"
    assert meta["sequences"] == {"train": [["synth_train_000", FRAMES], ["synth_train_001", FRAMES]],
                                 "test": [["synth_test_000", FRAMES]]}
    raw = synthetic["events"].as_data_source(split="train")
    enc = synthetic["tencode"].as_data_source(split="train")
    assert len(raw) == len(enc) == 2 * FRAMES
    for s in range(2):
        family = FAMILIES[s % len(FAMILIES)]  # the builder cycles through the scene families
        seq = generate_sequence(sequence_seed(0, "train", s), num_frames=FRAMES, height=H, width=W, family=family)
        t = seq["events"]["t"]
        for i in range(FRAMES):
            record, encoded = raw[s * FRAMES + i], enc[s * FRAMES + i]
            t_ref = seq["frame_timestamps_us"][i]
            assert record["sequence"] == f"synth_train_{s:03d}".encode() and record["frame_index"] == i
            assert record["timestamp_us"] == t_ref
            keep = (t >= t_ref - 50_000) & (t < t_ref)  # brute-force window [t_ref - 50 ms, t_ref)
            for k in "xytp":
                expected = seq["events"][k][keep].astype(record["events"][k].dtype)
                np.testing.assert_array_equal(record["events"][k], expected)
            assert keep.sum() > 0
            np.testing.assert_array_equal(record["rgb"], seq["rgb"][i])
            np.testing.assert_array_equal(record["depth"], seq["depth"][i])
            ev = record["events"]
            np.testing.assert_array_equal(encoded["encoding"], tencode(ev["x"], ev["y"], ev["p"], ev["t"], H, W))


def test_synthetic_window_and_scales_reach_the_generator(tmp_path):
    """window_ms sets each frame's event window (the simulator starts window_ms + 10 ms before the first frame, so
    that one is full too); speed_scale and texture_scale reach the world."""
    config = SyntheticConfig(name="tiny_scaled", event_format="events", num_train=1, num_test=0, frames_per_sequence=2,
                             height=H, width=W, workers=1, window_ms=100.0, speed_scale=3.0, texture_scale=0.4)
    records = _records(build("synthetic_events", config, str(tmp_path)), "train")
    seq = generate_sequence(sequence_seed(0, "train", 0), num_frames=2, height=H, width=W, family=FAMILIES[0],
                            warmup_us=110_000.0, speed_scale=3.0, texture_scale=0.4)
    t = seq["events"]["t"]
    assert seq["frame_timestamps_us"][0] == 110_000
    for i, record in enumerate(records):
        t_ref = seq["frame_timestamps_us"][i]
        assert record["timestamp_us"] == t_ref
        keep = (t >= t_ref - 100_000) & (t < t_ref)
        assert keep.sum() > 0
        for k in "xytp":
            np.testing.assert_array_equal(record["events"][k], seq["events"][k][keep].astype(record["events"][k].dtype))
        np.testing.assert_array_equal(record["rgb"], seq["rgb"][i])
    with pytest.raises(ValueError, match="SyntheticConfig.window_ms must be positive"):
        SyntheticConfig(name="bad", window_ms=0.0)


def test_storage_report_and_cli_errors(synthetic, tmp_path, capsys):
    sizes = {fmt: bytes_per_example(b) for fmt, b in synthetic.items()}
    assert all(v > 0 for s in sizes.values() for v in s.values())
    assert [c.name for c in builder_class("synthetic_events").BUILDER_CONFIGS] == [
        "events", "small_events", "tencode", "small_tencode"]
    with pytest.raises(SystemExit):
        build_cli(["synthetic_events", "--config", "nope", "--data_dir", str(tmp_path)])
    assert "unknown config 'nope'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown dataset 'kitti'"):
        builder_class("kitti")


def _records(builder, split):
    source = builder.as_data_source(split=split)
    return [source[i] for i in range(len(source))]


@pytest.fixture(scope="module")
def real_roots(tmp_path_factory):
    """Miniature MVSEC and DSEC releases in their real layouts (every sequence of the splits built)."""
    from dae_jax.data.readers import dsec, mvsec
    from tests.fixtures_real_formats import write_dsec_sequence, write_mvsec_sequence

    mroot = tmp_path_factory.mktemp("mvsec_release")
    for i, rel in enumerate(p for split in mvsec.SPLITS.values() for p in split):
        rgb = "davis_left_sync" if rel.startswith("test/") else "davis"
        write_mvsec_sequence(mroot / rel, rgb_folder=rgb, seed=i)
    droot = tmp_path_factory.mktemp("dsec_release")
    for i, name in enumerate(dsec.VALIDATION_FRAMES):
        write_dsec_sequence(droot / "train" / name, num_disparity=3, num_events=4000, image_folders={}, seed=i)
    return mroot, droot


def test_mvsec_builder_from_release_layout(real_roots, tmp_path):
    from dae_jax.data.readers import mvsec
    from dae_jax.events import tencode_from_voxels
    from tfds_builders.common import EventBuilderConfig

    mroot, _ = real_roots
    built = {fmt: build("mvsec", EventBuilderConfig(name=f"t_{fmt}", event_format=fmt, splits=("test",)),
                        str(tmp_path), str(mroot)) for fmt in ("voxels", "tencode")}
    meta = built["tencode"].info.metadata
    assert (meta["height"], meta["width"]) == (260, 346)
    expected = [ex for p in mvsec.list_sequences(mroot, "test") for ex in mvsec.read_sequence(p)]
    assert [[n, c] for n, c in meta["sequences"]["test"]] == [
        [mvsec.sequence_name(p), mvsec.num_frames(p)] for p in mvsec.list_sequences(mroot, "test")]
    voxels, tencoded = _records(built["voxels"], "test"), _records(built["tencode"], "test")
    assert len(voxels) == len(tencoded) == len(expected) == 24  # 4 test sequences x 6 frames
    for ex, v, t in zip(expected, voxels, tencoded, strict=True):
        assert v["sequence"].decode() == ex["sequence"] and v["timestamp_us"] == ex["timestamp_us"]
        np.testing.assert_array_equal(v["encoding"], ex["voxels"])
        np.testing.assert_array_equal(t["encoding"], tencode_from_voxels(ex["voxels"]))
        np.testing.assert_array_equal(t["depth"], ex["depth"])
        np.testing.assert_array_equal(t["rgb"], ex["rgb"])


def test_dsec_builder_from_release_layout(real_roots, tmp_path):
    from dae_jax.data.readers import dsec
    from tfds_builders.common import EventBuilderConfig

    _, droot = real_roots
    configs = {fmt: EventBuilderConfig(name=f"val_{fmt}", event_format=fmt, splits=("validation",))
               for fmt in ("events", "tencode")}
    built = {fmt: build("dsec", c, str(tmp_path), str(droot)) for fmt, c in configs.items()}
    expected = [ex for p in dsec.list_sequences(droot, "validation") for ex in dsec.read_sequence(p)]
    raw, enc = _records(built["events"], "validation"), _records(built["tencode"], "validation")
    assert len(raw) == len(enc) == len(expected) == 20  # 10 sequences x (3 disparity maps - the first)
    for ex, r, e in zip(expected, raw, enc, strict=True):
        assert r["frame_index"] == ex["frame_index"] and r["timestamp_us"] == ex["timestamp_us"]
        for k in "xytp":
            np.testing.assert_array_equal(r["events"][k], ex["events"][k])
        np.testing.assert_array_equal(r["depth"], ex["depth"])
        assert r["rgb"].shape == (0, 0, 3)
        ev = ex["events"]
        np.testing.assert_array_equal(e["encoding"], tencode(ev["x"], ev["y"], ev["p"], ev["t"], 320, 640))
    sizes = {fmt: bytes_per_example(b)["validation"] for fmt, b in built.items()}
    assert sizes["events"] > 0 and sizes["tencode"] > 0


def test_builder_input_errors(tmp_path):
    from dae_jax.data.readers import MissingDataError
    from tfds_builders.common import EventBuilderConfig

    with pytest.raises(FileNotFoundError, match="nowhere' is not a directory with the release"):
        build("dsec", EventBuilderConfig(name="v", event_format="events", splits=("validation",)), str(tmp_path),
              str(tmp_path / "nowhere"))
    empty = tmp_path / "empty_release"
    (empty / "train").mkdir(parents=True)
    with pytest.raises(MissingDataError, match="empty_release"):
        build("dsec", EventBuilderConfig(name="w", event_format="events", splits=("validation",)), str(tmp_path),
              str(empty))
    with pytest.raises(ValueError, match=r"asks for splits \['testing'\]"):
        build("mvsec", EventBuilderConfig(name="x", event_format="tencode", splits=("testing",)), str(tmp_path),
              str(tmp_path))


def test_eventscape_builder_from_release_layout(tmp_path):
    from dae_jax.data.readers import eventscape
    from tests.fixtures_eventscape import write_root

    root = tmp_path / "release"
    write_root(root)
    built = build("eventscape", "tencode", str(tmp_path / "data"), str(root))
    meta = built.info.metadata
    assert (meta["height"], meta["width"]) == (256, 512)
    assert [n for n, _ in meta["sequences"]["train"]] == [
        "Town01/sequence_2", "Town01/sequence_10", "Town02/sequence_0", "Town03/sequence_5"]
    for split in ("train", "validation", "test"):  # the reader's split names are the builder's
        expected = [ex for p in eventscape.list_sequences(root, split) for ex in eventscape.read_sequence(p)]
        got = _records(built, split)
        assert len(got) == len(expected) > 0
        for ex, rec in zip(expected, got, strict=True):
            ev = ex["events"]
            np.testing.assert_array_equal(rec["encoding"], tencode(ev["x"], ev["y"], ev["p"], ev["t"], 256, 512))
            np.testing.assert_array_equal(rec["depth"], ex["depth"])
            np.testing.assert_array_equal(rec["rgb"], ex["rgb"])


def test_readers_share_one_interface_and_one_split_vocabulary():
    import types

    from dae_jax.data.readers import SPLIT_NAMES, SequenceReader, dsec, eventscape, mvsec
    from tfds_builders.common import ReaderBuilder

    for reader in (mvsec, dsec, eventscape):
        assert isinstance(reader, SequenceReader)
        assert set(reader.SPLITS) <= set(SPLIT_NAMES) and "train" in reader.SPLITS
    assert eventscape.sequence_name("/r/Town05_val/Town05/sequence_3") == "Town05/sequence_3"
    assert mvsec.sequence_name("/r/mvsec_dataset_day2/train") == "mvsec_dataset_day2/train"
    assert dsec.sequence_name("/r/train/zurich_city_00_a") == "zurich_city_00_a"
    half = types.SimpleNamespace(SPLITS={"train": ()}, list_sequences=len, num_frames=len)
    with pytest.raises(TypeError, match=r"READER is not a SequenceReader \(missing \['sequence_name', "
                                        r"'read_sequence', 'verify'\]\)"):
        type("Broken", (ReaderBuilder,), {"READER": half})
    other = types.SimpleNamespace(__name__="odd", SPLITS={"val": ()}, list_sequences=len, sequence_name=str,
                                  num_frames=len, read_sequence=iter, verify=len)
    with pytest.raises(TypeError, match=r"odd names splits \['val'\] outside"):
        type("Odd", (ReaderBuilder,), {"READER": other})
