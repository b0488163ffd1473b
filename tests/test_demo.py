"""The end-to-end demo on a miniature synthetic world: every stage runs, the distilled students never read ground
truth, the exported students are reproduced by the PyTorch reference, finished stages are not re-run, a given
teacher checkpoint replaces the stand-in, a wrong exported weight is caught, and a model that has not shown learning
fails the demo after its results are written (check_claims)."""

from __future__ import annotations

import json
import os

import jax
import ml_collections
import numpy as np
import pytest
from PIL import Image

from configs import demo as demo_config
from dae_jax.convert import PARITY_LIMIT, verify_torch_export
from dae_jax.demo import DemoClaimError, check_claims, recurrent_start, run_demo, student_config
from dae_jax.train.loop import input_config

torch = pytest.importorskip("torch")


def _config(data_dir: str):
    c = demo_config.get_config()
    c.model.update(input_size_width=84, input_size_height=70)  # DepthAnyEvent-R needs at least 70x70
    c.teacher.model.update(input_size_width=84, input_size_height=70)
    c.data.update(batch_size=8, crop=(56, 70))
    c.train.update(num_steps=2, log_every=1, checkpoint_every=2)
    c.eval.update(batch_size=4, pictures=2)
    # One student (DepthAnyEvent-R, the path with state) and one objective keep this to one teacher and one
    # student compilation; the other stages run the same code with other configs.
    c.demo.update(data_dir=data_dir, students=("recdav2",), objectives=("distill",),
                  recurrent_clip_length=2, recurrent_batch_size=8, parity_frames=3)
    # The stand-in teacher is trained here (not the shipped weights) on a miniature frame world of its own.
    c.demo.teacher.update(weights="", steps=2, warmup_steps=1, crop=(56, 70))
    c.demo.teacher.world = dict(name="demo_test_teacher", num_train=2, num_test=0, frames_per_sequence=2, seed=1,
                                height=64, width=80, workers=1)
    c.demo.dataset = dict(name="demo_test", num_train=1, num_test=2, frames_per_sequence=6, seed=0, height=64,
                          width=80, workers=1)
    c.demo.margins.check = False  # 2 training steps cannot pass the claims (test_failed_claims_fail_the_demo)
    return c


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("data"))
    workdir = str(tmp_path_factory.mktemp("demo"))
    config = _config(data_dir)
    return config, workdir, run_demo(config, workdir)


def test_demo_runs_every_stage_and_reports(demo_run):
    config, workdir, summary = demo_run
    assert list(summary["table"]) == ["no_input", "teacher", "recdav2/untrained", "recdav2/distill",
                                      "recdav2/distill_no_events"]
    for row in summary["table"].values():
        assert all(np.isfinite(v) for v in row.values())
        assert 0 < row["_abs_rel_diff"] < 100 and 0 <= row["_threshold_delta_1.25"] <= 1
    assert set(summary["stage_seconds"]) == {"data", "teacher", "label", "recdav2_distill", "evaluate", "export"}
    assert summary["claims"] == {"checked": False, "failures": []}
    with open(os.path.join(workdir, "results.json")) as f:
        written = json.load(f)
    assert written["table"] == summary["table"] and written["claims"] == summary["claims"]
    table = open(os.path.join(workdir, "results.md")).read().splitlines()
    assert len(table) == 2 + 5 and "No input" in table[2] and "Teacher" in table[3]
    assert "its own frame world (RGB + ground truth), here" in table[3]
    assert "not trained on events" in table[4] and "distilled" in table[5]
    assert "events removed" in table[6]
    # Per test sequence a row RGB | events | ground truth | teacher, then one row per student; panels 64x80.
    assert Image.open(os.path.join(workdir, "comparison.png")).size == (4 * 80, 2 * (1 + 1) * 64)
    assert os.path.isfile(os.path.join(workdir, "eval", "recdav2_distill", "eval.csv"))
    assert len(os.listdir(os.path.join(workdir, "eval", "recdav2_distill", "pictures", "synth_test_000"))) == 2


