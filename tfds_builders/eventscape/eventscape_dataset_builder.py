"""eventscape: RAM-Net's CARLA sequences (Town01-03 train, Town05 val/test), 256x512 events, RGB and depth.

Configs `events` (raw 50 ms windows) and `tencode`. Depth is in metres as released (the CARLA far plane, 1000 m,
stays as is; evaluation clips it). The layout and its sources are in `dae_jax/data/readers/eventscape.py`.
"""

from __future__ import annotations

import tensorflow_datasets as tfds

from dae_jax.data.readers import eventscape
from tfds_builders.common import ReaderBuilder, format_configs


class Builder(ReaderBuilder):
    """EventScape: raw events or Tencode, RGB frames and metric depth per frame."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    BUILDER_CONFIGS = format_configs("EventScape (RAM-Net CARLA dataset), 256x512")
    MANUAL_DOWNLOAD_INSTRUCTIONS = eventscape.MANUAL_DOWNLOAD_INSTRUCTIONS + """
Then:
  python -m tfds_builders eventscape --config tencode --data_dir DATA_DIR --manual_dir <root>
"""
    READER = eventscape
    HEIGHT, WIDTH = eventscape.HEIGHT, eventscape.WIDTH
    READ_KWARGS = {"load_rgb": True}
