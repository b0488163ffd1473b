"""The training loop: data -> pmapped step over all devices of all hosts -> logs, summaries, checkpoints.

Reads top to bottom: validate the config, build the input pipeline (each host reads its share), the student
(and the frozen teacher for distillation), restore the latest checkpoint of the workdir if there is one, then
step. Only process 0 writes logs, `metrics.jsonl` and TensorBoard summaries. SIGTERM (how TPU preemption
arrives) makes every host save at the same step and return.

The host keeps ahead of the devices: the next batches are read and put on the devices while a step runs, and
metrics (with the state's record of a non-finite step) come to the host only at log, picture, evaluation and
checkpoint steps, one transfer for all the steps since the last time.
"""

from __future__ import annotations

import collections
import itertools
import json
import signal
import time
from collections.abc import Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from etils import epath
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from dae_jax.data.pipeline import InputConfig, make_loader
from dae_jax.eval.metrics import METRIC_KEYS
from dae_jax.models import model_from_config
from dae_jax.train.checkpoint import Checkpointer
from dae_jax.train.state import (
    RECURRENT_INITS,
    create_train_state,
    init_params,
    make_optimizer,
    merge_params,
    param_groups,
    passthrough_recurrent,
)
from dae_jax.train.step import LABEL_SPACES, OBJECTIVES, TEACHER_SCALES, make_train_step
from dae_jax.weights import resolve, write_run_config

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
AXIS = "batch"  # the pmapped step's axis name
PREFETCH = 2  # batches on the devices ahead of the step that uses them