def test_exported_students_reproduced_by_the_pytorch_reference(demo_run):
    _, workdir, summary = demo_run
    assert set(summary["exports"]) == {"recdav2"}
    for student, entry in summary["exports"].items():
        assert entry["path"] == os.path.join(workdir, "export", f"{student}_distilled.pth")
        assert 0 <= entry["max_rel_diff"] <= PARITY_LIMIT
        checkpoint = torch.load(entry["path"], weights_only=True)
        assert checkpoint["config"]["trainer"]["use_logdepth"] is True
        assert checkpoint["config"]["model"]["model_type"] == ("RecDAv2" if student == "recdav2" else "DAv2")


def test_distilled_students_read_no_ground_truth(demo_run):
    config, workdir, _ = demo_run
    teacher = (os.path.join(workdir, "teacher", "teacher.msgpack"), {})
    for student in ("dav2", "recdav2"):
        c = student_config(config, "unused", student, "distill", teacher)
        data = input_config(c)
        assert data.load_depth is False and data.load_rgb is True
        assert c.teacher.checkpoint == teacher[0]
    with open(os.path.join(workdir, "recdav2_distill", "config_train.json")) as f:
        saved = json.load(f)
    assert saved["objective"] == "distill" and saved["teacher"]["checkpoint"] == teacher[0]
    # The demo's students distil from the stored labels: no RGB, no depth, no teacher in the step.
    assert saved["teacher"]["labels"].startswith(os.path.join(workdir, "labels"))
    data = input_config(student_config(config, "unused", "recdav2", "distill", teacher, saved["teacher"]["labels"]))
    assert data.load_depth is False and data.load_rgb is False and data.labels == saved["teacher"]["labels"]
    assert student_config(config, "unused", "dav2", "supervised", None).objective == "supervised"


def test_rerun_resumes_finished_stages_and_uses_a_given_teacher(demo_run):
    config, workdir, summary = demo_run
    lines = open(os.path.join(workdir, "recdav2_distill", "metrics.jsonl")).read()
    teacher_file = os.path.join(workdir, "teacher", "teacher.msgpack")
    os.rename(os.path.join(workdir, "teacher"), os.path.join(workdir, "given_teacher"))
    config.teacher.checkpoint = os.path.join(workdir, "given_teacher", "teacher.msgpack")
    again = run_demo(config, workdir)
    assert not os.path.exists(os.path.join(workdir, "teacher"))  # the stand-in was not trained again
    assert again["teacher"] == config.teacher.checkpoint != teacher_file
    assert open(os.path.join(workdir, "recdav2_distill", "metrics.jsonl")).read() == lines  # not stepped again
    # Given teacher weights do not initialise the students (config.checkpoint does): only that row changes.
    changed = {k for k in summary["table"] if again["table"][k] != summary["table"][k]}
    assert changed == {"recdav2/untrained"}
    assert "| given weights (teacher.msgpack) |" in open(os.path.join(workdir, "results.md")).read()


def test_failed_claims_fail_the_demo_after_writing_the_results(demo_run):
    config, workdir, _ = demo_run
    c = ml_collections.ConfigDict(config.to_dict())  # the fixture's config stays unchecked for the other tests
    c.demo.margins.check = True
    with pytest.raises(DemoClaimError, match=r"\[recdav2/distill\]: Abs Rel .* > 0.75 x the no-input") as error:
        run_demo(c, workdir)
    message = str(error.value)
    assert message.endswith(f"The results are still in {workdir}/results.md.")
    with open(os.path.join(workdir, "results.json")) as f:
        claims = json.load(f)["claims"]
    assert claims["checked"] is True and claims["failures"]
    assert message == "\n".join(claims["failures"] + [f"The results are still in {workdir}/results.md."])
    assert "No input" in open(os.path.join(workdir, "results.md")).read()


def _row(abs_rel: float, delta1: float) -> dict[str, float]:
    return {"_abs_rel_diff": abs_rel, "_threshold_delta_1.25": delta1}


