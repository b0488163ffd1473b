"""The training step: labels (ground truth or the frozen teacher's), the loss in the chosen label space, AdamW.

`make_train_step` returns a pure per-device function `(state, batch, teacher_params) -> (state, metrics)` that
the loop wraps in `jax.pmap(axis_name="batch")`; gradients and metrics are averaged with `lax.pmean`. Losses
are per-image statistics averaged over the images, so the step gives the same update for any split of the
global batch over devices.

Label spaces (config.loss.label_space):
  logdepth   the student predicts normalised log depth l = 1 + log(d / clip) / reg (E2Depth's convention, the
             space of the reference's `use_logdepth` evaluation). Ground truth is converted with that formula;
             the teacher's relative inverse depth r is taken as proportional to 1/d, so l = log(r_max / r) / reg
             up to a per-image constant (r clamped to [r_max e^-reg, r_max]); a metric teacher's r is 1/d
             (config.loss.teacher_scale 'metric'), so l is the ground truth's formula of d = 1/r; a teacher that
             predicts log depth itself ('logdepth': the demo's stand-in) gives l directly, clipped to [0, 1]. Loss: the
             scale-invariant loss on l (a constant offset in l is a depth scale) plus the multi-scale gradient loss.
  disparity  the student predicts affine-invariant inverse depth; ground truth is 1/d; the teacher's output is
             used as it is. Loss (config.loss.disparity_loss): 'ssi', the scale-and-shift-invariant (MiDaS) loss;
             or 'max_normalized', MSE + gradient loss against the target divided by its per-image max. SSI has a
             zero gradient at a constant prediction, where a ReLU-output model trained from scratch (a frame
             teacher stand-in) collapses; 'max_normalized' has none (the output learns 1/d up to the image's
             scale, which is all the distillation uses); 'log', MSE + gradient loss on log(x + 1/clip) of the
             prediction and of the metric target 1/d itself, so that near and far pixels weigh alike (a metric
             frame model: the demo's teacher stand-in, whose labels then keep their scale,
             config.loss.teacher_scale 'metric').
With config.loss.sky_as_far, ground-truth 0 means sky or beyond range (the synthetic world) rather than unknown
(LiDAR holes): it is trained as l = 1 (or inverse depth 0) instead of being masked out. With
config.loss.rescale_ground_truth, each ground-truth image is first scaled so that its farthest point is at the clip
distance, the target the evaluation protocol scores (a room 5 m deep is then 80 m deep, instead of clamped at the
1.97 m the log-depth labels start at).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax import lax

from dae_jax.models import DepthAnythingV2
from dae_jax.predictor import predict_clips
from dae_jax.train import losses
from dae_jax.train.state import TrainState

LABEL_SPACES = ("logdepth", "disparity")
DISPARITY_LOSSES = ("ssi", "max_normalized", "log")
TEACHER_SCALES = ("relative", "metric", "logdepth")
OBJECTIVES = ("distill", "supervised")


def depth_to_logdepth(depth: jnp.ndarray, clip: float, reg: float) -> jnp.ndarray:
    """Metric depth -> normalised log depth in [0, 1] (E2Depth); invalid (0) pixels give 0."""
    d = jnp.clip(depth, 1e-6, clip)
    return jnp.clip(1.0 + jnp.log(d / clip) / reg, 0.0, 1.0)


def logdepth_to_depth(logdepth: jnp.ndarray, clip: float, reg: float) -> jnp.ndarray:
    """Normalised log depth -> metric depth: clip * exp(reg * (l - 1))."""
    return clip * jnp.exp(reg * (logdepth - 1.0))


def disparity_to_logdepth(disparity: jnp.ndarray, reg: float) -> jnp.ndarray:
    """Per image (last two axes): relative inverse depth -> log depth up to a constant, in [0, 1]."""
    r_max = jnp.max(disparity, axis=(-2, -1), keepdims=True)
    r = jnp.clip(disparity, r_max * jnp.exp(-reg), r_max)
    return jnp.log(jnp.maximum(r_max, 1e-12) / jnp.maximum(r, 1e-12)) / reg


def rescale_to_clip(depth: jnp.ndarray, clip: float) -> jnp.ndarray:
    """Per image (last two axes): clip(depth, 0, clip) scaled so that its farthest point is at `clip`, as the
    evaluation protocol rescales its targets (config.loss.rescale_ground_truth); all-zero images stay 0."""
    d = jnp.clip(depth, 0.0, clip)
    peak = jnp.max(d, axis=(-2, -1), keepdims=True)
    return jnp.where(peak > 0, d / jnp.where(peak > 0, peak, 1.0) * clip, d)


def make_targets(objective: str, loss_cfg: Mapping, depth: jnp.ndarray | None,
                 teacher_disparity: jnp.ndarray | None) -> tuple[jnp.ndarray, jnp.ndarray]:
    """(target, mask) of shape (N, H, W) in the label space, from ground-truth depth or the teacher's output."""
    space, clip, reg = loss_cfg["label_space"], float(loss_cfg["clip_distance"]), float(loss_cfg["reg_factor"])
    if objective == "supervised":
        if loss_cfg.get("rescale_ground_truth", False):
            depth = rescale_to_clip(depth, clip)
        if loss_cfg.get("sky_as_far", False):  # 0 = sky / beyond range: trained as the far end, not ignored
            sky = depth <= 0
            near = jnp.where(sky, 1.0, depth)
            if space == "logdepth":
                return jnp.where(sky, 1.0, depth_to_logdepth(near, clip, reg)), jnp.ones(depth.shape, bool)
            return jnp.where(sky, 0.0, 1.0 / near), jnp.ones(depth.shape, bool)
        mask = depth > 0
        if space == "logdepth":
            return depth_to_logdepth(depth, clip, reg), mask
        return jnp.where(mask, 1.0 / jnp.where(mask, depth, 1.0), 0.0), mask
    mask = jnp.ones(teacher_disparity.shape, bool)
    if space == "logdepth":
        scale = loss_cfg.get("teacher_scale", "relative")
        if scale == "metric":
            return depth_to_logdepth(1.0 / jnp.maximum(teacher_disparity, 1e-6), clip, reg), mask
        if scale == "logdepth":
            return jnp.clip(teacher_disparity, 0.0, 1.0), mask
        return disparity_to_logdepth(teacher_disparity, reg), mask
    return teacher_disparity, mask


