"""Flax models of Depth AnyEvent and their construction from the reference's `model` config block."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from dae_jax.models.depth_anything import DepthAnyEventR, DepthAnythingV2, target_size
from dae_jax.models.vit import ENCODERS, EncoderSpec, get_encoder

__all__ = [
    "ENCODERS", "DepthAnyEventR", "DepthAnythingV2", "EncoderSpec", "get_encoder", "model_from_config",
    "model_to_config", "param_shapes", "target_size",
]

MODEL_TYPES = ("DAv2", "RecDAv2")
# Keys of the reference's `model` block that do not change the network (training-time or loader options).
_IGNORED_KEYS = ("freeze_encoder", "nopretrain", "checkpoint_path", "input_type")


def model_from_config(config: Mapping[str, Any], dtype: Any = jnp.float32, remat: bool = False,
                      unroll: bool = True) -> DepthAnythingV2:
    """Build a model from a DepthAnyEvent `model` block (model_type, encoder, activation, ...).

    `official: true` (our addition) selects the frame teacher with official DAv2 semantics. Unknown keys raise,
    so a typo in a config cannot silently fall back to a default. `dtype`, `remat` and `unroll` (of
    DepthAnyEvent-R's time loop) are execution options, not part of the network.
    """
    known = {
        "model_type", "encoder", "activation", "scale_factor", "inv_prediction", "input_size_width",
        "input_size_height", "input_channels", "recurrent_block_type", "official", *_IGNORED_KEYS,
    }
    unknown = sorted(set(config) - known)
    if unknown:
        raise ValueError(f"unknown model config keys {unknown}; known keys are {sorted(known)}")
    model_type = config.get("model_type", "DAv2")
    if model_type not in MODEL_TYPES:
        raise ValueError(f"model_type must be one of {MODEL_TYPES}, got {model_type!r}")
    if "encoder" not in config:
        raise ValueError(f"model config needs an 'encoder' (one of {sorted(ENCODERS)})")
    kwargs = dict(
        encoder=config["encoder"],
        activation=config.get("activation", "relu"),
        official=bool(config.get("official", False)),
        inv_prediction=bool(config.get("inv_prediction", False)),
        scale_factor=float(config.get("scale_factor", 1.0)),
        input_channels=int(config.get("input_channels", 3)),
        input_width=int(config.get("input_size_width", 518)),
        input_height=int(config.get("input_size_height", 518)),
        dtype=dtype,
        remat=remat,
    )
    if model_type == "RecDAv2":
        return DepthAnyEventR(recurrent=config.get("recurrent_block_type", "convlstm"), unroll=unroll, **kwargs)
    return DepthAnythingV2(**kwargs)


def model_to_config(model: DepthAnythingV2) -> dict[str, Any]:
    """The reference's `model` block for a model, as the official test script reads it from a checkpoint."""
    config = {
        "model_type": "RecDAv2" if model.recurrent else "DAv2",
        "encoder": model.encoder,
        "activation": model.activation,
        "scale_factor": model.scale_factor,
        "inv_prediction": model.inv_prediction,
        "input_size_width": model.input_width,
        "input_size_height": model.input_height,
        "freeze_encoder": False,
        "input_channels": model.input_channels,
    }
    if model.recurrent:
        config["recurrent_block_type"] = model.recurrent
    if model.official:
        config["official"] = True
    return config


def param_shapes(model: DepthAnythingV2) -> dict:
    """The model's parameter tree as ShapeDtypeStructs, without allocating or computing anything."""
    side = 5 * 14  # the smallest input whose recurrent maps stay positive after the padding-0 convs
    x = jnp.zeros((1, side, side, model.input_channels), jnp.float32)
    if model.recurrent:
        x = x[:, None]
    return jax.eval_shape(model.init, jax.random.PRNGKey(0), x)["params"]
