"""Prediction on files: an event recording (AEDAT4, EVT 2.0/3.0 .raw, HDF5, NPZ) or a folder of prepared inputs.

  python -m dae_jax.predict --weights=WORKDIR|params.msgpack|model.pth --input=recording.raw --output=OUT \
      [--window=duration|count|frames] [--duration_ms=50] [--stride_ms=0] [--count=N] [--video=mp4,gif]

A recording is cut into windows (`dae_jax.recordings.windows`), each encoded as Tencode and predicted in jitted
batches (DepthAnyEvent-R carries its state through the recording), and OUT gets `depth/<i>.npy` (metres for a
log-depth model, as the protocol maps it; the raw output otherwise), `depth/<i>.png`, `timestamps.txt` (window
index, end time in µs) and `video.mp4` / `video.gif` of events | depth. Progress shows windows/s and the real-time
factor (recording seconds per wall second). A folder input takes `.npy` (H, W, C) or `.png` files in sorted order.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from PIL import Image

from dae_jax.eval.metrics import CLIP_DISTANCE, EvalSettings, logdepth_to_depth
from dae_jax.eval.visualize import colorize_depth, colorize_relative, event_image
from dae_jax.predictor import Predictor
from dae_jax.recordings import DEFAULT_CHUNK, EXTENSIONS, open_recording
from dae_jax.recordings.windows import DEFAULT_WINDOW, EventWindower, Window, WindowSpec
from dae_jax.stream import encode_window

VIDEO_FORMATS = ("mp4", "gif")


def read_input(path: str) -> np.ndarray:
    """One input file -> float32 (H, W, C) in [0, 1]."""
    if path.endswith(".npy"):
        x = np.load(path).astype(np.float32)
        if x.ndim == 2:
            x = x[..., None]
        if x.ndim != 3:
            raise ValueError(f"{path}: expected an (H, W, C) array, got shape {x.shape}")
        return x
    return np.asarray(Image.open(path).convert("RGB"), np.float32) / 255.0


def to_metres(raw: np.ndarray, settings: EvalSettings) -> np.ndarray:
    """A log-depth model's output as the protocol maps it to metres (per-frame max at the clip); others as they are."""
    if settings.use_logdepth:
        return logdepth_to_depth(raw, settings.reg_factor, settings.clip_distance).astype(np.float32)
    return raw


class _Outputs:
    """Writes each prediction's .npy and .png, the timestamps and the videos, and prints progress."""

    def __init__(self, output_dir: str, official: bool, settings: EvalSettings, video: Iterable[str],
                 fps: float, near_m: float, far_m: float):
        unknown = sorted(set(video) - set(VIDEO_FORMATS))
        if unknown:
            raise ValueError(f"video formats must be among {VIDEO_FORMATS}, got {unknown}")
        self.dir = output_dir
        os.makedirs(os.path.join(output_dir, "depth"), exist_ok=True)
        self.official, self.settings, self.near_m, self.far_m, self.fps = official, settings, near_m, far_m, fps
        self.video, self._mp4, self._gif = tuple(video), None, []
        self._stamps = open(os.path.join(output_dir, "timestamps.txt"), "w")
        self.count, self._t0, self._last_print = 0, time.perf_counter(), 0.0
        self.start_us = self.last_us = None  # the recording's first event; the latest window's end

    def add(self, index: int, t_us: int, encoding: np.ndarray, raw: np.ndarray) -> None:
        depth = raw if self.official else to_metres(raw, self.settings)
        np.save(os.path.join(self.dir, "depth", f"{index:06d}.npy"), depth)
        picture = colorize_relative(depth) if self.official else colorize_depth(depth, self.near_m, self.far_m)
        Image.fromarray(picture).save(os.path.join(self.dir, "depth", f"{index:06d}.png"))
        self._stamps.write(f"{index} {t_us}\n")
        if self.video:
            self._frame(np.concatenate([event_image(encoding), picture], axis=1))
        self.count += 1
        self.last_us = t_us
        self._progress(final=False)

    def _frame(self, frame: np.ndarray) -> None:
        if "mp4" in self.video:
            with warnings.catch_warnings():
                # ffmpeg starts by fork + exec, with no Python in the child: JAX's fork warning does not apply
                warnings.filterwarnings("ignore", "os.fork", RuntimeWarning)
                if self._mp4 is None:
                    import imageio.v2 as imageio

                    self._mp4 = imageio.get_writer(os.path.join(self.dir, "video.mp4"), fps=self.fps,
                                                   codec="libx264", macro_block_size=2, ffmpeg_log_level="error")
                self._mp4.append_data(frame)
        if "gif" in self.video:
            self._gif.append(Image.fromarray(frame))

    def stats(self) -> dict[str, float]:
        wall = time.perf_counter() - self._t0
        span_s = 0.0 if None in (self.start_us, self.last_us) else (self.last_us - self.start_us) / 1e6
        return {"windows": self.count, "wall_s": wall, "windows_per_s": self.count / wall if wall else 0.0,
                "real_time_factor": span_s / wall if wall else 0.0}

    def _progress(self, final: bool) -> None:
        now = time.perf_counter()
        if not final and now - self._last_print < 1.0:
            return
        self._last_print = now
        s = self.stats()
        print(f"\rpredict: {s['windows']} windows | {s['windows_per_s']:.1f} windows/s | real-time factor "
              f"{s['real_time_factor']:.2f}x", end="\n" if final else "", file=sys.stderr, flush=True)

    def close(self) -> dict[str, Any]:
        self._stamps.close()
        if self._mp4 is not None:
            self._mp4.close()
        if self._gif:
            self._gif[0].save(os.path.join(self.dir, "video.gif"), save_all=True, append_images=self._gif[1:],
                              duration=max(int(1000 / self.fps), 20), loop=0)
        self._progress(final=True)
        return {**self.stats(), "output": self.dir,
                "videos": [os.path.join(self.dir, f"video.{v}") for v in self.video if self.count]}


