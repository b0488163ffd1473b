"""Recurrent layers of DepthAnyEvent-R: a padding-0 conv + ReLU followed by a ConvLSTM or ConvGRU cell.

The state of one layer is a tuple: (h, c) for ConvLSTM, (h,) for ConvGRU. Names mirror PyTorch
(`conv/conv2d`, `recurrent_block/Gates`, `recurrent_block/reset_gate`, ...).
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

RECURRENT_TYPES = ("convlstm", "convgru")


def _conv3x3(features: int, name: str, dtype: jnp.dtype, padding: int = 1) -> nn.Conv:
    return nn.Conv(features, (3, 3), padding=((padding, padding), (padding, padding)), dtype=dtype, name=name)


class ConvLSTM(nn.Module):
    """ConvLSTM cell: one conv on [x, h] gives the gates in the order input, forget, output, cell."""

    features: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, state: tuple[jnp.ndarray, ...]) -> tuple[jnp.ndarray, tuple]:
        h, c = state
        gates = _conv3x3(4 * self.features, "Gates", self.dtype)(jnp.concatenate([x, h.astype(x.dtype)], -1))
        i, f, o, g = jnp.split(gates, 4, axis=-1)
        c = nn.sigmoid(f) * c + nn.sigmoid(i) * jnp.tanh(g)
        h = nn.sigmoid(o) * jnp.tanh(c)
        return h, (h, c)


class ConvGRU(nn.Module):
    """ConvGRU cell: reset and update gates on [x, h], candidate on [x, h * r]."""

    features: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, state: tuple[jnp.ndarray, ...]) -> tuple[jnp.ndarray, tuple]:
        (h,) = state
        h = h.astype(x.dtype)
        xh = jnp.concatenate([x, h], -1)
        r = nn.sigmoid(_conv3x3(self.features, "reset_gate", self.dtype)(xh))
        u = nn.sigmoid(_conv3x3(self.features, "update_gate", self.dtype)(xh))
        n = jnp.tanh(_conv3x3(self.features, "out_gate", self.dtype)(jnp.concatenate([x, h * r], -1)))
        h = h * (1 - u) + n * u
        return h, (h,)


class ConvLayer(nn.Module):
    """3x3 conv with padding 0 (it crops one pixel per side, as the released weights expect) and ReLU."""

    features: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        return nn.relu(_conv3x3(self.features, "conv2d", self.dtype, padding=0)(x))


class RecurrentConvLayer(nn.Module):
    """ConvLayer followed by a recurrent cell; returns (output, new_state)."""

    features: int
    cell: str = "convlstm"
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, state: tuple[jnp.ndarray, ...]) -> tuple[jnp.ndarray, tuple]:
        x = ConvLayer(self.features, self.dtype, name="conv")(x)
        cell = ConvLSTM if self.cell == "convlstm" else ConvGRU
        return cell(self.features, self.dtype, name="recurrent_block")(x, state)


def zero_state(cell: str, batch: int, height: int, width: int, features: int) -> tuple[jnp.ndarray, ...]:
    """Zero state of one recurrent layer whose input map is height x width (the cell sees it 2 px smaller)."""
    zeros = jnp.zeros((batch, height - 2, width - 2, features), jnp.float32)
    return (zeros, zeros) if cell == "convlstm" else (zeros,)