# A table where every claim holds with margins 0.75 / 0.15: the no-input control at Abs Rel 0.5, δ1 0.5, so a trained
# row needs Abs Rel <= 0.375 and δ1 >= 0.65.
_HOLDS = {"no_input": _row(0.5, 0.5), "teacher": _row(0.9, 0.1), "dav2/untrained": _row(0.9, 0.1),
          "dav2/distill": _row(0.3, 0.7), "dav2/distill_no_events": _row(0.45, 0.55), "dav2/supervised": _row(0.2, 0.8),
          "recdav2/untrained": _row(0.9, 0.1), "recdav2/distill": _row(0.35, 0.66),
          "recdav2/distill_no_events": _row(0.4, 0.6), "recdav2/supervised": _row(0.25, 0.75)}
_MARGINS = ml_collections.ConfigDict(dict(check=True, abs_rel_ratio=0.75, delta1_gain=0.15))
_R_DISTILL = "DepthAnyEvent-R, distilled (teacher's proxy labels) [recdav2/distill]"


def _changed(key: str, abs_rel: float, delta1: float) -> dict[str, dict[str, float]]:
    """_HOLDS with one row replaced."""
    return {**_HOLDS, key: _row(abs_rel, delta1)}


def test_claims_hold_on_a_table_that_shows_learning():
    assert check_claims(_HOLDS, _MARGINS) == []
    assert demo_config.get_config().demo.margins.to_dict() == _MARGINS.to_dict()  # the demo's own margins


def test_claim_abs_rel_against_the_no_input_control():
    assert check_claims(_changed("recdav2/distill", 0.375, 0.66), _MARGINS) == []  # exactly 0.75 x 0.5
    assert check_claims(_changed("recdav2/distill", 0.376, 0.66), _MARGINS) == [
        f"{_R_DISTILL}: Abs Rel 0.3760 > 0.75 x the no-input control's 0.5000 = 0.3750"]


def test_claim_delta1_gain_over_the_no_input_control():
    assert check_claims(_changed("dav2/supervised", 0.2, 0.64), _MARGINS) == [
        "DepthAnyEvent (DAv2), supervised (ground truth) [dav2/supervised]: δ<1.25 0.6400 < the no-input control's "
        "0.5000 + 0.15 = 0.6500"]


def test_claim_distilled_beats_itself_without_events():
    no_events = "DepthAnyEvent-R, distilled, events removed (control: empty event images) [recdav2/distill_no_events]"
    assert check_claims(_changed("recdav2/distill_no_events", 0.35, 0.6), _MARGINS) == [  # the same Abs Rel
        f"{_R_DISTILL}: does not beat {no_events}: Abs Rel 0.3500 vs 0.3500 (must be lower), δ<1.25 0.6600 vs 0.6000 "
        "(must be higher)"]
    assert check_claims(_changed("recdav2/distill_no_events", 0.4, 0.7), _MARGINS) == [  # a better δ<1.25
        f"{_R_DISTILL}: does not beat {no_events}: Abs Rel 0.3500 vs 0.4000 (must be lower), δ<1.25 0.6600 vs 0.7000 "
        "(must be higher)"]


def test_claim_supervised_beats_distilled():
    assert check_claims(_changed("recdav2/supervised", 0.36, 0.75), _MARGINS) == [
        "DepthAnyEvent-R, supervised (ground truth) [recdav2/supervised]: Abs Rel 0.3600 is not below "
        f"{_R_DISTILL}'s 0.3500"]


