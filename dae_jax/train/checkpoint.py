"""Orbax checkpoints of a run in <workdir>/checkpoints: the train state and each host's input-pipeline state.

The state is saved unreplicated (host NumPy arrays), so a checkpoint restores onto any number of devices.
Saving is asynchronous; `wait` blocks until the last save is on disk.
"""

from __future__ import annotations

import os
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp
from etils import epath


class Checkpointer:
    """Save when asked (the loop decides when), keep the newest `keep`, restore the latest."""

    def __init__(self, workdir: str, keep: int):
        # epath: a local directory or a bucket path (gs://...), as TPU pods need
        self.directory = str(epath.Path(workdir if "://" in workdir else os.path.abspath(workdir)) / "checkpoints")
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=True, create=True)
        self.manager = ocp.CheckpointManager(self.directory, options=options,
                                             item_names=("state", "data"))

    def save(self, step: int, state: Any, data_iterator: Any) -> None:
        """Start an asynchronous save of the state and the pipeline position at `step`."""
        args = ocp.args.Composite(state=ocp.args.StandardSave(jax.device_get(state)),
                                  data=grain.checkpoint.CheckpointSave(data_iterator))
        self.manager.save(step, args=args, force=True)

    def latest_step(self) -> int | None:
        """The newest complete checkpoint's step, or None."""
        return self.manager.latest_step()

    def restore(self, state_template: Any, data_iterator: Any, step: int | None = None) -> Any:
        """Restore the state (shaped like `state_template`) and rewind `data_iterator` in place."""
        step = self.manager.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        template = jax.tree.map(ocp.utils.to_shape_dtype_struct, jax.device_get(state_template))
        restored = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(template), data=grain.checkpoint.CheckpointRestore(data_iterator)))
        return restored["state"]

    def wait(self) -> None:
        """Block until pending asynchronous saves are written."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        """Finish pending saves and release the manager."""
        self.manager.wait_until_finished()
        self.manager.close()
