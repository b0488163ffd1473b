"""TFDS builders of the event datasets, writing array_record in the schema of `dae_jax.data.schema`."""

from __future__ import annotations

import importlib
import os

import tensorflow_datasets as tfds

DATASETS = ("synthetic_events", "mvsec", "dsec", "eventscape", "event_recordings")


def builder_class(name: str) -> type[tfds.core.GeneratorBasedBuilder]:
    """The Builder class of a dataset package, imported on demand."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {DATASETS}")
    return importlib.import_module(f"tfds_builders.{name}.{name}_dataset_builder").Builder


def build(name: str, config, data_dir: str, manual_dir: str | None = None) -> tfds.core.DatasetBuilder:
    """Prepare a dataset as array_record under data_dir; `config` is a config name or a BuilderConfig."""
    cls = builder_class(name)
    instructions = getattr(cls, "MANUAL_DOWNLOAD_INSTRUCTIONS", None)
    if instructions and not (manual_dir and os.path.isdir(manual_dir) and os.listdir(manual_dir)):
        raise FileNotFoundError(
            f"{name} needs the downloaded release in --manual_dir, and {manual_dir!r} is not a directory with "
            "the release in it.\n"
            + instructions
        )
    builder = cls(config=config, data_dir=data_dir, file_format="array_record")
    download_config = tfds.download.DownloadConfig(manual_dir=os.path.abspath(manual_dir) if manual_dir else None)
    builder.download_and_prepare(download_config=download_config)
    return builder


def bytes_per_example(builder: tfds.core.DatasetBuilder) -> dict[str, float]:
    """Stored bytes per example of each split, from the files on disk."""
    out = {}
    for split, info in builder.info.splits.items():
        size = sum(os.path.getsize(f) for f in info.filepaths)
        out[split] = size / max(info.num_examples, 1)
    return out
