"""Realistic synthetic CGM readings, for the demo loader (machines without the real data
file) and for tests. Pure Python: numpy + pandas, no Django.

    generate_cgm(days=14, *, seed=0, end=None, tz="Europe/Berlin", profile="t2d")
        -> DataFrame[time (tz-aware UTC), glucose_mg_dl (float, whole mg/dL)]

The model
---------
Readings are the sum of a few physiological components plus sensor effects, evaluated at
the sample times, then degraded the way a real sensor degrades them:

glucose(t) = basal
           + dawn(t)            a Gaussian bump in local clock time, peak ~06:30, width ~1.5 h
                                (dawn phenomenon: hormones raise glucose before waking)
           + nocturnal dip      a shallow Gaussian trough around 03:00 local
           + sum of meals       3 per local day (breakfast ~07:15, lunch ~12:45, dinner ~19:00,
                                each +- ~45 min, later on weekends, sometimes skipped) with a
                                gamma-like absorption curve  A * (u/tp)^k * exp(k * (1 - u/tp))
                                (u = minutes since the meal, tp = time to peak, k = shape), so the
                                rise is fast and the fall is slow; A is log-normal per meal
           + snacks             Poisson number per day between 10:00 and 22:00, smaller and faster
           + exercise dips      on some days, a negative gamma-shaped dip lasting ~1-2 h
           + drift              slow AR(1) wandering (hourly scale): day-to-day variation in
                                insulin sensitivity, illness, stress...
           + sensor noise       AR(1), phi=0.7 at 5 min: CGM error is autocorrelated, not white
           + compression lows   (optional) at night a sharp drop to ~50-65 mg/dL and quick
                                recovery within ~30 min: the sensor is pressed while lying on it

then: clipped to the sensor's reporting limits 40-400 mg/dL (receivers show LO/HI outside),
rounded to whole mg/dL as devices report them, and thinned by
  - short dropouts: a Poisson number per day of 1-3 missing readings (radio loss),
  - longer gaps: a few per two weeks of 30 min - 3 h (receiver out of range),
  - sensor changes every 10 days (the first change at a random phase) with a 1-2 h warm-up
    during which no readings are reported.
The last 30 minutes before `end` are never thinned, so the series ends at `end` exactly.

Sampling: a 5-minute grid ending at `end` with a small time jitter (+-3 s, like the few-second
drift seen in real exports); the last reading is exactly at `end`.

Profiles (PROFILES below hold every parameter):
  "t2d": type 2 like the Broll 2021 data: mean ~150 mg/dL, CV ~25 %, meal rises ~60 mg/dL.
  "t1d": type 1, more variable: larger meal rises and drift, lows after overcorrection, CV ~35-40 %.

Deterministic for a seed (numpy Generator(PCG64)); the date of `end` also shapes the result
(weekends, DST), so pass `end` for reproducible output. 14 days take a few milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from scipy.signal import lfilter

SAMPLE_MINUTES = 5.0
SENSOR_MIN_MG_DL = 40.0
SENSOR_MAX_MG_DL = 400.0
SENSOR_LIFETIME_DAYS = 10.0
# The last 2.5 hours always report: a forecast needs a gap-free 2-hour window (plus a bridge)
# before now, and a series that ends in a receiver gap would make demo and tests depend on
# where the random gaps fell relative to the clock.
INTACT_TAIL_MINUTES = 150.0


@dataclass(frozen=True)
class Profile:
    basal: float  # mg/dL level without meals/dawn
    dawn_amplitude: float  # mg/dL at the dawn peak
    night_dip: float  # mg/dL trough depth around 03:00
    meal_amplitude: float  # median peak rise of a main meal, mg/dL
    meal_amplitude_sigma: float  # log-normal spread of meal rises
    meal_peak_minutes: float  # median time to peak after a meal
    meal_shape: float  # gamma shape k: larger = narrower curve
    skip_breakfast: float  # probability a breakfast is skipped
    snacks_per_day: float
    snack_amplitude: float
    exercise_probability: float  # per day
    exercise_depth: float  # mg/dL at the deepest point
    lows_per_day: float  # t1d: insulin-driven dips (absent in t2d)
    low_depth: float
    drift_sd: float  # stationary SD of the slow drift, mg/dL
    drift_phi: float  # AR(1) coefficient of the drift per 5 minutes
    noise_sd: float  # stationary SD of the sensor noise, mg/dL
    noise_phi: float  # AR(1) coefficient of the sensor noise per 5 minutes
    compression_lows_per_night: float


PROFILES: dict[str, Profile] = {
    "t2d": Profile(
        basal=128.0, dawn_amplitude=20.0, night_dip=8.0,
        meal_amplitude=68.0, meal_amplitude_sigma=0.4, meal_peak_minutes=65.0, meal_shape=2.5,
        skip_breakfast=0.1, snacks_per_day=0.8, snack_amplitude=22.0,
        exercise_probability=0.3, exercise_depth=25.0, lows_per_day=0.0, low_depth=0.0,
        drift_sd=20.0, drift_phi=0.995, noise_sd=4.5, noise_phi=0.7,
        compression_lows_per_night=0.1,
    ),
    "t1d": Profile(
        basal=135.0, dawn_amplitude=30.0, night_dip=10.0,
        meal_amplitude=95.0, meal_amplitude_sigma=0.5, meal_peak_minutes=55.0, meal_shape=2.2,
        skip_breakfast=0.15, snacks_per_day=1.2, snack_amplitude=35.0,
        exercise_probability=0.35, exercise_depth=45.0, lows_per_day=0.6, low_depth=70.0,
        drift_sd=38.0, drift_phi=0.993, noise_sd=5.0, noise_phi=0.7,
        compression_lows_per_night=0.1,
    ),
}

# (name, median local minute of day, SD minutes, weekend shift minutes)
MEALS = (("breakfast", 7 * 60 + 15, 40.0, 75.0), ("lunch", 12 * 60 + 45, 40.0, 30.0),
         ("dinner", 19 * 60, 50.0, 20.0))


def generate_cgm(
    days: float = 14,
    *,
    seed: int = 0,
    end: datetime | None = None,
    tz: str = "Europe/Berlin",
    profile: str = "t2d",
    compression_lows: bool = True,
) -> pd.DataFrame:
    """Synthetic CGM readings over `days` ending at `end` (default now), see the module docstring.

    Returns columns `time` (tz-aware UTC, ascending) and `glucose_mg_dl` (float, whole mg/dL,
    within 40-400).
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; use one of {sorted(PROFILES)}")
    if not days > 0:
        raise ValueError(f"days must be positive, got {days!r}")
    params = PROFILES[profile]
    zone = ZoneInfo(tz)
    if end is None:
        end = datetime.now(timezone.utc)
    if end.tzinfo is None:
        raise ValueError("end must be timezone-aware")
    end_utc = pd.Timestamp(end).tz_convert("UTC")
    rng = np.random.default_rng(seed)

    n = int(round(days * 24 * 60 / SAMPLE_MINUTES)) + 1
    minutes = np.arange(-(n - 1), 1) * SAMPLE_MINUTES  # minutes relative to end, last = 0
    jitter = rng.uniform(-0.05, 0.05, n)  # +-3 seconds
    jitter[-1] = 0.0
    minutes = minutes + jitter
    times = end_utc + pd.to_timedelta(minutes, unit="min")
    local = times.tz_convert(zone)
    local_minute = (local.hour * 60 + local.minute + local.second / 60).to_numpy(dtype=float)

    glucose = np.full(n, params.basal)
    glucose += params.dawn_amplitude * _circular_gauss(local_minute, 6.5 * 60, 90.0)
    glucose -= params.night_dip * _circular_gauss(local_minute, 3.0 * 60, 90.0)

    # Events are placed on local calendar days, then expressed in minutes relative to `end`.
    first_day = (times[0].tz_convert(zone) - timedelta(days=1)).date()
    last_day = local[-1].date()
    day_count = (last_day - first_day).days + 1
    end_py = end_utc.to_pydatetime()
    for offset in range(day_count):
        day = first_day + timedelta(days=offset)
        midnight = datetime(day.year, day.month, day.day, tzinfo=zone)
        weekend = day.weekday() >= 5

        def at(local_min: float) -> float:
            # Aware datetime + timedelta is wall-clock arithmetic: a 07:15 breakfast stays at
            # 07:15 on the day clocks change.
            return ((midnight + timedelta(minutes=local_min)) - end_py).total_seconds() / 60

        for name, mean_min, sd_min, weekend_shift in MEALS:
            if name == "breakfast" and rng.random() < params.skip_breakfast:
                continue
            when = mean_min + (weekend_shift if weekend else 0.0) + rng.normal(0.0, sd_min)
            amplitude = params.meal_amplitude * rng.lognormal(0.0, params.meal_amplitude_sigma)
            if name == "dinner":
                amplitude *= 1.1
            peak = params.meal_peak_minutes * rng.uniform(0.8, 1.3)
            _add_curve(glucose, minutes, at(when), amplitude, peak, params.meal_shape)
        for _ in range(rng.poisson(params.snacks_per_day)):
            when = rng.uniform(10 * 60, 22 * 60)
            amplitude = params.snack_amplitude * rng.lognormal(0.0, 0.3)
            _add_curve(glucose, minutes, at(when), amplitude, 40.0, 3.0)
        if rng.random() < params.exercise_probability:
            when = rng.uniform(8 * 60, 19 * 60)
            depth = params.exercise_depth * rng.uniform(0.6, 1.4)
            _add_curve(glucose, minutes, at(when), -depth, rng.uniform(40, 80), 2.5)
        for _ in range(rng.poisson(params.lows_per_day)):
            when = rng.uniform(0, 24 * 60)
            depth = params.low_depth * rng.uniform(0.5, 1.2)
            _add_curve(glucose, minutes, at(when), -depth, rng.uniform(60, 120), 3.0)

    glucose += ar1_noise(rng, n, params.drift_phi, params.drift_sd)
    glucose += ar1_noise(rng, n, params.noise_phi, params.noise_sd)
    if compression_lows:
        glucose = _add_compression_lows(rng, glucose, minutes, local_minute, days,
                                        params.compression_lows_per_night)

    glucose = np.round(np.clip(glucose, SENSOR_MIN_MG_DL, SENSOR_MAX_MG_DL))
    keep = _reporting_mask(rng, minutes, days)
    return pd.DataFrame({"time": times[keep], "glucose_mg_dl": glucose[keep]}).reset_index(drop=True)


