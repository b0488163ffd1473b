"""MVSEC and DSEC format readers on miniature sequences written in the releases' exact on-disk formats."""

import shutil

import h5py
import numpy as np
import pytest

from dae_jax.data.readers import DatasetFormatError, MissingDataError, dsec, mvsec
from tests.fixtures_real_formats import (
    BLOSC_ZSTD,
    png_bit_depth,
    write_cam_to_cam,
    write_dsec_sequence,
    write_events_h5,
    write_mvsec_sequence,
    write_png,
    write_rectify_map,
)

DSEC_SEQ = "zurich_city_05_a"


@pytest.fixture(scope="module")
def mvsec_root(tmp_path_factory):
    """Release root with every split folder; three hold data: equal counts, fewer voxels, test-split images."""
    root = tmp_path_factory.mktemp("mvsec")
    for rel in mvsec.EXPECTED_FILES:
        (root / rel).mkdir(parents=True)
    truth = {
        "train": write_mvsec_sequence(root / "train/mvsec_dataset_day2/train", seed=1),
        "fewer_voxels": write_mvsec_sequence(root / "train/mvsec_dataset_day2/validation", num_voxels=5, seed=2),
        "test": write_mvsec_sequence(root / "test/mvsec_outdoor_day1", rgb_folder="davis_left_sync", seed=3),
    }
    return root, truth


@pytest.fixture(scope="module")
def dsec_root(tmp_path_factory):
    """Release root with every validation folder; one holds a sequence with official and event-frame images."""
    root = tmp_path_factory.mktemp("dsec")
    for name in dsec.VALIDATION_FRAMES:
        (root / "train" / name).mkdir(parents=True)
    folders = {"rectified": (1080, 1440), "ev_inf": (480, 640)}
    truth = write_dsec_sequence(root / "train" / DSEC_SEQ, image_folders=folders)
    return root, truth


@pytest.fixture
def dsec_copy(dsec_root, tmp_path):
    """A private copy of the DSEC sequence without images, to break."""
    root, truth = dsec_root
    path = tmp_path / DSEC_SEQ
    shutil.copytree(root / "train" / DSEC_SEQ, path, ignore=shutil.ignore_patterns("images"))
    return path, truth


@pytest.fixture
def mvsec_copy(mvsec_root, tmp_path):
    root, truth = mvsec_root
    path = tmp_path / "mvsec_dataset_day2" / "train"
    shutil.copytree(root / "train/mvsec_dataset_day2/train", path)
    return path, truth["train"]


def nearest_loop(ref, query):
    """Brute-force nearest reference index per query, ties to the earlier."""
    out = []
    for q in query:
        distances = [abs(int(q) - int(r)) for r in ref]
        out.append(distances.index(min(distances)))
    return out


# --------------------------------------------------------------------------------------------------- MVSEC


def test_mvsec_timestamps_use_the_reference_float_conversion(tmp_path):
    stamps = tmp_path / "timestamps.txt"
    stamps.write_text("0 1504645180.833193965\n1 1504645180.883193000\n")
    # float64(1504645180.833193965) * 1e6 is exactly ...194.0: the reference reads ...194, decimal truncation ...193.
    np.testing.assert_array_equal(mvsec.read_timestamps_us(stamps), [1504645180833194, 1504645180883193])


