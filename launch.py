"""Entry point: python launch.py --config=configs/X.py --workdir=DIR --mode=export|predict [--config.key=value].

export  writes the weights of `config.checkpoint` as an official-layout PyTorch checkpoint.
predict runs the model on a folder of inputs and writes depth maps and pictures to <workdir>/predictions.
"""

from __future__ import annotations

import json
import os

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from dae_jax.convert import export_torch_checkpoint, load_params
from dae_jax.predict import predict_files

config_flags.DEFINE_config_file("config", None, "Path to a configs/*.py file.", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for outputs (created if needed).")
flags.DEFINE_enum("mode", None, ["export", "predict"], "What to run.")
flags.mark_flags_as_required(["config", "workdir", "mode"])
FLAGS = flags.FLAGS


def _params(config):
    if not config.checkpoint:
        raise app.UsageError("--config.checkpoint is required for this mode (a .pth, .safetensors or params file)")
    return load_params(config.checkpoint, config.model.to_dict())


def main(argv: list[str]) -> None:
    """Resolve the config, save it into the workdir, and run the chosen mode."""
    del argv
    config, workdir = FLAGS.config, FLAGS.workdir
    os.makedirs(workdir, exist_ok=True)
    if jax.process_index() == 0:
        with open(os.path.join(workdir, f"config_{FLAGS.mode}.json"), "w") as f:
            json.dump(config.to_dict(), f, indent=2)
    if FLAGS.mode == "export":
        params, model_config = _params(config)
        path = config.export.path or os.path.join(workdir, "export", "model.pth")
        trainer = {k: config.export[k] for k in ("use_logdepth", "use_scaleshift", "reg_factor", "clip_distance")}
        export_torch_checkpoint(path, params, model_config, trainer=trainer, plain=config.export.plain)
        logging.info("wrote %s", path)
    elif FLAGS.mode == "predict":
        if not config.predict.input:
            raise app.UsageError("--config.predict.input is required for --mode=predict")
        params, model_config = _params(config)
        out = predict_files(params, model_config, config.predict.input, os.path.join(workdir, "predictions"),
                            config.predict.near_m, config.predict.far_m)
        logging.info("wrote %d pictures to %s", len(out), os.path.dirname(out[0]))


if __name__ == "__main__":
    app.run(main)