def _circular_gauss(local_minute: np.ndarray, centre: float, width: float) -> np.ndarray:
    distance = np.abs(local_minute - centre)
    distance = np.minimum(distance, 1440.0 - distance)
    return np.exp(-0.5 * (distance / width) ** 2)


def _gamma_curve(since: np.ndarray, amplitude: float, peak_minutes: float, shape: float) -> np.ndarray:
    """Gamma-like absorption curve with its maximum `amplitude` at `peak_minutes`; zero before 0."""
    u = np.clip(since, 0.0, None) / peak_minutes
    return amplitude * u**shape * np.exp(shape * (1.0 - u))


def _add_curve(glucose, minutes, onset, amplitude, peak_minutes, shape) -> None:
    """Adds a gamma curve starting at `onset` in place, only where it is not negligible: after
    12 times the time to peak it is below 1e-8 of its maximum for every shape used here."""
    lo, hi = np.searchsorted(minutes, [onset, onset + 12 * peak_minutes])
    if hi > lo:
        glucose[lo:hi] += _gamma_curve(minutes[lo:hi] - onset, amplitude, peak_minutes, shape)


def ar1_noise(rng: np.random.Generator, n: int, phi: float, stationary_sd: float) -> np.ndarray:
    innovations = rng.normal(0.0, stationary_sd * np.sqrt(1.0 - phi**2), n)
    innovations[0] = rng.normal(0.0, stationary_sd)  # start in the stationary distribution
    return lfilter([1.0], [1.0, -phi], innovations)


