"""Training: the pmapped step, learning, preemption and resumption, two processes, config errors, non-finite
steps, a single compilation of the step, checkpoints written before TrainState.first_bad_step.

Runs on the 8 virtual CPU devices of tests/conftest.py; subprocess runs get their device count from XLA_FLAGS.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import jax_utils

from configs import synthetic_tiny
from dae_jax.models import model_from_config
from dae_jax.train.loop import train, validate
from dae_jax.train.state import create_train_state, init_params
from dae_jax.train.step import make_train_step
from tests.helpers import OVERRIDES, ROOT, recorded, subprocess_env, tiny_config

TINY = {"encoder": "tiny", "input_size_width": 70, "input_size_height": 56, "activation": "softplus"}


@pytest.fixture(scope="module")
def dataset(tiny_synthetic):
    return tiny_synthetic


@pytest.mark.parametrize("objective", ["supervised", "distill"])
def test_pmap_step_equals_single_device_step(objective):
    assert jax.device_count() == 8
    student = model_from_config(TINY)
    params = init_params(student, jax.random.PRNGKey(0))
    teacher = model_from_config({"encoder": "tiny", "official": True, "input_size_width": 70,
                                 "input_size_height": 56})
    teacher_params = init_params(teacher, jax.random.PRNGKey(1))
    rng = np.random.default_rng(0)
    depth = rng.uniform(2, 60, (8, 1, 56, 70)).astype(np.float32)
    depth[rng.uniform(size=depth.shape) < 0.2] = 0
    batch = {"events": rng.uniform(size=(8, 1, 56, 70, 3)).astype(np.float32), "depth": depth,
             "rgb": rng.uniform(size=(8, 1, 56, 70, 3)).astype(np.float32)}
    optimizer = optax.sgd(1.0)  # the update is the averaged gradient itself, so the comparison is direct
    step = make_train_step(student, teacher, optimizer, objective, synthetic_tiny.get_config().loss)
    state = create_train_state(params, optimizer, 0)
    results = {}
    for n in (8, 1):
        devices = jax.devices()[:n]
        p_step = jax.pmap(step, axis_name="batch", devices=devices)
        shards = {k: v.reshape(n, 8 // n, *v.shape[1:]) for k, v in batch.items()}
        new, metrics = p_step(jax_utils.replicate(state, devices), shards,
                              jax_utils.replicate(teacher_params, devices))
        # On the host, in NumPy: an eager JAX op per parameter would compile a program per shape.
        results[n] = (jax.tree.map(lambda x: x[0], jax.device_get(new.params)), float(metrics["loss"][0]))
    start = jax.device_get(params)
    grad8 = jax.tree.map(np.subtract, results[8][0], start)
    grad1 = jax.tree.map(np.subtract, results[1][0], start)
    scale = max(float(np.abs(g).max()) for g in jax.tree.leaves(grad1))
    err = max(float(np.abs(a - b).max()) for a, b in zip(jax.tree.leaves(grad8), jax.tree.leaves(grad1), strict=True))
    print(f"{objective}: pmap(8) vs 1 device: loss {results[8][1]:.6f} vs {results[1][1]:.6f}, "
          f"max |Δ update| / max |update| = {err / scale:.2e}")
    assert abs(results[8][1] - results[1][1]) <= 1e-5 * abs(results[1][1])
    assert err <= 1e-4 * scale


def test_a_tiny_student_overfits(dataset, tmp_path):
    c = tiny_config(dataset, num_steps=80, log_every=80, checkpoint_every=1000, picture_every=40)
    c.data.update(random_crop=False, hflip=False)
    c.eval.update(every=40, split="test")
    train(c, str(tmp_path))
    best = json.load(open(tmp_path / "best" / "best.json"))
    assert best["step"] in (40, 80) and best["metric"] == "_abs_rel_diff" and best["value"] > 0
    assert (tmp_path / "best" / "params.msgpack").exists() and (tmp_path / "eval" / "step_80" / "eval.csv").exists()
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(tmp_path / "tensorboard"))
    losses = [json.loads(line)["loss"] for line in open(tmp_path / "metrics.jsonl")]
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    print(f"overfit: loss {first:.4f} -> {last:.4f}")
    assert len(losses) == 80 and last < 0.5 * first


def test_bad_config_values_are_refused(dataset):
    for field, value, message in [
        ("objective", "selfsup", "config.objective must be one of"),
        ("loss.label_space", "depth", "config.loss.label_space must be one of"),
        ("train.dtype", "float16", "config.train.dtype must be one of"),
        ("data.batch_size", 12, r"config.data.batch_size \(12\) must be a multiple of the number of devices \(8\)"),
        ("input", "frames", "config.input must be 'events' or 'rgb'"),
        ("eval.metric", "accuracy", "config.eval.metric must be one of the metric keys"),
    ]:
        c = tiny_config(dataset)
        c.eval.every = 10  # eval.metric is checked when evaluation runs during training
        section, _, key = field.rpartition(".")
        (c[section] if section else c)[key] = value
        with pytest.raises(ValueError, match=message):
            validate(c)
    c = tiny_config(dataset)
    c.objective = "distill"
    with pytest.raises(ValueError, match=r"config.teacher.checkpoint .* or config.teacher.labels .* is required"):
        validate(c)
    c = tiny_config(dataset)
    c.loss.update(label_space="disparity", anchor_at_max=True)
    with pytest.raises(ValueError, match="config.loss.anchor_at_max anchors log depth: it needs"):
        validate(c)
    c = tiny_config(dataset)
    c.optim.schedule = "linear"
    with pytest.raises(ValueError, match="config.optim.schedule must be one of"):
        train(c, "/tmp/unused_workdir_for_bad_schedule")


def launch_cmd(dataset: str, workdir: str, num_steps: int, *extra: str) -> list[str]:
    return [sys.executable, os.path.join(ROOT, "launch.py"), "--config=configs/synthetic_tiny.py",
            f"--workdir={workdir}", "--mode=train", f"--config.data.dataset_dir={dataset}",
            f"--config.train.num_steps={num_steps}", "--config.train.log_every=1",
            "--config.train.checkpoint_every=1000",
            *(f"--config.{k}={v}".replace(" ", "") for k, v in OVERRIDES.items()), *extra]


def losses_of(workdir) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in map(json.loads, open(os.path.join(workdir, "metrics.jsonl")))]


def test_sigterm_then_resume_matches_an_uninterrupted_run(dataset, tmp_path):
    steps = 10
    straight = str(tmp_path / "straight")  # uninterrupted, in this process (also 8 devices)
    train(tiny_config(dataset, num_steps=steps, log_every=1, checkpoint_every=1000), straight)
    resumed = str(tmp_path / "resumed")
    proc = subprocess.Popen(launch_cmd(dataset, resumed, steps), env=subprocess_env(8), cwd=ROOT,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    log = []
    for line in proc.stderr:
        log.append(line)
        if f"step 4/{steps}" in line:
            proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=600) == 0, "".join(log[-20:])
    saved = [line for line in log if "SIGTERM: saved step" in line]
    assert saved, "".join(log[-20:])
    interrupted_at = int(saved[0].split("saved step ")[1].split()[0])
    assert 4 <= interrupted_at < steps
    with recorded("absl") as messages:  # resumed in this process: a new process adds nothing here
        train(tiny_config(dataset, num_steps=steps, log_every=1, checkpoint_every=1000), resumed)
    assert any(f"at step {interrupted_at}" in m for m in messages), messages
    expected, got = losses_of(straight), losses_of(resumed)
    assert [s for s, _ in got] == list(range(1, steps + 1))
    print(f"interrupted at step {interrupted_at}; max |Δ loss| vs uninterrupted = "
          f"{max(abs(a - b) for (_, a), (_, b) in zip(got, expected, strict=True)):.1e}")
    assert got == expected  # step for step, bit for bit
    # The same checkpoint restores onto another device count and training goes on.
    out = subprocess.run(launch_cmd(dataset, resumed, steps + 2), env=subprocess_env(2), cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0 and f"at step {steps}" in out.stderr, out.stderr[-2000:]
    assert [s for s, _ in losses_of(resumed)][-2:] == [steps + 1, steps + 2]


class _NaNEventsAt:
    """The pipeline with NaN events in its `bad`-th batch (1-based), so that step's loss is not finite."""

    def __init__(self, loader, bad: int):
        self.batches, self.bad, self.count = iter(loader), bad, 0

    def __iter__(self):
        return self

    def __next__(self):
        batch = next(self.batches)
        self.count += 1
        return dict(batch, events=np.full_like(batch["events"], np.nan)) if self.count == self.bad else batch

    def get_state(self):
        return self.batches.get_state()


