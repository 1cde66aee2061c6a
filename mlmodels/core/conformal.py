"""Calibrated forecast intervals by split conformal prediction (numeric core, no Django).

For each short horizon we take the forecast errors on a calibration fold the models never saw and
use their finite-sample quantiles as the band: under exchangeability a nominal 80% band then
covers at least 80% of new outcomes. Errors are normalised by a local difficulty estimate
(normalised conformal) so bands widen when glucose is moving fast or is high and narrow when it
is flat — the same coverage overall, but honest moment to moment.

Mondrian by glucose range (below 70, 70-180, above 180 mg/dL): the quantiles are also taken
within each range of the forecast's level (RANGE_BY; the current level was the other choice,
docs/bands.md says why), so the high range's errors, a minority of any person's rows, set the
high range's band instead of being averaged away by the in-range majority. A range with few
calibration rows is shrunk toward the pooled quantiles (RANGE_PRIOR_ROWS pseudo-rows), applied
when the band is made, so whatever later moves the pooled quantiles (the prior's shrinkage in
training, a PATCH) moves the range bands with them.

The difficulty model is fitted on a different fold (validation) than the quantiles
(calibration), so the calibration residuals stay exchangeable with future ones.
Lower and upper quantiles are taken separately (alpha/2 each side) because glucose errors are
skewed: rises after meals overshoot forecasts more than falls do.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import nnls

from mlmodels.core.features import HORIZONS, feature_names

LEVELS = (0.80, 0.95)
# Calibration errors come from days before the ones we forecast, and glucose behaviour drifts
# (new meals, activity, sensor sessions), which split conformal's exchangeability assumption
# ignores. On later data the plain quantiles under-covered (about 74% for a nominal 80% band on
# the Broll people one week ahead), so the miscoverage used for calibration is scaled by this
# factor (80% -> 85%, 95% -> 96.25% of calibration errors) to leave room for drift.
DRIFT_MISCOVERAGE_FACTOR = 0.75

# Glucose ranges of the Mondrian calibration: [low, high) mg/dL (the consensus CGM ranges).
RANGES = (("below_70", -math.inf, 70.0), ("70_180", 70.0, 180.0), ("above_180", 180.0, math.inf))
# Which level puts a row in a range: "forecast" (now + predicted change) or "now"; None: pooled.
# Chosen on the corpora's validation people (bench/simple_floor.py --role val --range-by ...).
RANGE_BY = "forecast"
# Calibration rows of a range worth as much as the pooled quantiles; fewer than RANGE_MIN_ROWS:
# the pooled quantiles alone (a quantile of a handful of errors is noise).
RANGE_PRIOR_ROWS = 100.0
RANGE_MIN_ROWS = 20

_FEATURES = feature_names()
_DIFFICULTY_FEATURES = ["rate_15min", "std_30min", "glucose_now", "std_120min", "accel_15min"]
_DIFFICULTY_COLS = [_FEATURES.index(f) for f in _DIFFICULTY_FEATURES]


def difficulty_inputs(X: np.ndarray) -> np.ndarray:
    """Columns the difficulty scale is built from: 1, |rate|*15 min, 30-min std, level/100,
    2-hour std (is this a turbulent stretch, e.g. after a meal?), |acceleration|*15 min."""
    X = np.asarray(X, dtype=float)
    rate, std, level, std_long, accel = (X[:, c] for c in _DIFFICULTY_COLS)
    return np.column_stack(
        [np.ones(len(X)), np.abs(rate) * 15.0, std, level / 100.0, std_long, np.abs(accel) * 15.0]
    )


def range_index(level: np.ndarray) -> np.ndarray:
    """0, 1, 2: which of RANGES each glucose level (mg/dL) lies in (NaN: the middle one)."""
    level = np.asarray(level, dtype=float)
    out = np.ones(level.shape, dtype=int)
    out[level < RANGES[0][2]] = 0
    out[level >= RANGES[2][1]] = 2
    return out


def finite_sample_quantile(values: np.ndarray, q: float, side: str) -> float:
    """Conformal quantile: the ceil((n+1)q)-th smallest value (upper) or its mirror (lower)."""
    values = np.sort(values[np.isfinite(values)])
    n = len(values)
    if n == 0:
        return math.inf if side == "upper" else -math.inf
    if side == "upper":
        k = math.ceil((n + 1) * q)
        return float(values[-1] + abs(values[-1]) * 0.5) if k > n else float(values[k - 1])
    k = math.floor((n + 1) * q)
    return float(values[0] - abs(values[0]) * 0.5) if k < 1 else float(values[k - 1])


class ConformalIntervals:
    """Per-horizon normalised split-conformal bands at 80% and 95%."""

    def __init__(
        self, normalized: bool = True, drift_factor: float = DRIFT_MISCOVERAGE_FACTOR, range_by: str | None = None
    ):
        self.normalized = normalized
        self.drift_factor = float(drift_factor)
        self.range_by = range_by
        self.difficulty_coef: np.ndarray | None = None  # (n_horizons, 1 + n inputs), non-negative
        self.quantiles: dict[str, np.ndarray] = {}  # "lower_80" -> (n_horizons,) etc.
        # Mondrian: "lower_80" -> (n_ranges, n_horizons) quantiles within each range, and the
        # calibration rows behind them, (n_ranges, n_horizons).
        self.range_quantiles: dict[str, np.ndarray] = {}
        self.range_counts: np.ndarray | None = None
        # Per-person online calibration (mlmodels/core/personal_bands.py): factors on the half-widths
        # per level, range of the forecast's level and horizon; None: the training-time bands.
        self.personal: dict | None = None
        self.n_calibration = 0

    def fit_difficulty(self, X_val: np.ndarray, residual_val: np.ndarray) -> "ConformalIntervals":
        """Learn per horizon how the absolute error grows with movement, spread and level."""
        n_h = len(HORIZONS)
        coef = np.zeros((n_h, len(_DIFFICULTY_COLS) + 1))
        coef[:, 0] = 1.0
        if self.normalized and X_val is not None and len(X_val) >= 50:
            D = difficulty_inputs(X_val)
            for j in range(n_h):
                r = np.abs(residual_val[:, j])
                ok = np.isfinite(r) & np.isfinite(D).all(axis=1)
                if ok.sum() < 50:
                    continue
                c, _ = nnls(D[ok], r[ok])
                # Keep a floor so flat moments never get a zero-width band.
                c[0] = max(c[0], 0.25 * float(np.median(r[ok])), 1.0)
                coef[j] = c
        self.difficulty_coef = coef
        return self

    def scale(self, X: np.ndarray) -> np.ndarray:
        """(n, n_horizons) difficulty scale; all ones when not normalised."""
        if self.difficulty_coef is None or not self.normalized:
            return np.ones((len(X), len(HORIZONS)))
        return difficulty_inputs(X) @ self.difficulty_coef.T

    def levels(self, X: np.ndarray, predicted_change: np.ndarray | None) -> np.ndarray:
        """(n, n_horizons) glucose level that puts each row and horizon in a range."""
        now = np.asarray(X, dtype=float)[:, _FEATURES.index("glucose_now")][:, None]
        if self.range_by == "forecast" and predicted_change is not None:
            return now + np.asarray(predicted_change, dtype=float)
        return np.repeat(now, len(HORIZONS), axis=1)

    def calibrate(
        self, X_cal: np.ndarray, residual_cal: np.ndarray, predicted_change: np.ndarray | None = None
    ) -> "ConformalIntervals":
        """residual = outcome change - predicted change on the calibration fold, (n, n_horizons);
        `predicted_change` (same shape) places rows in ranges by the forecast's level."""
        if self.difficulty_coef is None:
            self.fit_difficulty(None, None)
        normalized = residual_cal / self.scale(X_cal)
        if self.range_by == "forecast" and predicted_change is None:
            predicted_change = np.zeros_like(normalized)
        ranges = range_index(self.levels(X_cal, predicted_change)) if self.range_by else None
        self.quantiles, self.range_quantiles = {}, {}
        n_h = len(HORIZONS)
        for level in LEVELS:
            alpha = (1 - level) * self.drift_factor
            tag = f"{round(level * 100)}"
            for side, q in ((f"lower_{tag}", alpha / 2), (f"upper_{tag}", 1 - alpha / 2)):
                which = "lower" if side.startswith("lower") else "upper"
                self.quantiles[side] = np.array(
                    [finite_sample_quantile(normalized[:, j], q, which) for j in range(n_h)]
                )
                if ranges is None:
                    continue
                table = np.full((len(RANGES), n_h), np.nan)
                for r in range(len(RANGES)):
                    for j in range(n_h):
                        values = normalized[ranges[:, j] == r, j]
                        if np.isfinite(values).sum() >= RANGE_MIN_ROWS:
                            table[r, j] = finite_sample_quantile(values, q, which)
                self.range_quantiles[side] = table
        if ranges is not None:
            ok = np.isfinite(normalized)
            self.range_counts = np.array(
                [[int((ok[:, j] & (ranges[:, j] == r)).sum()) for j in range(n_h)] for r in range(len(RANGES))]
            )
        self.n_calibration = int(np.isfinite(normalized).all(axis=1).sum())
        return self

    def effective_quantiles(self, key: str) -> np.ndarray:
        """(n_ranges, n_horizons) quantiles per range, each shrunk toward the pooled ones by its
        count (RANGE_PRIOR_ROWS); all rows the pooled ones without a Mondrian table."""
        pooled = np.asarray(self.quantiles[key], dtype=float)[None, :]
        table = self.range_quantiles.get(key)
        if table is None or self.range_counts is None:
            return np.repeat(pooled, len(RANGES), axis=0)
        counts = np.where(np.isfinite(table), self.range_counts, 0).astype(float)
        weight = counts / (counts + RANGE_PRIOR_ROWS)
        return np.where(np.isfinite(table), weight * table + (1 - weight) * pooled, pooled)

    def personal_table(self, tag: str) -> np.ndarray | None:
        """(n_ranges, n_horizons) personal factors of one level, interpolated between the horizons
        that had outcomes and held constant beyond them; None without a personal calibration."""
        if not self.personal or tag not in self.personal.get("factors", {}):
            return None
        table = np.asarray(self.personal["factors"][tag], dtype=float)
        knots = np.asarray(self.personal["horizons"], dtype=float)
        if table.size == 0:
            return None
        return np.vstack([np.interp(np.asarray(HORIZONS, float), knots, row) for row in table])

    def bands(self, X: np.ndarray, predicted_change: np.ndarray) -> dict[str, np.ndarray]:
        """Band edges as changes from the current value, each (n, n_horizons)."""
        s = self.scale(X)
        cols = np.arange(len(HORIZONS))[None, :]
        if self.range_quantiles:
            ranges = range_index(self.levels(X, predicted_change))
            q = {key: self.effective_quantiles(key)[ranges, cols] for key in self.quantiles}
        else:
            q = {key: np.asarray(v, dtype=float)[None, :] for key, v in self.quantiles.items()}
        if self.personal:
            now = np.asarray(X, dtype=float)[:, _FEATURES.index("glucose_now")][:, None]
            by_forecast = range_index(now + np.asarray(predicted_change, dtype=float))
            for key in q:
                table = self.personal_table(key.split("_")[1])
                if table is not None:
                    q[key] = q[key] * table[by_forecast, cols]
        return {key: predicted_change + v * s for key, v in q.items()}

    def to_dict(self) -> dict:
        return {
            "normalized": self.normalized,
            "drift_factor": self.drift_factor,
            "difficulty_features": _DIFFICULTY_FEATURES,
            "difficulty_coef": None if self.difficulty_coef is None else self.difficulty_coef.tolist(),
            "quantiles": {k: v.tolist() for k, v in self.quantiles.items()},
            "range_by": self.range_by,
            "ranges": [name for name, _, _ in RANGES],
            "range_quantiles": {k: np.where(np.isfinite(v), v, None).tolist() for k, v in self.range_quantiles.items()},
            "range_counts": None if self.range_counts is None else self.range_counts.tolist(),
            "personal": self.personal,
            "n_calibration": self.n_calibration,
            "horizons": HORIZONS,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "ConformalIntervals":
        obj = cls(
            normalized=bool(data["normalized"]), drift_factor=float(data.get("drift_factor", 1.0)),
            range_by=data.get("range_by"),
        )
        obj.range_quantiles = {
            k: np.array([[np.nan if x is None else x for x in row] for row in v], dtype=float)
            for k, v in (data.get("range_quantiles") or {}).items()
        }
        counts = data.get("range_counts")
        obj.range_counts = None if counts is None else np.asarray(counts, dtype=int)
        obj.personal = data.get("personal")
        coef = data.get("difficulty_coef")
        obj.difficulty_coef = None if coef is None else np.asarray(coef, dtype=float)
        obj.quantiles = {k: np.asarray(v, dtype=float) for k, v in data["quantiles"].items()}
        obj.n_calibration = int(data.get("n_calibration", 0))
        return obj
