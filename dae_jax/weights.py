"""One resolver from what a user points at to (params, model config, evaluation settings), for every mode.

A source is a training workdir (its latest Orbax checkpoint, its model and the settings of its label space), a
dae_jax params file (`.msgpack`, or an Orbax params directory with `model_config.json`), or an official / exported
PyTorch `.pth` / `.safetensors` (converted on the fly; settings from its `config['trainer']`). Settings the source
does not store come from `fallback`, then from the `EvalSettings` defaults (the metric module's constants).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from typing import Any

from etils import epath

from dae_jax.eval.metrics import EvalSettings

TORCH_EXTENSIONS = (".pth", ".pt", ".safetensors")
RUN_CONFIG = "config_train.json"  # what a training workdir holds: the resolved config of its run


@dataclasses.dataclass
class Weights:
    """Resolved weights: the Flax params, the `model` block that builds them, and how their output is scored."""

    params: dict
    model_config: dict[str, Any]
    settings: EvalSettings
    source: str  # the file or the checkpoint step they came from, for logs


def is_run(path: str) -> bool:
    """Whether `path` (a local path or a bucket) is a training workdir: it holds config_train.json."""
    return (epath.Path(path) / RUN_CONFIG).is_file()


def write_run_config(workdir: str, config: Mapping[str, Any]) -> None:
    """Store a run's resolved config in its workdir (the trainer does): what `resolve` reads its model and
    settings from."""
    epath.Path(workdir).mkdir(parents=True, exist_ok=True)
    (epath.Path(workdir) / RUN_CONFIG).write_text(json.dumps(dict(config), indent=2))


def read_run_config(workdir: str) -> dict[str, Any]:
    """The config a training workdir was run with."""
    if not is_run(workdir):
        raise FileNotFoundError(f"not a training workdir (no {RUN_CONFIG}): {workdir}")
    return json.loads((epath.Path(workdir) / RUN_CONFIG).read_text())


def _run(workdir: str, step: int | None) -> Weights:
    """A training run's latest (or given) checkpoint."""
    import orbax.checkpoint as ocp

    config = read_run_config(workdir)
    directory = str(epath.Path(workdir).absolute() / "checkpoints")
    manager = ocp.CheckpointManager(directory, item_names=("state", "data"))
    try:
        step = manager.latest_step() if step is None else step
        if step is None or step not in manager.all_steps():
            raise FileNotFoundError(f"no checkpoint{'' if step is None else f' of step {step}'} in {directory}")
        state = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))["state"]
    finally:
        manager.close()
    return Weights(state["params"], dict(config["model"]), EvalSettings.of_loss(config.get("loss", {})),
                   f"{directory} step {step}")


def resolve(source: str, model_overrides: Mapping[str, Any] | None = None,
            fallback: EvalSettings | None = None, step: int | None = None) -> Weights:
    """The weights at `source` (a workdir, a params file or directory, a `.pth`/`.safetensors`).

    `model_overrides` replace entries of the stored model block (e.g. `{'official': True}` for an official DAv2
    checkpoint, which stores none); `fallback` gives the settings a source does not store; `step` picks a
    training run's checkpoint (default: the latest).
    """
    from dae_jax.convert import load_flax_params, load_torch_checkpoint

    fallback = fallback or EvalSettings()
    if is_run(source):
        weights = _run(source, step)
        weights.model_config.update(model_overrides or {})
        return weights
    if step is not None:
        raise ValueError(f"a checkpoint step ({step}) needs a training workdir; {source} is not one")
    if not os.path.exists(source):
        raise FileNotFoundError(f"weights not found: {source} (a training workdir, a params file or a "
                                f"{'/'.join(TORCH_EXTENSIONS)} checkpoint)")
    if source.endswith(TORCH_EXTENSIONS):
        params, config, ckpt_config = load_torch_checkpoint(source, model_overrides)
        stored = dict((ckpt_config or {}).get("trainer", {}))
    else:
        params, config, stored = load_flax_params(source)
        config.update(model_overrides or {})
    settings = fallback.updated({k: v for k, v in stored.items() if k in EvalSettings.names()})
    return Weights(params, config, settings, source)
