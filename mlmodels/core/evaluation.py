"""Forecast accuracy metrics (numeric core, no Django).

All inputs are absolute glucose values in mg/dL. Scores are JSON-able floats rounded for storage.
"""

from __future__ import annotations

import math

import numpy as np

DEPLOY_HORIZONS = (30, 60)
# Where the candidate forecasts exactly as its reference to an hour (a release-2 model that kept
# the prior's short horizons), these decide: its own far horizons against the reference's.
FAR_TIEBREAK_HORIZONS = (240, 720, 1440)


def clarke_zone(reference: float, predicted: float) -> str:
    """Clarke error grid zone (A-E) of one (reference, predicted) pair in mg/dL.

    Standard boundaries (Clarke et al., Diabetes Care 1987), in the form used by most published
    implementations: A within 20% of the reference or both below 70; E opposite extremes;
    C overcorrection; D failure to detect; B everything else.
    """
    ref, pred = float(reference), float(predicted)
    if (ref <= 70 and pred <= 70) or (0.8 * ref <= pred <= 1.2 * ref):
        return "A"
    if (ref >= 180 and pred <= 70) or (ref <= 70 and pred >= 180):
        return "E"
    if ((70 <= ref <= 290) and pred >= ref + 110) or ((130 <= ref <= 180) and pred <= (7 / 5) * ref - 182):
        return "C"
    if (
        (ref >= 240 and 70 <= pred <= 180)
        or (ref <= 175 / 3 and 70 <= pred <= 180)
        or ((175 / 3 <= ref <= 70) and pred >= (6 / 5) * ref)
    ):
        return "D"
    return "B"


