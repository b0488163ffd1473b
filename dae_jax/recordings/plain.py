"""Plain event arrays: HDF5 (`.h5` / `.hdf5`) or NumPy (`.npz`) files holding x, y, t, p, with an optional folder of
frames.

HDF5 layouts: DSEC's `events/x, events/y, events/t, events/p` (with optional `t_offset`, added to t, and
`ms_to_idx`, unused; DSEC compresses with Blosc, whose filter `hdf5plugin` registers), or top-level `x, y, t, p`.
NPZ: arrays `x, y, t, p` and optional scalar arrays `width`, `height`, `t_unit`. Both are streamed: HDF5 datasets
are sliced chunk by chunk, NPZ members are read from the zip chunk by chunk (stored or deflated alike).

Geometry: `width` / `height` attributes (of the HDF5 file or its `events` group) or NPZ arrays, else the caller's
`sensor_size`. Timestamps: integers are µs; floats need a `t_unit` of 's' or 'us' (attribute or NPZ array), and
are rounded to whole µs (`t_unit` 's' also scales integer timestamps). Polarity: bool, {0, 1} or {-1, +1}, mapped to
{0, 1}; coordinates must be whole, non-negative numbers.

Frames: these files hold none; `open_recording` takes them from a folder beside the file (`frame_folder`).
"""

from __future__ import annotations

import dataclasses
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from dae_jax.recordings import (
    DEFAULT_CHUNK,
    Events,
    Recording,
    RecordingError,
    check_events,
    sensor_geometry,
)

COLUMNS = ("x", "y", "t", "p")
TIME_UNITS = {"us": 1, "s": 1_000_000}


def _text(value: Any) -> str:
    """An attribute or 0-d array as text (HDF5 may store strings as bytes)."""
    value = value.item() if isinstance(value, np.ndarray) else value
    return value.decode() if isinstance(value, bytes) else str(value)


def open_plain(path: str | Path, sensor_size: tuple[int, int] | None = None) -> Recording:
    """Open an HDF5 or NPZ file of x, y, t, p arrays (see the module docstring for layouts and units)."""
    path = Path(path)
    if not path.is_file():
        raise RecordingError(f"{path}: no such recording file")
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        columns: _Columns = _Hdf5Columns(path)
    elif suffix == ".npz":
        columns = _NpzColumns(path)
    else:
        raise RecordingError(f"{path}: unknown plain recording format {suffix!r}; expected .h5, .hdf5 or .npz")
    height, width = sensor_geometry(path, columns.geometry, sensor_size, "width / height attributes")
    return PlainRecording(path, height, width, columns=columns)


class _Columns:
    """The x, y, t, p arrays of a file, read in slices; `geometry` (height, width) and `t_unit` if the file says."""

    path: Path
    geometry: tuple[int, int] | None
    t_unit: str | None
    t_offset: int
    length: int
    dtypes: dict[str, np.dtype]

    def slices(self, chunk_size: int) -> Iterator[dict[str, np.ndarray]]:
        raise NotImplementedError

    def _check(self, names: dict[str, tuple[tuple[int, ...], np.dtype]], prefix: str = "") -> None:
        """Every column present, one-dimensional, numeric and of one length; sets `length` and `dtypes`."""
        missing = [prefix + k for k in COLUMNS if k not in names]
        if missing:
            raise RecordingError(f"{self.path}: missing array(s) {', '.join(missing)} (needs {', '.join(COLUMNS)})")
        for k in COLUMNS:
            shape, dtype = names[k]
            if len(shape) != 1 or dtype.kind not in "biuf":
                raise RecordingError(f"{self.path}: array {prefix}{k} is {dtype} of shape {shape}; expected a "
                                     f"one-dimensional numeric array")
        lengths = {prefix + k: names[k][0][0] for k in COLUMNS}
        if len(set(lengths.values())) != 1:
            raise RecordingError(f"{self.path}: arrays differ in length: {lengths}")
        self.length = int(lengths[prefix + "x"])
        self.dtypes = {k: names[k][1] for k in COLUMNS}
        if self.t_unit is not None and self.t_unit not in TIME_UNITS:
            raise RecordingError(f"{self.path}: t_unit {self.t_unit!r} is not one of {', '.join(TIME_UNITS)}")
        if self.dtypes["t"].kind == "f" and self.t_unit is None:
            raise RecordingError(f"{self.path}: timestamps t are floating point ({self.dtypes['t']}) but the file "
                                 f"gives no t_unit ('s' or 'us'); integer timestamps are taken as µs")


