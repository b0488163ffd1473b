"""Prophesee `.raw` recordings in EVT 2.0 and EVT 3.0, decoded from the published word formats by numba kernels.

A `.raw` file is an ASCII header of lines starting with '%' (ended by the first line that does not, or by `% end`)
followed by little-endian words: 32-bit for EVT 2.0, 16-bit for EVT 3.0. (Without `% end`, as in older files, a first
data byte of 0x25 '%' would be read as header: the format leaves that ambiguous.) The file is read in blocks of words,
and a kernel runs the format's state machine over each block in one sequential pass, with its state (time registers,
wrap count, current row, vector base) carried from block to block, so a recording of any length streams in bounded
memory. The kernel writes the events straight into the arrays of the chunks handed out and checks them as it goes
(time order, inside the sensor); a block found invalid is decoded once more to name the event and its word's offset.

Geometry: the header's `% format ...;width=W;height=H` or `% geometry WxH` wins (a disagreeing `sensor_size` is an
error), then the caller's `sensor_size`, then the sensor named by `% sensor_generation` / `% generation` /
`% plugin_name` (`SENSOR_GEOMETRY`).

CD events that come before the decoder has the state to place them (EVT 2.0: before the first TIME_HIGH word;
EVT 3.0: before the first TIME_HIGH and ADDR_Y words, and for vector words before the first VECT_BASE_X) are
dropped: a recording cut from a live stream can start with events whose time or row was sent before the cut.

Time wrap-around: EVT 2.0 timestamps are 34 bits (TIME_HIGH holds bits 33..6), EVT 3.0 timestamps 24 bits
(TIME_HIGH bits 23..12, TIME_LOW bits 11..0). A TIME_HIGH that falls by more than half its range is taken as a wrap
and adds 2^34 (resp. 2^24) µs to every later timestamp. EVT 3.0 keeps the high and low parts as independent
registers: a TIME_HIGH word replaces the high part and keeps the last TIME_LOW until the next one.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import numba
import numpy as np

from dae_jax.recordings import DEFAULT_CHUNK, Events, Recording, RecordingError, check_events, rechunk, sensor_geometry

WORDS_PER_BLOCK = 1 << 17  # words read and decoded at a time; an invalid event raises before its block is handed out
MAX_HEADER_LINE = 1 << 16

# (height, width) of the sensors a header may name instead of giving its geometry. Tokens are matched against
# `% plugin_name` split on '_' (e.g. hal_plugin_gen31_fx3, hal_plugin_imx636_evk4) and against `% sensor_name`.
SENSOR_GEOMETRY = {
    "gen3": (480, 640), "gen31": (480, 640),  # Gen3 / Gen3.1 VGA
    "gen4": (720, 1280), "gen41": (720, 1280), "imx636": (720, 1280),  # Gen4.x HD, Sony IMX636
    "genx320": (320, 320), "imx8": (320, 320),  # GenX320
}
# `% sensor_generation` / `% generation` values: major version 3 is VGA, 4 is HD.
GENERATION_GEOMETRY = {"3": (480, 640), "4": (720, 1280)}
SUPPORTED = {"EVT2": 4, "EVT3": 2}  # format name -> bytes per word


@dataclasses.dataclass(frozen=True)
class RawHeader:
    """What a `.raw` header says: the event format, the explicit geometry if any, every `key value` line."""

    format: str
    size: int  # bytes of header before the first word
    geometry: tuple[int, int] | None  # (height, width) stated by the header
    fields: dict[str, str]


def read_header(path: Path) -> RawHeader:
    """Parse the '%' lines at the start of a `.raw` file (see the module docstring for the keys understood)."""
    fields: dict[str, str] = {}
    with open(path, "rb") as f:
        while True:
            start = f.tell()
            if f.read(1) != b"%":
                size = start
                break
            line = f.readline(MAX_HEADER_LINE).decode("ascii", "replace").strip()
            if line == "end":
                size = f.tell()
                break
            key, _, value = line.partition(" ")
            if key:
                fields.setdefault(key, value.strip())
    format_name, options = _format_of(path, fields)
    geometry = None
    if "width" in options and "height" in options:
        geometry = (_integer(path, "height", options["height"]), _integer(path, "width", options["width"]))
    elif "geometry" in fields:
        match = re.fullmatch(r"(\d+)\s*x\s*(\d+)", fields["geometry"])
        if not match:
            raise RecordingError(f"{path}: header line '% geometry {fields['geometry']}' is not WIDTHxHEIGHT")
        geometry = (int(match[2]), int(match[1]))
    return RawHeader(format_name, size, geometry, fields)


def _integer(path: Path, what: str, text: str) -> int:
    if not text.isdigit():
        raise RecordingError(f"{path}: header '% format' {what} {text!r} is not a whole number")
    return int(text)


def _format_of(path: Path, fields: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The format name (EVT2, EVT21, EVT3, ...) and its `;key=value` options, from `% format` or an older `% evt`."""
    if "format" in fields:
        name, *rest = fields["format"].split(";")
        options = dict(part.partition("=")[::2] for part in rest if part)
        return name.strip().upper(), {k.strip().lower(): v.strip() for k, v in options.items()}
    if "evt" in fields:
        version = fields["evt"].strip()
        named = {"2.0": "EVT2", "2.1": "EVT21", "3.0": "EVT3"}.get(version, f"EVT {version}")
        return named, {}
    raise RecordingError(f"{path}: the header names no event format (no '% format' or '% evt' line)")


