"""PATCH versions: the same point model with its bands recalibrated from realized outcomes
(numeric core, no Django).

The conformal bands (conformal.py) were calibrated on days before the model went live; when the
person's realized coverage drifts away from the nominal level, the point model can stay and only
the band widths change. For every matched point, r = how far the outcome lay from the forecast
in units of the band half-width on its side (r <= 1: inside). The factor that scales the band so
that `level` of these points fall inside is the finite-sample `level` quantile of r; the stored
conformal quantiles of that level are multiplied by it (per horizon where there are points,
interpolated between measured horizons, held constant beyond them).

    band_scale_factors(points, levels=(0.8, 0.95)) -> {"80": {h: f}, "95": {h: f}}
    rescaled(conformal, factors) -> ConformalIntervals    (a copy)
"""

from __future__ import annotations

import copy
import math

import numpy as np

from mlmodels.core.conformal import ConformalIntervals
from mlmodels.core.features import HORIZONS

MIN_POINTS_PER_HORIZON = 30
# Never shrink or widen by more than this in one PATCH: a few bad days must not explode a band.
MAX_FACTOR = 3.0
MIN_FACTOR = 1 / 3.0


def band_ratios(value, actual, lower, upper) -> np.ndarray:
    """|outcome - forecast| / the band's half-width on the outcome's side (inside iff <= 1)."""
    value, actual = np.asarray(value, float), np.asarray(actual, float)
    lower, upper = np.asarray(lower, float), np.asarray(upper, float)
    above = actual >= value
    width = np.where(above, upper - value, value - lower)
    distance = np.abs(actual - value)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(width > 0, distance / width, np.where(distance > 0, np.inf, 0.0))
    return ratio


def band_scale_factors(points: dict[int, dict[str, np.ndarray]], levels=(0.80, 0.95)) -> dict[str, dict[int, float]]:
    """points: {horizon: {"value", "actual", "lower_80", "upper_80", "lower_95", "upper_95"}}."""
    out: dict[str, dict[int, float]] = {}
    for level in levels:
        tag = f"{round(level * 100)}"
        factors = {}
        for h, p in sorted(points.items()):
            ratio = band_ratios(p["value"], p["actual"], p[f"lower_{tag}"], p[f"upper_{tag}"])
            ratio = ratio[np.isfinite(ratio)]
            n = len(ratio)
            if n < MIN_POINTS_PER_HORIZON:
                continue
            k = min(math.ceil((n + 1) * level), n)
            factor = float(np.sort(ratio)[k - 1])
            factors[int(h)] = float(min(max(factor, MIN_FACTOR), MAX_FACTOR))
        out[tag] = factors
    return out


def rescaled(conformal: ConformalIntervals, factors: dict[str, dict]) -> ConformalIntervals:
    """A copy of `conformal` whose quantiles of each level are scaled per horizon."""
    new = copy.deepcopy(conformal)
    for tag, by_h in factors.items():
        if not by_h:
            continue
        hs = sorted(int(h) for h in by_h)
        fs = [float(by_h[h] if h in by_h else by_h[str(h)]) for h in hs]
        per_horizon = np.interp(np.asarray(HORIZONS, float), hs, fs)
        for side in ("lower", "upper"):
            key = f"{side}_{tag}"
            if key in new.quantiles:
                new.quantiles[key] = np.asarray(new.quantiles[key], float) * per_horizon
            if key in new.range_quantiles:  # the Mondrian table moves with the pooled quantiles
                new.range_quantiles[key] = np.asarray(new.range_quantiles[key], float) * per_horizon[None, :]
    return new