def validate(config: Any) -> None:
    """Refuse bad config values up front, naming the field."""
    checks = [
        (config.objective in OBJECTIVES, f"config.objective must be one of {OBJECTIVES}, got {config.objective!r}"),
        (config.loss.label_space in LABEL_SPACES,
         f"config.loss.label_space must be one of {LABEL_SPACES}, got {config.loss.label_space!r}"),
        (config.loss.teacher_scale in TEACHER_SCALES,
         f"config.loss.teacher_scale must be one of {TEACHER_SCALES}, got {config.loss.teacher_scale!r}"),
        (not config.loss.get("anchor_at_max", False) or config.loss.label_space == "logdepth",
         "config.loss.anchor_at_max anchors log depth: it needs config.loss.label_space 'logdepth', got "
         f"{config.loss.label_space!r}"),
        (config.train.dtype in DTYPES,
         f"config.train.dtype must be one of {sorted(DTYPES)}, got {config.train.dtype!r}"),
        (config.train.get("recurrent_init", "random") in RECURRENT_INITS,
         f"config.train.recurrent_init must be one of {RECURRENT_INITS}, got {config.train.get('recurrent_init')!r}"),
        (config.train.num_steps > 0, f"config.train.num_steps must be > 0, got {config.train.num_steps}"),
        (config.optim.lr > 0 and config.optim.encoder_lr >= 0, "config.optim.lr must be > 0 and encoder_lr >= 0"),
        (config.data.batch_size % jax.device_count() == 0,
         f"config.data.batch_size ({config.data.batch_size}) must be a multiple of the number of devices "
         f"({jax.device_count()})"),
        (config.objective != "distill" or bool(config.teacher.checkpoint or config.teacher.labels),
         "config.teacher.checkpoint (the teacher in the step) or config.teacher.labels (stored labels) is required "
         "for objective 'distill'"),
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
    stored = stored_labels(config)
    data["load_rgb"] = (config.objective == "distill" and not stored) or config.input == "rgb"
    data["load_depth"] = config.objective == "supervised"
    data["labels"] = stored
    if split:
        data["split"] = split
    return InputConfig.from_config(data)


def stored_labels(config: Any) -> str:
    """The stored teacher labels a distillation run reads instead of running the teacher ("" for none)."""
    return config.teacher.get("labels", "") if config.objective == "distill" else ""


def shard(batch: Mapping[str, np.ndarray], keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """(B, ...) host arrays -> (local devices, B / devices, ...)."""
    n = jax.local_device_count()
    return {k: batch[k].reshape(n, -1, *batch[k].shape[1:]) for k in keys if k in batch}


def device_sharding() -> NamedSharding:
    """The layout of the pmapped step's (local devices, ...) arguments and results.

    jax.pmap runs as a jit over a mesh named by its axis; arrays placed this way (not with flax's replicate,
    whose mesh has another axis name) match the step's outputs, so the step compiles once and inputs are not
    copied again.
    """
    return NamedSharding(Mesh(np.array(jax.local_devices()), (AXIS,)), PartitionSpec(AXIS))


def replicate(tree: Any, sharding: NamedSharding) -> Any:
    """A copy of every leaf on each device of `sharding`, stacked on a leading axis, laid out like the step's
    outputs."""
    n = sharding.mesh.size
    return jax.device_put(jax.tree.map(lambda x: np.broadcast_to(x, (n, *np.shape(x))), jax.device_get(tree)),
                          sharding)


def unreplicate(tree: Any) -> Any:
    """The first local device's copy of every leaf, as host arrays (one transfer; nothing to compile)."""
    return jax.tree.map(lambda x: x[0], jax.device_get(jax.tree.map(lambda x: x.addressable_shards[0].data, tree)))


class _PipelinePosition:
    """The input pipeline's state right after one batch, to be saved with the train state of that batch's step
    (the pipeline itself is already further on, reading ahead)."""

    def __init__(self, data_iter: Any):
        self.state = json.dumps(data_iter.get_state(), indent=4).encode()

    def get_state(self) -> bytes:
        """The state as grain's checkpoint handler writes it."""
        return self.state


def device_batches(data_iter: Iterator, keys: tuple[str, ...], sharding: NamedSharding, count: int,
                   ahead: int = PREFETCH) -> Iterator[tuple[dict, _PipelinePosition, dict]]:
    """(host batch, pipeline position after it, batch on the devices) for `count` batches; each is read and
    put on the devices `ahead` - 1 steps before the step that uses it, so the transfer overlaps the steps."""
    queue = collections.deque()
    for _ in range(count):
        batch = next(data_iter)
        queue.append((batch, _PipelinePosition(data_iter), jax.device_put(shard(batch, keys), sharding)))
        if len(queue) == ahead:
            yield queue.popleft()
    yield from queue


class _StepMetrics:
    """Each step's metrics stay on the devices until a log, picture, evaluation or checkpoint step needs them;
    then all of them come over in one transfer and go to metrics.jsonl, one line per step."""

    def __init__(self, metrics_file: Any):
        self.file = metrics_file
        self.pending: list[tuple[int, dict]] = []
        self.latest: dict[str, float] = {}

    def add(self, step: int, metrics: dict) -> None:
        """Keep a step's device metrics (no transfer, no wait)."""
        self.pending.append((step, metrics))

    def fetch(self, r_state: Any) -> dict[str, float]:
        """The newest step's metrics; raises at the first step with a non-finite loss or gradient, whose
        update the state (and so any checkpoint) does not contain."""
        steps = [s for s, _ in self.pending]
        values, first_bad = jax.device_get(([m for _, m in self.pending], r_state.first_bad_step))
        self.pending = []
        first_bad = int(first_bad[0])
        for step, metrics in zip(steps, values, strict=True):
            if step == first_bad:
                break
            self.latest = {k: float(v[0]) for k, v in metrics.items()}
            if self.file:
                self.file.write(json.dumps({"step": step, "loss": self.latest["loss"]}) + "\n")
        if self.file:
            self.file.flush()
        if first_bad:
            loss = float(values[steps.index(first_bad)]["loss"][0])
            raise FloatingPointError(f"non-finite loss or gradient at step {first_bad} (loss {loss}); "
                                     "the state was not updated; the last checkpoint is intact")
        return self.latest


class _Preemption:
    """Whether to save and stop now, without a per-step collective. One process: after a SIGTERM. Several:
    JAX's preemption service (its SIGTERM handler, installed by jax.distributed.initialize, notifies the
    coordination service, which picks a step at which every process is told to stop)."""

    def __init__(self):
        self.flag = False
        self.single = jax.process_count() == 1
        self.previous = signal.signal(signal.SIGTERM, self._handle) if self.single else None

    def _handle(self, signum, frame):
        del signum, frame
        self.flag = True

    def requested(self, step: int) -> bool:
        """Called after every step (several processes: with the same step numbers everywhere)."""
        return self.flag if self.single else multihost_utils.reached_preemption_sync_point(step)

    def restore(self) -> None:
        """Put back the SIGTERM handler found at the start."""
        if self.single:
            signal.signal(signal.SIGTERM, self.previous)


def build_student(config: Any):
    """The student model and its initial params (random, or from config.checkpoint)."""
    student = model_from_config(config.model.to_dict(), DTYPES[config.train.dtype], config.train.remat,
                                config.train.unroll_time)
    params = init_params(student, jax.random.PRNGKey(config.train.seed))
    if config.train.get("output_bias_init") is not None:
        # A ReLU output (official DAv2) trained from scratch starts mostly at 0 and stays dead; a positive last
        # bias starts every pixel alive. A checkpoint, if given, overwrites it below.
        bias = params["depth_head"]["output_conv2_2"]["bias"]
        params["depth_head"]["output_conv2_2"]["bias"] = jnp.full_like(bias, config.train.output_bias_init)
    if student.recurrent and config.train.get("recurrent_init", "random") == "passthrough":
        params = passthrough_recurrent(params)  # the layers a checkpoint below does not hold keep this init
    if config.checkpoint:
        params, kept = merge_params(params, resolve(config.checkpoint).params, config.checkpoint)
        logging.info("student from %s; %d tensors it does not hold keep their initialisation: %s", config.checkpoint,
                     len(kept), kept[:8])
    return student, params


def train(config: Any, workdir: str) -> dict[str, Any]:
    """Train until config.train.num_steps (or a SIGTERM); returns the last logged metrics."""
    validate(config)
    is_chief = jax.process_index() == 0
    epath.Path(workdir).mkdir(parents=True, exist_ok=True)
    if is_chief:  # what dae_jax.weights.resolve reads this run's model and evaluation settings from
        write_run_config(workdir, config.to_dict())
    data_cfg = input_config(config)
    data_iter = iter(make_loader(data_cfg))

    student, params = build_student(config)
    teacher, teacher_params = None, None
    if config.objective == "distill" and not stored_labels(config):
        resolved = resolve(config.teacher.checkpoint, config.teacher.model.to_dict())
        teacher_params = resolved.params
        teacher = model_from_config(resolved.model_config, DTYPES[config.train.dtype])
    num_steps = config.train.num_steps
    optimizer = make_optimizer(config.optim, num_steps,
                               param_groups(params, config.optim.freeze_encoder, bool(student.recurrent)))
    state = create_train_state(params, optimizer, config.train.seed)
    checkpointer = Checkpointer(workdir, config.train.keep_checkpoints)
    if checkpointer.latest_step() is not None:
        state = checkpointer.restore(state, data_iter)
        logging.info("resumed from %s at step %d", checkpointer.directory, int(state.step))

    step_fn = make_train_step(student, teacher, optimizer, config.objective, config.loss, input_key=config.input)
    p_step = jax.pmap(step_fn, axis_name=AXIS, donate_argnums=(0,))
    sharding = device_sharding()
    r_state = replicate(state, sharding)
    r_teacher = replicate(teacher_params, sharding) if teacher is not None else None
    if config.objective == "supervised":
        keys: tuple[str, ...] = (config.input, "depth")
    else:
        keys = ((config.input, "teacher_disparity", "label_valid") if stored_labels(config)
                else (config.input, "rgb", "rgb_valid"))
    keys = tuple(dict.fromkeys(keys))
    pictures = _PictureSummary(student, teacher, config) if is_chief and config.train.picture_every else None

    writer = _summary_writer(workdir) if is_chief else None
    metrics_file = (epath.Path(workdir) / "metrics.jsonl").open("a") if is_chief else None
    step_metrics = _StepMetrics(metrics_file)
    preemption = _Preemption()
    first = step = int(state.step)
    best = _read_best(workdir)
    last: dict[str, Any] = {}
    start = time.perf_counter()
    try:
        batches = device_batches(data_iter, keys, sharding, num_steps - step)
        if step < num_steps and jax.process_count() > 1:
            # Compile (into the compilation cache) before the first cross-host collective, then line the hosts
            # up: CPU (gloo) collectives give up when one host is still compiling 30 s after another.
            head = next(batches)
            _, _, first_batch = head
            p_step.lower(r_state, first_batch, r_teacher).compile()
            barrier("dae_jax_compiled")
            batches = itertools.chain([head], batches)
        for host_batch, position, batch in batches:
            r_state, metrics = p_step(r_state, batch, r_teacher)
            step += 1
            step_metrics.add(step, metrics)
            if step % config.train.log_every == 0 or step == num_steps:
                metrics = step_metrics.fetch(r_state)
                elapsed = time.perf_counter() - start
                rate = (step - first) * config.data.batch_size / elapsed
                eta = (num_steps - step) * elapsed / (step - first)
                last = {"step": step, "loss": metrics["loss"], "grad_norm": metrics["grad_norm"],
                        "examples_per_s": rate}
                if is_chief:
                    logging.info("step %d/%d  loss %.5f  grad_norm %.3g  %.2f examples/s  ETA %s", step, num_steps,
                                 metrics["loss"], metrics["grad_norm"], rate, hms(eta))
                    for k, v in last.items():
                        if k != "step":
                            writer.add_scalar(f"train/{k}", v, step)
            if pictures and step % config.train.picture_every == 0:
                step_metrics.fetch(r_state)
                pictures.write(writer, step, unreplicate(r_state.params), host_batch, teacher_params)
            if config.eval.every and step % config.eval.every == 0:
                step_metrics.fetch(r_state)
                best = _evaluate_during_training(config, workdir, student, r_state, step, best)
            stop = preemption.requested(step)
            if stop or step == num_steps or step % config.train.checkpoint_every == 0:
                step_metrics.fetch(r_state)  # never a checkpoint after a non-finite step
                checkpointer.save(step, unreplicate(r_state), position)
            if stop:
                logging.warning("SIGTERM: saved step %d to %s; exiting", step, checkpointer.directory)
                break
        if jax.process_count() > 1:  # the data-parallel replicas on all hosts must hold the same parameters
            total = float(sum(np.sum(x, dtype=np.float64) for x in jax.tree.leaves(unreplicate(r_state.params))))
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
        from dae_jax.models import model_to_config
        from dae_jax.predictor import Predictor
        from dae_jax.train.step import make_targets

        self.config = config
        self.predictor = Predictor(None, model_to_config(student))
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
        prediction = self.predictor(x[0], params=params)[0][0]  # the first frame of the first clip
        if self.config.objective == "distill":
            if "teacher_disparity" in batch:  # stored labels
                disparity = batch["teacher_disparity"][:1, 0]
            else:
                disparity = self.teacher(teacher_params, batch["rgb"][:1, 0])
            label, _ = self.targets("distill", self.config.loss, None, disparity)
        else:
            label, _ = self.targets("supervised", self.config.loss, batch["depth"][:1, 0], None)
        panels = [event_image(x[0, 0]), self._to_picture(prediction), self._to_picture(np.asarray(label[0]))]
        writer.add_image("train/input_prediction_label", np.concatenate(panels, axis=1), step, dataformats="HWC")


def barrier(name: str, timeout_s: int = 1800) -> None:
    """Wait until every process gets here, at a coordination-service barrier (not a device collective, which
    would time out while another host still compiles)."""
    ocp.multihost.get_barrier_sync_fn()(key=name, timeout_ms=timeout_s * 1000)


def _read_best(workdir: str) -> dict | None:
    path = epath.Path(workdir) / "best" / "best.json"
    return json.loads(path.read_text()) if path.exists() else None


def _evaluate_during_training(config, workdir, student, r_state, step, best):
    """Evaluate the current params on config.eval's split; keep them in <workdir>/best when the metric improves."""
    from dae_jax.convert import save_flax_params
    from dae_jax.eval.evaluate import eval_input_config, evaluate
    from dae_jax.eval.metrics import EvalSettings
    from dae_jax.models import model_to_config

    params = unreplicate(r_state.params)
    flags = EvalSettings.of_loss(config.loss).as_dict()
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


def hms(seconds: float) -> str:
    """A duration as h:mm:ss, for progress lines."""
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _summary_writer(workdir: str):
    from tensorboardX import SummaryWriter

    return SummaryWriter(str(epath.Path(workdir) / "tensorboard"))
