"""Evaluation end to end on the synthetic world: a training run's checkpoint, its exported .pth, DepthAnyEvent-R
state handling, CSV/JSON/pictures and the command line."""

from __future__ import annotations

import csv
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import synthetic_tiny
from dae_jax.convert import export_torch_checkpoint, save_flax_params
from dae_jax.data.pipeline import InputConfig, iterate_sequences, read_split
from dae_jax.eval import metrics as M
from dae_jax.eval.__main__ import main as eval_cli
from dae_jax.eval.evaluate import evaluate
from dae_jax.models import model_from_config
from dae_jax.train.loop import train
from dae_jax.train.state import init_params
from dae_jax.weights import resolve
from tests.helpers import tiny_config
from tfds_builders import build
from tfds_builders.synthetic_events.synthetic_events_dataset_builder import SyntheticConfig


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    config = SyntheticConfig(name="eval_tiny", event_format="tencode", num_train=1, num_test=2,
                             frames_per_sequence=5, height=64, width=80, workers=1)
    return str(build("synthetic_events", config, str(tmp_path_factory.mktemp("tfds"))).data_dir)


@pytest.fixture(scope="module")
def run(tiny_synthetic, tmp_path_factory):
    """Two training steps on the session's world, with the tests' shared training settings (and so their compiled
    step); evaluated below on this module's world of two test sequences."""
    workdir = str(tmp_path_factory.mktemp("run"))
    train(tiny_config(tiny_synthetic, num_steps=2, log_every=1), workdir)  # writes config_train.json
    return workdir


def test_checkpoint_and_exported_pth_give_identical_metrics(run, dataset, tmp_path):
    w = resolve(run)
    params, model_config, flags = w.params, w.model_config, w.settings
    assert flags.use_logdepth is True  # the run trained in log-depth space
    data = InputConfig(dataset_dir=dataset, split="test", batch_size=1, shuffle=False)
    out = str(tmp_path / "orbax")
    from_run = evaluate(params, model_config, data, flags, out, batch_size=3, pictures=2, gif=True)
    pth = str(tmp_path / "model.pth")
    export_torch_checkpoint(pth, params, model_config, flags)
    w2 = resolve(pth)
    assert w2.settings == flags
    from_pth = evaluate(w2.params, w2.model_config, data, w2.settings, batch_size=3)  # same batching, same arithmetic
    assert from_run["mean"] == from_pth["mean"]
    assert set(from_run["sequences"]) == {"synth_test_000", "synth_test_001"}
    rows = list(csv.reader(open(os.path.join(out, "eval.csv"))))
    assert rows[0][0] == "sequence" and [r[0] for r in rows[1:]] == ["synth_test_000", "synth_test_001", "MEAN"]
    assert rows[0][1:] == list(M.METRIC_KEYS)
    assert json.load(open(os.path.join(out, "eval.json")))["mean"]["_abs_rel_diff"] == pytest.approx(
        from_run["mean"]["_abs_rel_diff"])
    pictures = sorted(os.listdir(os.path.join(out, "pictures", "synth_test_000")))
    assert pictures == ["000000.png", "000001.png"]
    from PIL import Image

    gif = Image.open(os.path.join(out, "pictures", "synth_test_000.gif"))
    assert gif.n_frames == 2 and gif.size == (4 * 80, 64)  # events | prediction | ground truth | error
    # The drawn frames' metric-depth predictions come back too, as the protocol prepares them.
    assert sorted(from_run["pictures"]) == [(s, i) for s in ("synth_test_000", "synth_test_001") for i in (0, 1)]
    assert from_pth["pictures"] == {}
    frame = next(iterate_sequences(data))[1]
    first = next(frame)
    model = model_from_config(model_config)
    infer = jax.jit(lambda p, x: model.apply({"params": p}, x, method="infer"))
    raw = np.asarray(infer(params, first["events"][:, 0]))[0]
    np.testing.assert_allclose(from_run["pictures"][("synth_test_000", 0)],
                               M.prepare_prediction(raw, first["depth"][0, 0], True, False), rtol=1e-4)


def test_launch_exports_a_training_run_without_a_checkpoint_flag(run):
    from dae_jax.eval.metrics import EvalSettings
    from launch import _weights

    c = synthetic_tiny.get_config()
    got, want = _weights(c, run), resolve(run)
    settings = got.settings
    assert got.model_config == want.model_config
    assert jax.tree.all(jax.tree.map(np.array_equal, got.params, want.params))
    # the run's label space (log depth) decides what its export stores, not config.export
    assert settings == EvalSettings.of_loss(c.loss) and settings.use_logdepth == (c.loss.label_space == "logdepth")
    with pytest.raises(Exception, match="no config_train.json"):
        _weights(c, os.path.dirname(run))


def test_recurrent_state_resets_per_sequence(dataset, tmp_path):
    config = {"model_type": "RecDAv2", "encoder": "tiny", "input_size_width": 84, "input_size_height": 70,
              "activation": "softplus"}
    model = model_from_config(config)
    params = init_params(model, jax.random.PRNGKey(3))
    data = InputConfig(dataset_dir=dataset, split="test", batch_size=1, shuffle=False)
    flags = {"use_logdepth": True}
    result = evaluate(params, config, data, flags, batch_size=2)  # runs of 2 frames: the state crosses calls
    # Independent: each whole sequence through the scanned clip from the zero state, then the metrics.
    split = read_split(dataset, "test")
    from dae_jax.data.pipeline import iterate_sequences

    infer = jax.jit(lambda p, x: model.apply({"params": p}, x, method=model.infer))
    for name, frames in iterate_sequences(data):
        frames = list(frames)
        clip = jnp.asarray(np.concatenate([f["events"] for f in frames], axis=1))
        depth, _ = infer(params, clip)
        acc = M.SequenceAccumulator()
        for f, pred in zip(frames, np.asarray(depth[0]), strict=True):
            acc.add(name, M.evaluate_frame(pred, f["depth"][0, 0], **flags))
        expected = acc.sequence_means()[name]
        for key in ("_abs_rel_diff", "_RMS_linear", "_threshold_delta_1.25"):
            assert result["sequences"][name][key] == pytest.approx(expected[key], rel=1e-5, nan_ok=True)
    assert [n for n, _, _ in split.sequences] == list(result["sequences"])


def test_command_line(dataset, tmp_path, capsys):
    config = {"model_type": "DAv2", "encoder": "tiny", "input_size_width": 84, "input_size_height": 70}
    params = init_params(model_from_config(config), jax.random.PRNGKey(0))
    path = str(tmp_path / "p.msgpack")
    save_flax_params(path, params, config)
    assert eval_cli(["--weights", path, "--dataset_dir", dataset, "--split", "test", "--output",
                     str(tmp_path / "out"), "--use_logdepth"]) == 0
    assert "_abs_rel_diff=" in capsys.readouterr().out
    assert os.path.isfile(tmp_path / "out" / "eval.csv")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        eval_cli(["--weights", str(tmp_path / "nowhere.msgpack"), "--dataset_dir", dataset])
