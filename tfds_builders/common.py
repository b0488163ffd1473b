"""What every builder shares: BuilderConfigs for the two storage formats and the per-frame example."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from dae_jax.data.schema import EMPTY_DEPTH, EMPTY_RGB
from dae_jax.events import tencode


@dataclasses.dataclass
class EventBuilderConfig(tfds.core.BuilderConfig):
    """`event_format`: 'events' stores the raw window (x, y, t, p); 'tencode' stores the (3, H, W) encoding."""

    event_format: str = "events"


def format_configs(description: str) -> list[EventBuilderConfig]:
    """The raw-events and the compact precomputed-Tencode configs of a dataset."""
    return [
        EventBuilderConfig(name="events", event_format="events",
                           description=f"{description}; raw events of the 50 ms window before each frame."),
        EventBuilderConfig(name="tencode", event_format="tencode",
                           description=f"{description}; the window precomputed as a (3, H, W) Tencode image."),
    ]


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
    elif events is not None:
        example["encoding"] = tencode(events["x"], events["y"], events["p"], events["t"], height, width)
    else:
        from dae_jax.events import tencode_from_voxels

        example["encoding"] = tencode_from_voxels(voxels)
    return example
