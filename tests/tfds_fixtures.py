"""A tiny TFDS dataset in the uniform example schema, written to array_record for the pipeline tests.

Pixel values say where they came from, so a test can tell which sequence, frame and source pixel ended up
where: depth = x + 64 y + 4096 frame + 65536 sequence; rgb = (x, y, 10 sequence + frame); raw events put one
event on every pixel, in raster order (Tencode's green channel then encodes the pixel), with polarity
(x + y + frame + sequence) % 2; the stored encodings (C, H, W) are (x, y, 10 sequence + frame, ...) / 255.
Split 'train' has sequences of 7, 5 and 3 frames; in the 'tencode' config, sequence 2 has no RGB and its
frame 1 no depth.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from dae_jax.data import schema

HEIGHT, WIDTH = 40, 56
SPLITS = {"train": [("seq_a", 7), ("seq_b", 5), ("seq_c", 3)], "test": [("seq_d", 2)]}
VOXEL_BINS = 5


def pixel_grid() -> tuple[np.ndarray, np.ndarray]:
    """(y, x) integer coordinate grids of shape (HEIGHT, WIDTH)."""
    return np.mgrid[:HEIGHT, :WIDTH]


def expected_depth(sequence: int, frame: int) -> np.ndarray:
    """The depth map stored for (sequence, frame): unique per source pixel, frame and sequence."""
    y, x = pixel_grid()
    return (x + 64 * y + 4096 * frame + 65536 * sequence).astype(np.float32)


def expected_rgb(sequence: int, frame: int) -> np.ndarray:
    """The uint8 RGB frame stored for (sequence, frame): (x, y, 10 sequence + frame)."""
    y, x = pixel_grid()
    return np.stack([x, y, np.full_like(x, 10 * sequence + frame)], axis=-1).astype(np.uint8)


def expected_events(sequence: int, frame: int) -> dict[str, np.ndarray]:
    """One event per pixel in raster order, at sub-pixel coordinates, with a polarity checkerboard."""
    y, x = (a.ravel() for a in pixel_grid())
    return {
        "x": (x + 0.25).astype(np.float32),
        "y": (y + 0.5).astype(np.float32),
        "t": (1_000_000 * frame + 10 * np.arange(x.size)).astype(np.int64),
        "p": ((x + y + frame + sequence) % 2).astype(np.uint8),
    }


def expected_encoding(sequence: int, frame: int, channels: int) -> np.ndarray:
    """The stored (C, H, W) encoding: (x, y, 10 sequence + frame) / 255, further channels negative y / 255."""
    y, x = pixel_grid()
    planes = [x, y, np.full_like(x, 10 * sequence + frame)] + [-y - c for c in range(channels - 3)]
    return (np.stack(planes) / 255.0).astype(np.float32)


class PipelineFixture(tfds.core.GeneratorBasedBuilder):
    """Three configs: raw 'events', stored 'tencode' and stored 'voxels' (5 bins)."""

    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=name) for name in schema.EVENT_FORMATS]

    def _info(self) -> tfds.core.DatasetInfo:
        channels = VOXEL_BINS if self.builder_config.name == "voxels" else 3
        return self.dataset_info_from_configs(
            features=schema.example_features(self.builder_config.name, channels),
            disable_shuffling=True,
            metadata=tfds.core.MetadataDict(
                schema.dataset_metadata(SPLITS, HEIGHT, WIDTH, self.builder_config.name)
            ),
        )

    def _split_generators(self, dl_manager: Any) -> dict[str, Iterator[tuple[str, dict[str, Any]]]]:
        return {split: self._generate_examples(split) for split in SPLITS}

    def _generate_examples(self, split: str) -> Iterator[tuple[str, dict[str, Any]]]:
        event_format = self.builder_config.name
        first = 0 if split == "train" else len(SPLITS["train"])
        for s, (name, frames) in enumerate(SPLITS[split], start=first):
            for f in range(frames):
                example = {
                    "sequence": name,
                    "frame_index": 100 + f,
                    "timestamp_us": 1_000_000 * f + 50_000,
                    "rgb": expected_rgb(s, f),
                    "depth": expected_depth(s, f),
                }
                if event_format == "tencode" and s == 2:
                    example["rgb"] = schema.EMPTY_RGB
                    if f == 1:
                        example["depth"] = schema.EMPTY_DEPTH
                if event_format == "events":
                    example["events"] = expected_events(s, f)
                else:
                    example["encoding"] = expected_encoding(s, f, VOXEL_BINS if event_format == "voxels" else 3)
                yield f"{name}_{f:04d}", example


def write_fixture(data_dir: Path, event_format: str) -> Path:
    """Write the fixture config `event_format` under data_dir; return its dataset version directory."""
    builder = PipelineFixture(config=event_format, data_dir=str(data_dir), file_format="array_record")
    builder.download_and_prepare()
    return Path(builder.data_dir)
