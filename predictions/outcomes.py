"""Outcomes of logged forecasts: what glucose actually was at each forecast point, and the
realized accuracy per person, model version and horizon that follows from it.

Matching rule: a point's outcome is the stored reading NEAREST to the point's time within
±5 minutes (ties: the earlier reading). A point is looked up once its time + 5 minutes has
passed, so every reading that could match has normally arrived; when none has, it is looked up
once more after a grace period (readings uploaded late from a receiver) and then closed as
"no reading" (matched_at set, actual_mg_dl null). Forecasts made from `history` are never
scored: their inputs are not the person's stored readings.
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from observations.models import Observation
from persons.erasure import lock_people
from predictions.models import ModelPerformance, PredictionLog, Source
from predictions.selectors import matched_points_sql

logger = logging.getLogger(__name__)

MATCH_WINDOW = timedelta(minutes=5)
BATCH_SIZE = 2000
# What the dashboard shows of a person's own realized accuracy.
RECENT_ACCURACY_HORIZONS = (30, 60)


def outcome_grace() -> timedelta:
    return timedelta(minutes=settings.GLUCAST_OUTCOME_GRACE_MIN)


def _parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


def _iso(moment: datetime) -> str:
    text = moment.astimezone(dt_timezone.utc).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def nearest_reading(times_s: np.ndarray, values: np.ndarray, target_s: float, window_s: float):
    """(value, time index) of the reading nearest `target_s` within ±window_s; ties -> earlier."""
    if len(times_s) == 0:
        return None
    i = int(np.searchsorted(times_s, target_s))
    best = None
    for j in (i - 1, i):
        if 0 <= j < len(times_s):
            distance = abs(times_s[j] - target_s)
            if distance <= window_s and (best is None or distance < best[0]):
                best = (distance, j)
    return None if best is None else best[1]


def _readings_by_person(person_ids, start, end) -> dict[int, tuple[np.ndarray, np.ndarray, list]]:
    rows = (
        Observation.objects.filter(
            person_id__in=person_ids,
            kind=Observation.Kind.CGM,
            effective_at__gte=start,
            effective_at__lte=end,
        )
        .usable()
        .order_by("person_id", "effective_at")
        .values_list("person_id", "effective_at", "value_mg_dl")
    )
    grouped: dict[int, list] = defaultdict(list)
    for person_id, moment, value in rows.iterator(chunk_size=5000):
        grouped[person_id].append((moment, value))
    out = {}
    for person_id, items in grouped.items():
        moments = [m for m, _ in items]
        out[person_id] = (
            np.array([m.timestamp() for m in moments], dtype=np.float64),
            np.array([v for _, v in items], dtype=np.float64),
            moments,
        )
    return out


def fill_outcomes(now=None, *, batch_size: int = BATCH_SIZE, person_ids=None) -> dict:
    """Resolve every forecast point that is due (of these people, or everyone's); update realized
    performance. Idempotent and safe to run concurrently (rows being processed elsewhere are
    skipped). Returns counts. The scheduled run goes by chunks of people (predictions/sharding.py)."""
    now = now or timezone.now()
    totals = {"logs": 0, "matched": 0, "missing": 0}
    due = PredictionLog.objects.awaiting_outcomes(now)
    if person_ids is not None:
        due = due.filter(person_id__in=list(person_ids))
    while True:
        with transaction.atomic():
            logs = list(
                due.select_for_update(skip_locked=True, of=("self",))
                .order_by("outcomes_next_at", "id")
                .only("id", "person_id", "ml_model_id", "model_version", "points", "from_history")[:batch_size]
            )
            if not logs:
                break
            # People being erased right now are left for the next run (their logs go with the
            # erasure); the others' rows stay locked FOR SHARE until this commits.
            present = lock_people([log.person_id for log in logs], skip_locked=True)
            counts = _resolve([log for log in logs if log.person_id in present], now)
        for key in totals:
            totals[key] += counts[key]
        if len(logs) < batch_size:
            break
    if totals["logs"]:
        logger.info("Outcomes: %(logs)d forecasts checked, %(matched)d points matched, %(missing)d without a reading", totals)
    return totals


def _resolve(logs: list[PredictionLog], now) -> dict:
    grace = outcome_grace()
    due_times = []
    for log in logs:
        for point in log.points:
            if point.get("matched_at") is None:
                moment = _parse(point["time"])
                if moment + MATCH_WINDOW <= now:
                    due_times.append(moment)
    readings = {}
    if due_times:
        readings = _readings_by_person(
            {log.person_id for log in logs}, min(due_times) - MATCH_WINDOW, max(due_times) + MATCH_WINDOW
        )
    window_s = MATCH_WINDOW.total_seconds()
    performance = defaultdict(lambda: [0, 0.0, 0.0, 0, 0])
    now_iso = _iso(now)
    counts = {"logs": len(logs), "matched": 0, "missing": 0}
    for log in logs:
        next_due = None
        times_s, values, moments = readings.get(log.person_id, (np.array([]), np.array([]), []))
        for point in log.points:
            if point.get("matched_at") is not None:
                continue
            moment = _parse(point["time"])
            if moment + MATCH_WINDOW > now:
                candidate = moment + MATCH_WINDOW
            else:
                j = nearest_reading(times_s, values, moment.timestamp(), window_s)
                if j is not None:
                    actual = float(values[j])
                    point["actual_mg_dl"] = round(actual, 1)
                    point["actual_at"] = _iso(moments[j])
                    point["matched_at"] = now_iso
                    counts["matched"] += 1
                    if not log.from_history:
                        error = point["value_mg_dl"] - actual
                        sums = performance[(log.person_id, log.ml_model_id, log.model_version, point["horizon_min"])]
                        sums[0] += 1
                        sums[1] += abs(error)
                        sums[2] += error * error
                        sums[3] += int(point["lower_80_mg_dl"] <= actual <= point["upper_80_mg_dl"])
                        sums[4] += int(point["lower_95_mg_dl"] <= actual <= point["upper_95_mg_dl"])
                    continue
                if moment + grace <= now:
                    point["matched_at"] = now_iso
                    counts["missing"] += 1
                    continue
                candidate = moment + grace
            next_due = candidate if next_due is None else min(next_due, candidate)
        log.outcome_pending = next_due is not None
        log.outcomes_next_at = next_due
    _save_resolved(logs)
    _add_performance(performance)
    return counts


def _save_resolved(logs: list[PredictionLog]) -> None:
    """Write the resolved points back with ONE statement joined to arrays (bulk_update's CASE
    expressions took ~2 ms per row to build and run at a few thousand rows)."""
    table = PredictionLog._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {table} AS l
               SET points = v.points::jsonb, outcome_pending = v.pending, outcomes_next_at = v.next_at
              FROM unnest(%s::bigint[], %s::text[], %s::boolean[], %s::timestamptz[])
                   AS v(id, points, pending, next_at)
             WHERE l.id = v.id
            """,
            [
                [log.pk for log in logs],
                [json.dumps(log.points) for log in logs],
                [log.outcome_pending for log in logs],
                [log.outcomes_next_at for log in logs],
            ],
        )


