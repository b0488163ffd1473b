"""synthetic_events: seeded varied worlds (streets, open ground, rooms, corridors, clutter, moving objects) rendered
to RGB + metric depth with ESIM events; no download.

Configs `events` (raw windows) and `tencode` at the default size (10 train + 5 test sequences of 100 frames,
260x346, 20 Hz), and `small_events` / `small_tencode` for quick runs. Sizes can be set by passing a
`SyntheticConfig` to the builder.
"""

from __future__ import annotations

import dataclasses

import tensorflow_datasets as tfds

from dae_jax.data.schema import dataset_metadata, example_features
from dae_jax.data.synthetic.generate import generate_dataset
from dae_jax.data.synthetic.world import FAMILIES
from dae_jax.events import window_indices
from tfds_builders.common import EventBuilderConfig, frame_example


@dataclasses.dataclass
class SyntheticConfig(EventBuilderConfig):
    """Size of the generated world; everything is deterministic from `seed`."""

    seed: int = 0
    num_train: int = 10
    num_test: int = 5
    frames_per_sequence: int = 100
    height: int = 260
    width: int = 346
    workers: int | None = None  # generator processes (default: up to 2)
    families: tuple[str, ...] = FAMILIES  # sequence i of a split is of family families[i % len(families)]
    contrast_threshold: float = 0.2  # ESIM's log-intensity step per event (lower: denser events)
    with_events: bool = True  # False: RGB and depth only, empty event windows (a frame model's training set)
    # The event window before each frame, in ms (the simulator starts window_ms + 10 ms before the first frame, so
    # every frame has a full window); longer windows keep longer motion trails.
    window_ms: float = 50.0
    speed_scale: float = 1.0  # multiplies every camera speed: more parallax, so longer trails for near surfaces
    texture_scale: float = 1.0  # multiplies every texture period: below 1, events on surfaces, not only outlines

    def __post_init__(self):
        for field in ("window_ms", "speed_scale", "texture_scale"):
            if not getattr(self, field) > 0:
                raise ValueError(f"SyntheticConfig.{field} must be positive, got {getattr(self, field)!r}")


def _configs() -> list[SyntheticConfig]:
    out = []
    for fmt in ("events", "tencode"):
        out.append(SyntheticConfig(name=fmt, event_format=fmt, description="10+5 sequences x 100 frames, 260x346"))
        out.append(SyntheticConfig(name=f"small_{fmt}", event_format=fmt, num_train=5, num_test=5,
                                   frames_per_sequence=20, description="5+5 sequences x 20 frames, 260x346"))
    return out


class Builder(tfds.core.GeneratorBasedBuilder):
    """Procedural event sequences with aligned RGB frames and ground-truth depth."""

    VERSION = tfds.core.Version("2.0.0")
    RELEASE_NOTES = {"1.0.0": "First release: street canyons seen from one camera height and pitch.",
                     "2.0.0": "Varied worlds: scene families, camera poses, moving objects, lighting."}
    BUILDER_CONFIGS = _configs()

    def _info(self) -> tfds.core.DatasetInfo:
        c = self.builder_config
        return self.dataset_info_from_configs(
            features=example_features(c.event_format),
            disable_shuffling=True,
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager):
        c = self.builder_config
        counts = {"train": c.num_train, "test": c.num_test}
        names = {s: [(f"synth_{s}_{i:03d}", c.frames_per_sequence) for i in range(n)] for s, n in counts.items()}
        self.info.metadata.update(dataset_metadata(names, c.height, c.width, c.event_format))
        return {split: self._generate_examples(split, n) for split, n in counts.items() if n > 0}

    def _generate_examples(self, split: str, count: int):
        c = self.builder_config
        sequences = generate_dataset(c.seed, {split: count}, c.frames_per_sequence, workers=c.workers,
                                     families=tuple(c.families), height=c.height, width=c.width,
                                     contrast_threshold=c.contrast_threshold, with_events=c.with_events,
                                     warmup_us=(c.window_ms + 10.0) * 1000, speed_scale=c.speed_scale,
                                     texture_scale=c.texture_scale)
        for _, name, seq in sequences:
            ev, stamps = seq["events"], seq["frame_timestamps_us"]
            starts, stops = window_indices(ev["t"], stamps, round(c.window_ms * 1000))
            for i, t_ref in enumerate(stamps):
                window = {k: v[starts[i]:stops[i]] for k, v in ev.items()}
                yield f"{name}/{i:06d}", frame_example(
                    c.event_format, name, i, t_ref, c.height, c.width, events=window,
                    rgb=seq["rgb"][i], depth=seq["depth"][i],
                )
