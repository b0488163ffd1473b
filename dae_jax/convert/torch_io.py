"""Read and write PyTorch checkpoints (.pth) and safetensors files as NumPy state_dicts.

`.pth` files are read without torch: the zip archive's pickle is loaded by a restricted unpickler that only
rebuilds tensors, storages, OrderedDicts and plain Python values, so a checkpoint cannot run code. Writing
`.pth` needs torch; `.safetensors` never does.
"""

from __future__ import annotations

import collections
import json
import os
import pickle
import zipfile
from collections.abc import Mapping
from typing import Any

import ml_dtypes
import numpy as np

from dae_jax.convert.mapping import ConversionError, torch_sort_key

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    """Stands in for `torch.<X>Storage` in the pickle: it only carries the element dtype."""

    def __init__(self, dtype: np.dtype):
        self.dtype = np.dtype(dtype)


def _rebuild_tensor(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    """`torch._utils._rebuild_tensor_v2` for a NumPy storage: a strided view, copied to a fresh array."""
    del requires_grad, hooks, metadata
    item = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=tuple(size), strides=tuple(s * item for s in stride)
    )
    return np.array(view)


def _rebuild_parameter(data, requires_grad=False, hooks=None):
    """`torch._utils._rebuild_parameter`: a Parameter is just its data here."""
    del requires_grad, hooks
    return data


class _Unpickler(pickle.Unpickler):
    """Unpickler for the `data.pkl` of a torch zip checkpoint that allows only tensor-building globals."""

    def __init__(self, archive: zipfile.ZipFile, prefix: str, path: str):
        super().__init__(archive.open(f"{prefix}/data.pkl"))
        self._archive, self._prefix, self._path = archive, prefix, path
        self._storages: dict[str, np.ndarray] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise pickle.UnpicklingError(
            f"{self._path}: the checkpoint contains an object of type {module}.{name}, which this reader does not "
            "load (only tensors, dicts, lists and plain values are supported)"
        )

    def persistent_load(self, pid: Any) -> np.ndarray:
        kind, storage_type, key, _location, numel = pid
        if kind != "storage":
            raise pickle.UnpicklingError(f"{self._path}: unknown persistent id {pid!r}")
        if key not in self._storages:
            raw = self._archive.read(f"{self._prefix}/data/{key}")
            self._storages[key] = np.frombuffer(raw, storage_type.dtype, count=numel)
        return self._storages[key]


def _load_pth(path: str) -> Any:
    if not zipfile.is_zipfile(path):
        raise ConversionError(
            f"{path}: not a zip-format PyTorch checkpoint (legacy torch<1.6 files are not supported; "
            "re-save it with torch.save in a recent PyTorch)"
        )
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise ConversionError(f"{path}: expected one data.pkl in the archive, found {len(pickles)}")
        prefix = pickles[0][: -len("/data.pkl")]
        if f"{prefix}/byteorder" in names and archive.read(f"{prefix}/byteorder").strip() != b"little":
            raise ConversionError(f"{path}: big-endian checkpoints are not supported")
        try:
            return _Unpickler(archive, prefix, path).load()
        except (pickle.UnpicklingError, KeyError, EOFError, ValueError, zipfile.BadZipFile) as e:
            raise ConversionError(f"{path}: cannot read the checkpoint: {e}") from e


def _unwrap(obj: Any, path: str) -> tuple[dict[str, np.ndarray], dict | None]:
    """Accept a plain state_dict or one wrapped in 'state_dict' / 'model' (with or without 'config')."""
    if not isinstance(obj, Mapping):
        raise ConversionError(f"{path}: expected a dict at the top level, got {type(obj).__name__}")
    config = obj.get("config") if isinstance(obj.get("config"), Mapping) else None
    for wrapper in ("state_dict", "model"):
        if isinstance(obj.get(wrapper), Mapping):
            obj = obj[wrapper]
            break
    tensors = {k: v for k, v in obj.items() if isinstance(v, np.ndarray)}
    others = [k for k in obj if k not in tensors and k != "config"]
    if not tensors or others:
        raise ConversionError(
            f"{path}: expected a state_dict of tensors; found no tensors" if not tensors else
            f"{path}: expected a state_dict of tensors; non-tensor entries: {others[:10]}"
        )
    if all(k.startswith("module.") for k in tensors):  # saved from DataParallel / DDP
        tensors = {k[len("module."):]: v for k, v in tensors.items()}
    return tensors, dict(config) if config is not None else None


def read_state_dict(path: str) -> tuple[dict[str, np.ndarray], dict | None]:
    """Load a `.pth` or `.safetensors` checkpoint -> (state_dict of float32-or-native NumPy arrays, config or None)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.endswith(".safetensors"):
        from safetensors import safe_open

        try:
            with safe_open(path, framework="numpy") as f:
                # safetensors stores keys sorted by name; restore the official module order
                tensors = {k: f.get_tensor(k) for k in sorted(f.keys(), key=torch_sort_key)}
                meta = f.metadata() or {}
        except Exception as e:  # safetensors raises its own error types for corrupt headers
            raise ConversionError(f"{path}: cannot read the safetensors file: {e}") from e
        config = json.loads(meta["config"]) if "config" in meta else None
        return tensors, config
    return _unwrap(_load_pth(path), path)


def write_state_dict(path: str, state_dict: Mapping[str, np.ndarray], config: Mapping | None = None) -> None:
    """Write a state_dict as `.pth` (wrapped as {'state_dict', 'config'} when a config is given) or `.safetensors`."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if path.endswith(".safetensors"):
        from safetensors.numpy import save_file

        meta = {"config": json.dumps(config)} if config is not None else None
        save_file({k: np.ascontiguousarray(v) for k, v in state_dict.items()}, path, metadata=meta)
        return
    try:
        import torch
    except ImportError as e:
        raise ConversionError(f"writing {path} needs torch (pip install torch==2.13.0); or write .safetensors") from e
    tensors = collections.OrderedDict((k, torch.from_numpy(np.array(v))) for k, v in state_dict.items())
    torch.save({"state_dict": tensors, "config": dict(config)} if config is not None else tensors, path)
