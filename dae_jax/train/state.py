"""Train state, optimiser (AdamW, schedules, per-group learning rates, freezing) and weight initialisation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from dae_jax.convert import ConversionError
from dae_jax.convert.mapping import flatten, unflatten
from dae_jax.models import DepthAnythingV2

SCHEDULES = ("cosine", "poly", "constant")
RECURRENT_INITS = ("random", "passthrough")


@flax.struct.dataclass
class TrainState:
    """Everything a step changes: the step count, params, optimiser state, the RNG key, and the first step
    whose loss or gradient was not finite (0: none; from that step on the state stays as it was before it)."""

    step: jnp.ndarray
    params: Any
    opt_state: Any
    rng: jnp.ndarray
    first_bad_step: jnp.ndarray


def param_groups(params: Mapping, freeze_encoder: bool, recurrent: bool) -> Any:
    """'encoder' / 'head' / 'frozen' for every parameter.

    The encoder is `pretrained`; freezing it follows DepthAnyEvent: for DAv2 the encoder, for DepthAnyEvent-R
    the encoder and the whole head except the recurrent layers (input_mapping stays trainable).
    """

    def group(path: str) -> str:
        top = path.split("/")[0]
        if not freeze_encoder:
            return "encoder" if top == "pretrained" else "head"
        if top == "pretrained":
            return "frozen"
        if recurrent and top == "depth_head" and not path.split("/")[1].startswith("gru_layer_"):
            return "frozen"
        return "head"

    return unflatten({path: group(path) for path in flatten(params)})


def learning_rate(peak: float, optim: Mapping, num_steps: int) -> optax.Schedule:
    """Linear warm-up to `peak`, then cosine decay, polynomial (power 0.9) decay or constant."""
    warmup = int(optim["warmup_steps"])
    decay_steps = max(num_steps - warmup, 1)
    kind = optim["schedule"]
    if kind == "cosine":
        after = optax.cosine_decay_schedule(peak, decay_steps, alpha=float(optim.get("final_lr_fraction", 0.0)))
    elif kind == "poly":
        after = optax.polynomial_schedule(peak, peak * float(optim.get("final_lr_fraction", 0.0)), 0.9, decay_steps)
    elif kind == "constant":
        after = optax.constant_schedule(peak)
    else:
        raise ValueError(f"config.optim.schedule must be one of {SCHEDULES}, got {kind!r}")
    if warmup == 0:
        return after
    return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup), after], [warmup])


def make_optimizer(optim: Mapping, num_steps: int, groups: Any) -> optax.GradientTransformation:
    """Gradient clipping, then AdamW with the encoder's and the head's learning rates; frozen groups get zero."""

    def adamw(peak: float) -> optax.GradientTransformation:
        return optax.adamw(learning_rate(peak, optim, num_steps), b1=float(optim["b1"]), b2=float(optim["b2"]),
                           weight_decay=float(optim["weight_decay"]))

    return optax.chain(
        optax.clip_by_global_norm(float(optim["grad_clip"])) if optim["grad_clip"] else optax.identity(),
        optax.multi_transform(
            {"encoder": adamw(float(optim["encoder_lr"])), "head": adamw(float(optim["lr"])),
             "frozen": optax.set_to_zero()},
            groups,
        ),
    )


# XLA options for the initialiser's program. It runs once and is nothing but the random draws of every parameter
# (the forward pass is dead code), whose compilation at the default optimisation level (2) takes most of init's
# time on CPU. Level 1 draws the same bits in half the compile time (tiny model 3.9 s against 7.8 s, vits 6.6
# against 9.0, vitl 15.4 against 17.4); level 0 compiles faster still but draws slower (vitl 29 s).
INIT_COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}
# The initialiser's input side: the smallest input DepthAnyEvent-R takes (DAv2 takes any multiple of 14).
INIT_SIZE = 70


def init_params(model: DepthAnythingV2, rng: jax.Array) -> dict:
    """Random parameters (compiled, so large models initialise quickly).

    The draws do not depend on the input (the forward pass is dead code), so one fixed input (INIT_SIZE square)
    gives one program per model, which the persistent compilation cache then serves to every run of that model at
    any input size.
    """
    x = jnp.zeros((1, INIT_SIZE, INIT_SIZE, model.input_channels), jnp.float32)
    if model.recurrent:
        x = x[:, None]
    return jax.jit(model.init).lower(rng, x).compile(compiler_options=INIT_COMPILER_OPTIONS)(rng, x)["params"]


def passthrough_recurrent(params: Mapping, gate_bias: float = 3.0) -> dict:
    """DepthAnyEvent-R's recurrent layers (`gru_layer_*`) set to pass their input on, the rest untouched.

    The padding-0 conv becomes the identity on its centre tap; in a ConvLSTM the cell candidate is the identity of
    that input and the input and output gates open (bias `gate_bias`); in a ConvGRU the candidate is the input and
    the update gate open. Every other weight is 0 (the state has no say until it is learnt). Started from DAv2
    weights, the model then computes about what DAv2 does on the first frame (the features through ReLU and tanh),
    where random layers would hand the head random mixtures of the features it was trained on.
    """
    head = dict(params["depth_head"])
    for name in [k for k in head if k.startswith("gru_layer_")]:
        layer = head[name]
        conv = layer["conv"]["conv2d"]
        f = conv["bias"].shape[0]
        eye = jnp.eye(f, dtype=conv["kernel"].dtype)
        cell = dict(layer["recurrent_block"])
        if "Gates" in cell:  # ConvLSTM: one conv on [x, h] gives the gates input, forget, output, cell
            kernel = jnp.zeros_like(cell["Gates"]["kernel"]).at[1, 1, :f, 3 * f:].set(eye)
            bias = jnp.zeros_like(cell["Gates"]["bias"]).at[:f].set(gate_bias).at[2 * f:3 * f].set(gate_bias)
            cell["Gates"] = {"kernel": kernel, "bias": bias}
        else:  # ConvGRU: reset and update gates on [x, h], candidate on [x, h * r]
            zeros = {k: {"kernel": jnp.zeros_like(v["kernel"]), "bias": jnp.zeros_like(v["bias"])}
                     for k, v in cell.items()}
            zeros["update_gate"]["bias"] = jnp.full_like(cell["update_gate"]["bias"], gate_bias)
            zeros["out_gate"]["kernel"] = zeros["out_gate"]["kernel"].at[1, 1, :f].set(eye)
            cell = zeros
        identity = jnp.zeros_like(conv["kernel"]).at[1, 1].set(eye)
        head[name] = {"conv": {"conv2d": {"kernel": identity, "bias": jnp.zeros_like(conv["bias"])}},
                      "recurrent_block": cell}
    return {**params, "depth_head": head}


def merge_params(target: Mapping, loaded: Mapping, source: str) -> tuple[dict, list[str]]:
    """Overwrite `target` with every tensor of `loaded`; returns (params, paths kept from target).

    Used to start DepthAnyEvent-R from DAv2 weights (the recurrent layers stay freshly initialised). A loaded
    tensor the target does not have, or has with another shape, is an error naming `source`.
    """
    flat_target, flat_loaded = flatten(target), flatten(loaded)
    unexpected = sorted(set(flat_loaded) - set(flat_target))
    misshaped = [f"{k}: {np.shape(v)} vs {np.shape(flat_target[k])}" for k, v in flat_loaded.items()
                 if k in flat_target and np.shape(v) != np.shape(flat_target[k])]
    if unexpected or misshaped:
        raise ConversionError(f"{source} does not fit the model: unexpected {unexpected[:10]}, "
                              f"wrong shapes {misshaped[:10]}")
    merged = {k: jnp.asarray(flat_loaded.get(k, v), jnp.float32) for k, v in flat_target.items()}
    return unflatten(merged), sorted(set(flat_target) - set(flat_loaded))


def create_train_state(params: Any, optimizer: optax.GradientTransformation, seed: int) -> TrainState:
    """Step 0 with a fresh optimiser state."""
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=optimizer.init(params),
                      rng=jax.random.PRNGKey(seed), first_bad_step=jnp.zeros((), jnp.int32))
