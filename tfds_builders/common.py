"""What every builder shares: BuilderConfigs for the two storage formats and the per-frame example."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from dae_jax.data.readers import SPLIT_NAMES, SequenceReader
from dae_jax.data.schema import EMPTY_DEPTH, EMPTY_RGB, dataset_metadata, example_features
from dae_jax.events import tencode, tencode_from_voxels


@dataclasses.dataclass
class EventBuilderConfig(tfds.core.BuilderConfig):
    """`event_format`: 'events' stores the raw window (x, y, t, p); 'tencode' the (3, H, W) encoding; 'voxels'
    the release's voxel grids. `splits` restricts which splits are built (empty: all of them)."""

    event_format: str = "events"
    splits: tuple[str, ...] = ()


def format_configs(description: str) -> list[EventBuilderConfig]:
    """The raw-events and the compact precomputed-Tencode configs of a dataset."""
    return [
        EventBuilderConfig(name="events", event_format="events",
                           description=f"{description}; raw events of the 50 ms window before each frame."),
        EventBuilderConfig(name="tencode", event_format="tencode",
                           description=f"{description}; the window precomputed as a (3, H, W) Tencode image."),
    ]


class ReaderBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """A builder over a format reader of `dae_jax.data.readers`: one record per frame, in sequence order.

    Subclasses set READER (a `SequenceReader` module: its splits are the TFDS splits), HEIGHT/WIDTH (after the
    crop) and optionally READ_KWARGS. Every file of the selected splits is checked by the reader before anything
    is written.
    """

    READER: SequenceReader
    HEIGHT = WIDTH = 0
    READ_KWARGS: dict[str, Any] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not isinstance(getattr(cls, "READER", None), SequenceReader):
            missing = [m for m in ("SPLITS", "list_sequences", "sequence_name", "num_frames", "read_sequence",
                                   "verify") if not hasattr(getattr(cls, "READER", None), m)]
            raise TypeError(f"{cls.__module__}.{cls.__name__}.READER is not a SequenceReader (missing {missing})")
        unknown = sorted(set(cls.READER.SPLITS) - set(SPLIT_NAMES))
        if unknown:
            raise TypeError(f"{cls.READER.__name__} names splits {unknown} outside {SPLIT_NAMES}")

    def _info(self) -> tfds.core.DatasetInfo:
        fmt = self.builder_config.event_format
        return self.dataset_info_from_configs(
            features=example_features(fmt, 5 if fmt == "voxels" else 3),
            disable_shuffling=True,
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager):
        config, root = self.builder_config, str(dl_manager.manual_dir)
        known = list(self.READER.SPLITS)
        unknown = sorted(set(config.splits) - set(known))
        if unknown:
            raise ValueError(f"config {config.name!r} asks for splits {unknown}; known: {sorted(known)}")
        splits = [k for k in known if not config.splits or k in config.splits]
        reader = self.READER
        paths = {split: reader.list_sequences(root, split) for split in splits}
        names = {split: [(reader.sequence_name(p), reader.num_frames(p)) for p in seqs]
                 for split, seqs in paths.items()}
        self.info.metadata.update(dataset_metadata(names, self.HEIGHT, self.WIDTH, config.event_format))
        return {split: self._generate_examples(seqs) for split, seqs in paths.items()}

    def _generate_examples(self, paths):
        fmt = self.builder_config.event_format
        for path in paths:
            for ex in self.READER.read_sequence(path, **self.READ_KWARGS):
                yield f"{ex['sequence']}/{ex['frame_index']:06d}", frame_example(
                    fmt, ex["sequence"], ex["frame_index"], ex["timestamp_us"], self.HEIGHT, self.WIDTH,
                    events=ex.get("events"), voxels=ex.get("voxels"), rgb=ex.get("rgb"), depth=ex.get("depth"),
                )


def frame_example(
    event_format: str, sequence: str, frame_index: int, timestamp_us: int, height: int, width: int,
    events: dict[str, np.ndarray] | None = None, voxels: np.ndarray | None = None,
    rgb: np.ndarray | None = None, depth: np.ndarray | None = None,
) -> dict[str, Any]:
    """One record of the uniform schema, encoding the events on the way when the config stores Tencode."""
    example: dict[str, Any] = {
        "sequence": sequence,
        "frame_index": int(frame_index),
        "timestamp_us": int(timestamp_us),
        "rgb": EMPTY_RGB if rgb is None else np.asarray(rgb, np.uint8),
        "depth": EMPTY_DEPTH if depth is None else np.asarray(depth, np.float32),
    }
    if event_format == "events":
        if events is None:
            raise ValueError(f"{sequence}: the 'events' config needs raw events, but this dataset provides voxels")
        example["events"] = {
            "x": np.asarray(events["x"], np.float32),
            "y": np.asarray(events["y"], np.float32),
            "t": np.asarray(events["t"], np.int64),
            "p": np.asarray(events["p"], np.uint8),
        }
    elif event_format == "voxels":
        example["encoding"] = np.asarray(voxels, np.float32)
    elif events is not None:
        example["encoding"] = tencode(events["x"], events["y"], events["p"], events["t"], height, width)
    else:
        example["encoding"] = tencode_from_voxels(voxels)
    return example
