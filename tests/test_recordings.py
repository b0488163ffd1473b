"""Readers of users' recordings (dae_jax.recordings): AEDAT4, Prophesee EVT 2.0 / 3.0 `.raw`, plain HDF5 / NPZ.

Each format is written by an independent writer (dv-processing's own for AEDAT4, the word-format encoders of
tests/fixtures_recordings.py for `.raw`, h5py / NumPy for plain files) and read back exactly; malformed files must
raise RecordingError naming the file and the position.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from dae_jax.recordings import Events, RecordingError, evt, open_recording, rechunk
from tests import fixtures_recordings as fx

AEDAT_SIZES = [(240, 320), (260, 346), (480, 640), (720, 1280)]  # (height, width)


def assert_events_equal(got: Events, want: dict[str, np.ndarray]) -> None:
    for k, dtype in (("x", np.uint16), ("y", np.uint16), ("t", np.int64), ("p", np.uint8)):
        assert getattr(got, k).dtype == dtype, k
        np.testing.assert_array_equal(getattr(got, k), want[k], err_msg=k)


def assert_chunks_rejoin(recording, want: dict[str, np.ndarray], seed: int = 0) -> None:
    """Random chunk sizes give chunks of at most that size whose concatenation is the whole recording."""
    rng = np.random.default_rng(seed)
    for chunk_size in [1, *rng.integers(2, len(want["t"]) + 5, 4).tolist()]:
        chunks = list(recording.event_chunks(chunk_size))
        assert all(0 < len(c) <= chunk_size for c in chunks)
        assert all(len(c) == chunk_size for c in chunks[:-1])
        assert_events_equal(Events.concatenate(chunks), want)


def test_rechunk_cuts_runs_into_exact_chunks():
    runs = [Events(*(np.arange(a, b, dtype=d) for d in (np.uint16, np.uint16, np.int64, np.uint8)))
            for a, b in [(0, 3), (3, 3), (3, 10), (10, 11), (11, 30)]]
    chunks = list(rechunk(iter(runs), 4))
    assert [len(c) for c in chunks] == [4] * 7 + [2]
    np.testing.assert_array_equal(Events.concatenate(chunks).t, np.arange(30))


# ----- AEDAT4 -----

@pytest.fixture(scope="module")
def aedat_files(tmp_path_factory) -> dict[tuple[int, int], tuple[Path, dict, list]]:
    """One AEDAT4 file per sensor size; 346x260 with grayscale frames, 640x480 with colour frames."""
    folder = tmp_path_factory.mktemp("aedat4")
    rng = np.random.default_rng(3)
    files = {}
    for i, (h, w) in enumerate(AEDAT_SIZES):
        events = fx.random_events(400, h, w, seed=i, t0=1_700_000_000_000_000)
        frames = []
        if (h, w) == (260, 346):
            frames = [(int(events["t"][k]), rng.integers(0, 256, (h, w), dtype=np.uint8)) for k in (0, 150, 399)]
        if (h, w) == (480, 640):
            frames = [(int(events["t"][k]) + 1, rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for k in (10, 300)]
        path = folder / f"rec_{w}x{h}.aedat4"
        files[h, w] = (path, events, fx.write_aedat4(path, h, w, events, frames))
    return files


@pytest.mark.parametrize("size", AEDAT_SIZES, ids=lambda s: f"{s[1]}x{s[0]}")
def test_aedat4_reads_back_what_dv_wrote(aedat_files, size):
    path, events, frames = aedat_files[size]
    recording = open_recording(path)
    assert (recording.height, recording.width) == size
    assert_events_equal(recording.read_events(), events)
    np.testing.assert_array_equal(recording.frame_timestamps, [t for t, _ in frames])
    got = list(recording.frames())
    assert [t for t, _ in got] == [t for t, _ in frames]
    for (_, image), (_, want) in zip(got, frames, strict=True):
        assert image.dtype == np.uint8 and image.shape == (*size, 3)
        np.testing.assert_array_equal(image, want)


def test_aedat4_chunks_and_sensor_size(aedat_files):
    path, events, _ = aedat_files[260, 346]
    assert_chunks_rejoin(open_recording(path, sensor_size=(260, 346)), events)
    with pytest.raises(RecordingError, match=re.escape(f"{path}: sensor_size (480, 640)")):
        open_recording(path, sensor_size=(480, 640))


def test_aedat4_truncated_or_not_aedat_is_an_error_naming_the_file(aedat_files, tmp_path):
    source = aedat_files[480, 640][0]
    data = source.read_bytes()
    cut = tmp_path / "cut.aedat4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(RecordingError, match=re.escape(str(cut)) + ".*dv-processing could not open") as error:
        open_recording(cut)
    assert "Stacktrace" not in str(error.value) and "truncated" in str(error.value).lower()
    garbage = tmp_path / "garbage.aedat4"
    garbage.write_bytes(b"not an aedat file\n" * 10)
    with pytest.raises(RecordingError, match=re.escape(str(garbage)) + ".*AEDAT4"):
        open_recording(garbage)


def test_aedat4_without_event_stream_is_an_error(tmp_path):
    path = tmp_path / "frames_only.aedat4"
    fx.write_aedat4(path, 240, 320, None, [(5, np.zeros((240, 320), np.uint8))])
    with pytest.raises(RecordingError, match=re.escape(f"{path}: no event stream") + ".*frames"):
        open_recording(path)


# ----- Prophesee EVT 2.0 / 3.0 -----

ENCODERS = {"EVT2": fx.encode_evt2, "EVT3": fx.encode_evt3}
HEADERS = {  # name: (format, header lines, '% end', geometry the reader must find)
    "evt3_new": ("EVT3", fx.NEW_EVT3_HEADER, True, (720, 1280)),
    "evt3_old_gen31": ("EVT3", fx.OLD_EVT3_HEADER, False, (480, 640)),
    "evt2_new": ("EVT2", ["format EVT2;height=480;width=640", "geometry 640x480", "serial_number 42"], True,
                 (480, 640)),
    "evt2_old_imx636": ("EVT2", ["evt 2.0", "plugin_name hal_plugin_imx636_evk4", "camera_integrator_name Prophesee"],
                        False, (720, 1280)),
    "evt2_generation": ("EVT2", ["evt 2.0", "sensor_generation 4.2"], False, (720, 1280)),
}


@pytest.mark.parametrize("name", HEADERS)
def test_raw_decodes_encoded_events_exactly(tmp_path, name):
    fmt, lines, end, size = HEADERS[name]
    events = fx.random_events(3000, *size, seed=len(name), runs=True)
    path = fx.write_raw(tmp_path / f"{name}.raw", fx.raw_header(lines, end), ENCODERS[fmt](events, noise_every=7))
    recording = open_recording(path)
    assert (recording.height, recording.width) == size
    assert recording.header.format == fmt
    assert_events_equal(recording.read_events(), events)


def test_evt3_encoder_uses_every_word_kind(tmp_path):
    events = fx.random_events(3000, 720, 1280, runs=True)
    kinds = set((np.frombuffer(fx.encode_evt3(events, noise_every=7), "<u2") >> 12).tolist())
    assert kinds == {0x0, 0x2, 0x3, 0x4, 0x5, 0x6, 0x7, 0x8, 0xA, 0xE, 0xF}


@pytest.mark.parametrize("fmt", ["EVT2", "EVT3"])
def test_raw_streams_in_blocks_with_random_chunk_sizes(tmp_path, monkeypatch, fmt):
    """Decoder state (time, row, vector base) carries across word blocks of every size, even 1 word."""
    events = fx.random_events(1500, 720, 1280, seed=5, runs=True)
    path = fx.write_raw(tmp_path / "a.raw", fx.raw_header([f"format {fmt};height=720;width=1280"], True),
                        ENCODERS[fmt](events, noise_every=5))
    recording = open_recording(path)
    for words in (1, 7, 64, 1000):
        monkeypatch.setattr(evt, "WORDS_PER_BLOCK", words)
        assert_events_equal(recording.read_events(), events)
    assert_chunks_rejoin(recording, events, seed=1)


def test_evt3_time_wraps_past_24_bits(tmp_path, monkeypatch):
    events = fx.random_events(600, 720, 1280, seed=2, t0=(1 << 24) - 1_200_000, max_step=1_000_000,
                               runs=True)
    assert events["t"][-1] > 3 * (1 << 24)  # several wraps
    path = fx.write_raw(tmp_path / "wrap.raw", fx.raw_header(fx.NEW_EVT3_HEADER, True), fx.encode_evt3(events))
    monkeypatch.setattr(evt, "WORDS_PER_BLOCK", 50)
    assert_events_equal(open_recording(path).read_events(), events)


def test_evt2_time_wraps_past_34_bits(tmp_path, monkeypatch):
    events = fx.random_events(2000, 480, 640, seed=4, t0=(1 << 34) - 20_000)
    assert events["t"][0] < 1 << 34 < events["t"][-1]
    path = fx.write_raw(tmp_path / "wrap.raw", fx.raw_header(["format EVT2;height=480;width=640"], True),
                        fx.encode_evt2(events, noise_every=11))
    monkeypatch.setattr(evt, "WORDS_PER_BLOCK", 100)
    assert_events_equal(open_recording(path).read_events(), events)


def long_events(fmt: str) -> dict[str, np.ndarray]:
    """20 000 events with runs over about a minute, from 5 s before the format's first timestamp wrap (2^34 µs for
    EVT 2.0; 2^24 µs for EVT 3.0, which wraps three more times)."""
    return fx.random_events(20_000, 720, 1280, seed=13, t0=(1 << (34 if fmt == "EVT2" else 24)) - 5_000_000,
                            max_step=20_000, runs=True)


# (WORDS_PER_BLOCK, RUN_EVENTS, MAX_RUN_EVENTS, chunk size): blocks that cut vector runs; runs of 7 or 5 events that
# fill up inside vector words; chunks joined from runs of MAX_RUN_EVENTS; and the defaults.
SPLITS = [(2, 7, 1 << 24, 1), (13, 7, 1 << 24, 5), (1000, 1000, 1 << 24, 12), (97, 1 << 20, 50, 120),
          (1 << 17, 1 << 20, 1 << 24, 1 << 20)]


@pytest.mark.parametrize("fmt", ["EVT2", "EVT3"])
def test_raw_long_stream_decodes_exactly_however_it_is_split(tmp_path, monkeypatch, fmt):
    """The kernel stops and resumes at block ends and when the arrays of a run are full, also inside a vector word."""
    events = long_events(fmt)
    payload = ENCODERS[fmt](events, noise_every=5, seed=13)
    assert events["t"][0] < 1 << (34 if fmt == "EVT2" else 24) and events["t"][-1] - events["t"][0] > 3 * (1 << 24)
    if fmt == "EVT3":
        words = np.frombuffer(payload, "<u2")
        vectors = words[(words >> 12 == 0x4) | (words >> 12 == 0x5)] & 0xFFF
        assert np.bitwise_count(vectors).max() > 7  # some vector words hold more events than a run of 7
    path = fx.write_raw(tmp_path / "long.raw", fx.raw_header([f"format {fmt};height=720;width=1280"], True), payload)
    recording = open_recording(path)
    for words_per_block, run_events, max_run_events, chunk_size in SPLITS:
        monkeypatch.setattr(evt, "WORDS_PER_BLOCK", words_per_block)
        monkeypatch.setattr(evt, "RUN_EVENTS", run_events)
        monkeypatch.setattr(evt, "MAX_RUN_EVENTS", max_run_events)
        chunks = list(recording.event_chunks(chunk_size))
        assert all(len(c) == chunk_size for c in chunks[:-1]) and 0 < len(chunks[-1]) <= chunk_size
        assert_events_equal(Events.concatenate(chunks), events)


@pytest.mark.parametrize("fmt", ["EVT2", "EVT3"])
@pytest.mark.parametrize("fault", ["outside", "back"])
def test_raw_errors_do_not_depend_on_how_the_stream_is_split(tmp_path, monkeypatch, fmt, fault):
    """The same message, naming the same event and word, for every split; no event from the bad one on is handed out."""
    events = long_events(fmt)
    bad = 12_345
    if fault == "outside":
        events["x"][bad] = 1300
    else:
        events["t"][bad] = events["t"][bad - 1] - 5_000
    payload = ENCODERS[fmt](events, noise_every=5, seed=13)
    path = fx.write_raw(tmp_path / "bad.raw", fx.raw_header([f"format {fmt};height=720;width=1280"], True), payload)
    recording = open_recording(path)
    messages = set()
    for words_per_block, run_events, max_run_events, chunk_size in SPLITS:
        monkeypatch.setattr(evt, "WORDS_PER_BLOCK", words_per_block)
        monkeypatch.setattr(evt, "RUN_EVENTS", run_events)
        monkeypatch.setattr(evt, "MAX_RUN_EVENTS", max_run_events)
        handed_out = 0
        with pytest.raises(RecordingError) as error:
            for chunk in recording.event_chunks(chunk_size):
                handed_out += len(chunk)
        assert handed_out <= bad
        messages.add(str(error.value))
    assert len(messages) == 1
    message = messages.pop()
    assert message.startswith(f"{path}: event {bad} (byte offset ")
    assert ("(x=1300, " in message and "outside the 1280x720 sensor" in message if fault == "outside"
            else f"at t={events['t'][bad]} µs is earlier than the event before it" in message)


def test_evt3_vector_x_beyond_uint16_is_named_exactly(tmp_path):
    """A vector base advanced past 65535 by empty vector words: the error gives the true x, not a uint16 wrap."""
    words = [0x8 << 12, 0x6 << 12, 0x0 << 12 | 5, 0x3 << 12 | 2000] + [0x4 << 12] * 6000 + [0x4 << 12 | 0b1000]
    header = fx.raw_header(fx.NEW_EVT3_HEADER, True)
    path = fx.write_raw(tmp_path / "far.raw", header, np.array(words, "<u2").tobytes())
    with pytest.raises(RecordingError, match=re.escape(f"{path}: event 0 (byte offset {len(header) + 2 * 6004}) at "
                                                       f"(x={2000 + 12 * 6000 + 3}, y=5) is outside the 1280x720 "
                                                       f"sensor")):
        open_recording(path).read_events()


def test_raw_drops_events_before_the_decoder_has_time_and_row(tmp_path):
    events = fx.random_events(200, 720, 1280, seed=6, runs=True)
    orphan2 = np.array([(0x1 << 28) | (5 << 22) | (3 << 11) | 4], "<u4").tobytes()  # CD_ON before any TIME_HIGH
    path = fx.write_raw(tmp_path / "a2.raw", fx.raw_header(["format EVT2;height=720;width=1280"], True),
                        orphan2 + fx.encode_evt2(events))
    assert_events_equal(open_recording(path).read_events(), events)
    # ADDR_X and a vector before TIME_HIGH, then after it but before the first ADDR_Y.
    orphan3 = np.array([0x2 << 12 | 5, 0x3 << 12 | 9, 0x4 << 12 | 0xFFF, 0x8 << 12 | 0, 0x2 << 12 | 6], "<u2")
    path = fx.write_raw(tmp_path / "a3.raw", fx.raw_header(fx.NEW_EVT3_HEADER, True),
                        orphan3.tobytes() + fx.encode_evt3(events))
    assert_events_equal(open_recording(path).read_events(), events)


def test_raw_geometry_from_sensor_size_or_error(tmp_path):
    events = fx.random_events(100, 100, 200)
    path = fx.write_raw(tmp_path / "nogeo.raw", fx.raw_header(["evt 3.0", "serial_number 7"], False),
                        fx.encode_evt3(events))
    with pytest.raises(RecordingError, match=re.escape(str(path)) + ".*no geometry.*pass sensor_size"):
        open_recording(path)
    recording = open_recording(path, sensor_size=(100, 200))
    assert (recording.height, recording.width) == (100, 200)
    assert_events_equal(recording.read_events(), events)
    # a sensor_size overrides the geometry inferred from the sensor name, but not an explicit one
    gen31 = fx.write_raw(tmp_path / "gen31.raw", fx.raw_header(fx.OLD_EVT3_HEADER, False), fx.encode_evt3(events))
    assert open_recording(gen31, sensor_size=(100, 200)).width == 200
    explicit = fx.write_raw(tmp_path / "hd.raw", fx.raw_header(fx.NEW_EVT3_HEADER, True), fx.encode_evt3(events))
    with pytest.raises(RecordingError, match=re.escape(str(explicit)) + r".*sensor_size \(100, 200\).*1280x720"):
        open_recording(explicit, sensor_size=(100, 200))


def test_raw_sensor_table():
    assert evt.inferred_geometry({"plugin_name": "hal_plugin_gen31_fx3"}) == (480, 640)
    assert evt.inferred_geometry({"plugin_name": "hal_plugin_gen41_evk3"}) == (720, 1280)
    assert evt.inferred_geometry({"plugin_name": "hal_plugin_genx320_evk"}) == (320, 320)
    assert evt.inferred_geometry({"generation": "3.1"}) == (480, 640)
    assert evt.inferred_geometry({"plugin_name": "hal_plugin_unknown"}) is None


@pytest.mark.parametrize("fmt", ["EVT2", "EVT3"])
def test_raw_truncated_word_is_an_error_with_its_byte_offset(tmp_path, fmt):
    header = fx.raw_header([f"format {fmt};height=720;width=1280"], True)
    payload = ENCODERS[fmt](fx.random_events(50, 720, 1280))
    path = fx.write_raw(tmp_path / "cut.raw", header, payload[:-1])
    word = 4 if fmt == "EVT2" else 2
    offset = len(header) + len(payload) - word
    with pytest.raises(RecordingError, match=re.escape(f"{path}: truncated: {word - 1} trailing byte(s) at byte "
                                                       f"offset {offset}")):
        open_recording(path)


@pytest.mark.parametrize("fmt", ["EVT2", "EVT3"])
def test_raw_event_outside_the_sensor_names_event_and_word(tmp_path, fmt):
    events = fx.random_events(300, 720, 1280, seed=8)
    events["x"][123] = 1300
    header = fx.raw_header([f"format {fmt};height=720;width=1280"], True)
    path = fx.write_raw(tmp_path / "out.raw", header, ENCODERS[fmt](events))
    with pytest.raises(RecordingError, match=re.escape(f"{path}: event 123 (byte offset ")) as error:
        open_recording(path).read_events()
    assert "(x=1300" in str(error.value) and "outside the 1280x720 sensor" in str(error.value)
    offset = int(re.search(r"byte offset (\d+)", str(error.value))[1])
    data = path.read_bytes()
    if fmt == "EVT2":
        word = int.from_bytes(data[offset:offset + 4], "little")
        assert word >> 29 == 0 and (word >> 11) & 0x7FF == 1300
    else:
        word = int.from_bytes(data[offset:offset + 2], "little")
        assert word >> 12 == 0x2 and word & 0x7FF == 1300


def test_raw_events_out_of_time_order_name_the_event(tmp_path):
    events = fx.random_events(300, 720, 1280, seed=9)
    words = np.frombuffer(fx.encode_evt2(events), "<u4").copy()
    high_at = np.flatnonzero(words >> 28 == 0x8)
    words[high_at[5]] = (0x8 << 28) | 3  # a TIME_HIGH that jumps back (by less than half the range: no wrap)
    first_bad = int(np.sum((words[: high_at[5]] >> 28) <= 1))
    path = fx.write_raw(tmp_path / "back.raw", fx.raw_header(["format EVT2;height=720;width=1280"], True),
                        words.tobytes())
    with pytest.raises(RecordingError, match=re.escape(f"{path}: event {first_bad} (byte offset ") + r".*time order"):
        open_recording(path).read_events()


@pytest.mark.parametrize(("lines", "found"), [(["format EVT4;height=720;width=1280"], "EVT4"),
                                              (["evt 2.1", "geometry 640x480"], "EVT21"),
                                              (["format EVT21;height=720;width=1280"], "EVT21")])
def test_raw_unsupported_format_is_named(tmp_path, lines, found):
    path = fx.write_raw(tmp_path / "x.raw", fx.raw_header(lines, True), b"\0" * 64)
    with pytest.raises(RecordingError, match=re.escape(f"{path}: event format {found} is not supported")):
        open_recording(path)


def test_raw_without_format_line_is_an_error(tmp_path):
    path = fx.write_raw(tmp_path / "x.raw", fx.raw_header(["geometry 640x480"], True), b"\0" * 64)
    with pytest.raises(RecordingError, match=re.escape(f"{path}: the header names no event format")):
        open_recording(path)


# ----- plain HDF5 / NPZ -----

def test_h5_dsec_layout_with_blosc_t_offset_and_attributes(tmp_path):
    events = fx.random_events(400, 480, 640, seed=10, t0=49_599_300_523 + 17)
    path = fx.write_h5(tmp_path / "events.h5", events, dsec=True, t_offset=49_599_300_523,
                       attrs={"width": 640, "height": 480})
    recording = open_recording(path)
    assert (recording.height, recording.width) == (480, 640)
    assert recording.frame_timestamps.size == 0 and list(recording.frames()) == []
    assert_events_equal(recording.read_events(), events)
    assert_chunks_rejoin(recording, events)


def test_h5_without_geometry_needs_sensor_size(tmp_path):
    events = fx.random_events(100, 480, 640)
    path = fx.write_h5(tmp_path / "events.h5", events, dsec=True)
    with pytest.raises(RecordingError, match=re.escape(f"{path}: the file gives no sensor size")):
        open_recording(path)
    assert_events_equal(open_recording(path, sensor_size=(480, 640)).read_events(), events)


def test_h5_top_level_float_seconds_and_bool_polarity(tmp_path):
    events = fx.random_events(500, 260, 346, seed=11)
    columns = {"x": events["x"].astype(np.int32), "y": events["y"].astype(np.float32), "t": events["t"] / 1e6,
               "p": events["p"].astype(bool)}
    path = fx.write_h5(tmp_path / "top.hdf5", columns, dsec=False, attrs={"width": 346, "height": 260, "t_unit": "s"})
    assert_events_equal(open_recording(path).read_events(), events)
    no_unit = fx.write_h5(tmp_path / "nounit.h5", columns, dsec=False, attrs={"width": 346, "height": 260})
    with pytest.raises(RecordingError, match=re.escape(f"{no_unit}: timestamps t are floating point")):
        open_recording(no_unit)


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_signed_polarity_and_geometry_arrays(tmp_path, compressed):
    events = fx.random_events(1200, 240, 320, seed=12)
    path = tmp_path / "events.npz"
    (np.savez_compressed if compressed else np.savez)(
        path, x=events["x"], y=events["y"].astype(np.int64), t=events["t"],
        p=events["p"].astype(np.int8) * 2 - 1, width=np.array(320), height=np.array(240))
    recording = open_recording(path)
    assert (recording.height, recording.width) == (240, 320)
    assert_events_equal(recording.read_events(), events)
    assert_chunks_rejoin(recording, events)


@pytest.mark.parametrize("gray", [False, True])
def test_frames_folder_next_to_the_file(tmp_path, gray):
    events = fx.random_events(100, 60, 80)
    path = tmp_path / "seq.npz"
    np.savez(path, **events, width=np.array(80), height=np.array(60))
    stamps = [1000, 2000, 2000, 5000]
    frames = fx.write_frames_dir(tmp_path / "seq_frames", stamps, 60, 80, gray=gray)
    recording = open_recording(path)
    np.testing.assert_array_equal(recording.frame_timestamps, stamps)
    got = list(recording.frames())
    assert [t for t, _ in got] == stamps
    for (_, image), want in zip(got, frames, strict=True):
        np.testing.assert_array_equal(image, want)
    elsewhere = tmp_path / "elsewhere"
    shutil.move(tmp_path / "seq_frames", elsewhere)
    assert open_recording(path).frame_timestamps.size == 0
    assert open_recording(path, frames_dir=elsewhere).frame_timestamps.tolist() == stamps


def test_raw_and_aedat4_without_frames_take_them_from_a_folder(tmp_path, aedat_files):
    """A Prophesee camera records no frames: an RGB camera's images beside the file (or in frames_dir) are its."""
    events = fx.random_events(200, 480, 640, seed=5)
    path = fx.write_raw(tmp_path / "drive.raw", fx.raw_header(["format EVT3;height=480;width=640"], True),
                        fx.encode_evt3(events))
    assert open_recording(path).frame_timestamps.size == 0
    frames = fx.write_frames_dir(tmp_path / "drive_frames", [3000, 9000], 480, 640)
    recording = open_recording(path)
    assert [t for t, _ in recording.frames()] == [3000, 9000]
    np.testing.assert_array_equal(next(recording.frames())[1], frames[0])
    assert_events_equal(recording.read_events(), events)
    moved = tmp_path / "rgb_camera"
    shutil.move(tmp_path / "drive_frames", moved)
    assert open_recording(path, frames_dir=moved).frame_timestamps.tolist() == [3000, 9000]
    with pytest.raises(RecordingError, match="no such frames folder"):
        open_recording(path, frames_dir=tmp_path / "absent")
    aedat, _, _ = aedat_files[(240, 320)]  # an event-only AEDAT4 file
    local = shutil.copy(aedat, tmp_path / "dvx.aedat4")
    fx.write_frames_dir(tmp_path / "dvx_frames", [10, 20, 30], 240, 320)
    assert open_recording(local).frame_timestamps.tolist() == [10, 20, 30]


