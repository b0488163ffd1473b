"""Weight conversion: the torch-free .pth reader, bit-exact round trips, validation errors and the CLI."""

from __future__ import annotations

import collections
import inspect
import json

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from dae_jax.convert import (  # noqa: E402
    PARITY_LIMIT,
    ConversionError,
    expected_torch_shapes,
    export_torch_checkpoint,
    flax_to_torch,
    infer_model_config,
    load_flax_params,
    load_torch_checkpoint,
    save_flax_params,
    torch_to_flax,
    verify_torch_export,
)
from dae_jax.convert import torch_reference as ref  # noqa: E402
from dae_jax.convert.__main__ import main as convert_cli  # noqa: E402
from dae_jax.convert.torch_io import read_state_dict  # noqa: E402
from dae_jax.models import model_from_config, param_shapes  # noqa: E402
from dae_jax.train.state import init_params  # noqa: E402

# The argument names of the official get_depth_anything_v2 / get_rec_depth_anything_v2 loaders, which the
# exported `config['model']` is splatted into by the official test script (model_type is popped first).
OFFICIAL_DAV2_ARGS = {
    "checkpoint_path", "encoder", "activation", "scale_factor", "inv_prediction", "input_size_width",
    "input_size_height", "freeze_encoder", "input_channels", "nopretrain", "_state_dict",
}
OFFICIAL_RECDAV2_ARGS = OFFICIAL_DAV2_ARGS | {"recurrent_block_type"}

VARIANTS = {
    "dav2": ("dav2", {}),
    "recdav2-convlstm": ("recdav2", {}),
    "recdav2-convgru": ("recdav2", {"recurrent_block_type": "convgru"}),
    "dav2-5ch": ("dav2", {"input_channels": 5}),
    "teacher": ("official", {}),
}


def torch_state(model: torch.nn.Module) -> collections.OrderedDict:
    return model.state_dict()


def assert_same_state(a: dict, b: dict) -> None:
    """Same keys in the same order, same dtypes, bit-identical values."""
    assert list(a) == list(b)
    for k in a:
        x, y = np.asarray(a[k]), np.asarray(b[k])
        assert x.dtype == y.dtype and x.shape == y.shape, k
        assert x.tobytes() == y.tobytes(), k


def test_reader_matches_torch_load(tmp_path):
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    sd = collections.OrderedDict(
        plain=torch.randn(3, 5),
        transposed=torch.randn(5, 3).t(),  # non-contiguous strides
        view=base[1:3, 2:5],  # an offset into a shared storage
        shared=base,
        half=torch.randn(4).half(),
        bf16=torch.randn(4).bfloat16(),
        ints=torch.arange(5),
        scalar=torch.tensor(2.5),
        param=torch.nn.Parameter(torch.ones(2, 2)),
    )
    config = {"model": {"encoder": "vits", "scale": 1.5, "flag": True, "none": None, "list": [1, 2]}}
    path = str(tmp_path / "ckpt.pth")
    torch.save({"state_dict": sd, "config": config}, path)
    got, got_config = read_state_dict(path)
    assert got_config == config
    assert list(got) == list(sd)
    for k, v in sd.items():
        expected = v.detach().float().numpy() if v.dtype == torch.bfloat16 else v.detach().numpy()
        np.testing.assert_array_equal(np.asarray(got[k], expected.dtype), expected)
        assert got[k].shape == tuple(v.shape)


def test_reader_accepts_plain_model_and_module_prefixed_dicts(tmp_path):
    sd = collections.OrderedDict(a=torch.ones(2), b=torch.zeros(3))
    for name, obj in [("plain", sd), ("model", {"model": sd}),
                      ("ddp", collections.OrderedDict((f"module.{k}", v) for k, v in sd.items()))]:
        path = str(tmp_path / f"{name}.pth")
        torch.save(obj, path)
        got, config = read_state_dict(path)
        assert list(got) == ["a", "b"] and config is None


