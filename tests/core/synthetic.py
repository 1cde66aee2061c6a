"""Synthetic CGM people for the numeric-core tests: a daily rhythm (meal peaks at local clock
times), a slow random walk and sensor noise, with readings every 5 minutes and a clock offset."""

from __future__ import annotations

import numpy as np
import pandas as pd


def synthetic_person(
    days: float = 5.0,
    *,
    seed: int = 0,
    start: str = "2024-03-01 00:02:30",
    tz: str = "UTC",
    noise: float = 3.0,
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = int(days * 288)
    local = pd.date_range(start, periods=n, freq="5min")
    minutes = (local.hour * 60 + local.minute).to_numpy()
    glucose = np.full(n, 110.0)
    for meal_min, height in ((8 * 60, 60.0), (13 * 60, 70.0), (19 * 60, 80.0)):
        dt = (minutes - meal_min) % 1440
        glucose += height * (dt / 45.0) * np.exp(1 - dt / 45.0) * (dt < 300)
    walk = np.zeros(n)
    for i in range(1, n):
        walk[i] = 0.97 * walk[i - 1] + rng.normal(0, 2.0)
    glucose += walk + rng.normal(0, noise, n)
    times = local.tz_localize(tz, nonexistent="shift_forward", ambiguous="NaT").tz_convert("UTC")
    frame = pd.DataFrame({"time": times, "glucose_mg_dl": np.clip(glucose, 40, 400).round()})
    return frame.dropna(subset=["time"]).reset_index(drop=True)


def series(values, start: str = "2024-01-01 08:00", step_min: int = 5) -> pd.DataFrame:
    """Readings from a list of values (None = missing reading) every `step_min` minutes, UTC."""
    times = pd.date_range(start, periods=len(values), freq=f"{step_min}min", tz="UTC")
    frame = pd.DataFrame({"time": times, "glucose_mg_dl": values})
    return frame.dropna().reset_index(drop=True)