def test_mvsec_sequence_equal_counts(mvsec_root):
    root, truth = mvsec_root
    truth = truth["train"]
    path = root / "train/mvsec_dataset_day2/train"
    examples = list(mvsec.read_sequence(path))
    assert mvsec.num_frames(path) == len(examples) == 6
    rgb_index = nearest_loop(truth["rgb_us"], truth["depth_us"])
    tie_rgb, tie_depth = truth["rgb_tie"]
    assert rgb_index[tie_depth] == tie_rgb
    assert (
        truth["rgb_us"][tie_rgb + 1] - truth["depth_us"][tie_depth]
        == truth["depth_us"][tie_depth] - truth["rgb_us"][tie_rgb]
    )
    for i, ex in enumerate(examples):
        assert ex["sequence"] == "mvsec_dataset_day2/train" and ex["frame_index"] == i
        assert ex["event_format"] == "voxels" and "events" not in ex
        assert ex["timestamp_us"] == truth["depth_us"][i] and ex["timestamp_us"].dtype == np.int64
        assert ex["voxels"].dtype == np.float32 and ex["voxels"].shape == (5, 260, 346)
        np.testing.assert_array_equal(ex["voxels"], truth["voxels"][i])
        expected_depth = np.where(np.isfinite(truth["depth"][i]), truth["depth"][i], 0.0)
        assert ex["depth"].dtype == np.float32 and np.all(np.isfinite(ex["depth"]))
        np.testing.assert_array_equal(ex["depth"], expected_depth)
        assert np.count_nonzero(~np.isfinite(truth["depth"][i])) > 0
        assert ex["rgb"].dtype == np.uint8 and ex["rgb"].shape == (260, 346, 3)
        for c in range(3):
            np.testing.assert_array_equal(ex["rgb"][..., c], truth["rgb"][rgb_index[i]])


def test_mvsec_voxels_pair_with_the_nearest_depth_when_counts_differ(mvsec_root):
    root, truth = mvsec_root
    truth = truth["fewer_voxels"]
    path = root / "train/mvsec_dataset_day2/validation"
    examples = list(mvsec.read_sequence(path, load_rgb=False))
    assert mvsec.num_frames(path) == len(examples) == 5
    depth_index = nearest_loop(truth["depth_us"], truth["voxel_us"])
    assert depth_index == [1, 2, 3, 4, 5]
    for i, ex in enumerate(examples):
        assert ex["rgb"] is None
        np.testing.assert_array_equal(ex["voxels"], truth["voxels"][i])
        j = depth_index[i]
        assert ex["timestamp_us"] == truth["depth_us"][j]
        np.testing.assert_array_equal(ex["depth"], np.nan_to_num(truth["depth"][j], nan=0.0, posinf=0.0))
    with_rgb = list(mvsec.read_sequence(path))
    rgb_index = nearest_loop(truth["rgb_us"], [truth["depth_us"][j] for j in depth_index])
    for i, ex in enumerate(with_rgb):
        np.testing.assert_array_equal(ex["rgb"][..., 1], truth["rgb"][rgb_index[i]])


def test_mvsec_test_split_reads_davis_left_sync_and_crops(mvsec_root):
    root, truth = mvsec_root
    path = root / "test/mvsec_outdoor_day1"
    assert mvsec.default_rgb_folder(path) == "davis_left_sync"
    assert mvsec.default_rgb_folder(root / "train/mvsec_dataset_day2/test") == "davis"
    ex = next(mvsec.read_sequence(path, crop=(200, 300)))
    assert ex["sequence"] == "test/mvsec_outdoor_day1"
    assert ex["voxels"].shape == (5, 200, 300) and ex["depth"].shape == (200, 300) and ex["rgb"].shape == (200, 300, 3)
    np.testing.assert_array_equal(ex["voxels"], truth["test"]["voxels"][0][:, :200, :300])
    full = next(mvsec.read_sequence(path, crop=None))
    assert full["depth"].shape == (260, 346)
    with pytest.raises(MissingDataError, match="davis"):
        mvsec.read_sequence(path, rgb_folder="davis")


def test_mvsec_splits_and_verify(mvsec_root, monkeypatch):
    root, _ = mvsec_root
    assert mvsec.list_sequences(root, "validation") == [root / "train/mvsec_dataset_day2/test"]
    assert [p.name for p in mvsec.list_sequences(root, "test")] == [
        "mvsec_outdoor_day1",
        "mvsec_outdoor_night1",
        "mvsec_outdoor_night2",
        "mvsec_outdoor_night3",
    ]
    assert len(mvsec.list_sequences(root, "train")) == 2
    with pytest.raises(ValueError, match="'val'.*train, validation, test"):
        mvsec.list_sequences(root, "val")
    with pytest.raises(MissingDataError, match="nowhere"):
        mvsec.list_sequences(root / "nowhere", "train")
    with pytest.raises(DatasetFormatError, match="mvsec_dataset_day2/train/depth/data: 8518 of"):
        mvsec.verify(root, "train")
    monkeypatch.setitem(mvsec.EXPECTED_FILES, "train/mvsec_dataset_day2/train", 6)
    monkeypatch.setitem(mvsec.EXPECTED_FILES, "train/mvsec_dataset_day2/validation", 5)
    assert mvsec.verify(root, "train") == {
        "train/mvsec_dataset_day2/train": 6,
        "train/mvsec_dataset_day2/validation": 6,
    }


