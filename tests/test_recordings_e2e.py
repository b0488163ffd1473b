"""Your own recordings end to end: AEDAT4 files with frames (written by dv-processing) -> event_recordings builder
-> teacher labels -> a few distillation steps with configs/recordings.py -> `python -m dae_jax.predict` -> video."""

import json

import imageio.v2 as imageio
import jax
import numpy as np
import pytest
from PIL import Image

from configs import recordings as recordings_config
from dae_jax.convert import save_flax_params
from dae_jax.data.readers import DatasetFormatError, MissingDataError
from dae_jax.data.readers import recordings as reader
from dae_jax.events import tencode
from dae_jax.label import label_dataset
from dae_jax.models import model_from_config
from dae_jax.predict import main as predict_main
from dae_jax.train.loop import train
from dae_jax.train.state import init_params
from tests.fixtures_recordings import write_aedat4
from tfds_builders import build

# imageio reads the MP4 back through an ffmpeg subprocess (fork + exec, no Python in the child)
pytestmark = pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")

HEIGHT, WIDTH = 64, 80
FRAME_US = 50_000
TINY = {"encoder": "tiny", "input_size_width": 98, "input_size_height": 70}


def _recording(path, seed):
    """0.5 s of a bar sweeping the sensor (plus noise), colour frames at 20 Hz from 70 ms on."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(10_000, 510_000, 6000)).astype(np.int64)
    x = ((t - 10_000) / 500_000 * (WIDTH - 1)).astype(np.int64)
    x = np.where(rng.random(t.size) < 0.2, rng.integers(0, WIDTH, t.size), x)
    events = {"x": x, "y": rng.integers(0, HEIGHT, t.size), "t": t, "p": rng.integers(0, 2, t.size)}
    frames = [(int(s), rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8))
              for s in range(70_000, 510_000, FRAME_US)]
    return events, write_aedat4(path, HEIGHT, WIDTH, events, frames)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("my_recordings")
    truth = {name: _recording(root / f"{name}.aedat4", seed) for seed, name in enumerate(["drive_a", "drive_b",
                                                                                           "walk"])}
    (root / "test.txt").write_text("walk\n")
    return root, truth


def test_build_distil_predict(folder, tmp_path):
    root, truth = folder
    data_dir = build("event_recordings", "tencode", str(tmp_path / "tfds"), str(root)).data_dir
    meta = json.load(open(f"{data_dir}/metadata.json"))
    assert (meta["height"], meta["width"]) == (HEIGHT, WIDTH)
    assert meta["sequences"] == {"train": [["drive_a", 9], ["drive_b", 9]], "test": [["walk", 9]]}
    # Each example: the frame and the Tencode of the 50 ms of events before it (frames from 70 ms: all kept).
    examples = list(reader.read_sequence(root / "drive_b.aedat4"))
    events, frames = truth["drive_b"]
    for ex, (stamp, rgb) in zip(examples, frames, strict=True):
        assert ex["timestamp_us"] == stamp
        np.testing.assert_array_equal(ex["rgb"], rgb)
        keep = (events["t"] >= stamp - FRAME_US) & (events["t"] < stamp)
        np.testing.assert_array_equal(ex["events"]["t"], events["t"][keep])
        np.testing.assert_array_equal(ex["events"]["x"], events["x"][keep])

    teacher_config = {"model_type": "DAv2", "official": True, **TINY}
    teacher = model_from_config(teacher_config)
    params = init_params(teacher, jax.random.PRNGKey(0))
    save_flax_params(str(tmp_path / "teacher.msgpack"), params, teacher_config)
    labels = label_dataset(str(tmp_path / "teacher.msgpack"), teacher_config, data_dir, ["train"],
                           str(tmp_path / "labels"), 8, 8)

    c = recordings_config.get_config()
    c.model.update(TINY)
    c.data.update(dataset_dir=data_dir, crop=(56, 70), batch_size=8)
    c.teacher.labels = labels
    c.train.update(num_steps=3, log_every=1, checkpoint_every=3, picture_every=0)
    work = tmp_path / "run"
    train(c, str(work))
    losses = [json.loads(line)["loss"] for line in open(work / "metrics.jsonl")]
    assert len(losses) == 3 and np.isfinite(losses).all()

    out = tmp_path / "predictions"
    assert predict_main([f"--weights={work}", f"--input={root / 'walk.aedat4'}", f"--output={out}",
                         "--window=frames", "--video=mp4,gif"]) == 0
    stamps = np.loadtxt(out / "timestamps.txt", dtype=np.int64, ndmin=2)
    assert stamps[:, 1].tolist() == [s for s, _ in truth["walk"][1]]
    video = imageio.get_reader(str(out / "video.mp4"))
    assert video.count_frames() == len(stamps)
    assert video.get_data(0).shape == (HEIGHT, 2 * WIDTH, 3)
    # The left half of each picture is the window's Tencode (colour-coded), as the model saw it (the GIF: a
    # palette, nearly lossless for these colours; H.264's chroma subsampling smears single-pixel events).
    events, _ = truth["walk"]
    keep = (events["t"] >= stamps[0, 1] - FRAME_US) & (events["t"] < stamps[0, 1])
    code = tencode(events["x"][keep], events["y"][keep], events["p"][keep], events["t"][keep], HEIGHT, WIDTH)
    with Image.open(out / "video.gif") as gif:
        assert gif.n_frames == len(stamps)
        left = np.asarray(gif.convert("RGB"), np.float32)[:, :WIDTH]
    assert np.abs(left - np.moveaxis(code, 0, -1) * 255).mean() < 2
    depth = np.load(out / "depth" / "000000.npy")
    assert depth.shape == (HEIGHT, WIDTH) and np.isfinite(depth).all()


def test_split_rules_and_errors(tmp_path, folder):
    root, _ = folder
    assert [p.stem for p in reader.list_sequences(root, "test")] == ["walk"]
    plain = tmp_path / "plain"
    plain.mkdir()
    for name in "abcde":
        (plain / f"{name}.npz").write_bytes(b"")  # the split rules read names only
    assert [p.stem for p in reader.list_sequences(plain, "test", 0.3)] == ["d", "e"]
    assert [p.stem for p in reader.list_sequences(plain, "train", 0.3)] == ["a", "b", "c"]
    assert reader.list_sequences(plain, "test", 0.0) == []
    (plain / "test.txt").write_text("a\nzz\n")
    with pytest.raises(DatasetFormatError, match=r"names \['zz'\] are not recordings"):
        reader.list_sequences(plain, "test")
    (plain / "a.h5").write_bytes(b"")
    with pytest.raises(DatasetFormatError, match=r"recordings \['a'\] exist in more than one format"):
        reader.list_sequences(plain, "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingDataError, match="no recordings"):
        reader.list_sequences(tmp_path / "empty", "train")
    with pytest.raises(MissingDataError, match="is not a directory"):
        reader.list_sequences(tmp_path / "absent", "train")
    with pytest.raises(ValueError, match="unknown recordings split 'validation'"):
        reader.list_sequences(root, "validation")
