"""The serving hot path without pandas: readings as numpy arrays -> the model's input window ->
the forecaster's own numeric methods.

Why this exists: `GlucoseForecaster.predict` takes a DataFrame and builds the 5-minute grid
with pandas (cleaning, sorting, a DatetimeIndex); for one forecast that machinery costs several
milliseconds, more than the model itself. Here the same window is built with a few numpy
operations on the 20-40 readings of the last hours, and the forecaster's `forecast_matrix` and
`feature_contributions` (the same calls `predict_many` makes) do the rest.

The result must equal `forecaster.predict(...)` exactly: tests/predictions/
test_predictions_fastpath.py compares the two on many windows (gaps, duplicates, sensor limits,
stale and short data), so a change in the numeric core that this module does not follow fails
there instead of drifting silently. Anything without those numeric methods is served through its
own `predict_many`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlmodels.core.features import MAX_SHORT_HORIZON, WINDOW_MIN, WINDOW_STEPS, window_features
from mlmodels.core.forecaster import Forecast, ForecastInputError, NotEnoughReadings, StaleReadings
from mlmodels.core.preparation import (
    MAX_BRIDGE_MIN,
    SENSOR_HIGH_LIMIT,
    SENSOR_LOW_LIMIT,
    STEP_MIN,
    STEP_NS,
    grid_arrays,
)

STALE_AFTER_NS = 30 * 60 * 10**9
LOOKBACK_NS = (WINDOW_MIN + MAX_BRIDGE_MIN + STEP_MIN) * 60 * 10**9
MINUTE_NS = 60 * 10**9


@dataclass
class Readings:
    """A person's readings for one forecast, sorted by time: UTC epoch ns, mg/dL, sensor limit,
    and the stored observation ids (None for readings sent with the request)."""

    times_ns: np.ndarray
    values: np.ndarray
    at_limit: np.ndarray
    ids: np.ndarray | None = None

    @classmethod
    def from_rows(cls, times_ns, values, at_limit=None, ids=None) -> "Readings":
        times_ns = np.asarray(times_ns, dtype=np.int64)
        values = np.asarray(values, dtype=np.float64)
        at_limit = np.zeros(len(values), dtype=bool) if at_limit is None else np.asarray(at_limit, dtype=bool)
        order = np.argsort(times_ns, kind="stable")
        if len(order) > 1 and np.any(order != np.arange(len(order))):
            times_ns, values, at_limit = times_ns[order], values[order], at_limit[order]
            ids = None if ids is None else np.asarray(ids)[order]
        return cls(times_ns, values, at_limit, None if ids is None else np.asarray(ids, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.times_ns)

    @property
    def empty(self) -> bool:
        return len(self.times_ns) == 0

    def since(self, start_ns: int) -> "Readings":
        keep = self.times_ns >= start_ns
        return Readings(
            self.times_ns[keep], self.values[keep], self.at_limit[keep],
            None if self.ids is None else self.ids[keep],
        )

    def to_frame(self) -> pd.DataFrame:
        """The DataFrame form the numeric core's `predict` takes (and readings_frame returns)."""
        frame = pd.DataFrame(
            {
                "time": pd.to_datetime(self.times_ns, utc=True),
                "glucose_mg_dl": self.values,
                "at_sensor_limit": self.at_limit,
            }
        )
        if self.ids is not None:
            frame.insert(0, "id", self.ids)
        return frame


@dataclass
class Window:
    values: np.ndarray
    interpolated: np.ndarray
    at_limit: np.ndarray
    end_ns: int
    n_readings: int
    gaps: int