def test_mvsec_missing_files(tmp_path, mvsec_copy):
    with pytest.raises(MissingDataError, match=r"nothing_here: missing depth/data, events/voxels"):
        mvsec.read_sequence(tmp_path / "nothing_here")
    path, _ = mvsec_copy
    (path / "events/voxels/timestamps.txt").unlink()
    with pytest.raises(MissingDataError, match=r"events/voxels/timestamps.txt"):
        mvsec.read_sequence(path)


@pytest.mark.parametrize(
    "folder,pattern",
    [("depth/data", "depth_0000000005.npy"), ("events/voxels", "event_tensor_0000000005.npy"), ("rgb/davis", None)],
)
def test_mvsec_count_mismatch_raises(mvsec_copy, folder, pattern):
    path, _ = mvsec_copy
    victim = path / folder / pattern if pattern else sorted((path / folder).glob("*.png"))[-1]
    victim.unlink()
    with pytest.raises(DatasetFormatError, match=rf"{folder}: \d+ files but \d+ timestamps"):
        mvsec.read_sequence(path)


def test_mvsec_bad_timestamps_and_npy(mvsec_copy):
    path, _ = mvsec_copy
    stamps = path / "depth/data/timestamps.txt"
    good = stamps.read_text()
    stamps.write_text("\n".join(line.split()[1] for line in good.splitlines()))
    with pytest.raises(DatasetFormatError, match="depth/data/timestamps.txt: expected rows of"):
        mvsec.read_sequence(path)
    stamps.write_text("".join(reversed(good.splitlines(keepends=True))))
    with pytest.raises(DatasetFormatError, match="not sorted"):
        mvsec.read_sequence(path)
    stamps.write_text(good)
    (path / "depth/data/depth_0000000000.npy").write_bytes(b"garbage")
    with pytest.raises(DatasetFormatError, match="depth_0000000000.npy: not a readable"):
        next(mvsec.read_sequence(path))


# ---------------------------------------------------------------------------------------------------- DSEC


def brute_force_window(truth, t_ref, crop_box):
    """The events of [t_ref - 50 ms, t_ref) from the full arrays, rectified and optionally cropped."""
    t_abs = truth["t"].astype(np.int64) + truth["t_offset"]
    keep = (t_abs >= t_ref - 50_000) & (t_abs < t_ref)
    rect = truth["rectify_map"][truth["y"][keep].astype(int), truth["x"][keep].astype(int)]
    x, y, p, t = rect[:, 0], rect[:, 1], truth["p"][keep], t_abs[keep]
    if crop_box is not None:
        top, left, h, w = crop_box
        x, y = x - np.float32(left), y - np.float32(top)
        inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
        x, y, p, t = x[inside], y[inside], p[inside], t[inside]
    return {"x": x, "y": y, "p": p, "t": t}


def test_dsec_fixture_matches_the_release_format(dsec_root):
    root, _ = dsec_root
    seq = root / "train" / DSEC_SEQ
    with h5py.File(seq / "events/left/events.h5") as f:
        dtypes = {name: f[name].dtype for name in dsec.EVENT_DATASETS}
        assert dtypes == {
            "events/x": np.uint16,
            "events/y": np.uint16,
            "events/p": np.uint8,
            "events/t": np.uint32,
            "ms_to_idx": np.uint64,
            "t_offset": np.int64,
        }
        for name in dsec.EVENT_DATASETS[:5]:
            filter_id, _, values, _ = f[name].id.get_create_plist().get_filter(0)
            assert filter_id == 32001 and values[4:] == BLOSC_ZSTD["compression_opts"][4:] == (1, 1, 5)
    with h5py.File(seq / "events/left/rectify_map.h5") as f:
        assert f["rectify_map"].shape == (480, 640, 2) and f["rectify_map"].dtype == np.float32
    assert png_bit_depth(seq / "disparity/event/000002.png") == 16
    assert png_bit_depth(seq / "images/left/rectified/000000.png") == 8


