"""dae_jax.weights.resolve: every kind of source gives the same params, its model and its evaluation settings;
settings a source does not store come from the fallback; bad sources name themselves."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import optax
import pytest

from configs import common
from dae_jax.convert import export_torch_checkpoint, save_flax_params
from dae_jax.eval.metrics import CLIP_DISTANCE, REG_FACTOR, EvalSettings
from dae_jax.models import model_from_config
from dae_jax.train.checkpoint import Checkpointer
from dae_jax.train.state import create_train_state, init_params
from dae_jax.weights import resolve, write_run_config

CONFIG = {"model_type": "DAv2", "encoder": "tiny", "input_size_width": 70, "input_size_height": 56,
          "activation": "sigmoid", "inv_prediction": True, "input_channels": 3, "scale_factor": 1.0,
          "official": False}
STORED = EvalSettings(use_logdepth=True, use_scaleshift=False, reg_factor=2.5, clip_distance=40.0)
FALLBACK = EvalSettings(use_logdepth=False, use_scaleshift=True, reg_factor=1.5, clip_distance=10.0)


def _params(seed: int) -> dict:
    return jax.device_get(init_params(model_from_config(CONFIG), jax.random.PRNGKey(seed)))


def _same(a, b) -> bool:
    return jax.tree.all(jax.tree.map(np.array_equal, a, b))


class _Position:
    """Stands in for the data iterator whose position a checkpoint keeps."""

    def get_state(self) -> bytes:
        return b"{}"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[str, dict, dict]:
    """A training workdir with checkpoints at steps 1 and 2 (other params each) and a log-depth loss of its own."""
    workdir = str(tmp_path_factory.mktemp("run"))
    c = common.get_config()
    c.model.update(CONFIG)
    c.loss.update(reg_factor=2.0, clip_distance=50.0)
    write_run_config(workdir, c.to_dict())
    checkpointer = Checkpointer(workdir, keep=3)
    saved = {}
    for step in (1, 2):
        saved[step] = _params(step)
        checkpointer.save(step, create_train_state(saved[step], optax.sgd(1.0), 0), _Position())
    checkpointer.close()
    return workdir, saved[1], saved[2]


def test_a_training_run_gives_its_latest_or_chosen_step_and_its_label_space(run):
    workdir, first, last = run
    w = resolve(workdir, fallback=FALLBACK)
    assert _same(w.params, last) and w.model_config == CONFIG
    # The run's label space decides, not the fallback.
    assert w.settings == EvalSettings(use_logdepth=True, use_scaleshift=False, reg_factor=2.0, clip_distance=50.0)
    assert w.source.endswith("step 2")
    assert _same(resolve(workdir, step=1).params, first)
    assert resolve(workdir, {"input_size_width": 98}).model_config["input_size_width"] == 98
    with pytest.raises(FileNotFoundError, match="no checkpoint of step 7 in .*checkpoints"):
        resolve(workdir, step=7)


def test_params_files_keep_their_settings_and_older_ones_take_the_fallback(tmp_path):
    params = _params(0)
    for name in ("p.msgpack", "p_dir"):
        path = str(tmp_path / name)
        save_flax_params(path, params, CONFIG, STORED)
        w = resolve(path, fallback=FALLBACK)
        assert _same(w.params, params) and w.model_config == CONFIG and w.settings == STORED
        bare = str(tmp_path / f"bare_{name}")
        save_flax_params(bare, params, CONFIG)  # stores no settings, as files written before they were kept
        assert resolve(bare, fallback=FALLBACK).settings == FALLBACK
        assert resolve(bare).settings == EvalSettings()
    assert EvalSettings() == EvalSettings(False, False, REG_FACTOR, CLIP_DISTANCE)  # the metric module's constants


def test_torch_files_give_their_trainer_block_and_a_bare_state_dict_the_fallback(tmp_path):
    pytest.importorskip("torch")
    params = _params(0)
    for ext in (".pth", ".safetensors"):
        path = str(tmp_path / f"m{ext}")
        export_torch_checkpoint(path, params, CONFIG, STORED)
        w = resolve(path, fallback=FALLBACK)
        assert _same(w.params, params) and w.settings == STORED
        assert {k: w.model_config[k] for k in ("encoder", "activation", "input_size_width")} == {
            "encoder": "tiny", "activation": "sigmoid", "input_size_width": 70}
    plain = str(tmp_path / "plain.pth")
    export_torch_checkpoint(plain, params, CONFIG, plain=True)  # the official layout: no config at all
    w = resolve(plain, {"activation": "sigmoid", "inv_prediction": True}, fallback=FALLBACK)
    assert _same(w.params, params) and w.settings == FALLBACK and w.model_config["activation"] == "sigmoid"


def test_bad_sources_are_named(tmp_path, run):
    with pytest.raises(FileNotFoundError, match="weights not found: .*nowhere.pth"):
        resolve(str(tmp_path / "nowhere.pth"))
    with pytest.raises(FileNotFoundError, match="no model_config.json"):
        resolve(str(tmp_path))  # a directory that is neither a run nor a params directory
    path = str(tmp_path / "p.msgpack")
    save_flax_params(path, _params(0), CONFIG)
    with pytest.raises(ValueError, match="step .* needs a training workdir"):
        resolve(path, step=3)


def test_settings_updates_skip_none_and_refuse_unknown_names():
    s = STORED.updated({"use_logdepth": None, "clip_distance": 20})
    assert s == dataclasses.replace(STORED, clip_distance=20.0) and isinstance(s.clip_distance, float)
    assert EvalSettings.from_mapping({}) == EvalSettings()
    with pytest.raises(ValueError, match=r"unknown evaluation settings \['clip'\]"):
        STORED.updated({"clip": 3.0})
    assert EvalSettings.names() == ("use_logdepth", "use_scaleshift", "reg_factor", "clip_distance")
