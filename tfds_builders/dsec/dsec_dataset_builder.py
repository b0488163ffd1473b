"""dsec: the official DSEC train release, left event camera, depth from disparity, center crop 320x640.

Configs: `events` stores the rectified raw events of the 50 ms before each disparity timestamp (millions of
events per window in busy scenes); `tencode` stores their (3, 320, 640) Tencode. Splits: train and validation
(the 10 sequences DepthAnyEvent tests on). The first disparity map of each sequence is dropped, as in the
reference. The official frame images come from another camera (1080x1440) and are not aligned with the events,
so no RGB is stored.
"""

from __future__ import annotations

import tensorflow_datasets as tfds

from dae_jax.data.readers import dsec
from tfds_builders.common import ReaderBuilder, format_configs


class Builder(ReaderBuilder):
    """DSEC: rectified left events (raw or Tencode), metric depth from the event-camera disparity maps."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    BUILDER_CONFIGS = format_configs("DSEC train release, 320x640 center crop")
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    From https://dsec.ifi.uzh.ch/dsec-datasets/download/ download the training archives train_events.zip,
    train_disparity.zip and train_calibration.zip (train_images.zip only if you need the frames) and unzip them
    into one tree, so that for every sequence (interlaken_00_c, ..., zurich_city_11_c):

      <manual_dir>/train/<sequence>/calibration/cam_to_cam.yaml
      <manual_dir>/train/<sequence>/disparity/event/000000.png, 000002.png, ...  and disparity/timestamps.txt
      <manual_dir>/train/<sequence>/events/left/events.h5  and events/left/rectify_map.h5

    (events.h5 is Blosc-compressed: the hdf5plugin package, a requirement, provides the filter). Then:
      python -m tfds_builders dsec --config tencode --data_dir DATA_DIR --manual_dir <manual_dir>
    """

    READER = dsec
    HEIGHT, WIDTH = dsec.CROP
    READ_KWARGS = {"load_rgb": False}
