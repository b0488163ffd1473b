"""Build a dataset: python -m tfds_builders NAME --config CONFIG --data_dir DIR [--manual_dir DIR].

Prints where it was written and the stored bytes per example of each split.
"""

from __future__ import annotations

import argparse
import sys

from tfds_builders import DATASETS, build, builder_class, bytes_per_example


def main(argv: list[str] | None = None) -> int:
    """Parse, build, report; the builder's own errors name the missing files."""
    parser = argparse.ArgumentParser(prog="python -m tfds_builders", description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=DATASETS)
    parser.add_argument("--config", required=True, help="builder config name, e.g. events or tencode")
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--manual_dir", default=None, help="where the downloaded release lies (real datasets)")
    args = parser.parse_args(argv)
    known = [c.name for c in builder_class(args.name).BUILDER_CONFIGS]
    if args.config not in known:
        parser.error(f"unknown config {args.config!r} for {args.name}; expected one of {known}")
    builder = build(args.name, args.config, args.data_dir, args.manual_dir)
    print(f"prepared {builder.data_dir}")
    for split, size in bytes_per_example(builder).items():
        print(f"  {split}: {builder.info.splits[split].num_examples} examples, {size / 1024:.1f} KiB per example")
    return 0


if __name__ == "__main__":
    sys.exit(main())