def test_claims_needing_an_absent_row_are_skipped():
    # Without the no-input row, the events-removed rows and the distilled students, no claim can be checked even
    # though every row here would break the margins.
    bad = {"teacher": _row(0.9, 0.1), "dav2/supervised": _row(0.9, 0.1), "recdav2/supervised": _row(0.9, 0.1)}
    assert check_claims(bad, _MARGINS) == []
    # objectives=("distill",): the distilled students are checked, nothing is asked of supervised ones.
    distill_only = {k: v for k, v in _HOLDS.items() if not k.endswith("/supervised")}
    assert check_claims(distill_only, _MARGINS) == []
    distill_only["dav2/distill"] = _row(0.5, 0.7)
    assert check_claims(distill_only, _MARGINS) == [
        "DepthAnyEvent (DAv2), distilled (teacher's proxy labels) [dav2/distill]: Abs Rel 0.5000 > 0.75 x the "
        "no-input control's 0.5000 = 0.3750",
        "DepthAnyEvent (DAv2), distilled (teacher's proxy labels) [dav2/distill]: does not beat DepthAnyEvent "
        "(DAv2), distilled, events removed (control: empty event images) [dav2/distill_no_events]: Abs Rel 0.5000 "
        "vs 0.4500 (must be lower), δ<1.25 0.7000 vs 0.5500 (must be higher)"]


def test_parity_check_catches_a_wrong_exported_weight(tmp_path):
    from dae_jax.convert import export_torch_checkpoint
    from dae_jax.models import model_from_config
    from dae_jax.train.state import init_params

    model_config = {"model_type": "DAv2", "encoder": "tiny", "input_size_width": 70, "input_size_height": 56}
    model = model_from_config(model_config)
    params = init_params(model, jax.random.PRNGKey(0))
    frames = np.random.default_rng(0).uniform(0, 1, (2, 50, 64, 3)).astype(np.float32)
    path = str(tmp_path / "model.pth")
    export_torch_checkpoint(path, params, model_config)
    assert verify_torch_export(path, params, model_config, frames) <= PARITY_LIMIT
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["state_dict"]["depth_head.scratch.output_conv1.weight"] += 0.05
    torch.save(checkpoint, path)
    assert verify_torch_export(path, params, model_config, frames) > 100 * PARITY_LIMIT


def test_a_stage_stopped_by_sigterm_stops_the_demo(tmp_path, monkeypatch):
    from dae_jax import demo
    from dae_jax.train import loop

    monkeypatch.setattr(loop, "train", lambda config, workdir: {})  # returns early, as after SIGTERM
    c = student_config(_config(str(tmp_path)), "unused", "dav2", "supervised", None)
    with pytest.raises(InterruptedError, match=r"stage stopped at step None of 2.*run the same command again"):
        demo._train_stage(c, str(tmp_path / "stage"))


@pytest.mark.parametrize("change, message", [
    ({"students": ("dav2", "dav3")}, "config.demo.students: unknown student 'dav3'"),
    ({"objectives": ("distill", "selfsupervised")}, "config.demo.objectives: unknown objective 'selfsupervised'"),
    ({"recurrent_batch_size": 3}, r"config.data.batch_size \(3\) must be a multiple of the number of devices"),
    ({"margins": {"abs_rel_ratio": 0.0}}, r"config.demo.margins.abs_rel_ratio must be in \(0, 1\]; got 0.0"),
    ({"margins": {"delta1_gain": 1.0}}, r"config.demo.margins.delta1_gain must be in \[0, 1\); got 1.0"),
])
def test_bad_demo_config_is_refused_before_any_work(tmp_path, change, message):
    c = _config(str(tmp_path / "data"))
    c.demo.update(change)
    with pytest.raises(ValueError, match=message):
        run_demo(c, str(tmp_path / "work"))
    assert not os.path.exists(tmp_path / "data")