class _Hdf5Columns(_Columns):
    def __init__(self, path: Path) -> None:
        import h5py
        import hdf5plugin  # noqa: F401  (registers the Blosc filter DSEC files use)

        self.path = path
        try:
            with h5py.File(path, "r") as f:
                self.group = "events" if isinstance(f.get("events"), h5py.Group) else ""
                group = f[self.group] if self.group else f
                names = {k: (group[k].shape, group[k].dtype) for k in COLUMNS
                         if isinstance(group.get(k), h5py.Dataset)}
                attrs = {**f.attrs, **(group.attrs if self.group else {})}
                if "t" in names:
                    attrs.update(group["t"].attrs)
                self.t_offset = int(f["t_offset"][()]) if isinstance(f.get("t_offset"), h5py.Dataset) else 0
        except OSError as error:
            raise RecordingError(f"{path}: not a readable HDF5 file ({error})") from error
        self.geometry = _geometry(path, attrs.get("height"), attrs.get("width"))
        self.t_unit = _text(attrs["t_unit"]) if "t_unit" in attrs else None
        self._check(names, f"{self.group}/" if self.group else "")

    def slices(self, chunk_size: int) -> Iterator[dict[str, np.ndarray]]:
        import h5py

        with h5py.File(self.path, "r") as f:
            group = f[self.group] if self.group else f
            for start in range(0, self.length, chunk_size):
                try:
                    chunk = {k: group[k][start:start + chunk_size] for k in COLUMNS}
                except OSError as error:
                    raise RecordingError(f"{self.path}: cannot read events {start} onwards ({error})") from error
                yield chunk


class _NpzColumns(_Columns):
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with zipfile.ZipFile(path) as archive:
                members = {name.removesuffix(".npy"): name for name in archive.namelist()}
                names = {}
                for k in COLUMNS:
                    if k in members:
                        with archive.open(members[k]) as member:
                            names[k] = _npy_header(path, k, member)
            with np.load(path) as arrays:
                extra = {k: arrays[k] for k in ("height", "width", "t_unit") if k in members}
        except (zipfile.BadZipFile, OSError, ValueError) as error:
            raise RecordingError(f"{path}: not a readable NPZ file ({error})") from error
        self.members = members
        self.geometry = _geometry(path, extra.get("height"), extra.get("width"))
        self.t_unit = _text(extra["t_unit"]) if "t_unit" in extra else None
        self.t_offset = 0
        self._check(names)

    def slices(self, chunk_size: int) -> Iterator[dict[str, np.ndarray]]:
        with zipfile.ZipFile(self.path) as archive:
            streams = {k: archive.open(self.members[k]) for k in COLUMNS}
            try:
                for k, stream in streams.items():
                    _npy_header(self.path, k, stream)
                for start in range(0, self.length, chunk_size):
                    count = min(chunk_size, self.length - start)
                    yield {k: _read_items(self.path, k, s, self.dtypes[k], count) for k, s in streams.items()}
            finally:
                for stream in streams.values():
                    stream.close()


