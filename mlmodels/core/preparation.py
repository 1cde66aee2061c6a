"""Turn raw CGM readings into a regular 5-minute grid (numeric core, no Django).

Why a grid: every feature and target is "the value N minutes before/after t", which is only
well defined on evenly spaced times. CGM sensors report every ~5 minutes with a clock offset of
their own (e.g. hh:m2:27) and drift a few seconds per reading, so the grid is aligned to the data
(the typical offset of the readings within a 5-minute step), not to the wall clock, which keeps
the rounding error of each reading under 2.5 minutes and mostly near zero.

Short gaps (<= 20 minutes between two real readings) are bridged by linear interpolation because
a sensor skipping a reading or two says nothing about glucose; longer gaps stay NaN so no feature
or target is ever computed across a period where we do not know what happened.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

STEP_MIN = 5
STEP = pd.Timedelta(minutes=STEP_MIN)
STEP_NS = STEP.value
MAX_BRIDGE_MIN = 20
SENSOR_LOW_LIMIT = 40.0
SENSOR_HIGH_LIMIT = 400.0
ENTERED_IN_ERROR = "entered-in-error"

GRID_COLUMNS = ["glucose_mg_dl", "observed", "interpolated", "at_sensor_limit"]


def _utc_times(times: pd.Series) -> pd.DatetimeIndex:
    index = pd.DatetimeIndex(times)
    if index.tz is None:
        raise ValueError("readings 'time' must be timezone-aware (UTC); got naive timestamps")
    # as_unit: pandas 3 keeps the parsed resolution (s/ms/us); everything here counts in ns.
    return index.tz_convert("UTC").as_unit("ns")


def grid_offset_ns(times_ns: np.ndarray) -> int:
    """Typical position of the readings inside a 5-minute step (circular median, in ns)."""
    phase = (times_ns % STEP_NS).astype(np.float64) / STEP_NS * 2 * np.pi
    mean_angle = np.arctan2(np.sin(phase).mean(), np.cos(phase).mean())
    # Circular median approximated by the circular mean, refined by the median of deviations.
    deviation = np.angle(np.exp(1j * (phase - mean_angle)))
    angle = mean_angle + float(np.median(deviation))
    return int(round((angle % (2 * np.pi)) / (2 * np.pi) * STEP_NS)) % STEP_NS


def empty_grid() -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "glucose_mg_dl": pd.Series(dtype="float64"),
            "observed": pd.Series(dtype="bool"),
            "interpolated": pd.Series(dtype="bool"),
            "at_sensor_limit": pd.Series(dtype="bool"),
        },
        index=pd.DatetimeIndex([], tz="UTC", name="time"),
    )
    return frame


def valid_readings(
    times_ns: np.ndarray, values: np.ndarray, at_limit: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The reading rule on arrays: finite glucose only, sorted by time (stable), and values
    <= 40 or >= 400 mg/dL flagged as at the sensor's limit (besides rows the source flagged)."""
    keep = np.isfinite(values)
    at_limit = at_limit | (values <= SENSOR_LOW_LIMIT) | (values >= SENSOR_HIGH_LIMIT)
    times_ns, values, at_limit = times_ns[keep], values[keep], at_limit[keep]
    if len(times_ns) > 1 and np.any(np.diff(times_ns) < 0):
        order = np.argsort(times_ns, kind="stable")
        times_ns, values, at_limit = times_ns[order], values[order], at_limit[order]
    return times_ns, values, at_limit


