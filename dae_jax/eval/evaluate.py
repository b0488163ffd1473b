"""Checkpoint evaluation with the paper's protocol: every sequence of a split, CSV + JSON, optional pictures.

Both models go through one `Predictor`, on runs of up to `batch_size` consecutive frames of a sequence: a batch
for DAv2; time steps for DepthAnyEvent-R, which starts each sequence from the zero state and carries it. Predictions
go through `dae_jax.eval.metrics` exactly as the reference's test script does (per-frame metrics, nanmean per
sequence, then the mean over sequences). Weights come from `dae_jax.weights.resolve`.
"""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from tqdm import tqdm

from dae_jax.data.pipeline import InputConfig, iterate_sequences, read_split
from dae_jax.eval import metrics as M
from dae_jax.predictor import Predictor


def eval_input_config(config: Any) -> InputConfig:
    """The evaluation input of a run config: config.eval's split of config.eval.dataset_dir or the training data."""
    return InputConfig(dataset_dir=config.eval.dataset_dir or config.data.dataset_dir, split=config.eval.split,
                       batch_size=1, crop=config.eval.crop, representation=dict(config.data.representation),
                       load_depth=True, shuffle=False)


def evaluate(params: Mapping, model_config: Mapping[str, Any], data: InputConfig,
             settings: M.EvalSettings | Mapping[str, Any], output_dir: str | None = None, batch_size: int = 8,
             pictures: int = 0, gif: bool = False, input_key: str = "events",
             transform: Callable[[np.ndarray], np.ndarray] | None = None,
             input_transform: Callable[[np.ndarray], np.ndarray] | None = None) -> dict[str, Any]:
    """Evaluate on every sequence of `data.split`; write eval.csv / eval.json (and pictures) to output_dir.

    `settings`: use_logdepth, use_scaleshift, reg_factor, clip_distance (the reference's test flags; a mapping's
    absent ones take its CLI defaults). `pictures`: how many frames per sequence to draw (0: none); their
    metric-depth predictions are also returned under "pictures" as {(sequence, frame index): (H, W)}. `gif`: also
    join each sequence's pictures into pictures/<sequence>.gif. `input_key`: the model's input ('rgb' evaluates a
    frame model, with data.load_rgb); `transform`: applied to each raw prediction before the protocol (e.g. a frame
    teacher's relative inverse depth -> log depth); `input_transform`: applied to each input before the model
    (e.g. np.zeros_like: the events-removed control).
    """
    if not isinstance(settings, M.EvalSettings):
        settings = M.EvalSettings.from_mapping(settings)
    flags = settings.as_dict()
    predictor = Predictor(params, model_config)
    acc, shown = M.SequenceAccumulator(), {}
    record = functools.partial(_record, acc, flags=flags, output_dir=output_dir, pictures=pictures,
                               input_key=input_key, transform=transform, shown=shown)
    split = read_split(data.dataset_dir, data.split)
    progress = tqdm(total=sum(n for _, _, n in split.sequences), desc=f"eval {data.split}", unit="frame")
    for name, frames in iterate_sequences(data):
        state, pending, drawn = None, [], 0
        for frame in itertools.chain(frames, [None]):  # None: the end of the sequence flushes what is pending
            if frame is not None:
                if input_transform is not None:
                    frame = {**frame, input_key: input_transform(frame[input_key])}
                pending.append(frame)
            if pending and (frame is None or len(pending) == batch_size):
                depth, state = predictor(np.concatenate([f[input_key][:, 0] for f in pending]), state)
                for f, pred in zip(pending, depth, strict=True):
                    drawn = record(name, f, pred, drawn)
                    progress.update(1)
                pending = []
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
