"""Train the demo's stand-in foundation model and write the weights file that configs/demo.py ships.

  python scripts/demo_teacher.py --workdir=runs/demo_teacher [--output=dae_jax/assets/demo_teacher.msgpack]

The teacher of configs/demo.py (config.teacher.model) is trained on its own synthetic frame world
(config.demo.teacher.world: RGB and depth only, other seeds than the students' event world) with the schedule of
config.demo.teacher (dae_jax.demo.train_teacher); the run resumes if interrupted. The demo then uses the file as a
user uses Depth Anything V2's released weights; `--config.demo.teacher.weights=''` retrains it inside the demo.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from absl import logging  # noqa: E402

from configs import demo as demo_config  # noqa: E402
from dae_jax import demo  # noqa: E402


def main() -> None:
    """Train (or resume) the stand-in teacher and copy its weights to --output."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="where the frame world and the training run go")
    parser.add_argument("--output", default=demo_config.get_config().demo.teacher.weights,
                        help="the weights file to write (default: the one configs/demo.py ships)")
    args = parser.parse_args()
    logging.set_verbosity(logging.INFO)
    path, _ = demo.train_teacher(demo_config.get_config(), args.workdir)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, args.output)
    print(f"stand-in teacher: {args.output}")


if __name__ == "__main__":
    main()
