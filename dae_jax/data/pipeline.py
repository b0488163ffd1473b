"""Input pipeline: clips of T consecutive frames from a prepared TFDS dataset, encoded, augmented and batched by grain.

The records of a split are frames in time order, sequence after sequence (dae_jax.data.schema); the builder
metadata lists the sequences, so the clip index is computed without reading records. A clip is read from the
TFDS data source, its event windows are encoded at full sensor size, then one crop/flip is applied to every
frame and to events, RGB and depth. make_loader returns a grain IterDataset (shuffled, sharded per host,
checkpointable); iterate_sequences streams whole sequences frame by frame for evaluation.

Batches (host-local, B = batch_size, T = clip_length, (h, w) = crop or the sensor size):
  events        (B, T, h, w, C) float32, channels last
  rgb           (B, T, h, w, 3) float32 in [0, 1]        when load_rgb (zeros where the frame has no RGB)
  rgb_valid     (B, T) bool                             when load_rgb (False where the frame has no RGB)
  depth         (B, T, h, w) float32 metres, 0 = invalid when load_depth (all 0 where the frame has none)
  teacher_disparity (B, T, h, w) float32       when labels: the stored teacher labels, cropped/flipped like the
                                                events (zeros where the frame has none)
  label_valid   (B, T) bool                     when labels (False where the frame has no stored label)
  sequence_id   (B,) int32, index into the split's sequence list (metadata order)
  frame_index   (B, T) int64
  timestamp_us  (B, T) int64

Checkpointing: `it = iter(make_loader(config))`; `it.get_state()` is a small JSON-able dict and
`it.set_state(state)` on a fresh iterator of the same config (same worker_count and process count) continues
with exactly the batches the original would have produced. In Orbax, save the iterator next to the train
state as `grain.checkpoint.CheckpointSave(it)` (restore with `grain.checkpoint.CheckpointRestore(it)`); it
writes one JSON file per process.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Iterator, Mapping
from typing import Any

import grain
import numpy as np
import tensorflow_datasets as tfds
from absl import flags
from etils import epath

from dae_jax.data import schema
from dae_jax.data.augment import apply_crop_flip, sample_crop_flip
from dae_jax.data.labels import LabelSource
from dae_jax.events import get_representation, tencode_from_voxels

Batch = dict[str, np.ndarray]
REQUIRED_METADATA = ("height", "width", "event_format", "sequences")


@dataclasses.dataclass(frozen=True)
class InputConfig:
    """Everything that defines the stream of batches; see the module docstring for the output format.

    dataset_dir is a prepared TFDS version directory (<data_dir>/<name>/<config>/<version>). clip_step
    defaults to clip_length and is capped at it, as in the reference. batch_size is per host. representation
    is {"name": ..., **options} for get_representation; it is applied to raw 'events' at the sensor size
    (height/width come from the metadata). Stored encodings are used as stored: 'tencode' needs name
    'tencode'; 'voxels' are converted by tencode_from_voxels for 'tencode' and kept for 'voxel_grid'.
    read_threads: threads reading and encoding clips in each process (grain ReadOptions.num_threads).
    labels: a directory of stored teacher labels for this dataset (dae_jax.data.labels), or "" for none.
    """

    dataset_dir: str
    split: str
    batch_size: int
    clip_length: int = 1
    clip_step: int | None = None
    crop: tuple[int, int] | None = None
    random_crop: bool = False
    hflip: bool = False
    representation: Mapping[str, Any] = dataclasses.field(default_factory=lambda: {"name": "tencode"})
    load_rgb: bool = False
    load_depth: bool = True
    shuffle: bool = True
    seed: int = 0
    num_epochs: int | None = None
    worker_count: int = 0
    read_threads: int = 2
    drop_remainder: bool = True
    labels: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "dataset_dir", str(self.dataset_dir))
        object.__setattr__(self, "representation", dict(self.representation))
        if self.crop is not None:
            object.__setattr__(self, "crop", tuple(int(c) for c in self.crop))
            if len(self.crop) != 2 or min(self.crop) < 1:
                raise ValueError(f"InputConfig.crop must be (height, width) of positive ints or None, got {self.crop}")
        for name in ("batch_size", "clip_length", "read_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"InputConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.clip_step is not None and self.clip_step < 1:
            raise ValueError(f"InputConfig.clip_step must be >= 1 or None, got {self.clip_step}")
        if self.num_epochs is not None and self.num_epochs < 1:
            raise ValueError(f"InputConfig.num_epochs must be >= 1 or None (forever), got {self.num_epochs}")
        if self.worker_count < 0:
            raise ValueError(f"InputConfig.worker_count must be >= 0, got {self.worker_count}")
        if not 0 <= self.seed < 2**32:
            raise ValueError(f"InputConfig.seed must be an unsigned 32-bit int, got {self.seed}")
        if "name" not in self.representation:
            raise ValueError(f"InputConfig.representation needs a 'name', got {self.representation}")
        if {"height", "width"} & set(self.representation):
            raise ValueError(
                f"InputConfig.representation must not set height/width (events are encoded at the sensor size "
                f"from the dataset metadata), got {self.representation}"
            )

    @classmethod
    def from_config(cls, config: Any) -> InputConfig:
        """Build from a dict or an ml_collections ConfigDict; unknown keys are rejected by name."""
        values = config.to_dict() if hasattr(config, "to_dict") else dict(config)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown InputConfig keys {unknown}; known: {sorted(known)}")
        return cls(**values)

    @property
    def step(self) -> int:
        """Frames between the starts of consecutive clips: clip_step (default T), capped at T."""
        return min(self.clip_step or self.clip_length, self.clip_length)


@dataclasses.dataclass(frozen=True)
class SplitInfo:
    """One split of a prepared dataset: sensor size, event format and (name, first record, frames) per sequence."""

    dataset_dir: str
    split: str
    height: int
    width: int
    event_format: str
    sequences: tuple[tuple[str, int, int], ...]


def read_split(dataset_dir: str, split: str) -> SplitInfo:
    """Read and check the builder metadata of `split`; errors name the directory and the split."""
    path = epath.Path(dataset_dir)
    if not (path / "dataset_info.json").exists():
        raise FileNotFoundError(
            f"{dataset_dir} is not a prepared TFDS dataset (no dataset_info.json); expected a version directory "
            "such as <data_dir>/<name>/<config>/<version>"
        )
    info = tfds.builder_from_directory(str(path)).info
    metadata = dict(info.metadata or {})
    missing = [key for key in REQUIRED_METADATA if key not in metadata]
    if missing:
        raise ValueError(f"{dataset_dir}: builder metadata lacks {missing} (see dae_jax.data.schema.dataset_metadata)")
    if metadata["event_format"] not in schema.EVENT_FORMATS:
        raise ValueError(
            f"{dataset_dir}: unknown event_format {metadata['event_format']!r}; known: {schema.EVENT_FORMATS}"
        )
    if split not in metadata["sequences"] or split not in info.splits:
        raise ValueError(f"{dataset_dir}: unknown split {split!r}; known splits: {sorted(metadata['sequences'])}")
    sequences = tuple(schema.sequence_offsets(metadata["sequences"][split]))
    records = sum(n for _, _, n in sequences)
    if records != info.splits[split].num_examples:
        raise ValueError(
            f"{dataset_dir}: split {split!r} has {info.splits[split].num_examples} records but its metadata lists "
            f"{records} frames"
        )
    return SplitInfo(
        str(dataset_dir), split, int(metadata["height"]), int(metadata["width"]), metadata["event_format"], sequences
    )


def clip_index(split: SplitInfo, clip_length: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """(sequence_id, first record) of every clip: clip i of an N-frame sequence starts at frame i*step, and
    a sequence holds (N - T)//step + 1 clips (none if N < T). Raises if no clip fits.
    """
    ids, starts = [], []
    for sequence_id, (_, first, frames) in enumerate(split.sequences):
        count = (frames - clip_length) // step + 1 if frames >= clip_length else 0
        ids.append(np.full(count, sequence_id, np.int32))
        starts.append(first + step * np.arange(count, dtype=np.int64))
    if not any(len(s) for s in starts):
        longest = max((n for _, _, n in split.sequences), default=0)
        raise ValueError(
            f"{split.dataset_dir}: no clip of {clip_length} frames fits in split {split.split!r} "
            f"(longest sequence: {longest} frames)"
        )
    return np.concatenate(ids), np.concatenate(starts)


class EventEncoder:
    """Turns one record's event window into a (C, H, W) float32 array at the sensor size (see InputConfig)."""

    def __init__(self, split: SplitInfo, representation: Mapping[str, Any]):
        self._args = (split, dict(representation))
        options = {k: v for k, v in representation.items() if k != "name"}
        name, event_format = representation["name"], split.event_format
        where = f"{split.dataset_dir} (event_format {event_format!r}): representation {dict(representation)}"
        self._convert = None
        if event_format == "events":
            try:
                self._convert = get_representation(name, height=split.height, width=split.width, **options)
            except TypeError as e:
                raise ValueError(f"{where}: {e}") from e
        elif event_format == "voxels" and name == "tencode":
            try:
                inspect.signature(tencode_from_voxels).bind(None, **options)
            except TypeError as e:
                raise ValueError(f"{where}: {e}") from e
            self._convert = functools.partial(tencode_from_voxels, **options)
        elif not (name == event_format == "tencode" or (event_format, name) == ("voxels", "voxel_grid")):
            raise ValueError(f"{where}: stored encodings give 'tencode' ('tencode' or 'voxels') or 'voxel_grid'")
        self._raw = event_format == "events"

    def __reduce__(self) -> tuple[type, tuple[SplitInfo, dict[str, Any]]]:
        """Pickle as the constructor arguments (get_representation returns a closure)."""
        return EventEncoder, self._args

    def __call__(self, record: Mapping[str, Any]) -> np.ndarray:
        if self._raw:
            e = record["events"]
            return self._convert(e["x"], e["y"], e["p"], e["t"])
        encoding = np.asarray(record["encoding"], np.float32)
        return encoding if self._convert is None else self._convert(encoding)