def inferred_geometry(fields: dict[str, str]) -> tuple[int, int] | None:
    """(height, width) of the sensor the header names, from SENSOR_GEOMETRY / GENERATION_GEOMETRY, or None."""
    for key in ("sensor_generation", "generation"):
        major = fields.get(key, "").split(".")[0].strip()
        if major in GENERATION_GEOMETRY:
            return GENERATION_GEOMETRY[major]
    for key in ("plugin_name", "sensor_name"):
        for token in re.split(r"[_\s\-]+", fields.get(key, "").lower()):
            if token in SENSOR_GEOMETRY:
                return SENSOR_GEOMETRY[token]
    return None


def open_raw(path: str | Path, sensor_size: tuple[int, int] | None = None) -> Recording:
    """Open a Prophesee EVT 2.0 / 3.0 `.raw` file: read its header, fix its geometry, check it ends on a whole word."""
    path = Path(path)
    if not path.is_file():
        raise RecordingError(f"{path}: no such recording file")
    header = read_header(path)
    if header.format not in SUPPORTED:
        raise RecordingError(f"{path}: event format {header.format} is not supported (supported: EVT2 = EVT 2.0, "
                             f"EVT3 = EVT 3.0)")
    if header.geometry is not None:
        height, width = sensor_geometry(path, header.geometry, sensor_size, "header")
    elif sensor_size is not None:
        height, width = int(sensor_size[0]), int(sensor_size[1])
    else:
        found = inferred_geometry(header.fields)
        if found is None:
            raise RecordingError(f"{path}: the header gives no geometry and names no known sensor; pass "
                                 f"sensor_size=(height, width)")
        height, width = found
    word = SUPPORTED[header.format]
    payload = path.stat().st_size - header.size
    if payload % word:
        offset = header.size + payload - payload % word
        raise RecordingError(f"{path}: truncated: {payload % word} trailing byte(s) at byte offset {offset} do not "
                             f"make a whole {8 * word}-bit {header.format} word")
    return RawRecording(path, height, width, header=header)