def test_a_non_finite_step_is_named_exactly_and_never_checkpointed(dataset, tmp_path, monkeypatch):
    import orbax.checkpoint as ocp

    from dae_jax.train import loop

    make_loader = loop.make_loader
    monkeypatch.setattr(loop, "make_loader", lambda cfg: _NaNEventsAt(make_loader(cfg), 3))
    # Metrics reach the host at step 4 (a checkpoint step) and 5 (a log step): the loop learns of step 3 late.
    c = tiny_config(dataset, num_steps=10, log_every=5, checkpoint_every=2, picture_every=0)
    with pytest.raises(FloatingPointError, match=r"non-finite loss or gradient at step 3 \(loss "):
        train(c, str(tmp_path))
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["2"]  # step 4's state (= step 2's) was not saved
    assert [s for s, _ in losses_of(tmp_path)] == [1, 2]
    manager = ocp.CheckpointManager(str(tmp_path / "checkpoints"), item_names=("state", "data"))
    saved = manager.restore(2, args=ocp.args.Composite(state=ocp.args.StandardRestore()))["state"]
    manager.close()
    assert int(saved["step"]) == 2 and int(saved["first_bad_step"]) == 0


def test_the_step_compiles_once(dataset, tmp_path):
    with recorded("jax") as messages, jax.log_compiles(True):
        train(tiny_config(dataset, num_steps=3, log_every=2, checkpoint_every=1000, picture_every=0), str(tmp_path))
    events = "float32[8,1,1,56,70,3]"  # the step's input: (devices, batch per device, T, H, W, C)
    compiles = [m for m in messages if m.startswith("Compiling") and events in m]
    assert len(compiles) == 1, compiles


