"""Prediction on files: run a model over a folder of inputs and write depth maps and coloured pictures.

Inputs are `.npy` arrays (H, W, C) in [0, 1] (e.g. Tencode) or `.png` images (divided by 255), taken in sorted
order; a DepthAnyEvent-R model carries its state from file to file, as over one sequence.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from dae_jax.eval.visualize import colorize_depth, colorize_relative
from dae_jax.models import model_from_config


def read_input(path: str) -> np.ndarray:
    """One input file -> float32 (H, W, C) in [0, 1]."""
    if path.endswith(".npy"):
        x = np.load(path).astype(np.float32)
        if x.ndim == 2:
            x = x[..., None]
        if x.ndim != 3:
            raise ValueError(f"{path}: expected an (H, W, C) array, got shape {x.shape}")
        return x
    return np.asarray(Image.open(path).convert("RGB"), np.float32) / 255.0


def predict_files(
    params: Mapping, model_config: Mapping[str, Any], input_dir: str, output_dir: str,
    near_m: float = 2.0, far_m: float = 80.0,
) -> list[str]:
    """Predict every `.npy`/`.png` in `input_dir`; write `<name>.npy` (depth) and `<name>.png` (colour)."""
    files = sorted(glob.glob(os.path.join(input_dir, "*.npy")) + glob.glob(os.path.join(input_dir, "*.png")))
    if not files:
        raise FileNotFoundError(f"no .npy or .png inputs in {input_dir}")
    model = model_from_config(model_config)
    if model.recurrent:
        run = jax.jit(lambda p, x, s: model.apply({"params": p}, x, s, method=model.infer_step))
    else:
        run = jax.jit(lambda p, x: model.apply({"params": p}, x, method=model.infer))
    os.makedirs(output_dir, exist_ok=True)
    written, states = [], None
    for path in files:
        x = jnp.asarray(read_input(path)[None])
        if model.recurrent:
            depth, states = run(params, x, states)  # None (zero state) on the first file
        else:
            depth = run(params, x)
        depth = np.asarray(depth[0])
        name = os.path.splitext(os.path.basename(path))[0]
        np.save(os.path.join(output_dir, f"{name}.npy"), depth)
        picture = colorize_relative(depth) if model.official else colorize_depth(depth, near_m, far_m)
        Image.fromarray(picture).save(os.path.join(output_dir, f"{name}.png"))
        written.append(os.path.join(output_dir, f"{name}.png"))
    return written
