"""Distillation step throughput: DAv2-vits student on Tencode, frozen DAv2 teacher on the RGB frame, JAX vs PyTorch.

One step = teacher forward (518 size rule) -> proxy labels in log depth -> student forward/backward at the crop
-> AdamW. The PyTorch side is the same step on the reference models of tests/torch_reference.py with the same
loss, in the same process; the ratio (PyTorch time / JAX time) is what this machine says.

Run from the repository root: python bench/train.py [--batch 2] [--steps 3] [--teacher vits]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np
import optax
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from configs import common  # noqa: E402
from dae_jax.convert import torch_to_flax  # noqa: E402
from dae_jax.models import DepthAnythingV2  # noqa: E402
from dae_jax.train.state import create_train_state  # noqa: E402
from dae_jax.train.step import make_train_step  # noqa: E402
from tests import torch_reference as ref  # noqa: E402
from tests.test_losses import ref_msg, ref_silog  # noqa: E402

H, W = 266, 350  # an MVSEC-sized crop


def torch_step(student, teacher, opt, events, rgb, loss_cfg):
    """The reference step: labels from the teacher, SI + multi-scale gradient on log depth, AdamW."""
    reg = loss_cfg.reg_factor
    with torch.no_grad():
        r = ref.infer(teacher, rgb)[:, 0]
        r_max = r.amax((1, 2), keepdim=True)
        r = torch.minimum(torch.maximum(r, r_max * np.exp(-reg)), r_max)
        target = torch.log(r_max.clamp_min(1e-12) / r.clamp_min(1e-12)) / reg
    pred = ref.infer(student, events, 350, 266)[:, 0]
    mask = torch.ones_like(target, dtype=torch.bool)
    loss = 0.0
    for i in range(pred.shape[0]):
        p, t, m = pred[i:i + 1], target[i:i + 1], mask[i:i + 1]
        loss = loss + ref_silog(p, t, m, loss_cfg.si_lambda, logs=False) + loss_cfg.gradient_weight * ref_msg(p, t, m)
    loss = loss / pred.shape[0]
    opt.zero_grad()
    loss.backward()
    opt.step()
    return float(loss.detach())


def main() -> None:
    """Time both steps and print examples/s and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--teacher", default="vits", help="teacher encoder (the paper uses vitl)")
    args = parser.parse_args()
    cfg = common.get_config()
    rng = np.random.default_rng(0)
    events = rng.uniform(size=(args.batch, 1, H, W, 3)).astype(np.float32)
    rgb = rng.uniform(size=(args.batch, 1, H, W, 3)).astype(np.float32)

    t_student = ref.make_model("dav2", "vits", seed=0, activation="softplus", inv_prediction=True).train()
    t_teacher = ref.make_model("official", args.teacher, seed=1)
    student = DepthAnythingV2(encoder="vits", activation="softplus", inv_prediction=True, input_width=350,
                              input_height=266)
    teacher = DepthAnythingV2(encoder=args.teacher, official=True)
    params = torch_to_flax({k: v.detach().numpy() for k, v in t_student.state_dict().items()})
    teacher_params = torch_to_flax({k: v.numpy() for k, v in t_teacher.state_dict().items()})
    optimizer = optax.adamw(1e-5, weight_decay=0.01)
    step = jax.jit(make_train_step(student, teacher, optimizer, "distill", cfg.loss, axis_name=None),
                   donate_argnums=(0,))
    state = create_train_state(params, optimizer, 0)
    batch = {"events": events, "rgb": rgb}
    start = time.perf_counter()
    state, metrics = step(state, batch, teacher_params)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(args.steps):
        state, metrics = step(state, batch, teacher_params)
    jax.block_until_ready(metrics)
    jax_rate = args.steps * args.batch / (time.perf_counter() - start)

    opt = torch.optim.AdamW(t_student.parameters(), lr=1e-5, weight_decay=0.01)
    te, tr = (torch.from_numpy(np.ascontiguousarray(a[:, 0].transpose(0, 3, 1, 2))) for a in (events, rgb))
    torch_step(t_student, t_teacher, opt, te, tr, cfg.loss)  # warm-up
    start = time.perf_counter()
    for _ in range(args.steps):
        torch_step(t_student, t_teacher, opt, te, tr, cfg.loss)
    torch_rate = args.steps * args.batch / (time.perf_counter() - start)
    print(f"distillation step, student DAv2-vits {H}x{W}, teacher DAv2-{args.teacher} (518 rule), batch {args.batch}")
    print(f"JAX   {jax_rate:.3f} examples/s (compile {compile_s:.1f} s)")
    print(f"torch {torch_rate:.3f} examples/s ({torch.get_num_threads()} threads)")
    print(f"ratio JAX / torch: {jax_rate / torch_rate:.2f}")


if __name__ == "__main__":
    main()