def test_the_controls_are_what_they_say(demo_run):
    """The no-input row is one fixed map for every frame; the events-removed row is the distilled student on all-zero
    event images (checked against a direct prediction on zeros)."""
    import tensorflow_datasets as tfds

    from dae_jax.data.pipeline import iterate_sequences
    from dae_jax.demo import _test_frames
    from dae_jax.eval import metrics as M
    from dae_jax.models import model_from_config
    from dae_jax.weights import resolve

    config, workdir, summary = demo_run
    dataset_dir = summary["dataset_dir"]
    builder = tfds.builder_from_directory(dataset_dir)
    train = [np.asarray(r["depth"], np.float64) for r in builder.as_data_source(split="train")]
    assert config.loss.rescale_ground_truth  # the demo's targets: each frame's farthest point moved to 80 m
    rescaled = [np.clip(d, 0, 80.0) / np.clip(d, 0, 80.0).max() * 80.0 for d in train]
    logs = [np.where(d > 0, np.clip(1 + np.log(np.clip(d, 1e-9, 80.0) / 80.0) / 3.70378, 0, 1), 1.0) for d in rescaled]
    mean_map = np.mean(logs, axis=0)
    blind = M.SequenceAccumulator()
    for record in builder.as_data_source(split="test"):
        blind.add(record["sequence"].decode(), M.evaluate_frame(mean_map, np.asarray(record["depth"]), True))
    for key in ("_abs_rel_diff", "_RMS_linear", "_threshold_delta_1.25"):
        assert summary["table"]["no_input"][key] == pytest.approx(blind.overall_mean()[key], rel=1e-6)
    w = resolve(os.path.join(workdir, "recdav2_distill"))
    params, model_config = w.params, w.model_config
    model = model_from_config(model_config)
    infer = jax.jit(lambda p, x: model.apply({"params": p}, x, method=model.infer))
    acc = M.SequenceAccumulator()
    for name, frames in iterate_sequences(_test_frames(config, dataset_dir)):
        depth_maps = [f["depth"][0, 0] for f in frames]
        zeros = np.zeros((1, len(depth_maps), *depth_maps[0].shape, 3), np.float32)
        prediction, _ = infer(params, zeros)
        for k, depth in enumerate(depth_maps):
            acc.add(name, M.evaluate_frame(np.asarray(prediction[0, k]), depth, use_logdepth=True))
    expected = acc.overall_mean()
    got = summary["table"]["recdav2/distill_no_events"]
    for key in ("_abs_rel_diff", "_RMS_linear", "_threshold_delta_1.25"):
        assert got[key] == pytest.approx(expected[key], rel=1e-4)


def test_a_given_dav2_teacher_needs_a_dav2_label_conversion(tmp_path):
    """Released DAv2 weights (.pth) give relative inverse depth; the stand-in's teacher_scale 'logdepth' would read
    it as log depth, so the demo refuses the pair before any work and names the flag to pass."""
    c = _config(str(tmp_path / "data"))
    c.teacher.checkpoint = str(tmp_path / "depth_anything_v2_vitl.pth")
    with pytest.raises(ValueError, match=r"is read as DAv2 .* pass --config.loss.teacher_scale=relative"):
        run_demo(c, str(tmp_path / "work"))
    assert not os.path.exists(tmp_path / "data")


def test_recurrent_student_continues_from_the_dav2_student_of_its_objective(tmp_path):
    config = demo_config.get_config()
    teacher = (config.demo.teacher.weights, config.teacher.model.to_dict())
    workdir = str(tmp_path)
    for objective in ("distill", "supervised"):
        init = recurrent_start(config, "recdav2", objective, workdir)
        assert init == os.path.join(workdir, f"dav2_{objective}")
        c = student_config(config, "", "recdav2", objective, teacher, "labels", init)
        assert c.checkpoint == init and c.train.num_steps == config.demo.recurrent_num_steps
        assert c.model.model_type == "RecDAv2"
    assert recurrent_start(config, "dav2", "distill", workdir) == ""  # DAv2 starts from the teacher
    dav2 = student_config(config, "", "dav2", "distill", teacher, "labels")
    assert dav2.checkpoint == teacher[0] and dav2.train.num_steps == config.train.num_steps
    config.demo.students = ("recdav2",)  # no DAv2 student to continue from: the teacher, the common schedule
    assert recurrent_start(config, "recdav2", "distill", workdir) == ""
    config.demo.students = ("dav2", "recdav2")
    config.demo.recurrent_from_dav2 = False
    assert recurrent_start(config, "recdav2", "supervised", workdir) == ""
    c = student_config(config, "", "recdav2", "supervised", teacher)
    assert c.checkpoint == teacher[0] and c.train.num_steps == config.train.num_steps
