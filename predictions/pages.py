"""What the dashboard shows, assembled from the same services the API uses.

    dashboard(person, *, view="2h", now=None) -> dict     everything the template places
    past_accuracy_for_page(person, unit, *, now) -> dict  how the last day's forecasts did
    latest_reading(readings, *, now, unit) -> dict | None  value, age and trend arrow
    feature_in_words(name) -> str                          a model feature in plain words
    ask_for_retraining(person) -> (TrainingJob, created)

Texts are translated here (gettext) so templates only place them. Nothing here gives advice:
the wording says what the numbers are (predictions/wording.py holds the safety texts).
"""

from __future__ import annotations

import re
import statistics
from datetime import timedelta

import pandas as pd
from django.utils import timezone
from django.utils.formats import date_format, number_format
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from mlmodels.models import JobTrigger, TrainingJob, Variant
from mlmodels.services import active_model, request_training
from observations.charts import RANGE_HIGH, RANGE_LOW, glucose_chart, sparkline
from observations.episodes import FOLLOW, refresh_recent_windows, similar_episodes
from observations.readings import readings_frame
from observations.treatments.services import treatments_between
from observations.units import MMOL_L, from_mgdl
from predictions import wording
from predictions.errors import ForecastError
from predictions.feedback import record_feedback
from predictions.models import Source
from predictions.outcomes import recent_accuracy
from predictions.services import STALE_AFTER_MIN, forecast_for_person, population_forecaster

VIEWS = {
    # view: (hours of readings shown, forecast request, x tick hours wide / narrow)
    "2h": {"history": timedelta(hours=6), "ahead": timedelta(hours=2), "ticks": (1, 2)},
    "24h": {"history": timedelta(hours=24), "ahead": timedelta(hours=24), "ticks": (3, 6)},
}
TWO_HOUR_HORIZONS = list(range(5, 121, 5))
N_EPISODES = 5
# How far back the dashboard's "how past forecasts did" looks.
PAST_ACCURACY_WINDOW = timedelta(hours=24)

# Trend arrows as CGM receivers draw them (mg/dL per minute over the last 15 minutes).
TRENDS = [
    (3.0, "⇈", "rising quickly"),
    (2.0, "↑", "rising"),
    (1.0, "↗", "rising slowly"),
    (-1.0, "→", "steady"),
    (-2.0, "↘", "falling slowly"),
    (-3.0, "↓", "falling"),
    (float("-inf"), "⇊", "falling quickly"),
]
TREND_WINDOW = (timedelta(minutes=10), timedelta(minutes=20))


def glucose_text(value_mg_dl: float | None, unit: str, *, with_unit: bool = True) -> str:
    """A glucose value as people read it in their unit and language ('152 mg/dL', '8,4 mmol/L')."""
    if value_mg_dl is None:
        return "–"
    decimals = 1 if unit == MMOL_L else 0
    text = number_format(from_mgdl(value_mg_dl, unit), decimal_pos=decimals)
    return f"{text} {unit}" if with_unit else text


def signed_glucose_text(change_mg_dl: float, unit: str) -> str:
    sign = "+" if change_mg_dl > 0 else ("−" if change_mg_dl < 0 else "±")
    return sign + glucose_text(abs(change_mg_dl), unit)


def trend_label(code: str) -> str:
    labels = {
        "rising quickly": _("rising quickly"),
        "rising": _("rising"),
        "rising slowly": _("rising slowly"),
        "steady": _("steady"),
        "falling slowly": _("falling slowly"),
        "falling": _("falling"),
        "falling quickly": _("falling quickly"),
    }
    return labels[code]


