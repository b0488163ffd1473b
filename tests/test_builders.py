"""TFDS builders: the synthetic world from nothing, checked record by record against the generator."""

from __future__ import annotations

import numpy as np
import pytest

from dae_jax.data.synthetic.generate import generate_sequence, sequence_seed
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
        seq = generate_sequence(sequence_seed(0, "train", s), num_frames=FRAMES, height=H, width=W)
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
