"""What the insights and data pages show and do, built on the observations services.

    insights(person, *, start, end) -> dict                      metrics, AGP, patterns, flags
    upload_readings(person, data, *, filename, fmt="auto") -> dict   import + windows; summary
    remove_import(person, batch_id) -> (int, int)                one import, its readings, treatments, windows
    treatments_for_page(person) -> dict                          the newest recorded treatments

Texts are translated here so templates only place them; insight texts come from the insights
modules as `template` + `params` (translated with gettext(template) % params).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pandas as pd
from django.db import transaction
from django.shortcuts import get_object_or_404
from django.utils.formats import number_format
from django.utils.translation import gettext as _

from observations.charts import agp_chart
from observations.episodes import INLINE_SPAN, WINDOW_SPAN, rebuild_windows, refresh_windows
from observations.insights import agp_profile, anomaly_flags, consensus_metrics, pattern_statements
from observations.models import ImportBatch, Treatment
from observations.readings import readings_frame
from observations.services import batch_span, delete_import, import_file, schedule_window_refresh
from observations.units import MMOL_L, from_mgdl

logger = logging.getLogger(__name__)

DEFAULT_PERIOD_DAYS = 14
MAX_PERIOD_DAYS = 366
MAX_FLAGS_SHOWN = 20


def _glucose(value_mg_dl, unit: str) -> str:
    if value_mg_dl is None:
        return "–"
    return f"{number_format(from_mgdl(value_mg_dl, unit), decimal_pos=1 if unit == MMOL_L else 0)} {unit}"


def _percent(value, decimals: int = 1) -> str:
    return "–" if value is None else f"{number_format(value, decimal_pos=decimals)} %"


# --- Insights ---------------------------------------------------------------------------------


def _metric_rows(metrics: dict, unit: str) -> list[dict]:
    rows = [
        ("time_in_range_percent", _("Time in range (%(low)s–%(high)s)") % {"low": _glucose(70, unit), "high": _glucose(180, unit)}, _percent),
        ("time_below_70_percent", _("Time below %(v)s") % {"v": _glucose(70, unit)}, _percent),
        ("time_below_54_percent", _("Time below %(v)s") % {"v": _glucose(54, unit)}, _percent),
        ("time_above_180_percent", _("Time above %(v)s") % {"v": _glucose(180, unit)}, _percent),
        ("time_above_250_percent", _("Time above %(v)s") % {"v": _glucose(250, unit)}, _percent),
        ("mean_mg_dl", _("Mean glucose"), lambda v: _glucose(v, unit)),
        ("gmi_percent", _("Glucose management indicator (GMI)"), _percent),
        ("cv_percent", _("Coefficient of variation (CV)"), _percent),
        ("active_percent", _("Readings present (of expected)"), _percent),
    ]
    return [{"key": key, "label": label, "value": fmt(metrics.get(key))} for key, label, fmt in rows]


def _range_bar(metrics: dict) -> list[dict]:
    """Stacked bar of the five ranges (shares add up to 100 %)."""
    if metrics.get("time_in_range_percent") is None:
        return []
    below54 = metrics["time_below_54_percent"]
    above250 = metrics["time_above_250_percent"]
    parts = [
        ("very-low", _("very low"), below54),
        ("low", _("low"), metrics["time_below_70_percent"] - below54),
        ("in-range", _("in range"), metrics["time_in_range_percent"]),
        ("high", _("high"), metrics["time_above_180_percent"] - above250),
        ("very-high", _("very high"), above250),
    ]
    return [
        {"kind": kind, "label": label, "share": round(share, 2), "text": _percent(share, 0)}
        for kind, label, share in parts
    ]


def _agp_summary(profile: pd.DataFrame, unit: str) -> str:
    present = profile[profile["n"] > 0]
    if present.empty:
        return _("No readings in this period.")
    high = present.loc[present["p50"].idxmax()]
    low = present.loc[present["p50"].idxmin()]
    return _(
        "Median glucose by time of day: lowest %(low)s around %(low_time)s, highest %(high)s "
        "around %(high_time)s. Half of the readings at each time of day lay between the 25th "
        "percentile (%(p25)s on average) and the 75th (%(p75)s on average)."
    ) % {
        "low": _glucose(low["p50"], unit),
        "low_time": low["time_of_day"],
        "high": _glucose(high["p50"], unit),
        "high_time": high["time_of_day"],
        "p25": _glucose(present["p25"].mean(), unit),
        "p75": _glucose(present["p75"].mean(), unit),
    }


def _translated(item: dict) -> str:
    return _(item["template"]) % item["params"]


ANOMALY_KINDS = {
    "unusual_day": lambda: _("Unusual day"),
    "implausible_jump": lambda: _("Implausible jump"),
    "compression_low": lambda: _("Likely sensor compression"),
    "long_gap": lambda: _("Long gap"),
    "sensor_limit": lambda: _("Sensor limit"),
}


def default_period(now: datetime, days: int = DEFAULT_PERIOD_DAYS) -> tuple[datetime, datetime]:
    return now - timedelta(days=days), now


def insights(person, *, start: datetime, end: datetime) -> dict:
    """Consensus metrics, AGP, pattern statements and anomaly flags of [start, end)."""
    unit = person.preferred_unit
    tz = person.time_zone
    readings = readings_frame(person, start=start, end=end)
    readings = readings[readings["time"] < pd.Timestamp(end)]
    metrics = consensus_metrics(readings, start, end, tz=tz)
    profile = agp_profile(readings, tz, bin_minutes=15, smooth=True)
    charts = {}
    if not readings.empty:
        charts = {
            "wide": agp_chart(profile, unit=unit, width=900, height=300),
            "narrow": agp_chart(profile, unit=unit, width=380, height=260),
        }
    patterns = [{"code": p["code"], "text": _translated(p)} for p in pattern_statements(readings, tz, unit=unit)]
    flags = [
        {
            "kind": flag["kind"],
            "label": ANOMALY_KINDS.get(flag["kind"], lambda k=flag["kind"]: k)(),
            "text": _translated(flag),
            "start": flag["start"].tz_convert(tz).to_pydatetime(),
        }
        for flag in anomaly_flags(readings, tz, unit=unit)
    ]
    return {
        "unit": unit,
        "n_readings": metrics["n_readings"],
        "metrics": _metric_rows(metrics, unit),
        "sufficient_data": metrics["sufficient_data"],
        "days_with_data": metrics["days_with_data"],
        "range_bar": _range_bar(metrics),
        "agp": charts,
        "agp_summary": _agp_summary(profile, unit),
        "patterns": patterns,
        "flags": flags,
        "flags_shown": flags[:MAX_FLAGS_SHOWN],
        "flags_more": max(len(flags) - MAX_FLAGS_SHOWN, 0),
        "target_low": _glucose(70, unit),
        "target_high": _glucose(180, unit),
    }


# --- Data -------------------------------------------------------------------------------------


def imports_for_page(person):
    return ImportBatch.objects.for_person(person).order_by("-created_at")


TREATMENTS_ON_PAGE = 50


def treatments_for_page(person, limit: int = TREATMENTS_ON_PAGE) -> dict:
    """The person's newest recorded treatments (usable ones), and how many there are in all."""
    queryset = Treatment.objects.for_person(person).usable()
    return {"rows": list(queryset.order_by("-effective_at", "-pk")[:limit]), "total": queryset.count()}


