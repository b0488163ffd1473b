"""Helpers shared by test modules."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


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
