"""Training benchmarks, each against a baseline measured in the same run.

torch   the distillation step (teacher forward with the 518 size rule -> proxy labels in log depth -> student
        DAv2-vits forward/backward at 266x350 -> AdamW) in JAX against the same step in PyTorch on the reference
        models of dae_jax/convert/torch_reference.py; ratio = JAX examples/s / PyTorch examples/s.
labels  the same JAX step with the teacher (--label-teacher, the paper's vitl) in the step against the step from
        stored labels (no teacher); ratio = teacher-in-the-step time / stored-labels time. Then the labelling
        throughput of dae_jax.label (frames/s) with that teacher on 260x346 frames of a synthetic dataset.
host_gap  the host time between two device steps of the training loop (tiny student, 70x98 input, synthetic
        data): wall time per step of the loop minus that of the same compiled step run back-to-back on a batch
        already on the devices, for a re-implementation of the old loop (metrics to the host and metrics.jsonl
        flushed every step, next batch read and sharded after the step) and for dae_jax.train.loop.train itself;
        ratio = gap before / gap after.

Run from the repository root: python bench/train.py [--only torch labels host_gap] [--batch 2] [--steps 3]
    [--teacher vits] [--gap-steps 30] [--gap-runs 3]
"""

from __future__ import annotations

import argparse
import logging as pylogging
import os
import sys
import time
from pathlib import Path

import jax
import numpy as np
import optax
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from configs import common  # noqa: E402
from dae_jax.convert import torch_reference as ref  # noqa: E402
from dae_jax.convert import torch_to_flax  # noqa: E402
from dae_jax.models import DepthAnythingV2  # noqa: E402
from dae_jax.train.state import create_train_state  # noqa: E402
from dae_jax.train.step import make_train_step  # noqa: E402

H, W = 266, 350  # an MVSEC-sized crop


def torch_step(student, teacher, opt, events, rgb, loss_cfg):
    """The reference step: labels from the teacher, SI + multi-scale gradient on log depth, AdamW."""
    reg = loss_cfg.reg_factor
    with torch.no_grad():
        r = ref.infer(teacher, rgb)[:, 0]
        r_max = r.amax((1, 2), keepdim=True)
        r = torch.minimum(torch.maximum(r, r_max * np.exp(-reg)), r_max)
        target = torch.log(r_max.clamp_min(1e-12) / r.clamp_min(1e-12)) / reg
    pred = ref.infer(student, events, 350, 266)[:, 0]
    mask = torch.ones_like(target, dtype=torch.bool)
    loss = 0.0
    for i in range(pred.shape[0]):
        p, t, m = pred[i:i + 1], target[i:i + 1], mask[i:i + 1]
        loss = (loss + ref.silog_loss(p, t, m, loss_cfg.si_lambda, logs=False)
                + loss_cfg.gradient_weight * ref.multiscale_gradient_loss(p, t, m))
    loss = loss / pred.shape[0]
    opt.zero_grad()
    loss.backward()
    opt.step()
    return float(loss.detach())


def distill_step_rates(batch: int, steps: int, teacher_encoder: str = "vits") -> dict:
    """Examples/s of the JAX distillation step and of the same step in PyTorch (best of `steps` timed steps after a
    compiling / warm-up one), and the JAX compile seconds."""
    cfg = common.get_config()
    rng = np.random.default_rng(0)
    events = rng.uniform(size=(batch, 1, H, W, 3)).astype(np.float32)
    rgb = rng.uniform(size=(batch, 1, H, W, 3)).astype(np.float32)

    t_student = ref.make_model("dav2", "vits", seed=0, activation="softplus", inv_prediction=True).train()
    t_teacher = ref.make_model("official", teacher_encoder, seed=1)
    student = DepthAnythingV2(encoder="vits", activation="softplus", inv_prediction=True, input_width=350,
                              input_height=266)
    teacher = DepthAnythingV2(encoder=teacher_encoder, official=True)
    params = torch_to_flax({k: v.detach().numpy() for k, v in t_student.state_dict().items()})
    teacher_params = torch_to_flax({k: v.numpy() for k, v in t_teacher.state_dict().items()})
    optimizer = optax.adamw(1e-5, weight_decay=0.01)
    step = jax.jit(make_train_step(student, teacher, optimizer, "distill", cfg.loss, axis_name=None),
                   donate_argnums=(0,))
    state = create_train_state(params, optimizer, 0)
    compile_s, jax_s, _ = _step_seconds(step, state, {"events": events, "rgb": rgb}, teacher_params, steps)

    opt = torch.optim.AdamW(t_student.parameters(), lr=1e-5, weight_decay=0.01)
    te, tr = (torch.from_numpy(np.ascontiguousarray(a[:, 0].transpose(0, 3, 1, 2))) for a in (events, rgb))
    torch_step(t_student, t_teacher, opt, te, tr, cfg.loss)  # warm-up
    torch_s = float("inf")
    for _ in range(steps):
        start = time.perf_counter()
        torch_step(t_student, t_teacher, opt, te, tr, cfg.loss)
        torch_s = min(torch_s, time.perf_counter() - start)
    return dict(jax_rate=batch / jax_s, torch_rate=batch / torch_s, compile_s=compile_s)


