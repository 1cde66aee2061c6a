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
    return index.tz_convert("UTC")


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


def clean_readings(readings: pd.DataFrame) -> pd.DataFrame:
    """Valid readings only: UTC times, finite glucose, no 'entered-in-error' rows, sorted."""
    missing = {"time", "glucose_mg_dl"} - set(readings.columns)
    if missing:
        raise ValueError(f"readings lack column(s): {', '.join(sorted(missing))}")
    frame = pd.DataFrame(
        {
            "time": _utc_times(readings["time"]),
            "glucose_mg_dl": pd.to_numeric(readings["glucose_mg_dl"], errors="coerce").to_numpy(
                dtype=np.float64
            ),
        }
    )
    keep = np.isfinite(frame["glucose_mg_dl"].to_numpy())
    if "status" in readings.columns:
        keep &= readings["status"].astype("string").fillna("").to_numpy() != ENTERED_IN_ERROR
    limit = (frame["glucose_mg_dl"] <= SENSOR_LOW_LIMIT) | (frame["glucose_mg_dl"] >= SENSOR_HIGH_LIMIT)
    if "at_sensor_limit" in readings.columns:
        limit |= readings["at_sensor_limit"].fillna(False).astype(bool).to_numpy()
    frame["at_sensor_limit"] = limit.to_numpy()
    frame = frame.loc[keep].sort_values("time", kind="stable").reset_index(drop=True)
    return frame


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
    clean = clean_readings(readings)
    if clean.empty:
        return empty_grid()
    times_ns = clean["time"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    if anchor is not None:
        offset = int(pd.Timestamp(anchor).value % STEP_NS)
    else:
        offset = grid_offset_ns(times_ns)
    slot = (times_ns - offset + STEP_NS // 2) // STEP_NS
    first, last = int(slot.min()), int(slot.max())
    n = last - first + 1
    position = (slot - first).astype(np.int64)

    # Average readings that fall in the same slot (duplicates, re-uploads, backfills).
    sums = np.bincount(position, weights=clean["glucose_mg_dl"].to_numpy(), minlength=n)
    counts = np.bincount(position, minlength=n)
    limits = np.bincount(position, weights=clean["at_sensor_limit"].to_numpy(dtype=float), minlength=n) > 0
    observed = counts > 0
    values = np.full(n, np.nan)
    values[observed] = sums[observed] / counts[observed]

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
            values[fill_idx] = np.interp(fill_idx, observed_idx, values[observed_idx])
            interpolated[fill_idx] = True

    index = pd.DatetimeIndex(
        (np.arange(first, last + 1, dtype=np.int64) * STEP_NS + offset).astype("datetime64[ns]"),
        name="time",
    ).tz_localize("UTC")
    return pd.DataFrame(
        {
            "glucose_mg_dl": values,
            "observed": observed,
            "interpolated": interpolated,
            "at_sensor_limit": limits & observed,
        },
        index=index,
    )


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
