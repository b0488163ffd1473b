"""event_recordings: your own event-camera recordings with frames (AEDAT4, EVT 2.0/3.0 .raw, HDF5, NPZ), no depth.

  python -m tfds_builders event_recordings --config tencode --data_dir DATA --manual_dir MY_RECORDINGS

One example per frame of every recording in manual_dir: the frame as RGB and the events of the 50 ms before it
(`window_us`), raw (`events`) or as Tencode (`tencode`). Sequences are the recordings, split into train/test by
`test.txt` in manual_dir (recording names, one per line) or else by `test_fraction` (dae_jax.data.readers.recordings).
All recordings must come from one sensor size. Distil a student on it with configs/recordings.py.
"""

from __future__ import annotations

import dataclasses

import tensorflow_datasets as tfds

from dae_jax.data.readers import DatasetFormatError
from dae_jax.data.readers import recordings as reader
from dae_jax.data.schema import dataset_metadata, example_features
from dae_jax.events.slicing import WINDOW_US
from tfds_builders.common import EventBuilderConfig, frame_example


@dataclasses.dataclass
class RecordingsConfig(EventBuilderConfig):
    """The event window before each frame, the test share, and the geometry for files that do not state it."""

    window_us: int = WINDOW_US
    test_fraction: float = 0.2
    sensor_size: tuple[int, int] | None = None  # (height, width)


class Builder(tfds.core.GeneratorBasedBuilder):
    """Frames and the event windows before them, from a folder of recordings."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    BUILDER_CONFIGS = [
        RecordingsConfig(name="events", event_format="events", description="raw events of the window before each "
                         "frame"),
        RecordingsConfig(name="tencode", event_format="tencode", description="the window as a (3, H, W) Tencode"),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Put your recordings directly in one folder and pass it as --manual_dir: .aedat4 (iniVation, with its frame
    stream), .raw (Prophesee EVT 2.0 / 3.0) or .h5 / .npz arrays of x, y, t, p. Recordings without frames of their
    own take them from a folder beside them, <name>_frames/ with the images and timestamps.txt (one µs per line).
    Optionally add test.txt naming the test recordings, one per line.
    """

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(features=example_features(self.builder_config.event_format),
                                              disable_shuffling=True, metadata=tfds.core.MetadataDict())

    def _split_generators(self, dl_manager):
        c, root = self.builder_config, dl_manager.manual_dir
        paths = {split: reader.list_sequences(root, split, c.test_fraction) for split in reader.SPLITS}
        described = {p: reader.describe(p, c.window_us, c.sensor_size) for seqs in paths.values() for p in seqs}
        sizes = {p.name: d[:2] for p, d in described.items()}
        if len(set(sizes.values())) > 1:
            raise DatasetFormatError(f"{root}: recordings of different sensor sizes (height, width): {sizes}")
        height, width = next(iter(sizes.values()))
        names = {split: [(p.stem, described[p][2]) for p in seqs] for split, seqs in paths.items()}
        self.info.metadata.update(dataset_metadata(names, height, width, c.event_format))
        return {split: self._generate_examples(seqs, height, width) for split, seqs in paths.items() if seqs}

    def _generate_examples(self, paths, height: int, width: int):
        c = self.builder_config
        for path in paths:
            for ex in reader.read_sequence(path, c.window_us, c.sensor_size):
                yield f"{ex['sequence']}/{ex['frame_index']:06d}", frame_example(
                    c.event_format, ex["sequence"], ex["frame_index"], ex["timestamp_us"], height, width,
                    events=ex["events"], rgb=ex["rgb"])
