"""Pattern statements: observations drawn from the person's own readings.

Worded as observations only: what the readings typically look like at some time of day or week.
Never advice, diagnosis, dosing or triage. Each statement is a dict
    {"code", "template", "params", "text", "values"}
where `template` % `params` gives `text` (English); the page translates with
`gettext(template) % params`. Glucose params are pre-formatted in the requested unit; `values`
holds the raw numbers in mg/dL.

A pattern is stated only when the evidence is enough. Thresholds (constants below) and why:

* Days: every comparison is paired within a local calendar day, and a day counts only when
  both windows hold at least half their expected readings (at 5-minute sampling, 2-hour window:
  12, 1-hour: 6; the expected count follows the sensor's own interval, see sampling_minutes).
  At least MIN_DAYS = 5 such days - fewer than five days cannot separate a habit from chance.
* Consistency: the effect must point the same way on at least 75 % of those days (a typical
  pattern, not one or two extreme days pulling a median).
* Size: meal-time rises >= 30 mg/dL (median of the daily differences): below that a rise is
  within the normal post-meal excursion of people without diabetes and within sensor error
  spread over two windows. Dawn rise >= 20 mg/dL (the size used in dawn-phenomenon studies,
  ~20 mg/dL between nocturnal nadir and pre-breakfast). Weekend vs weekday >= 15 mg/dL in daily
  average AND at least one SD of the weekday daily averages AND a two-sided Mann-Whitney test
  of weekend vs weekday daily averages with p <= 0.05 (day-to-day drift alone made the first two
  conditions fire in 20 % of synthetic fortnights without any weekend effect; with the test, 5 %);
  at least 3 weekend days and 5 weekdays (fewer can never reach p <= 0.05), each with >= 70 %
  of its readings.
  Overnight stable: median SD between 00:00 and 05:00 <= 12 mg/dL over >= 5 nights with >= 70 %
  of readings (about the spread of sensor noise plus slow drift). The window stops where the
  early-morning window starts, so "steady overnight" and "rises in the early morning" can both
  hold.
  Lows concentrated: one hour of readings below 70 mg/dL (12 at 5-minute sampling) on >= 2 days,
  of which >= 60 % fall in one quarter of the day, and that quarter holds at least twice the
  share of lows that its share of all readings would give.

Meal-time windows are drawn from the person's own profile: within each meal slot the 2-hour
window (15-minute steps) with the highest median glucose is the "after" window, and the
lowest 1-hour window in the 2.5 hours before it is the "before" window. Slots (start of the
"after" window, local time): breakfast 06:30-10:00, lunch 11:30-14:30, dinner 17:30-21:00.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu

from observations.units import MG_DL

from .common import (GLUCOSE, TIME, check_unit, clean_readings, format_clock, format_glucose,
                      gettext_noop, local_times, message, minute_of_day, sampling_minutes)

MIN_DAYS = 5
MIN_CONSISTENCY = 0.75
MEAL_RISE_MG_DL = 30.0
DAWN_RISE_MG_DL = 20.0
WEEKEND_DIFFERENCE_MG_DL = 15.0
WEEKEND_DIFFERENCE_IN_SDS = 1.0
WEEKEND_P_VALUE = 0.05
MIN_WEEKEND_DAYS = 3
MIN_WEEKDAYS = 5
FULL_DAY_SHARE = 0.7
OVERNIGHT_STABLE_SD_MG_DL = 12.0
MIN_LOW_HOURS = 1.0
MIN_LOW_DAYS = 2
LOW_CONCENTRATION_SHARE = 0.6
LOW_CONCENTRATION_RATIO = 2.0
LOW_MG_DL = 70.0

STEP = 15  # minutes, the search grid of meal windows
AFTER_WINDOW = 120
BEFORE_WINDOW = 60
BEFORE_SEARCH = 150

MEAL_SLOTS = {
    "breakfast": (6 * 60 + 30, 10 * 60),
    "lunch": (11 * 60 + 30, 14 * 60 + 30),
    "dinner": (17 * 60 + 30, 21 * 60),
}
MEAL_TEMPLATES = {
    "breakfast": gettext_noop(
        "Your glucose is typically higher after breakfast time: median %(after)s between "
        "%(after_start)s and %(after_end)s vs %(before)s between %(before_start)s and "
        "%(before_end)s, on %(days_higher)s of %(days)s days."),
    "lunch": gettext_noop(
        "Your glucose is typically higher after lunch time: median %(after)s between "
        "%(after_start)s and %(after_end)s vs %(before)s between %(before_start)s and "
        "%(before_end)s, on %(days_higher)s of %(days)s days."),
    "dinner": gettext_noop(
        "Your glucose is typically higher after dinner time: median %(after)s between "
        "%(after_start)s and %(after_end)s vs %(before)s between %(before_start)s and "
        "%(before_end)s, on %(days_higher)s of %(days)s days."),
}
DAWN_NIGHT = (2 * 60, 4 * 60)
DAWN_MORNING = (5 * 60, 7 * 60)
DAWN_TEMPLATE = gettext_noop(
    "Your glucose typically rises in the early morning: median %(morning)s between "
    "%(morning_start)s and %(morning_end)s vs %(night)s between %(night_start)s and "
    "%(night_end)s, on %(days_higher)s of %(days)s days.")
OVERNIGHT = (0, 5 * 60)
OVERNIGHT_STABLE_TEMPLATE = gettext_noop(
    "Your glucose is typically steady overnight: between %(start)s and %(end)s it varies by a "
    "median SD of %(sd)s, over %(days)s nights.")
WEEKEND_TEMPLATES = {
    "higher_on_weekends": gettext_noop(
        "Your glucose is typically higher on weekends: median daily average %(weekend)s on "
        "Saturdays and Sundays vs %(weekday)s on weekdays (%(weekend_days)s weekend days, "
        "%(weekdays)s weekdays)."),
    "lower_on_weekends": gettext_noop(
        "Your glucose is typically lower on weekends: median daily average %(weekend)s on "
        "Saturdays and Sundays vs %(weekday)s on weekdays (%(weekend_days)s weekend days, "
        "%(weekdays)s weekdays)."),
}
DAY_QUARTERS = {"night": (0, 6 * 60), "morning": (6 * 60, 12 * 60),
                "afternoon": (12 * 60, 18 * 60), "evening": (18 * 60, 24 * 60)}
LOW_TEMPLATES = {
    "night": gettext_noop(
        "Most of your readings below %(low)s are at night, between %(start)s and %(end)s "
        "(%(share)s%% of %(count)s readings below %(low)s)."),
    "morning": gettext_noop(
        "Most of your readings below %(low)s are in the morning, between %(start)s and %(end)s "
        "(%(share)s%% of %(count)s readings below %(low)s)."),
    "afternoon": gettext_noop(
        "Most of your readings below %(low)s are in the afternoon, between %(start)s and %(end)s "
        "(%(share)s%% of %(count)s readings below %(low)s)."),
    "evening": gettext_noop(
        "Most of your readings below %(low)s are in the evening, between %(start)s and %(end)s "
        "(%(share)s%% of %(count)s readings below %(low)s)."),
}


def pattern_statements(readings: pd.DataFrame, tz: str, *, unit: str = MG_DL) -> list[dict]:
    """Observations about the person's typical day, each only when the evidence is enough
    (see the module docstring for the thresholds). Empty list when nothing qualifies."""
    check_unit(unit)
    clean, _ = clean_readings(readings)
    if clean.empty:
        local_times(clean[TIME], tz)  # still reject an unknown time zone
        return []
    frame = _local_frame(clean, tz)
    per_hour = 60.0 / sampling_minutes(clean)
    median_by_bin = (frame.groupby((frame["minute"] // STEP).astype(int))["g"].median()
                     .reindex(range(1440 // STEP)).to_numpy())
    statements = []
    for slot in MEAL_SLOTS:
        statement = _meal_rise(frame, median_by_bin, slot, unit, per_hour)
        if statement:
            statements.append(statement)
    for finder in (_dawn_rise, _overnight_stable, _weekend_difference, _lows_concentrated):
        statement = finder(frame, unit, per_hour)
        if statement:
            statements.append(statement)
    return statements


def _local_frame(clean: pd.DataFrame, tz: str) -> pd.DataFrame:
    local = local_times(clean[TIME], tz)
    # The local calendar day as a datetime64 key: grouping on it is much faster than on date objects.
    return pd.DataFrame({"date": local.dt.tz_localize(None).dt.normalize(), "weekday": local.dt.day_of_week,
                         "minute": minute_of_day(local), "g": clean[GLUCOSE].to_numpy(dtype=float)})


def _paired_daily(frame: pd.DataFrame, first: tuple[float, float], second: tuple[float, float],
                  per_hour: float):
    """Per local date: median of window `second` minus median of window `first`, for days with
    at least half the expected readings in both windows; plus the pooled values of those days."""
    def window(bounds):
        lo, hi = bounds
        part = frame[(frame["minute"] >= lo) & (frame["minute"] < hi)]
        needed = (hi - lo) / 60 * per_hour / 2
        grouped = part.groupby("date")["g"]
        counts = grouped.size()
        return part, grouped.median()[counts >= needed]

    first_part, first_medians = window(first)
    second_part, second_medians = window(second)
    days = first_medians.index.intersection(second_medians.index)
    differences = (second_medians[days] - first_medians[days]).to_numpy()
    pooled_first = first_part.loc[first_part["date"].isin(days), "g"].to_numpy()
    pooled_second = second_part.loc[second_part["date"].isin(days), "g"].to_numpy()
    return differences, pooled_first, pooled_second


def _consistent_rise(differences: np.ndarray, threshold: float) -> bool:
    return (differences.size >= MIN_DAYS and float(np.median(differences)) >= threshold
            and np.mean(differences > 0) >= MIN_CONSISTENCY)


def _meal_rise(frame: pd.DataFrame, median_by_bin: np.ndarray, slot: str, unit: str, per_hour: float) -> dict | None:
    """`median_by_bin`: median glucose per 15-minute bin of the local day (the profile)."""
    first_start, last_start = MEAL_SLOTS[slot]
    after_bins, before_bins = AFTER_WINDOW // STEP, BEFORE_WINDOW // STEP

    def window_level(start_minute: int, length_bins: int) -> float:
        values = median_by_bin[start_minute // STEP:start_minute // STEP + length_bins]
        present = values[np.isfinite(values)]
        return float(present.mean()) if present.size >= length_bins / 2 else np.nan

    after_levels = {s: window_level(s, after_bins) for s in range(first_start, last_start + 1, STEP)}
    after_levels = {s: v for s, v in after_levels.items() if np.isfinite(v)}
    if not after_levels:
        return None
    after_start = max(after_levels, key=after_levels.get)
    before_levels = {s: window_level(s, before_bins)
                     for s in range(after_start - BEFORE_SEARCH, after_start - BEFORE_WINDOW + 1, STEP)
                     if s >= 0}
    before_levels = {s: v for s, v in before_levels.items() if np.isfinite(v)}
    if not before_levels:
        return None
    before_start = min(before_levels, key=before_levels.get)
    before = (before_start, before_start + BEFORE_WINDOW)
    after = (after_start, after_start + AFTER_WINDOW)
    differences, before_values, after_values = _paired_daily(frame, before, after, per_hour)
    if not _consistent_rise(differences, MEAL_RISE_MG_DL):
        return None
    after_median, before_median = float(np.median(after_values)), float(np.median(before_values))
    params = {"after": format_glucose(after_median, unit), "before": format_glucose(before_median, unit),
              "after_start": format_clock(after[0]), "after_end": format_clock(after[1]),
              "before_start": format_clock(before[0]), "before_end": format_clock(before[1]),
              "days_higher": int(np.sum(differences > 0)), "days": int(differences.size)}
    values = {"after_median_mg_dl": after_median, "before_median_mg_dl": before_median,
              "median_daily_rise_mg_dl": float(np.median(differences)),
              "after_window_minutes": list(after), "before_window_minutes": list(before)}
    return message(f"higher_after_{slot}", MEAL_TEMPLATES[slot], params, values)


def _dawn_rise(frame: pd.DataFrame, unit: str, per_hour: float) -> dict | None:
    differences, night_values, morning_values = _paired_daily(frame, DAWN_NIGHT, DAWN_MORNING, per_hour)
    if not _consistent_rise(differences, DAWN_RISE_MG_DL):
        return None
    morning, night = float(np.median(morning_values)), float(np.median(night_values))
    params = {"morning": format_glucose(morning, unit), "night": format_glucose(night, unit),
              "morning_start": format_clock(DAWN_MORNING[0]), "morning_end": format_clock(DAWN_MORNING[1]),
              "night_start": format_clock(DAWN_NIGHT[0]), "night_end": format_clock(DAWN_NIGHT[1]),
              "days_higher": int(np.sum(differences > 0)), "days": int(differences.size)}
    values = {"morning_median_mg_dl": morning, "night_median_mg_dl": night,
              "median_daily_rise_mg_dl": float(np.median(differences))}
    return message("early_morning_rise", DAWN_TEMPLATE, params, values)


def _overnight_stable(frame: pd.DataFrame, unit: str, per_hour: float) -> dict | None:
    lo, hi = OVERNIGHT
    night = frame[(frame["minute"] >= lo) & (frame["minute"] < hi)]
    grouped = night.groupby("date")["g"]
    full = grouped.size() >= FULL_DAY_SHARE * (hi - lo) / 60 * per_hour
    sds = grouped.std(ddof=1)[full]
    if sds.size < MIN_DAYS or float(sds.median()) > OVERNIGHT_STABLE_SD_MG_DL:
        return None
    median_sd = float(sds.median())
    params = {"start": format_clock(lo), "end": format_clock(hi),
              "sd": format_glucose(median_sd, unit), "days": int(sds.size)}
    return message("overnight_stable", OVERNIGHT_STABLE_TEMPLATE, params,
                   {"median_overnight_sd_mg_dl": median_sd})


def _weekend_difference(frame: pd.DataFrame, unit: str, per_hour: float) -> dict | None:
    grouped = frame.groupby("date")
    counts = grouped.size()
    means = grouped["g"].mean()[counts >= FULL_DAY_SHARE * 24 * per_hour]
    weekday_of = grouped["weekday"].first()[means.index]
    weekend_means, weekday_means = means[weekday_of >= 5], means[weekday_of < 5]
    if weekend_means.size < MIN_WEEKEND_DAYS or weekday_means.size < MIN_WEEKDAYS:
        return None
    weekend, weekday = float(weekend_means.median()), float(weekday_means.median())
    difference = weekend - weekday
    spread = float(weekday_means.std(ddof=1))
    if abs(difference) < WEEKEND_DIFFERENCE_MG_DL or abs(difference) < WEEKEND_DIFFERENCE_IN_SDS * spread:
        return None
    p_value = float(mannwhitneyu(weekend_means, weekday_means, alternative="two-sided").pvalue)
    if p_value > WEEKEND_P_VALUE:
        return None
    code = "higher_on_weekends" if difference > 0 else "lower_on_weekends"
    params = {"weekend": format_glucose(weekend, unit), "weekday": format_glucose(weekday, unit),
              "weekend_days": int(weekend_means.size), "weekdays": int(weekday_means.size)}
    values = {"weekend_median_mg_dl": weekend, "weekday_median_mg_dl": weekday,
              "weekday_sd_of_daily_means_mg_dl": spread, "p_value": p_value}
    return message(code, WEEKEND_TEMPLATES[code], params, values)


def _lows_concentrated(frame: pd.DataFrame, unit: str, per_hour: float) -> dict | None:
    low = frame[frame["g"] < LOW_MG_DL]
    if len(low) < MIN_LOW_HOURS * per_hour or low["date"].nunique() < MIN_LOW_DAYS:
        return None
    for quarter, (lo, hi) in DAY_QUARTERS.items():
        in_low = ((low["minute"] >= lo) & (low["minute"] < hi)).mean()
        in_all = ((frame["minute"] >= lo) & (frame["minute"] < hi)).mean()
        if in_low >= LOW_CONCENTRATION_SHARE and in_low >= LOW_CONCENTRATION_RATIO * in_all:
            share = round(100 * float(in_low))
            params = {"low": format_glucose(LOW_MG_DL, unit), "start": format_clock(lo),
                      "end": format_clock(hi), "share": share, "count": int(len(low))}
            values = {"share_of_lows": float(in_low), "share_of_readings": float(in_all),
                      "low_readings": int(len(low))}
            return message(f"lows_concentrated_{quarter}", LOW_TEMPLATES[quarter], params, values)
    return None