def predict_recording(
    predictor: Predictor, path: str, output_dir: str, spec: WindowSpec = DEFAULT_WINDOW,
    settings: EvalSettings | None = None, batch_size: int = 8, video: Iterable[str] = ("mp4",),
    sensor_size: tuple[int, int] | None = None, near_m: float = 2.0, far_m: float = CLIP_DISTANCE,
    fps: float | None = None,
) -> dict[str, Any]:
    """Predict every window of the recording at `path`; returns windows, wall_s, windows_per_s, real_time_factor
    (wall time from the start, including the predictor's compilation on its first call with these shapes).
    `settings` map a log-depth output to metres (None: the raw output is written)."""
    recording = open_recording(path, sensor_size)
    windower = EventWindower(spec, recording.frame_timestamps if spec.mode == "frames" else None)
    if fps is None:
        fps = 1e6 / (spec.stride_us or spec.duration_us) if spec.mode == "duration" else 20.0
    out = _Outputs(output_dir, predictor.model.official, settings or EvalSettings(), video, fps, near_m, far_m)
    pending: list[Window] = []
    state = None

    def run(windows: list[Window]) -> None:
        nonlocal state
        x = np.stack([encode_window(w, recording.height, recording.width) for w in windows])
        n = len(windows)
        if n < batch_size:  # one compiled shape: pad the last batch (its extra outputs are dropped)
            x = np.concatenate([x, np.repeat(x[-1:], batch_size - n, axis=0)])
        depth, state = predictor(x, state)
        for w, enc, d in zip(windows, x, depth[:n], strict=False):
            out.add(w.index, w.t_us, enc, d)

    def feed(windows: list[Window]) -> None:
        pending.extend(windows)
        while len(pending) >= batch_size:
            run(pending[:batch_size])
            del pending[:batch_size]

    for chunk in recording.event_chunks(DEFAULT_CHUNK):
        if out.start_us is None and len(chunk):
            out.start_us = int(chunk.t[0])
        feed(windower.push(chunk))
    feed(windower.flush())
    if pending:
        run(pending)
    return out.close()


def predict_files(
    params: Mapping, model_config: Mapping[str, Any], input_dir: str, output_dir: str,
    near_m: float = 2.0, far_m: float = CLIP_DISTANCE,
) -> list[str]:
    """Predict every `.npy`/`.png` in `input_dir`; write `<name>.npy` (depth) and `<name>.png` (colour)."""
    files = sorted(glob.glob(os.path.join(input_dir, "*.npy")) + glob.glob(os.path.join(input_dir, "*.png")))
    if not files:
        raise FileNotFoundError(f"no .npy or .png inputs in {input_dir}")
    predictor = Predictor(params, model_config)
    os.makedirs(output_dir, exist_ok=True)
    written, state = [], None
    for path in files:
        depth, state = predictor(read_input(path)[None], state)  # DepthAnyEvent-R: carried from file to file
        depth = depth[0]
        name = os.path.splitext(os.path.basename(path))[0]
        np.save(os.path.join(output_dir, f"{name}.npy"), depth)
        official = predictor.model.official
        picture = colorize_relative(depth) if official else colorize_depth(depth, near_m, far_m)
        Image.fromarray(picture).save(os.path.join(output_dir, f"{name}.png"))
        written.append(os.path.join(output_dir, f"{name}.png"))
    return written


def is_recording(path: str) -> bool:
    """Whether `path` names a recording file (by extension) rather than a folder of prepared inputs."""
    return os.path.isfile(path) and os.path.splitext(path)[1].lower() in EXTENSIONS


def window_spec(mode: str, duration_ms: float, stride_ms: float, count: int) -> WindowSpec:
    """A WindowSpec from the command-line / config units (milliseconds)."""
    return WindowSpec(mode=mode, duration_us=round(duration_ms * 1000), stride_us=round(stride_ms * 1000),
                      count=count)


def main(argv: list[str] | None = None) -> int:
    """Parse, predict, print where the outputs went."""
    from dae_jax.weights import resolve

    parser = argparse.ArgumentParser(prog="python -m dae_jax.predict", description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, help="a training workdir, a params file or a .pth/.safetensors")
    parser.add_argument("--input", required=True, help=f"a recording ({', '.join(EXTENSIONS)}) or a folder")
    parser.add_argument("--output", required=True)
    parser.add_argument("--window", choices=("duration", "count", "frames"), default="duration")
    parser.add_argument("--duration_ms", type=float, default=50.0, help="window length (duration, frames)")
    parser.add_argument("--stride_ms", type=float, default=0.0, help="duration windows: 0 -> back to back")
    parser.add_argument("--count", type=int, default=0, help="count windows: events per window")
    parser.add_argument("--sensor_size", type=int, nargs=2, default=None, metavar=("H", "W"))
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--video", default="mp4", help="comma-separated among mp4, gif; '' for none")
    args = parser.parse_args(argv)
    w = resolve(args.weights)
    if not is_recording(args.input):
        written = predict_files(w.params, w.model_config, args.input, args.output)
        print(f"wrote {len(written)} pictures to {args.output}")
        return 0
    spec = window_spec(args.window, args.duration_ms, args.stride_ms, args.count)
    result = predict_recording(Predictor(w.params, w.model_config), args.input, args.output, spec, w.settings,
                               args.batch_size, [v for v in args.video.split(",") if v], args.sensor_size)
    print(f"wrote {result['windows']} depth maps to {args.output} ({result['windows_per_s']:.1f} windows/s, "
          f"real-time factor {result['real_time_factor']:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
