"""launch.py end to end: export to PyTorch and predict pictures and recordings (in this process), and its usage
errors (in a subprocess, as a user meets them)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from PIL import Image

from dae_jax.convert import save_flax_params
from dae_jax.convert.torch_io import read_state_dict
from dae_jax.models import model_from_config
from dae_jax.train.state import init_params
from tests.helpers import ROOT, subprocess_env


def run_launch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, os.path.join(ROOT, "launch.py"), *args], capture_output=True, text=True,
                          cwd=ROOT, env=subprocess_env(8), timeout=300)


def run_launch_in_process(tmp_path, mode: str, settings: str) -> str:
    """launch.py's main in this process, for modes where a process adds nothing; returns the workdir. The config
    is configs/common.py with `settings` (Python lines on `c`) applied, written as a config file of its own:
    ml_collections defines the --config.x overrides from sys.argv when launch is imported, so they can't be used."""
    from absl import flags

    import launch

    path = tmp_path / f"config_for_{mode}.py"  # a file per mode: each call loads its own
    lines = "".join(f"    {line}\n" for line in settings.strip().splitlines())
    path.write_text(f"from configs import common\n\n\ndef get_config():\n    c = common.get_config()\n{lines}"
                    "    return c\n")
    work = str(tmp_path / "work")
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["launch.py", f"--config={path}", f"--workdir={work}", f"--mode={mode}"])
    launch.main([])
    return work


@pytest.mark.parametrize("model_type", ["DAv2", "RecDAv2"])
def test_export_and_predict(tmp_path, model_type):
    config = {"model_type": model_type, "encoder": "tiny", "input_size_width": 84, "input_size_height": 70,
              "activation": "softplus"}
    model = model_from_config(config)
    params = init_params(model, jax.random.PRNGKey(0))
    params_path = str(tmp_path / "params.msgpack")
    save_flax_params(params_path, params, config)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        np.save(inputs / f"frame_{i:03d}.npy", rng.uniform(size=(50, 64, 3)).astype(np.float32))
    work = run_launch_in_process(tmp_path, "export", f'c.checkpoint = "{params_path}"')
    state_dict, ckpt_config = read_state_dict(os.path.join(work, "export", "model.pth"))
    assert ckpt_config["model"]["model_type"] == model_type and ckpt_config["model"]["encoder"] == "tiny"
    assert any(k.startswith("depth_head.gru_layer_") for k in state_dict) == (model_type == "RecDAv2")

    run_launch_in_process(tmp_path, "predict", f'c.checkpoint = "{params_path}"\nc.predict.input = "{inputs}"')
    for i in range(3):
        depth = np.load(os.path.join(work, "predictions", f"frame_{i:03d}.npy"))
        assert depth.shape == (50, 64) and np.isfinite(depth).all()
        assert np.asarray(Image.open(os.path.join(work, "predictions", f"frame_{i:03d}.png"))).shape == (50, 64, 3)
    assert os.path.isfile(os.path.join(work, "config_predict.json"))


def test_predict_mode_on_a_recording(tmp_path):
    """--mode=predict given a recording file: windows, depth maps, a video (DepthAnyEvent-R carries its state)."""
    config = {"model_type": "RecDAv2", "encoder": "tiny", "input_size_width": 84, "input_size_height": 70,
              "activation": "sigmoid", "inv_prediction": True}
    model = model_from_config(config)
    params = init_params(model, jax.random.PRNGKey(0))
    save_flax_params(str(tmp_path / "params.msgpack"), params, config)
    rng = np.random.default_rng(0)
    t = np.sort(rng.integers(0, 300_000, 5000))
    np.savez(tmp_path / "rec.npz", x=rng.integers(0, 64, t.size), y=rng.integers(0, 50, t.size), t=t,
             p=rng.integers(0, 2, t.size), width=64, height=50)
    work = Path(run_launch_in_process(tmp_path, "predict", f"""
c.model.update({config})
c.checkpoint = "{tmp_path / 'params.msgpack'}"
c.predict.update(input="{tmp_path / 'rec.npz'}", duration_ms=30, stride_ms=60, video="gif")
"""))
    stamps = np.loadtxt(work / "predictions" / "timestamps.txt", dtype=np.int64, ndmin=2)
    assert stamps[:, 1].tolist() == [int(t[0]) + 30_000 + 60_000 * k for k in range(5)]
    depth = np.load(work / "predictions" / "depth" / "000004.npy")
    assert depth.shape == (50, 64) and np.isfinite(depth).all() and depth.max() == pytest.approx(80.0)
    with Image.open(work / "predictions" / "video.gif") as gif:
        assert gif.n_frames == 5


def test_usage_errors(tmp_path):
    out = run_launch("--config=configs/common.py", f"--workdir={tmp_path}", "--mode=export")
    assert out.returncode != 0 and "--config.checkpoint is required" in out.stderr
    out = run_launch("--config=configs/common.py", f"--workdir={tmp_path}", "--mode=evaluate")
    assert out.returncode != 0 and "mode" in out.stderr
    out = run_launch("--config=configs/common.py", f"--workdir={tmp_path}", "--mode=export",
                     f"--config.checkpoint={tmp_path}/missing.pth")
    assert out.returncode != 0 and "missing.pth" in out.stderr