def input_window(readings: Readings, as_of_ns: int | None) -> Window:
    """The model's 120-minute input window ending at the last reading at or before `as_of`.

    Same rules as mlmodels.core.forecaster.input_window (grid anchored on the last reading, duplicates
    averaged, gaps up to 20 minutes interpolated, none longer), in numpy.
    """
    finite = np.isfinite(readings.values)
    times, values = readings.times_ns[finite], readings.values[finite]
    limit = readings.at_limit[finite] | (values <= SENSOR_LOW_LIMIT) | (values >= SENSOR_HIGH_LIMIT)
    if as_of_ns is not None:
        keep = times <= as_of_ns
        times, values, limit = times[keep], values[keep], limit[keep]
    if len(times) == 0:
        raise NotEnoughReadings("no glucose readings at or before the forecast time")
    last = int(times[-1])
    if as_of_ns is not None and as_of_ns - last > STALE_AFTER_NS:
        minutes = int((as_of_ns - last) // MINUTE_NS)
        raise StaleReadings(
            f"the last reading is {minutes} minutes older than the forecast time (limit 30 minutes)"
        )
    recent = times > last - LOOKBACK_NS
    times, values, limit = times[recent], values[recent], limit[recent]

    grid_parts = grid_arrays(times, values, limit, last % STEP_NS)
    grid, observed = grid_parts["glucose_mg_dl"], grid_parts["observed"]
    interpolated, limits = grid_parts["interpolated"], grid_parts["at_sensor_limit"]
    n = len(grid)

    tail = slice(max(n - (WINDOW_STEPS + 1), 0), n)
    window, observed_w = grid[tail], observed[tail]
    if len(window) < WINDOW_STEPS + 1 or not np.isfinite(window).all():
        raise NotEnoughReadings(
            f"a forecast needs readings covering the {WINDOW_MIN} minutes before the last one with no gap "
            f"longer than {MAX_BRIDGE_MIN} minutes; found {int(observed_w.sum())} readings there"
        )
    return Window(
        values=window,
        interpolated=interpolated[tail],
        at_limit=limits[tail],
        end_ns=last,
        n_readings=int(observed_w.sum()),
        gaps=int((~observed_w).sum()),
    )


def _supports_fast_path(forecaster) -> bool:
    return callable(getattr(forecaster, "forecast_matrix", None)) and callable(
        getattr(forecaster, "feature_contributions", None)
    )


def predict_many(forecaster, items, *, horizons: list[int], tz: str) -> list:
    """Forecast or ForecastInputError per (Readings, as_of_ns) item, with one model call.

    Equals `forecaster.predict_many([(frame, as_of), ...], horizons=..., tz=..., errors="return")`.
    """
    if not _supports_fast_path(forecaster):
        return forecaster.predict_many(
            [(r.to_frame(), None if a is None else pd.Timestamp(a, tz="UTC")) for r, a in items],
            horizons=horizons, tz=tz, errors="return",
        )
    windows = []
    for readings, as_of_ns in items:
        try:
            windows.append(input_window(readings, as_of_ns))
        except ForecastInputError as exc:
            windows.append(exc)
    good = [w for w in windows if isinstance(w, Window)]
    if good:
        times_ns = np.array([w.end_ns for w in good], dtype=np.int64)
        X = window_features(
            np.stack([w.values for w in good]),
            np.stack([w.interpolated for w in good]),
            np.stack([w.at_limit for w in good]),
            times_ns,
            tz,
        )
        matrix = forecaster.forecast_matrix(X, times_ns, horizons, tz)
        short_requested = [h for h in horizons if h <= MAX_SHORT_HORIZON] or [MAX_SHORT_HORIZON]
        explain_h = min(short_requested, key=lambda h: (abs(h - 60), h))
        top = forecaster.feature_contributions(X, explain_h)
    results, k = [], 0
    keys = ("value", "lower_80", "upper_80", "lower_95", "upper_95")
    method = getattr(forecaster, "method", "model")
    for w in windows:
        if not isinstance(w, Window):
            results.append(w)
            continue
        end = pd.Timestamp(w.end_ns, tz="UTC")
        rows = {key: matrix[key][k].tolist() for key in keys}
        points = [
            {
                "horizon_min": h,
                "time": end + pd.Timedelta(minutes=h),
                **{key: round(float(rows[key][c]), 1) for key in keys},
            }
            for c, h in enumerate(horizons)
        ]
        results.append(
            Forecast(
                as_of=end,
                points=points,
                top_features=top[k],
                window_start=end - pd.Timedelta(minutes=WINDOW_MIN),
                window_end=end,
                n_readings=w.n_readings,
                gaps_in_window=w.gaps,
                method=method,
            )
        )
        k += 1
    return results


def predict(forecaster, readings: Readings, *, as_of_ns: int | None, horizons: list[int], tz: str):
    """One forecast; raises NotEnoughReadings / StaleReadings like `forecaster.predict`."""
    result = predict_many(forecaster, [(readings, as_of_ns)], horizons=horizons, tz=tz)[0]
    if isinstance(result, Exception):
        raise result
    return result
