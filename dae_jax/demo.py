"""The end-to-end demo (`launch.py --mode=demo --config=configs/demo.py`): the paper's paradigm in miniature.

Stages, each in its own directory under the workdir so that an interrupted demo resumes where it stopped:
  1. data      the synthetic world as a TFDS dataset (RGB frames, Tencode event stacks, ground-truth depth)
  2. teacher   the stand-in for the foundation model: a frame model of the DAv2 architecture, shipped
               (config.demo.teacher.weights) or, with that empty, trained here on the RGB frames and ground truth
               of a frame world of its own (train_teacher); or given weights (config.teacher.checkpoint)
  3. label     the teacher over the training split's RGB frames once, its proxy labels stored (dae_jax.label)
               (config.demo.stored_labels; False runs the teacher inside every distillation step instead)
  4-7. students  DepthAnyEvent (DAv2) and DepthAnyEvent-R, distilled from the teacher's proxy labels on the
               aligned RGB frames (never ground truth), and the same students trained supervised on ground truth
  8. evaluate  every model, each student with its initial weights and the teacher's proxy labels, on the test split
               with the paper's protocol -> the results table (Table 3 in miniature) and pictures; with the
               controls: the mean training depth map (no input) and each distilled student given empty events
  9. export    the distilled students as PyTorch checkpoints, checked against the PyTorch reference
               (dae_jax/convert/torch_reference.py) on test frames
Outputs: <workdir>/results.md, results.json, comparison.png and each stage's eval/ pictures. Then the claims
(config.demo.margins, see check_claims) are checked and the demo fails with DemoClaimError if one does not hold.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging

from dae_jax.data.pipeline import InputConfig, iterate_sequences
from dae_jax.eval import metrics as M
from dae_jax.weights import Weights

STUDENT_NAMES = {"dav2": "DepthAnyEvent (DAv2)", "recdav2": "DepthAnyEvent-R"}
LABEL_NAMES = {"distill": "distilled (teacher's proxy labels)", "supervised": "supervised (ground truth)",
               "untrained": "not trained on events (its initial weights)",
               "distill_no_events": "distilled, events removed (control: empty event images)"}
SHORT_LABELS = {"untrained": "initial weights", "distill": "distilled", "supervised": "supervised",
                "distill_no_events": "distilled, no events"}
TABLE_COLUMNS = (("Abs Rel ↓", "_abs_rel_diff", 3), ("Sq Rel ↓", "_squ_rel_diff", 3), ("RMSE ↓", "_RMS_linear", 2),
                 ("RMSE log ↓", "_RMS_log", 3), ("δ<1.25 ↑", "_threshold_delta_1.25", 3),
                 ("δ<1.25² ↑", "_threshold_delta_1.25^2", 3), ("δ<1.25³ ↑", "_threshold_delta_1.25^3", 3))
TORCH_FILES = (".pth", ".pt", ".safetensors")  # a given teacher in one of these is read as released DAv2 weights


class DemoClaimError(RuntimeError):
    """A trained model of the demo has not shown learning (a claim of check_claims does not hold); the results
    were written before it was raised."""


class _Stages:
    """Prints where the demo is: stage k of n, its title, and the time since the demo started."""

    def __init__(self, total: int):
        self.total, self.index, self.start = total, 0, time.perf_counter()
        self.timings: dict[str, float] = {}
        self._name, self._began = "", 0.0

    def begin(self, name: str, title: str) -> None:
        self.end()
        self.index += 1
        self._name, self._began = name, time.perf_counter()
        logging.info("==== demo [%d/%d] %s  (%s elapsed)", self.index, self.total, title, self.elapsed())

    def end(self) -> None:
        if self._name:
            self.timings[self._name] = round(time.perf_counter() - self._began, 1)
            self._name = ""

    def elapsed(self) -> str:
        seconds = int(time.perf_counter() - self.start)
        return f"{seconds // 60}:{seconds % 60:02d}"


def _stage_config(config: Any, dataset_dir: str, **changes: Any) -> ml_collections.ConfigDict:
    """An unlocked copy of the demo config for one training run; `changes` are dotted keys."""
    c = ml_collections.ConfigDict(config.to_dict())
    c.data.dataset_dir = dataset_dir
    for key, value in changes.items():
        node = c
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return c


def _train_stage(c: ml_collections.ConfigDict, workdir: str) -> Weights:
    """Train (or resume / skip when finished) in workdir; the weights of the result."""
    from dae_jax.train.checkpoint import Checkpointer
    from dae_jax.train.loop import train
    from dae_jax.weights import resolve

    train(c, workdir)
    checkpointer = Checkpointer(workdir, c.train.keep_checkpoints)
    step = checkpointer.latest_step()
    checkpointer.close()
    if step is None or step < c.train.num_steps:  # SIGTERM: the trainer saved and returned early
        raise InterruptedError(f"{workdir} stopped at step {step} of {c.train.num_steps} (SIGTERM); run the same "
                               "command again to resume")
    return resolve(workdir)


def student_config(config: Any, dataset_dir: str, student: str, objective: str, teacher: tuple[str, dict] | None,
                   labels: str = "", init: str = "") -> ml_collections.ConfigDict:
    """The training config of one student ('dav2' | 'recdav2') under one objective ('distill' | 'supervised');
    a distilled student reads the stored `labels` when given, else runs the teacher in its step. With
    config.demo.init_from_teacher every student starts from the stand-in teacher trained here (DepthAnyEvent-R's
    recurrent layers fresh), as DepthAnyEvent is DAv2 fine-tuned on events; given teacher weights are not the
    students' size, so then config.checkpoint decides. `init` (a trained DAv2 student's workdir) overrides both:
    DepthAnyEvent-R then continues from that student for config.demo.recurrent_num_steps."""
    if student not in STUDENT_NAMES:
        raise ValueError(f"config.demo.students: unknown student {student!r}; expected one of {sorted(STUDENT_NAMES)}")
    if objective not in ("distill", "supervised"):
        raise ValueError(f"config.demo.objectives: unknown objective {objective!r}; expected distill or supervised")
    changes: dict[str, Any] = {"objective": objective, "loss.label_space": "logdepth",
                               "loss.si_lambda": float(config.demo.si_lambda[objective])}
    if student == "recdav2":
        changes.update({"model.model_type": "RecDAv2", "model.recurrent_block_type": "convlstm",
                        "data.clip_length": config.demo.recurrent_clip_length,
                        "data.batch_size": config.demo.recurrent_batch_size})
    if objective == "distill":
        changes.update({"teacher.checkpoint": teacher[0], "teacher.model": teacher[1], "teacher.labels": labels})
    if config.demo.init_from_teacher and teacher is not None and not config.teacher.checkpoint:
        changes["checkpoint"] = teacher[0]
    if init:
        changes.update({"checkpoint": init, "train.num_steps": config.demo.recurrent_num_steps})
    return _stage_config(config, dataset_dir, **changes)


def run_dir(workdir: str, student: str, objective: str) -> str:
    """Where the demo trains one student under one objective."""
    return os.path.join(workdir, f"{student}_{objective}")


def recurrent_start(config: Any, student: str, objective: str, workdir: str) -> str:
    """The run directory of the DAv2 student that DepthAnyEvent-R of `objective` continues from
    (config.demo.recurrent_from_dav2, when the demo trains that student), else ''."""
    if student != "recdav2" or not config.demo.recurrent_from_dav2 or "dav2" not in config.demo.students:
        return ""
    return run_dir(workdir, "dav2", objective)


def build_dataset(dataset: Any, data_dir: str, with_events: bool = True) -> str:
    """Generate (once) a synthetic world (a config.demo.dataset-like block); returns the TFDS version directory.
    `with_events` False renders RGB and depth only (the stand-in teacher's frame world)."""
    from tfds_builders import build
    from tfds_builders.synthetic_events.synthetic_events_dataset_builder import SyntheticConfig

    d = dataset.to_dict()
    name = d.pop("name")
    synthetic = SyntheticConfig(name=name, event_format="tencode", description="a world of the demo",
                                with_events=with_events, **d)
    builder = build("synthetic_events", synthetic, data_dir)
    return str(builder.data_path)


def teacher_config(config: Any, dataset_dir: str) -> ml_collections.ConfigDict:
    """The training config of the stand-in teacher: a frame model (config.teacher.model) supervised on the RGB
    frames and ground truth of its own world, with the config.demo.teacher block's schedule and loss."""
    t = config.demo.teacher
    changes = {"loss.si_lambda": t.si_lambda, "loss.anchor_at_max": t.anchor_at_max, "train.num_steps": t.steps,
               "optim.lr": t.lr, "optim.encoder_lr": t.lr, "optim.warmup_steps": t.warmup_steps,
               "train.checkpoint_every": t.steps, "data.crop": tuple(t.crop)}
    return _stage_config(config, dataset_dir, model=config.teacher.model.to_dict(), input="rgb",
                         objective="supervised", checkpoint="", **changes)


def train_teacher(config: Any, workdir: str) -> tuple[str, dict]:
    """Build the teacher's frame world (config.demo.teacher.world: other seeds than the event world, so none of
    the students' test scenes) and train the stand-in foundation model on it; returns (weights file, model
    config). This is how the shipped config.demo.teacher.weights were made (scripts/demo_teacher.py)."""
    from dae_jax.convert import save_flax_params

    data_dir = os.path.join(workdir, "data")
    dataset_dir = build_dataset(config.demo.teacher.world, data_dir, with_events=False)
    trained = _train_stage(teacher_config(config, dataset_dir), os.path.join(workdir, "train"))
    path = os.path.join(workdir, "teacher.msgpack")
    save_flax_params(path, trained.params, trained.model_config, trained.settings)
    return path, trained.model_config


def _teacher(config: Any, workdir: str, stages: _Stages) -> tuple[str, dict]:
    """(checkpoint, model config) of the teacher: given weights (config.teacher.checkpoint, e.g. DAv2's), the shipped
    stand-in (config.demo.teacher.weights), or, with that empty, the stand-in trained here on its own frame world."""
    if config.teacher.checkpoint:
        path = config.teacher.checkpoint
        stages.begin("teacher", f"teacher: {path} (not trained here)")
        # The architecture comes from the weights (a dae_jax params file also carries its semantics); a PyTorch file
        # is read as released DAv2 weights (official semantics); the input size comes from the config.
        model = {k: config.teacher.model[k] for k in ("input_size_width", "input_size_height")}
        if path.endswith(TORCH_FILES):
            model["official"] = True
        return path, model
    weights = config.demo.teacher.weights
    if weights:
        stages.begin("teacher", f"teacher: the stand-in's shipped weights {weights}")
        if not os.path.isfile(weights):
            raise FileNotFoundError(f"config.demo.teacher.weights: no such file {weights} (scripts/demo_teacher.py "
                                    "writes it; --config.demo.teacher.weights='' trains the stand-in in the demo)")
        return weights, config.teacher.model.to_dict()
    stages.begin("teacher", "train the stand-in teacher (DAv2 architecture) on its own frame world")
    return train_teacher(config, os.path.join(workdir, "teacher"))


def _test_frames(config: Any, dataset_dir: str) -> InputConfig:
    """The test split frame by frame with events, RGB and depth (config.eval's split and crop)."""
    return InputConfig(dataset_dir=dataset_dir, split=config.eval.split, batch_size=1, crop=config.eval.crop,
                       representation=dict(config.data.representation), load_depth=True, load_rgb=True,
                       shuffle=False)


def _teacher_labels_as_logdepth(loss: Any) -> Callable[[np.ndarray], np.ndarray]:
    """The distillation targets' conversion (the teacher's inverse depth -> log depth), for evaluating proxy labels."""
    from dae_jax.train.step import make_targets

    return lambda r: np.asarray(make_targets("distill", loss, None, np.asarray(r, np.float32))[0])


def no_input_control(config: Any, dataset_dir: str) -> dict[str, Any]:
    """The control that sees no input: the per-pixel mean of the supervised students' log-depth targets over the
    training split (sky as the far end, rescaled as config.loss says), one fixed map for every test frame, through
    the same protocol. A student that does not beat it has not shown that it reads depth from its input."""
    from dae_jax.train.step import make_targets

    loss = config.loss
    train = InputConfig(dataset_dir=dataset_dir, split=config.data.split, batch_size=1, load_depth=True,
                        shuffle=False)
    total, count = 0.0, 0
    for _, frames in iterate_sequences(train):
        for frame in frames:
            total = total + np.asarray(make_targets("supervised", loss.to_dict(), frame["depth"][0], None)[0][0])
            count += 1
    mean_map = total / count
    acc = M.SequenceAccumulator()
    for name, frames in iterate_sequences(_test_frames(config, dataset_dir)):
        for frame in frames:
            acc.add(name, M.evaluate_frame(mean_map, frame["depth"][0, 0], use_logdepth=True,
                                           reg_factor=loss.reg_factor, clip_distance=loss.clip_distance))
    return {"sequences": acc.sequence_means(), "mean": acc.overall_mean()}


def _evaluate_all(config, dataset_dir, workdir, teacher, trained) -> dict[str, dict]:
    """Evaluate the no-input control, the teacher's proxy labels, each student with its initial weights, every
    trained student, and each distilled student with its events removed."""
    from dae_jax.eval.evaluate import evaluate
    from dae_jax.models import model_to_config
    from dae_jax.train.loop import build_student
    from dae_jax.weights import resolve

    flags = M.EvalSettings.of_loss(config.loss)
    data = _test_frames(config, dataset_dir)
    common = dict(batch_size=config.eval.batch_size, pictures=config.eval.pictures, gif=config.eval.gif)
    logging.info("evaluating the no-input control (the mean training depth map)")
    results = {"no_input": no_input_control(config, dataset_dir)}
    t = resolve(*teacher)
    logging.info("evaluating the teacher's proxy labels on the test RGB frames")
    results["teacher"] = evaluate(t.params, t.model_config, data, flags, os.path.join(workdir, "eval", "teacher"),
                                  input_key="rgb", transform=_teacher_labels_as_logdepth(config.loss.to_dict()),
                                  **common)
    for student in config.demo.students:
        c = student_config(config, dataset_dir, student, "supervised", teacher)
        model, params = build_student(c)
        logging.info("evaluating %s with its initial weights", STUDENT_NAMES[student])
        results[f"{student}/untrained"] = evaluate(params, model_to_config(model), data, flags,
                                                   os.path.join(workdir, "eval", f"{student}_untrained"), **common)
        for objective in config.demo.objectives:
            w = trained[(student, objective)]
            logging.info("evaluating %s, %s", STUDENT_NAMES[student], objective)
            results[f"{student}/{objective}"] = evaluate(w.params, w.model_config, data, flags,
                                                         os.path.join(workdir, "eval", f"{student}_{objective}"),
                                                         **common)
            if objective == "distill":
                logging.info("evaluating %s, distilled, with its events removed", STUDENT_NAMES[student])
                results[f"{student}/distill_no_events"] = evaluate(
                    w.params, w.model_config, data, flags,
                    os.path.join(workdir, "eval", f"{student}_distill_no_events"),
                    input_transform=np.zeros_like, **common)
    return results


def _export_and_check(config, dataset_dir, workdir, trained) -> dict[str, Any]:
    """Export each distilled student to PyTorch and compare the reference's predictions with ours."""
    from dae_jax.convert import PARITY_LIMIT, export_torch_checkpoint, verify_torch_export

    data = _test_frames(config, dataset_dir)
    _, frames_iter = next(iterate_sequences(data))
    frames = np.concatenate([next(frames_iter)["events"][0] for _ in range(config.demo.parity_frames)])
    try:
        import torch  # noqa: F401
    except ImportError:
        logging.warning("torch is not installed: exporting without the PyTorch check (pip install torch==2.13.0)")
        torch = None
    out = {}
    for student in config.demo.students:
        if (student, "distill") not in trained:
            continue
        w = trained[(student, "distill")]
        path = os.path.join(workdir, "export", f"{student}_distilled.pth")
        export_torch_checkpoint(path, w.params, w.model_config, w.settings)
        entry: dict[str, Any] = {"path": path}
        if torch is not None:
            entry["max_rel_diff"] = verify_torch_export(path, w.params, w.model_config, frames)
            logging.info("%s: %s, PyTorch reference vs JAX on %d test frames: max rel diff %.2e",
                         STUDENT_NAMES[student], path, len(frames), entry["max_rel_diff"])
            if not entry["max_rel_diff"] <= PARITY_LIMIT:
                raise AssertionError(f"the exported {path} does not reproduce the JAX predictions in PyTorch: "
                                     f"max rel diff {entry['max_rel_diff']:.3e} > {PARITY_LIMIT}")
        out[student] = entry
    return out


def results_table(results: dict[str, dict], teacher_source: str) -> str:
    """The results as a Markdown table: the no-input control, the teacher, then per student untrained /
    distilled / distilled with events removed / supervised."""
    header = "| model | trained on | " + " | ".join(c[0] for c in TABLE_COLUMNS) + " |"
    lines = [header, "|" + "---|" * (len(TABLE_COLUMNS) + 2)]
    for key, result in results.items():
        student, _, how = key.partition("/")
        if key == "no_input":
            name, label = "No input (control): mean training log-depth map", "the training split's ground truth"
        elif key == "teacher":
            name, label = "Teacher (frames; its proxy labels)", teacher_source
        else:
            name, label = STUDENT_NAMES[student], LABEL_NAMES[how]
        values = " | ".join(f"{result['mean'][k]:.{digits}f}" for _, k, digits in TABLE_COLUMNS)
        lines.append(f"| {name} | {label} | {values} |")
    return "\n".join(lines)


def _row_name(key: str) -> str:
    """A student row as in the results table, with its key: 'DepthAnyEvent-R, distilled (...) [recdav2/distill]'."""
    student, _, how = key.partition("/")
    return f"{STUDENT_NAMES[student]}, {LABEL_NAMES[how]} [{key}]"


def check_claims(results_table: dict[str, dict[str, float]], margins: Any) -> list[str]:
    """One message per claim the results table breaks (config.demo.margins): the trained models beat the no-input
    control by the margins, each distilled student beats itself without events, supervised beats distilled."""
    abs_rel, delta1 = "_abs_rel_diff", "_threshold_delta_1.25"
    failures = []
    blind = results_table.get("no_input")
    for key, row in results_table.items():
        student, _, how = key.partition("/")
        if how not in ("distill", "supervised"):
            continue
        name = _row_name(key)
        if blind is not None:
            limit = margins.abs_rel_ratio * blind[abs_rel]
            if not row[abs_rel] <= limit:  # written so that NaN fails
                failures.append(f"{name}: Abs Rel {row[abs_rel]:.4f} > {margins.abs_rel_ratio} x the no-input "
                                f"control's {blind[abs_rel]:.4f} = {limit:.4f}")
            floor = blind[delta1] + margins.delta1_gain
            if not row[delta1] >= floor:
                failures.append(f"{name}: δ<1.25 {row[delta1]:.4f} < the no-input control's {blind[delta1]:.4f} + "
                                f"{margins.delta1_gain} = {floor:.4f}")
        other_key = f"{student}/distill_no_events" if how == "distill" else f"{student}/distill"
        other = results_table.get(other_key)
        if other is None:
            continue
        if how == "distill" and not (row[abs_rel] < other[abs_rel] and row[delta1] > other[delta1]):
            failures.append(f"{name}: does not beat {_row_name(other_key)}: Abs Rel {row[abs_rel]:.4f} vs "
                            f"{other[abs_rel]:.4f} (must be lower), δ<1.25 {row[delta1]:.4f} vs {other[delta1]:.4f} "
                            "(must be higher)")
        if how == "supervised" and not row[abs_rel] < other[abs_rel]:
            failures.append(f"{name}: Abs Rel {row[abs_rel]:.4f} is not below {_row_name(other_key)}'s "
                            f"{other[abs_rel]:.4f}")
    return failures


def comparison_picture(results: dict[str, dict], dataset_dir: str, config: Any, path: str) -> str | None:
    """A grid per test sequence (its last drawn frame; the first config.demo.picture_sequences sequences): RGB |
    events | ground truth | the teacher's labels, then one row per student: untrained | distilled | distilled
    without events | supervised. Depth colours on the fixed 2-80 m scale."""
    from PIL import Image, ImageDraw

    from dae_jax.eval.visualize import colorize_depth, event_image

    wanted: dict[str, int] = {}
    for name, index in results["teacher"]["pictures"]:
        wanted[name] = max(index, wanted.get(name, -1))
    if not wanted:
        return None
    data = _test_frames(config, dataset_dir)
    students = list(dict.fromkeys(k.split("/")[0] for k in results if "/" in k))
    grid: list[list[tuple[str, np.ndarray]]] = []
    for name, frames in iterate_sequences(data):
        if name not in wanted:
            continue
        if len(grid) == config.demo.picture_sequences * (1 + len(students)):
            break
        key = (name, wanted[name])
        frame = next(f for f in frames if int(f["frame_index"][0, 0]) == wanted[name])
        target = M.prepare_target(frame["depth"][0, 0], config.loss.clip_distance)
        grid.append([(f"RGB ({name})", event_image(frame["rgb"][0, 0])),
                     ("events (Tencode)", event_image(frame["events"][0, 0])),
                     ("ground truth", colorize_depth(target)),
                     ("teacher's proxy labels", colorize_depth(results["teacher"]["pictures"][key]))])
        for student in students:
            runs = [(k.split("/")[1], r) for k, r in results.items() if k.startswith(f"{student}/")]
            grid.append([(f"{STUDENT_NAMES[student]}, {SHORT_LABELS[how]}", colorize_depth(r["pictures"][key]))
                         for how, r in runs])
    h, w = grid[0][0][1].shape[:2]
    columns = max(len(row) for row in grid)
    image = Image.new("RGB", (columns * w, len(grid) * h))
    draw = ImageDraw.Draw(image)
    for r, row in enumerate(grid):
        for c, (title, panel) in enumerate(row):
            image.paste(Image.fromarray(panel), (c * w, r * h))
            draw.text((c * w + 4, r * h + 3), title, fill=(255, 255, 255))
    image.save(path)
    return path


def run_demo(config: Any, workdir: str) -> dict[str, Any]:
    """Run every stage (resuming finished ones), print the results table, write results.{md,json} and pictures;
    then raise DemoClaimError if config.demo.margins.check and a claim of check_claims does not hold."""
    if jax.process_count() > 1:
        raise ValueError("the demo runs in one process; use --mode=train on a pod")
    from dae_jax.train.loop import validate

    margins = config.demo.margins
    if not 0 < margins.abs_rel_ratio <= 1:
        raise ValueError(f"config.demo.margins.abs_rel_ratio must be in (0, 1]; got {margins.abs_rel_ratio}")
    if not 0 <= margins.delta1_gain < 1:
        raise ValueError(f"config.demo.margins.delta1_gain must be in [0, 1); got {margins.delta1_gain}")
    given = config.teacher.checkpoint
    if given.endswith(TORCH_FILES) and config.loss.teacher_scale == "logdepth":
        raise ValueError(f"config.teacher.checkpoint {given} is read as DAv2 (relative inverse depth), but "
                         "config.loss.teacher_scale is 'logdepth' (the demo's stand-in): pass "
                         "--config.loss.teacher_scale=relative (or metric for a metric teacher)")
    workdir = os.path.abspath(workdir)
    # Per objective DAv2 first: DepthAnyEvent-R may continue from it (config.demo.recurrent_from_dav2).
    runs = [(s, o) for o in config.demo.objectives for s in sorted(config.demo.students, key=lambda s: s != "dav2")]
    for student, objective in runs:  # refuse bad values before minutes of data generation and training
        validate(student_config(config, "", student, objective, (config.teacher.checkpoint or "<teacher>", {}),
                                init=recurrent_start(config, student, objective, workdir)))
    stages = _Stages(total=4 + bool(config.demo.stored_labels) + len(runs))
    stages.begin("data", "build the synthetic event world (RGB, Tencode events, depth)")
    dataset_dir = build_dataset(config.demo.dataset,
                                os.path.abspath(config.demo.data_dir or os.path.join(workdir, "data")))
    teacher = _teacher(config, workdir, stages)
    labels = ""
    if config.demo.stored_labels:
        from dae_jax.data.labels import weights_fingerprint
        from dae_jax.label import label_dataset

        stages.begin("label", "label the training frames once with the teacher (stored proxy labels)")
        output = os.path.join(workdir, "labels", weights_fingerprint(teacher[0])[:12])  # one directory per teacher
        labels = label_dataset(*teacher, dataset_dir, [config.data.split], output, config.label.batch_size,
                               config.label.chunk_size)
    trained = {}
    for student, objective in runs:
        how = "distil from the teacher's proxy labels" if objective == "distill" else "train on ground truth"
        stages.begin(f"{student}_{objective}", f"{STUDENT_NAMES[student]}: {how}")
        c = student_config(config, dataset_dir, student, objective, teacher, labels,
                           recurrent_start(config, student, objective, workdir))
        trained[(student, objective)] = _train_stage(c, run_dir(workdir, student, objective))
    stages.begin("evaluate", "evaluate on the test split with the paper's protocol")
    results = _evaluate_all(config, dataset_dir, workdir, teacher, trained)
    stages.begin("export", "export the distilled students to PyTorch and check them in the reference")
    exports = _export_and_check(config, dataset_dir, workdir, trained)
    stages.end()
    if given:
        source = f"given weights ({os.path.basename(given)})"
    elif config.demo.teacher.weights:
        source = "its own frame world (shipped weights, scripts/demo_teacher.py)"
    else:
        source = "its own frame world (RGB + ground truth), here"
    table = results_table(results, source)
    picture = comparison_picture(results, dataset_dir, config, os.path.join(workdir, "comparison.png"))
    means = {k: {c[1]: r["mean"][c[1]] for c in TABLE_COLUMNS} for k, r in results.items()}
    failures = check_claims(means, margins) if margins.check else []
    summary = {"table": means, "stage_seconds": stages.timings, "total_seconds": round(sum(stages.timings.values()), 1),
               "exports": exports, "dataset_dir": dataset_dir, "teacher": teacher[0],
               "claims": {"checked": bool(margins.check), "failures": failures}}
    with open(os.path.join(workdir, "results.json"), "w") as f:
        json.dump(summary, f, indent=2)
    with open(os.path.join(workdir, "results.md"), "w") as f:
        f.write(table + "\n")
    print(f"\nDepth AnyEvent demo: the synthetic test split, paper protocol ({workdir})\n\n{table}\n")
    for student, entry in exports.items():
        check = f", PyTorch reference max rel diff {entry['max_rel_diff']:.1e}" if "max_rel_diff" in entry else ""
        print(f"exported {STUDENT_NAMES[student]} (distilled): {entry['path']}{check}")
    if picture:
        print(f"pictures: {picture} and {os.path.join(workdir, 'eval')}/*/pictures")
    print("stage times (s): " + ", ".join(f"{k} {v}" for k, v in stages.timings.items())
          + f"; total {stages.elapsed()}")
    if margins.check:
        print(f"claims checked (config.demo.margins): {len(failures) or 'none'} failed")
        if failures:
            raise DemoClaimError("\n".join(failures + [f"The results are still in {workdir}/results.md."]))
    return summary