def test_a_checkpoint_from_before_first_bad_step_resumes(tmp_path):
    import grain

    from dae_jax.train.checkpoint import Checkpointer

    optimizer = optax.adam(1e-3)
    state = create_train_state({"w": jnp.arange(3.0)}, optimizer, 0).replace(step=jnp.array(5, jnp.int32))
    old = {k: getattr(state, k) for k in ("step", "params", "opt_state", "rng")}  # TrainState's old fields
    data = iter(grain.MapDataset.range(10).to_iter_dataset())
    next(data), next(data)
    checkpointer = Checkpointer(str(tmp_path), 1)
    checkpointer.save(5, old, data)
    checkpointer.close()
    data = iter(grain.MapDataset.range(10).to_iter_dataset())
    checkpointer = Checkpointer(str(tmp_path), 1)  # as a new process would
    restored = checkpointer.restore(create_train_state({"w": jnp.zeros(3)}, optimizer, 1), data)
    checkpointer.close()
    assert int(restored.step) == 5 and int(restored.first_bad_step) == 0 and next(data) == 2
    np.testing.assert_array_equal(restored.params["w"], [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(restored.rng, jax.random.PRNGKey(0))


@pytest.mark.slow  # ~1.5 min of compilation in two processes: python -m pytest -m slow
def test_two_processes_train_together(dataset, tmp_path):
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    workdir = str(tmp_path / "two")
    procs = [subprocess.Popen(launch_cmd(dataset, workdir, 3, f"--coordinator_address=localhost:{port}",
                                         "--num_processes=2", f"--process_id={i}"),
                              env=subprocess_env(2), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)
             for i in range(2)]
    logs = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs[0][-2000:] + logs[1][-2000:]
    assert "step 3/3" in logs[0]
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["3"]
    data_states = os.listdir(os.path.join(workdir, "checkpoints", "3", "data"))
    assert sorted(f for f in data_states if f.startswith("process_")) == ["process_0-of-2.json", "process_1-of-2.json"]
    assert [s for s, _ in losses_of(workdir)] == [1, 2, 3]


def test_sky_as_far_trains_missing_ground_truth_as_the_far_end():
    from dae_jax.train.step import depth_to_logdepth, make_targets

    depth = jnp.array([[[0.0, 2.0], [40.0, 120.0]]])
    cfg = {"label_space": "logdepth", "clip_distance": 80.0, "reg_factor": 3.70378}
    target, mask = make_targets("supervised", cfg, depth, None)
    np.testing.assert_array_equal(mask, [[[False, True], [True, True]]])
    sky_target, sky_mask = make_targets("supervised", {**cfg, "sky_as_far": True}, depth, None)
    assert bool(sky_mask.all())
    np.testing.assert_allclose(sky_target[0, 0, 0], 1.0)
    np.testing.assert_allclose(sky_target[0, 0, 1:], target[0, 0, 1:])
    np.testing.assert_allclose(sky_target[0, 1], depth_to_logdepth(depth[0, 1], 80.0, 3.70378))
    disparity, _ = make_targets("supervised", {**cfg, "label_space": "disparity", "sky_as_far": True}, depth, None)
    np.testing.assert_allclose(disparity, [[[0.0, 0.5], [1 / 40, 1 / 120]]], rtol=1e-6)


def test_ground_truth_rescaled_as_the_protocol_scores_it():
    """rescale_ground_truth: each image scaled so its farthest point is at the clip distance (a 5 m room becomes
    80 m deep), the same numbers the evaluation's prepare_target gives; images reaching the clip are unchanged."""
    from dae_jax.eval.metrics import prepare_target
    from dae_jax.train.step import depth_to_logdepth, make_targets

    room = np.array([[1.0, 2.5], [5.0, 0.0]])
    street = np.array([[3.0, 20.0], [120.0, 0.0]])
    depth = jnp.asarray(np.stack([room, street, np.zeros((2, 2))]), jnp.float32)
    cfg = {"label_space": "logdepth", "clip_distance": 80.0, "reg_factor": 3.70378, "rescale_ground_truth": True,
           "sky_as_far": True}
    target, mask = make_targets("supervised", cfg, depth, None)
    assert bool(mask.all())
    for i, frame in enumerate((room, street)):
        expected = np.where(frame > 0, depth_to_logdepth(prepare_target(frame, 80.0), 80.0, 3.70378), 1.0)
        np.testing.assert_allclose(target[i], expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(target[0, 0, 0], 1 + np.log(16.0 / 80.0) / 3.70378, rtol=1e-6)  # 1 m of 5 m -> 16 m
    np.testing.assert_allclose(target[2], 1.0)  # all sky: the far end, no division by zero


def test_metric_teacher_labels_keep_their_scale():
    """teacher_scale 'metric': the teacher's output is 1/d in 1/m, so the label is the ground truth's log depth of
    d = 1/r; 'relative' anchors each image at its nearest point instead."""
    from dae_jax.train.step import depth_to_logdepth, make_targets

    depth = np.array([[[4.0, 10.0], [40.0, 160.0]]], np.float32)
    cfg = {"label_space": "logdepth", "clip_distance": 80.0, "reg_factor": 3.70378}
    metric, mask = make_targets("distill", {**cfg, "teacher_scale": "metric"}, None, jnp.asarray(1 / depth))
    assert bool(mask.all())
    np.testing.assert_allclose(metric, depth_to_logdepth(np.minimum(depth, 80.0), 80.0, 3.70378), rtol=1e-6)
    relative, _ = make_targets("distill", cfg, None, jnp.asarray(7.0 / depth))  # any scale: nearest point is 0
    np.testing.assert_allclose(relative, np.log(depth / 4.0) / 3.70378, rtol=1e-5, atol=1e-6)


def test_logdepth_teacher_labels_are_its_output():
    """teacher_scale 'logdepth' (the demo's stand-in predicts log depth itself): the label is the output, clipped to the
    labels' [0, 1], and every pixel counts."""
    from dae_jax.train.step import make_targets

    out = np.array([[[-0.2, 0.0], [0.37, 1.3]]], np.float32)
    cfg = {"label_space": "logdepth", "clip_distance": 80.0, "reg_factor": 3.70378, "teacher_scale": "logdepth"}
    label, mask = make_targets("distill", cfg, None, jnp.asarray(out))
    assert bool(mask.all())
    np.testing.assert_array_equal(label, np.array([[[0.0, 0.0], [0.37, 1.0]]], np.float32))