class ClipSource:
    """grain data source: clip k = records [start_k, start_k + T) read from TFDS, events encoded, not augmented.

    Opens the TFDS data source lazily, so it pickles to grain worker processes as its arguments.
    """

    def __init__(self, split: SplitInfo, clip_length: int, step: int, config: InputConfig):
        self._split, self._clip_length, self._step = split, clip_length, step
        self._representation = dict(config.representation)
        self._load_rgb, self._load_depth = config.load_rgb, config.load_depth
        self._sequence_ids, self._starts = clip_index(split, clip_length, step)
        self._encode = EventEncoder(split, self._representation)
        self._labels = LabelSource(config.labels, split.dataset_dir, split.split) if config.labels else None
        self._records = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_records": None}

    def __len__(self) -> int:
        return len(self._starts)

    def __repr__(self) -> str:
        s = self._split
        return (
            f"ClipSource(dataset_dir={s.dataset_dir!r}, split={s.split!r}, clip_length={self._clip_length}, "
            f"step={self._step}, clips={len(self)}, representation={self._representation}, "
            f"load_rgb={self._load_rgb}, load_depth={self._load_depth}, labels={self._labels is not None})"
        )

    def _open(self) -> Any:
        """The TFDS data source of the split, skipping the decoding of images that are not loaded."""
        if self._records is None:
            skip = [k for k, load in (("rgb", self._load_rgb), ("depth", self._load_depth)) if not load]
            builder = tfds.builder_from_directory(self._split.dataset_dir)
            self._records = builder.as_data_source(
                split=self._split.split, decoders={k: tfds.decode.SkipDecoding() for k in skip}
            )
        return self._records

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        start, sequence_id = int(self._starts[index]), int(self._sequence_ids[index])
        name = self._split.sequences[sequence_id][0]
        records = self._open().__getitems__(list(range(start, start + self._clip_length)))
        height, width = self._split.height, self._split.width
        for k, record in enumerate(records):
            if record["sequence"].decode() != name:
                raise ValueError(
                    f"{self._split.dataset_dir}: record {start + k} of split {self._split.split!r} belongs to "
                    f"{record['sequence'].decode()!r}, the metadata says {name!r}"
                )
        events = np.stack([self._encode(r) for r in records])
        if events.shape[2:] != (height, width):
            raise ValueError(
                f"{self._split.dataset_dir}: event encoding shape {events.shape[1:]}, expected (C, {height}, {width})"
            )
        clip = {
            "events": np.moveaxis(events, 1, -1),
            "sequence_id": np.int32(sequence_id),
            "frame_index": np.array([r["frame_index"] for r in records], np.int64),
            "timestamp_us": np.array([r["timestamp_us"] for r in records], np.int64),
        }
        if self._load_rgb:
            rgb = [self._image(r, "rgb", start + k, (height, width, 3)) for k, r in enumerate(records)]
            clip["rgb"] = np.stack([np.zeros((height, width, 3), np.uint8) if x is None else x for x in rgb])
            clip["rgb_valid"] = np.array([x is not None for x in rgb])
        if self._load_depth:
            depth = [self._image(r, "depth", start + k, (height, width)) for k, r in enumerate(records)]
            clip["depth"] = np.stack([np.zeros((height, width), np.float32) if x is None else x for x in depth])
        if self._labels is not None:
            labels = [self._image({"label": x}, "label", start + k, (height, width))
                      for k, x in enumerate(self._labels.__getitems__(range(start, start + self._clip_length)))]
            clip["teacher_disparity"] = np.stack([np.zeros((height, width), np.float32) if x is None
                                                  else x.astype(np.float32) for x in labels])
            clip["label_valid"] = np.array([x is not None for x in labels])
        return clip

    def _image(self, record: Mapping[str, Any], key: str, index: int, shape: tuple[int, ...]) -> np.ndarray | None:
        """The record's `key` array, None if it is missing (empty); any other size than the sensor's raises."""
        array = np.asarray(record[key])
        if array.size == 0:
            return None
        if array.shape != shape:
            raise ValueError(
                f"{self._split.dataset_dir}: record {index} of split {self._split.split!r} has {key} of shape "
                f"{array.shape}, expected {shape}"
            )
        return array


