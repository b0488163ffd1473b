"""Checkpoint evaluation with the paper's protocol: every sequence of a split, CSV + JSON, optional pictures.

A DepthAnyEvent-R model starts each sequence from the zero state and carries it frame to frame; a DAv2 model
runs frames in jitted batches. Predictions go through `dae_jax.eval.metrics` exactly as the reference's test
script does (per-frame metrics, nanmean per sequence, then the mean over sequences).

Weights come from a training run's workdir (its latest Orbax checkpoint and config), a dae_jax params file,
or an official / exported PyTorch `.pth` (converted on the fly).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from dae_jax.data.pipeline import InputConfig, iterate_sequences, read_split
from dae_jax.eval import metrics as M
from dae_jax.models import model_from_config

TRAINER_FLAGS = tuple(f.name for f in dataclasses.fields(M.EvalSettings))  # a checkpoint's config['trainer']


def load_run(workdir: str, step: int | None = None) -> tuple[dict, dict[str, Any], dict[str, Any]]:
    """(params, model config, trainer flags) of a training run's latest (or given) checkpoint."""
    import orbax.checkpoint as ocp

    config_path = os.path.join(workdir, "config_train.json")
    if not os.path.isfile(config_path):
        raise FileNotFoundError(f"not a training workdir (no config_train.json): {workdir}")
    with open(config_path) as f:
        config = json.load(f)
    directory = os.path.join(os.path.abspath(workdir), "checkpoints")
    manager = ocp.CheckpointManager(directory, item_names=("state", "data"))
    step = manager.latest_step() if step is None else step
    if step is None:
        raise FileNotFoundError(f"no checkpoint in {directory}")
    state = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))["state"]
    manager.close()
    return state["params"], config["model"], M.EvalSettings.of_loss(config.get("loss", {})).as_dict()


def load_weights(source: str, model_overrides: Mapping[str, Any] | None = None):
    """(params, model config, trainer flags or {}) from a workdir, a params file or a PyTorch checkpoint."""
    from dae_jax.convert import load_params, load_torch_checkpoint

    if os.path.isdir(source) and os.path.isfile(os.path.join(source, "config_train.json")):
        params, config, flags = load_run(source)
        config.update(model_overrides or {})
        return params, config, flags
    if source.endswith((".pth", ".pt", ".safetensors")):
        params, config, ckpt_config = load_torch_checkpoint(source, model_overrides)
        trainer = (ckpt_config or {}).get("trainer", {})
        return params, config, {k: trainer[k] for k in TRAINER_FLAGS if k in trainer}
    params, config = load_params(source, model_overrides)
    return params, config, {}


def eval_input_config(config: Any) -> InputConfig:
    """The evaluation input of a run config: config.eval's split of config.eval.dataset_dir or the training data."""
    return InputConfig(dataset_dir=config.eval.dataset_dir or config.data.dataset_dir, split=config.eval.split,
                       batch_size=1, crop=config.eval.crop, representation=dict(config.data.representation),
                       load_depth=True, shuffle=False)


