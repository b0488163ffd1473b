"""Shared defaults of every config: the model block, the weights to start from, export and prediction."""

from __future__ import annotations

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    """Defaults: a DepthAnyEvent DAv2-vits student with the released MVSEC test settings."""
    c = ml_collections.ConfigDict()
    # The reference's `model` block (the keys of its JSON configs); `official` selects the DAv2 teacher.
    c.model = ml_collections.ConfigDict(dict(
        model_type="DAv2", encoder="vits", activation="softplus", scale_factor=1.0, inv_prediction=True,
        input_size_width=350, input_size_height=266, input_channels=3, official=False,
    ))
    # Weights to start from: .pth / .safetensors (converted on the fly), .msgpack or a dae_jax params directory.
    c.checkpoint = ""
    # --mode=export: where to write (default <workdir>/export/model.pth) and the evaluation flags stored with it.
    c.export = ml_collections.ConfigDict(dict(
        path="", plain=False, use_logdepth=False, use_scaleshift=False, reg_factor=3.70378, clip_distance=80.0,
    ))
    # --mode=predict: a folder of .npy (H, W, C) or .png inputs; pictures go to <workdir>/predictions.
    c.predict = ml_collections.ConfigDict(dict(input="", near_m=2.0, far_m=80.0))
    return c
