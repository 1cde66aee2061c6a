"""Embeddings of 2-hour glucose windows, for "similar episodes" search (e.g. pgvector, L2 distance).

A window is 24 readings on a 5-minute grid, the last at the window's end time. The embedding
(EMBEDDING_DIM = 28 floats) is

    [0:23]  shape: the 23 earlier readings minus the last one, / 50 mg/dL
            (so two windows with the same course at different levels have the same shape)
    [23]    level: (last reading - 140) / 50 mg/dL            x LEVEL_WEIGHT
    [24]    recent rate: (last - reading 15 min before) / 15 min, / 2 mg/dL/min  x RATE_WEIGHT
    [25]    variability: SD of the 24 readings / 50 mg/dL
    [26:28] local time of day of the end: sin, cos of 2 pi minute / 1440   x TIME_WEIGHT

Fixed scales (not per-person standardization) keep embeddings comparable across people and
over time. 50 mg/dL is about one SD of glucose for a person with diabetes, so one unit in any
coordinate is "a typical difference". TIME_WEIGHT = 0.5: windows 6 hours apart on the clock are
0.71 apart, like a 35 mg/dL difference of level - time of day matters (meals, dawn) but less
than the glucose course itself.

windows_for_embedding(readings) puts the readings on a UTC-aligned 5-minute grid by linear
interpolation between neighbouring readings at most 15 minutes apart (a grid point inside a
longer gap has no value) and yields every complete window ending on a multiple of
`step_minutes` (default 30, i.e. windows overlap by 90 minutes; pass 120 for non-overlapping).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import numpy as np
import pandas as pd

from .common import GLUCOSE, TIME, clean_readings, local_times, minute_of_day

WINDOW_READINGS = 24
GRID_MINUTES = 5
MAX_INTERPOLATION_GAP_MINUTES = 15
SCALE_MG_DL = 50.0
REFERENCE_LEVEL_MG_DL = 140.0
RATE_SCALE_MG_DL_PER_MIN = 2.0
LEVEL_WEIGHT = 1.0
RATE_WEIGHT = 1.0
TIME_WEIGHT = 0.5
EMBEDDING_DIM = (WINDOW_READINGS - 1) + 3 + 2  # 28


def window_embedding(values: np.ndarray, end_time_local: datetime | pd.Timestamp) -> np.ndarray:
    """The EMBEDDING_DIM-vector of one window: 24 readings in mg/dL (oldest first, 5 minutes
    apart) whose last one was taken at `end_time_local` (its clock time is used as is)."""
    values = np.asarray(values, dtype=float)
    if values.shape != (WINDOW_READINGS,):
        raise ValueError(f"a window has {WINDOW_READINGS} readings, got shape {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError("window readings must all be finite")
    minute = end_time_local.hour * 60 + end_time_local.minute + end_time_local.second / 60
    return _embed(values[np.newaxis, :], np.array([minute], dtype=float))[0]


def _embed(windows: np.ndarray, end_minute_of_day: np.ndarray) -> np.ndarray:
    """Row-wise embeddings of windows (n, 24) ending at local minutes of the day (n,)."""
    last = windows[:, -1]
    angle = 2 * np.pi * end_minute_of_day / 1440
    embedding = np.empty((windows.shape[0], EMBEDDING_DIM))
    embedding[:, :WINDOW_READINGS - 1] = (windows[:, :-1] - last[:, np.newaxis]) / SCALE_MG_DL
    embedding[:, 23] = LEVEL_WEIGHT * (last - REFERENCE_LEVEL_MG_DL) / SCALE_MG_DL
    embedding[:, 24] = RATE_WEIGHT * (last - windows[:, -4]) / 15.0 / RATE_SCALE_MG_DL_PER_MIN
    embedding[:, 25] = windows.std(axis=1) / SCALE_MG_DL
    embedding[:, 26] = TIME_WEIGHT * np.sin(angle)
    embedding[:, 27] = TIME_WEIGHT * np.cos(angle)
    return embedding


def windows_for_embedding(readings: pd.DataFrame, *, step_minutes: int = 30) -> Iterator[tuple[pd.Timestamp, np.ndarray]]:
    """(end time in UTC, 24 values) for every complete 2-hour window ending on a multiple of
    `step_minutes` (UTC-aligned, so in whole-hour-offset zones also on local :00 and :30)."""
    ends, windows = _grid_windows(readings, step_minutes)
    for end, values in zip(ends, windows):
        yield end, values


def embed_windows(readings: pd.DataFrame, tz: str, *, step_minutes: int = 30) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """All windows of `readings` embedded: (UTC end times, array of shape (n, EMBEDDING_DIM))."""
    ends, windows = _grid_windows(readings, step_minutes)
    local = local_times(pd.Series(ends), tz)
    return ends, _embed(windows, minute_of_day(local))


def _grid_windows(readings: pd.DataFrame, step_minutes: int) -> tuple[pd.DatetimeIndex, np.ndarray]:
    if step_minutes <= 0 or step_minutes % GRID_MINUTES:
        raise ValueError(f"step_minutes must be a positive multiple of {GRID_MINUTES}")
    clean, _ = clean_readings(readings)
    nothing = (pd.DatetimeIndex([], tz="UTC"), np.empty((0, WINDOW_READINGS)))
    if len(clean) < 2:
        return nothing
    seconds = (clean[TIME] - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()
    values = clean[GLUCOSE].to_numpy(dtype=float)
    grid_step = GRID_MINUTES * 60
    grid = np.arange(np.ceil(seconds[0] / grid_step), np.floor(seconds[-1] / grid_step) + 1) * grid_step
    if grid.size < WINDOW_READINGS:
        return nothing
    right = np.clip(np.searchsorted(seconds, grid, side="left"), 1, seconds.size - 1)
    left = right - 1
    exact = (seconds[right] == grid) | (seconds[left] == grid)
    span = seconds[right] - seconds[left]
    valid = exact | (span <= MAX_INTERPOLATION_GAP_MINUTES * 60)
    weight = np.where(span > 0, (grid - seconds[left]) / np.where(span > 0, span, 1), 1.0)
    gridded = values[left] + weight * (values[right] - values[left])
    complete = np.convolve(valid.astype(int), np.ones(WINDOW_READINGS, dtype=int), "valid") == WINDOW_READINGS
    ends = np.flatnonzero(complete) + WINDOW_READINGS - 1
    ends = ends[(grid[ends] % (step_minutes * 60)) == 0]
    windows = gridded[ends[:, np.newaxis] + np.arange(-WINDOW_READINGS + 1, 1)]
    return pd.to_datetime(grid[ends], unit="s", utc=True).as_unit("s"), windows
