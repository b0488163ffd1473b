"""Stored teacher labels: the on-disk format written by `--mode=label` and read by the input pipeline.

A label directory (by default `<dataset_dir>/labels`) holds
  labels.json                       what made the labels and for which dataset (see `label_manifest`)
  <split>/chunk-00000.array_record  records [0, chunk_size), then chunk-00001 ... in record order

Record i of a split's chunks is the teacher's relative inverse depth for record i of the dataset split, an
(H, W) float16 array at the frame's resolution stored as .npy bytes, or an empty (0, 0) array where the record
has no RGB frame. A chunk file appears (by an atomic rename) only once it is complete, so a killed labelling job
restarts at the first missing chunk and writes the same bytes an uninterrupted job would.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

FORMAT_VERSION = 1
MANIFEST = "labels.json"
LABEL_DTYPE = np.float16
# One record per group: the pipeline reads single records at random positions.
WRITER_OPTIONS = "group_size:1"


def chunk_path(labels_dir: str, split: str, chunk: int) -> epath.Path:
    """The file of chunk `chunk` of `split`."""
    return epath.Path(labels_dir) / split / f"chunk-{chunk:05d}.array_record"


def encode_label(label: np.ndarray | None) -> bytes:
    """One record: the (H, W) label as float16 .npy bytes; None (no RGB frame) becomes an empty (0, 0) array."""
    array = np.zeros((0, 0), LABEL_DTYPE) if label is None else np.asarray(label)
    if array.ndim != 2:
        raise ValueError(f"a label must be (H, W), got shape {array.shape}")
    buffer = io.BytesIO()
    np.save(buffer, array.astype(LABEL_DTYPE), allow_pickle=False)
    return buffer.getvalue()


def decode_label(record: bytes, where: str) -> np.ndarray:
    """The (H, W) float16 array of one record; `where` names it in errors."""
    try:
        array = np.load(io.BytesIO(record), allow_pickle=False)
    except ValueError as e:
        raise ValueError(f"{where}: not a label record ({e})") from e
    if array.dtype != LABEL_DTYPE or array.ndim != 2:
        raise ValueError(f"{where}: expected an (H, W) float16 label, got {array.dtype} {array.shape}")
    return array


def write_chunk(labels_dir: str, split: str, chunk: int, labels: Sequence[np.ndarray | None], tag: str = "") -> None:
    """Write one chunk's records to a temporary file, then rename it into place (a chunk is whole or absent)."""
    from array_record.python.array_record_module import ArrayRecordWriter

    final = chunk_path(labels_dir, split, chunk)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f"{final.name}.tmp{tag}"
    writer = ArrayRecordWriter(str(tmp), WRITER_OPTIONS)
    for label in labels:
        writer.write(encode_label(label))
    writer.close()
    tmp.replace(final)


def dataset_identity(dataset_dir: str, split: str) -> dict[str, Any]:
    """What identifies a split of a prepared dataset: builder name, config, version, record count and sequences."""
    info = tfds.builder_from_directory(str(dataset_dir)).info
    if split not in info.splits:
        raise ValueError(f"{dataset_dir}: unknown split {split!r}; known splits: {sorted(info.splits)}")
    metadata = dict(info.metadata or {})
    sequences = [[str(name), int(n)] for name, n in metadata.get("sequences", {}).get(split, [])]
    return {"name": info.name, "config": info.config_name, "version": str(info.version),
            "split": split, "num_records": int(info.splits[split].num_examples), "sequences": sequences,
            "height": int(metadata.get("height", 0)), "width": int(metadata.get("width", 0))}


def weights_fingerprint(path: str) -> str:
    """sha256 of a weights file, or of every file of a weights directory in sorted order."""
    digest = hashlib.sha256()
    root = epath.Path(path)
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
    for file in files:
        digest.update(str(file.relative_to(root) if root.is_dir() else file.name).encode())
        with file.open("rb") as f:
            for block in iter(lambda: f.read(1 << 24), b""):
                digest.update(block)
    return digest.hexdigest()


