"""Batch forecasts: everyone with fresh data, a few queries and one model call per model.

    predict_batch(persons=None, *, now=None, horizons=None) -> BatchResult

Readings of every person come from ONE query (the last 3 hours), models from one query
(predictions.selection.choose_models). People are grouped by the model artifact that serves
them (its SHA-256; identical artifacts are the same model) and their time zone, and each group
is forecast with a single `predict_many` call. The logs are stored with bulk_create.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import timedelta

import xgboost
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from mlmodels.core.forecaster import ForecastInputError
from mlmodels.core.treatments import Treatments
from mlmodels.storage import load_forecaster
from observations.models import Observation
from persons.erasure import erasure_marks, not_erased
from persons.models import Person
from predictions import fastpath
from predictions.cache import forecaster_cache
from predictions.fastpath import Readings
from predictions.models import PredictionLog, Source
from predictions.selection import choose_models, record_choice
from predictions.services import (
    DEFAULT_HORIZONS,
    READINGS_LOOKBACK,
    STALE_AFTER_MIN,
    Answer,
    answers_without_model,
    model_calibration,
    artifact_nbytes,
    build_log,
    fallback_reason_for,
    is_release_3,
    recorded_treatments,
    to_ns,
)

logger = logging.getLogger(__name__)

BULK_CREATE_BATCH = 500


@dataclass
class BatchResult:
    n_people: int = 0
    n_fresh: int = 0
    n_unchanged: int = 0
    n_forecasts: int = 0
    n_too_few_readings: int = 0
    n_fallbacks: int = 0
    n_groups: int = 0
    n_model_loads: int = 0
    seconds: float = 0.0
    timings: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def _readings_by_person(person_ids, start, end) -> dict[int, Readings]:
    """Every person's readings in [start, end] from ONE query, as arrays per person."""
    query = (
        Observation.objects.filter(kind=Observation.Kind.CGM, effective_at__gte=start, effective_at__lte=end)
        .usable()
        .order_by("person_id", "effective_at")
        .values_list("person_id", "id", "effective_at", "value_mg_dl", "at_sensor_limit")
    )
    if person_ids is not None:
        query = query.filter(person_id__in=person_ids)
    grouped: dict[int, list] = defaultdict(list)
    for row in query.iterator(chunk_size=10_000):
        grouped[row[0]].append(row)
    out = {}
    for pid, rows in grouped.items():
        _, ids, moments, values, limits = zip(*rows)
        out[pid] = Readings.from_rows([to_ns(m) for m in moments], values, limits, ids)
    return out


def _last_batch_inputs(person_ids, *, since, until) -> dict[int, int]:
    """{person_id: time (ns) of the last reading used by their latest batch forecast in [since, until]}.

    Bounded by `until` (the batch's now) so a batch at a past moment (a replay) is not taken for
    a repeat by forecasts issued after that moment."""
    rows = (
        PredictionLog.objects.filter(
            person_id__in=person_ids, source=Source.BATCH, issued_at__gte=since, issued_at__lte=until
        )
        .values("person_id")
        .annotate(last_as_of=Max("as_of"))
        .values_list("person_id", "last_as_of")
    )
    return {pid: to_ns(as_of) for pid, as_of in rows}


def _group_forecaster(mlmodel):
    """A loaded forecaster for a group, cached by artifact digest (identical bytes, one model)."""
    key = (("artifact", mlmodel.artifact_sha256), mlmodel.version, mlmodel.artifact_sha256)
    forecaster, hit = forecaster_cache().get_or_load(
        key, lambda: load_forecaster(mlmodel), size_of=lambda _f: artifact_nbytes(mlmodel)
    )
    return forecaster, hit


