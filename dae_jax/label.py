"""Label once: the frozen teacher over splits of a prepared dataset, its proxy labels stored for every student.

  python launch.py --config=configs/X.py --workdir=W --mode=label      # config.teacher, config.data, config.label
  python -m dae_jax.label --teacher=depth_anything_v2_vitl.pth --dataset_dir=DATA/mvsec/tencode/1.0.0 \
      --splits=train [--output=DIR] [--batch_size=8] [--chunk_size=64] [--input_size=518]

Every record of a split that has an RGB frame gets the teacher's relative inverse depth at the frame's resolution
(`infer`: the size rule, bicubic resize, forward, bilinear resize back), stored as float16 in ArrayRecord chunks
(format: dae_jax.data.labels). Chunks are dealt round-robin to the hosts; each host runs its frames data-parallel
over its devices (jax.pmap). A chunk file appears only when complete, so a killed job started again continues
with the first missing chunk and the result is the same bytes as an uninterrupted job's. Training reads the
labels with `config.teacher.labels=DIR` and then needs no teacher on the devices.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from etils import epath
from flax import jax_utils

from dae_jax.data import labels as L
from dae_jax.models import model_from_config, target_size

_IDENTITY_KEYS = ("name", "config", "version", "split", "num_records", "sequences", "height", "width")


def _sync(name: str, timeout_s: int = 1800) -> None:
    """Wait for every process at a coordination-service barrier (no device collective); no-op on one process."""
    if jax.process_count() > 1:
        from dae_jax.train.loop import barrier

        barrier(name, timeout_s)


def _write_json(path: epath.Path, value: Mapping[str, Any]) -> None:
    """Write JSON atomically (a reader never sees half a file)."""
    tmp = path.parent / (path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2))
    tmp.replace(path)


def _rgb_only_source(dataset_dir: str, split: str) -> Any:
    """The TFDS data source of a split that decodes only the RGB frames (events and depth are skipped)."""
    builder = tfds.builder_from_directory(dataset_dir)

    def skip(feature):
        if isinstance(feature, tfds.features.FeaturesDict):
            return {k: skip(v) for k, v in feature.items()}
        return tfds.decode.SkipDecoding()

    decoders = {k: skip(v) for k, v in builder.info.features.items() if k in ("depth", "events", "encoding")}
    return builder.as_data_source(split=split, decoders=decoders)


def _check_resumable(existing: Mapping[str, Any], manifest: Mapping[str, Any], path: epath.Path) -> None:
    """A job may only continue labels made by the same teacher, dataset splits and chunking."""

    def settings(m):  # the teacher is its weights' fingerprint, not the path they were read from
        splits = {s: {k: e.get(k) for k in _IDENTITY_KEYS} for s, e in m["splits"].items()}
        teacher = {k: v for k, v in m.get("teacher", {}).items() if k != "checkpoint"}
        return {"format_version": m.get("format_version"), "chunk_size": m.get("chunk_size"),
                "batch_size": m.get("batch_size"), "teacher": teacher, "splits": splits}

    old, new = settings(existing), settings(manifest)
    differs = [k for k in new if old[k] != new[k]]
    if differs:
        raise ValueError(f"{path} holds labels made with other settings (differs in {differs}); label into "
                         "another directory (config.label.output / --output) or delete it")


def label_dataset(teacher_checkpoint: str, teacher_model: Mapping[str, Any], dataset_dir: str,
                  splits: Sequence[str], output: str = "", batch_size: int = 8, chunk_size: int = 64) -> str:
    """Label `splits` of the dataset with the teacher's weights file (resuming a killed job); returns the label
    directory. batch_size is global (over all devices of all hosts); chunk_size records make one file."""
    from dae_jax.weights import resolve

    teacher = resolve(teacher_checkpoint, dict(teacher_model))
    params, model_config = teacher.params, teacher.model_config
    source = {"checkpoint": os.path.abspath(teacher_checkpoint), "sha256": L.weights_fingerprint(teacher_checkpoint)}
    return label_with(params, model_config, source, dataset_dir, splits, output, batch_size, chunk_size)


def label_with(params: Any, model_config: Mapping[str, Any], source: Mapping[str, Any], dataset_dir: str,
               splits: Sequence[str], output: str = "", batch_size: int = 8, chunk_size: int = 64) -> str:
    """label_dataset for teacher params in memory; `source` says where they came from (kept in labels.json)."""
    if chunk_size < 1:
        raise ValueError(f"config.label.chunk_size must be >= 1, got {chunk_size}")
    if batch_size < 1 or batch_size % jax.device_count():
        raise ValueError(f"config.label.batch_size ({batch_size}) must be a positive multiple of the number of "
                         f"devices ({jax.device_count()})")
    if not splits:
        raise ValueError("config.label.splits is empty: name the splits to label (e.g. train)")
    out = epath.Path(output or os.path.join(dataset_dir, "labels"))
    teacher = model_from_config(model_config)
    manifest = L.label_manifest(dataset_dir, splits, {
        **source, "model": dict(model_config),
        "size_rule": {"input_size_width": teacher.input_width, "input_size_height": teacher.input_height,
                      "rule": "keep aspect ratio, cover the input size, multiples of 14 (DAv2 lower_bound)"},
    }, chunk_size, batch_size)
    path = out / L.MANIFEST
    if jax.process_index() == 0:
        out.mkdir(parents=True, exist_ok=True)
        if path.exists():
            existing = json.loads(path.read_text())
            _check_resumable(existing, manifest, path)
            manifest = existing
        else:
            _write_json(path, manifest)
    _sync("dae_jax_label_start")

    # Over this host's devices only: hosts label different chunks and need not step together.
    devices = jax.local_devices()
    infer = jax.pmap(lambda p, x: teacher.apply({"params": p}, x, method=teacher.infer), devices=devices)
    replicated = jax_utils.replicate(params, devices)
    for split in splits:
        entry = manifest["splits"][split]
        net = target_size(entry["height"], entry["width"], teacher.input_width, teacher.input_height)
        logging.info("labelling %s split %r: %d records at %dx%d (teacher input %dx%d) -> %s", dataset_dir, split,
                     entry["num_records"], entry["height"], entry["width"], *net, out / split)
        _label_split(infer, replicated, dataset_dir, split, entry, out, chunk_size, batch_size // jax.process_count())
    _sync("dae_jax_label_done", timeout_s=7 * 24 * 3600)  # hosts finish their shares at different times
    if jax.process_index() == 0:
        for split in splits:
            count = -(-manifest["splits"][split]["num_records"] // chunk_size)
            missing = [c for c in range(count) if not L.chunk_path(str(out), split, c).exists()]
            if missing:
                raise RuntimeError(f"{out}: chunks {missing[:5]} of split {split!r} are missing after every host "
                                   "finished")
            manifest["splits"][split]["complete"] = True
        _write_json(path, manifest)
        logging.info("labels complete: %s", out)
    return str(out)


def _label_split(infer, params, dataset_dir: str, split: str, entry: Mapping[str, Any], out: epath.Path,
                 chunk_size: int, host_batch: int) -> None:
    """This host's chunks of one split: read RGB, teacher in batches of host_batch, write each chunk atomically."""
    from dae_jax.train.loop import hms

    total, height, width = entry["num_records"], entry["height"], entry["width"]
    chunks = [c for c in range(-(-total // chunk_size)) if c % jax.process_count() == jax.process_index()]
    todo = [c for c in chunks if not L.chunk_path(str(out), split, c).exists()]
    if len(todo) < len(chunks):
        logging.info("split %r: %d of this host's %d chunks already done, continuing", split, len(chunks) - len(todo),
                     len(chunks))
    source = _rgb_only_source(dataset_dir, split)
    devices = jax.local_device_count()
    frames_todo = sum(min(chunk_size, total - c * chunk_size) for c in todo)
    done, start = 0, time.perf_counter()
    for chunk in todo:
        first = chunk * chunk_size
        indices = list(range(first, min(first + chunk_size, total)))
        records = source.__getitems__(indices)
        rgb = [np.asarray(r["rgb"]) for r in records]
        with_frame = [k for k, x in enumerate(rgb) if x.size]
        for k in with_frame:
            if rgb[k].shape != (height, width, 3):
                raise ValueError(f"{dataset_dir}: record {indices[k]} of split {split!r} has an RGB frame of shape "
                                 f"{rgb[k].shape}, expected {(height, width, 3)}")
        labels: list[np.ndarray | None] = [None] * len(records)
        for b in range(0, len(with_frame), host_batch):
            ks = with_frame[b:b + host_batch]
            batch = np.zeros((host_batch, height, width, 3), np.float32)
            batch[:len(ks)] = np.stack([rgb[k] for k in ks]).astype(np.float32) / np.float32(255.0)
            result = np.asarray(infer(params, batch.reshape(devices, -1, height, width, 3)))
            result = result.reshape(host_batch, height, width)[:len(ks)]
            stored = result.astype(L.LABEL_DTYPE)
            bad = [indices[k] for k, s in zip(ks, stored, strict=True) if not np.all(np.isfinite(s))]
            if bad:
                raise FloatingPointError(f"{dataset_dir} split {split!r}: the teacher's output for records {bad[:5]} "
                                         "is not finite in float16 (beyond +-65504, or NaN)")
            for k, s in zip(ks, stored, strict=True):
                labels[k] = s
        L.write_chunk(str(out), split, chunk, labels, tag=str(jax.process_index()))
        done += len(indices)
        elapsed = time.perf_counter() - start
        rate = done / elapsed
        logging.info("label %s: chunk %d (%d/%d frames on this host)  %.2f frames/s  ETA %s", split, chunk, done,
                     frames_todo, rate, hms((frames_todo - done) / rate))


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: label splits of a prepared dataset with a teacher's weights."""
    parser = argparse.ArgumentParser(description="Store the frozen teacher's proxy labels for a prepared dataset.")
    parser.add_argument("--teacher", required=True, help="teacher weights: official .pth, .safetensors or params")
    parser.add_argument("--dataset_dir", required=True, help="a prepared TFDS version directory")
    parser.add_argument("--splits", default="train", help="comma-separated splits to label")
    parser.add_argument("--output", default="", help="label directory (default <dataset_dir>/labels)")
    parser.add_argument("--batch_size", type=int, default=8, help="frames per step over all devices")
    parser.add_argument("--chunk_size", type=int, default=64, help="records per ArrayRecord file")
    parser.add_argument("--input_size", type=int, default=None, help="teacher input size (518 for DAv2)")
    args = parser.parse_args(argv)
    logging.set_verbosity(logging.INFO)
    model: dict[str, Any] = {"official": True}
    if args.input_size:
        model.update(input_size_width=args.input_size, input_size_height=args.input_size)
    label_dataset(args.teacher, model, args.dataset_dir, [s for s in args.splits.split(",") if s], args.output,
                  args.batch_size, args.chunk_size)


if __name__ == "__main__":
    main()
