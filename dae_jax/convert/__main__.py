"""Command line: convert checkpoints between PyTorch and Flax.

  python -m dae_jax.convert to-flax  IN.pth   OUT.msgpack|OUT_DIR [--teacher]
  python -m dae_jax.convert to-torch WORKDIR|IN.msgpack|IN_DIR OUT.pth|OUT.safetensors [--plain]
      [--use_logdepth ...] [--verify [--verify_input FRAMES.npy]]

The evaluation settings written with the weights are those the input stores (a training run's label space, a
params file's or a .pth's own), replaced by the flags given here.

--verify loads the written file into the PyTorch reference (dae_jax/convert/torch_reference.py, strict=True) and
compares its predictions with JAX's on FRAMES.npy ((T, H, W, C) in [0, 1]) or on random frames at the network
size; it fails (exit 1) beyond the parity limit.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from dae_jax.convert import (
    PARITY_LIMIT,
    ConversionError,
    export_torch_checkpoint,
    save_flax_params,
    verify_torch_export,
)
from dae_jax.weights import resolve


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, convert, and print what was written; errors go to stderr with exit code 2."""
    parser = argparse.ArgumentParser(prog="python -m dae_jax.convert", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    to_flax = sub.add_parser("to-flax", help="official/DepthAnyEvent .pth or .safetensors -> Flax params")
    to_flax.add_argument("input")
    to_flax.add_argument("output", help="a .msgpack file, or a directory for an Orbax checkpoint")
    to_flax.add_argument("--teacher", action="store_true",
                         help="the weights are an official DAv2 frame model (official output semantics)")
    to_torch = sub.add_parser("to-torch", help="Flax params -> .pth (needs torch) or .safetensors")
    to_torch.add_argument("input", help="a training workdir, a params file or directory, or a .pth/.safetensors")
    to_torch.add_argument("output")
    to_torch.add_argument("--plain", action="store_true",
                          help="write a bare state_dict (the official DAv2 layout) instead of {state_dict, config}")
    for flag in ("use_logdepth", "use_scaleshift"):
        to_torch.add_argument(f"--{flag}", action=argparse.BooleanOptionalAction, default=None,
                              help="evaluation setting for the official test script (default: the input's)")
    to_torch.add_argument("--reg_factor", type=float, default=None)
    to_torch.add_argument("--clip_distance", type=float, default=None)
    to_torch.add_argument("--verify", action="store_true", help="check the written file in the PyTorch reference")
    to_torch.add_argument("--verify_input", default=None, help="frames (T, H, W, C) in [0, 1] as .npy for --verify")
    args = parser.parse_args(argv)
    try:
        if args.command == "to-flax":
            w = resolve(args.input, {"official": True} if args.teacher else None)
            save_flax_params(args.output, w.params, w.model_config, w.settings)
        else:
            w = resolve(args.input)
            settings = w.settings.updated({k: getattr(args, k) for k in w.settings.names()})
            export_torch_checkpoint(args.output, w.params, w.model_config, settings, plain=args.plain)
            if args.verify:
                frames = np.load(args.verify_input) if args.verify_input else None
                diff = verify_torch_export(args.output, w.params, w.model_config, frames)
                print(f"PyTorch reference vs JAX: max rel diff {diff:.2e} (limit {PARITY_LIMIT:.0e})")
                if not diff <= PARITY_LIMIT:
                    print(f"error: {args.output} does not reproduce the JAX predictions", file=sys.stderr)
                    return 1
    except (ConversionError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.output} ({w.model_config['model_type']}, encoder {w.model_config['encoder']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
