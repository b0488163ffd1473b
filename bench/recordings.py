"""Prediction on recordings: the real-time factor (recording seconds per wall second) per sensor size.

For each sensor (320x240 DVXplorer, 346x260 DAVIS346, 640x480 Gen3, 1280x720 IMX636) a synthetic NPZ recording
of --seconds at --rate events/s is predicted with 50 ms windows back to back (20 depth maps per recording second)
by `dae_jax.predict.predict_recording`: reading, windowing, Tencode, the jitted model and the .npy/.png outputs
(no video). The predictor is compiled by a first run, then the best of --repeats runs is reported, for the demo's
tiny student (70x98 input) and the paper's DAv2-vits student (350x266 input rule), random weights (speed does not
depend on them).

Run from the repository root:
  python bench/recordings.py [--seconds 2] [--rate 2e6] [--repeats 3] [--models tiny vits] [--batch-size 8]
"""

import argparse
import sys
import tempfile
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dae_jax.models import model_from_config  # noqa: E402
from dae_jax.predict import predict_recording  # noqa: E402
from dae_jax.predictor import Predictor  # noqa: E402
from dae_jax.train.state import init_params  # noqa: E402

SENSORS = {"DVXplorer 320x240": (240, 320), "DAVIS346 346x260": (260, 346), "Gen3 640x480": (480, 640),
           "IMX636 1280x720": (720, 1280)}
MODELS = {
    "tiny": {"model_type": "DAv2", "encoder": "tiny", "input_size_width": 98, "input_size_height": 70,
             "activation": "sigmoid", "inv_prediction": True},
    "vits": {"model_type": "DAv2", "encoder": "vits", "input_size_width": 350, "input_size_height": 266,
             "activation": "softplus", "inv_prediction": True},
}


def write_recording(path: Path, height: int, width: int, seconds: float, rate: float, seed: int = 0) -> None:
    """Uniformly random events (sorted int64 µs timestamps) over the whole sensor."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.sort(rng.integers(0, int(seconds * 1e6), n))
    np.savez(path, x=rng.integers(0, width, n).astype(np.uint16), y=rng.integers(0, height, n).astype(np.uint16),
             t=t, p=rng.integers(0, 2, n).astype(np.uint8), width=width, height=height)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rate", type=float, default=2e6, help="events per second")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    print(f"{args.seconds:g} s recordings at {args.rate:.3g} events/s, 50 ms windows, batch {args.batch_size}, "
          f"best of {args.repeats} after a compiling run; {jax.device_count()} {jax.default_backend()} device(s)")
    with tempfile.TemporaryDirectory() as tmp:
        for model_name in args.models:
            config = MODELS[model_name]
            model = model_from_config(config)
            params = init_params(model, jax.random.PRNGKey(0))
            predictor = Predictor(params, config)
            for sensor, (height, width) in SENSORS.items():
                path = Path(tmp) / f"{height}x{width}.npz"
                write_recording(path, height, width, args.seconds, args.rate)
                runs = [predict_recording(predictor, str(path), f"{tmp}/out", batch_size=args.batch_size, video=())
                        for _ in range(args.repeats + 1)]
                best = max(runs[1:], key=lambda r: r["real_time_factor"])
                print(f"{model_name:5s} {sensor:18s} {best['windows_per_s']:7.1f} windows/s   real-time factor "
                      f"{best['real_time_factor']:5.2f}x   (first run, compiling: {runs[0]['real_time_factor']:.2f}x)",
                      flush=True)


if __name__ == "__main__":
    main()
