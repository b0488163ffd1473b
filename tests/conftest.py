"""Test session setup: 8 virtual CPU devices, so the data-parallel code runs as on an 8-chip host; XLA's backend
optimisation level 0, because the suite's programs run a few steps each and compiling them is most of its time
(level 0 compiles the train step in two thirds of the time and runs it 3x slower; the rounding differs from the
default level 2 by what every tolerance here covers: `XLA_FLAGS=--xla_force_host_platform_device_count=8 python -m
pytest` runs the suite at level 2); and a persistent XLA compilation cache shared with the subprocesses the tests
start (they compile the same steps; tests/helpers.py gives them this session's XLA flags)."""

import os
import tempfile

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8 --xla_backend_optimization_level=0")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), "dae_jax_test_xla_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory) -> str:
    """A 64x80 synthetic world (2 training sequences, 1 test sequence, 8 frames each), built once per session."""
    from tfds_builders import build
    from tfds_builders.synthetic_events.synthetic_events_dataset_builder import SyntheticConfig

    config = SyntheticConfig(name="train_tiny", event_format="tencode", num_train=2, num_test=1,
                             frames_per_sequence=8, height=64, width=80, workers=1)
    return str(build("synthetic_events", config, str(tmp_path_factory.mktemp("tfds"))).data_dir)