def label_manifest(dataset_dir: str, splits: Sequence[str], teacher: Mapping[str, Any], chunk_size: int,
                   batch_size: int) -> dict[str, Any]:
    """labels.json of a labelling job: the teacher (weights, fingerprint, model config and size rule), the
    dataset splits it labels, and the job's chunking (which fixes the bytes written)."""
    return {"format_version": FORMAT_VERSION, "dtype": "float16", "chunk_size": int(chunk_size),
            "batch_size": int(batch_size), "teacher": dict(teacher), "dataset_dir": str(dataset_dir),
            "splits": {s: {**dataset_identity(dataset_dir, s), "complete": False} for s in splits}}


def read_manifest(labels_dir: str) -> dict[str, Any]:
    """labels.json of a label directory; a clear error when it is missing."""
    path = epath.Path(labels_dir) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{labels_dir} holds no stored labels (no {MANIFEST}); make them with "
                                "`launch.py --mode=label` or `python -m dae_jax.label`")
    return json.loads(path.read_text())


def check_labels_match(labels_dir: str, dataset_dir: str, split: str) -> dict[str, Any]:
    """The manifest, after checking that the labels of `split` were made, completely, for this split of this
    dataset (same builder, config, version, records and sequences)."""
    manifest = read_manifest(labels_dir)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{labels_dir}: label format version {manifest.get('format_version')}, expected "
                         f"{FORMAT_VERSION}")
    entry = manifest["splits"].get(split)
    if entry is None:
        raise ValueError(f"{labels_dir}: no labels for split {split!r} (labelled: {sorted(manifest['splits'])})")
    if not entry["complete"]:
        raise ValueError(f"{labels_dir}: the labels of split {split!r} are incomplete; run the labelling job "
                         "again to finish them")
    wanted = dataset_identity(dataset_dir, split)
    differs = [k for k in wanted if k != "complete" and entry.get(k) != wanted[k]]
    if differs:
        details = ", ".join(f"{k}: labels {entry.get(k)!r} vs dataset {wanted[k]!r}" for k in differs
                            if k != "sequences")
        raise ValueError(f"{labels_dir} was made for another dataset or split than {dataset_dir} split {split!r} "
                         f"(differs in {differs}{'; ' + details if details else ''})")
    return manifest


class LabelSource:
    """Random access to the stored labels of one split, record index -> (H, W) float16 array (empty: none).

    Opens the files lazily, so it pickles to grain workers as its arguments.
    """

    def __init__(self, labels_dir: str, dataset_dir: str, split: str):
        self.labels_dir, self.split = str(labels_dir), split
        manifest = check_labels_match(labels_dir, dataset_dir, split)
        self.num_records, chunk = manifest["splits"][split]["num_records"], manifest["chunk_size"]
        self._files = [str(chunk_path(labels_dir, split, c)) for c in range(-(-self.num_records // chunk))]
        missing = [f for f in self._files if not os.path.exists(f)]
        if missing:
            raise FileNotFoundError(f"{labels_dir}: label chunks missing for split {split!r}: {missing[:3]}")
        self._source = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_source": None}

    def __len__(self) -> int:
        return self.num_records

    def __getitems__(self, indices: Sequence[int]) -> list[np.ndarray]:
        if self._source is None:
            from array_record.python.array_record_data_source import ArrayRecordDataSource

            self._source = ArrayRecordDataSource(self._files)
            if len(self._source) != self.num_records:
                raise ValueError(f"{self.labels_dir}: split {self.split!r} has {len(self._source)} label records, "
                                 f"its dataset split {self.num_records}")
        records = self._source.__getitems__(list(indices))
        return [decode_label(r, f"{self.labels_dir} split {self.split!r} record {i}")
                for r, i in zip(records, indices, strict=True)]
