"""The serving hot path without pandas: readings as numpy arrays -> the model's input window ->
the forecaster's own numeric methods.

Why this exists: `GlucoseForecaster.predict` takes a DataFrame and cleans it with pandas; for one
forecast that costs several milliseconds, more than the model itself. Here the readings stay
numpy arrays from the database row to the model: the window comes from the numeric core's one
input-window rule (mlmodels.core.forecaster.window_from_arrays, which `predict` uses too) and
`forecast_windows` (the same call `predict_many` ends in) does the rest.

The result equals `forecaster.predict(...)` exactly: tests/predictions/
test_predictions_fastpath.py compares the two on many windows (gaps, duplicates, sensor limits,
stale and short data). Anything without `forecast_windows` is served through its own
`predict_many`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlmodels.core.forecaster import (
    ForecastInputError,
    InputWindow,
    short_window_from_arrays,
    window_from_arrays,
)
from mlmodels.core.preparation import valid_readings


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


def input_window(readings: Readings, as_of_ns: int | None) -> InputWindow:
    """The model's input window ending at the last reading at or before `as_of`: the numeric
    core's one rule (window_from_arrays) on these arrays."""
    return window_from_arrays(*valid_readings(readings.times_ns, readings.values, readings.at_limit), as_of_ns)


def short_input_window(readings: Readings, as_of_ns: int | None) -> InputWindow:
    """The readings since the last long gap, for short-history forecasters (the core's
    short_window_from_arrays on these arrays)."""
    return short_window_from_arrays(*valid_readings(readings.times_ns, readings.values, readings.at_limit), as_of_ns)


def _supports_fast_path(forecaster) -> bool:
    return callable(getattr(forecaster, "forecast_windows", None))


def predict_many(forecaster, items, *, horizons: list[int], tz: str, window=input_window, treatments=None) -> list:
    """Forecast or ForecastInputError per (Readings, as_of_ns) item, with one model call.

    Equals `forecaster.predict_many([(frame, as_of), ...], horizons=..., tz=..., errors="return")`.
    `window=short_input_window` serves a short-history forecaster from what readings there are.
    `treatments`: one person's recorded treatments before the origin, for a release-3 model.
    """
    if window is input_window and not _supports_fast_path(forecaster):
        return forecaster.predict_many(
            [(r.to_frame(), None if a is None else pd.Timestamp(a, tz="UTC")) for r, a in items],
            horizons=horizons, tz=tz, errors="return",
        )
    windows = []
    for readings, as_of_ns in items:
        try:
            windows.append(window(readings, as_of_ns))
        except ForecastInputError as exc:
            windows.append(exc)
    if treatments is not None:
        return forecaster.forecast_windows(windows, horizons=horizons, tz=tz, treatments=treatments)
    return forecaster.forecast_windows(windows, horizons=horizons, tz=tz)


def predict(
    forecaster, readings: Readings, *, as_of_ns: int | None, horizons: list[int], tz: str, window=input_window,
    treatments=None,
):
    """One forecast; raises NotEnoughReadings / StaleReadings like `forecaster.predict`."""
    result = predict_many(forecaster, [(readings, as_of_ns)], horizons=horizons, tz=tz, window=window,
                          treatments=treatments)[0]
    if isinstance(result, Exception):
        raise result
    return result
