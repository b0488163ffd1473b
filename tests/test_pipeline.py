"""Input pipeline on a tiny TFDS fixture: clip assembly, augmentation, encodings, sharding, determinism, state."""

import dataclasses
import itertools

import grain
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest

from dae_jax.data.pipeline import InputConfig, iterate_sequences, make_loader
from dae_jax.events import get_representation, tencode_from_voxels
from tests.tfds_fixtures import (
    HEIGHT,
    SPLITS,
    VOXEL_BINS,
    WIDTH,
    expected_depth,
    expected_encoding,
    expected_events,
    expected_rgb,
    write_fixture,
)

LENGTHS = [n for _, n in SPLITS["train"]]


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("tfds")
    return {name: str(write_fixture(root, name)) for name in ("events", "tencode", "voxels")}


def config(dataset_dir: str, **kwargs) -> InputConfig:
    """Unshuffled, un-augmented, one epoch, batch 1, with depth and RGB, unless overridden."""
    defaults = dict(split="train", batch_size=1, shuffle=False, num_epochs=1, load_rgb=True, drop_remainder=False)
    return InputConfig(dataset_dir=dataset_dir, **{**defaults, **kwargs})


def load(cfg: InputConfig, **kwargs) -> list[dict[str, np.ndarray]]:
    return list(make_loader(cfg, **{"process_index": 0, "process_count": 1, **kwargs}))


def samples(batches):
    """Split batches into per-clip dicts."""
    for batch in batches:
        for b in range(len(batch["sequence_id"])):
            yield {k: v[b] for k, v in batch.items()}


def clip_keys(batches) -> list[tuple[int, int]]:
    return [(int(s["sequence_id"]), int(s["frame_index"][0])) for s in samples(batches)]


