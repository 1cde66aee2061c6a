"""Shadow mode: the candidate release forecasts the same origins as the served model, after the
answer, and its forecasts are logged and scored but never shown.

Why after the answer: a person's forecast must not wait for a model they are not served. The
request path only marks its log (`shadow_pending`, set by predictions.selection.record_choice
when the rollout puts the person in its shadow share); the worker computes the candidate's
forecast (`run_pending_shadows`, scheduled every minute and run after each batch) from the same
readings up to the same last reading, and stores it as its own PredictionLog (source and arm
`shadow`, `shadow_of` = the served log, `issued_at` = the served log's), so the outcome task
scores both against the same readings. A shadow log is never returned to the person
(PredictionLogQuerySet.for_user / for_person leave it out).

    run_pending_shadows(limit=2000) -> dict          compute the candidates' forecasts now
    paired_comparison(rollout, since=None, until=None) -> dict
        candidate vs served on the same person, origin and outcome: pooled MAE at 30 and 60 min,
        the paired difference with a bootstrap interval over people (mlmodels.core.paired), and
        the shadow's own error rate; used by the automated decisions when it has enough evidence.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict

import numpy as np
import xgboost
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from mlmodels.core.forecaster import ForecastInputError
from mlmodels.core.paired import paired_mae_difference
from mlmodels.core.treatments import Treatments
from mlmodels.models import Variant
from observations.models import Observation
from persons.models import Person
from predictions import fastpath
from predictions.fastpath import Readings
from predictions.models import PredictionLog, Source
from predictions.selection import choose_models
from predictions.selectors import NOT_ERROR_FALLBACK, log_table, matched_points_sql
from predictions.services import (
    READINGS_LOOKBACK,
    Answer,
    build_log,
    cached_forecaster,
    fallback_reason_for,
    is_release_3,
    model_calibration,
    recorded_treatments,
    to_ns,
)

logger = logging.getLogger(__name__)

SHADOW_ARM = "shadow"
PAIRED_HORIZONS = (30, 60)
SWEEP_LIMIT = 2000


def _readings_until(logs: list[PredictionLog]) -> dict[int, Readings]:
    """Every person's readings from the earliest window start to their latest origin, ONE query."""
    start = min(log.as_of for log in logs) - READINGS_LOOKBACK
    end = max(log.as_of for log in logs)
    rows = (
        Observation.objects.filter(
            person_id__in={log.person_id for log in logs}, kind=Observation.Kind.CGM,
            effective_at__gte=start, effective_at__lte=end,
        )
        .usable()
        .order_by("person_id", "effective_at")
        .values_list("person_id", "id", "effective_at", "value_mg_dl", "at_sensor_limit")
    )
    grouped: dict[int, list] = defaultdict(list)
    for row in rows.iterator(chunk_size=10_000):
        grouped[row[0]].append(row)
    out = {}
    for pid, items in grouped.items():
        _, ids, moments, values, limits = zip(*items)
        out[pid] = Readings.from_rows([to_ns(m) for m in moments], values, limits, ids)
    return out


def _window_of(readings: Readings, as_of_ns: int) -> Readings:
    """The readings the served forecast could see: up to its last reading, 3 hours back."""
    keep = (readings.times_ns <= as_of_ns) & (readings.times_ns >= as_of_ns - int(READINGS_LOOKBACK.total_seconds() * 1e9))
    return Readings(
        readings.times_ns[keep], readings.values[keep], readings.at_limit[keep],
        None if readings.ids is None else readings.ids[keep],
    )


def _failed_shadow(log: PredictionLog, model, rollout_id, reason: str) -> PredictionLog:
    """A shadow attempt that produced no forecast: counted in the shadow's error rate, never scored."""
    return PredictionLog(
        person_id=log.person_id, ml_model=model, model_type=log.model_type, model_version=model.version,
        variant=Variant.SHADOW, algorithm=model.algorithm or "", source=Source.SHADOW, from_history=False,
        issued_at=log.issued_at, as_of=log.as_of, unit=log.unit, horizons=log.horizons, points=[],
        provenance={}, quality={}, fallback_reason=reason[:255], arm=SHADOW_ARM, rollout_id=rollout_id,
        shadow_of_id=log.pk, outcome_pending=False, outcomes_next_at=None,
    )