def torch_comparison(args: argparse.Namespace) -> None:
    """The JAX distillation step against the same step in PyTorch: examples/s and their ratio."""
    r = distill_step_rates(args.batch, args.steps, args.teacher)
    print(f"distillation step, student DAv2-vits {H}x{W}, teacher DAv2-{args.teacher} (518 rule), batch {args.batch}")
    print(f"JAX   {r['jax_rate']:.3f} examples/s (compile {r['compile_s']:.1f} s, best of {args.steps} steps)")
    print(f"torch {r['torch_rate']:.3f} examples/s ({torch.get_num_threads()} threads)")
    print(f"ratio JAX / torch: {r['jax_rate'] / r['torch_rate']:.2f}")


def _step_seconds(step, state, batch, teacher_params, steps: int) -> tuple[float, float, object]:
    """(compile + first step seconds, best seconds of one step over `steps`, the state after them)."""
    start = time.perf_counter()
    state, metrics = step(state, batch, teacher_params)
    jax.block_until_ready(metrics)
    first = time.perf_counter() - start
    best = float("inf")
    for _ in range(steps):
        start = time.perf_counter()
        state, metrics = step(state, batch, teacher_params)
        jax.block_until_ready(metrics)
        best = min(best, time.perf_counter() - start)
    return first, best, state


def stored_labels(args: argparse.Namespace) -> None:
    """The distillation step with the teacher in it against the step from stored labels; labelling frames/s."""
    import tempfile

    from dae_jax.label import label_with
    from dae_jax.train.state import init_params
    from tfds_builders import build
    from tfds_builders.synthetic_events.synthetic_events_dataset_builder import SyntheticConfig

    cfg = common.get_config()
    rng = np.random.default_rng(0)
    student = DepthAnythingV2(encoder="vits", activation="softplus", inv_prediction=True, input_width=350,
                              input_height=266)
    teacher = DepthAnythingV2(encoder=args.label_teacher, official=True)
    params = init_params(student, jax.random.PRNGKey(0))
    teacher_params = init_params(teacher, jax.random.PRNGKey(1))
    optimizer = optax.adamw(1e-5, weight_decay=0.01)
    rgb = rng.uniform(size=(args.batch, 1, H, W, 3)).astype(np.float32)
    batch = {"events": rng.uniform(size=(args.batch, 1, H, W, 3)).astype(np.float32), "rgb": rgb}
    in_step = jax.jit(make_train_step(student, teacher, optimizer, "distill", cfg.loss, axis_name=None),
                      donate_argnums=(0,))
    labels = jax.jit(lambda p, x: teacher.apply({"params": p}, x, method=teacher.infer))(teacher_params, rgb[:, 0])
    stored = {"events": batch["events"], "teacher_disparity": np.asarray(labels)[:, None].astype(np.float32),
              "label_valid": np.ones((args.batch, 1), bool)}
    from_labels = jax.jit(make_train_step(student, None, optimizer, "distill", cfg.loss, axis_name=None),
                          donate_argnums=(0,))
    def fresh():  # each run donates its state: start each from its own copy of the params
        return create_train_state(jax.tree.map(np.array, params), optimizer, 0)

    compile_t, teacher_s, _ = _step_seconds(in_step, fresh(), batch, teacher_params, args.steps)
    compile_s, labels_s, _ = _step_seconds(from_labels, fresh(), stored, None, args.steps)
    print(f"distillation step, student DAv2-vits {H}x{W}, batch {args.batch}, best of {args.steps}")
    print(f"teacher DAv2-{args.label_teacher} in the step (518 rule): {teacher_s:.2f} s/step "
          f"({args.batch / teacher_s:.3f} examples/s; first step with compile {compile_t:.1f} s)")
    print(f"stored labels, no teacher:               {labels_s:.2f} s/step "
          f"({args.batch / labels_s:.3f} examples/s; first step with compile {compile_s:.1f} s)")
    print(f"ratio teacher-in-the-step / stored labels: {teacher_s / labels_s:.1f}x")

    with tempfile.TemporaryDirectory() as root:
        synthetic = SyntheticConfig(name="bench_labels", event_format="tencode", num_train=1, num_test=1,
                                    frames_per_sequence=args.label_frames, height=260, width=346, workers=1)
        dataset = str(build("synthetic_events", synthetic, root).data_path)
        model_config = {"model_type": "DAv2", "encoder": args.label_teacher, "official": True}
        batch_size = jax.device_count()
        label_with(teacher_params, model_config, {"checkpoint": "random"}, dataset, ["test"],  # warm-up: compile
                   os.path.join(root, "warmup"), batch_size, batch_size)
        start = time.perf_counter()
        label_with(teacher_params, model_config, {"checkpoint": "random"}, dataset, ["train"],
                   os.path.join(root, "labels"), batch_size, args.label_frames)
        seconds = time.perf_counter() - start
    print(f"labelling (dae_jax.label, DAv2-{args.label_teacher}, 260x346 frames, batch {batch_size}): "
          f"{args.label_frames / seconds:.3f} frames/s ({args.label_frames} frames in {seconds:.1f} s)")


