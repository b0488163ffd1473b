"""Helpers shared by test modules."""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator

import ml_collections

from configs import synthetic_tiny

# The tests' training settings on top of configs/synthetic_tiny.py (a 64x80 world), as launch.py overrides and as a
# config. A constant learning rate after the warm-up keeps num_steps out of the compiled step, so every test that
# trains this model with one objective compiles the same program (the session's persistent cache serves the rest).
OVERRIDES = {"data.crop": (56, 70), "model.input_size_width": 70, "model.input_size_height": 56,
             "optim.lr": 1e-3, "optim.encoder_lr": 1e-3, "optim.schedule": "constant", "optim.warmup_steps": 20,
             "loss.si_lambda": 0.0}


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def subprocess_env(devices: int) -> dict[str, str]:
    """The environment of a process a test starts: this session's XLA flags (tests/conftest.py) with `devices`
    virtual CPU devices, so that it compiles the same programs to the same bits, and the checkout on the path."""
    flags = re.sub(r"--xla_force_host_platform_device_count=\d+", "", os.environ.get("XLA_FLAGS", "")).split()
    return dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu",
                XLA_FLAGS=" ".join([f"--xla_force_host_platform_device_count={devices}", *flags]))


def tiny_config(dataset_dir: str, **train) -> ml_collections.ConfigDict:
    """configs/synthetic_tiny.py with OVERRIDES on `dataset_dir`, and `train` settings."""
    c = synthetic_tiny.get_config()
    for field, value in OVERRIDES.items():
        section, key = field.split(".")
        c[section][key] = value
    c.data.dataset_dir = dataset_dir
    c.train.update(**train)
    return c


@contextlib.contextmanager
def recorded(logger: str) -> Iterator[list[str]]:
    """The messages logged to `logger` at INFO and above inside the block."""
    messages: list[str] = []

    class Record(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    handler, log = Record(level=logging.INFO), logging.getLogger(logger)
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield messages
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
