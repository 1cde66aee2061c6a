"""International consensus CGM metrics (Battelino et al., Diabetes Care 2019) and the AGP profile.

Range boundaries, exactly (values are whole or fractional mg/dL):
    in range        70 <= g <= 180      (70 and 180 are IN range)
    below 70        g < 70              (includes below 54, as in the consensus report)
    below 54        g < 54              (54 itself is not below 54)
    above 180       g > 180             (includes above 250)
    above 250       g > 250             (250 itself is not above 250)
so in_range + below_70 + above_180 = 100 %. Percentages are shares of the readings in the period
(every reading counts the same; with regular 5-minute sampling this equals share of time).

The period is half-open: start <= time < end.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from .common import GLUCOSE, TIME, aware_utc, clean_readings, local_times, minute_of_day, zone

RANGE_LOW = 70.0
RANGE_HIGH = 180.0
VERY_LOW = 54.0
VERY_HIGH = 250.0
# Consensus data sufficiency: 14 days with at least 70 % of the expected readings.
SUFFICIENT_DAYS = 14.0
SUFFICIENT_ACTIVE_PERCENT = 70.0

METRIC_KEYS = (
    "n_readings", "time_in_range_percent", "time_below_70_percent", "time_below_54_percent",
    "time_above_180_percent", "time_above_250_percent", "mean_mg_dl", "sd_mg_dl", "cv_percent",
    "gmi_percent", "active_percent", "expected_readings", "days_in_period", "days_covered",
    "days_with_data", "sufficient_data", "n_left_out", "reason",
)


def gmi_percent(mean_mg_dl: float) -> float:
    """Glucose management indicator (Bergenstal 2018): GMI (%) = 3.31 + 0.02392 x mean mg/dL."""
    return 3.31 + 0.02392 * mean_mg_dl


def consensus_metrics(
    readings: pd.DataFrame,
    start: datetime,
    end: datetime,
    *,
    interval_min: float = 5,
    tz: str = "UTC",
) -> dict:
    """Consensus metrics of the readings with start <= time < end.

    Keys (METRIC_KEYS): percentages are not rounded here (the page rounds for display);
    `sd_mg_dl` is the sample SD (ddof=1, like iglu and R's sd), `cv_percent` = 100 x SD / mean;
    `active_percent` = min(readings, expected) / expected x 100 with expected = period / interval
    (consensus "% time CGM is active"); `days_in_period` = (end - start) in days;
    `days_covered` = first to last reading in days; `days_with_data` = distinct local dates (in
    `tz`) with a reading; `sufficient_data` = days_in_period >= 14 and active_percent >= 70;
    `n_left_out` = rows without a finite glucose value or with a duplicate time.
    With no readings every value is None and `reason` says why ('no_readings'); with a single
    reading SD and CV are None (`reason` 'single_reading'). A bad period raises ValueError.
    """
    start_utc, end_utc = aware_utc(start, "start"), aware_utc(end, "end")
    if end_utc <= start_utc:
        raise ValueError("end must be after start")
    if not interval_min > 0:
        raise ValueError("interval_min must be positive")
    zone(tz)
    clean, left_out = clean_readings(readings)
    inside = clean[(clean[TIME] >= start_utc) & (clean[TIME] < end_utc)]
    days_in_period = (end_utc - start_utc).total_seconds() / 86400.0
    expected = int(np.floor((end_utc - start_utc).total_seconds() / 60.0 / interval_min))
    result = dict.fromkeys(METRIC_KEYS)
    result.update(n_readings=len(inside), expected_readings=expected, days_in_period=days_in_period,
                  n_left_out=left_out, sufficient_data=False)
    if inside.empty:
        result.update(reason="no_readings", active_percent=0.0, days_with_data=0)
        return result

    g = inside[GLUCOSE].to_numpy(dtype=float)
    n = g.size
    mean = float(g.mean())
    sd = float(g.std(ddof=1)) if n > 1 else None
    active = 100.0 * min(n, expected) / expected if expected else 100.0
    result.update(
        time_in_range_percent=_percent((g >= RANGE_LOW) & (g <= RANGE_HIGH)),
        time_below_70_percent=_percent(g < RANGE_LOW),
        time_below_54_percent=_percent(g < VERY_LOW),
        time_above_180_percent=_percent(g > RANGE_HIGH),
        time_above_250_percent=_percent(g > VERY_HIGH),
        mean_mg_dl=mean,
        sd_mg_dl=sd,
        cv_percent=100.0 * sd / mean if sd is not None else None,
        gmi_percent=gmi_percent(mean),
        active_percent=active,
        days_covered=(inside[TIME].iloc[-1] - inside[TIME].iloc[0]).total_seconds() / 86400.0,
        days_with_data=int(local_times(inside[TIME], tz).dt.date.nunique()),
        sufficient_data=bool(days_in_period >= SUFFICIENT_DAYS and active >= SUFFICIENT_ACTIVE_PERCENT),
        reason=None if n > 1 else "single_reading",
    )
    return result


def _percent(mask: np.ndarray) -> float:
    return 100.0 * int(np.count_nonzero(mask)) / mask.size


AGP_PERCENTILES = (5, 25, 50, 75, 95)


def agp_profile(readings: pd.DataFrame, tz: str, *, bin_minutes: int = 15, smooth: bool = False) -> pd.DataFrame:
    """Ambulatory glucose profile: glucose percentiles by local time of day.

    One row per bin of the day (1440 / bin_minutes rows, bins start at local midnight):
    `bin_start_minute`, `time_of_day` ('HH:MM'), `n` (readings in the bin, all days pooled) and
    `p5`, `p25`, `p50`, `p75`, `p95`. Percentiles are numpy's default 'linear' method
    (Hyndman & Fan type 7, like R's quantile and Nightscout's AGP): for sorted values
    x_0..x_{n-1} the q-th percentile is at position (n - 1) q / 100, interpolated linearly
    between neighbours. Empty bins have n = 0 and NaN percentiles.
    Local time comes from converting each reading's UTC time to `tz`, so across a DST change
    readings keep the clock time the person saw (the missing spring hour has no readings that
    day; the repeated autumn hour has two hours of readings).
    smooth=True replaces each percentile by the circular weighted mean (1, 2, 1) / 4 of the bin
    and its neighbours (midnight wraps around), skipping empty neighbours - a light smoothing
    for display; the values are then no longer exact percentiles.
    """
    if bin_minutes <= 0 or 1440 % bin_minutes:
        raise ValueError("bin_minutes must be a positive divisor of 1440")
    clean, _ = clean_readings(readings)
    bins = 1440 // bin_minutes
    rows = pd.DataFrame({"bin_start_minute": np.arange(bins) * bin_minutes})
    rows["time_of_day"] = [f"{m // 60:02d}:{m % 60:02d}" for m in rows["bin_start_minute"]]
    table = np.full((bins, len(AGP_PERCENTILES)), np.nan)
    counts = np.zeros(bins, dtype=int)
    if not clean.empty:
        which = (minute_of_day(local_times(clean[TIME], tz)) // bin_minutes).astype(int)
        values = clean[GLUCOSE].to_numpy(dtype=float)
        order = np.argsort(which, kind="stable")
        which, values = which[order], values[order]
        edges = np.searchsorted(which, np.arange(bins + 1))
        for b in range(bins):
            chunk = values[edges[b]:edges[b + 1]]
            counts[b] = chunk.size
            if chunk.size:
                table[b] = np.percentile(chunk, AGP_PERCENTILES)
    else:
        zone(tz)
    if smooth:
        table = _circular_smooth(table)
    rows["n"] = counts
    for column, name in enumerate(f"p{p}" for p in AGP_PERCENTILES):
        rows[name] = table[:, column]
    return rows


def _circular_smooth(table: np.ndarray) -> np.ndarray:
    present = np.isfinite(table)
    filled = np.where(present, table, 0.0)
    weight = present.astype(float)
    total = 2 * filled + np.roll(filled, 1, axis=0) + np.roll(filled, -1, axis=0)
    weights = 2 * weight + np.roll(weight, 1, axis=0) + np.roll(weight, -1, axis=0)
    smoothed = total / np.where(weights > 0, weights, 1.0)
    return np.where(present, smoothed, np.nan)