def _read_checked_split(config: InputConfig) -> SplitInfo:
    """read_split, plus the check that the crop fits the sensor."""
    split = read_split(config.dataset_dir, config.split)
    if config.crop is not None and (config.crop[0] > split.height or config.crop[1] > split.width):
        raise ValueError(f"InputConfig.crop {config.crop} is larger than the {split.height}x{split.width} sensor of "
                         f"{config.dataset_dir}")
    return split


class CropFlipClip(grain.transforms.RandomMap):
    """Crop/flip every image of a clip with one draw from grain's per-record rng; RGB to float in [0, 1]."""

    def __init__(self, size: tuple[int, int], crop: tuple[int, int] | None, random_crop: bool, hflip: bool):
        self._size, self._crop, self._random_crop, self._hflip = size, crop, random_crop, hflip

    def random_map(self, clip: dict[str, np.ndarray], rng: np.random.Generator | None) -> Batch:
        params = sample_crop_flip(self._size, self._crop, self._random_crop, self._hflip, rng)
        images = ("events", "rgb", "depth", "teacher_disparity")
        out = {**clip, **apply_crop_flip({k: clip[k] for k in images if k in clip}, params)}
        if "rgb" in out:
            out["rgb"] = out["rgb"].astype(np.float32) / np.float32(255.0)
        return out


