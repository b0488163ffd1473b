"""Stored labels against the teacher in the step: the same students distilled both ways, evaluated with the paper's
protocol on the demo's synthetic world.

  python scripts/label_sources.py --workdir=runs/demo [--students=dav2,recdav2]

Stored labels are made once on whole frames, then cropped with the events; a teacher in the step sees only the
crop. Everything else (student, seed, schedule, batches, crops) is the same. The run reuses the stages of a demo in
the same workdir (data, teacher, labels, the students distilled from stored labels) and trains what is missing;
the table (with the mean training depth map, which sees no input, the students with their initial weights and the
teacher's labels as controls) goes to <workdir>/label_sources.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from absl import logging  # noqa: E402

from configs import demo as demo_config  # noqa: E402
from dae_jax import demo  # noqa: E402


def main() -> None:
    """Train what is missing, evaluate, print and write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--students", default="dav2,recdav2")
    args = parser.parse_args()
    logging.set_verbosity(logging.INFO)
    from dae_jax.data.labels import weights_fingerprint
    from dae_jax.eval.evaluate import evaluate
    from dae_jax.eval.metrics import EvalSettings
    from dae_jax.label import label_dataset
    from dae_jax.models import model_to_config
    from dae_jax.train.loop import build_student
    from dae_jax.weights import resolve

    config = demo_config.get_config()
    workdir = os.path.abspath(args.workdir)
    students = [s for s in args.students.split(",") if s]
    stages = demo._Stages(total=3 + 2 * len(students))
    stages.begin("data", "the synthetic world")
    dataset_dir = demo.build_dataset(config.demo.dataset, os.path.join(workdir, "data"))
    teacher = demo._teacher(config, workdir, stages)
    stages.begin("label", "stored labels")
    labels = label_dataset(*teacher, dataset_dir, [config.data.split],
                           os.path.join(workdir, "labels", weights_fingerprint(teacher[0])[:12]),
                           config.label.batch_size, config.label.chunk_size)
    flags = EvalSettings.of_loss(config.loss)
    data = demo._test_frames(config, dataset_dir)
    t = resolve(*teacher)
    rows = [("No input: mean training log-depth map", "(control)", demo.no_input_control(config, dataset_dir)),
            ("Teacher (its proxy labels, whole frames)", "", evaluate(
        t.params, t.model_config, data, flags, None, config.eval.batch_size, input_key="rgb",
        transform=demo._teacher_labels_as_logdepth(config.loss.to_dict())))]
    for student in students:
        name = demo.STUDENT_NAMES[student]
        model, params = build_student(demo.student_config(config, dataset_dir, student, "supervised", teacher))
        rows.append((name, demo.LABEL_NAMES["untrained"], evaluate(params, model_to_config(model), data, flags)))
        for suffix, how, source in (("", "distilled from stored labels (teacher saw whole frames)", labels),
                                    ("_teacher_in_step", "distilled, teacher in the step (teacher saw the crop)", "")):
            stages.begin(f"{student}_distill{suffix}", f"{name}: {how}")
            c = demo.student_config(config, dataset_dir, student, "distill", teacher, source)
            w = demo._train_stage(c, os.path.join(workdir, f"{student}_distill{suffix}"))
            rows.append((name, how, evaluate(w.params, w.model_config, data, flags)))
    stages.end()
    header = "| model | labels | " + " | ".join(c[0] for c in demo.TABLE_COLUMNS) + " |"
    lines = [header, "|" + "---|" * (len(demo.TABLE_COLUMNS) + 2)]
    for name, how, result in rows:
        lines.append(f"| {name} | {how} | "
                     + " | ".join(f"{result['mean'][k]:.{d}f}" for _, k, d in demo.TABLE_COLUMNS) + " |")
    table = "\n".join(lines)
    Path(workdir, "label_sources.md").write_text(table + "\n\nstage seconds: " + str(stages.timings) + "\n")
    print(table)
    print("stage seconds:", stages.timings)


if __name__ == "__main__":
    main()