def _max_normalized(t: jnp.ndarray, m: jnp.ndarray) -> jnp.ndarray:
    """One image's target over its maximum on the mask (disparity_loss 'max_normalized')."""
    return t / jnp.maximum(jnp.max(jnp.where(m, t, 0.0)), 1e-12)


def _log_inverse_depth(x: jnp.ndarray, loss_cfg: Mapping) -> jnp.ndarray:
    """log(x + 1/clip) of a metric inverse depth (disparity_loss 'log'): sky (0) sits log 2 beyond the clip."""
    return jnp.log(jnp.maximum(x, 0.0) + 1.0 / float(loss_cfg["clip_distance"]))


def _pixel_residual(loss_cfg: Mapping, p: jnp.ndarray, t: jnp.ndarray, m: jnp.ndarray) -> jnp.ndarray:
    """One image's (1, H, W) per-pixel |residual| of the configured data term, ranked by ignore_largest_fraction."""
    if loss_cfg["label_space"] == "logdepth":  # scale-invariant loss: deviation of d = t - p from its masked mean
        return jnp.abs(t - p - jnp.sum(jnp.where(m, t - p, 0.0)) / jnp.maximum(jnp.sum(m.astype(bool)), 1))
    kind = loss_cfg.get("disparity_loss", "ssi")
    if kind == "max_normalized":
        return jnp.abs(p - _max_normalized(t, m))
    if kind == "log":
        return jnp.abs(_log_inverse_depth(p, loss_cfg) - _log_inverse_depth(t, loss_cfg))
    scale, shift = losses.scale_and_shift(p, t, m)  # SSI: after the closed-form scale and shift alignment
    return jnp.abs(scale[:, None, None] * p + shift[:, None, None] - t)


