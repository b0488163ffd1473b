"""Evaluate weights on a prepared dataset split with the paper's protocol.

  python -m dae_jax.eval --weights=WORKDIR|params.msgpack|model.pth --dataset_dir=DATA/mvsec/tencode/1.0.0 \
      --split=test --output=OUT [--use_logdepth] [--use_scaleshift] [--pictures=5]

Writes OUT/eval.csv (a row per sequence, then MEAN) and OUT/eval.json. Flags not given on the command line come
from the checkpoint (a training run's loss settings, or a .pth's `config['trainer']`), else the reference's
defaults.
"""

from __future__ import annotations

import argparse
import sys

from dae_jax.data.pipeline import InputConfig
from dae_jax.eval.evaluate import evaluate
from dae_jax.weights import resolve


def main(argv: list[str] | None = None) -> int:
    """Parse, evaluate, print the MEAN row."""
    parser = argparse.ArgumentParser(prog="python -m dae_jax.eval", description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True)
    parser.add_argument("--dataset_dir", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--output", default=None)
    parser.add_argument("--crop", type=int, nargs=2, default=None, help="centre crop (h w); default: none")
    parser.add_argument("--use_logdepth", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--use_scaleshift", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--reg_factor", type=float, default=None)
    parser.add_argument("--clip_distance", type=float, default=None)
    parser.add_argument("--pictures", type=int, default=0, help="frames per sequence to draw")
    parser.add_argument("--gif", action="store_true", help="join each sequence's pictures into a GIF")
    parser.add_argument("--batch_size", type=int, default=8)
    args = parser.parse_args(argv)
    w = resolve(args.weights)
    settings = w.settings.updated({k: getattr(args, k) for k in w.settings.names()})
    data = InputConfig(dataset_dir=args.dataset_dir, split=args.split, batch_size=1, crop=args.crop,
                       load_depth=True, shuffle=False)
    result = evaluate(w.params, w.model_config, data, settings, args.output, args.batch_size, args.pictures, args.gif)
    mean = result["mean"]
    print(" ".join(f"{k}={mean[k]:.4f}" for k in ("_abs_rel_diff", "_RMS_linear", "_threshold_delta_1.25")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
