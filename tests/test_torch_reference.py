"""Checks of dae_jax/convert/torch_reference.py: state_dict layout/counts, pos-embed, preprocessing sizes, shapes."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from dae_jax.convert.torch_reference import DepthAnythingV2, infer, interpolate_pos_embed, make_model, target_size

# shared/ sits beside the repository (in development and in CI).
KEYS_MD = Path(__file__).resolve().parents[2] / "shared" / "reference" / "state_dict_keys.md"
ROW = re.compile(r"^\| (\d+) \| `([^`]+)` \| \(([\d, ]*)\) \|$")

# (DAv2 tensors, DAv2 params, RecDAv2 tensors, RecDAv2 params), from state_dict_keys.md section 4.
COUNTS = {
    "vits": (239, 24_785_089, 255, 26_113_473),
    "vitb": (239, 97_470_785, 255, 102_781_761),
    "vitl": (407, 335_315_649, 423, 356_554_433),
    "vitg": (631, 1_258_132_225, 647, 1_305_915_649),
}


def layout(model: torch.nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    """Ordered (key, shape) pairs of a model's state_dict."""
    return [(k, tuple(v.shape)) for k, v in model.state_dict().items()]


def meta_model(encoder: str, **kwargs) -> DepthAnythingV2:
    """Build a model on the meta device (no memory, no init cost)."""
    with torch.device("meta"):
        return DepthAnythingV2(encoder, **kwargs)


def documented_layout() -> list[tuple[str, tuple[int, ...]]]:
    """The numbered (key, shape) rows of state_dict_keys.md sections 1-2, in order (RecDAv2-vits)."""
    if not KEYS_MD.exists():
        pytest.skip(f"{KEYS_MD} not available")
    rows = []
    for line in KEYS_MD.read_text().splitlines():
        m = ROW.match(line.strip())
        if m:
            shape = tuple(int(s) for s in m.group(3).replace(" ", "").split(",") if s)
            rows.append((int(m.group(1)), m.group(2), shape))
    assert [r[0] for r in rows] == list(range(len(rows)))
    return [(k, s) for _, k, s in rows]


def test_vits_layout_matches_documented_keys() -> None:
    """DAv2-vits = the first 239 documented rows; RecDAv2-vits = all 255, same order and shapes."""
    doc = documented_layout()
    assert len(doc) == 255
    assert layout(meta_model("vits")) == doc[:239]
    assert layout(meta_model("vits", recurrent_block_type="convlstm")) == doc


@pytest.mark.parametrize("encoder", list(COUNTS))
def test_tensor_and_parameter_counts(encoder: str) -> None:
    """Tensor and parameter counts per encoder, DAv2 and RecDAv2 (built on meta, nothing materialised)."""
    n_dav2, p_dav2, n_rec, p_rec = COUNTS[encoder]
    for kwargs, n, p in (({}, n_dav2, p_dav2), ({"recurrent_block_type": "convlstm"}, n_rec, p_rec)):
        sd = meta_model(encoder, **kwargs).state_dict()
        assert len(sd) == n
        assert sum(v.numel() for v in sd.values()) == p


def test_vitg_uses_swiglu_and_convgru_keys() -> None:
    """vitg blocks carry mlp.w12/w3; convgru swaps Gates for reset/update/out gates of shape (f, 2f, 3, 3)."""
    sd = dict(layout(meta_model("vitg", recurrent_block_type="convgru")))
    assert sd["pretrained.blocks.39.mlp.w12.weight"] == (8192, 1536)
    assert sd["pretrained.blocks.39.mlp.w3.weight"] == (1536, 4096)
    assert not any(".fc1." in k or "Gates" in k for k in sd)
    for gate in ("reset_gate", "update_gate", "out_gate"):
        assert sd[f"depth_head.gru_layer_4.recurrent_block.{gate}.weight"] == (384, 768, 3, 3)
        assert sd[f"depth_head.gru_layer_4.recurrent_block.{gate}.bias"] == (384,)


@pytest.mark.parametrize("encoder", ["vits", "vitl"])
def test_official_and_dae_share_layout(encoder: str) -> None:
    """The official teacher and the DAE DAv2 have identical keys, order and shapes."""
    official = layout(meta_model(encoder, flavour="official"))
    assert official == layout(meta_model(encoder, activation="softplus"))


def test_input_mapping_keys_prepended() -> None:
    """With input_channels != 3 the four input_mapping tensors come first."""
    keys = layout(meta_model("vits", input_channels=5))
    assert keys[:5] == [
        ("input_mapping.0.weight", (16, 5, 3, 3)),
        ("input_mapping.0.bias", (16,)),
        ("input_mapping.3.weight", (3, 16, 1, 1)),
        ("input_mapping.3.bias", (3,)),
        ("pretrained.cls_token", (1, 1, 384)),
    ]


