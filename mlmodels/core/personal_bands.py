"""Per-person online calibration of the bands from the person's own matched outcomes (numeric
core, no Django).

Training-time bands come from a few days of out-of-sample errors and, for a person unlike the
corpora, from the prior's; they can be too wide in range and too narrow high for someone in
particular. Every forecast's outcome is matched later (predictions/outcomes.py), so the
person's own recent errors say how wide their band should be, per horizon and per glucose range
(of the forecast's level, as the Mondrian training-time bands, conformal.py).

For a matched point, r = |outcome - forecast| / the TRAINING-TIME band's half-width on the
outcome's side: band_ratios of the band as served, times the personal factor that band was
served with (so the scores of versions calibrated earlier are comparable). A band whose
training-time half-width is multiplied by the `level` quantile of the person's recent r covers
`level` of those outcomes. Two ways of turning the stream of r into a factor:

- "window": weighted split conformal on a sliding window (the last WINDOW_DAYS; weights halve
  every HALF_LIFE_DAYS, the newest outcomes count most: Barber et al. 2023, conformal prediction
  beyond exchangeability), the weighted finite-sample `level` quantile;
- "aci": adaptive conformal inference (Gibbs & Candes 2021): the miscoverage target alpha_t is
  moved after every outcome, alpha += gamma * (alpha_nominal - miss), and the band is the
  1 - alpha_t quantile of the window's r.

Either way the factor is shrunk toward 1 (the training-time band) in log space with weight
n / (n + PRIOR_POINTS), n the effective number of outcomes (Kish) of that horizon and range, so
thin evidence (a new person, a rare range) keeps the training-time band; and it is kept within
[1/3, 3] like a PATCH. ACI ships (KIND), with PRIOR_POINTS = 15: on the corpora's validation
people (bench/band_stream.py --role val --people 6 --kind window|aci --prior-points 15|60) it
brought the 80% bands from day 3 on to 0.81-0.83 pooled at 30/60 min with 83% / 100% of people
within 0.75-0.85, where the window quantile stayed at 0.82-0.85 with 33-83% (it lags: a quantile
of two weeks' scores moves slowly, while ACI corrects the coverage it actually achieved), and
the bands narrower (docs/bands.md).

    personal_factors(points, *, kind=KIND) -> {"kind", "horizons", "ranges", "factors": {"80": (3, H)
        nested lists, "95": ...}, "counts": (3, H) outcomes used, "outcomes_used": n}
    applied_factors(factors_dict, horizons, values, level) -> the factor each point was served with
"""

from __future__ import annotations

import math

import numpy as np

from mlmodels.core.conformal import RANGES, range_index
from mlmodels.core.forecaster import CLAMP_HIGH, CLAMP_LOW
from mlmodels.core.recalibration import MAX_FACTOR, MIN_FACTOR, band_ratios

LEVELS = (("80", 0.80), ("95", 0.95))
KIND = "aci"
KINDS = ("window", "aci")
WINDOW_DAYS = 14.0
HALF_LIFE_DAYS = 3.0
PRIOR_POINTS = 15.0
# ACI step size (Gibbs & Candes use 0.005 on daily series; our outcomes come every few minutes).
ACI_GAMMA = 0.01
# Fewer outcomes of a horizon and range than this: no factor of its own (1, the training band).
MIN_POINTS = 10


def weighted_quantile(values: np.ndarray, weights: np.ndarray, level: float, new_weight: float = 1.0) -> float:
    """The weighted finite-sample `level` quantile: the smallest value whose cumulative weight
    reaches `level` of the total plus the weight of the next (unseen) outcome; inf if none does."""
    order = np.argsort(values)
    v, w = values[order], weights[order]
    cumulative = np.cumsum(w)
    target = level * (cumulative[-1] + new_weight)
    k = int(np.searchsorted(cumulative, target - 1e-12))
    return float(v[k]) if k < len(v) else math.inf


def _window_factor(r: np.ndarray, age_days: np.ndarray, level: float) -> float:
    weights = 0.5 ** (age_days / HALF_LIFE_DAYS)
    return weighted_quantile(r, weights, level)