def test_reader_refuses_arbitrary_objects_and_bad_files(tmp_path):
    path = str(tmp_path / "evil.pth")
    torch.save({"state_dict": {"a": torch.ones(1)}, "hook": collections.Counter("ab"), "f": inspect.signature}, path)
    with pytest.raises(ConversionError, match=r"evil\.pth.*(Counter|signature)"):
        read_state_dict(path)
    bad = tmp_path / "notzip.pth"
    bad.write_bytes(b"\x80\x02}q\x00.")
    with pytest.raises(ConversionError, match="notzip.pth: not a zip-format"):
        read_state_dict(str(bad))
    truncated = tmp_path / "truncated.pth"
    torch.save({"a": torch.ones(1000)}, str(truncated))
    truncated.write_bytes(truncated.read_bytes()[:300])
    with pytest.raises(ConversionError, match="truncated.pth"):
        read_state_dict(str(truncated))
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        read_state_dict(str(tmp_path / "missing.pth"))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_torch_flax_torch_round_trip_is_bit_exact(variant, tmp_path):
    kind, kwargs = VARIANTS[variant]
    tmodel = ref.make_model(kind, "vits", seed=7, **kwargs)
    sd = torch_state(tmodel)
    src = str(tmp_path / "in.pth")
    torch.save({"state_dict": sd, "config": {"model": {"activation": "softplus"}}} if kind != "official" else sd, src)

    params, config, _ = load_torch_checkpoint(src, {"official": True} if kind == "official" else None)
    shapes = param_shapes(model_from_config(config))
    assert jax.tree.map(lambda s: s.shape, shapes) == jax.tree.map(np.shape, params)
    for suffix in (".pth", ".safetensors"):
        out = str(tmp_path / f"out{suffix}")
        export_torch_checkpoint(out, params, config, plain=kind == "official")
        back, back_config = read_state_dict(out)
        assert_same_state({k: v.numpy() for k, v in sd.items()}, back)
        if suffix == ".pth":
            loaded = torch.load(out, map_location="cpu", weights_only=True)  # what the official scripts do
            state = loaded if kind == "official" else loaded["state_dict"]
            fresh = ref.make_model(kind, "vits", seed=8, **kwargs)
            fresh.load_state_dict(state, strict=True)
            assert_same_state(sd, fresh.state_dict())
        if kind == "official":
            assert back_config is None
        else:
            model_block = back_config["model"]
            assert model_block["activation"] == "softplus"
            assert set(model_block) - {"model_type"} <= (
                OFFICIAL_RECDAV2_ARGS if model_block["model_type"] == "RecDAv2" else OFFICIAL_DAV2_ARGS
            )


@pytest.mark.parametrize("encoder", ["vitb", pytest.param("vitl", marks=pytest.mark.slow),
                                     pytest.param("vitg", marks=pytest.mark.slow)])
@pytest.mark.parametrize("model_type", ["DAv2", "RecDAv2"])
def test_large_encoders_round_trip(encoder, model_type, tmp_path):
    """Shape-only random weights for the big encoders: torch layout -> Flax -> torch, bit-exact, and the keys
    match the PyTorch reference model's (built on the meta device, so nothing is allocated)."""
    config = {"model_type": model_type, "encoder": encoder}
    shapes = expected_torch_shapes(config)
    with torch.device("meta"):
        tmodel = ref.DepthAnythingV2(encoder, recurrent_block_type="convlstm" if model_type == "RecDAv2" else None)
    assert {k: tuple(v.shape) for k, v in tmodel.state_dict().items()} == shapes
    assert list(tmodel.state_dict()) == list(shapes)
    rng = np.random.default_rng(0)
    sd = {k: rng.standard_normal(s, dtype=np.float32) for k, s in shapes.items()}
    params = torch_to_flax(sd)
    assert_same_state(sd, flax_to_torch(params))
    assert infer_model_config(sd)["encoder"] == encoder


@pytest.fixture(scope="module")
def vits_checkpoint(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("ckpt") / "dav2_vits.pth")
    sd = torch_state(ref.make_model("recdav2", "vits", seed=9))
    torch.save(sd, path)
    return path, sd


def test_missing_extra_and_misshaped_keys_are_all_listed(vits_checkpoint, tmp_path):
    _, sd = vits_checkpoint
    bad = collections.OrderedDict(sd)
    del bad["depth_head.scratch.refinenet2.out_conv.bias"]
    bad["depth_head.extra_layer.weight"] = torch.ones(3)
    bad["pretrained.blocks.3.attn.qkv.weight"] = torch.ones(1152, 383)
    path = str(tmp_path / "bad.pth")
    torch.save(bad, path)
    with pytest.raises(ConversionError) as info:
        load_torch_checkpoint(path)
    message = str(info.value)
    assert "bad.pth does not match the model" in message
    assert "missing keys (1): depth_head.scratch.refinenet2.out_conv.bias" in message
    assert "unexpected keys (1): depth_head.extra_layer.weight" in message
    assert "wrong shapes (1): pretrained.blocks.3.attn.qkv.weight: got (1152, 383), expected (1152, 384)" in message


