"""Prediction on a recording file (depth maps, pictures, videos, progress) and the live stream API against it."""

import os

import imageio.v2 as imageio
import jax
import numpy as np
import pytest
from PIL import Image

from dae_jax.convert import save_flax_params
from dae_jax.eval.metrics import EvalSettings
from dae_jax.events import tencode
from dae_jax.models import model_from_config
from dae_jax.predict import main as predict_main
from dae_jax.predict import predict_recording
from dae_jax.predictor import Predictor
from dae_jax.recordings import Events, open_recording
from dae_jax.recordings.windows import WindowSpec
from dae_jax.stream import DepthStream
from dae_jax.train.state import init_params
from tests import fixtures_recordings as fx

# imageio reads the MP4 back through an ffmpeg subprocess (fork + exec, no Python in the child)
pytestmark = pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")

HEIGHT, WIDTH = 60, 80


def _model(model_type):
    config = {"model_type": model_type, "encoder": "tiny", "input_size_width": 98, "input_size_height": 70,
              "activation": "sigmoid", "inv_prediction": True}
    model = model_from_config(config)
    params = init_params(model, jax.random.PRNGKey(1))
    return params, config


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """An NPZ recording of 0.42 s: a bar sweeping across a 80x60 sensor, plus noise events."""
    rng = np.random.default_rng(0)
    t = np.sort(rng.integers(5_000_000, 5_420_000, 30_000)).astype(np.int64)
    x = ((t - t[0]) / 420_000 * (WIDTH - 1) + rng.normal(0, 2, t.size)).clip(0, WIDTH - 1).astype(np.uint16)
    noise = rng.random(t.size) < 0.2
    x[noise] = rng.integers(0, WIDTH, noise.sum())
    y = rng.integers(0, HEIGHT, t.size).astype(np.uint16)
    p = rng.integers(0, 2, t.size).astype(np.int8) * 2 - 1
    path = tmp_path_factory.mktemp("rec") / "sweep.npz"
    np.savez(path, x=x, y=y, t=t, p=p, width=WIDTH, height=HEIGHT)
    return path


def _saved(out_dir):
    stamps = np.loadtxt(os.path.join(out_dir, "timestamps.txt"), dtype=np.int64, ndmin=2)
    return stamps, [np.load(os.path.join(out_dir, "depth", f"{i:06d}.npy")) for i in stamps[:, 0]]


@pytest.mark.parametrize("model_type", ["DAv2", "RecDAv2"])
def test_stream_in_random_chunks_matches_file_prediction(tmp_path, recording, model_type, capsys):
    params, config = _model(model_type)
    spec = WindowSpec(duration_us=50_000, stride_us=40_000)
    predictor = Predictor(params, config)
    result = predict_recording(predictor, str(recording), str(tmp_path / "b1"), spec, batch_size=1,
                               video=("mp4", "gif"))
    stamps, depths = _saved(tmp_path / "b1")
    t = np.load(recording)["t"]  # windows end at t0 + 50 ms + k * 40 ms while complete (end <= last event + 1)
    ends = [int(t[0]) + 50_000 + 40_000 * k for k in range(20)]
    assert stamps[:, 1].tolist() == [e for e in ends if e <= t[-1] + 1]
    assert result["windows"] == len(stamps) and depths[0].shape == (HEIGHT, WIDTH)
    err = capsys.readouterr().err
    assert "windows/s" in err and "real-time factor" in err

    events = open_recording(recording).read_events()
    stream = DepthStream(predictor, HEIGHT, WIDTH, spec)
    rng = np.random.default_rng(3)
    cuts = np.sort(rng.integers(0, len(events), 60))
    bounds = [0, *cuts.tolist(), len(events)]
    frames = [f for a, b in zip(bounds[:-1], bounds[1:], strict=True) for f in stream.push(events[a:b])]
    frames += stream.close()
    assert [f.t_us for f in frames] == stamps[:, 1].tolist()
    for frame, depth in zip(frames, depths, strict=True):
        np.testing.assert_array_equal(frame.depth, depth)
        e = events[np.searchsorted(events.t, frame.t_us - 50_000):np.searchsorted(events.t, frame.t_us)]
        np.testing.assert_array_equal(frame.encoding, np.moveaxis(tencode(e.x, e.y, e.p, e.t, HEIGHT, WIDTH), 0, -1))

    # Batched prediction gives the same maps up to float rounding of other batch shapes.
    predict_recording(predictor, str(recording), str(tmp_path / "b4"), spec, batch_size=4, video=())
    stamps4, depths4 = _saved(tmp_path / "b4")
    assert stamps4.tolist() == stamps.tolist()
    np.testing.assert_allclose(np.stack(depths4), np.stack(depths), rtol=1e-5, atol=1e-6)

    if model_type == "RecDAv2":  # the state is carried: a late window predicted from a fresh state differs
        fresh, _ = Predictor(params, config)(frames[-1].encoding[None])
        assert np.abs(fresh[0] - frames[-1].depth).max() > 1e-4

    video = imageio.get_reader(str(tmp_path / "b1" / "video.mp4"))
    assert video.count_frames() == len(stamps)
    assert video.get_data(0).shape == (HEIGHT, 2 * WIDTH, 3)  # events | depth
    with Image.open(tmp_path / "b1" / "video.gif") as gif:
        assert gif.n_frames == len(stamps) and gif.size == (2 * WIDTH, HEIGHT)


