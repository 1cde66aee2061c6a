"""Long-horizon forecasts from the person's own time-of-day profile (numeric core, no Django).

Beyond two hours, what glucose will do depends on meals, activity and medication we do not see,
so the honest forecast is: the short-term forecast's deviation from the person's typical value at
that clock time fades away, and the forecast becomes the typical value (profile median) with the
typical spread (profile quantiles) as its band. The fade is exponential with a time constant
fitted from how long the person's deviations from their profile persist (autocorrelation).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlmodels.core.preparation import STEP_MIN

PROFILE_QUANTILES = (0.025, 0.05, 0.10, 0.25, 0.50, 0.75, 0.90, 0.95, 0.975)
BIN_MIN = 30
N_BINS = 1440 // BIN_MIN
HALF_WINDOW_MIN = 60  # readings within +-60 min of a bin centre (circular) shape its quantiles
DEFAULT_TAU_MIN = 120.0
# Each time-of-day bin sees one stretch of readings per day, so with a few days its quantiles
# are noisy. They are shrunk toward the person's all-day quantiles with weight
# days / (days + SHRINK_DAYS): half-way after 3 days, 82% of the bin's own shape after 14.
SHRINK_DAYS = 3.0
TAU_GRID = np.array([30, 45, 60, 90, 120, 150, 180, 240, 300, 360, 480], dtype=float)
_BAND_QUANTILES = {"80": (0.10, 0.90), "95": (0.025, 0.975)}


def local_minutes(times_utc: pd.DatetimeIndex | np.ndarray, tz: str) -> np.ndarray:
    index = pd.DatetimeIndex(times_utc)
    if index.tz is None:
        index = index.tz_localize("UTC")
    local = index.tz_convert(tz)
    return local.hour.to_numpy() * 60 + local.minute.to_numpy() + local.second.to_numpy() / 60.0


class TimeOfDayProfile:
    def __init__(self, shrink_days: float = SHRINK_DAYS):
        self.shrink_days = shrink_days
        self.quantiles = np.zeros((N_BINS, len(PROFILE_QUANTILES)))
        self.tau_min = DEFAULT_TAU_MIN
        self.n_readings = 0

    def fit(self, grid: pd.DataFrame, tz: str) -> "TimeOfDayProfile":
        observed = grid.loc[grid["observed"], "glucose_mg_dl"]
        values = observed.to_numpy(dtype=float)
        minutes = local_minutes(observed.index, tz)
        self.n_readings = len(values)
        centres = (np.arange(N_BINS) + 0.5) * BIN_MIN
        for b, centre in enumerate(centres):
            distance = np.abs((minutes - centre + 720) % 1440 - 720)
            near = values[distance <= HALF_WINDOW_MIN]
            if len(near) < 10:  # too little data at this time: fall back to all readings
                near = values
            self.quantiles[b] = np.quantile(near, PROFILE_QUANTILES) if len(near) else np.nan
        # Light circular smoothing so neighbouring bins do not jump.
        q = self.quantiles
        q = 0.25 * np.roll(q, 1, axis=0) + 0.5 * q + 0.25 * np.roll(q, -1, axis=0)
        if len(values):
            days = len(values) / (1440 / STEP_MIN)
            weight = days / (days + self.shrink_days)
            overall = np.quantile(values, PROFILE_QUANTILES)[None, :]
            q = overall + weight * (q - overall)
        self.quantiles = q
        self.quantiles.sort(axis=1)
        self.tau_min = self._fit_tau(grid, tz)
        return self

    def _fit_tau(self, grid: pd.DataFrame, tz: str) -> float:
        """Time constant of the decay of deviations from the profile median (autocorrelation fit)."""
        values = grid["glucose_mg_dl"].to_numpy(dtype=float)
        deviation = values - self.median_at(local_minutes(grid.index, tz))
        lags = np.arange(30, 361, 30)
        corr = []
        for lag in lags:
            k = lag // STEP_MIN
            if k >= len(deviation) - 50:
                break
            a, b = deviation[:-k], deviation[k:]
            ok = np.isfinite(a) & np.isfinite(b)
            if ok.sum() < 50 or np.std(a[ok]) == 0 or np.std(b[ok]) == 0:
                break
            corr.append(np.corrcoef(a[ok], b[ok])[0, 1])
        if len(corr) < 3:
            return DEFAULT_TAU_MIN
        corr = np.clip(np.array(corr), 0.0, 1.0)
        used = lags[: len(corr)]
        errors = [np.sum((corr - np.exp(-used / tau)) ** 2) for tau in TAU_GRID]
        return float(TAU_GRID[int(np.argmin(errors))])

    def _bin(self, minutes: np.ndarray) -> np.ndarray:
        return (np.asarray(minutes) // BIN_MIN).astype(int) % N_BINS

    def quantile_at(self, minutes: np.ndarray, q: float) -> np.ndarray:
        """Profile quantile q at local minutes-of-day, linearly interpolated between bin centres."""
        col = PROFILE_QUANTILES.index(q)
        centres = (np.arange(N_BINS) + 0.5) * BIN_MIN
        xp = np.concatenate([[centres[-1] - 1440], centres, [centres[0] + 1440]])
        fp = np.concatenate([[self.quantiles[-1, col]], self.quantiles[:, col], [self.quantiles[0, col]]])
        return np.interp(np.asarray(minutes, dtype=float) % 1440, xp, fp)

    def median_at(self, minutes: np.ndarray) -> np.ndarray:
        return self.quantile_at(minutes, 0.50)

    def extend(
        self,
        origin_times_ns: np.ndarray,
        value_120: np.ndarray,
        bands_120: dict[str, np.ndarray],
        horizons: list[int],
        tz: str,
    ) -> dict[str, np.ndarray]:
        """Forecasts beyond 120 minutes, (n, len(horizons)) each: value and 80/95% band edges.

        value_120 and bands_120 ('lower_80', ... in mg/dL) are the 120-minute forecast per row.
        """
        origin = pd.DatetimeIndex(np.asarray(origin_times_ns).astype("datetime64[ns]")).tz_localize("UTC")
        m0 = local_minutes(origin, tz)
        h = np.asarray(horizons, dtype=float)[None, :]
        minutes = m0[:, None] + h
        med_120 = self.median_at(m0 + 120)[:, None]
        med_h = self.median_at(minutes.ravel()).reshape(minutes.shape)
        decay = np.exp(-(h - 120.0) / self.tau_min)
        value = med_h + decay * (value_120[:, None] - med_120)
        out = {"value": value}
        for tag, (q_lo, q_hi) in _BAND_QUANTILES.items():
            prof_lo = med_h - self.quantile_at(minutes.ravel(), q_lo).reshape(minutes.shape)
            prof_hi = self.quantile_at(minutes.ravel(), q_hi).reshape(minutes.shape) - med_h
            off_lo_120 = (value_120 - bands_120[f"lower_{tag}"])[:, None]
            off_hi_120 = (bands_120[f"upper_{tag}"] - value_120)[:, None]
            # Variance-style mix of the short-term band and the profile's own spread, never
            # narrower than the 120-minute band.
            lo = np.maximum(off_lo_120, np.sqrt(decay**2 * off_lo_120**2 + (1 - decay**2) * prof_lo**2))
            hi = np.maximum(off_hi_120, np.sqrt(decay**2 * off_hi_120**2 + (1 - decay**2) * prof_hi**2))
            out[f"lower_{tag}"] = value - lo
            out[f"upper_{tag}"] = value + hi
        return out

    def at_horizons(self, origin_times_ns: np.ndarray, horizons: list[int], tz: str) -> dict[str, np.ndarray]:
        """The profile alone at each origin + horizon: median and its 80%/95% quantile band."""
        origin = pd.DatetimeIndex(np.asarray(origin_times_ns).astype("datetime64[ns]")).tz_localize("UTC")
        minutes = (local_minutes(origin, tz)[:, None] + np.asarray(horizons, dtype=float)[None, :]).ravel()
        shape = (len(origin), len(horizons))
        out = {"value": self.median_at(minutes).reshape(shape)}
        for tag, (q_lo, q_hi) in _BAND_QUANTILES.items():
            out[f"lower_{tag}"] = self.quantile_at(minutes, q_lo).reshape(shape)
            out[f"upper_{tag}"] = self.quantile_at(minutes, q_hi).reshape(shape)
        return out

    def to_dict(self) -> dict:
        return {
            "bin_minutes": BIN_MIN,
            "quantile_levels": list(PROFILE_QUANTILES),
            "quantiles": np.round(self.quantiles, 3).tolist(),
            "tau_min": self.tau_min,
            "n_readings": self.n_readings,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "TimeOfDayProfile":
        obj = cls()
        if int(data["bin_minutes"]) != BIN_MIN or tuple(data["quantile_levels"]) != PROFILE_QUANTILES:
            raise ValueError("stored profile uses another bin size or quantile set")
        obj.quantiles = np.asarray(data["quantiles"], dtype=float)
        obj.tau_min = float(data["tau_min"])
        obj.n_readings = int(data.get("n_readings", 0))
        return obj