def test_structure_is_inferred_and_config_conflicts_refused(vits_checkpoint, tmp_path):
    path, sd = vits_checkpoint
    _, config, _ = load_torch_checkpoint(path)
    assert (config["model_type"], config["encoder"], config["recurrent_block_type"]) == ("RecDAv2", "vits", "convlstm")
    conflicting = str(tmp_path / "conflict.pth")
    torch.save({"state_dict": sd, "config": {"model": {"encoder": "vitb"}}}, conflicting)
    with pytest.raises(ConversionError, match="config says encoder='vitb' but the weights are 'vits'"):
        load_torch_checkpoint(conflicting)
    no_vit = str(tmp_path / "nothing.pth")
    torch.save({"depth_head.x.weight": torch.ones(1)}, no_vit)
    with pytest.raises(ConversionError, match="pos_embed"):
        load_torch_checkpoint(no_vit)


def test_cli_round_trip_msgpack_and_orbax(vits_checkpoint, tmp_path, capsys):
    path, sd = vits_checkpoint
    for flax_out in (str(tmp_path / "params.msgpack"), str(tmp_path / "orbax_params")):
        assert convert_cli(["to-flax", path, flax_out]) == 0
        params, config, _ = load_flax_params(flax_out)
        assert config["model_type"] == "RecDAv2"
        out = str(tmp_path / "back.pth")
        assert convert_cli(["to-torch", flax_out, out, "--use_logdepth", "--clip_distance", "80"]) == 0
        loaded = torch.load(out, map_location="cpu", weights_only=True)
        assert loaded["config"]["trainer"] == {"use_logdepth": True, "use_scaleshift": False,
                                               "reg_factor": 3.70378, "clip_distance": 80.0}
        assert_same_state(sd, loaded["state_dict"])
    assert "wrote" in capsys.readouterr().out
    assert convert_cli(["to-flax", str(tmp_path / "nope.pth"), str(tmp_path / "x.msgpack")]) == 2
    assert "weights not found" in capsys.readouterr().err


@pytest.mark.parametrize("model_type", ["DAv2", "RecDAv2"])
def test_cli_verify_loads_the_export_into_the_reference(tmp_path, capsys, model_type):
    """to-torch --verify: the written file reproduces JAX in the PyTorch reference; a corrupted weight is caught."""
    config = {"model_type": model_type, "encoder": "tiny", "input_size_width": 70, "input_size_height": 70,
              "activation": "sigmoid", "inv_prediction": True}
    params = init_params(model_from_config(config), jax.random.PRNGKey(0))
    flax_path = str(tmp_path / "p.msgpack")
    save_flax_params(flax_path, params, config)
    frames = np.random.default_rng(0).uniform(size=(3, 50, 64, 3)).astype(np.float32)
    np.save(tmp_path / "frames.npy", frames)
    for out, extra in ((str(tmp_path / "m.pth"), []), (str(tmp_path / "m.safetensors"),
                                                        [f"--verify_input={tmp_path / 'frames.npy'}"])):
        assert convert_cli(["to-torch", flax_path, out, "--verify", *extra]) == 0
        assert "PyTorch reference vs JAX: max rel diff" in capsys.readouterr().out
    bad = jax.tree.map(lambda a: a, params)
    bad["depth_head"]["output_conv2_0"]["kernel"] = bad["depth_head"]["output_conv2_0"]["kernel"] + 0.3
    export_torch_checkpoint(str(tmp_path / "good.pth"), params, config)
    assert verify_torch_export(str(tmp_path / "good.pth"), bad, config) > 100 * PARITY_LIMIT


def test_load_flax_params_checks_the_tree(tmp_path):
    config = {"model_type": "DAv2", "encoder": "tiny"}
    params = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), param_shapes(model_from_config(config)))
    del params["depth_head"]["output_conv1"]
    path = str(tmp_path / "p.msgpack")
    save_flax_params(path, params, config)
    with pytest.raises(ConversionError, match="missing keys \\(2\\): depth_head/output_conv1/bias"):
        load_flax_params(path)
    (tmp_path / "junk.msgpack").write_bytes(b"\x81\xa1a\x01")
    with pytest.raises(ConversionError, match="junk.msgpack: expected 'params' and 'model_config'"):
        load_flax_params(str(tmp_path / "junk.msgpack"))
    assert json.loads(json.dumps(config)) == config