def test_count_windows_and_log_depth_in_metres(tmp_path, recording):
    params, config = _model("DAv2")
    spec = WindowSpec(mode="count", count=4000)
    flags = EvalSettings(use_logdepth=True, reg_factor=3.70378, clip_distance=80.0)
    predictor = Predictor(params, config)
    predict_recording(predictor, str(recording), str(tmp_path / "m"), spec, flags, batch_size=2, video=())
    predict_recording(predictor, str(recording), str(tmp_path / "raw"), spec, None, batch_size=2, video=())
    stamps, metres = _saved(tmp_path / "m")
    _, raw = _saved(tmp_path / "raw")
    t = np.load(recording)["t"]
    assert stamps[:, 1].tolist() == [int(t[4000 * k + 3999]) for k in range(len(t) // 4000)]
    for m, r in zip(metres, raw, strict=True):  # the protocol's map: clip * exp(reg (l - 1)) / its max
        d = np.exp(3.70378 * (r.astype(np.float64) - 1.0))
        np.testing.assert_allclose(m, d / d.max() * 80.0, rtol=1e-5)


def test_bad_inputs(tmp_path, recording):
    params, config = _model("DAv2")
    with pytest.raises(ValueError, match="video formats must be among"):
        predict_recording(Predictor(params, config), str(recording), str(tmp_path / "v"), video=("avi",))
    with pytest.raises(ValueError, match="frame timestamps"):
        predict_recording(Predictor(params, config), str(recording), str(tmp_path / "f"), WindowSpec(mode="frames"))
    with pytest.raises(ValueError, match="expected frames of shape"):
        Predictor(params, config)(np.zeros((2, 10, 10, 1), np.float32))
    assert len(Events.empty()) == 0


FORMATS = {
    "aedat4": lambda path, ev: fx.write_aedat4(path, HEIGHT, WIDTH, ev),
    "evt2.raw": lambda path, ev: fx.write_raw(path, fx.raw_header([f"format EVT2;height={HEIGHT};width={WIDTH}"],
                                                                   True), fx.encode_evt2(ev)),
    "evt3.raw": lambda path, ev: fx.write_raw(path, fx.raw_header(["evt 3.0", f"geometry {WIDTH}x{HEIGHT}"], False),
                                              fx.encode_evt3(ev)),
    "h5": lambda path, ev: fx.write_h5(path, ev, dsec=True, t_offset=1_000, attrs={"height": HEIGHT,
                                                                                    "width": WIDTH}),
}


def test_every_format_gives_the_same_depth_video(tmp_path):
    """The same events written in each format predict the same depth maps through `python -m dae_jax.predict`."""
    params, config = _model("DAv2")
    weights = str(tmp_path / "student.msgpack")
    save_flax_params(weights, params, config)
    events = fx.random_events(12_000, HEIGHT, WIDTH, seed=4, t0=2_000, max_step=40)
    results = {}
    for name, write in FORMATS.items():
        path = tmp_path / f"rec_{name.split('.')[0]}.{name.split('.')[-1]}"
        write(path, events)
        out = tmp_path / f"out_{name}"
        assert predict_main([f"--weights={weights}", f"--input={path}", f"--output={out}", "--batch_size=4"]) == 0
        stamps, depths = _saved(out)
        assert imageio.get_reader(str(out / "video.mp4")).count_frames() == len(stamps) >= 4
        results[name] = (stamps, np.stack(depths))
    first_stamps, first_depths = results["aedat4"]
    for name, (stamps, depths) in results.items():
        np.testing.assert_array_equal(stamps, first_stamps, err_msg=name)
        np.testing.assert_array_equal(depths, first_depths, err_msg=name)