def evaluate(params: Mapping, model_config: Mapping[str, Any], data: InputConfig, flags: Mapping[str, Any],
             output_dir: str | None = None, batch_size: int = 8, pictures: int = 0, gif: bool = False,
             input_key: str = "events", transform: Callable[[np.ndarray], np.ndarray] | None = None,
             input_transform: Callable[[np.ndarray], np.ndarray] | None = None) -> dict[str, Any]:
    """Evaluate on every sequence of `data.split`; write eval.csv / eval.json (and pictures) to output_dir.

    `flags`: use_logdepth, use_scaleshift, reg_factor, clip_distance (the reference's test flags; absent ones
    take its CLI defaults). `pictures`: how many frames per sequence to draw (0: none); their metric-depth
    predictions are also returned under "pictures" as {(sequence, frame index): (H, W)}. `gif`: also join each
    sequence's pictures into pictures/<sequence>.gif. `input_key`: the model's input ('rgb' evaluates a frame
    model, with data.load_rgb); `transform`: applied to each raw prediction before the protocol (e.g. a frame
    teacher's relative inverse depth -> log depth); `input_transform`: applied to each input before the model
    (e.g. np.zeros_like: the events-removed control).
    """
    flags = M.EvalSettings.from_mapping(flags).as_dict()
    model = model_from_config(model_config)
    params = jax.device_put(params)
    if model.recurrent:
        run = jax.jit(lambda p, x, s: model.apply({"params": p}, x, s, method=model.infer_step))
    else:
        run = jax.jit(lambda p, x: model.apply({"params": p}, x, method=model.infer))
    acc, shown = M.SequenceAccumulator(), {}
    record = functools.partial(_record, acc, flags=flags, output_dir=output_dir, pictures=pictures,
                               input_key=input_key, transform=transform, shown=shown)
    split = read_split(data.dataset_dir, data.split)
    progress = tqdm(total=sum(n for _, _, n in split.sequences), desc=f"eval {data.split}", unit="frame")
    for name, frames in iterate_sequences(data):
        states, pending = None, []
        drawn = 0
        for frame in frames:
            if input_transform is not None:
                frame = {**frame, input_key: input_transform(frame[input_key])}
            if model.recurrent:
                depth_pred, states = run(params, jnp.asarray(frame[input_key][:, 0]), states)
                outputs = [(frame, np.asarray(depth_pred[0]))]
            else:
                pending.append(frame)
                if len(pending) < batch_size:
                    continue
                outputs = list(zip(pending, _predict(run, params, pending, input_key), strict=True))
                pending = []
            for f, pred in outputs:
                drawn = record(name, f, pred, drawn)
                progress.update(1)
        if pending:
            for f, pred in zip(pending, _predict(run, params, pending, input_key), strict=True):
                drawn = record(name, f, pred, drawn)
                progress.update(1)
    progress.close()
    if output_dir and pictures and gif:
        from dae_jax.eval.visualize import assemble_gif

        for name, _, _ in split.sequences:
            folder = os.path.join(output_dir, "pictures", name.replace("/", "_"))
            assemble_gif(folder, folder + ".gif")
    result = {"sequences": acc.sequence_means(), "mean": acc.overall_mean(), "flags": flags, "pictures": shown}
    if output_dir:
        os.makedirs(output_dir, exist_ok=True)
        acc.to_csv(os.path.join(output_dir, "eval.csv"))
        acc.to_json(os.path.join(output_dir, "eval.json"))
    return result


def _predict(run, params, frames, input_key: str) -> list[np.ndarray]:
    """One jitted call on a batch of single frames -> their depth maps."""
    x = jnp.asarray(np.concatenate([f[input_key][:, 0] for f in frames]))
    return list(np.asarray(run(params, x)))


def _record(acc, name, frame, pred, drawn, *, flags, output_dir, pictures, input_key, transform, shown) -> int:
    """Add one frame's metrics; draw it (and keep its prediction) while fewer than `pictures` are drawn."""
    depth = frame["depth"][0, 0]
    pred = transform(pred) if transform else pred
    acc.add(name, M.evaluate_frame(pred, depth, **flags))
    if drawn >= pictures:
        return drawn
    prediction_m = M.prepare_prediction(pred, depth, flags["use_logdepth"], flags["use_scaleshift"],
                                        flags["reg_factor"], flags["clip_distance"])
    index = int(frame["frame_index"][0, 0])
    shown[(name, index)] = prediction_m
    if output_dir:
        from dae_jax.eval.visualize import save_frame_pictures

        save_frame_pictures(os.path.join(output_dir, "pictures", name.replace("/", "_")), index,
                            frame[input_key][0, 0], prediction_m, M.prepare_target(depth, flags["clip_distance"]))
    return drawn + 1