def test_frames_folder_errors_name_the_files(tmp_path):
    path = tmp_path / "seq.npz"
    np.savez(path, **fx.random_events(10, 60, 80), width=np.array(80), height=np.array(60))
    folder = tmp_path / "seq_frames"
    fx.write_frames_dir(folder, [1, 2, 3], 60, 80, count=2)
    with pytest.raises(RecordingError, match=re.escape(f"{folder / 'timestamps.txt'}: 3 timestamps for 2 images")):
        open_recording(path)
    fx.write_frames_dir(folder, [1, 3, 2], 60, 80)
    with pytest.raises(RecordingError, match=re.escape(f"{folder / 'timestamps.txt'}: timestamp 3 (2 µs, of "
                                                       f"000002.png) is earlier")):
        open_recording(path)
    with pytest.raises(RecordingError, match=re.escape(f"{tmp_path / 'nope'}: no such frames folder")):
        open_recording(path, frames_dir=tmp_path / "nope")


def test_plain_missing_arrays_are_named(tmp_path):
    events = fx.random_events(10, 60, 80)
    h5 = fx.write_h5(tmp_path / "nop.h5", events, dsec=True, skip=("p",))
    with pytest.raises(RecordingError, match=re.escape(f"{h5}: missing array(s) events/p")):
        open_recording(h5, sensor_size=(60, 80))
    npz = tmp_path / "nop.npz"
    np.savez(npz, x=events["x"], t=events["t"])
    with pytest.raises(RecordingError, match=re.escape(f"{npz}: missing array(s) y, p")):
        open_recording(npz, sensor_size=(60, 80))


