"""Shared plumbing for the insights modules: input checks, local clock time, message rendering."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from observations.units import MG_DL, MMOL_L, from_mgdl

TIME = "time"
GLUCOSE = "glucose_mg_dl"

# CGM sensors report only within these limits (receivers show LO / HI outside them).
SENSOR_MIN_MG_DL = 40.0
SENSOR_MAX_MG_DL = 400.0


def gettext_noop(message: str) -> str:
    """Marks a message template for translation without translating it here.

    Named like Django's marker on purpose: `makemessages` (xgettext) finds the templates by this
    name, while this module stays free of Django. The page translates with
    `gettext(item["template"]) % item["params"]`.
    """
    return message


def render(template: str, params: dict) -> str:
    return template % params


def format_glucose(value_mg_dl: float, unit: str = MG_DL) -> str:
    """A glucose value as people read it: '185 mg/dL' or '10.3 mmol/L'."""
    value = from_mgdl(value_mg_dl, unit)
    return f"{value:.1f} {MMOL_L}" if unit == MMOL_L else f"{value:.0f} {MG_DL}"


def format_clock(minute_of_day: float) -> str:
    minute = int(round(minute_of_day)) % 1440
    return f"{minute // 60:02d}:{minute % 60:02d}"


def message(code: str, template: str, params: dict, values: dict | None = None, **extra) -> dict:
    """One observation/flag: `template` + `params` for i18n, `text` its English rendering,
    `values` the raw numbers (mg/dL, minutes) for charts and tests."""
    return {"code": code, "template": template, "params": params, "text": render(template, params),
            "values": values or {}, **extra}


def check_unit(unit: str) -> None:
    if unit not in (MG_DL, MMOL_L):
        raise ValueError(f"unknown glucose unit {unit!r}; use {MG_DL!r} or {MMOL_L!r}")


def zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as error:
        raise ValueError(f"unknown time zone {tz!r}; use an IANA name such as 'Europe/Berlin'") from error


def aware_utc(moment: datetime | pd.Timestamp, name: str) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    if stamp.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware")
    return stamp.tz_convert("UTC")


def clean_readings(readings: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Readings sorted by time with one row per timestamp and a finite glucose value.

    Returns (clean frame with a default index, number of rows left out) so callers can report
    what was left out instead of dropping it silently. Raises ValueError on a wrong shape.
    """
    if not isinstance(readings, pd.DataFrame):
        raise ValueError(f"readings must be a pandas DataFrame with '{TIME}' and '{GLUCOSE}'")
    missing = {TIME, GLUCOSE} - set(readings.columns)
    if missing:
        raise ValueError(f"readings lack the column(s) {sorted(missing)}; expected '{TIME}' and '{GLUCOSE}'")
    frame = readings[[TIME, GLUCOSE]]
    if frame.empty:
        return pd.DataFrame({TIME: pd.DatetimeIndex([], tz="UTC"), GLUCOSE: np.array([], dtype=float)}), 0
    times = pd.to_datetime(frame[TIME])
    if times.dt.tz is None:
        raise ValueError(f"readings '{TIME}' must be timezone-aware (UTC)")
    values = pd.to_numeric(frame[GLUCOSE], errors="coerce").astype(float)
    clean = pd.DataFrame({TIME: times.dt.tz_convert("UTC"), GLUCOSE: values})
    clean = clean[np.isfinite(clean[GLUCOSE].to_numpy())]
    clean = clean.sort_values(TIME, kind="stable").drop_duplicates(TIME, keep="first")
    return clean.reset_index(drop=True), len(frame) - len(clean)


def local_times(times: pd.Series, tz: str) -> pd.Series:
    return times.dt.tz_convert(zone(tz))


def minute_of_day(local: pd.Series) -> np.ndarray:
    """Local clock minute of the day (0..1439.98): DST is handled by the conversion, so the
    readings of a 23-hour or 25-hour day land on the clock times the person saw."""
    return (local.dt.hour * 60 + local.dt.minute + local.dt.second / 60).to_numpy(dtype=float)


def sampling_minutes(clean: pd.DataFrame) -> float:
    """The sensor's usual interval: the median step between readings, bounded to 1-15 minutes
    (5 for most CGMs, 1 for some, 15 for Libre history). Used to size "enough readings"
    thresholds so that a 15-minute sensor is judged by its own expected counts; 5 when unknown."""
    if len(clean) < 2:
        return 5.0
    steps = clean[TIME].diff().dt.total_seconds().to_numpy()[1:] / 60.0
    return float(np.clip(np.median(steps), 1.0, 15.0))
