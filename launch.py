"""Entry point: python launch.py --config=configs/X.py --workdir=DIR --mode=MODE [--config.k=v].

demo    the end-to-end demo of configs/demo.py (dae_jax/demo.py): teacher, distilled and supervised students,
        evaluation table, PyTorch export check.

label   runs the frozen teacher (config.teacher) over config.label.splits of config.data.dataset_dir and stores
        its proxy labels (dae_jax/label.py); a killed job started again continues. Distil from them with
        --config.teacher.labels=DIR.
train   trains (distillation, supervised or fine-tuning, as the config says); resumes from <workdir>/checkpoints.
eval    evaluates `config.checkpoint` (or this workdir's training run) with the paper's protocol -> <workdir>/eval.
export  writes the weights of `config.checkpoint` (or of this workdir's training run) as an official-layout
        PyTorch checkpoint.
predict runs the model on a recording (AEDAT4, EVT 2.0/3.0 .raw, HDF5, NPZ: depth maps, pictures and a video)
        or on a folder of inputs, writing to <workdir>/predictions.

On a multi-host platform (a TPU pod, or --coordinator_address for local processes) it first calls
jax.distributed.initialize(); only process 0 writes logs, summaries and the resolved config.
"""

from __future__ import annotations

import json
import logging as pylogging
import os

import jax
from absl import app, flags, logging
from etils import epath
from ml_collections import config_flags

config_flags.DEFINE_config_file("config", None, "Path to a configs/*.py file.", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and outputs (created if needed).")
flags.DEFINE_enum("mode", None, ["label", "train", "eval", "export", "predict", "demo"], "What to run.")
flags.DEFINE_string("coordinator_address", None, "host:port of process 0, for multi-process runs without a "
                    "cluster environment (e.g. two local processes); TPU pods are detected automatically.")
flags.DEFINE_integer("num_processes", None, "With --coordinator_address: the number of processes.")
flags.DEFINE_integer("process_id", None, "With --coordinator_address: this process's index.")
flags.mark_flags_as_required(["config", "workdir", "mode"])
FLAGS = flags.FLAGS

# Environment variables by which a multi-host TPU VM or a SLURM job announces itself.
_CLUSTER_ENV = ("TPU_WORKER_HOSTNAMES", "MEGASCALE_COORDINATOR_ADDRESS", "SLURM_JOB_NUM_NODES")


def _initialize_distributed() -> None:
    if FLAGS.coordinator_address:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        if not jax.config.jax_compilation_cache_dir:  # lets the trainer compile once before its first collective
            jax.config.update("jax_compilation_cache_dir", os.path.join(os.path.abspath(FLAGS.workdir), "xla_cache"))
        jax.distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
    elif any("," in os.environ.get(k, "") or os.environ.get(k, "1") not in ("", "1") for k in _CLUSTER_ENV):
        jax.distributed.initialize()


class _QuietLibraries(pylogging.Filter):
    """Drop INFO chatter of Orbax and grain so progress lines stay readable (warnings still show)."""

    def filter(self, record: pylogging.LogRecord) -> bool:
        noisy = any(s in record.pathname for s in ("/orbax/", "/grain/", "/tensorflow_datasets/"))
        return record.levelno >= pylogging.WARNING or not noisy


def _weights(config, workdir: str):
    """The weights a mode runs: config.checkpoint, or else this workdir's training run (its latest step); settings
    the source does not store come from config.export."""
    from dae_jax.eval.metrics import EvalSettings
    from dae_jax.weights import is_run, resolve

    source = config.checkpoint or workdir
    if not config.checkpoint and not is_run(workdir):
        raise app.UsageError("--config.checkpoint is required for this mode (a .pth, .safetensors or params file) "
                             f"unless --workdir is a training run; {workdir} has no config_train.json")
    return resolve(source, fallback=EvalSettings.from_mapping(
        {k: config.export[k] for k in EvalSettings.names()}))


def main(argv: list[str]) -> None:
    """Resolve the config, save it into the workdir, and run the chosen mode."""
    del argv
    _initialize_distributed()
    pylogging.getLogger("absl").addFilter(_QuietLibraries())
    if jax.process_index() != 0:
        logging.set_verbosity(logging.WARNING)
    config, workdir = FLAGS.config, FLAGS.workdir
    epath.Path(workdir).mkdir(parents=True, exist_ok=True)  # a local path or a bucket (gs://...)
    if jax.process_index() == 0 and FLAGS.mode != "train":  # the trainer writes config_train.json itself
        (epath.Path(workdir) / f"config_{FLAGS.mode}.json").write_text(json.dumps(config.to_dict(), indent=2))
    if FLAGS.mode == "demo":
        from dae_jax.demo import run_demo

        run_demo(config, workdir)
    elif FLAGS.mode == "label":
        from dae_jax.label import label_dataset

        if not (config.teacher.checkpoint and config.data.dataset_dir):
            raise app.UsageError("--mode=label needs --config.teacher.checkpoint and --config.data.dataset_dir")
        label_dataset(config.teacher.checkpoint, config.teacher.model.to_dict(), config.data.dataset_dir,
                      list(config.label.splits), config.label.output, config.label.batch_size,
                      config.label.chunk_size)
    elif FLAGS.mode == "train":
        from dae_jax.train.loop import train

        train(config, workdir)
    elif FLAGS.mode == "eval":
        from dae_jax.eval.evaluate import eval_input_config, evaluate

        w = _weights(config, workdir)
        result = evaluate(w.params, w.model_config, eval_input_config(config), w.settings,
                          os.path.join(workdir, "eval"), config.eval.batch_size, config.eval.pictures,
                          config.eval.gif)
        logging.info("MEAN abs_rel %.4f  RMSE %.3f  delta1 %.4f", result["mean"]["_abs_rel_diff"],
                     result["mean"]["_RMS_linear"], result["mean"]["_threshold_delta_1.25"])
    elif FLAGS.mode == "export":
        from dae_jax.convert import export_torch_checkpoint

        w = _weights(config, workdir)
        path = config.export.path or os.path.join(workdir, "export", "model.pth")
        export_torch_checkpoint(path, w.params, w.model_config, w.settings, plain=config.export.plain)
        logging.info("wrote %s", path)
    elif FLAGS.mode == "predict":
        from dae_jax.predict import is_recording, predict_files, predict_recording, window_spec
        from dae_jax.predictor import Predictor

        p = config.predict
        if not p.input:
            raise app.UsageError("--config.predict.input is required for --mode=predict (a recording or a folder)")
        w = _weights(config, workdir)
        output = os.path.join(workdir, "predictions")
        if is_recording(p.input):
            spec = window_spec(p.window, p.duration_ms, p.stride_ms, p.count)
            videos = [v for v in p.video.split(",") if v]
            result = predict_recording(Predictor(w.params, w.model_config), p.input, output, spec, w.settings,
                                       p.batch_size, videos, p.sensor_size, p.near_m, p.far_m)
            logging.info("wrote %d depth maps to %s (%.1f windows/s, real-time factor %.2fx)", result["windows"],
                         output, result["windows_per_s"], result["real_time_factor"])
        else:
            out = predict_files(w.params, w.model_config, p.input, output, p.near_m, p.far_m)
            logging.info("wrote %d pictures to %s", len(out), output)

if __name__ == "__main__":
    app.run(main)