class _StepLog(pylogging.Handler):
    """Wall-clock times of the training loop's "step N/M" log lines, by step."""

    def __init__(self):
        super().__init__()
        self.times: dict[int, float] = {}

    def emit(self, record: pylogging.LogRecord) -> None:
        if isinstance(record.msg, str) and record.msg.startswith("step %d/%d"):
            self.times[record.args[0]] = record.created


def _loop_seconds(config, workdir: str, first: int, last: int) -> float:
    """Seconds per step of dae_jax.train.loop.train between its log lines at steps `first` and `last`."""
    from absl import logging

    from dae_jax.train.loop import train

    log, absl_logger, verbosity = _StepLog(), pylogging.getLogger("absl"), logging.get_verbosity()
    absl_logger.addHandler(log)
    absl_logger.propagate = False  # keep the run's own log lines off the screen
    logging.set_verbosity(logging.INFO)
    try:
        train(config, workdir)
    finally:
        logging.set_verbosity(verbosity)
        absl_logger.propagate = True
        absl_logger.removeHandler(log)
    return (log.times[last] - log.times[first]) / (last - first)


def _old_loop_seconds(config, p_step, r_state, first: int, last: int) -> float:
    """Seconds per step, between steps `first` and `last`, of the loop as it was before it kept the devices busy
    (re-implemented): every step brings its metrics to the host (loss, grad_norm and the non-finite record, one
    value at a time), appends and flushes its metrics.jsonl line, and only then reads and shards the next batch."""
    import json
    import tempfile

    from dae_jax.data.pipeline import make_loader
    from dae_jax.train.loop import input_config, shard

    data_iter = iter(make_loader(input_config(config)))
    keys = tuple({config.input, "depth"})
    times = {}
    with tempfile.TemporaryFile("w") as metrics_file:
        for step in range(1, last + 1):
            r_state, metrics = p_step(r_state, shard(next(data_iter), keys), None)
            values = {k: float(np.asarray(v)[0]) for k, v in metrics.items()}
            if int(np.asarray(r_state.first_bad_step)[0]):  # the old step returned this flag with its metrics
                raise FloatingPointError(f"non-finite loss or gradient at step {step}")
            metrics_file.write(json.dumps({"step": step, "loss": values["loss"]}) + "\n")
            metrics_file.flush()
            times[step] = time.perf_counter()
    return (times[last] - times[first]) / (last - first)