def _add_performance(performance: dict) -> None:
    """Add the new sums to ModelPerformance with one upsert per row (exact under concurrency)."""
    if not performance:
        return
    table = ModelPerformance._meta.db_table
    sql = f"""
        INSERT INTO {table} (person_id, ml_model_id, model_version, horizon_min, n_matched,
                             sum_abs_error, sum_squared_error, n_inside_80, n_inside_95, updated_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, now())
        ON CONFLICT (person_id, model_version, horizon_min) DO UPDATE SET
            n_matched = {table}.n_matched + EXCLUDED.n_matched,
            sum_abs_error = {table}.sum_abs_error + EXCLUDED.sum_abs_error,
            sum_squared_error = {table}.sum_squared_error + EXCLUDED.sum_squared_error,
            n_inside_80 = {table}.n_inside_80 + EXCLUDED.n_inside_80,
            n_inside_95 = {table}.n_inside_95 + EXCLUDED.n_inside_95,
            ml_model_id = COALESCE(EXCLUDED.ml_model_id, {table}.ml_model_id),
            updated_at = now()
    """
    params = [
        (person_id, ml_model_id, version, horizon, *sums)
        for (person_id, ml_model_id, version, horizon), sums in sorted(
            performance.items(), key=lambda item: (item[0][0], item[0][2], item[0][3])
        )
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def performance_rows(queryset) -> list[dict]:
    out = []
    for row in queryset.order_by("horizon_min"):
        out.append(
            {
                "horizon_min": row.horizon_min,
                "n_matched": row.n_matched,
                "mae_mg_dl": _round(row.mae_mg_dl, 2),
                "rmse_mg_dl": _round(row.rmse_mg_dl, 2),
                "coverage_80": _round(row.coverage_80, 4),
                "coverage_95": _round(row.coverage_95, 4),
            }
        )
    return out


def _round(value, digits):
    return None if value is None or not math.isfinite(value) else round(value, digits)


def performance_summary(mlmodel) -> dict:
    """Realized accuracy of one model version by horizon (the performance endpoint's body)."""
    return {
        "model": {
            "id": mlmodel.pk,
            "version": mlmodel.version,
            "algorithm": mlmodel.algorithm,
            "status": mlmodel.status,
            "is_active": mlmodel.is_active,
        },
        "horizons": performance_rows(ModelPerformance.objects.filter(ml_model=mlmodel)),
    }


def stop_awaiting_outcomes(person) -> int:
    """The person's forecasts stop waiting for outcomes, because the readings they would be
    matched with were replaced (the demo loader shifts a recording in time on every start).
    Points already scored keep their outcomes. Returns how many forecasts stopped waiting."""
    return (
        PredictionLog.objects.for_person(person).filter(outcome_pending=True)
        .update(outcome_pending=False, outcomes_next_at=None)
    )


def recent_accuracy(person, *, since, horizons=RECENT_ACCURACY_HORIZONS) -> dict[int, dict]:
    """How the person's own forecasts issued since `since` did, by horizon: {h: {"n_matched",
    "mae_mg_dl", "inside_80"}} over the points whose reading is known (served forecasts only:
    a candidate's shadow forecasts were never shown to them). Horizons without one are absent."""
    sql = f"""
        SELECT m.h, count(*), avg(abs(m.value - m.actual)),
               avg((m.actual BETWEEN m.lower_80 AND m.upper_80)::int)
          FROM ({matched_points_sql("l.person_id = %s AND l.issued_at >= %s AND l.shadow_of_id IS NULL")}) m
         GROUP BY m.h ORDER BY m.h
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [person.pk, since, list(horizons)])
        return {
            int(h): {"n_matched": int(n), "mae_mg_dl": float(mae), "inside_80": float(inside)}
            for h, n, mae, inside in cursor.fetchall()
        }


def prune_prediction_log(now=None) -> int:
    """Delete forecasts older than GLUCAST_PREDICTION_RETENTION_DAYS (default 180), and batch
    forecasts older than GLUCAST_BATCH_PREDICTION_RETENTION_DAYS (default 30: the schedule writes
    one per person every 5 minutes, and once scored they live on in the performance sums).
    Returns the number of rows deleted."""
    now = now or timezone.now()
    days = int(settings.GLUCAST_PREDICTION_RETENTION_DAYS)
    batch_days = int(settings.GLUCAST_BATCH_PREDICTION_RETENTION_DAYS)
    deleted, _ = PredictionLog.objects.filter(issued_at__lt=now - timedelta(days=days)).delete()
    batch_deleted, _ = PredictionLog.objects.filter(
        source=Source.BATCH, issued_at__lt=now - timedelta(days=min(days, batch_days))
    ).delete()
    if deleted or batch_deleted:
        logger.info("Pruned %d forecasts older than %d days and %d batch forecasts older than %d days",
                    deleted, days, batch_deleted, batch_days)
    return deleted + batch_deleted