def predict_batch(persons=None, *, now=None, horizons=None) -> BatchResult:
    """Forecast every person (or the given ones) whose last reading is at most 30 minutes old."""
    started = time.perf_counter()
    result = BatchResult()
    now = now or timezone.now()
    horizons = list(horizons or DEFAULT_HORIZONS)
    person_ids = None if persons is None else [getattr(p, "pk", p) for p in persons]

    t = time.perf_counter()
    # Before the readings are read: a person whose data is deleted meanwhile is left out of the
    # stored forecasts (checked again in the write's transaction, persons/erasure.py).
    marks = erasure_marks(person_ids) if person_ids is not None else dict(Person.objects.values_list("id", "erasures"))
    readings = _readings_by_person(person_ids, now - READINGS_LOOKBACK, now)
    fresh_after_ns = to_ns(now - timedelta(minutes=STALE_AFTER_MIN))
    fresh = {pid: r for pid, r in readings.items() if r.times_ns[-1] >= fresh_after_ns}
    # Nothing new since this person's last batch forecast: the same input would give the same
    # forecast again (and be scored twice), so they wait for their next reading.
    already = _last_batch_inputs(list(fresh), since=now - timedelta(minutes=STALE_AFTER_MIN + 5), until=now)
    unchanged = [pid for pid, r in fresh.items() if pid in already and r.times_ns[-1] <= already[pid]]
    for pid in unchanged:
        del fresh[pid]
    result.n_unchanged = len(unchanged)
    people = Person.objects.filter(pk__in=list(fresh)).only("id", "time_zone", "preferred_unit")
    people = {p.pk: p for p in people}
    result.n_people = len(person_ids) if person_ids is not None else Person.objects.count()
    result.n_fresh = len(fresh)
    choices = choose_models(list(fresh))
    result.timings["load_data_s"] = round(time.perf_counter() - t, 3)

    groups: dict[tuple, list[int]] = defaultdict(list)
    for pid in fresh:
        mlmodel, _variant = choices[pid]
        groups[(mlmodel.artifact_sha256 if mlmodel else None, people[pid].time_zone)].append(pid)
    result.n_groups = len(groups)

    # Release 3: each such person's recorded treatments (one query each; nobody else pays).
    recorded = {pid: recorded_treatments(people[pid], choices[pid][0], now) for pid in fresh
                if is_release_3(choices[pid][0])}

    t = time.perf_counter()
    logs: list[PredictionLog] = []
    for (sha, tz), pids in groups.items():
        with xgboost.config_context(nthread=1):  # see services.single_threaded_numerics
            answers = _predict_group(pids, sha, tz, choices, fresh, now, horizons, result, recorded)
        for pid, answer in answers:
            if answer is None:
                continue
            person = people[pid]
            log = build_log(
                person,
                answer,
                fresh[pid],
                horizons=horizons,
                unit=person.preferred_unit,
                issued_at=now,
                forecast_time=now,
                last_reading_ns=int(fresh[pid].times_ns[-1]),
                source=Source.BATCH,
                from_history=False,
                treatments=recorded.get(pid),
            )
            record_choice(log, choices[pid])
            logs.append(log)
    result.timings["predict_s"] = round(time.perf_counter() - t, 3)

    t = time.perf_counter()
    per_log_ms = round(1000 * (time.perf_counter() - started) / max(len(logs), 1), 3)
    for log in logs:
        log.latency_ms = per_log_ms
    with transaction.atomic():
        current = not_erased({log.person_id: marks.get(log.person_id, -1) for log in logs})
        logs = [log for log in logs if log.person_id in current]
        PredictionLog.objects.bulk_create(logs, batch_size=BULK_CREATE_BATCH)
    result.timings["store_s"] = round(time.perf_counter() - t, 3)
    result.n_forecasts = len(logs)
    result.seconds = round(time.perf_counter() - started, 3)
    logger.info("Batch forecasts: %s", result.as_dict())
    return result


def _predict_group(pids, sha, tz, choices, readings, now, horizons, result, recorded=None) -> list[tuple[int, Answer | None]]:
    now_ns = to_ns(now)
    items = [(readings[pid], now_ns) for pid in pids]
    fallback_reason = ""
    if sha is not None:
        mlmodel = choices[pids[0]][0]
        try:
            forecaster, hit = _group_forecaster(mlmodel)
            result.n_model_loads += 0 if hit else 1
            uses = bool(getattr(forecaster, "uses_treatments", False))
            if recorded and pids[0] in recorded:
                # A release-3 artifact is one person's: each person with their own records.
                forecasts = [
                    fastpath.predict_many(forecaster, [item], horizons=horizons, tz=tz,
                                          treatments=Treatments.from_frame(recorded.get(pid)))[0]
                    for pid, item in zip(pids, items)
                ]
            else:
                forecasts = fastpath.predict_many(forecaster, items, horizons=horizons, tz=tz)
            out, short = [], []
            for pid, forecast in zip(pids, forecasts):
                model, variant = choices[pid]
                if isinstance(forecast, ForecastInputError):
                    short.append(pid)  # e.g. a sensor change: the short-history answer below
                else:
                    out.append((pid, Answer(forecast, model, variant, model.version, model.algorithm or "",
                                            uses_treatments=uses,
                                            calibration=model_calibration(model, forecaster))))
            if short:
                out += _without_model(
                    short, readings, now_ns, tz, horizons, result,
                    fallback_reason=f"not_enough_readings_for_model: model {mlmodel.version}",
                )
            return out
        except Exception as exc:  # noqa: BLE001 - the population prior or baseline serves the group instead
            reason = fallback_reason_for(exc)
            forecaster_cache().count_fallback(reason)
            logger.error(
                "Batch: model %s (%d people) failed (%s), the population prior or baseline answers: %s",
                mlmodel.version, len(pids), reason, exc,
            )
            fallback_reason = f"{reason}: model {mlmodel.version}"
            result.n_fallbacks += len(pids)
    return _without_model(pids, readings, now_ns, tz, horizons, result, fallback_reason=fallback_reason)


def _without_model(pids, readings, now_ns, tz, horizons, result, *, fallback_reason: str) -> list:
    """Population prior, AR2 or short-history answers for people no personal model answers."""
    items = [(readings[pid], now_ns) for pid in pids]
    answers = answers_without_model(items, tz=tz, horizons=horizons, fallback_reason=fallback_reason,
                                    earlier=list(pids))
    out = []
    for pid, answer in zip(pids, answers):
        if isinstance(answer, ForecastInputError):
            result.n_too_few_readings += 1
            out.append((pid, None))
        else:
            out.append((pid, answer))
    return out
