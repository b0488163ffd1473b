"""Depth Anything V2 (teacher and event student) and DepthAnyEvent-R, with their PyTorch-exact preprocessing.

Arrays are NHWC. `__call__` takes the network input (a multiple of 14, already normalised); `infer` takes a raw
image or Tencode in [0, 1] at any size and does what the PyTorch `infer_image` does: resize to the input-size
rule with bicubic, ImageNet-normalise channels 0-2, run, and resize the depth back to the input size.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from dae_jax.models.dpt import ACTIVATIONS, DPTHead
from dae_jax.models.recurrent import RECURRENT_TYPES, zero_state
from dae_jax.models.resize import resize_bicubic, resize_bilinear
from dae_jax.models.vit import PATCH, DinoVisionTransformer, get_encoder

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

States = tuple  # ((h, c) of l4, l3, l2, l1) for ConvLSTM; ((h,), ...) for ConvGRU


def target_size(h: int, w: int, width: int = 518, height: int = 518) -> tuple[int, int]:
    """DAv2's input-size rule: keep the aspect ratio, cover (height, width), round to a multiple of 14.

    The larger scale wins ("lower_bound"); sizes round half-to-even like np.round and fall back to the next
    multiple above when rounding would go below the requested size.
    """

    def fit(x: float, minimum: int) -> int:
        y = int(np.round(x / PATCH) * PATCH)
        return int(math.ceil(x / PATCH) * PATCH) if y < minimum else y

    scale = max(height / h, width / w)
    return fit(scale * h, height), fit(scale * w, width)


def normalize_imagenet(x: jnp.ndarray) -> jnp.ndarray:
    """ImageNet mean/std on channels 0-2 only; further channels (C > 3) pass through, as in the reference."""
    mean = jnp.asarray(IMAGENET_MEAN, x.dtype)
    std = jnp.asarray(IMAGENET_STD, x.dtype)
    return jnp.concatenate([(x[..., :3] - mean) / std, x[..., 3:]], axis=-1)


def instance_norm(x: jnp.ndarray, eps: float = 1e-5) -> jnp.ndarray:
    """InstanceNorm2d without affine parameters or running statistics (biased variance over H, W)."""
    mean = x.mean(axis=(1, 2), keepdims=True)
    var = jnp.square(x - mean).mean(axis=(1, 2), keepdims=True)
    return (x - mean) / jnp.sqrt(var + eps)


class DepthAnythingV2(nn.Module):
    """DAv2: DINOv2 encoder + DPT head. `official=True` is the frame teacher, otherwise the event student.

    Student options follow DepthAnyEvent: the final `activation`, `inv_prediction` (relu -> 1/(d+1e-6),
    sigmoid -> 1-d, softplus -> unchanged), `scale_factor`, and an `input_mapping` to 3 channels when
    `input_channels` != 3. `input_width`/`input_height` feed the size rule of `infer`.
    """

    encoder: str = "vits"
    activation: str = "relu"
    official: bool = False
    inv_prediction: bool = False
    scale_factor: float = 1.0
    input_channels: int = 3
    input_width: int = 518
    input_height: int = 518
    recurrent: str | None = None
    dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        spec = get_encoder(self.encoder)
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if self.recurrent is not None and self.recurrent not in RECURRENT_TYPES:
            raise ValueError(f"recurrent must be None or one of {RECURRENT_TYPES}, got {self.recurrent!r}")
        if self.official and (self.input_channels != 3 or self.recurrent is not None):
            raise ValueError("the official DAv2 teacher takes 3-channel frames and has no recurrence")
        self.pretrained = DinoVisionTransformer(spec, self.dtype, self.remat)
        self.depth_head = DPTHead(spec, self.activation, self.official, self.recurrent, self.dtype)
        if self.input_channels != 3:
            self.input_mapping_0 = nn.Conv(16, (3, 3), padding=((1, 1), (1, 1)), dtype=self.dtype)
            self.input_mapping_3 = nn.Conv(3, (1, 1), dtype=self.dtype)

    def _map_input(self, x: jnp.ndarray) -> jnp.ndarray:
        if self.input_channels == 3:
            return x
        x = nn.relu(instance_norm(self.input_mapping_0(x)))
        return nn.relu(instance_norm(self.input_mapping_3(x)))

    def forward(self, x: jnp.ndarray, states: States | None = None) -> tuple[jnp.ndarray, States | None]:
        """One network evaluation on a normalised (B, H, W, C) input; returns depth (B, H, W) and new states."""
        if x.shape[-1] != self.input_channels:
            raise ValueError(f"expected {self.input_channels} input channels, got input of shape {x.shape}")
        x = self._map_input(x.astype(self.dtype))
        grid = (x.shape[1] // PATCH, x.shape[2] // PATCH)
        depth, states = self.depth_head(self.pretrained(x), grid, states)
        depth = depth.astype(jnp.float32)
        if self.inv_prediction and not self.official:
            if self.activation == "relu":
                depth = 1.0 / (depth + 1e-6)
            elif self.activation == "sigmoid":
                depth = 1.0 - depth
        return depth * self.scale_factor, states

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """Depth (B, H, W) for a normalised network input (B, H, W, C)."""
        return self.forward(x)[0]

    def preprocess(self, x: jnp.ndarray) -> jnp.ndarray:
        """Raw (B, h, w, C) in [0, 1] -> network input: bicubic to the size rule, ImageNet normalisation."""
        size = target_size(x.shape[1], x.shape[2], self.input_width, self.input_height)
        return normalize_imagenet(resize_bicubic(x.astype(jnp.float32), size))

    def postprocess(self, depth: jnp.ndarray, size: tuple[int, int]) -> jnp.ndarray:
        """Network depth (B, H, W) -> (B, h, w) bilinear (align_corners True for the teacher, False otherwise)."""
        return resize_bilinear(depth[..., None], size, align_corners=self.official)[..., 0]

    def infer(self, x: jnp.ndarray) -> jnp.ndarray:
        """PyTorch `infer_image`: raw (B, h, w, C) in [0, 1] -> depth (B, h, w) at the input size."""
        return self.postprocess(self(self.preprocess(x)), x.shape[1:3])


class DepthAnyEventR(DepthAnythingV2):
    """DepthAnyEvent-R: DAv2 with ConvLSTM (or ConvGRU) layers in the DPT head, carrying state over time.

    `__call__` runs a clip (B, T, H, W, C) through one scanned body and returns (depth (B, T, H, W), states);
    `step` is one time step for streaming inference. States None means the zero state (start of a sequence).
    """

    recurrent: str | None = "convlstm"
    # Unroll the time loop of a clip inside the scan: XLA:CPU runs a rolled loop's backward pass ~10x slower
    # (measured on the demo's DepthAnyEvent-R step); clips are short, so unrolling costs little compile time.
    unroll: bool = True

    def zero_states(self, batch: int, height: int, width: int) -> States:
        """Zero states for a network input of height x width, ordered (l4, l3, l2, l1)."""
        gh, gw = height // PATCH, width // PATCH
        if min(gh, gw) < 5:  # the coarsest map (ceil(g/2)) loses 2 px in the padding-0 recurrent conv
            raise ValueError(f"DepthAnyEvent-R needs a network input of at least 70x70, got {height}x{width}")
        sizes = [(4 * gh, 4 * gw), (2 * gh, 2 * gw), (gh, gw), (math.ceil(gh / 2), math.ceil(gw / 2))]
        f = get_encoder(self.encoder).features
        return tuple(zero_state(self.recurrent, batch, h, w, f) for h, w in reversed(sizes))

    def step(self, x: jnp.ndarray, states: States | None = None) -> tuple[jnp.ndarray, States]:
        """One time step on a normalised (B, H, W, C) input: (depth (B, H, W), new states)."""
        if states is None:
            states = self.zero_states(x.shape[0], x.shape[1], x.shape[2])
        return self.forward(x, states)

    def __call__(self, clip: jnp.ndarray, states: States | None = None) -> tuple[jnp.ndarray, States]:
        """A clip (B, T, H, W, C) of normalised inputs -> (depth (B, T, H, W), final states)."""
        if states is None:
            states = self.zero_states(clip.shape[0], clip.shape[2], clip.shape[3])

        def body(module, carry, x):
            depth, carry = module.forward(x, carry)
            return carry, depth

        scan = nn.scan(body, variable_broadcast="params", split_rngs={"params": False}, in_axes=1, out_axes=1,
                       unroll=clip.shape[1] if self.unroll else 1)
        states, depth = scan(self, states, clip)
        return depth, states

    def infer_step(self, x: jnp.ndarray, states: States | None = None) -> tuple[jnp.ndarray, States]:
        """Streaming `infer_image`: raw (B, h, w, C) in [0, 1] -> (depth (B, h, w), new states)."""
        depth, states = self.step(self.preprocess(x), states)
        return self.postprocess(depth, x.shape[1:3]), states

    def infer(self, clip: jnp.ndarray, states: States | None = None) -> tuple[jnp.ndarray, States]:
        """A raw clip (B, T, h, w, C) in [0, 1] -> (depth (B, T, h, w), final states), scanned over T."""
        b, t, h, w, c = clip.shape
        x = self.preprocess(clip.reshape(b * t, h, w, c))
        depth, states = self(x.reshape(b, t, *x.shape[1:]), states)
        out = self.postprocess(depth.reshape(b * t, *depth.shape[2:]), (h, w))
        return out.reshape(b, t, h, w), states