def test_pos_embed_bypassed_at_518() -> None:
    """At the 37x37 grid (518x518 input) the stored embedding is returned unchanged."""
    pe = torch.randn(1, 1370, 8)
    assert interpolate_pos_embed(pe, 37, 37) is pe


def _torch_cubic_matrix(g: int, n: int = 37) -> np.ndarray:
    """(g, n) bicubic matrix with the scale-factor mapping, A = -0.75 and clamped taps of SPEC section 1."""

    def kernel(t: float) -> float:
        t, a = abs(t), -0.75
        if t <= 1:
            return ((a + 2) * t - (a + 3)) * t * t + 1
        return (((t - 5) * t + 8) * t - 4) * a if t < 2 else 0.0

    mat = np.zeros((g, n))
    for d in range(g):
        src = (d + 0.5) * n / (g + 0.1) - 0.5
        base = int(np.floor(src))
        for tap in range(base - 1, base + 3):
            mat[d, min(max(tap, 0), n - 1)] += kernel(src - tap)
    return mat


@pytest.mark.parametrize("gh,gw", [(19, 25), (37, 46), (10, 13), (37, 37 * 2)])
def test_pos_embed_matches_spec_formula(gh: int, gw: int) -> None:
    """Off 518x518 the grid equals separable scale-factor bicubic matrices up to float32 noise."""
    pe = torch.randn(1, 1370, 4, generator=torch.Generator().manual_seed(0))
    out = interpolate_pos_embed(pe, gh, gw)
    assert out.shape == (1, 1 + gh * gw, 4)
    assert torch.equal(out[:, 0], pe[:, 0])
    grid = pe[0, 1:].reshape(37, 37, 4).double().numpy()
    expected = np.einsum("hi,wj,ijc->hwc", _torch_cubic_matrix(gh), _torch_cubic_matrix(gw), grid)
    np.testing.assert_allclose(out[0, 1:].reshape(gh, gw, 4).numpy(), expected, rtol=0, atol=5e-5)


@pytest.mark.parametrize(
    "h,w,width,height,expected",
    [
        (260, 346, 350, 266, (266, 350)),
        (320, 640, 644, 322, (322, 644)),
        (320, 640, 350, 266, (266, 532)),
        (260, 346, 518, 518, (518, 686)),
        (480, 640, 518, 518, (518, 686)),
        (320, 640, 518, 518, (518, 1036)),
    ],
)
def test_target_size(h: int, w: int, width: int, height: int, expected: tuple[int, int]) -> None:
    """Network input sizes listed in SPEC section 5."""
    assert target_size(h, w, width, height) == expected


def test_recdav2_shapes_mvsec() -> None:
    """SPEC 4 shape table (MVSEC row): rn maps, shrunken gru maps, path1, states, output; states feed back."""
    model = make_model("recdav2", "vits", seed=0)
    head = model.depth_head
    seen: dict[str, tuple[int, int]] = {}

    def record(name: str):
        def hook(_mod, _inp, out):
            seen[name] = tuple((out[0] if isinstance(out, tuple) else out).shape[-2:])

        return hook

    for i in range(1, 5):
        getattr(head.scratch, f"layer{i}_rn").register_forward_hook(record(f"rn{i}"))
        getattr(head, f"gru_layer_{i}").register_forward_hook(record(f"gru{i}"))
    head.scratch.refinenet1.register_forward_hook(record("path1"))

    x = torch.rand(1, 3, 260, 346, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        depth, states = infer(model, x, width=350, height=266)
        depth2, _ = infer(model, x, width=350, height=266, prev_states=states)

    assert [seen[f"rn{i}"] for i in range(1, 5)] == [(76, 100), (38, 50), (19, 25), (10, 13)]
    assert [seen[f"gru{i}"] for i in range(1, 5)] == [(74, 98), (36, 48), (17, 23), (8, 11)]
    assert seen["path1"] == (148, 196)
    assert depth.shape == depth2.shape == (1, 1, 260, 346)
    for (h, c), size in zip(states, [(8, 11), (17, 23), (36, 48), (74, 98)], strict=True):
        assert h.shape == c.shape == (1, 64, *size)
    assert not torch.allclose(depth, depth2)


@pytest.mark.parametrize("kind,activation", [("dav2", "relu"), ("dav2", "sigmoid"), ("official", "relu")])
def test_random_weights_give_nontrivial_output(kind: str, activation: str) -> None:
    """make_model outputs are deterministic, finite, mostly non-zero after ReLU and not saturated."""
    kwargs = {} if kind == "official" else {"activation": activation}
    x = torch.rand(1, 3, 98, 126, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        d = make_model(kind, "vits", seed=3, **kwargs)(x)
        d_again = make_model(kind, "vits", seed=3, **kwargs)(x)
    assert d.shape == (1, 1, 98, 126)
    assert torch.equal(d, d_again)
    assert torch.isfinite(d).all()
    assert (d > 0).float().mean() > 0.9
    assert d.std() > 1e-2
    if activation == "sigmoid":
        assert d.max() < 0.999