@pytest.mark.parametrize("clip_length, clip_step, step", [(1, None, 1), (2, None, 2), (3, 1, 1), (3, 5, 3), (5, 2, 2)])
def test_clips_are_consecutive_frames_of_one_sequence(datasets, clip_length, clip_step, step):
    batches = load(config(datasets["events"], clip_length=clip_length, clip_step=clip_step, batch_size=2))
    clips = list(samples(batches))
    assert len(clips) == sum((n - clip_length) // step + 1 for n in LENGTHS if n >= clip_length)
    expected = [(s, 100 + i * step) for s, n in enumerate(LENGTHS) for i in range((n - clip_length) // step + 1)]
    assert clip_keys(batches) == expected
    for clip in clips:
        s, first = int(clip["sequence_id"]), int(clip["frame_index"][0]) - 100
        frames = range(first, first + clip_length)
        assert clip["sequence_id"].dtype == np.int32 and clip["frame_index"].dtype == np.int64
        np.testing.assert_array_equal(clip["frame_index"], [100 + f for f in frames])
        np.testing.assert_array_equal(clip["timestamp_us"], [1_000_000 * f + 50_000 for f in frames])
        np.testing.assert_array_equal(clip["depth"], [expected_depth(s, f) for f in frames])
        np.testing.assert_array_equal(clip["rgb"], [expected_rgb(s, f) / np.float32(255) for f in frames])
        assert clip["rgb_valid"].all()


def test_batch_format(datasets):
    batch = load(config(datasets["events"], clip_length=2, batch_size=3, crop=(24, 32)))[0]
    assert {k: (v.shape, v.dtype) for k, v in batch.items()} == {
        "events": ((3, 2, 24, 32, 3), np.float32),
        "rgb": ((3, 2, 24, 32, 3), np.float32),
        "rgb_valid": ((3, 2), np.bool_),
        "depth": ((3, 2, 24, 32), np.float32),
        "sequence_id": ((3,), np.int32),
        "frame_index": ((3, 2), np.int64),
        "timestamp_us": ((3, 2), np.int64),
    }
    assert set(load(config(datasets["events"], load_rgb=False, load_depth=False))[0]) == {
        "events", "sequence_id", "frame_index", "timestamp_us"
    }
    assert len(load(config(datasets["events"], batch_size=4, drop_remainder=True))) == sum(LENGTHS) // 4


def test_crop_and_flip_are_shared_by_frames_events_rgb_and_depth(datasets):
    cfg = config(datasets["events"], clip_length=3, clip_step=1, crop=(24, 32), random_crop=True, hflip=True,
                 shuffle=True, num_epochs=3, batch_size=4)
    flips, offsets = set(), set()
    for clip in samples(load(cfg)):
        s = int(clip["sequence_id"])
        x = np.rint(clip["rgb"][..., 0] * 255).astype(int)
        y = np.rint(clip["rgb"][..., 1] * 255).astype(int)
        # One window for every frame: the source coordinates are the same at every t ...
        assert (x == x[0]).all() and (y == y[0]).all()
        x, y = x[0], y[0]
        # ... and form a contiguous crop, columns reversed when flipped.
        np.testing.assert_array_equal(y, y[0, 0] + np.arange(24)[:, None] + 0 * x)
        flip = x[0, 0] > x[0, -1]
        np.testing.assert_array_equal(x, x[0, 0] + (-1 if flip else 1) * np.arange(32)[None] + 0 * y)
        flips.add(bool(flip))
        offsets.add((int(y[0, 0]), int(x.min())))
        for t, frame in enumerate(clip["frame_index"] - 100):
            np.testing.assert_array_equal(clip["depth"][t], x + 64 * y + 4096 * frame + 65536 * s)
            np.testing.assert_array_equal(np.rint(clip["rgb"][t, ..., 2] * 255), 10 * s + frame)
            positive = (x + y + frame + s) % 2
            green = 1 - (y * WIDTH + x) / np.float64(HEIGHT * WIDTH - 1)
            np.testing.assert_allclose(clip["events"][t], np.stack([positive, green, 1 - positive], -1), atol=1e-6)
    assert flips == {False, True} and len(offsets) > 5


def test_center_crop_offsets(datasets):
    clip = next(samples(load(config(datasets["events"], crop=(25, 31), hflip=False))))
    # round((40 - 25) / 2) = round(7.5) = 8 and round((56 - 31) / 2) = round(12.5) = 12, halves to even.
    assert np.rint(clip["rgb"][0, 0, 0, 1] * 255) == 8 and np.rint(clip["rgb"][0, 0, 0, 0] * 255) == 12


@pytest.mark.parametrize(
    "representation",
    [{"name": "tencode"}, {"name": "tencode", "normalize": False, "white_frame": True},
     {"name": "voxel_grid", "num_bins": 4}, {"name": "histogram"}],
)
def test_event_encoding_is_the_representation(datasets, representation):
    clips = list(samples(load(config(datasets["events"], representation=representation, clip_length=2))))
    options = {k: v for k, v in representation.items() if k != "name"}
    encode = get_representation(representation["name"], height=HEIGHT, width=WIDTH, **options)
    for clip in clips[5:8]:
        for t, frame in enumerate(clip["frame_index"] - 100):
            e = expected_events(int(clip["sequence_id"]), int(frame))
            expected = encode(e["x"], e["y"], e["p"], e["t"]).transpose(1, 2, 0)
            np.testing.assert_array_equal(clip["events"][t], expected)


def test_stored_tencode_is_used_as_stored_and_missing_frames_are_flagged(datasets):
    clips = list(samples(load(config(datasets["tencode"]))))
    assert len(clips) == sum(LENGTHS)
    for clip in clips:
        s, frame = int(clip["sequence_id"]), int(clip["frame_index"][0]) - 100
        np.testing.assert_array_equal(clip["events"][0], expected_encoding(s, frame, 3).transpose(1, 2, 0))
        # Sequence 2 has no RGB at all and no depth for its frame 1: zeros, rgb_valid False.
        assert clip["rgb_valid"][0] == (s != 2)
        np.testing.assert_array_equal(clip["rgb"][0], expected_rgb(s, frame) / np.float32(255) if s != 2 else 0)
        np.testing.assert_array_equal(clip["depth"][0], 0 if (s, frame) == (2, 1) else expected_depth(s, frame))


@pytest.mark.parametrize("representation", [{"name": "tencode"}, {"name": "tencode", "white_frame": True},
                                            {"name": "voxel_grid"}])
def test_stored_voxels(datasets, representation):
    clip = list(samples(load(config(datasets["voxels"], representation=representation))))[9]
    s, frame = int(clip["sequence_id"]), int(clip["frame_index"][0]) - 100
    voxels = expected_encoding(s, frame, VOXEL_BINS)
    if representation["name"] == "tencode":
        options = {k: v for k, v in representation.items() if k != "name"}
        voxels = tencode_from_voxels(voxels, **options)
    np.testing.assert_array_equal(clip["events"][0], voxels.transpose(1, 2, 0))


def test_shards_are_disjoint_equal_and_cover_the_clip_index(datasets):
    cfg = config(datasets["events"], shuffle=True, clip_length=2, clip_step=1)
    total = sum(n - 1 for n in LENGTHS)
    parts = [set(clip_keys(load(cfg, process_index=i, process_count=2))) for i in range(2)]
    assert len(parts[0]) == len(parts[1]) == total // 2 and not parts[0] & parts[1]
    everything = set(clip_keys(load(dataclasses.replace(cfg, shuffle=False))))
    assert parts[0] | parts[1] <= everything and len(everything) == total


def test_order_and_augmentation_follow_the_seed(datasets):
    cfg = config(datasets["events"], shuffle=True, crop=(24, 32), random_crop=True, hflip=True, batch_size=3,
                 num_epochs=2)
    first, again, other = load(cfg), load(cfg), load(dataclasses.replace(cfg, seed=1))
    for a, b in zip(first, again, strict=True):
        assert all(np.array_equal(a[k], b[k]) for k in a)
    assert clip_keys(first) != clip_keys(other)
    # Each epoch is a new permutation of every clip.
    keys = clip_keys(first)
    assert sorted(keys[:15]) == sorted(keys[15:]) == sorted(clip_keys(load(config(datasets["events"]))))
    assert keys[:15] != keys[15:]


@pytest.mark.parametrize("consumed", [2, 7])
def test_restored_iterator_continues_identically(datasets, consumed):
    cfg = config(datasets["events"], shuffle=True, crop=(24, 32), random_crop=True, hflip=True, batch_size=3,
                 num_epochs=None)
    iterator = iter(make_loader(cfg, 0, 1))
    for _ in range(consumed):  # 7 batches of 3 cross the 15-clip epoch boundary
        next(iterator)
    state = iterator.get_state()
    expected = list(itertools.islice(iterator, 4))
    restored = iter(make_loader(cfg, 0, 1))
    restored.set_state(state)
    for a, b in zip(expected, itertools.islice(restored, 4), strict=True):
        assert all(np.array_equal(a[k], b[k]) for k in a)


def test_orbax_checkpoint_of_the_iterator(datasets, tmp_path):
    cfg = config(datasets["events"], shuffle=True, batch_size=2, num_epochs=None)
    iterator = iter(make_loader(cfg, 0, 1))
    next(iterator)
    manager = ocp.CheckpointManager(tmp_path / "checkpoints", item_names=("data",))
    manager.save(1, args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(iterator)))
    manager.wait_until_finished()
    expected = next(iterator)
    restored = iter(make_loader(cfg, 0, 1))
    manager.restore(1, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(restored)))
    assert all(np.array_equal(expected[k], v) for k, v in next(restored).items())


def test_worker_processes_give_the_same_batches(datasets):
    cfg = config(datasets["events"], shuffle=True, crop=(24, 32), random_crop=True, hflip=True, batch_size=2,
                 num_epochs=None)
    in_process = list(itertools.islice(make_loader(cfg, 0, 1), 6))
    iterator = iter(make_loader(dataclasses.replace(cfg, worker_count=2), 0, 1))
    workers = list(itertools.islice(iterator, 3))
    state = iterator.get_state()
    workers += list(itertools.islice(iterator, 3))
    for a, b in zip(in_process, workers, strict=True):
        assert all(np.array_equal(a[k], b[k]) for k in a)
    restored = iter(make_loader(dataclasses.replace(cfg, worker_count=2), 0, 1))
    restored.set_state(state)
    for a, b in zip(in_process[3:], itertools.islice(restored, 3), strict=True):
        assert all(np.array_equal(a[k], b[k]) for k in a)


def test_iterate_sequences_streams_whole_sequences_centre_cropped(datasets):
    cfg = config(datasets["events"], shuffle=True, crop=(24, 32), random_crop=True, hflip=True, clip_length=3,
                 batch_size=4)
    seen = []
    for name, frames in iterate_sequences(cfg):
        frames = list(frames)
        seen.append((name, [int(b["frame_index"][0, 0]) for b in frames]))
        for batch in frames:
            assert batch["events"].shape == (1, 1, 24, 32, 3) and batch["depth"].shape == (1, 1, 24, 32)
            x = np.rint(batch["rgb"][0, 0, ..., 0] * 255)
            np.testing.assert_array_equal(x[0], 12 + np.arange(32))  # centred: round((56 - 32) / 2), not flipped
    assert seen == [(name, list(range(100, 100 + n))) for name, n in SPLITS["train"]]


def test_from_config_dict_and_config_dict(datasets):
    values = {"dataset_dir": datasets["events"], "split": "train", "batch_size": 2, "crop": [24, 32],
              "representation": {"name": "tencode", "normalize": True}}
    cfg = InputConfig.from_config(ml_collections.ConfigDict(values))
    assert cfg == InputConfig.from_config(values) and cfg.crop == (24, 32) and cfg.step == 1
    assert InputConfig(**{**values, "clip_length": 4, "clip_step": 9}).step == 4
    with pytest.raises(ValueError, match=r"unknown InputConfig keys \['clip_len'\]"):
        InputConfig.from_config({**values, "clip_len": 3})


def test_errors_name_the_dataset_and_field(datasets, tmp_path):
    good = config(datasets["events"])
    with pytest.raises(ValueError, match=r"unknown split 'val'; known splits: \['test', 'train'\]"):
        load(dataclasses.replace(good, split="val"))
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'missing'} is not a prepared TFDS dataset"):
        load(dataclasses.replace(good, dataset_dir=str(tmp_path / "missing")))
    with pytest.raises(FileNotFoundError, match="not a prepared TFDS dataset"):
        load(dataclasses.replace(good, dataset_dir=str(tmp_path)))
    with pytest.raises(ValueError, match=r"no clip of 8 frames fits in split 'train' \(longest sequence: 7"):
        load(dataclasses.replace(good, clip_length=8))
    with pytest.raises(ValueError, match="crop"):
        load(dataclasses.replace(good, crop=(48, 32)))
    with pytest.raises(ValueError, match="num_bins"):
        load(dataclasses.replace(good, representation={"name": "voxel_grid"}))
    with pytest.raises(ValueError, match="event_format 'tencode'"):
        load(config(datasets["tencode"], representation={"name": "voxel_grid", "num_bins": 3}))
    with pytest.raises(ValueError, match="fewer than process_count=20"):
        load(dataclasses.replace(good, clip_length=7), process_count=20)
    with pytest.raises(ValueError, match="must not set height/width"):
        InputConfig(datasets["events"], "train", 1, representation={"name": "tencode", "height": 4})