def _npy_header(path: Path, name: str, stream: Any) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from the header of a `.npy` member, leaving the stream at its first data byte."""
    version = np.lib.format.read_magic(stream)
    read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}.get(version)
    if read is None:
        raise RecordingError(f"{path}: array {name} has .npy format version {version}; expected 1.0 or 2.0")
    shape, fortran, dtype = read(stream)
    if fortran and len(shape) > 1:
        raise RecordingError(f"{path}: array {name} is stored in Fortran order; expected a one-dimensional array")
    return shape, dtype


def _read_items(path: Path, name: str, stream: Any, dtype: np.dtype, count: int) -> np.ndarray:
    data = stream.read(count * dtype.itemsize)
    if len(data) != count * dtype.itemsize:
        raise RecordingError(f"{path}: array {name} ends early (truncated NPZ member)")
    return np.frombuffer(data, dtype)


def _geometry(path: Path, height: Any, width: Any) -> tuple[int, int] | None:
    if height is None and width is None:
        return None
    try:
        return int(np.asarray(height).item()), int(np.asarray(width).item())
    except (TypeError, ValueError):
        raise RecordingError(f"{path}: width / height {width!r} / {height!r} are not both integers") from None


@dataclasses.dataclass(kw_only=True)
class PlainRecording(Recording):
    """An HDF5 / NPZ file of event arrays, normalised chunk by chunk as `event_chunks` reads it."""

    columns: _Columns

    def event_chunks(self, chunk_size: int = DEFAULT_CHUNK) -> Iterator[Events]:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        first, last_t = 0, None
        signed_polarity: bool | None = None  # -1 seen (True) or 0 seen (False): the two conventions do not mix
        for raw in self.columns.slices(chunk_size):
            x, y = (self._coordinate(raw[k], k, first) for k in ("x", "y"))
            t = self._time(raw["t"], first)
            p, signed_polarity = self._polarity(raw["p"], first, signed_polarity)
            events = Events(x, y, t, p)
            check_events(events, self.path, first, last_t, self.height, self.width)
            first, last_t = first + len(events), int(t[-1])
            yield events

    def _coordinate(self, values: np.ndarray, name: str, first: int) -> np.ndarray:
        """uint16 coordinates; fractional or negative values are an error naming the event (values beyond uint16
        are clipped to its largest value, which check_events then reports as outside the sensor)."""
        if values.dtype.kind in "if":
            bad = (values < 0) | (values != np.floor(values)) if values.dtype.kind == "f" else values < 0
            if bad.any():
                i = int(np.argmax(bad))
                raise RecordingError(f"{self.path}: event {first + i} has {name}={values[i]}; coordinates must be "
                                     f"whole, non-negative pixel indices")
        return np.minimum(values, np.iinfo(np.uint16).max).astype(np.uint16)

    def _time(self, values: np.ndarray, first: int) -> np.ndarray:
        """int64 µs from integer or (with t_unit) floating-point timestamps, plus the file's t_offset."""
        scale = TIME_UNITS[self.columns.t_unit or "us"]
        if values.dtype.kind != "f":
            return values.astype(np.int64) * scale + self.columns.t_offset
        bad = ~np.isfinite(values)
        if bad.any():
            i = int(np.argmax(bad))
            raise RecordingError(f"{self.path}: event {first + i} has timestamp t={values[i]}")
        return np.rint(values.astype(np.float64) * scale).astype(np.int64) + self.columns.t_offset

    def _polarity(self, values: np.ndarray, first: int, signed: bool | None) -> tuple[np.ndarray, bool | None]:
        """uint8 {0, 1} polarity from bool, {0, 1} or {-1, +1} values. `signed` is the convention of the events so
        far (None until a 0 or a -1 decides it); a value of the other convention is an error naming the event."""
        if values.dtype.kind == "b":
            return values.astype(np.uint8), signed
        minus, zero = values == -1, values == 0
        bad = ~(minus | zero | (values == 1))
        if bad.any():
            i = int(np.argmax(bad))
            raise RecordingError(f"{self.path}: event {first + i} has polarity p={values[i]}; expected 0 / 1, -1 / +1 "
                                 f"or bool")
        if signed is None and (minus.any() or zero.any()):
            signed = bool(minus.any()) and (not zero.any() or int(np.argmax(minus)) < int(np.argmax(zero)))
        conflict = zero if signed else minus
        if signed is not None and conflict.any():
            i = int(np.argmax(conflict))
            raise RecordingError(f"{self.path}: event {first + i} has polarity p={values[i]}, mixing the 0 / 1 and "
                                 f"-1 / +1 conventions")
        return (values > 0).astype(np.uint8), signed