def make_loader(
    config: InputConfig, process_index: int | None = None, process_count: int | None = None
) -> grain.IterDataset:
    """A grain IterDataset of host-local batches of clips (module docstring); iter() it for a checkpointable iterator.

    Each process takes its own contiguous, equal part of the clip index (the remainder is dropped), shuffled
    anew each epoch from config.seed. Batches are formed before the work is spread over worker processes and
    crop/flip draws come from grain's rng for (seed, position in the stream), so batches do not depend on
    worker_count. With num_epochs > 1 or None a batch may span an epoch boundary.
    """
    if process_index is None or process_count is None:
        import jax

        process_index = jax.process_index() if process_index is None else process_index
        process_count = jax.process_count() if process_count is None else process_count
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} is not in [0, process_count={process_count})")
    split = _read_checked_split(config)
    source = ClipSource(split, config.clip_length, config.step, config)
    per_process = len(source) // process_count
    if per_process == 0:
        raise ValueError(f"{config.dataset_dir}: split {config.split!r} has {len(source)} clips, fewer than "
                         f"process_count={process_count}")
    ds = grain.MapDataset.source(source)[process_index * per_process : (process_index + 1) * per_process]
    if config.shuffle:
        ds = ds.shuffle(seed=config.seed)
    ds = ds.repeat(config.num_epochs)
    augment = CropFlipClip((split.height, split.width), config.crop, config.random_crop, config.hflip)
    ds = ds.random_map(augment, seed=config.seed).batch(config.batch_size, drop_remainder=config.drop_remainder)
    batches = ds.to_iter_dataset(
        grain.ReadOptions(num_threads=config.read_threads, prefetch_buffer_size=config.read_threads)
    )
    if config.worker_count:
        if not flags.FLAGS.is_parsed():
            # grain 0.2.18 reads an absl flag when it starts workers with JAX loaded (fixed in google/grain#1361):
            # outside absl.app, mark the flags parsed so that they keep their defaults.
            flags.FLAGS.mark_as_parsed()
        batches = batches.mp_prefetch(grain.MultiprocessingOptions(num_workers=config.worker_count))
    return batches


def iterate_sequences(config: InputConfig) -> Iterator[tuple[str, Iterator[Batch]]]:
    """For evaluation: (name, frames) per sequence of the split in metadata order; frames yields the sequence's
    frames in time order as batches of B = T = 1 (same keys as make_loader), centre-cropped, never flipped.

    A recurrent evaluator resets its state at each new name and steps through `frames`. Shuffling, clip_length,
    batch_size, epochs and sharding are ignored (every host sees every sequence); read_threads prefetch.
    """
    split = _read_checked_split(config)
    source = ClipSource(split, 1, 1, config)
    center = CropFlipClip((split.height, split.width), config.crop, False, False)
    frames = grain.MapDataset.source(source).map(functools.partial(center.random_map, rng=None)).batch(1)
    options = grain.ReadOptions(num_threads=config.read_threads, prefetch_buffer_size=config.read_threads)
    for name, first, count in split.sequences:
        yield name, iter(frames[first : first + count].to_iter_dataset(options))
