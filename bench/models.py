"""Forward latency of DAv2-vits and DepthAnyEvent-R-vits (one step) at 266x350, JAX against PyTorch.

Both run the same weights in the same process (the PyTorch reference of dae_jax/convert/torch_reference.py, CPU,
the same thread count), so the printed ratio is what this machine says, not an absolute number. Also
prints the JAX compile time and XLA's memory estimate for the compiled forward, and the process's peak RSS.

Run from the repository root: python bench/models.py [--batches 1 8] [--repeats 3]
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

from bench.data import best_seconds  # noqa: E402
from dae_jax.convert import torch_reference as ref  # noqa: E402
from dae_jax.convert import torch_to_flax  # noqa: E402
from dae_jax.models import DepthAnyEventR, DepthAnythingV2  # noqa: E402

H, W = 266, 350


def bench_model(kind: str, batch: int, repeats: int) -> dict:
    """Latency of one forward pass of a network-sized input, JAX (jit, after compile) and PyTorch."""
    tmodel = ref.make_model(kind, "vits", seed=0)
    params = torch_to_flax({k: v.numpy() for k, v in tmodel.state_dict().items()})
    x = np.random.default_rng(0).uniform(size=(batch, H, W, 3)).astype(np.float32)
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    if kind == "recdav2":
        model = DepthAnyEventR(encoder="vits")
        fn = jax.jit(lambda p, x: model.apply({"params": p}, x, method=model.step)[0])
    else:
        model = DepthAnythingV2(encoder="vits")
        fn = jax.jit(lambda p, x: model.apply({"params": p}, x))
    xj = jnp.asarray(x)
    start = time.perf_counter()
    compiled = fn.lower(params, xj).compile()
    compile_s = time.perf_counter() - start
    mem = compiled.memory_analysis()
    xla_mb = (mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes) / 2**20 if mem else 0
    jax_s = best_seconds(lambda: compiled(params, xj).block_until_ready(), repeats)
    with torch.no_grad():
        torch_s = best_seconds(lambda: tmodel(xt), repeats)
    return dict(jax_s=jax_s, torch_s=torch_s, compile_s=compile_s, xla_mb=xla_mb)


def main() -> None:
    """Print one row per model and batch size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"jax {jax.__version__} ({jax.default_backend()}), torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), input {H}x{W}")
    print(f"{'model':<18}{'batch':>6}{'jax ms':>10}{'torch ms':>10}{'torch/jax':>11}{'compile s':>11}{'xla MB':>9}")
    for kind, name in (("dav2", "DAv2-vits"), ("recdav2", "DepthAnyEvent-R")):
        for batch in args.batches:
            r = bench_model(kind, batch, args.repeats)
            print(f"{name:<18}{batch:>6}{r['jax_s'] * 1e3:>10.1f}{r['torch_s'] * 1e3:>10.1f}"
                  f"{r['torch_s'] / r['jax_s']:>11.2f}{r['compile_s']:>11.1f}{r['xla_mb']:>9.0f}")
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