@dataclasses.dataclass(kw_only=True)
class RawRecording(Recording):
    """An EVT 2.0 / 3.0 `.raw` file; events are decoded block by block as `event_chunks` is consumed."""

    header: RawHeader

    def event_chunks(self, chunk_size: int = DEFAULT_CHUNK) -> Iterator[Events]:
        return rechunk(self._decoded_runs(chunk_size), chunk_size)

    def _decoded_runs(self, chunk_size: int) -> Iterator[Events]:
        """The events in runs of `run_capacity(chunk_size)` events (the last may be shorter), each run in arrays of
        its own. The kernel decodes straight into the arrays of the run being filled, stopping when they are full and
        resuming there, so `rechunk` only has to slice. The kernel also validates the events; the runs completed
        while decoding a block are handed out once the whole block has passed, so an invalid event raises before any
        event of its block is seen."""
        word = SUPPORTED[self.header.format]
        dtype = np.dtype(f"<u{word}").newbyteorder("=")  # native order for the kernel: a no-op on little-endian
        kernel = _decode_evt2 if self.header.format == "EVT2" else _decode_evt3
        capacity = run_capacity(chunk_size)
        state = initial_state()
        run, filled, handed_out = _empty_run(capacity), 0, 0
        start = 0  # words in the blocks before this one
        block = bytearray(WORDS_PER_BLOCK * word)
        with open(self.path, "rb") as f:
            f.seek(self.header.size)
            while size := f.readinto(block):
                if size % word:  # the file shrank since it was opened
                    raise RecordingError(f"{self.path}: truncated: partial word at byte offset "
                                         f"{self.header.size + (start + size // word) * word}")
                words = np.frombuffer(block, f"<u{word}", size // word).astype(dtype, copy=False)
                before, first = state.copy(), handed_out + filled
                completed, position = [], 0
                while True:
                    position, filled = kernel(words, position, state, *run, filled, None, self.height, self.width)
                    if filled < capacity:  # every word of the block decoded
                        break
                    completed.append(Events(*run))
                    run, filled = _empty_run(capacity), 0
                if state[BAD]:
                    self._raise_for_block(kernel, words, before, first, start)
                handed_out += capacity * len(completed)
                yield from completed
                start += words.size
        if filled:
            yield Events(*(column[:filled] for column in run))

    def _raise_for_block(self, kernel: Callable[..., tuple[int, int]], words: np.ndarray, before: np.ndarray,
                         first: int, start: int) -> None:
        """Raise check_events' error for a block the kernel found invalid. The block is decoded again from the state
        it started with, with the word of each event (for its byte offset in the message) and int64 x (a vector's x
        can pass the uint16 range), as the block's events; `first` events and `start` words came before it."""
        last_t = int(before[LAST_T]) if first else None
        bound = words.size * MAX_EVENTS_PER_WORD[self.header.format]
        x, sources = np.empty(bound, np.int64), np.empty(bound, np.int64)
        y, t, p = np.empty(bound, np.uint16), np.empty(bound, np.int64), np.empty(bound, np.uint8)
        _, n = kernel(words, 0, before, x, y, t, p, 0, sources, self.height, self.width)
        offsets = self.header.size + (start + sources[:n]) * SUPPORTED[self.header.format]
        check_events(Events(x[:n], y[:n], t[:n], p[:n]), self.path, first, last_t, self.height, self.width, offsets)
        raise AssertionError(f"{self.path}: the decoder flagged the block at word {start}, check_events found it valid")


RUN_EVENTS = 1 << 20  # about this many events are decoded into one set of arrays when chunks are smaller
MAX_RUN_EVENTS = 1 << 24  # larger chunks are joined from runs of this many events
MAX_EVENTS_PER_WORD = {"EVT2": 1, "EVT3": 12}  # a VECT_12 word holds up to 12 events


def run_capacity(chunk_size: int) -> int:
    """Events per run decoded for chunks of chunk_size: a whole number of chunks (so that chunks are slices of one
    run) near RUN_EVENTS, or one chunk, or MAX_RUN_EVENTS for chunks larger than that."""
    if chunk_size > MAX_RUN_EVENTS:
        return MAX_RUN_EVENTS
    return chunk_size * max(1, RUN_EVENTS // chunk_size)


def _empty_run(capacity: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Output arrays x, y (uint16), t (int64), p (uint8) for `capacity` events (pages are touched as they fill)."""
    return (np.empty(capacity, np.uint16), np.empty(capacity, np.uint16), np.empty(capacity, np.int64),
            np.empty(capacity, np.uint8))


# The decoder state carried from block to block: one int64 array, indexed by these names, updated in place by the
# kernels. HIGH: unwrapped time high in force (-1: none yet); RAW_HIGH: its last raw value (-1: none yet); LOOPS:
# wraps so far; LOW: EVT 3.0 time low; ROW: EVT 3.0 y (-1: none yet); BASE, BASE_P: EVT 3.0 vector base x, advanced
# past every vector word (-1: none yet), and its polarity; DONE: bits of the vector word at the position a kernel
# stopped at that it already emitted (its outputs were full); LAST_T: time of the last event (NO_TIME: none yet);
# BAD: 1 once an event was out of time order or outside the sensor.
HIGH, RAW_HIGH, LOOPS, LOW, ROW, BASE, BASE_P, DONE, LAST_T, BAD = range(10)
NO_TIME = np.iinfo(np.int64).min


def initial_state() -> np.ndarray:
    """The decoder state at the start of a file."""
    state = np.zeros(10, np.int64)
    state[[HIGH, RAW_HIGH, ROW, BASE]] = -1
    state[LAST_T] = NO_TIME
    return state


@numba.njit(cache=True, nogil=True)
def _decode_evt2(words, position, state, x, y, t, p, n, sources, height, width):
    """EVT 2.0: 32-bit words, type in bits 31..28. CD_OFF 0x0 / CD_ON 0x1 hold timestamp bits 5..0 (27..22), x
    (21..11), y (10..0); EVT_TIME_HIGH 0x8 holds timestamp bits 33..6 (27..0); EXT_TRIGGER 0xA, OTHERS 0xE and
    CONTINUED 0xF (and any other type) are skipped.

    Decodes words[position:] into x, y, t, p from index n on (and the index in `words` of each event's word into
    `sources`, unless it is None: numba then compiles the kernel without it), until the words end or the outputs
    are full. Returns (position reached, events in the outputs); `state` is updated in place.
    """
    high, raw_high, loops = state[HIGH], state[RAW_HIGH], state[LOOPS]
    last_t, bad = state[LAST_T], state[BAD] != 0
    capacity = t.size
    if position < 0 or n < 0:  # never; saying so lets LLVM drop the negative-index handling of every access
        raise ValueError("negative start")
    while position < words.size:
        word = np.int64(words[position])
        kind = word >> 28
        if kind <= 0x1:
            if high >= 0:  # a CD word before the first TIME_HIGH is dropped
                if n == capacity:
                    break
                time = (high << 6) | ((word >> 22) & 0x3F)
                column, row = (word >> 11) & 0x7FF, word & 0x7FF
                x[n], y[n], t[n], p[n] = column, row, time, kind
                if sources is not None:
                    sources[n] = position
                bad |= (time < last_t) | (column >= width) | (row >= height)
                last_t = time
                n += 1
        elif kind == 0x8:
            raw = word & 0x0FFFFFFF
            if raw_high >= 0 and raw < raw_high - (1 << 27):  # a fall by more than half the range: a wrap
                loops += 1
            raw_high, high = raw, raw + (loops << 28)
        position += 1
    state[HIGH], state[RAW_HIGH], state[LOOPS], state[LAST_T], state[BAD] = high, raw_high, loops, last_t, bad
    return position, n


LOWEST_BIT = np.array([(m & -m).bit_length() - 1 for m in range(1 << 12)], np.int64)  # of a 12-bit mask


@numba.njit(cache=True, nogil=True)
def _decode_evt3(words, position, state, x, y, t, p, n, sources, height, width):
    """EVT 3.0: 16-bit words, type in bits 15..12. EVT_ADDR_Y 0x0 (y in 10..0), EVT_ADDR_X 0x2 (x in 10..0,
    polarity in 11: one event), VECT_BASE_X 0x3 (x base in 10..0, polarity in 11), VECT_12 0x4 / VECT_8 0x5 (bit k of
    the 12 / 8-bit mask: an event at base + k; the base then advances by 12 / 8), EVT_TIME_LOW 0x6 (timestamp bits
    11..0), EVT_TIME_HIGH 0x8 (timestamp bits 23..12); CONTINUED_4 0x7, EXT_TRIGGER 0xA, OTHERS 0xE and
    CONTINUED_12 0xF (and any other type) are skipped.

    Decodes words[position:] as _decode_evt2 does. When the outputs fill up inside a vector word, the kernel stops
    at that word and records the bits it emitted in state[DONE], to emit the others on the next call.
    """
    high, raw_high, loops, low = state[HIGH], state[RAW_HIGH], state[LOOPS], state[LOW]
    row, base, base_p, done = state[ROW], state[BASE], state[BASE_P], state[DONE]
    last_t, bad = state[LAST_T], state[BAD] != 0
    capacity = t.size
    if position < 0 or n < 0:  # never; saying so lets LLVM drop the negative-index handling of every access
        raise ValueError("negative start")
    while position < words.size:
        word = np.int64(words[position])
        kind = word >> 12
        if kind == 0x2:
            if high >= 0 and row >= 0:  # events before the first TIME_HIGH and ADDR_Y are dropped
                if n == capacity:
                    break
                time = (high << 12) | low
                column = word & 0x7FF
                x[n], y[n], t[n], p[n] = column, row, time, (word >> 11) & 1
                if sources is not None:
                    sources[n] = position
                bad |= (time < last_t) | (column >= width) | (row >= height)
                last_t = time
                n += 1
        elif kind == 0x0:
            row = word & 0x7FF
        elif kind == 0x6:
            low = word & 0xFFF
        elif kind == 0x4 or kind == 0x5:
            if base >= 0:  # vector words before the first VECT_BASE_X are dropped
                bits = word & (0xFFF if kind == 0x4 else 0xFF)
                mask = bits & ~done
                if mask and high >= 0 and row >= 0:
                    time = (high << 12) | low
                    bad |= (time < last_t) | (row >= height)  # the same for every event of the word
                    last_t = time
                    rest = 0
                    if n + 12 > capacity:  # the outputs may not hold them all: keep those past their end in `rest`
                        rest = mask
                        for _ in range(capacity - n):
                            rest &= rest - 1
                        mask &= ~rest
                    while mask:
                        column = base + LOWEST_BIT[mask]
                        x[n], y[n], t[n], p[n] = column, row, time, base_p
                        if sources is not None:
                            sources[n] = position
                        bad |= column >= width
                        n += 1
                        mask &= mask - 1
                    if rest:  # outputs full: stop at this word, with the bits emitted so far in `done`
                        done = bits & ~rest
                        break
                done = 0
                base += 12 if kind == 0x4 else 8
        elif kind == 0x3:
            base, base_p = word & 0x7FF, (word >> 11) & 1
        elif kind == 0x8:
            raw = word & 0xFFF
            if raw_high >= 0 and raw < raw_high - (1 << 11):  # a fall by more than half the range: a wrap
                loops += 1
            raw_high, high = raw, raw + (loops << 12)
        position += 1
    state[HIGH], state[RAW_HIGH], state[LOOPS], state[LOW] = high, raw_high, loops, low
    state[ROW], state[BASE], state[BASE_P], state[DONE] = row, base, base_p, done
    state[LAST_T], state[BAD] = last_t, bad
    return position, n