def clarke_zones(reference: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Vectorised clarke_zone; returns an array of zone letters."""
    ref = np.asarray(reference, dtype=float)
    pred = np.asarray(predicted, dtype=float)
    zone = np.full(ref.shape, "B", dtype="<U1")
    a = ((ref <= 70) & (pred <= 70)) | ((pred >= 0.8 * ref) & (pred <= 1.2 * ref))
    e = ((ref >= 180) & (pred <= 70)) | ((ref <= 70) & (pred >= 180))
    c = (((ref >= 70) & (ref <= 290)) & (pred >= ref + 110)) | (
        ((ref >= 130) & (ref <= 180)) & (pred <= (7 / 5) * ref - 182)
    )
    d = (
        ((ref >= 240) & (pred >= 70) & (pred <= 180))
        | ((ref <= 175 / 3) & (pred >= 70) & (pred <= 180))
        | (((ref >= 175 / 3) & (ref <= 70)) & (pred >= (6 / 5) * ref))
    )
    # Apply in reverse priority so the first matching rule of clarke_zone wins.
    zone[d] = "D"
    zone[c] = "C"
    zone[e] = "E"
    zone[a] = "A"
    return zone


def _r(x: float, digits: int = 3) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), digits)


def point_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict:
    """MAE, RMSE, R², MARD (%) and Clarke A / B / A+B (%) over finite pairs."""
    actual = np.asarray(actual, dtype=float)
    predicted = np.asarray(predicted, dtype=float)
    ok = np.isfinite(actual) & np.isfinite(predicted)
    a, p = actual[ok], predicted[ok]
    n = int(ok.sum())
    if n == 0:
        return {"n": 0, "mae": None, "rmse": None, "r2": None, "mard": None,
                "clarke_a": None, "clarke_b": None, "clarke_ab": None}
    err = p - a
    ss_tot = float(((a - a.mean()) ** 2).sum())
    zones = clarke_zones(a, p)
    pa, pb = float((zones == "A").mean() * 100), float((zones == "B").mean() * 100)
    return {
        "n": n,
        "mae": _r(np.abs(err).mean()),
        "rmse": _r(np.sqrt((err**2).mean())),
        "r2": _r(1 - float((err**2).sum()) / ss_tot) if ss_tot > 0 else None,
        "mard": _r(np.mean(np.abs(err) / a) * 100),
        "clarke_a": _r(pa, 2),
        "clarke_b": _r(pb, 2),
        "clarke_ab": _r(pa + pb, 2),
    }


def coverage(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float | None:
    """Share (0-1) of finite outcomes inside [lower, upper]."""
    actual, lower, upper = (np.asarray(v, dtype=float) for v in (actual, lower, upper))
    ok = np.isfinite(actual) & np.isfinite(lower) & np.isfinite(upper)
    if not ok.any():
        return None
    inside = (actual[ok] >= lower[ok]) & (actual[ok] <= upper[ok])
    return _r(inside.mean(), 4)


def horizon_metrics(
    actual: np.ndarray,
    predicted: np.ndarray,
    bands: dict[str, np.ndarray] | None = None,
) -> dict:
    """point_metrics plus 80%/95% coverage and mean band width for one horizon."""
    out = point_metrics(actual, predicted)
    if bands:
        for tag in ("80", "95"):
            lo, hi = bands.get(f"lower_{tag}"), bands.get(f"upper_{tag}")
            if lo is None or hi is None:
                continue
            out[f"coverage_{tag}"] = coverage(actual, lo, hi)
            width = np.asarray(hi, dtype=float) - np.asarray(lo, dtype=float)
            ok = np.isfinite(width) & np.isfinite(np.asarray(actual, dtype=float))
            out[f"width_{tag}"] = _r(width[ok].mean(), 2) if ok.any() else None
    return out


def summarise(per_horizon: dict[str, dict]) -> dict:
    """Headline figures: MAE/RMSE at 30 and 60 min, mean MAE over 5..60 min (GlucoBench style)."""
    def get(h: int, key: str):
        return per_horizon.get(str(h), {}).get(key)

    hour = [get(h, "mae") for h in range(5, 61, 5)]
    hour = [v for v in hour if v is not None]
    out = {
        "mae_30": get(30, "mae"),
        "rmse_30": get(30, "rmse"),
        "mae_60": get(60, "mae"),
        "rmse_60": get(60, "rmse"),
        "mae_mean_5_60": _r(np.mean(hour)) if len(hour) == 12 else None,
        "clarke_ab_60": get(60, "clarke_ab"),
        "coverage_80_mean": None,
        "coverage_95_mean": None,
    }
    for tag in ("80", "95"):
        vals = [v.get(f"coverage_{tag}") for v in per_horizon.values() if v.get(f"coverage_{tag}") is not None]
        if vals:
            out[f"coverage_{tag}_mean"] = _r(np.mean(vals), 4)
    return out


def improvement(model: float | None, baseline: float | None) -> float | None:
    """Relative error reduction of model vs baseline (0.15 = 15% lower error)."""
    if model is None or baseline is None or baseline == 0:
        return None
    return _r(1 - model / baseline, 4)


# --- deploy only if better (the rule; mlmodels.services applies it) -----------------------------


def metric_value(metrics: dict, horizon_min: int, name: str = "mae", *, baseline: bool = False):
    """One held-out figure from a metrics dict of mlmodels.core.training (None if absent).

    Layout: metrics["per_horizon"]["model" | "baseline_ar2" | "persistence"][str(h)][name].
    """
    who = "baseline_ar2" if baseline else "model"
    try:
        value = metrics["per_horizon"][who][str(horizon_min)][name]
    except (KeyError, TypeError):
        return None
    return None if value is None else float(value)


def deploy_score(metrics: dict, *, baseline: bool = False, horizons=DEPLOY_HORIZONS) -> float | None:
    """Mean MAE over `horizons` (mg/dL); None if any of them is missing."""
    values = [metric_value(metrics, h, "mae", baseline=baseline) for h in horizons]
    if any(v is None or not math.isfinite(v) for v in values):
        return None
    return sum(values) / len(values)


def decide(
    candidate_metrics: dict,
    reference_metrics: dict,
    *,
    reference_is_baseline: bool = False,
    horizons=DEPLOY_HORIZONS,
) -> dict:
    """Compare two metric sets computed on the same period. Pure: no database, no files.

    `horizons`: where the mean MAE is compared (the deploy rule: 30 and 60 min). Training's
    per-horizon choice asks the same rule one horizon at a time (`horizons=(h,)`).
    """
    horizons = tuple(int(h) for h in horizons)
    candidate = {h: metric_value(candidate_metrics, h, "mae") for h in horizons}
    reference = {
        h: metric_value(reference_metrics, h, "mae", baseline=reference_is_baseline)
        for h in horizons
    }
    candidate_score = deploy_score(candidate_metrics, horizons=horizons)
    reference_score = deploy_score(reference_metrics, baseline=reference_is_baseline, horizons=horizons)
    where = "/".join(map(str, horizons))
    if candidate_score is None:
        decision, better = f"rejected: candidate has no MAE at {where} min", False
    elif reference_score is None:
        decision, better = "deployed: the reference has no comparable figures", True
    else:
        better = candidate_score < reference_score
        decision = "deployed" if better else "rejected: not better than the reference"
        if not better and math.isclose(candidate_score, reference_score, rel_tol=1e-6, abs_tol=1e-6):
            # The same forecast to an hour (e.g. both the prior's): the far horizons decide.
            shared = [h for h in FAR_TIEBREAK_HORIZONS
                      if horizons == DEPLOY_HORIZONS
                      and deploy_score(candidate_metrics, horizons=[h]) is not None
                      and deploy_score(reference_metrics, baseline=reference_is_baseline, horizons=[h]) is not None]
            if shared:
                better = deploy_score(candidate_metrics, horizons=shared) < deploy_score(
                    reference_metrics, baseline=reference_is_baseline, horizons=shared
                )
                decision = (
                    f"deployed: the same forecast as the reference to 60 min, better at {shared} min"
                    if better else "rejected: the same forecast as the reference to 60 min, not better beyond"
                )
    return {
        "rule": f"mean MAE at {where} min on the same held-out period; lower wins"
                + (f" (a tie: mean MAE at {'/'.join(map(str, FAR_TIEBREAK_HORIZONS))} min)"
                   if horizons == DEPLOY_HORIZONS else ""),
        "candidate_mae": {str(h): v for h, v in candidate.items()},
        "reference_mae": {str(h): v for h, v in reference.items()},
        "candidate_score": candidate_score,
        "reference_score": reference_score,
        "improvement_mg_dl": (
            None if candidate_score is None or reference_score is None
            else reference_score - candidate_score
        ),
        "better": bool(better),
        "decision": decision,
    }
