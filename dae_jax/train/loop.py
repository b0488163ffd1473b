"""The training loop: data -> pmapped step over all devices of all hosts -> logs, summaries, checkpoints.

Reads top to bottom: validate the config, build the input pipeline (each host reads its share), the student
(and the frozen teacher for distillation), restore the latest checkpoint of the workdir if there is one, then
step. Only process 0 writes logs, `metrics.jsonl` and TensorBoard summaries. SIGTERM (how TPU preemption
arrives) makes every host save at the same step and return.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from etils import epath
from flax import jax_utils

from dae_jax.convert import load_params
from dae_jax.data.pipeline import InputConfig, make_loader
from dae_jax.eval.metrics import METRIC_KEYS
from dae_jax.models import model_from_config, target_size
from dae_jax.train.checkpoint import Checkpointer
from dae_jax.train.state import create_train_state, init_params, make_optimizer, merge_params, param_groups
from dae_jax.train.step import LABEL_SPACES, OBJECTIVES, make_train_step

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def validate(config: Any) -> None:
    """Refuse bad config values up front, naming the field."""
    checks = [
        (config.objective in OBJECTIVES, f"config.objective must be one of {OBJECTIVES}, got {config.objective!r}"),
        (config.loss.label_space in LABEL_SPACES,
         f"config.loss.label_space must be one of {LABEL_SPACES}, got {config.loss.label_space!r}"),
        (config.train.dtype in DTYPES,
         f"config.train.dtype must be one of {sorted(DTYPES)}, got {config.train.dtype!r}"),
        (config.train.num_steps > 0, f"config.train.num_steps must be > 0, got {config.train.num_steps}"),
        (config.optim.lr > 0 and config.optim.encoder_lr >= 0, "config.optim.lr must be > 0 and encoder_lr >= 0"),
        (config.data.batch_size % jax.device_count() == 0,
         f"config.data.batch_size ({config.data.batch_size}) must be a multiple of the number of devices "
         f"({jax.device_count()})"),
        (config.objective != "distill" or bool(config.teacher.checkpoint),
         "config.teacher.checkpoint is required for objective 'distill'"),
        (config.train.checkpoint_every > 0, "config.train.checkpoint_every must be > 0"),
        (config.input in ("events", "rgb"), f"config.input must be 'events' or 'rgb', got {config.input!r}"),
        (config.data.crop is not None, "config.data.crop must be set for training (one size per batch)"),
        (not config.eval.every or config.eval.metric in METRIC_KEYS,
         f"config.eval.metric must be one of the metric keys (e.g. _abs_rel_diff), got {config.eval.metric!r}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)


def input_config(config: Any, split: str | None = None) -> InputConfig:
    """The host-local InputConfig of a run: the global batch divided over processes, the labels it needs."""
    data = dict(config.data.to_dict())
    data["batch_size"] = config.data.batch_size // jax.process_count()
    data["load_rgb"] = config.objective == "distill" or config.input == "rgb"
    data["load_depth"] = config.objective == "supervised"
    if split:
        data["split"] = split
    return InputConfig.from_config(data)


def shard(batch: Mapping[str, np.ndarray], keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """(B, ...) host arrays -> (local devices, B / devices, ...)."""
    n = jax.local_device_count()
    return {k: batch[k].reshape(n, -1, *batch[k].shape[1:]) for k in keys if k in batch}


class _Preemption:
    """Remembers a SIGTERM; `requested()` is true on every host as soon as one host got it."""

    def __init__(self):
        self.flag = False
        self.previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame):
        del signum, frame
        self.flag = True

    def requested(self) -> bool:
        if jax.process_count() == 1:
            return self.flag
        from jax.experimental import multihost_utils

        return bool(np.any(multihost_utils.process_allgather(np.array([self.flag]))))

    def restore(self) -> None:
        signal.signal(signal.SIGTERM, self.previous)


def build_student(config: Any):
    """The student model and its initial params (random, or from config.checkpoint)."""
    student = model_from_config(config.model.to_dict(), DTYPES[config.train.dtype], config.train.remat,
                                config.train.unroll_time)
    net = target_size(*config.data.crop, student.input_width, student.input_height)
    params = init_params(student, jax.random.PRNGKey(config.train.seed), *net)
    if config.train.get("output_bias_init") is not None:
        # A ReLU output (official DAv2) trained from scratch starts mostly at 0 and stays dead; a positive last
        # bias starts every pixel alive. A checkpoint, if given, overwrites it below.
        bias = params["depth_head"]["output_conv2_2"]["bias"]
        params["depth_head"]["output_conv2_2"]["bias"] = jnp.full_like(bias, config.train.output_bias_init)
    if config.checkpoint:
        params, kept = merge_params(params, load_params(config.checkpoint)[0], config.checkpoint)
        logging.info("student from %s; %d tensors keep their fresh init: %s", config.checkpoint, len(kept), kept[:8])
    return student, params


def train(config: Any, workdir: str) -> dict[str, Any]:
    """Train until config.train.num_steps (or a SIGTERM); returns the last logged metrics."""
    validate(config)
    is_chief = jax.process_index() == 0
    epath.Path(workdir).mkdir(parents=True, exist_ok=True)
    data_cfg = input_config(config)
    data_iter = iter(make_loader(data_cfg))

    student, params = build_student(config)
    teacher, teacher_params = None, None
    if config.objective == "distill":
        teacher_params, teacher_config = load_params(config.teacher.checkpoint, config.teacher.model.to_dict())
        teacher = model_from_config(teacher_config, DTYPES[config.train.dtype])
    num_steps = config.train.num_steps
    optimizer = make_optimizer(config.optim, num_steps,
                               param_groups(params, config.optim.freeze_encoder, bool(student.recurrent)))
    state = create_train_state(params, optimizer, config.train.seed)
    checkpointer = Checkpointer(workdir, config.train.keep_checkpoints)
    if checkpointer.latest_step() is not None:
        state = checkpointer.restore(state, data_iter)
        logging.info("resumed from %s at step %d", checkpointer.directory, int(state.step))

    step_fn = make_train_step(student, teacher, optimizer, config.objective, config.loss, input_key=config.input)
    p_step = jax.pmap(step_fn, axis_name="batch", donate_argnums=(0,))
    r_state = jax_utils.replicate(state)
    r_teacher = jax_utils.replicate(teacher_params) if teacher is not None else None
    keys = tuple({config.input, "rgb" if config.objective == "distill" else "depth"})
    pictures = _PictureSummary(student, teacher, config) if is_chief and config.train.picture_every else None

    writer = _summary_writer(workdir) if is_chief else None
    metrics_file = (epath.Path(workdir) / "metrics.jsonl").open("a") if is_chief else None
    preemption = _Preemption()
    first = step = int(state.step)
    best = _read_best(workdir)
    last: dict[str, Any] = {}
    start = time.perf_counter()
    try:
        batch = next(data_iter) if step < num_steps else None
        if batch is not None and jax.process_count() > 1:
            # Compile (into the compilation cache) before the first cross-host collective, then line the hosts
            # up: CPU (gloo) collectives give up when one host is still compiling 30 s after another.
            p_step.lower(r_state, shard(batch, keys), r_teacher).compile()
            _barrier("dae_jax_compiled")
        while step < num_steps:
            if batch is None:
                batch = next(data_iter)
            r_state, metrics = p_step(r_state, shard(batch, keys), r_teacher)
            step += 1
            metrics = {k: float(np.asarray(v)[0]) for k, v in metrics.items()}
            if not metrics["finite"]:
                raise FloatingPointError(f"non-finite loss or gradient at step {step} (loss {metrics['loss']}); "
                                         "the state was not updated; the last checkpoint is intact")
            if metrics_file:
                metrics_file.write(json.dumps({"step": step, "loss": metrics["loss"]}) + "\n")
                metrics_file.flush()
            if step % config.train.log_every == 0 or step == num_steps:
                elapsed = time.perf_counter() - start
                rate = (step - first) * config.data.batch_size / elapsed
                eta = (num_steps - step) * elapsed / (step - first)
                last = {"step": step, "loss": metrics["loss"], "grad_norm": metrics["grad_norm"],
                        "examples_per_s": rate}
                if is_chief:
                    logging.info("step %d/%d  loss %.5f  grad_norm %.3g  %.2f examples/s  ETA %s", step, num_steps,
                                 metrics["loss"], metrics["grad_norm"], rate, _hms(eta))
                    for k, v in last.items():
                        if k != "step":
                            writer.add_scalar(f"train/{k}", v, step)
            if pictures and step % config.train.picture_every == 0:
                pictures.write(writer, step, jax_utils.unreplicate(r_state.params), batch, teacher_params)
            if config.eval.every and step % config.eval.every == 0:
                best = _evaluate_during_training(config, workdir, student, r_state, step, best)
            stop = preemption.requested()
            if stop or step == num_steps or step % config.train.checkpoint_every == 0:
                checkpointer.save(step, jax_utils.unreplicate(r_state), data_iter)
            if stop:
                logging.warning("SIGTERM: saved step %d to %s; exiting", step, checkpointer.directory)
                break
            batch = None
        if jax.process_count() > 1:  # the data-parallel replicas on all hosts must hold the same parameters
            from jax.experimental import multihost_utils

            total = float(sum(np.sum(np.asarray(x[0], np.float64)) for x in jax.tree.leaves(r_state.params)))
            multihost_utils.assert_equal(np.array([total], np.float32), "hosts disagree on the parameters")
    finally:
        preemption.restore()
        checkpointer.close()
        if metrics_file:
            metrics_file.close()
        if writer:
            writer.close()
    return last


class _PictureSummary:
    """TensorBoard pictures of the first example of a batch: input, prediction and label, as depth colours."""

    def __init__(self, student, teacher, config):
        from dae_jax.train.step import make_targets

        self.config = config
        self.predict = jax.jit(lambda p, x: student.apply({"params": p}, x, method=student.infer))
        self.teacher = jax.jit(lambda p, x: teacher.apply({"params": p}, x, method=teacher.infer)) if teacher else None
        self.targets = make_targets

    def _to_picture(self, values: np.ndarray) -> np.ndarray:
        from dae_jax.eval.visualize import colorize_depth, colorize_relative
        from dae_jax.train.step import logdepth_to_depth

        loss = self.config.loss
        if loss.label_space == "logdepth":
            return colorize_depth(np.asarray(logdepth_to_depth(values, loss.clip_distance, loss.reg_factor)))
        return colorize_relative(values)

    def write(self, writer, step: int, params, batch, teacher_params) -> None:
        from dae_jax.eval.visualize import event_image

        x = batch[self.config.input][:1]
        recurrent = self.config.model.model_type == "RecDAv2"
        out = self.predict(params, x if recurrent else x[:, 0])
        prediction = np.asarray(out[0] if recurrent else out).reshape(-1, *x.shape[2:4])[0]
        if self.config.objective == "distill":
            disparity = self.teacher(teacher_params, batch["rgb"][:1, 0])
            label, _ = self.targets("distill", self.config.loss, None, disparity)
        else:
            label, _ = self.targets("supervised", self.config.loss, batch["depth"][:1, 0], None)
        panels = [event_image(x[0, 0]), self._to_picture(prediction), self._to_picture(np.asarray(label[0]))]
        writer.add_image("train/input_prediction_label", np.concatenate(panels, axis=1), step, dataformats="HWC")


def _barrier(name: str, timeout_s: int = 1800) -> None:
    """Wait until every process gets here (through the coordination service, not a device collective)."""
    from jax._src import distributed

    distributed.global_state.client.wait_at_barrier(name, timeout_in_ms=timeout_s * 1000)


def _read_best(workdir: str) -> dict | None:
    path = epath.Path(workdir) / "best" / "best.json"
    return json.loads(path.read_text()) if path.exists() else None


def _evaluate_during_training(config, workdir, student, r_state, step, best):
    """Evaluate the current params on config.eval's split; keep them in <workdir>/best when the metric improves."""
    from dae_jax.convert import save_flax_params
    from dae_jax.eval.evaluate import eval_input_config, evaluate
    from dae_jax.models import model_to_config

    params = jax.device_get(jax_utils.unreplicate(r_state.params))
    flags = {"use_logdepth": config.loss.label_space == "logdepth", "reg_factor": config.loss.reg_factor,
             "clip_distance": config.loss.clip_distance}
    out = str(epath.Path(workdir) / "eval" / f"step_{step}") if jax.process_index() == 0 else None
    result = evaluate(params, model_to_config(student), eval_input_config(config), flags, out, config.eval.batch_size)
    value = float(result["mean"][config.eval.metric])
    better = best is None or (value > best["value"] if config.eval.higher_is_better else value < best["value"])
    logging.info("eval at step %d: %s = %.5f%s", step, config.eval.metric, value, " (best)" if better else "")
    if better:
        best = {"step": step, "metric": config.eval.metric, "value": value}
        if jax.process_index() == 0:
            save_flax_params(str(epath.Path(workdir) / "best" / "params.msgpack"), params, model_to_config(student))
            (epath.Path(workdir) / "best" / "best.json").write_text(json.dumps(best))
    return best


def _hms(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _summary_writer(workdir: str):
    from tensorboardX import SummaryWriter

    return SummaryWriter(str(epath.Path(workdir) / "tensorboard"))