def run_pending_shadows(*, limit: int = SWEEP_LIMIT) -> dict:
    """Compute the candidate's forecast for served logs marked `shadow_pending` (oldest first).

    The assignment is read now (one query for everyone): a person the rollout no longer puts in
    its shadow share gets none. Rows another worker is processing are skipped. Returns counts.
    """
    started = time.perf_counter()
    counts = {"logs": 0, "shadows": 0, "failures": 0, "dropped": 0}
    with transaction.atomic():
        logs = list(
            PredictionLog.objects.filter(shadow_pending=True)
            .select_for_update(skip_locked=True, of=("self",))
            .order_by("id")
            .only("id", "person_id", "model_type", "issued_at", "as_of", "unit", "horizons", "rollout_id")[:limit]
        )
        if not logs:
            return counts
        counts["logs"] = len(logs)
        choices = choose_models(sorted({log.person_id for log in logs}))
        people = {p.pk: p for p in Person.objects.filter(pk__in=list(choices)).only("id", "time_zone")}
        readings = _readings_until(logs)
        groups: dict[tuple, list[PredictionLog]] = defaultdict(list)
        for log in logs:
            shadow_model = getattr(choices.get(log.person_id), "shadow", None)
            if shadow_model is None:
                counts["dropped"] += 1
                continue
            groups[(shadow_model.pk, people[log.person_id].time_zone, tuple(log.horizons))].append(log)
        created: list[PredictionLog] = []
        for (_model_id, tz, horizons), group in groups.items():
            created.extend(_forecast_group(group, tz, list(horizons), choices, readings, counts, people))
        PredictionLog.objects.bulk_create(created, batch_size=500)
        PredictionLog.objects.filter(pk__in=[log.pk for log in logs]).update(shadow_pending=False)
    counts["seconds"] = round(time.perf_counter() - started, 3)
    logger.info("Shadow forecasts: %s", counts)
    return counts


def _forecast_group(group, tz, horizons, choices, readings, counts, people) -> list[PredictionLog]:
    """One model call for the logs of one shadow model, time zone and set of horizons."""
    choice = choices[group[0].person_id]
    model, rollout_id = choice.shadow, choice.rollout_id
    empty = Readings.from_rows([], [], [], [])
    items = [(_window_of(readings.get(log.person_id, empty), to_ns(log.as_of)), to_ns(log.as_of)) for log in group]
    t = time.perf_counter()
    # A release-3 candidate reads the person's treatments recorded up to each forecast's time.
    recorded = None
    if is_release_3(model):
        latest = max(log.as_of for log in group)
        recorded = recorded_treatments(people[group[0].person_id], model, latest)
    try:
        with xgboost.config_context(nthread=1):
            forecaster = cached_forecaster(model)
            if recorded is not None:
                whole = Treatments.from_frame(recorded)
                forecasts = [fastpath.predict_many(forecaster, [item], horizons=horizons, tz=tz,
                                                   treatments=whole.before(item[1]))[0] for item in items]
            else:
                forecasts = fastpath.predict_many(forecaster, items, horizons=horizons, tz=tz)
            uses = bool(getattr(forecaster, "uses_treatments", False))
    except Exception as exc:  # noqa: BLE001 - a failing candidate is evidence, not an outage
        reason = f"{fallback_reason_for(exc)}: model {model.version}"
        logger.error("Shadow: model %s failed for %d forecasts: %s", model.version, len(group), exc)
        counts["failures"] += len(group)
        return [_failed_shadow(log, model, rollout_id, reason) for log in group]
    per_log_ms = round(1000 * (time.perf_counter() - t) / max(len(group), 1), 3)
    out = []
    for log, (window, _as_of), forecast in zip(group, items, forecasts):
        if isinstance(forecast, ForecastInputError):
            counts["failures"] += 1
            out.append(_failed_shadow(log, model, rollout_id, f"{NOT_ERROR_FALLBACK}_for_model: model {model.version}"))
            continue
        shadow = build_log(
            people[log.person_id],
            Answer(forecast, model, Variant.SHADOW, model.version, model.algorithm or "", uses_treatments=uses,
                   calibration=model_calibration(model, forecaster)),
            window, horizons=horizons, unit=log.unit, issued_at=log.issued_at, forecast_time=log.issued_at,
            last_reading_ns=int(window.times_ns[-1]), source=Source.SHADOW, from_history=False,
            treatments=recorded,
        )
        shadow.model_type = log.model_type
        shadow.arm = SHADOW_ARM
        shadow.rollout_id = rollout_id
        shadow.shadow_of_id = log.pk
        shadow.latency_ms = per_log_ms
        out.append(shadow)
        counts["shadows"] += 1
    return out


