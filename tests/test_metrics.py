"""Evaluation metrics (SPEC section 8): hand-computed frames, an independent loop-based reference on random maps
for every key and flag combination, per-sequence aggregation, and the CSV / JSON outputs."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from dae_jax.eval import metrics as M

REG = 3.70378
NAMES = ["abs_rel_diff", "squ_rel_diff", "RMS_linear", "RMS_log", "SILog", "mean_target_depth",
         "median_target_depth", "mean_prediction_depth", "median_prediction_depth", "mean_depth_error",
         "median_diff", "threshold_delta_1.25", "threshold_delta_1.25^2", "threshold_delta_1.25^3"]


def approx(x):
    return pytest.approx(x, rel=1e-5, abs=1e-9)


# ----------------------------------------------------------------------------------------------------------------
# (a) hand-made frames


def test_key_names_match_the_reference():
    expected = [p + n for p in ("_", "_10_", "_20_", "_30_") for n in NAMES]
    assert list(M.METRIC_KEYS) == expected
    out = M.evaluate_frame(np.full((2, 2), 5.0), np.array([[10.0, 80.0], [5.0, 20.0]]))
    assert list(out) == expected
    assert "_10_abs_rel_diff" in out and "_threshold_delta_1.25^3" in out


def test_hand_made_frame():
    # (1, 0): GT exactly at the clip -> dropped; (1, 1): prediction exactly at the clip -> dropped.
    depth = np.array([[10.0, 20.0, 40.0], [80.0, 50.0, 5.0]])
    pred = np.array([[10.0, 30.0, 40.0], [30.0, 80.0, 4.0]])
    out = M.evaluate_frame(pred, depth)
    # valid pairs (t, p): (10, 10), (20, 30), (40, 40), (5, 4)
    assert out["_abs_rel_diff"] == approx((0 + 10 / 20 + 0 + 1 / 5) / 4)
    assert out["_squ_rel_diff"] == approx((100 / 400 + 1 / 25) / 4)
    assert out["_RMS_linear"] == approx(math.sqrt(101 / 4))
    assert out["_mean_depth_error"] == approx(11 / 4)
    d = [0.0, math.log(20 / 30), 0.0, math.log(5 / 4)]
    msq, mean = sum(x * x for x in d) / 4, sum(d) / 4
    assert out["_RMS_log"] == approx(math.sqrt(msq))
    assert out["_SILog"] == approx(msq - mean**2)
    assert out["_threshold_delta_1.25"] == 3 / 4  # ratio 1.5 fails, 5/(4+eps) just under 1.25 passes
    assert out["_threshold_delta_1.25^2"] == 1.0
    assert out["_threshold_delta_1.25^3"] == 1.0
    assert out["_mean_target_depth"] == approx(75 / 4)
    assert out["_median_target_depth"] == approx(15.0)
    assert out["_mean_prediction_depth"] == approx(84 / 4)
    assert out["_median_prediction_depth"] == approx(20.0)
    assert out["_median_diff"] == approx(5.0)
    # cutoffs restrict the GT only: < 10 keeps (5, 4); < 20 adds (10, 10); < 30 adds (20, 30)
    assert out["_10_abs_rel_diff"] == approx(1 / 5)
    assert out["_10_RMS_linear"] == approx(1.0)
    assert out["_10_mean_target_depth"] == approx(5.0)
    assert out["_20_abs_rel_diff"] == approx(1 / 10)
    assert out["_20_median_prediction_depth"] == approx(7.0)
    assert out["_30_abs_rel_diff"] == approx((10 / 20 + 1 / 5) / 3)
    assert out["_30_threshold_delta_1.25"] == approx(2 / 3)


def test_deltas_count_ratios_equal_to_the_threshold():
    eps = 1e-5
    t = np.array([4.0, 8.0, 16.0])
    pred = np.array([[*(1.25 ** np.arange(1, 4) * (t + eps)), 1.0]])  # ratios p/(t+eps) exactly 1.25, 1.25^2, 1.25^3
    out = M.evaluate_frame(pred, np.array([[*t, 80.0]]))
    assert out["_threshold_delta_1.25"] == 1 / 3
    assert out["_threshold_delta_1.25^2"] == 2 / 3
    assert out["_threshold_delta_1.25^3"] == 1.0


def test_prediction_beyond_the_clip_is_dropped_not_penalised():
    depth = np.array([[10.0, 80.0, 30.0]])
    good = M.evaluate_frame(np.array([[10.0, 1.0, 30.0]]), depth)
    # 500 is clipped to 80 = M and dropped, so the wildly wrong pixel changes nothing
    wrong = M.evaluate_frame(np.array([[10.0, 1.0, 500.0]]), depth)
    assert good["_abs_rel_diff"] == approx(0.0)
    assert wrong["_abs_rel_diff"] == approx(0.0)
    assert wrong["_mean_target_depth"] == approx(10.0)


def test_cutoff_keeps_the_full_frame_max_for_predictions():
    out = M.evaluate_frame(np.array([[50.0, 10.0]]), np.array([[8.0, 80.0]]))
    assert out["_10_abs_rel_diff"] == approx(42 / 8)  # prediction 50 > 10 m still counts (only < 80 needed)
    assert out["_10_mean_prediction_depth"] == approx(50.0)


def test_target_is_rescaled_to_the_clip():
    depth = np.array([[10.0, 20.0, 40.0]])
    np.testing.assert_allclose(M.prepare_target(depth, 80.0), [20.0, 40.0, 80.0])  # frames are squeezed
    np.testing.assert_allclose(M.prepare_target(np.array([[10.0, 200.0]]), 80.0), [10.0, 80.0])
    out = M.evaluate_frame(np.array([[20.0, 40.0, 60.0]]), depth)
    assert out["_abs_rel_diff"] == approx(0.0)  # the max GT (now exactly 80) is dropped
    assert out["_mean_target_depth"] == approx(30.0)


def test_all_zero_frame_gives_nan():
    depth = np.zeros((2, 3))
    np.testing.assert_array_equal(M.prepare_target(depth), depth)
    out = M.evaluate_frame(np.full((2, 3), 5.0), depth, use_scaleshift=True)
    assert len(out) == 56 and all(math.isnan(v) for v in out.values())
    masked = M.frame_metrics(np.array([[10.0, 80.0]]), np.array([[10.0, 5.0]]), mask=np.array([[False, True]]))
    assert all(math.isnan(v) for v in masked.values())


def test_log_depth_helpers():
    l = M.depth_to_logdepth(np.array([80.0, 40.0, 0.0, 100.0]), REG, 80.0)
    np.testing.assert_allclose(l, [1.0, 1.0 - math.log(2) / REG, 0.0, 1.0])
    np.testing.assert_allclose(M.logdepth_to_depth(l, REG, 80.0, normalize=False),
                               [80.0, 40.0, 80.0 * math.exp(-REG), 80.0])
    # per-frame normalisation: the largest prediction always lands on the clip
    np.testing.assert_allclose(M.logdepth_to_depth(np.array([0.9, 0.9 - math.log(2) / REG, np.nan]), REG, 80.0),
                               [80.0, 40.0, np.nan])
    np.testing.assert_allclose(M.inv_depth_to_depth(np.array([1.0, 1.0 - math.log(2) / REG]), REG),
                               [1.0 - math.log(2) / REG, 1.0])


def test_scale_and_shift():
    p = np.array([[1.0, 2.0, 3.0, 7.0]])
    t = 2 * p + 1
    t[0, 3] = 0.0
    assert M.scale_and_shift(p, t, t > 0) == pytest.approx((2.0, 1.0))
    assert M.scale_and_shift(np.full((1, 4), 3.0), t, t > 0) == (0.0, 0.0)
    depth = np.array([[0.0, 10.0, 80.0], [20.0, 40.0, 60.0]])
    pred = (depth - 4.0) / 2.0
    pred[0, 0] = 100.0  # outside the fit mask (GT 0)
    aligned = M.align_scale_shift(pred, depth, 80.0)
    np.testing.assert_allclose(aligned[depth > 0], depth[depth > 0])
    out = M.evaluate_frame(pred, depth, use_scaleshift=True)
    assert out["_abs_rel_diff"] == approx(0.0)
    assert out["_mean_target_depth"] == approx(32.5)  # 10, 20, 40, 60 (80 dropped)


# ----------------------------------------------------------------------------------------------------------------
# (b) independent reference written from the SPEC formulas


def ref_evaluate(pred, depth, use_logdepth, use_scaleshift, reg, clip):
    h, w = depth.shape
    cl = [[min(max(float(depth[i, j]), 0.0), clip) for j in range(w)] for i in range(h)]
    top = max(max(row) for row in cl)
    target = [[cl[i][j] / top * clip for j in range(w)] for i in range(h)]
    p = [[float(pred[i, j]) for j in range(w)] for i in range(h)]
    if use_scaleshift:
        rows = [(p[i][j], target[i][j]) for i in range(h) for j in range(w) if target[i][j] > 0]
        a = np.array([[x, 1.0] for x, _ in rows])
        (s, b), *_ = np.linalg.lstsq(a, np.array([y for _, y in rows]), rcond=None)
        p = [[s * v + b for v in row] for row in p]
    if use_logdepth:
        e = [[math.exp(reg * (v - 1.0)) for v in row] for row in p]
        peak = max(max(row) for row in e)
        p = [[v / peak * clip for v in row] for row in e]
    else:
        p = [[min(max(v, 0.0), clip) for v in row] for row in p]
    big = max(max(row) for row in target)
    out = {}
    for prefix, limit in (("_", math.inf), ("_10_", 10), ("_20_", 20), ("_30_", 30)):
        ts, ps = [], []
        for i in range(h):
            for j in range(w):
                t, q = target[i][j], p[i][j]
                if t < limit and 0 < t < big and 0 < q < big:
                    ts.append(t)
                    ps.append(q)
        if not ts:
            out.update({prefix + n: math.nan for n in NAMES})
            continue
        n = len(ts)
        eps = 1e-5
        ratio = [max(t / (q + eps), q / (t + eps)) for t, q in zip(ts, ps, strict=True)]
        d = [math.log(t + eps) - math.log(q + eps) for t, q in zip(ts, ps, strict=True)]
        err = [abs(t - q) for t, q in zip(ts, ps, strict=True)]
        out[prefix + "abs_rel_diff"] = sum(e / (t + eps) for e, t in zip(err, ts, strict=True)) / n
        out[prefix + "squ_rel_diff"] = sum(e * e / (t * t + eps) for e, t in zip(err, ts, strict=True)) / n
        out[prefix + "RMS_linear"] = math.sqrt(sum(e * e for e in err) / n)
        out[prefix + "RMS_log"] = math.sqrt(sum(x * x for x in d) / n)
        out[prefix + "SILog"] = sum(x * x for x in d) / n - (sum(d) / n) ** 2
        out[prefix + "mean_target_depth"] = sum(ts) / n
        out[prefix + "median_target_depth"] = float(np.median(ts))
        out[prefix + "mean_prediction_depth"] = sum(ps) / n
        out[prefix + "median_prediction_depth"] = float(np.median(ps))
        out[prefix + "mean_depth_error"] = sum(err) / n
        out[prefix + "median_diff"] = abs(float(np.median(ts)) - float(np.median(ps)))
        for k, name in ((1, "threshold_delta_1.25"), (2, "threshold_delta_1.25^2"), (3, "threshold_delta_1.25^3")):
            out[prefix + name] = sum(r <= 1.25**k for r in ratio) / n
    return out


def random_frame(seed, use_logdepth, use_scaleshift):
    rng = np.random.default_rng(seed)
    h, w = 12, 16
    depth = rng.uniform(1.0, 100.0 if seed % 2 else 60.0, (h, w))  # odd seeds reach the clip, even ones get rescaled
    depth[rng.random((h, w)) < 0.2] = 0.0
    depth[:3, :4] = rng.uniform(2.0, 12.0, (3, 4))  # some GT under every cutoff
    if use_logdepth:
        pred = M.depth_to_logdepth(depth * rng.uniform(0.7, 1.3, (h, w)), REG, 80.0) + rng.normal(0, 0.02, (h, w))
    else:
        pred = depth * rng.uniform(0.6, 1.5, (h, w)) + rng.uniform(-3, 3, (h, w))
    if use_scaleshift:
        pred = pred * rng.uniform(0.2, 3.0) + rng.uniform(-1.0, 1.0)
    return pred.astype(np.float32), depth.astype(np.float32)


@pytest.mark.parametrize("use_scaleshift", [False, True])
@pytest.mark.parametrize("use_logdepth", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_against_independent_reference(seed, use_logdepth, use_scaleshift):
    pred, depth = random_frame(seed, use_logdepth, use_scaleshift)
    got = M.evaluate_frame(pred, depth, use_logdepth, use_scaleshift, REG, 80.0)
    want = ref_evaluate(pred, depth, use_logdepth, use_scaleshift, REG, 80.0)
    assert list(got) == list(M.METRIC_KEYS) and set(want) == set(got)
    for k in got:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-8, atol=1e-10, equal_nan=True, err_msg=k)
    assert not math.isnan(got["_10_abs_rel_diff"])


# ----------------------------------------------------------------------------------------------------------------
# (c) aggregation and (d) outputs


def filled(value):
    return {k: value for k in M.METRIC_KEYS}


def accumulator():
    acc = M.SequenceAccumulator()
    for v in (1.0, 2.0, 3.0):
        acc.add("long", filled(v))
    acc.add("long", M.evaluate_frame(np.ones((2, 2)), np.zeros((2, 2))))  # no valid pixel: NaN everywhere, skipped
    acc.add("short", filled(10.0))
    nan_metric = filled(4.0)
    nan_metric["_10_SILog"] = math.nan
    acc.add("third", nan_metric)
    return acc


def test_mean_over_sequences_not_frames():
    acc = accumulator()
    assert acc.frame_counts() == {"long": 4, "short": 1, "third": 1}
    means = acc.sequence_means()
    assert means["long"]["_abs_rel_diff"] == 2.0
    assert means["short"]["_abs_rel_diff"] == 10.0
    mean = acc.overall_mean()
    assert mean["_abs_rel_diff"] == approx((2.0 + 10.0 + 4.0) / 3)
    frame_mean = (1.0 + 2.0 + 3.0 + 10.0 + 4.0) / 5
    assert mean["_abs_rel_diff"] != approx(frame_mean)
    assert math.isnan(means["third"]["_10_SILog"])
    assert mean["_10_SILog"] == approx((2.0 + 10.0) / 2)
    with pytest.raises(ValueError):
        acc.add("long", {"_abs_rel_diff": 1.0})


def test_csv_and_json(tmp_path):
    acc = accumulator()
    acc.to_csv(tmp_path / "eval.csv")
    with open(tmp_path / "eval.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["sequence", *M.METRIC_KEYS]
    assert [r[0] for r in rows[1:]] == ["long", "short", "third", "MEAN"]
    assert all(len(r) == 1 + 56 for r in rows)
    col = rows[0].index("_abs_rel_diff")
    assert rows[1][col] == "2.000000" and rows[-1][col] == "5.333333"
    assert rows[3][rows[0].index("_10_SILog")] == "nan"
    acc.to_json(tmp_path / "eval.json")
    doc = json.loads((tmp_path / "eval.json").read_text())
    assert doc["frames"] == {"long": 4, "short": 1, "third": 1}
    assert list(doc["sequences"]) == ["long", "short", "third"]
    assert list(doc["mean"]) == list(M.METRIC_KEYS)
    assert doc["sequences"]["third"]["_10_SILog"] is None
    assert doc["mean"]["_abs_rel_diff"] == pytest.approx(16.0 / 3)


def test_eval_settings_defaults_come_from_the_protocol_constants():
    s = M.EvalSettings()
    assert (s.use_logdepth, s.use_scaleshift, s.reg_factor, s.clip_distance) == (False, False, 3.70378, 80.0)
    assert M.EvalSettings.from_mapping({"use_logdepth": 1, "clip_distance": 40}).as_dict() == {
        "use_logdepth": True, "use_scaleshift": False, "reg_factor": 3.70378, "clip_distance": 40.0}
    with pytest.raises(ValueError, match=r"unknown evaluation settings \['clip'\]"):
        M.EvalSettings.from_mapping({"clip": 80})
    of_loss = M.EvalSettings.of_loss({"label_space": "logdepth", "reg_factor": 2.0, "clip_distance": 50.0})
    assert of_loss == M.EvalSettings(use_logdepth=True, reg_factor=2.0, clip_distance=50.0)
    assert not M.EvalSettings.of_loss({"label_space": "disparity"}).use_logdepth