def latest_reading(readings: pd.DataFrame, *, now, unit: str) -> dict | None:
    """The last reading, its age in minutes and the trend arrow from the change over ~15 minutes."""
    if readings.empty:
        return None
    last = readings.iloc[-1]
    age_min = max(int((pd.Timestamp(now) - last["time"]).total_seconds() // 60), 0)
    before = readings[
        (readings["time"] >= last["time"] - TREND_WINDOW[1]) & (readings["time"] <= last["time"] - TREND_WINDOW[0])
    ]
    arrow = label = rate = None
    if not before.empty:
        first = before.iloc[0]
        minutes = (last["time"] - first["time"]).total_seconds() / 60
        rate = (last["glucose_mg_dl"] - first["glucose_mg_dl"]) / minutes
        for threshold, symbol, code in TRENDS:
            if rate > threshold or threshold == float("-inf"):
                arrow, label = symbol, trend_label(code)
                break
    return {
        "value": glucose_text(last["glucose_mg_dl"], unit, with_unit=False),
        "unit": unit,
        "at": last["time"].to_pydatetime(),
        "age_min": age_min,
        "age_text": _("just now") if age_min < 1 else ngettext(
            "%(n)d minute ago", "%(n)d minutes ago", age_min) % {"n": age_min},
        "arrow": arrow,
        "trend": label,
        "rate_mg_dl_per_min": rate,
        "at_sensor_limit": bool(last.get("at_sensor_limit", False)),
    }


# --- Features in plain words ------------------------------------------------------------------

_FEATURE_PATTERNS = [
    (r"glucose_now", lambda m: _("your current glucose")),
    (r"lag_(\d+)min", lambda m: _("your glucose %(n)s minutes ago") % {"n": m[1]}),
    (r"rate_(\d+)min", lambda m: _("how fast glucose changed over the last %(n)s minutes") % {"n": m[1]}),
    (r"accel_(\d+)min", lambda m: _("whether the change is speeding up or slowing down")),
    (r"mean_(\d+)min", lambda m: _("your average glucose over the last %(n)s minutes") % {"n": m[1]}),
    (r"std_(\d+)min", lambda m: _("how much glucose varied over the last %(n)s minutes") % {"n": m[1]}),
    (r"min_(\d+)min", lambda m: _("your lowest glucose in the last %(n)s minutes") % {"n": m[1]}),
    (r"max_(\d+)min", lambda m: _("your highest glucose in the last %(n)s minutes") % {"n": m[1]}),
    (r"time_of_day_(sin|cos)", lambda m: _("the time of day")),
    (r"day_of_week_(sin|cos)", lambda m: _("the day of the week")),
    (r"interpolated_frac_(\d+)min", lambda m: _("gaps in the readings of the last hour")),
    (r"sensor_limit_(\d+)min", lambda m: _("readings at the sensor's limit in the last hour")),
    # Release 3: the person's recorded treatments (mlmodels/core/treatments.py).
    (r"iob_p\d+", lambda m: _("insulin you recorded that is still acting")),
    (r"insulin_next_(\d+)min_p\d+", lambda m: _("recorded insulin acting in the next %(n)s minutes") % {"n": m[1]}),
    (r"basal_(iob|next_\d+min)_net", lambda m: _("recorded basal insulin above or below your usual rate")),
    (r"cob_\w+", lambda m: _("recorded carbohydrates not yet absorbed")),
    (r"carbs_next_(\d+)min_\w+", lambda m: _("recorded carbohydrates absorbed in the next %(n)s minutes") % {"n": m[1]}),
    (r"meals_on_board|minutes_since_meal|carbs_last_3h", lambda m: _("your recorded meals")),
    (r"steps_(\d+)min", lambda m: _("your steps in the last %(n)s minutes") % {"n": m[1]}),
    (r"treatments_logged_24h", lambda m: _("whether anything was recorded in the last day")),
    (r"prior_change_(\d+)min", lambda m: _("the population model's forecast %(n)s minutes ahead") % {"n": m[1]}),
    (r"prior_trend", lambda m: _("what the population model expects")),
    (r".*_trend|persistence", lambda m: _("the recent trend of your readings")),
]


def feature_in_words(name: str) -> str:
    for pattern, words in _FEATURE_PATTERNS:
        match = re.fullmatch(pattern, name)
        if match:
            return words(match)
    return name.replace("_", " ")


def features_in_words(top_features: list[dict], unit: str, *, limit: int = 5) -> list[dict]:
    """Top contributions merged by their plain-words name (sin/cos of one clock are one thing)."""
    merged: dict[str, float] = {}
    for item in top_features:
        words = feature_in_words(item["feature"])
        merged[words] = merged.get(words, 0.0) + float(item["contribution"])
    rows = []
    for words, contribution in sorted(merged.items(), key=lambda kv: -abs(kv[1]))[:limit]:
        if round(from_mgdl(abs(contribution), unit), 1) == 0:
            effect = _("hardly changed the forecast")
        elif contribution > 0:
            effect = _("raised the forecast by %(amount)s") % {"amount": glucose_text(contribution, unit)}
        else:
            effect = _("lowered the forecast by %(amount)s") % {"amount": glucose_text(-contribution, unit)}
        direction = "none" if round(from_mgdl(abs(contribution), unit), 1) == 0 else ("up" if contribution > 0 else "down")
        rows.append({"words": words, "effect": effect, "direction": direction})
    return rows


# --- Episodes ---------------------------------------------------------------------------------


def episodes_for_page(person, unit: str, *, now) -> dict:
    episodes = similar_episodes(person, as_of=now, k=N_EPISODES)
    rows = []
    for episode in episodes:
        rows.append(
            {
                "end_at": pd.Timestamp(episode.end_at).tz_convert(person.tz).to_pydatetime(),
                "value_at_end": glucose_text(episode.value_at_end, unit),
                "value_after": glucose_text(episode.value_after, unit),
                "change_after": signed_glucose_text(episode.change_after, unit),
                "lowest_after": glucose_text(episode.lowest_after, unit),
                "highest_after": glucose_text(episode.highest_after, unit),
                "sparkline": sparkline(episode.values, episode.followed),
                "summary": _(
                    "%(start)s at the end of the episode, %(after)s two hours later "
                    "(lowest %(low)s, highest %(high)s)."
                ) % {
                    "start": glucose_text(episode.value_at_end, unit),
                    "after": glucose_text(episode.value_after, unit),
                    "low": glucose_text(episode.lowest_after, unit),
                    "high": glucose_text(episode.highest_after, unit),
                },
            }
        )
    overall = ""
    if episodes:
        afters = [e.value_after for e in episodes]
        overall = ngettext(
            "After the most similar past episode, glucose two hours later was %(median)s.",
            "After the %(n)d most similar past episodes, glucose two hours later was between "
            "%(low)s and %(high)s (median %(median)s).",
            len(episodes),
        ) % {
            "n": len(episodes),
            "low": glucose_text(min(afters), unit),
            "high": glucose_text(max(afters), unit),
            "median": glucose_text(statistics.median(afters), unit),
        }
    return {"rows": rows, "overall": overall, "follow_hours": int(FOLLOW.total_seconds() // 3600)}


# --- How past forecasts did -------------------------------------------------------------------


def past_accuracy_for_page(person, unit: str, *, now) -> dict:
    """The person's realized accuracy over the last 24 hours, at 30 and 60 minutes ahead: how
    many forecasts met their reading, the typical miss (mean absolute error) and the share of
    readings inside the 80% range."""
    rows = []
    for horizon, figures in recent_accuracy(person, since=now - PAST_ACCURACY_WINDOW).items():
        rows.append(
            {
                "horizon_min": horizon,
                "horizon_text": _("%(n)d min ahead") % {"n": horizon},
                "n_matched": figures["n_matched"],
                "mae": glucose_text(figures["mae_mg_dl"], unit),
                "inside_80": number_format(round(100 * figures["inside_80"])) + " %",
            }
        )
    return {"rows": rows, "hours": int(PAST_ACCURACY_WINDOW.total_seconds() // 3600)}


# --- Training ---------------------------------------------------------------------------------


def save_feedback(person, prediction_id: int, *, helpful: bool):
    """The person's helpful / not helpful verdict on one of THEIR forecasts (404 otherwise),
    through the same service as the API."""
    return record_feedback(person, prediction_id, helpful)


def ask_for_retraining(person):
    """Queue a retrain (never runs in the request); returns (job, created)."""
    return request_training(person, trigger=JobTrigger.PAGE)


def training_status(person) -> dict:
    job = TrainingJob.objects.for_person(person).order_by("-created_at").first()
    model = active_model(person)
    if population_forecaster() is not None:
        no_model_text = _("You have no personal model yet; forecasts come from a model learned from many people.")
    else:
        no_model_text = _("You have no personal model yet; forecasts come from a simple trend model.")
    status_texts = {
        "queued": _("Retraining is queued."),
        "running": _("Retraining is running."),
        "succeeded": _("The last retraining finished."),
        "failed": _("The last retraining failed."),
        "skipped": _("The last retraining was skipped: there was not enough data."),
    }
    return {
        "job": job,
        "job_text": status_texts.get(job.status, job.status) if job else "",
        "open": bool(job and job.is_open),
        "model": model,
        "no_model_text": no_model_text,
    }


# --- The dashboard ----------------------------------------------------------------------------


def forecast_error_text(error: ForecastError, person) -> str:
    """Why there is no forecast, said for the page (the API's texts speak of request fields)."""
    if error.code == "no_readings":
        return _("There are no glucose readings yet. Upload a CGM export on the Data page to see forecasts.")
    if error.code == "stale_readings":
        last = error.extra.get("last_reading_at")
        when = date_format(pd.Timestamp(last).tz_convert(person.tz).to_pydatetime(), "j M Y, H:i") if last else "–"
        return _(
            "Your latest reading is from %(when)s. A forecast needs a reading from the last "
            "%(limit)d minutes; the readings up to then are shown below."
        ) % {"when": when, "limit": STALE_AFTER_MIN}
    if error.code == "too_few_readings":
        return _("There are not enough recent readings to forecast from: a forecast needs at least "
                 "two readings at most 20 minutes apart from the last 30 minutes.")
    return str(error.message)



def treatment_marks(person, *, start, end, tz) -> list[dict]:
    """The recorded meals (carbs) and insulin boluses of the chart's span, with the words each
    mark carries (only what was recorded; nothing here is advice)."""
    frame = treatments_between(person=person, start=start, end=end, kinds=("carbs", "bolus"))
    marks = []
    for row in frame.itertuples(index=False):
        at = row.time.tz_convert(tz).strftime("%H:%M")
        value = float(row.amount)
        decimals = 0 if value.is_integer() else 1 if round(value, 1) == value else 2
        amount = number_format(value, decimal_pos=decimals)
        if row.kind == "carbs":
            title = _("Meal at %(time)s: %(amount)s g carbohydrates recorded") % {"time": at, "amount": amount}
        else:
            title = _("Insulin at %(time)s: %(amount)s U recorded") % {"time": at, "amount": amount}
        marks.append({"time": row.time, "kind": row.kind, "title": title})
    return marks


def _treatments_summary(marks: list[dict]) -> str:
    if not marks:
        return ""
    return _("Marked under the glucose line: %(items)s.") % {"items": "; ".join(m["title"] for m in marks)}


def _chart_summary(readings, log, unit, tz, history: timedelta) -> str:
    parts = []
    if not readings.empty:
        parts.append(
            _("Glucose over the last %(hours)d hours: between %(low)s and %(high)s, latest %(last)s.")
            % {
                "hours": int(history.total_seconds() // 3600),
                "low": glucose_text(readings["glucose_mg_dl"].min(), unit),
                "high": glucose_text(readings["glucose_mg_dl"].max(), unit),
                "last": glucose_text(readings["glucose_mg_dl"].iloc[-1], unit),
            }
        )
    if log is not None and log.points:
        for point in _summary_points(log.points):
            at = pd.Timestamp(point["time"]).tz_convert(tz)
            parts.append(
                _(
                    "Forecast for %(time)s (in %(minutes)d minutes): %(value)s; 80%% range "
                    "%(low80)s to %(high80)s, 95%% range %(low95)s to %(high95)s."
                )
                % {
                    "time": at.strftime("%H:%M"),
                    "minutes": point["horizon_min"],
                    "value": glucose_text(point["value_mg_dl"], unit),
                    "low80": glucose_text(point["lower_80_mg_dl"], unit, with_unit=False),
                    "high80": glucose_text(point["upper_80_mg_dl"], unit),
                    "low95": glucose_text(point["lower_95_mg_dl"], unit, with_unit=False),
                    "high95": glucose_text(point["upper_95_mg_dl"], unit),
                }
            )
    return " ".join(parts)


def _summary_points(points: list[dict]) -> list[dict]:
    wanted = (30, 60, 120) if points[-1]["horizon_min"] <= 120 else (60, 360, 1440)
    return [p for p in points if p["horizon_min"] in wanted]


def _forecast_table(points: list[dict], unit: str, tz) -> list[dict]:
    return [
        {
            "time": pd.Timestamp(p["time"]).tz_convert(tz).strftime("%H:%M"),
            "horizon_min": p["horizon_min"],
            "in_text": _("in %(n)d min") % {"n": p["horizon_min"]} if p["horizon_min"] < 120
            else _("in %(n)d h") % {"n": p["horizon_min"] // 60},
            "value": glucose_text(p["value_mg_dl"], unit, with_unit=False),
            "range80": f"{glucose_text(p['lower_80_mg_dl'], unit, with_unit=False)}–"
            f"{glucose_text(p['upper_80_mg_dl'], unit, with_unit=False)}",
            "range95": f"{glucose_text(p['lower_95_mg_dl'], unit, with_unit=False)}–"
            f"{glucose_text(p['upper_95_mg_dl'], unit, with_unit=False)}",
        }
        for p in _summary_points(points)
    ]


def dashboard(person, *, view: str = "2h", now=None) -> dict:
    """Everything the dashboard shows for `person`. A forecast that cannot be made (stale or too
    few readings) gives `forecast_error` and the readings are still shown."""
    view = view if view in VIEWS else "2h"
    shape = VIEWS[view]
    now = now or timezone.now()
    unit = person.preferred_unit
    tz = person.tz
    refresh_recent_windows(person)  # windows of readings that arrived since the last look

    log, forecast_error = None, ""
    try:
        if view == "24h":
            log = forecast_for_person(person, range_24h=True, unit=unit, source=Source.API)
        else:
            log = forecast_for_person(person, horizons=TWO_HOUR_HORIZONS, unit=unit, source=Source.API)
    except ForecastError as error:
        forecast_error = forecast_error_text(error, person)

    readings = readings_frame(person, start=now - shape["history"], end=now)
    chart_end_now = now
    if readings.empty:
        # Stale data: show the last readings there are, ending where they end.
        last = readings_frame(person, start=None, end=now).tail(1)
        if not last.empty:
            chart_end_now = last["time"].iloc[0].to_pydatetime()
            readings = readings_frame(person, start=chart_end_now - shape["history"], end=chart_end_now)
    latest = latest_reading(readings, now=now, unit=unit)

    points = log.points if log is not None else None
    charts = {}
    marks = []
    if not readings.empty or points:
        start = chart_end_now - shape["history"]
        end = chart_end_now + (shape["ahead"] if points else timedelta(0))
        marks = treatment_marks(person, start=start, end=chart_end_now, tz=tz)
        for name, (width, height, ticks) in {
            "wide": (760, 300, shape["ticks"][0]),
            "narrow": (380, 260, shape["ticks"][1]),
        }.items():
            charts[name] = glucose_chart(
                readings, start=start, end=end, now=chart_end_now, tz=tz, unit=unit,
                forecast=points, width=width, height=height, x_tick_hours=ticks, treatments=marks,
            )

    model_info = None
    provenance = None
    notes = []
    if log is not None:
        model_info = {
            "version": log.model_version,
            "variant": log.variant,
            "variant_label": Variant(log.variant).label if log.variant in Variant.values else log.variant,
            "algorithm": log.algorithm,
            "prediction_id": log.pk,
        }
        window_start = log.provenance.get("window_start")
        window_end = log.provenance.get("window_end")
        provenance = {
            "n_readings": log.provenance.get("n_readings", 0),
            "window_start": pd.Timestamp(window_start).tz_convert(tz).to_pydatetime() if window_start else None,
            "window_end": pd.Timestamp(window_end).tz_convert(tz).to_pydatetime() if window_end else None,
            "gaps": log.quality.get("gaps_in_window", 0),
            "features": features_in_words(log.provenance.get("top_features", []), unit),
        }
        if log.variant == Variant.BASELINE:
            notes.append(str(wording.BASELINE_NOTE))
        elif log.variant == Variant.POPULATION:
            notes.append(str(wording.POPULATION_NOTE))
        elif log.variant == Variant.SHORT_HISTORY:
            notes.append(str(wording.SHORT_HISTORY_NOTE))
        if view == "24h":
            notes.append(str(wording.LONG_HORIZON_NOTE))

    return {
        "person": person,
        "unit": unit,
        "view": view,
        "latest": latest,
        "log": log,
        "forecast_error": forecast_error,
        "charts": charts,
        "chart_summary": " ".join(filter(None, [_chart_summary(readings, log, unit, tz, shape["history"]),
                                                _treatments_summary(marks)])),
        "forecast_table": _forecast_table(points, unit, tz) if points else [],
        "model": model_info,
        "provenance": provenance,
        "notes": notes,
        "intervals_explained": str(wording.INTERVALS_EXPLAINED),
        "target_low": glucose_text(RANGE_LOW, unit, with_unit=False),
        "target_high": glucose_text(RANGE_HIGH, unit, with_unit=False),
        "disclaimer": str(wording.DISCLAIMER),
        "episodes": episodes_for_page(person, unit, now=now),
        "past_accuracy": past_accuracy_for_page(person, unit, now=now),
        "training": training_status(person),
    }
