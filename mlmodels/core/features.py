"""Features and targets on the 5-minute grid (numeric core, no Django).

One row per grid time t, computed ONLY from grid values at or before t (the last 120 minutes):
the model sees what a person's sensor had shown by t, never anything later. Everything that
depends on the glucose level is expressed relative to the current value, so a model learned at
one glucose level transfers to another (and to other people), and the targets are changes from
the current value for the same reason.

Training and serving share `window_features`, which works on a matrix of windows, so a single
forecast and a batch of thousands run the same code (and a single one runs in well under a ms).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from mlmodels.core.preparation import STEP_MIN
from mlmodels.core.treatments import TREATMENT_FEATURES

FEATURE_SCHEMA_VERSION = 1  # release 1; every shipped schema is in mlmodels/core/schemas.py

WINDOW_MIN = 120
WINDOW_STEPS = WINDOW_MIN // STEP_MIN  # 24 steps back, 25 values including t
HORIZONS = list(range(5, 121, 5))
MAX_SHORT_HORIZON = 120

LAG_MINUTES = [5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 75, 90, 105, 120]
RATE_MINUTES = [5, 15, 30]
ROLLING_MINUTES = [30, 60, 120]


class FeatureSchemaMismatch(ValueError):
    """A stored model was built with other features than this code computes."""


# Release 2 appends the population prior's forecast CHANGE at every short horizon to the
# release-1 columns (same order, so every column index of release 1 stays valid in release 2).
PRIOR_CHANGE_FEATURES = [f"prior_change_{h}min" for h in HORIZONS]
# ... and the raw window itself (mg/dL, oldest first), from which the prior's far-horizon
# forecast is computed with the person's profile when a forecast reaches beyond 2 hours. No
# learned candidate uses these columns.
WINDOW_VALUE_FEATURES = [f"window_{m}min_ago" for m in range(WINDOW_MIN, -1, -STEP_MIN)]
# Release 3 appends the recorded treatments' features (mlmodels/core/treatments.py) after those.
TREATMENT_INPUT_FEATURES = list(TREATMENT_FEATURES)


def all_feature_names() -> list[str]:
    """The widest feature matrix any shipped schema builds: release 1's columns, then release 2's,
    then release 3's.

    Candidates name the columns they use; indices into this list are valid in every schema
    whose matrix contains those columns.
    """
    return feature_names() + PRIOR_CHANGE_FEATURES + WINDOW_VALUE_FEATURES + TREATMENT_INPUT_FEATURES


def feature_names() -> list[str]:
    """The release-1 features (a prefix of every later schema's matrix)."""
    names = ["glucose_now"]
    names += [f"lag_{m}min" for m in LAG_MINUTES]
    names += [f"rate_{m}min" for m in RATE_MINUTES]
    names += ["accel_15min"]
    for m in ROLLING_MINUTES:
        names += [f"mean_{m}min", f"std_{m}min", f"min_{m}min", f"max_{m}min"]
    names += ["time_of_day_sin", "time_of_day_cos", "day_of_week_sin", "day_of_week_cos"]
    names += ["interpolated_frac_60min", "sensor_limit_60min"]
    return names


@dataclass(frozen=True)
class FeatureSchema:
    names: tuple[str, ...]
    version: int = FEATURE_SCHEMA_VERSION

    @classmethod
    def current(cls) -> "FeatureSchema":
        return cls(tuple(feature_names()), FEATURE_SCHEMA_VERSION)

    def to_dict(self) -> dict:
        return {"version": self.version, "names": list(self.names)}

    @classmethod
    def from_dict(cls, data: dict) -> "FeatureSchema":
        return cls(tuple(data["names"]), int(data["version"]))

    def check(self, other: "FeatureSchema | dict") -> None:
        """Raise FeatureSchemaMismatch unless `other` has the same version and feature list."""
        if isinstance(other, dict):
            other = FeatureSchema.from_dict(other)
        if other.version != self.version:
            raise FeatureSchemaMismatch(
                f"feature schema version {other.version} does not match this code's version {self.version}"
            )
        if tuple(other.names) != tuple(self.names):
            extra = sorted(set(other.names) - set(self.names))
            lacking = sorted(set(self.names) - set(other.names))
            raise FeatureSchemaMismatch(
                f"feature names differ (unknown: {extra[:5]}, missing: {lacking[:5]}, or another order)"
            )


def _local_clock(times_ns: np.ndarray, tz: str) -> tuple[np.ndarray, np.ndarray]:
    """(minute of day incl. seconds, weekday 0=Monday) on the local clock of `tz`."""
    times_ns = np.asarray(times_ns, dtype=np.int64)
    if len(times_ns) <= 8:  # serving: zoneinfo per row is ~50x cheaper than a pandas index
        zone = ZoneInfo(tz)
        local = [datetime.fromtimestamp(t // 10**9, tz=timezone.utc).astimezone(zone) for t in times_ns]
        minutes = np.array([d.hour * 60 + d.minute + d.second / 60 for d in local])
        return minutes, np.array([d.weekday() for d in local], dtype=float)
    local = pd.DatetimeIndex(times_ns.astype("datetime64[ns]")).tz_localize("UTC").tz_convert(tz)
    minutes = local.hour.to_numpy() * 60 + local.minute.to_numpy() + local.second.to_numpy() / 60
    return minutes, local.day_of_week.to_numpy().astype(float)


def _local_time_features(times_ns: np.ndarray, tz: str) -> np.ndarray:
    """Time of day and day of week on the person's local clock (meals follow it, DST included)."""
    minutes, weekday = _local_clock(times_ns, tz)
    day = weekday + minutes / 1440.0
    tod = 2 * np.pi * minutes / 1440.0
    dow = 2 * np.pi * day / 7.0
    return np.column_stack([np.sin(tod), np.cos(tod), np.sin(dow), np.cos(dow)])


def window_features(
    windows: np.ndarray,
    interpolated: np.ndarray,
    at_limit: np.ndarray,
    times_ns: np.ndarray,
    tz: str,
) -> np.ndarray:
    """Feature matrix from windows of glucose values, oldest first, last column = value at t.

    windows/interpolated/at_limit: (n, 25) arrays; times_ns: (n,) UTC int64 ns of t.
    Rows with any NaN in the window give all-NaN features (the window crosses an unbridged gap).
    """
    windows = np.asarray(windows, dtype=np.float64)
    n = windows.shape[0]
    now = windows[:, -1]

    def back(minutes: int) -> np.ndarray:
        return windows[:, -1 - minutes // STEP_MIN]

    cols = [now]
    cols += [back(m) - now for m in LAG_MINUTES]
    cols += [(now - back(m)) / m for m in RATE_MINUTES]
    cols.append((now - back(15)) / 15 - (back(15) - back(30)) / 15)
    for m in ROLLING_MINUTES:
        part = windows[:, -(m // STEP_MIN + 1):]
        cols += [
            part.mean(axis=1) - now,
            part.std(axis=1),
            part.min(axis=1) - now,
            part.max(axis=1) - now,
        ]
    out = np.empty((n, len(cols) + 6))
    out[:, : len(cols)] = np.column_stack(cols)
    out[:, len(cols): len(cols) + 4] = _local_time_features(times_ns, tz)
    last_hour = -(60 // STEP_MIN + 1)
    out[:, -2] = np.asarray(interpolated, dtype=float)[:, last_hour:].mean(axis=1)
    out[:, -1] = np.asarray(at_limit, dtype=float)[:, last_hour:].max(axis=1)
    out[~np.isfinite(windows).all(axis=1)] = np.nan
    return out


def grid_windows(grid: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, 25) windows of glucose/interpolated/at-limit ending at every grid time (NaN-padded)."""
    pad = WINDOW_STEPS

    def slide(values: np.ndarray, fill) -> np.ndarray:
        padded = np.concatenate([np.full(pad, fill, dtype=values.dtype), values])
        return np.lib.stride_tricks.sliding_window_view(padded, pad + 1)

    values = grid["glucose_mg_dl"].to_numpy(dtype=np.float64)
    return (
        slide(values, np.nan),
        slide(grid["interpolated"].to_numpy(dtype=bool), False),
        slide(grid["at_sensor_limit"].to_numpy(dtype=bool), False),
    )


def build_features(grid: pd.DataFrame, tz: str = "UTC") -> pd.DataFrame:
    """One row per grid time (same index as `grid`); all-NaN rows where the window has a gap."""
    windows, interpolated, at_limit = grid_windows(grid)
    times_ns = grid.index.asi8 if len(grid) else np.array([], dtype=np.int64)
    if len(grid) == 0:
        return pd.DataFrame(columns=feature_names(), index=grid.index, dtype=float)
    matrix = window_features(windows, interpolated, at_limit, times_ns, tz)
    return pd.DataFrame(matrix, index=grid.index, columns=feature_names())


def build_targets(
    grid: pd.DataFrame, horizons: list[int] | None = None, *, observed_only: bool = False
) -> pd.DataFrame:
    """Change from the value at t to the value at t+h, one column `h{h}` per horizon.

    NaN where the path from t to t+h crosses an unbridged gap or runs past the data. With
    `observed_only`, targets that land on an interpolated slot are NaN too (used for evaluation,
    so scores are measured against real readings only).
    """
    horizons = HORIZONS if horizons is None else horizons
    values = grid["glucose_mg_dl"].to_numpy(dtype=np.float64)
    n = len(values)
    nan_cum = np.concatenate([[0], np.cumsum(~np.isfinite(values))])
    observed = grid["observed"].to_numpy(dtype=bool)
    out = {}
    idx = np.arange(n)
    for h in horizons:
        if h % STEP_MIN:
            raise ValueError(f"horizon {h} is not a multiple of {STEP_MIN} minutes")
        k = h // STEP_MIN
        target = np.full(n, np.nan)
        valid = idx + k < n
        src = idx[valid]
        dst = src + k
        clean_path = (nan_cum[dst + 1] - nan_cum[src]) == 0
        if observed_only:
            clean_path &= observed[dst]
        target_valid = np.where(clean_path, values[dst] - values[src], np.nan)
        target[src] = target_valid
        out[f"h{h}"] = target
    return pd.DataFrame(out, index=grid.index)