def test_dsec_sequence_events_depth_and_drop_first(dsec_root, monkeypatch):
    root, truth = dsec_root
    path = root / "train" / DSEC_SEQ
    reads = []
    getitem, array, read_direct = h5py.Dataset.__getitem__, h5py.Dataset.__array__, h5py.Dataset.read_direct

    def recording_getitem(self, key):
        if self.name.startswith("/events/"):
            reads.append(key)
        return getitem(self, key)

    def recording_whole(method):
        def whole(self, *args, **kwargs):
            if self.name.startswith("/events/"):
                reads.append("whole array")
            return method(self, *args, **kwargs)

        return whole

    monkeypatch.setattr(h5py.Dataset, "__getitem__", recording_getitem)
    monkeypatch.setattr(h5py.Dataset, "__array__", recording_whole(array))
    monkeypatch.setattr(h5py.Dataset, "read_direct", recording_whole(read_direct))
    examples = list(dsec.read_sequence(path))
    monkeypatch.undo()
    n = len(truth["t"])
    assert reads and all(isinstance(k, slice) and (k.stop or 0) - (k.start or 0) < n // 4 for k in reads), reads

    assert dsec.num_frames(path) == len(examples) == len(truth["disparity_us"]) - 1
    fb = truth["focal_baseline"]
    for i, ex in enumerate(examples):
        t_ref = truth["disparity_us"][i + 1]
        assert ex["sequence"] == DSEC_SEQ and ex["frame_index"] == i and ex["timestamp_us"] == t_ref
        assert ex["event_format"] == "events" and ex["rgb"] is None
        expected = brute_force_window(truth, t_ref, (80, 0, 320, 640))
        events = ex["events"]
        assert {k: v.dtype for k, v in events.items()} == {
            "x": np.float32,
            "y": np.float32,
            "p": np.uint8,
            "t": np.int64,
        }
        for key in "xypt":
            np.testing.assert_array_equal(events[key], expected[key])
        assert events["t"].size > 100 and events["t"].max() < t_ref
        assert np.all((events["y"] >= 0) & (events["y"] < 320) & (events["x"] >= 0) & (events["x"] < 640))
        uncropped = brute_force_window(truth, t_ref, None)
        assert t_ref - 50_000 in uncropped["t"] and uncropped["t"].size > events["t"].size

        values = truth["disparity"][i + 1]
        assert ex["depth"].shape == (320, 640) and ex["depth"].dtype == np.float32
        disparity = values.astype(np.float32) / np.float32(256)
        with np.errstate(divide="ignore"):
            reference = np.where(values > 0, np.float32(fb) * (np.float32(1) / disparity), 0).astype(np.float32)
            exact = np.where(values > 0, fb * 256.0 / values.astype(np.float64), 0.0)
        np.testing.assert_array_equal(ex["depth"], reference[80:400])
        valid = values[80:400] > 0
        assert np.all(ex["depth"][~valid] == 0) and np.all(ex["depth"][valid] > 0)
        ulps = np.abs(ex["depth"][valid] - exact[80:400][valid]) / np.spacing(np.float32(exact[80:400][valid]))
        assert ulps.max() <= 2.0  # three float32 roundings: f*B, 1/disparity, the product

    full = next(dsec.read_sequence(path, crop=None))
    expected = brute_force_window(truth, truth["disparity_us"][1], None)
    for key in "xypt":
        np.testing.assert_array_equal(full["events"][key], expected[key])
    assert full["depth"].shape == (480, 640) and (full["events"]["y"] < 0).any()
    np.testing.assert_array_equal(full["depth"][0, :4] > 0, [True, True, True, True])


@pytest.mark.parametrize("folder", ["ev_inf", "rectified"])
def test_dsec_images_nearest_timestamp(dsec_root, folder):
    root, truth = dsec_root
    path = root / "train" / DSEC_SEQ
    examples = list(dsec.read_sequence(path, load_rgb=True, image_folder=folder))
    index = nearest_loop(truth["image_us"], truth["disparity_us"][1:])
    tie_image, tie_disparity = truth["rgb_tie"]
    assert index[tie_disparity - 1] == tie_image
    for i, ex in enumerate(examples):
        image = truth["images"][folder][index[i]]
        if folder == "ev_inf":
            image = image[80:400]
        np.testing.assert_array_equal(ex["rgb"], image)


def test_dsec_splits_and_verify(dsec_root, monkeypatch):
    root, _ = dsec_root
    paths = dsec.list_sequences(root, "validation")
    assert [p.name for p in paths] == list(dsec.VALIDATION_FRAMES) and paths[3] == root / "train" / DSEC_SEQ
    assert len(dsec.SPLITS["train"]) == 31 and len(dsec.SPLITS["validation"]) == 10
    with pytest.raises(ValueError, match="'test'.*train, validation"):
        dsec.list_sequences(root, "test")
    with pytest.raises(MissingDataError, match="interlaken_00_c"):
        dsec.list_sequences(root, "train")
    with pytest.raises(DatasetFormatError, match=f"{DSEC_SEQ}/disparity/event: 6 PNGs, expected 877"):
        dsec.verify(root, "validation")
    for name in dsec.VALIDATION_FRAMES:
        monkeypatch.setitem(dsec.EXPECTED_FRAMES, name, 0)
    monkeypatch.setitem(dsec.EXPECTED_FRAMES, DSEC_SEQ, 6)
    assert dsec.verify(root, "validation")[DSEC_SEQ] == 6


def test_dsec_missing_files_listed(dsec_copy):
    path, _ = dsec_copy
    (path / "events/left/events.h5").unlink()
    (path / "disparity/timestamps.txt").unlink()
    with pytest.raises(MissingDataError, match=r"missing disparity/timestamps.txt, events/left/events.h5 \(expected"):
        dsec.read_sequence(path)
    with pytest.raises(FileNotFoundError):
        dsec.read_sequence(path)


def test_dsec_missing_images(dsec_copy):
    path, _ = dsec_copy
    assert next(dsec.read_sequence(path))["rgb"] is None
    with pytest.raises(MissingDataError, match="images/timestamps.txt, images/left/rectified"):
        dsec.read_sequence(path, load_rgb=True)


def test_dsec_truncated_or_corrupt_hdf5(dsec_copy):
    path, _ = dsec_copy
    events = path / "events/left/events.h5"
    data = events.read_bytes()
    events.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetFormatError, match=r"events/left/events.h5: not a readable HDF5"):
        dsec.read_sequence(path)
    (path / "events/left/rectify_map.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(DatasetFormatError, match=r"rectify_map.h5: not a readable HDF5"):
        dsec.read_sequence(path)


def test_dsec_corrupt_chunk_while_reading(dsec_copy):
    path, truth = dsec_copy
    events = path / "events/left/events.h5"
    with h5py.File(events) as f:
        offset = f["events/x"].id.get_chunk_info(3).byte_offset
    data = bytearray(events.read_bytes())
    data[offset : offset + 64] = bytes(64)
    events.write_bytes(bytes(data))
    with pytest.raises(DatasetFormatError, match=r"events.h5: cannot read events"):
        list(dsec.read_sequence(path))


@pytest.mark.parametrize("skip", ["events/t", "ms_to_idx", "t_offset"])
def test_dsec_events_h5_wrong_layout(dsec_copy, skip):
    path, truth = dsec_copy
    args = (truth["x"], truth["y"], truth["p"], truth["t"], truth["t_offset"])
    write_events_h5(path / "events/left/events.h5", *args, skip=(skip,))
    with pytest.raises(DatasetFormatError, match=rf"events.h5: missing dataset\(s\) {skip} \(expected events/x"):
        dsec.read_sequence(path)


def test_dsec_events_h5_inconsistent_lengths(dsec_copy):
    path, truth = dsec_copy
    with h5py.File(path / "events/left/events.h5", "a") as f:
        del f["events/p"]
        f.create_dataset("events/p", data=truth["p"][:-1], **BLOSC_ZSTD)
    with pytest.raises(DatasetFormatError, match="must be 1-D of one length"):
        dsec.read_sequence(path)


def test_dsec_rectify_map_wrong_shape(dsec_copy):
    path, truth = dsec_copy
    write_rectify_map(path / "events/left/rectify_map.h5", truth["rectify_map"][:, :, 0])
    with pytest.raises(DatasetFormatError, match=r"rectify_map.h5: dataset 'rectify_map' has shape \(480, 640\)"):
        dsec.read_sequence(path)
    with h5py.File(path / "events/left/rectify_map.h5", "w") as f:
        f.create_dataset("map", data=truth["rectify_map"])
    with pytest.raises(DatasetFormatError, match="missing dataset 'rectify_map'"):
        dsec.read_sequence(path)


def test_dsec_png_and_timestamp_counts(dsec_copy):
    path, truth = dsec_copy
    (path / "disparity/event/000010.png").unlink()
    with pytest.raises(
        DatasetFormatError, match=r"disparity/event: 5 files but 6 timestamps in .*disparity/timestamps"
    ):
        dsec.read_sequence(path)
    assert dsec.num_frames(path) == 4
    write_png(path / "disparity/event/000010.png", truth["disparity"][5])
    (path / "disparity/event/000000.png").rename(path / "disparity/event/000012.png")
    with pytest.raises(DatasetFormatError, match="first disparity map is 000002.png"):
        dsec.read_sequence(path)


def test_dsec_disparity_png_not_16_bit(dsec_copy):
    path, truth = dsec_copy
    write_png(path / "disparity/event/000002.png", (truth["disparity"][1] // 256).astype(np.uint8))
    with pytest.raises(DatasetFormatError, match="000002.png: expected a 16-bit 480x640 PNG"):
        next(dsec.read_sequence(path))


def test_dsec_image_count_mismatch(dsec_root, tmp_path):
    root, _ = dsec_root
    path = tmp_path / DSEC_SEQ
    shutil.copytree(root / "train" / DSEC_SEQ, path, ignore=shutil.ignore_patterns("rectified"))
    (path / "images/left/ev_inf/000000.png").unlink()
    with pytest.raises(DatasetFormatError, match=r"images/left/ev_inf: 10 files but 11 timestamps"):
        dsec.read_sequence(path, load_rgb=True, image_folder="ev_inf")


def test_dsec_calibration_errors(dsec_copy):
    path, _ = dsec_copy
    calibration = path / "calibration/cam_to_cam.yaml"
    write_cam_to_cam(calibration, with_cams_03=False)
    with pytest.raises(DatasetFormatError, match=r"cam_to_cam.yaml: no field disparity_to_depth: cams_03"):
        dsec.read_sequence(path)
    calibration.write_text("disparity_to_depth:\n  cams_03: [[1, 2], [3, 4]]\n")
    with pytest.raises(DatasetFormatError, match="cams_03 must be a 4x4 Q"):
        dsec.read_sequence(path)
    calibration.write_text("disparity_to_depth: [unclosed\n")
    with pytest.raises(DatasetFormatError, match="cam_to_cam.yaml: not valid YAML"):
        dsec.read_sequence(path)
    write_cam_to_cam(calibration)
    assert dsec.read_focal_baseline(calibration) == pytest.approx(569.7632987676102 * 0.5999817, rel=1e-12)


def test_dsec_bad_timestamps(dsec_copy):
    path, _ = dsec_copy
    stamps = path / "disparity/timestamps.txt"
    stamps.write_text(stamps.read_text().replace("\n", " 1\n", 1))
    with pytest.raises(DatasetFormatError, match="disparity/timestamps.txt: expected one integer"):
        dsec.read_sequence(path)


def test_crop_larger_than_data(mvsec_root, dsec_copy):
    root, _ = mvsec_root
    with pytest.raises(DatasetFormatError, match="smaller than the crop 300x346"):
        next(mvsec.read_sequence(root / "train/mvsec_dataset_day2/train", crop=(300, 346)))
    path, _ = dsec_copy
    with pytest.raises(DatasetFormatError, match="smaller than the crop 500x640"):
        dsec.read_sequence(path, crop=(500, 640))
