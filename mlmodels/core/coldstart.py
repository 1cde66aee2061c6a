"""Forecasts for people without a personal model, and for short histories (numeric core).

- `PopulationForecaster`: the population prior (mlmodels/core/population.py) served alone, for a
  person who has a full two-hour window of readings but no personal model yet (or whose model
  cannot answer). Its bands are the prior's (conformalised over people it never saw, lower edges
  guarded for lows), times `POPULATION_BAND_WIDEN`. Beyond the prior's last horizon the forecast
  stays at that value with that band.
- `ShortHistoryForecaster`: AR2 from the last two readings, for the first hours after a sensor
  change or of a new person (less than the two hours without a long gap every model needs). AR2
  needs a current value and the one 5 minutes before (bridged over a gap of at most 20 minutes),
  nothing more. Its bands are the quantiles of two-reading AR2's own errors for the person's
  variability class (their glucose spread over the days before the gap), or pooled over everyone
  without such days (mlmodels/core/short_history.py and its checked-in table). One table for
  everybody (AR2's population bands widened by 30%, before) covered 70-72% for people with type 1
  diabetes and 87-90% for the others.

Both have the interface of `GlucoseForecaster` that serving uses (build_features,
forecast_matrix, feature_contributions), so the fast path and the batch serve them unchanged.
"""

from __future__ import annotations

import numpy as np

from mlmodels.core.conformal import ConformalIntervals
from mlmodels.core.estimators import BlendForecaster, PriorForecaster, ar2_path
from mlmodels.core.features import HORIZONS, feature_names
from mlmodels.core.forecaster import (
    BASELINE_HALF_WIDTH_HORIZONS,
    BASELINE_HALF_WIDTH_LOG,
    CLAMP_HIGH,
    CLAMP_LOW,
    STEP_MIN,
    BaselineForecaster,
    GlucoseForecaster,
    _clamp,
)
from mlmodels.core.schemas import FeatureBuilder, Release2Features
from mlmodels.core.short_history import POOLED, ShortHistoryBands

# No extra widening. Prior 1.0.0's bands were widened 15% here (a new person is more often unlike
# the corpus than a held-out corpus person); since prior 1.0.1 guards the lower edges for lows,
# that over-covered: on the corpora's validation people the 80% band held 86-91% of outcomes at
# 30-120 min with 15% (70% of their time known, and after 1 day), 81-89% without, lows (< 70
# mg/dL, Weinstock) 72-79% without (bench/cold_start.py --role val [--band-widen 1.15]).
# Release 2's bands shrink toward these too (training.py).
POPULATION_BAND_WIDEN = 1.0
BAND_KEYS = ("lower_80", "upper_80", "lower_95", "upper_95")

_NAMES = feature_names()
_I_NOW = _NAMES.index("glucose_now")
_I_LAG5 = _NAMES.index("lag_5min")


class PopulationForecaster(GlucoseForecaster):
    """The population prior alone, with its held-out-calibrated bands widened (module docstring)."""

    method = "population"

    def __init__(self, prior, *, band_widen: float = POPULATION_BAND_WIDEN):
        super().__init__(
            BlendForecaster([PriorForecaster()], np.ones((len(HORIZONS), 1))),
            ConformalIntervals(normalized=False),
            None,
            algorithm="population_prior",
            hyperparameters={"prior_version": str(prior.version), "band_widen": band_widen},
            features=Release2Features(prior),
        )
        self.prior = prior
        self.version = str(prior.version)
        self.band_widen = float(band_widen)

    def metadata(self) -> dict:
        return {"version": self.version, "algorithm": self.algorithm, "prior_version": self.version}

    def forecast_matrix(self, X: np.ndarray, times_ns: np.ndarray, horizons: list[int], tz: str):
        """The prior's forecast and bands at `horizons` (beyond its last horizon: its last one)."""
        full = self.prior.forecast(Release2Features.windows_of(X), np.asarray(times_ns, dtype=np.int64), tz)
        cols = self.features.prior_columns(horizons)
        value = full["value"][:, cols]
        out = {"value": _clamp(value)}
        for key in BAND_KEYS:
            out[key] = _clamp(value + self.band_widen * (full[key][:, cols] - value))
        out["lower_80"] = np.minimum(out["lower_80"], out["value"])
        out["upper_80"] = np.maximum(out["upper_80"], out["value"])
        out["lower_95"] = np.minimum(out["lower_95"], out["lower_80"])
        out["upper_95"] = np.maximum(out["upper_95"], out["upper_80"])
        return out

    def to_files(self) -> dict[str, bytes]:
        raise TypeError("the population forecaster is shipped with the code, not stored per person")


class _ShortHistoryFeatures(FeatureBuilder):
    """Only what AR2 reads: the current value and the one 5 minutes before (the rest NaN)."""

    version = 0

    def names(self) -> list[str]:
        return list(_NAMES)

    def build(self, windows, interpolated, at_limit, times_ns, tz: str) -> np.ndarray:
        windows = np.asarray(windows, dtype=np.float64)
        X = np.full((len(windows), len(_NAMES)), np.nan)
        X[:, _I_NOW] = windows[:, -1]
        X[:, _I_LAG5] = windows[:, -2] - windows[:, -1]
        return X


class ShortHistoryForecaster(BaselineForecaster):
    """AR2 from the last two readings with the bands of one variability class (module docstring)."""

    method = "ar2_short_history"

    def __init__(self, tz: str = "UTC", *, variability_class: str = POOLED, bands: ShortHistoryBands | None = None):
        super().__init__(tz=tz)
        self.features = _ShortHistoryFeatures()
        self.algorithm = "ar2_short_history"
        self.bands = bands or ShortHistoryBands.load()
        self.variability_class = variability_class if variability_class in self.bands.names else POOLED
        self.hyperparameters = {
            "band_table": self.bands.table.get("format"), "variability_class": self.variability_class,
        }

    def forecast_matrix(self, X: np.ndarray, times_ns: np.ndarray, horizons: list[int], tz: str):
        now = X[:, _I_NOW]
        path = ar2_path(now, now + X[:, _I_LAG5], max(horizons) // STEP_MIN)
        value = path[:, [h // STEP_MIN - 1 for h in horizons]]
        return {k: _clamp(v) for k, v in self._bands(value, horizons, now=now).items()}

    def short_term(self, X: np.ndarray) -> dict[str, np.ndarray]:
        now = X[:, _I_NOW]
        return self._bands(now[:, None] + self.predict_change(X), HORIZONS, now=now)

    def _bands(self, value: np.ndarray, horizons: list[int], now=None) -> dict[str, np.ndarray]:
        """Band edges around `value` (n, len(horizons)) from the table of this class, at the level
        of the current values `now` (without them: the first horizon's forecast stands in)."""
        safe = np.clip(value, CLAMP_LOW, CLAMP_HIGH)
        level = value[:, 0] if now is None else now
        offsets = self.bands.offsets(self.variability_class, horizons, level)
        out = {"value": value}
        for tag in ("80", "95"):
            out[f"lower_{tag}"] = np.minimum(safe * np.exp(offsets[f"lower_{tag}"]), value)
            out[f"upper_{tag}"] = np.maximum(safe * np.exp(offsets[f"upper_{tag}"]), value)
        out["lower_95"] = np.minimum(out["lower_95"], out["lower_80"])
        out["upper_95"] = np.maximum(out["upper_95"], out["upper_80"])
        return out

    def metadata(self) -> dict:
        return {"version": "baseline", "algorithm": self.algorithm, "variability_class": self.variability_class}
