"""Latency of the models, JAX against PyTorch: DAv2-vits and DepthAnyEvent-R-vits (one step) at 266x350 per batch
size, the DAv2-vitl teacher at 518x686, a DepthAnyEvent-R clip of 4 stacks (JAX's scan against PyTorch's loop over
the frames, the state carried), and the distillation train step (bench/train.py's, teacher DAv2-vits).

Both run the same weights in the same process (the PyTorch reference of dae_jax/convert/torch_reference.py, CPU,
the same thread count), so the printed ratio is what this machine says, not an absolute number. Times are the best
of --repeats runs, JAX's compiled ahead of time, the two frameworks taking turns run by run (this machine's speed
drifts over seconds; back-to-back blocks of runs would hand the drift to one side); also printed: the JAX compile
time, XLA's memory estimate for the compiled function, and the process's peak RSS.

Run from the repository root: python bench/models.py [--batches 1 8] [--repeats 5] [--only vits teacher clip step]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dae_jax.convert import torch_reference as ref  # noqa: E402
from dae_jax.convert import torch_to_flax  # noqa: E402
from dae_jax.models import DepthAnyEventR, DepthAnythingV2  # noqa: E402

H, W = 266, 350


def _compiled(fn, *args) -> tuple[object, float, float]:
    """(compiled fn, compile seconds, XLA's memory estimate in MB)."""
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - start
    mem = compiled.memory_analysis()
    xla_mb = (mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes) / 2**20 if mem else 0
    return compiled, compile_s, xla_mb


def best_alternating(fns: dict[str, object], repeats: int) -> dict[str, float]:
    """Best wall seconds of each callable over `repeats` rounds, each round calling every one once, in turn."""
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def bench_model(kind: str, batch: int, repeats: int, encoder: str = "vits", size: tuple[int, int] = (H, W)) -> dict:
    """Latency of one forward pass of a network-sized input, JAX (jit, after compile) and PyTorch."""
    h, w = size
    tmodel = ref.make_model(kind, encoder, seed=0)
    params = torch_to_flax({k: v.numpy() for k, v in tmodel.state_dict().items()})
    x = np.random.default_rng(0).uniform(size=(batch, h, w, 3)).astype(np.float32)
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    if kind == "recdav2":
        model = DepthAnyEventR(encoder=encoder)
        fn = lambda p, x: model.apply({"params": p}, x, method=model.step)[0]  # noqa: E731
    else:
        model = DepthAnythingV2(encoder=encoder, official=kind == "official")
        fn = lambda p, x: model.apply({"params": p}, x)  # noqa: E731
    xj = jnp.asarray(x)
    compiled, compile_s, xla_mb = _compiled(fn, params, xj)
    with torch.no_grad():
        best = best_alternating({"jax_s": lambda: compiled(params, xj).block_until_ready(),
                                 "torch_s": lambda: tmodel(xt)}, repeats)
    return dict(**best, compile_s=compile_s, xla_mb=xla_mb)


def bench_clip(frames: int, repeats: int) -> dict:
    """A DepthAnyEvent-R clip (1, T, 266, 350, 3): JAX's scanned __call__ against PyTorch's loop over the T frames."""
    tmodel = ref.make_model("recdav2", "vits", seed=0)
    params = torch_to_flax({k: v.numpy() for k, v in tmodel.state_dict().items()})
    clip = np.random.default_rng(0).uniform(size=(1, frames, H, W, 3)).astype(np.float32)
    model = DepthAnyEventR(encoder="vits")
    cj = jnp.asarray(clip)
    compiled, compile_s, xla_mb = _compiled(lambda p, c: model.apply({"params": p}, c)[0], params, cj)
    xs = [torch.from_numpy(np.ascontiguousarray(clip[:, t].transpose(0, 3, 1, 2))) for t in range(frames)]

    def torch_loop():
        states = None
        for x in xs:
            _, states = tmodel(x, states)

    with torch.no_grad():
        best = best_alternating({"jax_s": lambda: compiled(params, cj).block_until_ready(), "torch_s": torch_loop},
                                repeats)
    return dict(**best, compile_s=compile_s, xla_mb=xla_mb)


def _row(name: str, batch: int, r: dict) -> None:
    print(f"{name:<24}{batch:>6}{r['jax_s'] * 1e3:>10.1f}{r['torch_s'] * 1e3:>10.1f}"
          f"{r['torch_s'] / r['jax_s']:>11.2f}{r['compile_s']:>11.1f}{r['xla_mb']:>9.0f}")


def main() -> None:
    """Print one row per model and batch size, then the teacher, the clip and the train step."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", nargs="+", choices=("vits", "teacher", "clip", "step"),
                        default=["vits", "teacher", "clip", "step"])
    args = parser.parse_args()
    print(f"jax {jax.__version__} ({jax.default_backend()}), torch {torch.__version__} "
          f"({torch.get_num_threads()} threads); best of {args.repeats}")
    print(f"{'model':<24}{'batch':>6}{'jax ms':>10}{'torch ms':>10}{'torch/jax':>11}{'compile s':>11}{'xla MB':>9}")
    if "vits" in args.only:
        for kind, name in (("dav2", "DAv2-vits"), ("recdav2", "DepthAnyEvent-R")):
            for batch in args.batches:
                _row(name, batch, bench_model(kind, batch, args.repeats))
    if "teacher" in args.only:
        _row("teacher vitl 518x686", 1, bench_model("official", 1, args.repeats, "vitl", (518, 686)))
    if "clip" in args.only:
        _row("DepthAnyEvent-R clip 4", 1, bench_clip(4, args.repeats))
    if "step" in args.only:
        from bench.train import distill_step_rates

        r = distill_step_rates(2, args.repeats)
        print(f"distillation step (student vits 266x350, teacher vits, batch 2): JAX {r['jax_rate']:.2f} examples/s, "
              f"torch {r['torch_rate']:.2f}, JAX/torch {r['jax_rate'] / r['torch_rate']:.2f}, "
              f"compile {r['compile_s']:.1f} s")
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
