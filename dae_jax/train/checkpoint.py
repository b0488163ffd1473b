"""Orbax checkpoints of a run in <workdir>/checkpoints: the train state and each host's input-pipeline state.

The state is saved unreplicated (host NumPy arrays), so a checkpoint restores onto any number of devices.
Saving is asynchronous; `wait` blocks until the last save is on disk.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp
from absl import logging
from etils import epath


class Checkpointer:
    """Save when asked (the loop decides when), keep the newest `keep`, restore the latest."""

    def __init__(self, workdir: str, keep: int):
        # epath: a local directory or a bucket path (gs://...), as TPU pods need
        self.directory = str(epath.Path(workdir if "://" in workdir else os.path.abspath(workdir)) / "checkpoints")
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=True, create=True)
        # Handlers named up front, so that a new process can read a checkpoint's structure before restoring it
        handlers = {"state": ocp.StandardCheckpointHandler(), "data": grain.checkpoint.CheckpointHandler()}
        self.manager = ocp.CheckpointManager(self.directory, options=options, item_handlers=handlers)

    def save(self, step: int, state: Any, data_iterator: Any) -> None:
        """Start an asynchronous save of the state and the pipeline position at `step` (`data_iterator`: the
        grain iterator, or an object whose get_state() gives the position to save as JSON bytes)."""
        args = ocp.args.Composite(state=ocp.args.StandardSave(jax.device_get(state)),
                                  data=grain.checkpoint.CheckpointSave(data_iterator))
        self.manager.save(step, args=args, force=True)

    def latest_step(self) -> int | None:
        """The newest complete checkpoint's step, or None."""
        return self.manager.latest_step()

    def restore(self, state_template: Any, data_iterator: Any, step: int | None = None) -> Any:
        """Restore the state (a dataclass shaped like `state_template`) and rewind `data_iterator` in place.

        Fields the checkpoint does not have (checkpoints written before TrainState.first_bad_step existed)
        keep the template's values, so older runs resume.
        """
        step = self.manager.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        saved = self.manager.item_metadata(step)["state"].tree
        fields = {f.name: getattr(state_template, f.name) for f in dataclasses.fields(state_template)}
        missing = sorted(set(fields) - set(saved))
        if missing:
            logging.warning("checkpoint %d has no %s; they keep their initial values", step, missing)
        template = jax.tree.map(ocp.utils.to_shape_dtype_struct,
                                jax.device_get({k: v for k, v in fields.items() if k in saved}))
        restored = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(template), data=grain.checkpoint.CheckpointRestore(data_iterator)))
        return state_template.replace(**restored["state"])

    def wait(self) -> None:
        """Block until pending asynchronous saves are written."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        """Finish pending saves and release the manager."""
        self.manager.wait_until_finished()
        self.manager.close()
