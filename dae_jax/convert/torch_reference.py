"""Independent PyTorch reference of DAv2 / RecDAv2 (Depth AnyEvent) and the official DAv2: the parity tests and
the export check (`verify_torch_export`) load weights into it. Needs torch (an optional dependency).

Written from the porting SPEC (sections 1-5, 10). Module and attribute names follow the original code so that
``state_dict()`` keys, shapes and order match the released checkpoints exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

PATCH = 14
HEAD_DIM = 64
LN_EPS = 1e-6
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# embed dim, depth, FFN type, DPT features, DPT out_channels, 0-based blocks fed to the head.
ENCODERS: dict[str, dict] = {
    "vits": dict(
        dim=384, depth=12, ffn="mlp", features=64, out_channels=(48, 96, 192, 384), layers=(2, 5, 8, 11)
    ),
    "vitb": dict(
        dim=768, depth=12, ffn="mlp", features=128, out_channels=(96, 192, 384, 768), layers=(2, 5, 8, 11)
    ),
    "vitl": dict(
        dim=1024,
        depth=24,
        ffn="mlp",
        features=256,
        out_channels=(256, 512, 1024, 1024),
        layers=(4, 11, 17, 23),
    ),
    "vitg": dict(
        dim=1536, depth=40, ffn="swiglu", features=384, out_channels=(1536,) * 4, layers=(9, 19, 29, 39)
    ),
    # Not a DINOv2 size: dae_jax's small encoder for tests and the demo (2 heads of 64).
    "tiny": dict(dim=128, depth=4, ffn="mlp", features=32, out_channels=(16, 32, 64, 128), layers=(0, 1, 2, 3)),
}

LSTMState = tuple[Tensor, Tensor]
State = LSTMState | Tensor
States = tuple[State, State, State, State]


# ----------------------------------------------------------------------------------------------------------
# DINOv2 backbone
# ----------------------------------------------------------------------------------------------------------


def interpolate_pos_embed(pos_embed: Tensor, gh: int, gw: int) -> Tensor:
    """Resample the stored 37x37 positional grid to gh x gw with DINOv2's scale-factor bicubic (SPEC 1)."""
    n_grid = pos_embed.shape[1] - 1
    if gh * gw == n_grid and gh == gw:
        return pos_embed
    side = int(math.sqrt(n_grid))
    dim = pos_embed.shape[-1]
    as_float = pos_embed.float()
    grid = as_float[:, 1:].reshape(1, side, side, dim).permute(0, 3, 1, 2)
    grid = F.interpolate(
        grid,
        scale_factor=((gh + 0.1) / side, (gw + 0.1) / side),
        mode="bicubic",
        align_corners=False,
        antialias=False,
    )
    if tuple(grid.shape[-2:]) != (gh, gw):
        raise AssertionError(f"pos-embed resample gave {tuple(grid.shape[-2:])}, expected {(gh, gw)}")
    grid = grid.permute(0, 2, 3, 1).reshape(1, gh * gw, dim)
    return torch.cat([as_float[:, :1], grid], dim=1).to(pos_embed.dtype)


class PatchEmbed(nn.Module):
    """Non-overlapping 14x14 patch projection; tokens come out row-major as (B, gh*gw, D)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=PATCH, stride=PATCH)

    def forward(self, x: Tensor) -> Tensor:
        """Project and flatten the patch grid."""
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection laid out as [q | k | v], heads contiguous."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.num_heads = dim // HEAD_DIM
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        """Scaled dot-product attention over all tokens."""
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, HEAD_DIM).permute(2, 0, 3, 1, 4)
        q = qkv[0] * HEAD_DIM**-0.5
        weights = (q @ qkv[1].transpose(-2, -1)).softmax(dim=-1)
        out = (weights @ qkv[2]).transpose(1, 2).reshape(b, n, d)
        return self.proj(out)


class Mlp(nn.Module):
    """Two-layer FFN with exact (erf) GELU, used by vits/vitb/vitl."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        """fc2(gelu(fc1(x)))."""
        return self.fc2(F.gelu(self.fc1(x)))


class SwiGLUFFN(nn.Module):
    """Gated FFN of vitg: w12 produces (x1, x2), output w3(silu(x1) * x2)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.w12 = nn.Linear(dim, 2 * hidden)
        self.w3 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        """Gate the second half of w12's output with silu of the first half."""
        x1, x2 = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(x1) * x2)