def _add_compression_lows(rng, glucose, minutes, local_minute, days, per_night) -> np.ndarray:
    glucose = glucose.copy()
    night_starts = np.flatnonzero((local_minute < 5 * 60) & (minutes < -INTACT_TAIL_MINUTES - 60))
    count = rng.poisson(per_night * days)
    if count == 0 or night_starts.size == 0:
        return glucose
    for start in rng.choice(night_starts, size=min(count, night_starts.size), replace=False):
        # Drop over 10 min, stay 15-30 min, recover over 10-15 min: a trapezoid in time.
        floor = rng.uniform(48.0, 65.0)
        hold = rng.uniform(15.0, 30.0)
        since = minutes - minutes[start]
        weight = np.interp(since, [0.0, 10.0, 10.0 + hold, 22.0 + hold], [0.0, 1.0, 1.0, 0.0],
                           left=0.0, right=0.0)
        depth = max(glucose[start] - floor, 0.0)
        glucose -= weight * depth
    return glucose


def _reporting_mask(rng: np.random.Generator, minutes: np.ndarray, days: float) -> np.ndarray:
    n = minutes.size
    keep = np.ones(n, dtype=bool)
    step = SAMPLE_MINUTES

    def drop(start_minute: float, length_minutes: float) -> None:
        keep[(minutes >= start_minute) & (minutes < start_minute + length_minutes)] = False

    first = minutes[0]
    for _ in range(rng.poisson(3.0 * days)):  # short radio dropouts of 1-3 readings
        drop(rng.uniform(first, 0.0), step * rng.integers(1, 4) - step / 2)
    for _ in range(rng.poisson(0.25 * days)):  # longer gaps, receiver out of range
        drop(rng.uniform(first, 0.0), rng.uniform(30.0, 180.0))
    lifetime = SENSOR_LIFETIME_DAYS * 24 * 60
    change = -rng.uniform(0.0, lifetime)  # the sensor in use at `end` started this long ago
    while change > first:
        drop(change, rng.uniform(60.0, 120.0))  # warm-up after a sensor change
        change -= lifetime
    keep[minutes > -INTACT_TAIL_MINUTES] = True
    return keep