def reading_arrays(readings: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Valid readings as numpy arrays sorted by time: UTC epoch ns, mg/dL, at-sensor-limit flag.

    Drops 'entered-in-error' rows, then applies valid_readings. Plain numpy so the serving path
    pays microseconds, not milliseconds, per forecast.
    """
    missing = {"time", "glucose_mg_dl"} - set(readings.columns)
    if missing:
        raise ValueError(f"readings lack column(s): {', '.join(sorted(missing))}")
    times_ns = _utc_times(readings["time"]).asi8
    values = pd.to_numeric(readings["glucose_mg_dl"], errors="coerce").to_numpy(dtype=np.float64)
    if "at_sensor_limit" in readings.columns:
        at_limit = readings["at_sensor_limit"].fillna(False).to_numpy(dtype=bool)
    else:
        at_limit = np.zeros(len(values), dtype=bool)
    if "status" in readings.columns:
        usable = readings["status"].to_numpy(dtype=object) != ENTERED_IN_ERROR
        times_ns, values, at_limit = times_ns[usable], values[usable], at_limit[usable]
    return valid_readings(times_ns, values, at_limit)


def clean_readings(readings: pd.DataFrame) -> pd.DataFrame:
    """Valid readings only: UTC times, finite glucose, no 'entered-in-error' rows, sorted."""
    times_ns, values, at_limit = reading_arrays(readings)
    return pd.DataFrame(
        {
            "time": pd.DatetimeIndex(times_ns.astype("datetime64[ns]")).tz_localize("UTC"),
            "glucose_mg_dl": values,
            "at_sensor_limit": at_limit,
        }
    )


def grid_arrays(
    times_ns: np.ndarray,
    values: np.ndarray,
    at_limit: np.ndarray,
    offset_ns: int,
    max_bridge_min: int = MAX_BRIDGE_MIN,
) -> dict[str, np.ndarray]:
    """The 5-minute grid as arrays (see prepare_grid); `slot_times_ns` are the grid times."""
    slot = (times_ns - offset_ns + STEP_NS // 2) // STEP_NS
    first, last = int(slot.min()), int(slot.max())
    n = last - first + 1
    position = (slot - first).astype(np.int64)

    # Average readings that fall in the same slot (duplicates, re-uploads, backfills).
    sums = np.bincount(position, weights=values, minlength=n)
    counts = np.bincount(position, minlength=n)
    limits = np.bincount(position, weights=at_limit.astype(float), minlength=n) > 0
    observed = counts > 0
    grid_values = np.full(n, np.nan)
    grid_values[observed] = sums[observed] / counts[observed]

    interpolated = np.zeros(n, dtype=bool)
    observed_idx = np.flatnonzero(observed)
    if len(observed_idx) >= 2:
        missing_idx = np.flatnonzero(~observed)
        if len(missing_idx):
            nxt = np.searchsorted(observed_idx, missing_idx)
            # Missing slots always lie strictly between first and last observed slot.
            gap_steps = observed_idx[nxt] - observed_idx[nxt - 1]
            bridge = gap_steps * STEP_MIN <= max_bridge_min
            fill_idx = missing_idx[bridge]
            grid_values[fill_idx] = np.interp(fill_idx, observed_idx, grid_values[observed_idx])
            interpolated[fill_idx] = True
    return {
        "slot_times_ns": np.arange(first, last + 1, dtype=np.int64) * STEP_NS + offset_ns,
        "glucose_mg_dl": grid_values,
        "observed": observed,
        "interpolated": interpolated,
        "at_sensor_limit": limits & observed,
    }


def prepare_grid(
    readings: pd.DataFrame,
    *,
    anchor: pd.Timestamp | None = None,
    max_bridge_min: int = MAX_BRIDGE_MIN,
) -> pd.DataFrame:
    """Readings -> 5-minute grid indexed by UTC `time`.

    Columns: `glucose_mg_dl` (NaN inside unbridged gaps), `observed` (a real reading fell in this
    slot), `interpolated` (bridged slot), `at_sensor_limit` (reading at/over the sensor's range,
    <= 40 or >= 400 mg/dL, or flagged by the source).

    `anchor`: a time that must fall exactly on the grid (forecasting anchors on the last reading so
    the forecast starts from a real value); default is the readings' typical offset.
    """
    times_ns, values, at_limit = reading_arrays(readings)
    if len(times_ns) == 0:
        return empty_grid()
    offset = int(pd.Timestamp(anchor).value % STEP_NS) if anchor is not None else grid_offset_ns(times_ns)
    arrays = grid_arrays(times_ns, values, at_limit, offset, max_bridge_min)
    index = pd.DatetimeIndex(arrays.pop("slot_times_ns").astype("datetime64[ns]"), name="time").tz_localize("UTC")
    return pd.DataFrame(arrays, index=index)


def data_sufficiency(grid: pd.DataFrame) -> dict:
    """Span and completeness figures used by the minimum-data check and the training log."""
    if grid.empty:
        return {"span_days": 0.0, "n_observed": 0, "expected_readings": 0, "coverage": 0.0}
    span = grid.index[-1] - grid.index[0]
    expected = int(span / STEP) + 1
    n_observed = int(grid["observed"].sum())
    return {
        "span_days": round(span / pd.Timedelta(days=1), 3),
        "n_observed": n_observed,
        "expected_readings": expected,
        "coverage": round(n_observed / expected, 4),
    }