def test_plain_bad_values_name_file_and_event(tmp_path):
    events = fx.random_events(50, 60, 80)

    def npz(name: str, **change: np.ndarray) -> Path:
        path = tmp_path / f"{name}.npz"
        np.savez(path, **{**events, **change})
        return path

    p = events["p"].astype(np.int16)
    p[17] = 2
    path = npz("pol2", p=p)
    with pytest.raises(RecordingError, match=re.escape(f"{path}: event 17 has polarity p=2")):
        open_recording(path, sensor_size=(60, 80)).read_events()
    p = events["p"].astype(np.int16) * 2 - 1
    p[:3], p[30] = (-1, 1, -1), 0
    path = npz("mixed", p=p)
    with pytest.raises(RecordingError, match=re.escape(f"{path}: event 30 has polarity p=0, mixing")):
        open_recording(path, sensor_size=(60, 80)).read_events()
    t = events["t"].copy()
    t[20] = t[19] - 1
    path = npz("unsorted", t=t)
    with pytest.raises(RecordingError, match=re.escape(f"{path}: event 20 at t={t[20]} µs is earlier")):
        list(open_recording(path, sensor_size=(60, 80)).event_chunks(7))
    x = events["x"].astype(np.int32)
    x[33] = -1
    path = npz("negative", x=x)
    with pytest.raises(RecordingError, match=re.escape(f"{path}: event 33 has x=-1")):
        open_recording(path, sensor_size=(60, 80)).read_events()
    path = npz("fractional", y=events["y"] + np.where(np.arange(50) == 44, 0.5, 0.0))
    with pytest.raises(RecordingError, match=re.escape(f"{path}: event 44 has y=")):
        open_recording(path, sensor_size=(60, 80)).read_events()
    path = npz("outside")
    with pytest.raises(RecordingError, match=re.escape(f"{path}: event ") + r"\d+ at .* outside the 40x30 sensor"):
        open_recording(path, sensor_size=(30, 40)).read_events()


def test_open_recording_missing_file_and_unknown_extension(tmp_path):
    with pytest.raises(RecordingError, match=re.escape(f"{tmp_path / 'none.raw'}: no such recording file")):
        open_recording(tmp_path / "none.raw")
    other = tmp_path / "events.csv"
    other.write_text("x,y,t,p\n")
    with pytest.raises(RecordingError, match=re.escape(f"{other}: unknown recording format '.csv'")):
        open_recording(other)
