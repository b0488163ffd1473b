"""Prophesee `.raw` recordings in EVT 2.0 and EVT 3.0, decoded with vectorised NumPy from the published word formats.

A `.raw` file is an ASCII header of lines starting with '%' (ended by the first line that does not, or by `% end`)
followed by little-endian words: 32-bit for EVT 2.0, 16-bit for EVT 3.0. (Without `% end`, as in older files, a first
data byte of 0x25 '%' would be read as header: the format leaves that ambiguous.) The file is decoded in blocks of words
with the decoder state (time base, wrap count, current row, vector base) carried from block to block, so a
recording of any length streams in bounded memory.

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
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from dae_jax.recordings import DEFAULT_CHUNK, Events, Recording, RecordingError, check_events, rechunk, sensor_geometry

WORDS_PER_BLOCK = 1 << 17  # words decoded at a time (small enough for the working arrays to stay in cache)
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
        return rechunk(self._decoded_blocks(), chunk_size)

    def _decoded_blocks(self) -> Iterator[Events]:
        word = SUPPORTED[self.header.format]
        decoder = Evt2Decoder() if self.header.format == "EVT2" else Evt3Decoder()
        first, last_t, start = 0, None, 0
        with open(self.path, "rb") as f:
            f.seek(self.header.size)
            while block := f.read(WORDS_PER_BLOCK * word):
                if len(block) % word:  # the file shrank since it was opened
                    raise RecordingError(f"{self.path}: truncated: partial word at byte offset "
                                         f"{self.header.size + (start + len(block) // word) * word}")
                words = np.frombuffer(block, np.dtype(f"<u{word}"))
                events = decoder.decode(words)
                if len(events):
                    try:
                        check_events(events, self.path, first, last_t, self.height, self.width)
                    except RecordingError:
                        offsets = self.header.size + (start + decoder.source_words()) * word
                        check_events(events, self.path, first, last_t, self.height, self.width, offsets)
                    first, last_t = first + len(events), int(events.t[-1])
                    yield Events(events.x.astype(np.uint16, copy=False), events.y.astype(np.uint16, copy=False),
                                 events.t, events.p)
                start += words.size


# NumPy notes for speed: gathers use `take` with int64 indices, counts use int32 cumsums (an int64 cumsum of a bool
# array is an order of magnitude slower), selections use flatnonzero + take (boolean indexing is slower still).

def _after(carried: int, values: np.ndarray) -> np.ndarray:
    """int64 [carried, *values]: a register's value carried in from the previous block, then the values set here."""
    out = np.empty(values.size + 1, np.int64)
    out[0], out[1:] = carried, values
    return out


def _packed_fill(length: int, carried: int, registers: list[tuple[np.ndarray, np.ndarray, int, int]]) -> np.ndarray:
    """Registers forward-filled over `length` words, packed in one int64: entry i is the packed value after the first
    i words. Each register is (positions of the words that set it, the values they set, bit shift, value carried in
    from the previous block); `carried` is the packed value at the start. Filling is one cumulative sum of the
    changes each setting word makes, so every register's values must stay inside its bit field."""
    changes = np.zeros(length + 1, np.int64)
    changes[0] = carried
    for at, values, shift, before in registers:
        if at.size:
            changes[at + 1] = np.diff(values.astype(np.int64), prepend=before) << shift
    return np.cumsum(changes)


def _unwrapped(raw: np.ndarray, previous: int, loops: int, bits: int) -> tuple[np.ndarray, int]:
    """TIME_HIGH values with wraps counted: a fall by more than half the `bits`-bit range adds 2^bits. `previous` is
    the last raw value of the earlier blocks (-1 if none), `loops` their wrap count; returns values and new count."""
    before = np.r_[previous if previous >= 0 else raw[:1], raw[:-1]]
    wraps = loops + np.cumsum(raw < before - (1 << (bits - 1)))
    return raw + (wraps << bits), int(wraps[-1]) if wraps.size else loops


