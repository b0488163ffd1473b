"""The one example schema between the dataset builders and the input pipeline.

Every builder writes, per frame and in time order within each sequence (TFDS shuffling is disabled, so record
order is generation order): `sequence`, `frame_index`, `timestamp_us`, the event window (raw events, or a
precomputed encoding), `rgb` and `depth` (metres, 0 = invalid). A missing RGB frame or depth map is an empty
array ((0, 0, 3) / (0, 0)). The builder's metadata lists each split's sequences and their lengths, which is
all the pipeline needs to cut clips without reading the records.

Arrays are TFDS `Tensor` features with zlib encoding (no images codecs), so writing and reading need no
TensorFlow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

EVENT_FORMATS = ("events", "tencode", "voxels")
EMPTY_RGB = np.zeros((0, 0, 3), np.uint8)
EMPTY_DEPTH = np.zeros((0, 0), np.float32)


def example_features(event_format: str, channels: int = 3):
    """TFDS FeaturesDict of one frame. `event_format`: 'events' (x, y, t, p) or a (C, H, W) 'tencode'/'voxels'."""
    import tensorflow_datasets as tfds

    if event_format not in EVENT_FORMATS:
        raise ValueError(f"event_format must be one of {EVENT_FORMATS}, got {event_format!r}")
    z = tfds.features.Encoding.ZLIB

    def tensor(shape, dtype):
        return tfds.features.Tensor(shape=shape, dtype=dtype, encoding=z)

    features: dict[str, Any] = {
        "sequence": tfds.features.Text(),
        "frame_index": np.int64,
        "timestamp_us": np.int64,
        "rgb": tensor((None, None, 3), np.uint8),
        "depth": tensor((None, None), np.float32),
    }
    if event_format == "events":
        features["events"] = tfds.features.FeaturesDict({
            "x": tensor((None,), np.float32),
            "y": tensor((None,), np.float32),
            "t": tensor((None,), np.int64),
            "p": tensor((None,), np.uint8),
        })
    else:
        features["encoding"] = tensor((channels, None, None), np.float32)
    return tfds.features.FeaturesDict(features)


def dataset_metadata(
    sequences: Mapping[str, Iterable[tuple[str, int]]], height: int, width: int, event_format: str
) -> dict[str, Any]:
    """The builder metadata the pipeline reads: sensor size, event format and {split: [[name, frames], ...]}."""
    return {
        "height": int(height),
        "width": int(width),
        "event_format": event_format,
        "sequences": {split: [[str(name), int(n)] for name, n in seqs] for split, seqs in sequences.items()},
    }


def sequence_offsets(entries: Sequence[Sequence]) -> list[tuple[str, int, int]]:
    """[(name, num_frames), ...] in record order -> [(name, first_record, num_frames), ...]."""
    out, start = [], 0
    for name, n in entries:
        out.append((str(name), start, int(n)))
        start += int(n)
    return out
