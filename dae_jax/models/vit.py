"""DINOv2 Vision Transformer (the DAv2 encoder) in Flax linen, with DAv2's intermediate-layer outputs.

Names mirror the PyTorch modules (`patch_embed/proj`, `blocks_{i}/attn/qkv`, `ls1/gamma`, ...) so the weight
converter is a table of renames. Inputs are NHWC with H and W multiples of 14.
"""

from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from dae_jax.models.resize import bicubic_matrix

PATCH = 14
POS_GRID = 37  # DINOv2 was trained at 518 = 37 * 14.
POS_OFFSET = 0.1  # DINOv2's `interpolate_offset`.
HEAD_DIM = 64


@dataclasses.dataclass(frozen=True)
class EncoderSpec:
    """Size of a DINOv2 encoder and of the DPT head that DAv2 attaches to it."""

    dim: int
    depth: int
    heads: int
    ffn: str  # "mlp" or "swiglu"
    layers: tuple[int, int, int, int]  # blocks whose outputs feed the DPT head
    features: int
    out_channels: tuple[int, int, int, int]

    @property
    def hidden(self) -> int:
        """FFN hidden width: 4D for the MLP, DINOv2's rounded 2/3 * 4D for SwiGLU."""
        if self.ffn == "swiglu":
            return ((int(self.dim * 4 * 2 / 3) + 7) // 8) * 8
        return 4 * self.dim


ENCODERS: dict[str, EncoderSpec] = {
    "vits": EncoderSpec(384, 12, 6, "mlp", (2, 5, 8, 11), 64, (48, 96, 192, 384)),
    "vitb": EncoderSpec(768, 12, 12, "mlp", (2, 5, 8, 11), 128, (96, 192, 384, 768)),
    "vitl": EncoderSpec(1024, 24, 16, "mlp", (4, 11, 17, 23), 256, (256, 512, 1024, 1024)),
    "vitg": EncoderSpec(1536, 40, 24, "swiglu", (9, 19, 29, 39), 384, (1536, 1536, 1536, 1536)),
    # Not a DINOv2 size: a small encoder for the demo and the tests that train on this 2-core machine.
    "tiny": EncoderSpec(128, 4, 2, "mlp", (0, 1, 2, 3), 32, (16, 32, 64, 128)),
}


def get_encoder(name: str) -> EncoderSpec:
    """Look up an encoder by name, with an error that lists the known ones."""
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; expected one of {sorted(ENCODERS)}")
    return ENCODERS[name]


def interpolate_pos_embed(pos_embed: jnp.ndarray, gh: int, gw: int) -> jnp.ndarray:
    """Resample the (1, 1+37*37, D) embedding to a gh x gw grid exactly as DINOv2 does in PyTorch.

    DINOv2 calls bicubic `interpolate` with scale_factor ((g+0.1)/37) rather than a size, and skips it only for
    the square 37x37 grid; the class position is kept as is.
    """
    if gh == POS_GRID and gw == POS_GRID:
        return pos_embed
    dtype = pos_embed.dtype
    cls_pos = pos_embed[:, :1]
    grid = pos_embed[0, 1:].astype(jnp.float32).reshape(POS_GRID, POS_GRID, -1)
    rows = bicubic_matrix(POS_GRID, gh, (gh + POS_OFFSET) / POS_GRID)
    cols = bicubic_matrix(POS_GRID, gw, (gw + POS_OFFSET) / POS_GRID)
    grid = jnp.einsum("oh,hwd->owd", rows, grid, precision="highest")
    grid = jnp.einsum("pw,owd->opd", cols, grid, precision="highest")
    return jnp.concatenate([cls_pos, grid.reshape(1, gh * gw, -1).astype(dtype)], axis=1)


Dense = functools.partial(nn.Dense, kernel_init=nn.initializers.truncated_normal(0.02))


def _softmax_attention(q: jnp.ndarray, k: jnp.ndarray, v: jnp.ndarray, logits_eq: str, out_eq: str) -> jnp.ndarray:
    weights = nn.softmax(jnp.einsum(logits_eq, q, k).astype(jnp.float32), axis=-1).astype(q.dtype)
    return jnp.einsum(out_eq, weights, v)


def attention(q: jnp.ndarray, k: jnp.ndarray, v: jnp.ndarray) -> jnp.ndarray:
    """softmax(q k^T) v over (B, N, heads, head_dim) inputs (q already scaled), the softmax in float32.

    On XLA:CPU one image and head at a time, in a loop: its (N, N) logits then stay in cache, which makes the
    attention of vits at 266x350 1.4x (batch 1) to 2x (batch 8) faster than the batched form; accelerators
    keep the batched form.
    """
    if jax.default_backend() != "cpu":
        return _softmax_attention(q, k, v, "bqhd,bkhd->bhqk", "bhqk,bkhd->bqhd")
    b, n, h, d = q.shape
    per_head = tuple(jnp.moveaxis(a, 2, 1).reshape(b * h, n, d) for a in (q, k, v))
    out = lax.map(lambda qkv: _softmax_attention(*qkv, "qd,kd->qk", "qk,kd->qd"), per_head)
    return jnp.moveaxis(out.reshape(b, h, n, d), 1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with one fused qkv projection ([q | k | v], heads contiguous)."""

    dim: int
    heads: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        b, n, _ = x.shape
        qkv = Dense(3 * self.dim, dtype=self.dtype, name="qkv")(x)
        q, k, v = jnp.moveaxis(qkv.reshape(b, n, 3, self.heads, self.dim // self.heads), 2, 0)
        q = q * (self.dim // self.heads) ** -0.5
        out = attention(q, k, v).reshape(b, n, self.dim)
        return Dense(self.dim, dtype=self.dtype, name="proj")(out)


class Mlp(nn.Module):
    """fc1 -> exact GELU -> fc2."""

    dim: int
    hidden: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        x = nn.gelu(Dense(self.hidden, dtype=self.dtype, name="fc1")(x), approximate=False)
        return Dense(self.dim, dtype=self.dtype, name="fc2")(x)


class SwiGLU(nn.Module):
    """w12 -> split (x1, x2) -> silu(x1) * x2 -> w3 (the vitg FFN)."""

    dim: int
    hidden: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        x1, x2 = jnp.split(Dense(2 * self.hidden, dtype=self.dtype, name="w12")(x), 2, axis=-1)
        return Dense(self.dim, dtype=self.dtype, name="w3")(nn.silu(x1) * x2)


class LayerScale(nn.Module):
    """Per-channel residual scaling (DINOv2 LayerScale, init 1.0 as DAv2 builds it)."""

    dim: int

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        return x * self.param("gamma", nn.initializers.ones, (self.dim,)).astype(x.dtype)


class Block(nn.Module):
    """Pre-norm transformer block: x + ls1(attn(norm1(x))), then x + ls2(ffn(norm2(x)))."""

    spec: EncoderSpec
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        d = self.spec.dim
        norm = functools.partial(nn.LayerNorm, epsilon=1e-6, dtype=self.dtype)
        y = Attention(d, self.spec.heads, self.dtype, name="attn")(norm(name="norm1")(x))
        x = x + LayerScale(d, name="ls1")(y)
        ffn = SwiGLU if self.spec.ffn == "swiglu" else Mlp
        y = ffn(d, self.spec.hidden, self.dtype, name="mlp")(norm(name="norm2")(x))
        return x + LayerScale(d, name="ls2")(y)


class PatchEmbed(nn.Module):
    """Non-overlapping 14x14 patch projection, flattened row-major into tokens."""

    dim: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        x = nn.Conv(self.dim, (PATCH, PATCH), strides=PATCH, padding="VALID", dtype=self.dtype, name="proj")(x)
        return x.reshape(x.shape[0], -1, self.dim)


class DinoVisionTransformer(nn.Module):
    """DINOv2 backbone returning the final-normed patch tokens after the blocks in `spec.layers`."""

    spec: EncoderSpec
    dtype: jnp.dtype = jnp.float32
    remat: bool = False  # rematerialise each block in the backward pass (saves activation memory)

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> list[jnp.ndarray]:
        h, w = x.shape[1:3]
        if h % PATCH or w % PATCH:
            raise ValueError(f"DINOv2 input must be a multiple of {PATCH} in H and W, got {h}x{w}")
        d = self.spec.dim
        normal = nn.initializers.truncated_normal(0.02)
        cls_token = self.param("cls_token", nn.initializers.normal(1e-6), (1, 1, d))
        pos_embed = self.param("pos_embed", normal, (1, 1 + POS_GRID * POS_GRID, d))
        self.param("mask_token", nn.initializers.zeros, (1, d))  # unused, kept for lossless round trips
        x = PatchEmbed(d, self.dtype, name="patch_embed")(x)
        x = jnp.concatenate([jnp.broadcast_to(cls_token, (x.shape[0], 1, d)).astype(x.dtype), x], axis=1)
        x = x + interpolate_pos_embed(pos_embed, h // PATCH, w // PATCH).astype(x.dtype)
        block = nn.remat(Block) if self.remat else Block
        norm = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, name="norm")
        outputs = []
        for i in range(self.spec.depth):
            x = block(self.spec, self.dtype, name=f"blocks_{i}")(x)
            if i in self.spec.layers:
                outputs.append(norm(x)[:, 1:])
        return outputs