def upload_readings(person, data: bytes, *, filename: str, fmt: str = "auto"):
    """Import one file with the ingest service (all or nothing), then fill its similar-episode
    windows: now for a short span, in the worker for a long one.

    Raises ImportRejected (what is wrong, row by row) or Http404 (a FHIR subject that is someone
    else); nothing is stored then. Returns the ParsedImport.
    """
    result = import_file(person, data, fmt=fmt, filename=filename)
    span = batch_span(result.batch)
    if span is not None and span[1] - span[0] <= INLINE_SPAN:
        try:
            refresh_windows(person, start=span[0], end=span[1] + WINDOW_SPAN)
        except Exception:  # the readings are stored; the dashboard refills recent windows itself
            logger.exception("Embedding the windows of import %s failed", result.batch.pk)
    else:
        schedule_window_refresh(person, span)
    return result


def remove_import(person, batch_id: int) -> tuple[int, int]:
    """Delete one of the person's imports (404 for anyone else's) with its readings and
    treatments; the windows of its span are embedded again from the readings that remain (other
    imports'). Returns (readings, treatments) deleted."""
    batch = get_object_or_404(ImportBatch.objects.for_person(person), pk=batch_id)
    span = batch_span(batch)
    with transaction.atomic():
        n_treatments = Treatment.objects.for_person(person).filter(import_batch=batch).count()
        n_readings = delete_import(person, batch)  # drops the windows of the deleted readings
        if span is not None:
            rebuild_windows(person, *span)
    return n_readings, n_treatments
