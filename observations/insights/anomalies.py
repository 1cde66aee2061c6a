"""Anomaly flags: stretches of readings worth a second look. No medical interpretation - a flag
says the data look unusual (for this person, or for a sensor), not what it means for health.

Each flag: {"kind", "code" (= kind), "start", "end" (tz-aware UTC Timestamps), "template",
"params", "text", "values"}; translate with `gettext(template) % params`. Kinds and thresholds:

* unusual_day - a local calendar day (with >= 50 % of its expected readings at the sensor's usual
  interval) whose mean or SD is far from
  the person's own typical days: robust z = 0.6745 (x - median) / MAD >= 3.5 (Iglewicz & Hoaglin's
  cut-off for outliers), needing >= 5 such days. The MAD is floored (5 mg/dL for means, 3 for
  SDs) so very regular people are not flagged for ordinary differences of a few mg/dL.
* implausible_jump - consecutive readings at most 15 minutes apart changing faster than
  10 mg/dL per minute. Physiological change rarely exceeds 3-4 mg/dL/min (receivers draw
  their steepest arrow at 3); 10 is clearly beyond it (two occurrences in ~14,000 steps of the
  Broll 2021 data), so a flag is almost surely a sensor or data artifact.
* compression_low - between 00:00 and 06:00 local, a reading below 70 mg/dL that is the lowest
  within +-60 min, at least 40 mg/dL under the level 20-50 min before it (median of at least two
  readings), and followed
  within 45 min by a return to within 20 mg/dL of that level: the fast drop and quick recovery
  of a sensor pressed while its wearer lies on it.
* long_gap - more than 2 hours between consecutive readings.
* sensor_limit - readings at or beyond the sensor's reporting limits (<= 40 or >= 400 mg/dL):
  the true value may lie further out. Consecutive ones (<= 15 min apart) form one flag.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from observations.units import MG_DL

from .common import (GLUCOSE, SENSOR_MAX_MG_DL, SENSOR_MIN_MG_DL, TIME, check_unit, clean_readings,
                      format_glucose, gettext_noop, local_times, message, minute_of_day,
                      sampling_minutes)

ROBUST_Z = 3.5
MIN_TYPICAL_DAYS = 5
DAY_MIN_SHARE = 0.5
MAD_FLOOR_MEAN_MG_DL = 5.0
MAD_FLOOR_SD_MG_DL = 3.0
JUMP_MG_DL_PER_MIN = 10.0
CONSECUTIVE_MAX_MINUTES = 15.0
LONG_GAP_MINUTES = 120.0
NIGHT = (0, 6 * 60)
COMPRESSION_LOW_MG_DL = 70.0
COMPRESSION_DROP_MG_DL = 40.0
COMPRESSION_BEFORE = (50.0, 20.0)  # minutes before the low, the level it dropped from
COMPRESSION_RECOVERY_MINUTES = 45.0
COMPRESSION_RECOVERY_MG_DL = 20.0
COMPRESSION_ISOLATION_MINUTES = 60.0

TEMPLATES = {
    "unusual_day_mean": gettext_noop(
        "On %(date)s the average glucose was %(value)s, far from your typical days "
        "(median %(typical)s)."),
    "unusual_day_sd": gettext_noop(
        "On %(date)s glucose varied with an SD of %(value)s, far from your typical days "
        "(median %(typical)s)."),
    "implausible_jump": gettext_noop(
        "Glucose changed from %(before)s to %(after)s in %(minutes)s minutes at %(time)s, "
        "faster than %(limit)s per minute; possibly a sensor or data artifact."),
    "compression_low": gettext_noop(
        "At %(time)s glucose dropped sharply from %(before)s to %(low)s and came back to %(after)s "
        "within %(minutes)s minutes, at night; this shape is typical of pressure on the sensor."),
    "long_gap": gettext_noop(
        "No readings for %(hours)s h %(minutes)s min, from %(start)s to %(end)s."),
    # No counted nouns in the texts ("1 readings"): plural rules differ between languages.
    "sensor_limit_low_one": gettext_noop(
        "A reading at the sensor's lower limit (%(limit)s) at %(start)s; the actual value may "
        "have been lower."),
    "sensor_limit_low_run": gettext_noop(
        "Readings at the sensor's lower limit (%(limit)s) from %(start)s to %(end)s; the actual "
        "values may have been lower."),
    "sensor_limit_high_one": gettext_noop(
        "A reading at the sensor's upper limit (%(limit)s) at %(start)s; the actual value may "
        "have been higher."),
    "sensor_limit_high_run": gettext_noop(
        "Readings at the sensor's upper limit (%(limit)s) from %(start)s to %(end)s; the actual "
        "values may have been higher."),
}


def anomaly_flags(readings: pd.DataFrame, tz: str, *, unit: str = MG_DL) -> list[dict]:
    """All flags, ordered by start time (see the module docstring for kinds and thresholds)."""
    check_unit(unit)
    clean, _ = clean_readings(readings)
    local = local_times(clean[TIME], tz)
    if clean.empty:
        return []
    frame = pd.DataFrame({"time": clean[TIME], "local": local, "date": local.dt.date,
                          "minute": minute_of_day(local), "g": clean[GLUCOSE].to_numpy(dtype=float)})
    per_day = 24 * 60 / sampling_minutes(clean)
    flags = (_unusual_days(frame, tz, unit, per_day) + _implausible_jumps(frame, unit)
             + _compression_lows(frame, unit) + _long_gaps(frame, unit) + _sensor_limits(frame, unit))
    return sorted(flags, key=lambda flag: flag["start"])


def _stamp(local: pd.Timestamp) -> str:
    return local.strftime("%Y-%m-%d %H:%M")


def _flag(kind: str, template_key: str, start, end, params: dict, values: dict) -> dict:
    return message(kind, TEMPLATES[template_key], params, values, kind=kind,
                   start=pd.Timestamp(start).tz_convert("UTC"), end=pd.Timestamp(end).tz_convert("UTC"))


def robust_z(values: np.ndarray, mad_floor: float) -> tuple[np.ndarray, float]:
    """0.6745 (x - median) / max(MAD, floor), and the median."""
    median = float(np.median(values))
    mad = max(float(np.median(np.abs(values - median))), mad_floor)
    return 0.6745 * (values - median) / mad, median


def _unusual_days(frame: pd.DataFrame, tz: str, unit: str, per_day: float) -> list[dict]:
    grouped = frame.groupby("date")["g"]
    counts = grouped.size()
    eligible = counts[counts >= DAY_MIN_SHARE * per_day].index
    if len(eligible) < MIN_TYPICAL_DAYS:
        return []
    flags = []
    for statistic, series, floor in (("mean", grouped.mean()[eligible], MAD_FLOOR_MEAN_MG_DL),
                                     ("sd", grouped.std(ddof=1)[eligible], MAD_FLOOR_SD_MG_DL)):
        z, typical = robust_z(series.to_numpy(), floor)
        for day, value, score in zip(series.index, series.to_numpy(), z):
            if abs(score) < ROBUST_Z:
                continue
            start = _local_midnight(day, tz)
            end = _local_midnight(day + pd.Timedelta(days=1), tz)
            params = {"date": day.isoformat(), "value": format_glucose(value, unit),
                      "typical": format_glucose(typical, unit)}
            flags.append(_flag("unusual_day", f"unusual_day_{statistic}", start, end, params,
                               {"statistic": statistic, "value_mg_dl": float(value),
                                "typical_mg_dl": typical, "robust_z": float(score)}))
    return flags


def _local_midnight(day, tz: str) -> pd.Timestamp:
    # Some zones change clocks at midnight: take the first valid instant of the day.
    return pd.Timestamp(day).tz_localize(tz, ambiguous=True, nonexistent="shift_forward")


def _steps(frame: pd.DataFrame):
    minutes = frame["time"].diff().dt.total_seconds().to_numpy() / 60.0
    change = np.diff(frame["g"].to_numpy(), prepend=np.nan)
    return minutes, change


def _implausible_jumps(frame: pd.DataFrame, unit: str) -> list[dict]:
    minutes, change = _steps(frame)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.abs(change) / minutes
    hits = np.flatnonzero((minutes > 0) & (minutes <= CONSECUTIVE_MAX_MINUTES) & (rate > JUMP_MG_DL_PER_MIN))
    flags = []
    for i in hits:
        params = {"before": format_glucose(frame["g"].iat[i - 1], unit),
                  "after": format_glucose(frame["g"].iat[i], unit),
                  "minutes": int(round(minutes[i])), "time": _stamp(frame["local"].iat[i]),
                  "limit": format_glucose(JUMP_MG_DL_PER_MIN, unit)}
        flags.append(_flag("implausible_jump", "implausible_jump", frame["time"].iat[i - 1],
                           frame["time"].iat[i], params,
                           {"rate_mg_dl_per_min": float(change[i] / minutes[i])}))
    return flags


def _compression_lows(frame: pd.DataFrame, unit: str) -> list[dict]:
    g = frame["g"].to_numpy()
    t = (frame["time"] - frame["time"].iat[0]).dt.total_seconds().to_numpy() / 60.0
    night = (frame["minute"].to_numpy() >= NIGHT[0]) & (frame["minute"].to_numpy() < NIGHT[1])

    def index_range(lo_minutes: float, hi_minutes: float) -> slice:  # readings with lo <= t <= hi
        return slice(np.searchsorted(t, lo_minutes, "left"), np.searchsorted(t, hi_minutes, "right"))

    flags = []
    last_end = -np.inf
    for i in np.flatnonzero(night & (g < COMPRESSION_LOW_MG_DL)):
        if t[i] <= last_end:
            continue
        around = index_range(t[i] - COMPRESSION_ISOLATION_MINUTES, t[i] + COMPRESSION_ISOLATION_MINUTES)
        if np.argmin(g[around]) + around.start != i:
            continue  # not the (first) lowest reading of its neighbourhood
        before_range = index_range(t[i] - COMPRESSION_BEFORE[0], t[i] - COMPRESSION_BEFORE[1])
        if before_range.stop - before_range.start < 2:
            continue
        before = float(np.median(g[before_range]))
        if before - g[i] < COMPRESSION_DROP_MG_DL:
            continue
        after_range = index_range(t[i] + 1e-9, t[i] + COMPRESSION_RECOVERY_MINUTES)
        recovered = np.flatnonzero(g[after_range] >= before - COMPRESSION_RECOVERY_MG_DL)
        if recovered.size == 0:
            continue
        back = after_range.start + recovered[0]
        start_idx = before_range.stop - 1
        params = {"time": _stamp(frame["local"].iat[i]), "before": format_glucose(before, unit),
                  "low": format_glucose(g[i], unit), "after": format_glucose(g[back], unit),
                  "minutes": int(round(t[back] - t[i]))}
        flags.append(_flag("compression_low", "compression_low", frame["time"].iat[start_idx],
                           frame["time"].iat[back], params,
                           {"before_mg_dl": before, "low_mg_dl": float(g[i]),
                            "recovered_mg_dl": float(g[back])}))
        last_end = t[back]
    return flags


def _long_gaps(frame: pd.DataFrame, unit: str) -> list[dict]:
    minutes, _ = _steps(frame)
    flags = []
    for i in np.flatnonzero(minutes > LONG_GAP_MINUTES):
        total = int(round(minutes[i]))
        params = {"hours": total // 60, "minutes": total % 60,
                  "start": _stamp(frame["local"].iat[i - 1]), "end": _stamp(frame["local"].iat[i])}
        flags.append(_flag("long_gap", "long_gap", frame["time"].iat[i - 1], frame["time"].iat[i],
                           params, {"gap_minutes": float(minutes[i])}))
    return flags


def _sensor_limits(frame: pd.DataFrame, unit: str) -> list[dict]:
    g = frame["g"].to_numpy()
    minutes, _ = _steps(frame)
    flags = []
    for side, at_limit, limit in (("low", g <= SENSOR_MIN_MG_DL, SENSOR_MIN_MG_DL),
                                  ("high", g >= SENSOR_MAX_MG_DL, SENSOR_MAX_MG_DL)):
        # A run continues while limit readings follow each other within 15 minutes.
        starts_run = at_limit & ~(np.roll(at_limit, 1) & (minutes <= CONSECUTIVE_MAX_MINUTES))
        starts_run[0] = at_limit[0]
        run_id = np.cumsum(starts_run)
        for run in np.unique(run_id[at_limit]):
            members = np.flatnonzero(at_limit & (run_id == run))
            first, last = members[0], members[-1]
            params = {"count": int(members.size), "limit": format_glucose(limit, unit),
                      "start": _stamp(frame["local"].iat[first]), "end": _stamp(frame["local"].iat[last])}
            shape = "one" if members.size == 1 else "run"
            flags.append(_flag("sensor_limit", f"sensor_limit_{side}_{shape}", frame["time"].iat[first],
                               frame["time"].iat[last], params,
                               {"side": side, "count": int(members.size)}))
    return flags