def _aci_factor(r: np.ndarray, order: np.ndarray, level: float) -> float:
    """ACI over the outcomes in time order; the final band as a quantile of the window's r."""
    alpha_nominal = 1.0 - level
    alpha = alpha_nominal
    seen = r[order]
    for t in range(1, len(seen)):
        past = seen[:t]
        q = 1.0 - alpha
        f = math.inf if q >= 1 else (0.0 if q <= 0 else float(np.quantile(past, q)))
        miss = 1.0 if seen[t] > f else 0.0
        alpha = alpha + ACI_GAMMA * (alpha_nominal - miss)
    q = 1.0 - alpha
    if q >= 1:
        return math.inf
    return 0.0 if q <= 0 else float(np.quantile(seen, q))


def applied_factors(factors: dict | None, horizons: np.ndarray, values: np.ndarray, tag: str) -> np.ndarray:
    """The personal factor each point (horizon, forecast value) was served with; 1 without one."""
    horizons = np.asarray(horizons, dtype=float)
    if not factors or tag not in factors.get("factors", {}):
        return np.ones(len(horizons))
    table = np.asarray(factors["factors"][tag], dtype=float)
    knots = np.asarray(factors["horizons"], dtype=float)
    ranges = range_index(values)
    return np.array([np.interp(h, knots, table[r]) for h, r in zip(horizons, ranges)])


def personal_factors(points: dict, *, kind: str | None = None, prior_points: float | None = None, at=None) -> dict:
    """points: arrays "horizon", "age_days" (how long before now the outcome's forecast was
    issued), "value", "actual", "lower_80", "upper_80", "lower_95", "upper_95", and "applied_80",
    "applied_95" (the personal factor the band was served with, 1 for a training-time band)."""
    kind = KIND if kind is None else kind
    if kind not in KINDS:
        raise ValueError(f"unknown personal calibration kind {kind!r}")
    prior_points = PRIOR_POINTS if prior_points is None else float(prior_points)
    h_all = np.asarray(points["horizon"], dtype=int)
    age = np.asarray(points["age_days"], dtype=float)
    value = np.asarray(points["value"], dtype=float)
    keep = age <= WINDOW_DAYS
    horizons = sorted(set(h_all[keep].tolist()))
    ranges = range_index(value)
    counts = np.zeros((len(RANGES), len(horizons)), dtype=int)
    out = {tag: np.ones((len(RANGES), len(horizons))) for tag, _ in LEVELS}
    # Bands are clamped to the sensor's limits like every forecast, and a reading at a limit is
    # censored ("40 or lower"): scored against the limit, it counts as inside a band that reaches
    # it (the rule of bench/population.covered). Unclamped, the unreachable readings below 40
    # would widen a person's low-range band to the cap.
    actual = np.clip(np.asarray(points["actual"], dtype=float), CLAMP_LOW, CLAMP_HIGH)
    for tag, level in LEVELS:
        r_all = band_ratios(value, actual, points[f"lower_{tag}"], points[f"upper_{tag}"])
        r_all = r_all * np.asarray(points[f"applied_{tag}"], dtype=float)
        for j, h in enumerate(horizons):
            for g in range(len(RANGES)):
                rows = keep & (h_all == h) & (ranges == g) & np.isfinite(r_all)
                n = int(rows.sum())
                counts[g, j] = n
                if n < MIN_POINTS:
                    continue
                r, a = r_all[rows], age[rows]
                if kind == "window":
                    raw = _window_factor(r, a, level)
                    w = 0.5 ** (a / HALF_LIFE_DAYS)
                    n_eff = float(w.sum() ** 2 / (w**2).sum())
                else:
                    raw = _aci_factor(r, np.argsort(-a, kind="stable"), level)
                    n_eff = float(n)
                raw = min(max(raw, MIN_FACTOR), MAX_FACTOR) if math.isfinite(raw) else MAX_FACTOR
                weight = n_eff / (n_eff + prior_points)
                out[tag][g, j] = float(np.exp(weight * np.log(raw)))
    return {
        "kind": kind,
        "horizons": [int(h) for h in horizons],
        "ranges": [name for name, _, _ in RANGES],
        "factors": {tag: np.round(table, 4).tolist() for tag, table in out.items()},
        "counts": counts.tolist(),
        "outcomes_used": int(keep.sum()),
        "prior_points": prior_points,
        "at": None if at is None else str(at),
    }
