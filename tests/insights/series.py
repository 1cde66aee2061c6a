"""Small constructed CGM series for the insights tests (no randomness unless a seed is given)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd


def readings(values, start="2026-01-05 00:00", step_min: float = 5, tz: str = "UTC") -> pd.DataFrame:
    """Readings every `step_min` minutes from `start` (local time in `tz`), times in UTC."""
    first = pd.Timestamp(start, tz=tz).tz_convert("UTC")
    times = first + pd.to_timedelta(np.arange(len(values)) * step_min, unit="min")
    return pd.DataFrame({"time": times, "glucose_mg_dl": np.asarray(values, dtype=float)})


def at_times(pairs, tz: str = "UTC") -> pd.DataFrame:
    """Readings from (time string in `tz`, value) pairs."""
    times = pd.DatetimeIndex([pd.Timestamp(t, tz=tz) for t, _ in pairs]).tz_convert("UTC")
    return pd.DataFrame({"time": times, "glucose_mg_dl": [float(v) for _, v in pairs]})


def daily(
    shape: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
    *,
    days: int = 14,
    first_day: str = "2026-01-05",  # a Monday
    tz: str = "Europe/Berlin",
    noise_sd: float = 0.0,
    seed: int = 0,
) -> pd.DataFrame:
    """Readings every 5 minutes for `days` local days; the value is
    shape(local minute of day, day number, weekday) + optional white noise."""
    first = pd.Timestamp(first_day, tz=tz).tz_convert("UTC")
    last = pd.Timestamp(first_day, tz=tz) + pd.Timedelta(days=days)
    count = int((last.tz_convert("UTC") - first).total_seconds() // 300)
    times = first + pd.to_timedelta(np.arange(count) * 5, unit="min")
    local = times.tz_convert(tz)
    minute = (local.hour * 60 + local.minute).to_numpy(dtype=float)
    day = np.asarray([(d - pd.Timestamp(first_day).date()).days for d in local.date])
    weekday = local.day_of_week.to_numpy()
    values = np.asarray(shape(minute, day, weekday), dtype=float) * np.ones(count)
    if noise_sd:
        values = values + np.random.default_rng(seed).normal(0, noise_sd, count)
    return pd.DataFrame({"time": times, "glucose_mg_dl": np.round(values, 1)})


def bump(minute: np.ndarray, centre: float, half_width: float, height: float) -> np.ndarray:
    """A triangle of `height` centred at local minute `centre`, zero beyond +-half_width."""
    return height * np.clip(1 - np.abs(minute - centre) / half_width, 0, None)