class Evt2Decoder:
    """EVT 2.0: 32-bit words, type in bits 31..28. CD_OFF 0x0 / CD_ON 0x1 hold timestamp bits 5..0 (27..22), x
    (21..11), y (10..0); EVT_TIME_HIGH 0x8 holds timestamp bits 33..6 (27..0); EXT_TRIGGER 0xA, OTHERS 0xE and
    CONTINUED 0xF are skipped."""

    def __init__(self) -> None:
        self.high = -1  # unwrapped TIME_HIGH in force at the end of the last block (-1: none seen yet)
        self.raw_high = -1
        self.loops = 0
        self._cd_at = np.zeros(0, np.int64)

    def decode(self, words: np.ndarray) -> Events:
        """The CD events of one block of words."""
        kind = words >> 28
        is_high = kind == 0x8
        cd_at = np.flatnonzero(kind <= 0x1)
        raw = (words.take(np.flatnonzero(is_high)) & 0x0FFFFFFF).astype(np.int64)
        highs, loops = _unwrapped(raw, self.raw_high, self.loops, 28)
        which = np.cumsum(is_high, dtype=np.int32).take(cd_at)  # 1 + index of the TIME_HIGH before each CD word
        if self.high < 0:  # only the file's first block can start before a TIME_HIGH
            placed = int(np.searchsorted(which, 1))
            cd_at, which = cd_at[placed:], which[placed:]
        high = _after(self.high, highs).take(which)
        if highs.size:
            self.high, self.raw_high, self.loops = int(highs[-1]), int(raw[-1]), loops
        self._cd_at = cd_at
        cd = words.take(cd_at)
        t = (high << 6) | ((cd >> 22) & 0x3F)
        x = ((cd >> 11) & 0x7FF).astype(np.uint16)
        y = (cd & 0x7FF).astype(np.uint16)
        p = (cd >> 28).astype(np.uint8)
        return Events(x, y, t, p)

    def source_words(self) -> np.ndarray:
        """For each event of the last decoded block, the index in the block of the word it came from."""
        return self._cd_at


def _nth_bit_table(bits: int) -> np.ndarray:
    """table[mask, j] = position of the j-th set bit (from bit 0 up) of a `bits`-bit mask."""
    set_bits = (np.arange(1 << bits)[:, None] >> np.arange(bits)) & 1
    return np.argsort(1 - set_bits, axis=1, kind="stable").astype(np.uint8)


NTH_BIT = _nth_bit_table(12).ravel()  # [mask * 12 + j]
BASE_BIAS = 1 << 40  # keeps the packed vector base positive: more than 12 x the words of any block