def per_image_loss(loss_cfg: Mapping, prediction: jnp.ndarray, target: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
    """The configured loss of each image, (N,), without its largest residuals with ignore_largest_fraction > 0."""
    fraction = float(loss_cfg.get("ignore_largest_fraction", 0.0))

    def one(p, t, m):
        p, t, m = p[None], t[None], m[None]
        if loss_cfg.get("anchor_at_max", False):  # score what the protocol scores: l - max(l), far end at 1
            p = p - jnp.max(p) + 1.0
        if fraction:  # Depth Anything V2's noisy-label treatment: the worst pixels leave the mask, then the loss
            m = losses.drop_largest(_pixel_residual(loss_cfg, p, t, m), m, fraction)
        if loss_cfg["label_space"] == "logdepth":
            value = losses.si_loss(p, t, m, float(loss_cfg["si_lambda"]))
            weight = float(loss_cfg["gradient_weight"])
            if weight:
                value = value + weight * losses.multiscale_gradient_loss(p, t, m, 1, int(loss_cfg["gradient_scales"]))
            return value
        alpha, scales = float(loss_cfg["ssi_alpha"]), int(loss_cfg["gradient_scales"])
        kind = loss_cfg.get("disparity_loss", "ssi")
        if kind in ("max_normalized", "log"):
            if kind == "log":
                p, t = _log_inverse_depth(p, loss_cfg), _log_inverse_depth(t, loss_cfg)
            else:
                t = _max_normalized(t, m)
            value = losses.midas_mse(p, t, m, "batch")
            return value + alpha * losses.gradient_loss(p, t, m, scales, "batch") if alpha else value
        return losses.ssi_loss(p, t, m, alpha, scales, "batch")

    return jax.vmap(one)(prediction, target, mask)


def teacher_labels(teacher: DepthAnythingV2, teacher_params: Any, rgb: jnp.ndarray) -> jnp.ndarray:
    """The frozen teacher's relative inverse depth for frames (N, H, W, 3) in [0, 1], at their size."""
    out = teacher.apply({"params": teacher_params}, rgb, method=teacher.infer)
    return lax.stop_gradient(out)


def make_train_step(student: DepthAnythingV2, teacher: DepthAnythingV2 | None, optimizer: optax.GradientTransformation,
                    objective: str, loss_cfg: Mapping, axis_name: str | None = "batch",
                    input_key: str = "events") -> Callable:
    """The per-device step. Batches hold the student's input (`events`, or `rgb` to train a frame model)
    (B, T, H, W, C) and `depth` (B, T, H, W) or, for distillation, `rgb` (B, T, H, W, 3) (and optionally
    `rgb_valid` (B, T)) for the teacher in the step, or with teacher None the stored labels `teacher_disparity`
    (B, T, H, W) and `label_valid` (B, T); frames without RGB or label do not count."""
    if objective not in OBJECTIVES:
        raise ValueError(f"config.objective must be one of {OBJECTIVES}, got {objective!r}")
    if loss_cfg["label_space"] not in LABEL_SPACES:
        raise ValueError(f"config.loss.label_space must be one of {LABEL_SPACES}, got {loss_cfg['label_space']!r}")
    if loss_cfg.get("disparity_loss", "ssi") not in DISPARITY_LOSSES:
        raise ValueError(f"config.loss.disparity_loss must be one of {DISPARITY_LOSSES}, "
                         f"got {loss_cfg['disparity_loss']!r}")
    fraction = loss_cfg.get("ignore_largest_fraction", 0.0)
    if not isinstance(fraction, int | float) or not 0.0 <= fraction < 1.0:
        raise ValueError(f"config.loss.ignore_largest_fraction must be in [0, 1), got {fraction!r}")

    def mean(x):
        return lax.pmean(x, axis_name) if axis_name else x

    def step(state: TrainState, batch: Mapping[str, jnp.ndarray], teacher_params: Any):
        events = batch[input_key]
        b, t, h, w = events.shape[:4]
        if objective == "distill" and teacher is None:  # stored labels; frames without one do not count
            target, mask = make_targets(objective, loss_cfg, None, batch["teacher_disparity"].reshape(b * t, h, w))
            mask = mask & batch["label_valid"].reshape(b * t, 1, 1)
        elif objective == "distill":
            frames = batch["rgb"].reshape(b * t, h, w, 3)
            target, mask = make_targets(objective, loss_cfg, None, teacher_labels(teacher, teacher_params, frames))
            if "rgb_valid" in batch:  # a frame without RGB gives no label (the pipeline fills it with black)
                mask = mask & batch["rgb_valid"].reshape(b * t, 1, 1)
        else:
            target, mask = make_targets(objective, loss_cfg, batch["depth"].reshape(b * t, h, w), None)

        def loss_fn(params):
            prediction, _ = predict_clips(student, params, events)
            per_image = per_image_loss(loss_cfg, prediction.reshape(b * t, h, w), target, mask)
            return jnp.mean(per_image)

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        loss, grads = mean(loss), mean(grads)
        finite = jnp.isfinite(loss) & jnp.all(jnp.array([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))

        def update() -> TrainState:
            updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
            return state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                                 opt_state=opt_state, rng=jax.random.fold_in(state.rng, state.step))

        # The first non-finite loss or gradient is recorded in the state, which from then on stays as it was
        # before that step; the loop reads it when it next fetches metrics, reports the step and stops. (A cond,
        # not a select per leaf: that would double the step's compile time.)
        new = lax.cond(finite & (state.first_bad_step == 0), update, lambda: state)
        first_bad = (state.first_bad_step == 0) & ~finite
        new = new.replace(first_bad_step=jnp.where(first_bad, state.step + 1, state.first_bad_step))
        metrics = {"loss": loss, "grad_norm": optax.global_norm(grads)}
        return new, metrics

    return step