# --- The paired comparison ----------------------------------------------------------------------


def paired_comparison(rollout, since=None, *, until=None) -> dict:
    """The candidate (shadow) against what was served, on the same person, origin and outcome."""
    since = since or rollout.candidate_since or rollout.updated_at
    until = until or timezone.now()
    min_outcomes = int(settings.GLUCAST_ROLLOUT_MIN_OUTCOMES)
    min_people = int(settings.GLUCAST_ROLLOUT_MIN_PEOPLE)
    shadow_where = "l.rollout_id = %s AND l.source = 'shadow' AND l.issued_at >= %s AND l.issued_at <= %s"
    params = [rollout.pk, since, until]
    served_where = f"l.id IN (SELECT sl.shadow_of_id FROM {log_table()} sl WHERE {shadow_where.replace('l.', 'sl.')})"
    horizons = list(PAIRED_HORIZONS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT s.person_id, s.h, count(*), sum(abs(s.value - s.actual)), sum(abs(p.value - p.actual)),
                   avg((s.actual BETWEEN s.lower_80 AND s.upper_80)::int),
                   avg((p.actual BETWEEN p.lower_80 AND p.upper_80)::int)
              FROM ({matched_points_sql(shadow_where)}) s
              JOIN ({matched_points_sql(served_where)}) p ON p.log_id = s.shadow_of_id AND p.h = s.h
             GROUP BY s.person_id, s.h ORDER BY s.person_id, s.h
            """,
            params + [horizons] + params + [horizons],
        )
        rows = cursor.fetchall()
        cursor.execute(
            f"""
            SELECT count(*), count(*) FILTER (WHERE l.fallback_reason <> ''
                                              AND l.fallback_reason NOT LIKE '{NOT_ERROR_FALLBACK}%%')
              FROM {log_table()} l WHERE {shadow_where}
            """,
            params,
        )
        n_shadow, n_shadow_errors = cursor.fetchone()
    per_person: dict[int, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    per_horizon: dict[int, list] = defaultdict(list)
    for person_id, h, n, abs_c, abs_s, cov_c, cov_s in rows:
        n, abs_c, abs_s, cov_c, cov_s = int(n), float(abs_c), float(abs_s), float(cov_c), float(cov_s)
        entry = per_person[person_id]
        entry[0] += n
        entry[1] += abs_c
        entry[2] += abs_s
        per_horizon[h].append((n, abs_c, abs_s, cov_c, cov_s))
    ids = sorted(per_person)
    pooled = paired_mae_difference(
        [per_person[i][0] for i in ids], [per_person[i][1] for i in ids], [per_person[i][2] for i in ids]
    )
    horizon_figures = {}
    for h in horizons:
        items = per_horizon.get(h, [])
        total = sum(i[0] for i in items)
        horizon_figures[str(h)] = {
            "n_pairs": total,
            "mae_candidate": _round(sum(i[1] for i in items) / total) if total else None,
            "mae_served": _round(sum(i[2] for i in items) / total) if total else None,
            "coverage_80_candidate": _round(sum(i[0] * i[3] for i in items) / total, 3) if total else None,
            "coverage_80_served": _round(sum(i[0] * i[4] for i in items) / total, 3) if total else None,
        }
    enough = bool(pooled["n_pairs"] >= min_outcomes and pooled["n_people"] >= min_people)
    return {
        "rollout_id": rollout.pk,
        "candidate_release": rollout.candidate_release,
        "since": since.isoformat(),
        "until": until.isoformat(),
        "min_outcomes": min_outcomes,
        "min_people": min_people,
        "horizons": horizon_figures,
        **{k: (_round(v, 4) if isinstance(v, float) else v) for k, v in pooled.items()},
        "difference_interval": _round_pair(pooled["difference_interval"], 2),
        "relative_interval": _round_pair(pooled["relative_interval"], 4),
        "n_shadow_forecasts": int(n_shadow),
        "n_shadow_errors": int(n_shadow_errors),
        "shadow_error_rate": round(n_shadow_errors / n_shadow, 4) if n_shadow else None,
        "enough_evidence": enough,
    }


def _round(value, digits=2):
    return None if value is None or not np.isfinite(value) else round(float(value), digits)


def _round_pair(pair, digits):
    return None if pair is None else [round(float(v), digits) for v in pair]
