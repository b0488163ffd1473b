"""Depth metrics and the evaluation protocol of the reference's `test.py` (SPEC section 8), in NumPy.

Runs per frame on the host after the model, in float64; frames are squeezed first, so (1, H, W) and (H, W)
arrays are both accepted (and returned as (H, W)). For one frame (`evaluate_frame`):

1. `prepare_target`: t = clip(depth, 0, clip) / max * clip.
2. `prepare_prediction`: optional closed-form scale+shift fit of the raw prediction to that target (step 3), then
   either log depth -> metric depth with per-frame max normalisation (step 4) or a plain clip to [0, clip].
3. `frame_metrics` over the whole frame (keys `_abs_rel_diff`, ...) and `cutoff_metrics` for GT < 10, 20, 30 m
   (keys `_10_abs_rel_diff`, ...).

`SequenceAccumulator` then takes the nanmean over the frames of each sequence and the nanmean over sequences.

Odd corners of the reference, reproduced on purpose:

* Valid pixels need 0 < t < M and 0 < p < M with M = max(target) (= clip when any GT reaches it), both strict:
  GT at or beyond the clip distance is dropped, and so are predictions at or beyond it (a prediction clipped to the
  clip distance is dropped, not penalised).
* The target is rescaled per frame so that its max is exactly the clip distance (a no-op when some GT >= clip, a
  stretch otherwise).
* The cutoffs restrict only the GT (t < d); M stays the full-frame max, so predictions only need to be < M.
* In log mode the prediction is normalised per frame by its own max (nanmax), so its largest pixel always lands on
  the clip distance and is dropped.
* The scale+shift fit uses every pixel with target > 0, including GT at the clip that the metrics later drop.

Choices where the reference crashes or is silent: a target whose clipped max is 0 (all zero) is kept as zeros
(the reference divides 0/0 and then fails), so the frame has no valid pixel; a frame with no valid pixel gives NaN
for every metric, which the nanmeans skip. NaN pixels are ignored by every max and never valid; the scale+shift
sums run over the fit mask only. Everything is float64 where the reference works in float32 (the network output):
results differ by float32 rounding only, except that exp(reg*(p-1)) overflows float32 for p > ~25, which only log
mode after a scale+shift fit to metric depth can reach.

Metric keys (and CSV columns after `sequence`) are ordered as in `METRIC_KEYS`: the full-frame block, then the 10,
20 and 30 m blocks, each in `METRIC_NAMES` order. (The reference's CSV lists its `_10_` block in another order and
adds run-description columns; compare by key name.)
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

REG_FACTOR = 3.70378
CLIP_DISTANCE = 80.0
EPS = 1e-5
CUTOFFS = (10, 20, 30)
METRIC_NAMES = (
    "abs_rel_diff",
    "squ_rel_diff",
    "RMS_linear",
    "RMS_log",
    "SILog",
    "mean_target_depth",
    "median_target_depth",
    "mean_prediction_depth",
    "median_prediction_depth",
    "mean_depth_error",
    "median_diff",
    "threshold_delta_1.25",
    "threshold_delta_1.25^2",
    "threshold_delta_1.25^3",
)
PREFIXES = ("_",) + tuple(f"_{d}_" for d in CUTOFFS)
METRIC_KEYS = tuple(prefix + name for prefix in PREFIXES for name in METRIC_NAMES)



@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """The reference test script's four flags: how a raw prediction becomes metric depth before it is scored.

    Also what an exported checkpoint stores as config['trainer'], and how prediction maps outputs to metres.
    """

    use_logdepth: bool = False
    use_scaleshift: bool = False
    reg_factor: float = REG_FACTOR
    clip_distance: float = CLIP_DISTANCE

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The four flags' names, as a checkpoint's config['trainer'] spells them."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> EvalSettings:
        """From a dict (e.g. a checkpoint's config['trainer']): absent keys take the defaults, unknown ones raise."""
        return cls().updated(values)

    def updated(self, values: Mapping[str, Any]) -> EvalSettings:
        """These settings with the entries of `values` that are not None; an unknown key raises."""
        unknown = sorted(set(values) - set(self.names()))
        if unknown:
            raise ValueError(f"unknown evaluation settings {unknown}; known: {sorted(self.names())}")
        return dataclasses.replace(self, **{k: type(getattr(self, k))(v) for k, v in values.items() if v is not None})

    @classmethod
    def of_loss(cls, loss: Mapping[str, Any]) -> EvalSettings:
        """The settings of a run's label space (config.loss): log depth with its reg_factor and clip distance."""
        return cls(use_logdepth=loss.get("label_space") == "logdepth",
                   reg_factor=float(loss.get("reg_factor", REG_FACTOR)),
                   clip_distance=float(loss.get("clip_distance", CLIP_DISTANCE)))

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _f64(x: np.ndarray) -> np.ndarray:
    """Squeezed float64 copy of a frame."""
    return np.squeeze(np.array(x, dtype=np.float64))


def _frame_max(x: np.ndarray) -> float:
    """Max over the non-NaN pixels; NaN when there is none."""
    finite = x[~np.isnan(x)]
    return float(finite.max()) if finite.size else math.nan


def prepare_target(depth: np.ndarray, clip: float = CLIP_DISTANCE) -> np.ndarray:
    """clip(depth, 0, clip) / max * clip for one frame; a frame whose clipped max is 0 (or NaN) stays as clipped."""
    t = np.clip(_f64(depth), 0.0, clip)
    peak = _frame_max(t)
    if not peak > 0:
        return t
    return t / peak * clip


def scale_and_shift(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Closed-form (s, b) minimising sum over mask of (s*pred + b - target)^2; (0, 0) when the system is singular."""
    m = np.squeeze(np.asarray(mask, dtype=bool))
    p, t = _f64(pred)[m], _f64(target)[m]
    a00, a01, a11 = float(np.sum(p * p)), float(np.sum(p)), float(p.size)
    b0, b1 = float(np.sum(p * t)), float(np.sum(t))
    det = a00 * a11 - a01 * a01
    if det == 0:
        return 0.0, 0.0
    return (a11 * b0 - a01 * b1) / det, (a00 * b1 - a01 * b0) / det


def align_scale_shift(pred: np.ndarray, depth: np.ndarray, clip: float = CLIP_DISTANCE) -> np.ndarray:
    """Step 3: fit s, b of the raw prediction to prepare_target(depth) over its pixels > 0; return s*pred + b."""
    p = _f64(pred)
    target = prepare_target(depth, clip)
    s, b = scale_and_shift(p, target, target > 0)
    return s * p + b


def logdepth_to_depth(p: np.ndarray, reg: float = REG_FACTOR, clip: float = CLIP_DISTANCE,
                      normalize: bool = True) -> np.ndarray:
    """Log depth -> metric depth: exp(reg*(p-1)), divided by its per-frame nanmax when `normalize`, times clip."""
    d = np.exp(reg * (_f64(p) - 1.0))
    if normalize:
        d = d / _frame_max(d)
    return d * clip


def depth_to_logdepth(d: np.ndarray, reg: float = REG_FACTOR, clip: float = CLIP_DISTANCE) -> np.ndarray:
    """Metric depth -> normalised log depth clamp(1 + log(clamp(d, 0, clip)/clip)/reg, 0, 1) (0 m maps to 0)."""
    with np.errstate(divide="ignore"):
        l = 1.0 + np.log(np.clip(_f64(d), 0.0, clip) / clip) / reg
    return np.clip(l, 0.0, 1.0)


def inv_depth_to_depth(p: np.ndarray, reg: float = REG_FACTOR) -> np.ndarray:
    """Inverse log depth -> log depth: invert exp(reg*(p-1)), normalise by the per-frame nanmax, take the log back."""
    inv = 1.0 / np.exp(reg * (_f64(p) - 1.0))
    return 1.0 + np.log(inv / _frame_max(inv)) / reg


def prepare_prediction(pred: np.ndarray, depth: np.ndarray, use_logdepth: bool, use_scaleshift: bool,
                       reg_factor: float = REG_FACTOR, clip_distance: float = CLIP_DISTANCE) -> np.ndarray:
    """Steps 3-4 in the reference order: optional scale+shift, then log -> depth (normalised) or clip to [0, clip]."""
    p = align_scale_shift(pred, depth, clip_distance) if use_scaleshift else _f64(pred)
    if use_logdepth:
        return logdepth_to_depth(p, reg_factor, clip_distance)
    return np.clip(p, 0.0, clip_distance)


def frame_metrics(target: np.ndarray, pred: np.ndarray, mask: np.ndarray | None = None,
                  prefix: str = "_") -> dict[str, float]:
    """Step 6 on one prepared frame: metrics over mask & (0 < t < M) & (0 < p < M), M = max(target); NaN if empty."""
    t_all, p_all = _f64(target), _f64(pred)
    top = _frame_max(t_all)
    valid = (t_all > 0) & (t_all < top) & (p_all > 0) & (p_all < top)
    if mask is not None:
        valid &= np.squeeze(np.asarray(mask, dtype=bool))
    if not valid.any():
        return {prefix + name: math.nan for name in METRIC_NAMES}
    t, p = t_all[valid], p_all[valid]
    ratio = np.maximum(t / (p + EPS), p / (t + EPS))
    abs_diff = np.abs(t - p)
    log_diff = np.log(t + EPS) - np.log(p + EPS)
    med_t, med_p = float(np.median(t)), float(np.median(p))
    values = {
        "abs_rel_diff": np.mean(abs_diff / (t + EPS)),
        "squ_rel_diff": np.mean(abs_diff**2 / (t**2 + EPS)),
        "RMS_linear": np.sqrt(np.mean(abs_diff**2)),
        "RMS_log": np.sqrt(np.mean(log_diff**2)),
        "SILog": np.mean(log_diff**2) - np.mean(log_diff) ** 2,
        "mean_target_depth": np.mean(t),
        "median_target_depth": med_t,
        "mean_prediction_depth": np.mean(p),
        "median_prediction_depth": med_p,
        "mean_depth_error": np.mean(abs_diff),
        "median_diff": abs(med_t - med_p),
        "threshold_delta_1.25": np.mean(ratio <= 1.25),
        "threshold_delta_1.25^2": np.mean(ratio <= 1.25**2),
        "threshold_delta_1.25^3": np.mean(ratio <= 1.25**3),
    }
    return {prefix + name: float(values[name]) for name in METRIC_NAMES}


def cutoff_metrics(target: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Step 7: `frame_metrics` with mask = target < d (NaN GT counts as 0) and prefix `_{d}_`, d in 10, 20, 30."""
    t = _f64(target)
    out: dict[str, float] = {}
    for d in CUTOFFS:
        out.update(frame_metrics(t, pred, np.nan_to_num(t) < d, prefix=f"_{d}_"))
    return out


def evaluate_frame(pred: np.ndarray, depth: np.ndarray, use_logdepth: bool = False, use_scaleshift: bool = False,
                   reg_factor: float = REG_FACTOR, clip_distance: float = CLIP_DISTANCE) -> dict[str, float]:
    """Every metric of one frame (raw prediction, raw GT depth), keys in `METRIC_KEYS` order."""
    target = prepare_target(depth, clip_distance)
    p = prepare_prediction(pred, depth, use_logdepth, use_scaleshift, reg_factor, clip_distance)
    if p.shape != target.shape:
        raise ValueError(f"prediction {p.shape} and depth {target.shape} differ in shape")
    return {**frame_metrics(target, p), **cutoff_metrics(target, p)}


def _nanmean(x: np.ndarray) -> np.ndarray:
    """nanmean over axis 0; all-NaN columns give NaN without a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(x, axis=0)


class SequenceAccumulator:
    """Per-frame metric dicts grouped by sequence; nanmean per sequence, then nanmean over the sequences."""

    def __init__(self) -> None:
        self._frames: dict[str, list[list[float]]] = {}

    def add(self, sequence: str, metrics: Mapping[str, float]) -> None:
        """Record one frame's metrics (exactly the keys of `METRIC_KEYS`) under `sequence`."""
        if set(metrics) != set(METRIC_KEYS):
            raise ValueError(f"metric keys differ from METRIC_KEYS: {sorted(set(metrics) ^ set(METRIC_KEYS))}")
        self._frames.setdefault(sequence, []).append([float(metrics[k]) for k in METRIC_KEYS])

    def frame_counts(self) -> dict[str, int]:
        """Number of frames recorded per sequence, in insertion order."""
        return {name: len(rows) for name, rows in self._frames.items()}

    def sequence_means(self) -> dict[str, dict[str, float]]:
        """Per sequence, the nanmean over its frames of every metric."""
        return {name: dict(zip(METRIC_KEYS, _nanmean(np.array(rows)).tolist(), strict=True))
                for name, rows in self._frames.items()}

    def overall_mean(self) -> dict[str, float]:
        """The MEAN row: nanmean over the per-sequence means (every sequence weighs the same, whatever its length)."""
        means = self.sequence_means()
        table = np.array([[m[k] for k in METRIC_KEYS] for m in means.values()]).reshape(-1, len(METRIC_KEYS))
        return dict(zip(METRIC_KEYS, _nanmean(table).tolist(), strict=True))

    def to_csv(self, path: str) -> None:
        """Columns `sequence` then `METRIC_KEYS`; one row per sequence, then a `MEAN` row; values as %.6f (nan kept)."""
        rows = [*self.sequence_means().items(), ("MEAN", self.overall_mean())]
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["sequence", *METRIC_KEYS])
            for name, values in rows:
                writer.writerow([name, *(f"{values[k]:.6f}" for k in METRIC_KEYS)])

    def to_json(self, path: str) -> None:
        """{"frames": {seq: n}, "sequences": {seq: {key: value}}, "mean": {key: value}}; NaN written as null."""

        def clean(values: Mapping[str, float]) -> dict[str, float | None]:
            return {k: None if math.isnan(v) else v for k, v in values.items()}

        doc = {
            "frames": self.frame_counts(),
            "sequences": {name: clean(m) for name, m in self.sequence_means().items()},
            "mean": clean(self.overall_mean()),
        }
        with open(path, "w") as f:
            json.dump(doc, f, indent=2)