class LayerScale(nn.Module):
    """Learned per-channel multiplier applied to a residual branch."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        """Scale channels by gamma."""
        return x * self.gamma


class Block(nn.Module):
    """Pre-norm transformer block with LayerScale on both residual branches (no dropout, no drop path)."""

    def __init__(self, dim: int, ffn: str) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = Attention(dim)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        if ffn == "mlp":
            self.mlp: nn.Module = Mlp(dim, 4 * dim)
        else:
            self.mlp = SwiGLUFFN(dim, ((int(4 * dim * 2 / 3) + 7) // 8) * 8)
        self.ls2 = LayerScale(dim)

    def forward(self, x: Tensor) -> Tensor:
        """Attention then FFN residual updates."""
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class DinoV2(nn.Module):
    """DINOv2 ViT with patch 14, 518px training grid (37x37), class token, no register tokens."""

    def __init__(self, encoder: str) -> None:
        super().__init__()
        cfg = ENCODERS[encoder]
        dim = cfg["dim"]
        self.embed_dim = dim
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + 37 * 37, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, dim))
        self.patch_embed = PatchEmbed(dim)
        self.blocks = nn.ModuleList([Block(dim, cfg["ffn"]) for _ in range(cfg["depth"])])
        self.norm = nn.LayerNorm(dim, eps=LN_EPS)

    def prepare_tokens(self, x: Tensor) -> Tensor:
        """Embed patches, prepend the class token and add the (resampled) positional embedding."""
        h, w = x.shape[-2:]
        if h % PATCH or w % PATCH:
            raise ValueError(f"input {h}x{w} is not a multiple of {PATCH}")
        tokens = self.patch_embed(x)
        tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        return tokens + interpolate_pos_embed(self.pos_embed, h // PATCH, w // PATCH)

    def get_intermediate_layers(self, x: Tensor, layer_ids: Sequence[int]) -> list[Tensor]:
        """Final-normed patch tokens (B, gh*gw, D) taken after each listed block (class token dropped)."""
        tokens = self.prepare_tokens(x)
        taken = []
        for i, blk in enumerate(self.blocks):
            tokens = blk(tokens)
            if i in layer_ids:
                taken.append(self.norm(tokens)[:, 1:])
        if len(taken) != len(layer_ids):
            raise ValueError(f"layer ids {list(layer_ids)} not all below depth {len(self.blocks)}")
        return taken


# ----------------------------------------------------------------------------------------------------------
# DPT head and recurrent layers
# ----------------------------------------------------------------------------------------------------------


class ResidualConvUnit(nn.Module):
    """conv2(relu(conv1(relu(x)))) + x with 3x3 convs (the skip uses the un-activated x)."""

    def __init__(self, f: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(f, f, 3, padding=1)
        self.conv2 = nn.Conv2d(f, f, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        """Residual refinement."""
        return self.conv2(F.relu(self.conv1(F.relu(x)))) + x


class FeatureFusionBlock(nn.Module):
    """DPT fusion: add the refined skip, refine, bilinear (align_corners=True) upsample, then 1x1 out_conv."""

    def __init__(self, f: int) -> None:
        super().__init__()
        self.out_conv = nn.Conv2d(f, f, 1)
        self.resConfUnit1 = ResidualConvUnit(f)
        self.resConfUnit2 = ResidualConvUnit(f)

    def forward(self, x: Tensor, skip: Tensor | None = None, size: Sequence[int] | None = None) -> Tensor:
        """Fuse, then resize to `size` (or x2 when None)."""
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        if size is None:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        else:
            x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)
        return self.out_conv(x)


class Scratch(nn.Module):
    """Container holding the DPT 'scratch' layers under their original attribute names."""

    def __init__(self, out_channels: Sequence[int], f: int) -> None:
        super().__init__()
        self.layer1_rn = nn.Conv2d(out_channels[0], f, 3, padding=1, bias=False)
        self.layer2_rn = nn.Conv2d(out_channels[1], f, 3, padding=1, bias=False)
        self.layer3_rn = nn.Conv2d(out_channels[2], f, 3, padding=1, bias=False)
        self.layer4_rn = nn.Conv2d(out_channels[3], f, 3, padding=1, bias=False)
        self.refinenet1 = FeatureFusionBlock(f)
        self.refinenet2 = FeatureFusionBlock(f)
        self.refinenet3 = FeatureFusionBlock(f)
        self.refinenet4 = FeatureFusionBlock(f)
        self.output_conv1 = nn.Conv2d(f, f // 2, 3, padding=1)
        self.output_conv2 = nn.Sequential(
            nn.Conv2d(f // 2, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 1, 1),
        )


class ConvLayer(nn.Module):
    """Conv2d(f, f, 3, stride 1, padding 0) + ReLU: shrinks each side by one pixel."""

    def __init__(self, f: int) -> None:
        super().__init__()
        self.conv2d = nn.Conv2d(f, f, 3, stride=1, padding=0)

    def forward(self, x: Tensor) -> Tensor:
        """relu(conv(x))."""
        return torch.relu(self.conv2d(x))


class ConvLSTM(nn.Module):
    """ConvLSTM cell: one 3x3 'Gates' conv on [x, h] split into i, f, o, g."""

    def __init__(self, f: int) -> None:
        super().__init__()
        self.Gates = nn.Conv2d(2 * f, 4 * f, 3, padding=1)

    def forward(self, x: Tensor, prev_state: LSTMState | None) -> LSTMState:
        """Return the new (h, c); a None state means zeros."""
        if prev_state is None:
            zeros = x.new_zeros(x.shape)
            prev_state = (zeros, zeros)
        h_prev, c_prev = prev_state
        i, f, o, g = self.Gates(torch.cat([x, h_prev], dim=1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c_prev + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


class ConvGRU(nn.Module):
    """ConvGRU cell with separate 3x3 reset/update/candidate convs on concatenated [x, h]."""

    def __init__(self, f: int) -> None:
        super().__init__()
        self.reset_gate = nn.Conv2d(2 * f, f, 3, padding=1)
        self.update_gate = nn.Conv2d(2 * f, f, 3, padding=1)
        self.out_gate = nn.Conv2d(2 * f, f, 3, padding=1)

    def forward(self, x: Tensor, prev_state: Tensor | None) -> Tensor:
        """Return the new hidden state; a None state means zeros."""
        h = x.new_zeros(x.shape) if prev_state is None else prev_state
        xh = torch.cat([x, h], dim=1)
        r = torch.sigmoid(self.reset_gate(xh))
        u = torch.sigmoid(self.update_gate(xh))
        n = torch.tanh(self.out_gate(torch.cat([x, h * r], dim=1)))
        return h * (1 - u) + n * u


class RecurrentConvLayer(nn.Module):
    """Padding-0 ConvLayer followed by a ConvLSTM or ConvGRU cell; outputs (hidden map, state)."""

    def __init__(self, f: int, recurrent_block_type: str) -> None:
        super().__init__()
        self.conv = ConvLayer(f)
        if recurrent_block_type == "convlstm":
            self.recurrent_block: nn.Module = ConvLSTM(f)
        elif recurrent_block_type == "convgru":
            self.recurrent_block = ConvGRU(f)
        else:
            raise ValueError(f"unknown recurrent_block_type {recurrent_block_type!r}")

    def forward(self, x: Tensor, prev_state: State | None) -> tuple[Tensor, State]:
        """Shrink by the conv, then update the recurrent state."""
        state = self.recurrent_block(self.conv(x), prev_state)
        return (state[0] if isinstance(state, tuple) else state), state


class DPTHead(nn.Module):
    """DPT depth head (DAE or official flavour), optionally with the four RecDAv2 recurrent layers."""

    def __init__(
        self,
        in_dim: int,
        features: int,
        out_channels: Sequence[int],
        activation: str = "relu",
        flavour: str = "dae",
        recurrent_block_type: str | None = None,
    ) -> None:
        super().__init__()
        if activation not in ("relu", "sigmoid", "softplus"):
            raise ValueError(f"unknown activation {activation!r}")
        self.activation = activation
        self.flavour = flavour
        self.projects = nn.ModuleList([nn.Conv2d(in_dim, oc, 1) for oc in out_channels])
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(out_channels[0], out_channels[0], kernel_size=4, stride=4),
                nn.ConvTranspose2d(out_channels[1], out_channels[1], kernel_size=2, stride=2),
                nn.Identity(),
                nn.Conv2d(out_channels[3], out_channels[3], 3, stride=2, padding=1),
            ]
        )
        self.scratch = Scratch(out_channels, features)
        self.recurrent = recurrent_block_type is not None
        if recurrent_block_type is not None:
            self.gru_layer_1 = RecurrentConvLayer(features, recurrent_block_type)
            self.gru_layer_2 = RecurrentConvLayer(features, recurrent_block_type)
            self.gru_layer_3 = RecurrentConvLayer(features, recurrent_block_type)
            self.gru_layer_4 = RecurrentConvLayer(features, recurrent_block_type)

    def _final_activation(self, x: Tensor) -> Tensor:
        """Output non-linearity: ReLU for the official model, the configured one for DAE."""
        if self.activation == "sigmoid":
            return torch.sigmoid(x)
        if self.activation == "softplus":
            return F.softplus(x)
        return F.relu(x)

    def forward(
        self, tokens: Sequence[Tensor], gh: int, gw: int, prev_states: States | None = None
    ) -> tuple[Tensor, Tensor, States | None]:
        """Return (depth (B,1,14gh,14gw), full_features, new states or None when not recurrent)."""
        maps = []
        for i, t in enumerate(tokens):
            x = t.transpose(1, 2).reshape(t.shape[0], t.shape[-1], gh, gw)
            maps.append(self.resize_layers[i](self.projects[i](x)))
        s = self.scratch
        l1, l2 = s.layer1_rn(maps[0]), s.layer2_rn(maps[1])
        l3, l4 = s.layer3_rn(maps[2]), s.layer4_rn(maps[3])
        new_states = None
        if self.recurrent:
            p4, p3, p2, p1 = (None,) * 4 if prev_states is None else prev_states
            l4, n4 = self.gru_layer_4(l4, p4)
            l3, n3 = self.gru_layer_3(l3, p3)
            l2, n2 = self.gru_layer_2(l2, p2)
            l1, n1 = self.gru_layer_1(l1, p1)
            new_states = (n4, n3, n2, n1)
        path = s.refinenet4(l4, size=l3.shape[2:])
        path = s.refinenet3(path, l3, size=l2.shape[2:])
        path = s.refinenet2(path, l2, size=l1.shape[2:])
        path = s.refinenet1(path, l1)
        full_features = F.interpolate(
            s.output_conv1(path),
            (PATCH * gh, PATCH * gw),
            mode="bilinear",
            align_corners=self.flavour == "official",
        )
        depth = self._final_activation(s.output_conv2(full_features))
        return depth, full_features, new_states


# ----------------------------------------------------------------------------------------------------------
# Full model
# ----------------------------------------------------------------------------------------------------------


class DepthAnythingV2(nn.Module):
    """DAv2 as used by DAE (flavour 'dae', optionally recurrent = RecDAv2) or the official DAv2 teacher."""

    def __init__(
        self,
        encoder: str,
        activation: str = "relu",
        inv_prediction: bool = False,
        scale_factor: float = 1.0,
        input_channels: int = 3,
        flavour: str = "dae",
        recurrent_block_type: str | None = None,
    ) -> None:
        super().__init__()
        if flavour not in ("dae", "official"):
            raise ValueError(f"unknown flavour {flavour!r}")
        if flavour == "official" and (
            activation != "relu"
            or inv_prediction
            or scale_factor != 1.0
            or input_channels != 3
            or recurrent_block_type is not None
        ):
            raise ValueError("official DAv2 takes no activation/inversion/scale/input_channels/recurrence")
        cfg = ENCODERS[encoder]
        self.encoder = encoder
        self.flavour = flavour
        self.activation = activation
        self.inv_prediction = inv_prediction
        self.scale_factor = scale_factor
        self.layer_ids = cfg["layers"]
        if input_channels != 3:
            self.input_mapping: nn.Module = nn.Sequential(
                nn.Conv2d(input_channels, 16, 3, padding=1),
                nn.InstanceNorm2d(16),
                nn.ReLU(),
                nn.Conv2d(16, 3, 1),
                nn.InstanceNorm2d(3),
                nn.ReLU(),
            )
        else:
            self.input_mapping = nn.Identity()
        self.pretrained = DinoV2(encoder)
        self.depth_head = DPTHead(
            cfg["dim"], cfg["features"], cfg["out_channels"], activation, flavour, recurrent_block_type
        )

    @property
    def recurrent(self) -> bool:
        """Whether this is RecDAv2 (forward takes and returns states)."""
        return self.depth_head.recurrent

    def forward(self, x: Tensor, prev_states: States | None = None) -> Tensor | tuple[Tensor, States]:
        """Depth (B,1,14gh,14gw) for a network-sized input; also the new states when recurrent."""
        x = self.input_mapping(x)
        gh, gw = x.shape[-2] // PATCH, x.shape[-1] // PATCH
        tokens = self.pretrained.get_intermediate_layers(x, self.layer_ids)
        depth, _, new_states = self.depth_head(tokens, gh, gw, prev_states)
        if self.inv_prediction:
            if self.activation == "relu":
                depth = 1.0 / (depth + 1e-6)
            elif self.activation == "sigmoid":
                depth = 1.0 - depth
        depth = depth * self.scale_factor
        if new_states is None:
            return depth
        return depth, new_states


# ----------------------------------------------------------------------------------------------------------
# Pre/post-processing (SPEC 5)
# ----------------------------------------------------------------------------------------------------------


def _multiple_of_14(x: float, min_val: int) -> int:
    """Round to a multiple of 14 half-to-even (np.round), falling back to ceil when below min_val."""
    y = int(np.round(x / PATCH) * PATCH)
    if y < min_val:
        y = int(np.ceil(x / PATCH) * PATCH)
    return y


def target_size(h: int, w: int, width: int = 518, height: int = 518) -> tuple[int, int]:
    """Network input (new_h, new_w): aspect kept, >= (height, width), multiples of 14 ('lower_bound')."""
    scale_h = height / h
    scale_w = width / w
    scale = scale_w if scale_w > scale_h else scale_h
    return _multiple_of_14(scale * h, height), _multiple_of_14(scale * w, width)


def preprocess(x: Tensor, width: int = 518, height: int = 518) -> Tensor:
    """Bicubic (align_corners=False) resize of (B,C,h,w) to target_size; ImageNet-normalise channels 0..2."""
    new_h, new_w = target_size(x.shape[-2], x.shape[-1], width, height)
    x = F.interpolate(x, (new_h, new_w), mode="bicubic", align_corners=False)
    stats = zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)
    normed = [(x[:, c : c + 1] - m) / s for c, (m, s) in enumerate(stats)]
    return torch.cat(normed + [x[:, 3:]], dim=1)


def infer(
    model: DepthAnythingV2,
    x: Tensor,
    width: int = 518,
    height: int = 518,
    prev_states: States | None = None,
) -> Tensor | tuple[Tensor, States]:
    """Preprocess, run the model and resize depth back to (h, w); also the new states when recurrent."""
    h, w = x.shape[-2:]
    out = model(preprocess(x, width, height), prev_states)
    depth, states = out if model.recurrent else (out, None)
    depth = F.interpolate(depth, (h, w), mode="bilinear", align_corners=model.flavour == "official")
    if states is None:
        return depth
    return depth, states


# ----------------------------------------------------------------------------------------------------------
# Deterministic random weights
# ----------------------------------------------------------------------------------------------------------


@torch.no_grad()
def randomize_parameters(module: nn.Module, seed: int) -> None:
    """Fill every parameter with seeded values whose scale keeps activations O(1) through the network."""
    gen = torch.Generator().manual_seed(seed)

    def normal(p: Tensor, std: float, mean: float = 0.0) -> None:
        p.copy_(torch.randn(p.shape, generator=gen) * std + mean)

    for name, mod in module.named_modules():
        for pname, p in mod.named_parameters(recurse=False):
            if isinstance(mod, nn.LayerNorm):
                normal(p, 0.1, 1.0 if pname == "weight" else 0.0)
            elif isinstance(mod, LayerScale):
                p.copy_(0.1 + 0.9 * torch.rand(p.shape, generator=gen))
            elif isinstance(mod, DinoV2):
                normal(p, 0.5)
            elif pname == "bias":
                # The last conv gets a positive offset so that a final ReLU keeps most pixels non-zero.
                normal(p, 0.1, 1.0 if name.endswith("output_conv2.2") else 0.0)
            elif isinstance(mod, nn.ConvTranspose2d):
                normal(p, 1.0 / math.sqrt(p.shape[0]))
            else:
                normal(p, 1.0 / math.sqrt(p[0].numel()))


def make_model(kind: str, encoder: str, seed: int, **kwargs) -> DepthAnythingV2:
    """Build 'dav2', 'recdav2' (ConvLSTM by default) or 'official' with seeded weights, in eval mode."""
    if kind == "recdav2":
        kwargs.setdefault("recurrent_block_type", "convlstm")
    elif kind == "official":
        kwargs["flavour"] = "official"
    elif kind != "dav2":
        raise ValueError(f"unknown kind {kind!r}")
    with torch.device("meta"):
        model = DepthAnythingV2(encoder, **kwargs)
    model.to_empty(device="cpu")
    randomize_parameters(model, seed)
    return model.eval()


# ----- Losses of the training step (bench/train.py's PyTorch step; tests/test_losses.py's reference) -----

def silog_loss(p: Tensor, t: Tensor, m: Tensor, lambd: float = 0.5, logs: bool = True) -> Tensor:
    """SiLog over the mask (of log depth when logs, else of the values as they are): the loss term of the step."""
    a, b = (torch.log(t[m] + 1e-6), torch.log(p[m] + 1e-6)) if logs else (t[m], p[m])
    keep = ~(torch.isinf(a) | torch.isinf(b))
    d = a[keep] - b[keep]
    return torch.sqrt(torch.var(d) + lambd * d.mean() ** 2)


def multiscale_gradient_loss(p: Tensor, t: Tensor, m: Tensor, start: int = 1, num: int = 4) -> Tensor:
    """Sobel gradients of the residual on `num` average-pooled scales (2^s * start), mean |g| over valid pixels."""
    sobel = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=p.dtype) / 8
    kernel = torch.stack([sobel, sobel.T])[:, None]
    diff = (p - t)[:, None]
    total = 0.0
    for s in range(num):
        k = start * 2**s
        pooled = F.avg_pool2d(diff, k, k)
        g = F.conv2d(F.pad(pooled, (1, 1, 1, 1), mode="replicate"), kernel)[:, :, None]  # (B, 1, 2, h, w)
        g = g.transpose(1, 2).reshape(p.shape[0], 1, 2, *pooled.shape[-2:])
        mask = F.interpolate(m[:, None].to(p.dtype), pooled.shape[-2:], mode="nearest").bool()[:, :, None]
        valid = ~torch.isnan(g) & mask
        total = total + g[valid].abs().sum() / valid.sum() * p.shape[0] * 2
    return total / num