class Evt3Decoder:
    """EVT 3.0: 16-bit words, type in bits 15..12. EVT_ADDR_Y 0x0 (y in 10..0), EVT_ADDR_X 0x2 (x in 10..0,
    polarity in 11: one event), VECT_BASE_X 0x3 (x base in 10..0, polarity in 11), VECT_12 0x4 / VECT_8 0x5 (bit k of
    the 12 / 8-bit mask: an event at base + k; the base then advances by 12 / 8), EVT_TIME_LOW 0x6 (timestamp bits
    11..0), EVT_TIME_HIGH 0x8 (timestamp bits 23..12); CONTINUED_4 0x7, EXT_TRIGGER 0xA, OTHERS 0xE and
    CONTINUED_12 0xF are skipped.

    The decoder's registers (time high and low, row, vector base and polarity) are forward-filled over the words of a
    block by cumulative sums of packed changes (`_packed_fill`); each event word reads them where it stands.
    """

    def __init__(self) -> None:
        self.high = -1  # unwrapped time high in force (-1: none yet)
        self.raw_high = -1
        self.loops = 0
        self.low = 0
        self.y = -1
        self.base = -1  # vector base x in force, advanced past every vector word so far (-1: none yet)
        self.base_p = 0
        self._sources: tuple[np.ndarray, np.ndarray | None] = (np.zeros(0, np.int64), None)

    def decode(self, words: np.ndarray) -> Events:
        """The CD events of one block of words."""
        kind = words >> 12
        ev_at = np.flatnonzero((kind == 0x2) | (kind == 0x4) | (kind == 0x5))
        y_at, low_at, high_at, base_at = (np.flatnonzero(kind == k) for k in (0x0, 0x6, 0x8, 0x3))
        ev = words.take(ev_at)
        ev_kind = ev >> 12
        single, vect_12, vect_8 = ev_kind == 0x2, ev_kind == 0x4, ev_kind == 0x5

        # Time and row, packed as (time << 11) | y with time = (high << 12) | low, at every event word.
        raw = (words.take(high_at) & 0xFFF).astype(np.int64)
        highs, loops = _unwrapped(raw, self.raw_high, self.loops, 12)
        high0, y0 = max(self.high, 0), max(self.y, 0)
        time_y = _packed_fill(words.size, (((high0 << 12) | self.low) << 11) | y0, [
            (y_at, words.take(y_at) & 0x7FF, 0, y0),
            (low_at, words.take(low_at) & 0xFFF, 11, self.low),
            (high_at, highs, 23, high0),
        ])
        ev_time_y = time_y.take(ev_at)

        x0, p0 = ev & 0x7FF, ((ev >> 11) & 1).astype(np.uint8)
        mask = np.where(vect_8, ev & 0xFF, ev & 0xFFF)
        mask[single] = 1
        has_vectors = not single.all()
        if has_vectors or base_at.size:
            # Vector base x of each vector word: its VECT_BASE_X value plus 12 / 8 for each vector word since. Held
            # as `value - steps of the event words before the VECT_BASE_X` (+ BASE_BIAS, to stay positive) with the
            # polarity in bit 0, so a vector word adds the steps before it.
            step = vect_12 * np.int32(12) + vect_8 * np.int32(8)
            steps = np.cumsum(step, dtype=np.int32)
            base_words = words.take(base_at)
            steps_at_base = _after(0, steps).take(np.searchsorted(ev_at, base_at))
            carried = ((max(self.base, 0) + BASE_BIAS) << 1) | self.base_p
            adjusted = (((base_words & 0x7FF) - steps_at_base + BASE_BIAS) << 1) | ((base_words >> 11) & 1)
            base_fill = _packed_fill(words.size, carried, [(base_at, adjusted, 0, carried)])
            base = base_fill.take(ev_at)
            x0 = np.where(single, x0, (base >> 1) - BASE_BIAS + (steps - step))
            p0 = np.where(single, p0, base & 1).astype(np.uint8)
            if self.base < 0:  # vector words before the first VECT_BASE_X cannot be placed
                unplaced = np.searchsorted(ev_at, base_at[0]) if base_at.size else ev.size
                mask[:unplaced] *= single[:unplaced]
            if self.base >= 0 or base_at.size:
                self.base = (int(base_fill[-1]) >> 1) - BASE_BIAS + int(steps[-1] if steps.size else 0)
                self.base_p = int(base_fill[-1]) & 1
        # Events before the first TIME_HIGH and ADDR_Y of the file cannot be placed: they are dropped.
        for carried_value, at in ((self.high, high_at), (self.y, y_at)):
            if carried_value < 0:
                mask[: np.searchsorted(ev_at, at[0]) if at.size else ev.size] = 0
        self.low = (int(time_y[-1]) >> 11) & 0xFFF
        if y_at.size:
            self.y = int(time_y[-1]) & 0x7FF
        if highs.size:
            self.high, self.raw_high, self.loops = int(highs[-1]), int(raw[-1]), loops

        if not has_vectors and mask.all():  # no vector words and nothing dropped: one event per word
            self._sources = (ev_at, None)
            return Events(x0, ev_time_y & 0x7FF, ev_time_y >> 11, p0)
        # One event per set mask bit, in word order then bit order: x = x0 + position of the bit.
        counts = np.bitwise_count(mask)
        row = np.repeat(np.arange(ev.size), counts)
        first = np.cumsum(counts, dtype=np.int32) - counts  # index of each word's first event
        bit = NTH_BIT.take(mask.take(row) * 12 + (np.arange(row.size) - first.take(row)))
        self._sources = (ev_at, row)
        time_y = ev_time_y.take(row)
        return Events(x0.take(row) + bit, time_y & 0x7FF, time_y >> 11, p0.take(row))

    def source_words(self) -> np.ndarray:
        """For each event of the last decoded block, the index in the block of the word it came from."""
        ev_at, row = self._sources
        return ev_at if row is None else ev_at.take(row)
