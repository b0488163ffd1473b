"""Writers of users' recording formats for the tests of dae_jax.recordings: AEDAT4 through dv-processing's own writer,
Prophesee EVT 2.0 / 3.0 `.raw` through encoders written here from the word formats (independently of the decoder:
plain loops, one word at a time), and plain HDF5 / NPZ files with a frames folder.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import hdf5plugin
import numpy as np
from PIL import Image

BLOSC_ZSTD = hdf5plugin.Blosc(cname="zstd", clevel=1, shuffle=hdf5plugin.Blosc.SHUFFLE)


def random_events(n: int, height: int, width: int, seed: int = 0, t0: int = 1_000, max_step: int = 40,
                  runs: bool = False) -> dict[str, np.ndarray]:
    """n time-ordered events (x, y uint16, t int64 µs, p uint8). With `runs`, about half of them come in runs on one
    row at one time and polarity with increasing x (what EVT 3.0 packs into vector words)."""
    rng = np.random.default_rng(seed)
    xs, ys, ts, ps = [], [], [], []
    t = t0
    while len(ts) < n:
        t += int(rng.integers(0, max_step))
        if runs and rng.random() < 0.3:
            row, pol = int(rng.integers(height)), int(rng.integers(2))
            start = int(rng.integers(max(width - 30, 1)))
            cols = np.unique(rng.integers(start, min(start + 30, width), int(rng.integers(2, 20))))
            for col in cols:
                xs.append(int(col)), ys.append(row), ts.append(t), ps.append(pol)
        else:
            xs.append(int(rng.integers(width))), ys.append(int(rng.integers(height)))
            ts.append(t), ps.append(int(rng.integers(2)))
    return {"x": np.array(xs[:n], np.uint16), "y": np.array(ys[:n], np.uint16), "t": np.array(ts[:n], np.int64),
            "p": np.array(ps[:n], np.uint8)}


# ----- Prophesee .raw -----

def raw_header(lines: list[str], end: bool) -> bytes:
    """A `.raw` header: each line prefixed with '% ', optionally closed by '% end' (newer files)."""
    return "".join(f"% {line}\n" for line in lines + (["end"] if end else [])).encode("ascii")


NEW_EVT3_HEADER = ["camera_integrator_name Prophesee", "date 2024-05-02 11:12:13", "format EVT3;height=720;width=1280",
                   "generation 4.2", "geometry 1280x720", "plugin_integrator_name Prophesee",
                   "plugin_name hal_plugin_imx636_evk4", "sensor_generation 4.2", "serial_number 00051234",
                   "system_ID 49"]
OLD_EVT3_HEADER = ["Date 2020-03-04 10:23:03", "evt 3.0", "integrator_name Prophesee",
                   "plugin_name hal_plugin_gen31_fx3", "serial_number 00001234", "system_ID 28"]


def encode_evt2(events: dict[str, np.ndarray], noise_every: int = 0, seed: int = 0) -> bytes:
    """EVT 2.0 words for time-ordered events: an EVT_TIME_HIGH word (timestamp bits 33..6) whenever those bits
    change, then one CD word per event; every `noise_every` events an EXT_TRIGGER, OTHERS or CONTINUED word."""
    rng = np.random.default_rng(seed)
    words: list[int] = []
    high = None
    for i, (x, y, t, p) in enumerate(zip(*(events[k].tolist() for k in "xytp"), strict=True)):
        t %= 1 << 34
        if t >> 6 != high:
            high = t >> 6
            words.append((0x8 << 28) | high)
        if noise_every and i % noise_every == noise_every - 1:
            kind = (0xA, 0xE, 0xF)[i // noise_every % 3]
            words.append((kind << 28) | int(rng.integers(1 << 28)))
        words.append((p << 28) | ((t & 0x3F) << 22) | (x << 11) | y)
    return np.array(words, "<u4").tobytes()


def encode_evt3(events: dict[str, np.ndarray], vectors: bool = True, noise_every: int = 0, seed: int = 0) -> bytes:
    """EVT 3.0 words for time-ordered events. EVT_TIME_HIGH (bits 23..12) when those bits change, each followed by
    EVT_TIME_LOW (bits 11..0), which is also sent alone when only the low bits change; EVT_ADDR_Y when the row
    changes. A run of 3+ events at one time, row and polarity with increasing x (spanning < 40 pixels) becomes
    VECT_BASE_X and then VECT_12 masks, with a VECT_8 for a tail of at most 8 pixels; any other event is one
    EVT_ADDR_X. Every `noise_every` events an EXT_TRIGGER, OTHERS + CONTINUED_12 or CONTINUED_4 word."""
    rng = np.random.default_rng(seed)
    x, y, t, p = (events[k].tolist() for k in "xytp")
    words: list[int] = []
    high = low = row = None
    i = 0
    while i < len(t):
        ts = t[i] % (1 << 24)
        if ts >> 12 != high:
            high, low = ts >> 12, None
            words.append((0x8 << 12) | high)
        if ts & 0xFFF != low:
            low = ts & 0xFFF
            words.append((0x6 << 12) | low)
        if y[i] != row:
            row = y[i]
            words.append((0x0 << 12) | row)
        if noise_every and i % noise_every == 0:
            words += [[(0xA << 12) | int(rng.integers(1 << 12))],
                      [(0xE << 12) | int(rng.integers(1 << 12)), (0xF << 12) | int(rng.integers(1 << 12))],
                      [(0x7 << 12) | int(rng.integers(1 << 4))]][i // noise_every % 3]
        j = i + 1
        while (j < len(t) and t[j] == t[i] and y[j] == y[i] and p[j] == p[i] and x[j] > x[j - 1]
               and x[j] - x[i] < 40):
            j += 1
        if vectors and j - i >= 3:
            words.append((0x3 << 12) | (p[i] << 11) | x[i])
            cols, base = set(x[i:j]), x[i]
            while base <= x[j - 1]:
                width = 8 if x[j - 1] - base < 8 else 12
                mask = sum(1 << k for k in range(width) if base + k in cols)
                words.append(((0x5 if width == 8 else 0x4) << 12) | mask)
                base += width
        else:
            words += [(0x2 << 12) | (p[k] << 11) | x[k] for k in range(i, j)]
        i = j
    return np.array(words, "<u2").tobytes()


def write_raw(path: Path, header: bytes, payload: bytes) -> Path:
    path.write_bytes(header + payload)
    return path


# ----- AEDAT4 -----

def write_aedat4(path: Path, height: int, width: int, events: dict[str, np.ndarray] | None,
                 frames: list[tuple[int, np.ndarray]] = (), batches: int = 3) -> list[tuple[int, np.ndarray]]:
    """An AEDAT4 file written by dv-processing's MonoCameraWriter: an event stream (in `batches` writes) unless
    `events` is None, and a frame stream when `frames` (timestamp, uint8 (H, W) gray or (H, W, 3) RGB) is given.
    Colour frames are handed to dv in its OpenCV BGR order. Returns the frames as a reader should give them (RGB)."""
    import dv_processing as dv

    config = dv.io.MonoCameraWriter.Config("DVXplorer_TEST0001")
    if events is not None:
        config.addEventStream((width, height))
    if frames:
        config.addFrameStream((width, height))
    writer = dv.io.MonoCameraWriter(str(path), config)
    if events is not None:
        n = len(events["t"])
        bounds = np.linspace(0, n, batches + 1).astype(int)
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            store = dv.EventStore()
            for x, y, t, p in zip(*(events[k][a:b].tolist() for k in "xytp"), strict=True):
                store.push_back(t, x, y, bool(p))
            writer.writeEvents(store)
    expected = []
    for t, image in frames:
        writer.writeFrame(dv.Frame(t, image if image.ndim == 2 else np.ascontiguousarray(image[..., ::-1])))
        expected.append((t, image if image.ndim == 3 else np.repeat(image[..., None], 3, -1)))
    del writer  # closing the writer writes the file's index
    return expected


# ----- plain HDF5 / NPZ -----

def write_h5(path: Path, events: dict[str, np.ndarray], dsec: bool, t_offset: int = 0,
             attrs: dict[str, object] | None = None, skip: tuple[str, ...] = ()) -> Path:
    """HDF5 events: DSEC layout (events/x, y, t, p Blosc-zstd compressed, ms_to_idx, t_offset; t stored relative to
    t_offset as uint32) or top-level x, y, t, p; `attrs` go on the file, datasets named in `skip` are left out."""
    with h5py.File(path, "w") as f:
        group = f.require_group("events") if dsec else f
        for name in "xytp":
            if name in skip:
                continue
            data = events[name] - t_offset if name == "t" else events[name]
            if dsec:
                dtype = {"x": np.uint16, "y": np.uint16, "t": np.uint32, "p": np.uint8}[name]
                group.create_dataset(name, data=data.astype(dtype), chunks=True, **BLOSC_ZSTD)
            else:
                group.create_dataset(name, data=data)
        if dsec:
            t_rel = events["t"] - t_offset
            f.create_dataset("ms_to_idx", data=np.searchsorted(t_rel, np.arange(0, t_rel[-1] // 1000 + 1) * 1000))
            f.create_dataset("t_offset", data=np.int64(t_offset))
        f.attrs.update(attrs or {})
    return path


def write_frames_dir(folder: Path, stamps: list[int], height: int, width: int, gray: bool = False,
                     count: int | None = None) -> list[np.ndarray]:
    """PNG frames 000000.png ... and timestamps.txt (one µs per line); `count` images instead of one per stamp.
    Returns the frames as RGB."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "timestamps.txt").write_text("".join(f"{s}\n" for s in stamps))
    frames = []
    rows, cols = np.mgrid[0:height, 0:width]
    for j in range(len(stamps) if count is None else count):
        rgb = np.stack([(rows * 3 + j) % 256, (cols * 5 + j) % 256, np.full_like(rows, 10 * j)], -1).astype(np.uint8)
        if gray:
            Image.fromarray(rgb[..., 0]).save(folder / f"{j:06d}.png")
            frames.append(np.repeat(rgb[..., :1], 3, -1))
        else:
            Image.fromarray(rgb).save(folder / f"{j:06d}.png")
            frames.append(rgb)
    return frames
