"""Weights between the official PyTorch checkpoints and Flax: load, validate, convert, export.

`load_torch_checkpoint` infers the model (DAv2 or DepthAnyEvent-R, encoder size, recurrent cell, input
channels) from the keys and shapes, completes it with the checkpoint's `config` when there is one, and refuses
a state_dict that does not match exactly. `export_torch_checkpoint` writes the official keys and shapes plus
the `config` block that the official test script reads.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import flax.serialization
import jax
import numpy as np

from dae_jax.convert.mapping import (
    ConversionError,
    check_state_dict,
    flatten,
    flax_shapes_to_torch,
    flax_to_torch,
    torch_to_flax,
    unflatten,
)
from dae_jax.convert.torch_io import read_state_dict, write_state_dict
from dae_jax.eval.metrics import EvalSettings
from dae_jax.models import ENCODERS, model_from_config, model_to_config, param_shapes

__all__ = [
    "ConversionError", "expected_torch_shapes", "export_torch_checkpoint", "flax_to_torch", "infer_model_config",
    "load_flax_params", "load_torch_checkpoint", "save_flax_params", "torch_to_flax",
]


def infer_model_config(state_dict: Mapping[str, np.ndarray], config: Mapping | None = None) -> dict[str, Any]:
    """The `model` block for a state_dict: inferred structure, other options from `config['model']` if given."""
    model_cfg = dict(config.get("model", {})) if config else {}
    if "pretrained.pos_embed" not in state_dict:
        raise ConversionError("cannot infer the encoder: the state_dict has no 'pretrained.pos_embed'")
    dim = int(np.shape(state_dict["pretrained.pos_embed"])[-1])
    depth = len({k.split(".")[2] for k in state_dict if k.startswith("pretrained.blocks.")})
    encoder = next((name for name, s in ENCODERS.items() if s.dim == dim and s.depth == depth), None)
    if encoder is None:
        raise ConversionError(f"cannot infer the encoder from embedding width {dim} and {depth} blocks")
    inferred: dict[str, Any] = {"encoder": encoder, "model_type": "DAv2"}
    if any(k.startswith("depth_head.gru_layer_") for k in state_dict):
        inferred["model_type"] = "RecDAv2"
        gates = any(".recurrent_block.Gates." in k for k in state_dict)
        inferred["recurrent_block_type"] = "convlstm" if gates else "convgru"
    if "input_mapping.0.weight" in state_dict:
        inferred["input_channels"] = int(np.shape(state_dict["input_mapping.0.weight"])[1])
    for key, value in inferred.items():
        if key in model_cfg and model_cfg[key] != value and key != "model_type":
            raise ConversionError(f"the checkpoint config says {key}={model_cfg[key]!r} but the weights are {value!r}")
    model_cfg.update(inferred)
    model_cfg.setdefault("input_channels", 3)
    return model_cfg


def expected_torch_shapes(model_config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """PyTorch key -> shape that a model built from `model_config` has, in the official order."""
    return flax_shapes_to_torch(param_shapes(model_from_config(model_config)))


def load_torch_checkpoint(
    path: str, model_config: Mapping[str, Any] | None = None
) -> tuple[dict, dict[str, Any], dict | None]:
    """Read an official or DepthAnyEvent `.pth`/`.safetensors` -> (Flax params, model config, checkpoint config).

    `model_config` overrides what is inferred (for example `{'official': True}` for the DAv2 teacher).
    Every key must match the model: missing, unexpected and mis-shaped keys are listed in the error.
    """
    state_dict, ckpt_config = read_state_dict(path)
    config = infer_model_config(state_dict, ckpt_config)
    config.update(model_config or {})
    check_state_dict(state_dict, expected_torch_shapes(config), what=path)
    params = torch_to_flax({k: np.asarray(v, np.float32) for k, v in state_dict.items()})
    return params, config, ckpt_config


def export_torch_checkpoint(
    path: str, params: Mapping, model_config: Mapping[str, Any], settings: EvalSettings | None = None,
    plain: bool = False,
) -> None:
    """Write params as an official-layout `.pth` or `.safetensors`.

    By default the file is {'state_dict': ..., 'config': {'model': ..., 'trainer': settings}} as DepthAnyEvent's
    test script expects; `plain=True` writes a bare state_dict, the layout of the official DAv2 checkpoints.
    """
    state_dict = flax_to_torch(jax.device_get(params))
    check_state_dict(state_dict, expected_torch_shapes(model_config), what="the parameters to export")
    config = None
    if not plain:
        model_block = model_to_config(model_from_config(model_config))
        model_block.pop("official", None)  # not a key of the reference's model block
        config = {"model": model_block, "trainer": (settings or EvalSettings()).as_dict()}
    write_state_dict(path, state_dict, config)


PARITY_LIMIT = 1e-4  # max |PyTorch - JAX| / max |JAX| accepted for an exported model (verify_torch_export)


def verify_torch_export(path: str, params: Mapping, model_config: Mapping[str, Any],
                        frames: np.ndarray | None = None, seed: int = 0) -> float:
    """Load a written `.pth`/`.safetensors` into the PyTorch reference (`strict=True`) and predict `frames`
    (T, H, W, C) in [0, 1] (random ones at the network size when None) with it and with JAX (one sequence: the
    state is carried for DepthAnyEvent-R); returns max |PyTorch - JAX| / max |JAX|. Needs torch."""
    import torch

    from dae_jax.convert import torch_reference as ref
    from dae_jax.predictor import Predictor

    state_dict, ckpt_config = read_state_dict(path)
    block = {**infer_model_config(state_dict, ckpt_config), **dict(model_config)}
    if block.get("official"):
        tmodel = ref.DepthAnythingV2(block["encoder"], flavour="official")
    else:
        recurrent = block.get("recurrent_block_type", "convlstm") if block.get("model_type") == "RecDAv2" else None
        tmodel = ref.DepthAnythingV2(block["encoder"], activation=block.get("activation", "relu"),
                                     inv_prediction=block.get("inv_prediction", False),
                                     scale_factor=block.get("scale_factor", 1.0),
                                     input_channels=block.get("input_channels", 3), recurrent_block_type=recurrent)
    tmodel.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state_dict.items()}, strict=True)
    tmodel.eval()
    predictor = Predictor(params, model_config)
    size = (predictor.model.input_width, predictor.model.input_height)
    if frames is None:
        channels = predictor.model.input_channels
        frames = np.random.default_rng(seed).uniform(size=(2, size[1], size[0], channels)).astype(np.float32)
    frames = np.asarray(frames, np.float32)
    states, got = None, []
    with torch.no_grad():
        for frame in frames:
            x = torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1)[None]))
            if predictor.recurrent:
                out, states = ref.infer(tmodel, x, *size, prev_states=states)
            else:
                out = ref.infer(tmodel, x, *size)
            got.append(out[0, 0].numpy())
    expected, _ = predictor(frames)
    return float(np.max(np.abs(np.stack(got) - expected)) / np.max(np.abs(expected)))


def save_flax_params(path: str, params: Mapping, model_config: Mapping[str, Any],
                     settings: EvalSettings | None = None) -> None:
    """Save params with their model config (and the evaluation settings of their output, when given): a `.msgpack`
    file, or an Orbax checkpoint directory otherwise."""
    params = jax.device_get(params)
    stored = settings.as_dict() if settings else {}
    if path.endswith(".msgpack"):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        blob = {"params": params, "model_config": json.dumps(dict(model_config)), "settings": json.dumps(stored)}
        with open(path, "wb") as f:
            f.write(flax.serialization.msgpack_serialize(blob))
        return
    import orbax.checkpoint as ocp

    path = os.path.abspath(path)
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(os.path.join(path, "params"), params, force=True)
    checkpointer.wait_until_finished()
    with open(os.path.join(path, "model_config.json"), "w") as f:
        json.dump(dict(model_config), f, indent=2)
    with open(os.path.join(path, "settings.json"), "w") as f:
        json.dump(stored, f, indent=2)


def load_flax_params(path: str) -> tuple[dict, dict[str, Any], dict[str, Any]]:
    """Load what `save_flax_params` wrote -> (params, model config, stored settings or {}), checking the tree
    against the model."""
    if path.endswith(".msgpack"):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"params file not found: {path}")
        with open(path, "rb") as f:
            blob = flax.serialization.msgpack_restore(f.read())
        if "params" not in blob or "model_config" not in blob:
            raise ConversionError(f"{path}: expected 'params' and 'model_config' entries, got {sorted(blob)}")
        params, config = blob["params"], json.loads(blob["model_config"])
        settings = json.loads(blob.get("settings", "{}"))
    else:
        import orbax.checkpoint as ocp

        path = os.path.abspath(path)
        config_path = os.path.join(path, "model_config.json")
        if not os.path.isfile(config_path):
            raise FileNotFoundError(f"not a dae_jax params directory (no model_config.json): {path}")
        with open(config_path) as f:
            config = json.load(f)
        settings_path = os.path.join(path, "settings.json")
        settings = {}
        if os.path.isfile(settings_path):
            with open(settings_path) as f:
                settings = json.load(f)
        params = ocp.StandardCheckpointer().restore(os.path.join(path, "params"))
    expected = {k: tuple(v.shape) for k, v in flatten(param_shapes(model_from_config(config))).items()}
    check_state_dict(flatten(params), expected, what=path)
    return unflatten({k: np.asarray(v) for k, v in flatten(params).items()}), config, settings