def host_gap(args: argparse.Namespace) -> None:
    """Host time between two device steps of a tiny model, for the old per-step loop and for dae_jax.train.loop:
    each loop's seconds per step minus those of the same compiled step run back-to-back on one batch already on
    the devices; best of --gap-runs runs of --gap-steps steps after the first log step."""
    import tempfile

    from configs import synthetic_tiny
    from dae_jax.data.pipeline import make_loader
    from dae_jax.train import loop
    from dae_jax.train.state import create_train_state, make_optimizer, param_groups
    from tfds_builders import build
    from tfds_builders.synthetic_events.synthetic_events_dataset_builder import SyntheticConfig

    if not jax.config.jax_compilation_cache_dir:  # every train() run compiles the same step: compile it once
        jax.config.update("jax_compilation_cache_dir", os.path.join(tempfile.gettempdir(), "dae_jax_bench_xla_cache"))
    with tempfile.TemporaryDirectory() as root:
        # A small world (as in tests/test_train.py) cropped at the network's 70x98: reading a batch is cheap, so
        # less of the gap is decoding competing with XLA for the cores of a CPU-only machine.
        world = SyntheticConfig(name="bench_host_gap", event_format="tencode", num_train=2, num_test=1,
                                frames_per_sequence=8, height=80, width=112, workers=1)
        config = synthetic_tiny.get_config()  # tiny encoder at 70x98, batch 8
        config.data.update(dataset_dir=str(build("synthetic_events", world, root).data_path), crop=(70, 98))
        first = config.train.log_every
        last = first + args.gap_steps
        config.train.update(num_steps=last, checkpoint_every=last, picture_every=0)
        student, params = loop.build_student(config)
        groups = param_groups(params, config.optim.freeze_encoder, bool(student.recurrent))
        optimizer = make_optimizer(config.optim, last, groups)
        state = create_train_state(params, optimizer, config.train.seed)
        p_step = jax.pmap(make_train_step(student, None, optimizer, config.objective, config.loss),
                          axis_name=loop.AXIS, donate_argnums=(0,))
        sharding = loop.device_sharding()
        batch = jax.device_put(loop.shard(next(iter(make_loader(loop.input_config(config)))), (config.input, "depth")),
                               sharding)
        device, before, after = [], [], []
        for run in range(args.gap_runs):
            r_state, _ = p_step(loop.replicate(state, sharding), batch, None)  # compiles in the first run
            jax.block_until_ready(r_state)
            start = time.perf_counter()
            for _ in range(args.gap_steps):
                r_state, _ = p_step(r_state, batch, None)
            jax.block_until_ready(r_state)
            device.append((time.perf_counter() - start) / args.gap_steps)
            before.append(_old_loop_seconds(config, p_step, loop.replicate(state, sharding), first, last))
            after.append(_loop_seconds(config, os.path.join(root, f"run_{run}"), first, last))
    device_s, before_s, after_s = min(device), min(before), min(after)
    gap_before, gap_after = before_s - device_s, after_s - device_s
    print(f"tiny DAv2 student, 70x98 input (crops of an 80x112 synthetic world), batch "
          f"{config.data.batch_size} over {jax.local_device_count()} devices; best of {args.gap_runs} runs of "
          f"{args.gap_steps} steps")
    print(f"step back-to-back on a device-resident batch: {device_s * 1e3:.1f} ms/step")
    print(f"before (old per-step loop):  {before_s * 1e3:.1f} ms/step, host gap {gap_before * 1e3:.1f} ms")
    print(f"after (dae_jax.train.loop):  {after_s * 1e3:.1f} ms/step, host gap {gap_after * 1e3:.1f} ms")
    print(f"ratio gap before / after: {gap_before / gap_after:.1f}" if gap_after > 0 else
          "ratio gap before / after: n/a (the gap after is within the noise, <= 0)")


SECTIONS = {"torch": torch_comparison, "labels": stored_labels, "host_gap": host_gap}


def main() -> None:
    """Run the chosen sections (all by default)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(SECTIONS), default=list(SECTIONS))
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--teacher", default="vits", help="teacher encoder of the PyTorch comparison")
    parser.add_argument("--label-teacher", default="vitl", help="teacher encoder of the labels section (paper: vitl)")
    parser.add_argument("--label-frames", type=int, default=4, help="frames labelled for the throughput")
    parser.add_argument("--gap-steps", type=int, default=30, help="host_gap: steps timed per run")
    parser.add_argument("--gap-runs", type=int, default=3, help="host_gap: runs (the best counts)")
    args = parser.parse_args()
    for name in args.only:
        print(f"== {name}")
        SECTIONS[name](args)


if __name__ == "__main__":
    main()
