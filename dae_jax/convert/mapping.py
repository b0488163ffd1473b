"""One table between PyTorch state_dict keys and Flax parameter paths, used in both directions.

Each row pairs a PyTorch module template with a Flax module template and a layer kind; the kind says how the
leaf names and layouts change (Linear (out, in) <-> Dense (in, out); Conv2d OIHW <-> HWIO; ConvTranspose2d
(in, out, kh, kw) <-> (kh, kw, in, out); LayerNorm weight <-> scale). Layout changes are transposes, so a round
trip is bit-exact, and a new layer needs one new row.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

import numpy as np

DENSE, CONV, CONVT, NORM, PARAM = "dense", "conv", "convT", "norm", "param"

# (PyTorch template, Flax template, kind). `{i}` matches a number; `{n:a|b}` matches one of the alternatives.
RULES: list[tuple[str, str, str]] = [
    ("input_mapping.{i:0|3}", "input_mapping_{i}", CONV),
    ("pretrained.{n:cls_token|pos_embed|mask_token}", "pretrained/{n}", PARAM),
    ("pretrained.patch_embed.proj", "pretrained/patch_embed/proj", CONV),
    ("pretrained.blocks.{i}.{n:norm1|norm2}", "pretrained/blocks_{i}/{n}", NORM),
    ("pretrained.blocks.{i}.attn.{n:qkv|proj}", "pretrained/blocks_{i}/attn/{n}", DENSE),
    ("pretrained.blocks.{i}.{n:ls1|ls2}.gamma", "pretrained/blocks_{i}/{n}/gamma", PARAM),
    ("pretrained.blocks.{i}.mlp.{n:fc1|fc2|w12|w3}", "pretrained/blocks_{i}/mlp/{n}", DENSE),
    ("pretrained.norm", "pretrained/norm", NORM),
    ("depth_head.projects.{i}", "depth_head/projects_{i}", CONV),
    ("depth_head.resize_layers.{i:0|1}", "depth_head/resize_layers_{i}", CONVT),
    ("depth_head.resize_layers.3", "depth_head/resize_layers_3", CONV),
    ("depth_head.scratch.{n:layer[1-4]_rn|output_conv1}", "depth_head/{n}", CONV),
    ("depth_head.scratch.output_conv2.{i:0|2}", "depth_head/output_conv2_{i}", CONV),
    ("depth_head.scratch.refinenet{i}.out_conv", "depth_head/refinenet{i}/out_conv", CONV),
    ("depth_head.scratch.refinenet{i}.resConfUnit{j}.conv{k}", "depth_head/refinenet{i}/resConfUnit{j}/conv{k}", CONV),
    ("depth_head.gru_layer_{i}.conv.conv2d", "depth_head/gru_layer_{i}/conv/conv2d", CONV),
    (
        "depth_head.gru_layer_{i}.recurrent_block.{n:Gates|reset_gate|update_gate|out_gate}",
        "depth_head/gru_layer_{i}/recurrent_block/{n}",
        CONV,
    ),
]

# PyTorch leaf name -> Flax leaf name, per kind (PARAM rows name the whole tensor).
_LEAVES = {
    DENSE: {"weight": "kernel", "bias": "bias"},
    CONV: {"weight": "kernel", "bias": "bias"},
    CONVT: {"weight": "kernel", "bias": "bias"},
    NORM: {"weight": "scale", "bias": "bias"},
}

# Layout change PyTorch -> Flax of each kind's weight, and back. Biases and PARAM tensors are unchanged.
_TO_FLAX = {DENSE: (1, 0), CONV: (2, 3, 1, 0), CONVT: (2, 3, 0, 1)}
_TO_TORCH = {DENSE: (1, 0), CONV: (3, 2, 0, 1), CONVT: (2, 3, 0, 1)}

# Registration order of the PyTorch modules, so exported state_dicts list keys as the official models do.
_ORDER = (
    "input_mapping pretrained cls_token pos_embed mask_token patch_embed blocks norm1 attn qkv proj ls1 norm2 mlp "
    "fc1 fc2 w12 w3 ls2 gamma norm depth_head projects resize_layers scratch layer1_rn layer2_rn layer3_rn "
    "layer4_rn refinenet1 refinenet2 refinenet3 refinenet4 out_conv resConfUnit1 resConfUnit2 conv1 conv2 "
    "output_conv1 output_conv2 gru_layer_1 gru_layer_2 gru_layer_3 gru_layer_4 conv conv2d recurrent_block "
    "Gates reset_gate update_gate out_gate weight bias"
).split()
_RANK = {name: i for i, name in enumerate(_ORDER)}


_MAX_LISTED = 30  # keys listed per category in an error message


class ConversionError(ValueError):
    """A state_dict or parameter tree that does not match the model it should fill."""


@dataclasses.dataclass(frozen=True)
class _Rule:
    torch_re: re.Pattern
    flax_re: re.Pattern
    torch_fmt: str
    flax_fmt: str
    kind: str


def _compile(template: str, groups: dict[str, str]) -> tuple[re.Pattern, str]:
    """Template -> (anchored regex with named groups, str.format pattern); `groups` collects group patterns."""
    pattern, fmt, pos = "", "", 0
    for m in re.finditer(r"\{(\w+)(?::([^}]*))?\}", template):
        name = m.group(1)
        groups.setdefault(name, m.group(2) or "[0-9]+")
        pattern += re.escape(template[pos : m.start()]) + f"(?P<{name}>{groups[name]})"
        fmt += template[pos : m.start()] + "{" + name + "}"
        pos = m.end()
    return re.compile(pattern + re.escape(template[pos:]) + r"\Z"), fmt + template[pos:]


def _build_rules() -> list[_Rule]:
    rules = []
    for torch_t, flax_t, kind in RULES:
        groups: dict[str, str] = {}  # the PyTorch template defines each group's pattern; the Flax one reuses it
        torch_re, torch_fmt = _compile(torch_t, groups)
        flax_re, flax_fmt = _compile(flax_t, groups)
        rules.append(_Rule(torch_re, flax_re, torch_fmt, flax_fmt, kind))
    return rules


_RULES = _build_rules()


def torch_key_to_flax(key: str) -> tuple[str, str]:
    """PyTorch key -> (Flax path 'a/b/leaf', kind); raises ConversionError for a key no rule knows."""
    for rule in _RULES:
        if rule.kind == PARAM:
            m = rule.torch_re.match(key)
            if m:
                return rule.flax_fmt.format(**m.groupdict()), PARAM
            continue
        module, _, leaf = key.rpartition(".")
        m = rule.torch_re.match(module)
        if m and leaf in _LEAVES[rule.kind]:
            return f"{rule.flax_fmt.format(**m.groupdict())}/{_LEAVES[rule.kind][leaf]}", rule.kind
    raise ConversionError(f"no conversion rule for PyTorch key {key!r}")


def flax_path_to_torch(path: str) -> tuple[str, str]:
    """Flax path 'a/b/leaf' -> (PyTorch key, kind); the inverse of `torch_key_to_flax`."""
    for rule in _RULES:
        if rule.kind == PARAM:
            m = rule.flax_re.match(path)
            if m:
                return rule.torch_fmt.format(**m.groupdict()), PARAM
            continue
        module, _, leaf = path.rpartition("/")
        m = rule.flax_re.match(module)
        inverse = {v: k for k, v in _LEAVES[rule.kind].items()}
        if m and leaf in inverse:
            return f"{rule.torch_fmt.format(**m.groupdict())}.{inverse[leaf]}", rule.kind
    raise ConversionError(f"no conversion rule for Flax parameter {path!r}")


def _to_flax_layout(key: str, kind: str, array: np.ndarray) -> np.ndarray:
    if kind in _TO_FLAX and key.endswith(".weight"):
        return np.ascontiguousarray(np.transpose(array, _TO_FLAX[kind]))
    return array


def _to_torch_layout(path: str, kind: str, array: np.ndarray) -> np.ndarray:
    if kind in _TO_TORCH and path.endswith("/kernel"):
        return np.ascontiguousarray(np.transpose(array, _TO_TORCH[kind]))
    return array


def torch_sort_key(key: str) -> tuple[int, ...]:
    """Order PyTorch keys as the official modules register them (numbers numerically)."""
    return tuple(int(part) if part.isdigit() else _RANK.get(part, len(_RANK)) for part in key.split("."))


def flatten(tree: Mapping, prefix: str = "") -> dict[str, object]:
    """Nested dict -> {'a/b/leaf': leaf}."""
    flat = {}
    for name, value in tree.items():
        path = f"{prefix}{name}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, path + "/"))
        else:
            flat[path] = value
    return flat


def unflatten(flat: Mapping[str, object]) -> dict:
    """{'a/b/leaf': leaf} -> nested dict."""
    tree: dict = {}
    for path, value in flat.items():
        node = tree
        *parents, leaf = path.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return tree


def check_state_dict(state_dict: Mapping[str, np.ndarray], expected: Mapping[str, tuple[int, ...]], what: str) -> None:
    """Raise a ConversionError listing every missing, unexpected and mis-shaped key of `state_dict`."""
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    misshaped = [
        f"{k}: got {tuple(np.shape(state_dict[k]))}, expected {tuple(expected[k])}"
        for k in expected
        if k in state_dict and tuple(np.shape(state_dict[k])) != tuple(expected[k])
    ]
    if missing or unexpected or misshaped:
        lines = [f"{what} does not match the model:"]
        for title, items in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", misshaped)):
            if items:
                shown = sorted(items, key=torch_sort_key)[:_MAX_LISTED]
                more = f", ... and {len(items) - len(shown)} more" if len(items) > len(shown) else ""
                lines.append(f"  {title} ({len(items)}): " + ", ".join(shown) + more)
        raise ConversionError("\n".join(lines))


def torch_to_flax(state_dict: Mapping[str, np.ndarray]) -> dict:
    """PyTorch state_dict (NumPy arrays) -> nested Flax params dict (NumPy arrays)."""
    flat = {}
    for key, array in state_dict.items():
        path, kind = torch_key_to_flax(key)
        flat[path] = _to_flax_layout(key, kind, np.asarray(array))
    return unflatten(flat)


def flax_shapes_to_torch(shapes: Mapping) -> dict[str, tuple[int, ...]]:
    """Nested Flax shapes (anything with `.shape`) -> {PyTorch key: shape} in the official order, no data."""
    out = {}
    for path, leaf in flatten(shapes).items():
        key, kind = flax_path_to_torch(path)
        shape = tuple(leaf.shape)
        if kind in _TO_TORCH and path.endswith("/kernel"):
            shape = tuple(shape[i] for i in _TO_TORCH[kind])
        out[key] = shape
    return {k: out[k] for k in sorted(out, key=torch_sort_key)}


def flax_to_torch(params: Mapping) -> dict[str, np.ndarray]:
    """Nested Flax params -> PyTorch state_dict (NumPy arrays) in the official key order."""
    out = {}
    for path, array in flatten(params).items():
        key, kind = flax_path_to_torch(path)
        out[key] = _to_torch_layout(path, kind, np.asarray(array))
    return {k: out[k] for k in sorted(out, key=torch_sort_key)}
