"""Stored teacher labels: the labelling job (exact labels, SIGKILL and resume, refusals), the pipeline's crop/flip
of labels, and the distillation step from stored labels against the teacher in the step."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import jax
import numpy as np
import optax
import pytest
from flax import jax_utils

from dae_jax.convert import save_flax_params
from dae_jax.data import labels as L
from dae_jax.data.pipeline import InputConfig, make_loader
from dae_jax.label import label_dataset
from dae_jax.models import model_from_config
from dae_jax.train.state import create_train_state, init_params
from dae_jax.train.step import make_train_step
from tests.helpers import ROOT, recorded, subprocess_env
from tests.tfds_fixtures import SPLITS, write_fixture

TEACHER = {"model_type": "DAv2", "encoder": "tiny", "official": True, "input_size_width": 70,
           "input_size_height": 56}


def teacher_file(directory, seed: int) -> str:
    """A random tiny frame teacher with official semantics, saved as dae_jax params."""
    model = model_from_config(TEACHER)
    params = init_params(model, jax.random.PRNGKey(seed))
    # A positive last bias keeps the ReLU output alive, so the labels are not all zero.
    params["depth_head"]["output_conv2_2"]["bias"] = params["depth_head"]["output_conv2_2"]["bias"] + 1.0
    path = os.path.join(directory, f"teacher{seed}.msgpack")
    save_flax_params(path, params, TEACHER)
    return path


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> str:
    return teacher_file(str(tmp_path_factory.mktemp("teacher")), 0)


def chunk_bytes(labels_dir: str) -> dict[str, bytes]:
    out = {}
    for split in sorted(os.listdir(labels_dir)):
        if os.path.isdir(os.path.join(labels_dir, split)):
            for name in sorted(os.listdir(os.path.join(labels_dir, split))):
                out[f"{split}/{name}"] = open(os.path.join(labels_dir, split, name), "rb").read()
    return out


def test_labels_are_the_teachers_output_on_every_frame(tiny_synthetic, teacher, tmp_path):
    out = label_dataset(teacher, {}, tiny_synthetic, ["train", "test"], str(tmp_path / "labels"), batch_size=8,
                        chunk_size=5)
    manifest = L.read_manifest(out)
    assert manifest["teacher"]["sha256"] == L.weights_fingerprint(teacher)
    assert manifest["teacher"]["size_rule"]["input_size_width"] == 70
    assert all(e["complete"] for e in manifest["splits"].values())
    # The reference: the teacher applied one frame at a time, outside the labelling job, to the frames read
    # straight from TFDS.
    import tensorflow_datasets as tfds

    from dae_jax.weights import resolve

    w = resolve(teacher)
    params, config = w.params, w.model_config
    model = model_from_config(config)
    infer = jax.jit(lambda x: model.apply({"params": params}, x, method=model.infer))
    for split in ("train", "test"):
        records = tfds.builder_from_directory(tiny_synthetic).as_data_source(split=split)
        stored = L.LabelSource(out, tiny_synthetic, split)
        assert len(stored) == len(records) == (16 if split == "train" else 8)
        worst = 0.0
        for i in range(len(records)):
            expected = np.asarray(infer(np.asarray(records[i]["rgb"], np.float32)[None] / 255.0))[0]
            got = stored.__getitems__([i])[0]
            assert got.dtype == np.float16 and got.shape == (64, 80)
            worst = max(worst, float(np.max(np.abs(got.astype(np.float32) - expected)) / np.max(np.abs(expected))))
        print(f"{split}: max |stored - teacher| / max |teacher| = {worst:.1e}")
        assert worst <= 1e-3  # float16 rounding (2^-11 relative)


def test_a_killed_job_resumes_to_the_same_files(tiny_synthetic, teacher, tmp_path):
    straight = label_dataset(teacher, {}, tiny_synthetic, ["train"], str(tmp_path / "straight"), batch_size=8,
                             chunk_size=2)
    killed = str(tmp_path / "killed")
    cmd = [sys.executable, "-m", "dae_jax.label", f"--teacher={teacher}", f"--dataset_dir={tiny_synthetic}",
           "--splits=train", f"--output={killed}", "--batch_size=8", "--chunk_size=2"]
    env = subprocess_env(8)
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    log = []
    for line in proc.stderr:
        log.append(line)
        if "label train: chunk 2 " in line:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=300)
    assert proc.returncode == -signal.SIGKILL, "".join(log[-20:])
    partial = chunk_bytes(killed)
    assert 0 < len([k for k in partial if k.endswith(".array_record")]) < 8
    assert not json.load(open(os.path.join(killed, L.MANIFEST)))["splits"]["train"]["complete"]
    with pytest.raises(ValueError, match="incomplete"):
        L.LabelSource(killed, tiny_synthetic, "train")
    with recorded("absl") as messages:  # the same job again, in this process
        label_dataset(teacher, {}, tiny_synthetic, ["train"], killed, batch_size=8, chunk_size=2)
    assert any("already done, continuing" in m for m in messages), messages
    resumed = {k: v for k, v in chunk_bytes(killed).items() if ".tmp" not in k}
    assert resumed == chunk_bytes(straight)  # byte for byte, every chunk
    assert L.read_manifest(killed)["splits"] == L.read_manifest(straight)["splits"]


def test_two_processes_label_their_shares_to_the_same_files(tiny_synthetic, teacher, tmp_path):
    import socket

    single = label_dataset(teacher, {}, tiny_synthetic, ["train"], str(tmp_path / "single"), batch_size=8,
                           chunk_size=2)
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    out = str(tmp_path / "two")
    env = subprocess_env(4)
    cmd = [sys.executable, os.path.join(ROOT, "launch.py"), "--config=configs/synthetic_tiny.py",
           f"--workdir={tmp_path / 'w'}", "--mode=label", f"--config.teacher.checkpoint={teacher}",
           "--config.teacher.model.encoder=tiny", "--config.teacher.model.input_size_width=70",
           "--config.teacher.model.input_size_height=56", f"--config.data.dataset_dir={tiny_synthetic}",
           f"--config.label.output={out}", "--config.label.batch_size=8", "--config.label.chunk_size=2",
           f"--coordinator_address=localhost:{port}", "--num_processes=2"]
    procs = [subprocess.Popen([*cmd, f"--process_id={i}"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    logs = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs[0][-2000:] + logs[1][-2000:]
    # 8 chunks dealt round-robin: process 0 (the one that logs) labelled 4 of them (2 frames each, one per
    # device), process 1 the other 4.
    assert logs[0].count("label train: chunk") == 4 and "chunk 1 " not in logs[0]
    assert chunk_bytes(out) == chunk_bytes(single)
    assert L.read_manifest(out)["splits"]["train"]["complete"]


def test_labels_refuse_another_teacher_dataset_or_split(tiny_synthetic, teacher, tmp_path):
    out = label_dataset(teacher, {}, tiny_synthetic, ["test"], str(tmp_path / "labels"), batch_size=8, chunk_size=8)
    other = teacher_file(str(tmp_path), 1)
    with pytest.raises(ValueError, match=r"made with other settings \(differs in \['teacher'\]\)"):
        label_dataset(other, {}, tiny_synthetic, ["test"], out, batch_size=8, chunk_size=8)
    with pytest.raises(ValueError, match="no labels for split 'train'"):
        L.LabelSource(out, tiny_synthetic, "train")
    fixture = str(write_fixture(tmp_path / "fixture", "tencode"))
    with pytest.raises(ValueError, match="made for another dataset or split"):
        L.LabelSource(out, fixture, "test")
    with pytest.raises(FileNotFoundError, match="no labels.json"):
        L.LabelSource(str(tmp_path), tiny_synthetic, "test")
    with pytest.raises(ValueError, match=r"config.label.batch_size \(3\) must be a positive multiple"):
        label_dataset(teacher, {}, tiny_synthetic, ["test"], out, batch_size=3)
    os.remove(L.chunk_path(out, "test", 0))
    with pytest.raises(FileNotFoundError, match="label chunks missing"):
        L.LabelSource(out, tiny_synthetic, "test")


def fixture_label(sequence: int, frame: int) -> np.ndarray:
    """A label whose values say which source pixel they came from (x + 64 y), per sequence and frame."""
    y, x = np.mgrid[:40, :56]
    return ((x + 64 * y) / 8 + frame + 10 * sequence).astype(np.float16)


def test_the_pipeline_crops_and_flips_labels_with_the_events(tmp_path):
    dataset = str(write_fixture(tmp_path / "tfds", "tencode"))  # sequence 2 (seq_c) has no RGB
    out = str(tmp_path / "labels")
    os.makedirs(out)
    manifest = L.label_manifest(dataset, ["train"], {"checkpoint": "hand-written"}, chunk_size=4, batch_size=1)
    manifest["splits"]["train"]["complete"] = True
    with open(os.path.join(out, L.MANIFEST), "w") as f:
        json.dump(manifest, f)
    records = [None if s == 2 else fixture_label(s, f) for s, (_, n) in enumerate(SPLITS["train"]) for f in range(n)]
    for chunk in range(0, len(records), 4):
        L.write_chunk(out, "train", chunk // 4, records[chunk:chunk + 4])
    cfg = InputConfig(dataset_dir=dataset, split="train", batch_size=2, clip_length=2, crop=(24, 32),
                      random_crop=True, hflip=True, num_epochs=3, load_rgb=False, load_depth=True, labels=out,
                      drop_remainder=False)
    flips, seen_missing = set(), False
    for batch in make_loader(cfg, process_index=0, process_count=1):
        assert batch["teacher_disparity"].dtype == np.float32 and batch["teacher_disparity"].shape[2:] == (24, 32)
        for b in range(len(batch["sequence_id"])):
            s = int(batch["sequence_id"][b])
            for t, frame in enumerate(batch["frame_index"][b] - 100):
                label = batch["teacher_disparity"][b, t]
                if s == 2:
                    assert not batch["label_valid"][b, t] and not label.any()
                    seen_missing = True
                    continue
                assert batch["label_valid"][b, t]
                depth = batch["depth"][b, t].astype(np.int64) - 4096 * frame - 65536 * s  # x + 64 y of each pixel
                x, y = depth % 64, depth // 64
                flips.add(bool(x[0, 0] > x[0, -1]))
                np.testing.assert_array_equal(label, fixture_label(s, frame)[y, x].astype(np.float32))
    assert flips == {False, True} and seen_missing


def test_a_step_from_stored_labels_equals_the_step_with_the_teacher(teacher):
    from configs import common
    from dae_jax.weights import resolve

    w = resolve(teacher)
    teacher_params, teacher_config = w.params, w.model_config
    teacher_model = model_from_config(teacher_config)
    student = model_from_config({"encoder": "tiny", "input_size_width": 70, "input_size_height": 56,
                                 "activation": "softplus"})
    params = init_params(student, jax.random.PRNGKey(2))
    rng = np.random.default_rng(0)
    rgb = rng.uniform(size=(8, 1, 56, 70, 3)).astype(np.float32)
    stored = np.asarray(jax.jit(lambda x: teacher_model.apply({"params": teacher_params}, x,
                                                              method=teacher_model.infer))(rgb[:, 0]))
    # Every input is in the first call of each step (rgb_valid too, for the end of this test): one compilation each.
    batch = {"events": rng.uniform(size=(8, 1, 56, 70, 3)).astype(np.float32), "rgb": rgb,
             "rgb_valid": np.ones((8, 1), bool), "teacher_disparity": stored[:, None],
             "label_valid": np.ones((8, 1), bool)}
    loss_cfg = common.get_config().loss
    optimizer = optax.sgd(1.0)
    state = create_train_state(params, optimizer, 0)
    in_step, step = (jax.pmap(make_train_step(student, model, optimizer, "distill", loss_cfg), axis_name="batch")
                     for model in (teacher_model, None))  # each compiled once, used again below
    results = []
    for fn, tp in ((in_step, teacher_params), (step, None)):
        shards = {k: v.reshape(8, 1, *v.shape[1:]) for k, v in batch.items()}
        new, metrics = fn(jax_utils.replicate(state), shards, jax_utils.replicate(tp) if tp else None)
        results.append((jax.tree.map(lambda x: x[0], jax.device_get(new.params)), float(metrics["loss"][0])))
    (with_teacher, loss_t), (from_labels, loss_s) = results
    err = max(float(np.max(np.abs(a - b))) for a, b in zip(jax.tree.leaves(with_teacher), jax.tree.leaves(from_labels),
                                                            strict=True))
    print(f"teacher in the step vs stored labels: loss {loss_t:.6f} vs {loss_s:.6f}, max |Δ params| {err:.1e}")
    assert abs(loss_t - loss_s) <= 1e-5 * abs(loss_t) and err <= 1e-5
    # A frame without a stored label does not count: the loss splits into that frame's and the others'.

    def loss_with(valid):
        shards = {k: v.reshape(8, 1, *v.shape[1:]) for k, v in {**batch, "label_valid": valid}.items()}
        return float(step(jax_utils.replicate(state), shards, None)[1]["loss"][0])

    only_first = np.zeros((8, 1), bool)
    only_first[0] = True
    assert loss_with(~only_first) + loss_with(only_first) == pytest.approx(loss_s, rel=1e-5)
    assert 0 < loss_with(only_first) < loss_s
    # The teacher in the step leaves out frames without RGB the same way.
    shards = {k: v.reshape(8, 1, *v.shape[1:]) for k, v in {**batch, "rgb_valid": ~only_first}.items()}
    loss = float(in_step(jax_utils.replicate(state), shards, jax_utils.replicate(teacher_params))[1]["loss"][0])
    assert loss == pytest.approx(loss_with(~only_first), rel=1e-5)


def test_a_run_distils_from_stored_labels_without_a_teacher(tiny_synthetic, teacher, tmp_path):
    from dae_jax.train.loop import train
    from tests.helpers import tiny_config

    labels = label_dataset(teacher, {}, tiny_synthetic, ["train"], str(tmp_path / "labels"), batch_size=8,
                           chunk_size=8)
    c = tiny_config(tiny_synthetic, num_steps=4, log_every=2, checkpoint_every=1000, picture_every=2)
    c.objective = "distill"
    c.teacher.labels = labels  # and no teacher checkpoint: the run must not need one
    train(c, str(tmp_path / "run"))
    lines = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    assert [r["step"] for r in lines] == [1, 2, 3, 4] and all(np.isfinite(r["loss"]) and r["loss"] > 0 for r in lines)
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(tmp_path / "run" / "tensorboard"))
    c.data.split = "test"  # labels exist for train only
    with pytest.raises(ValueError, match="no labels for split 'test'"):
        train(c, str(tmp_path / "other"))
