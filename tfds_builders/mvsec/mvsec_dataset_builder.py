"""mvsec: the E2Depth processing of MVSEC (voxel grids, depth, DAVIS frames), the splits of DepthAnyEvent.

Configs: `voxels` stores the release's 5-bin voxel grids as they are; `tencode` stores the Tencode computed
from them (sign of the newest non-zero bin). The release has no raw events, so there is no `events` config.
Splits: train (day2 train + validation folders), validation (day2 test folder), test (outdoor_day1, night1-3).
"""

from __future__ import annotations

import tensorflow_datasets as tfds

from dae_jax.data.readers import mvsec
from tfds_builders.common import EventBuilderConfig, ReaderBuilder


class Builder(ReaderBuilder):
    """MVSEC (E2Depth release): 260x346 voxel grids or Tencode, metric depth, grayscale DAVIS frames as RGB."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    BUILDER_CONFIGS = [
        EventBuilderConfig(name="voxels", event_format="voxels", description="E2Depth 5-bin voxel grids as released"),
        EventBuilderConfig(name="tencode", event_format="tencode", description="Tencode computed from the voxels"),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Download the processed MVSEC release of E2Depth from https://rpg.ifi.uzh.ch/E2DEPTH.html (the MVSEC
    archives: mvsec_dataset_day2 for training and mvsec_outdoor_day1, mvsec_outdoor_night1..3 for testing) and
    unpack them so that the manual directory reads:

      <manual_dir>/train/mvsec_dataset_day2/{train,validation,test}/
      <manual_dir>/test/mvsec_outdoor_day1/  mvsec_outdoor_night1/  mvsec_outdoor_night2/  mvsec_outdoor_night3/

    where every sequence folder holds depth/data/{depth_%010d.npy,timestamps.txt},
    events/voxels/{event_tensor_%010d.npy,timestamps.txt} and rgb/davis (train) or rgb/davis_left_sync (test)
    with frame_%010d.png and timestamps.txt. Then:
      python -m tfds_builders mvsec --config tencode --data_dir DATA_DIR --manual_dir <manual_dir>
    """

    READER = mvsec
    HEIGHT, WIDTH = mvsec.HEIGHT, mvsec.WIDTH
    READ_KWARGS = {"load_rgb": True}
