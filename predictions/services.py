"""Serving forecasts: validate the request, pick and load the model, predict within a time
bound (the baseline answers when anything goes wrong), store the answer in the prediction log.

Who answers, in order (`predict_with_fallback`, and the batch through `answers_without_model`):
1. the person's own model (stable, canary or pinned), if they have one that can answer;
2. else the population prior alone (variant "population"): people from their first full two
   hours of readings, and anyone whose model failed;
3. else (the prior cannot load in this process) AR2 with population bands (variant "baseline");
4. with less than the two hours without a long gap every model needs (a sensor change, a new
   person): AR2 from the last two readings (variant "short_history") with the bands of the
   person's variability class, judged from their readings of the 7 days before the gap (stored
   ones, or a what-if's own history), pooled bands without such days (`short_history_classes`);
5. with a single reading, or none in the last 30 minutes: 422 saying what is missing.
Answers 2-4 say why in `quality.reason`.

    forecast_for_person(person, *, horizons=None, range_24h=False, history=None, as_of=None,
                        unit=None, source="api") -> PredictionLog
    prediction_payload(log, *, with_outcomes=False) -> dict   (what the API returns)
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from mlmodels.core.coldstart import PopulationForecaster, ShortHistoryForecaster
from mlmodels.core.forecaster import BaselineForecaster, ForecastInputError, NotEnoughReadings
from mlmodels.core.preparation import STEP_NS
from mlmodels.core.schemas import RELEASE_3, load_prior
from mlmodels.core.treatments import KERNEL_MIN, LOGGED_RECENTLY_MIN, Treatments
from mlmodels.core.short_history import GAP_MARGIN_MIN, HISTORY_DAYS, POOLED, ShortHistoryBands, variability
from mlmodels.models import Variant
from mlmodels.recalibration import calibration_info
from mlmodels.storage import RESERVED_FILES, ArtifactIntegrityError, artifact_storage, load_forecaster
from observations.models import Observation
from observations.treatments.services import treatments_between
from observations.units import MG_DL, UNITS, from_mgdl
from observations.validation import ImportRejected, RawReading, implausible_time, validate_readings
from predictions import fastpath, wording
from predictions.cache import forecaster_cache
from predictions.errors import (
    BadForecastRequest,
    BadHistory,
    BadHorizons,
    ForecastUnavailable,
    NoReadings,
    StaleReadings,
    TooFewReadings,
)
from predictions.fastpath import Readings
from predictions.models import PredictionLog, Source
from predictions.selection import choose_model, record_choice

logger = logging.getLogger(__name__)

DEFAULT_HORIZONS = (30, 60, 120)
HORIZON_STEP_MIN = 5
MAX_HORIZON_MIN = 1440
RANGE_24H_STEP_MIN = 15
RANGE_24H = tuple(range(RANGE_24H_STEP_MIN, MAX_HORIZON_MIN + 1, RANGE_24H_STEP_MIN))
# The model looks 120 minutes back; a little more lets the grid anchor and bridge short gaps.
READINGS_LOOKBACK = timedelta(hours=3)
STALE_AFTER_MIN = 30
MAX_ROW_ERRORS_REPORTED = 50


# --- Request validation -----------------------------------------------------------------------


def resolve_horizons(horizons=None, range_24h: bool = False) -> list[int]:
    """The horizons to forecast, validated: [30, 60, 120] by default, or every 15 min for 24 h."""
    if range_24h:
        if horizons is not None:
            raise BadForecastRequest(wording.HORIZONS_AND_RANGE, field="horizons")
        return list(RANGE_24H)
    if horizons is None:
        return list(DEFAULT_HORIZONS)
    if not isinstance(horizons, (list, tuple)) or not horizons:
        raise BadHorizons(wording.BAD_HORIZONS, field="horizons")
    # The count first: everything below is linear, but a body of a million horizons should
    # cost nothing beyond its parsing.
    max_horizons = settings.GLUCAST_FORECAST_MAX_HORIZONS
    if len(horizons) > max_horizons:
        raise BadHorizons(wording.BAD_HORIZONS, field="horizons", max_items=max_horizons)
    bad = [
        h
        for h in horizons
        if isinstance(h, bool)
        or not isinstance(h, int)
        or not (HORIZON_STEP_MIN <= h <= MAX_HORIZON_MIN)
        or h % HORIZON_STEP_MIN
    ]
    if bad:
        raise BadHorizons(
            wording.BAD_HORIZONS, field="horizons", invalid=[_jsonable(h) for h in bad][:20]
        )
    if len(set(horizons)) != len(horizons):
        counts = Counter(horizons)  # linear: list.count per item was quadratic (24 s for 200,000)
        duplicates = sorted(h for h, n in counts.items() if n > 1)
        raise BadHorizons(wording.BAD_HORIZONS, field="horizons", invalid=duplicates[:20])
    return sorted(horizons)


def resolve_unit(unit, person) -> str:
    if unit is None or unit == "":
        return person.preferred_unit if person.preferred_unit in UNITS else MG_DL
    if unit not in UNITS:
        raise BadForecastRequest(wording.BAD_UNIT, field="unit")
    return unit


def parse_moment(value) -> datetime | None:
    """An aware datetime from an ISO 8601 string (or datetime), else None: naive, malformed or
    impossible (month 13). Plausibility is checked by the caller (observations.validation)."""
    if isinstance(value, str):
        try:
            value = parse_datetime(value)
        except ValueError:  # well formed but impossible, e.g. 2026-13-45
            return None
    if not isinstance(value, datetime) or timezone.is_naive(value):
        return None
    try:
        return value.astimezone(dt_timezone.utc)
    except OverflowError:  # year 1 with a positive offset
        return None


def parse_as_of(value) -> datetime | None:
    """The forecast time: aware, and plausible by the same rule as every reading's time."""
    if value is None:
        return None
    parsed = parse_moment(value)
    if parsed is None:
        raise BadForecastRequest(wording.BAD_AS_OF, field="as_of")
    reason = implausible_time(parsed)
    if reason:
        raise BadForecastRequest(f"`as_of`: {reason}.", field="as_of")
    return parsed


HISTORY_FIELDS = {"effective_at", "value", "unit"}
# A history row carrying a treatment (Nightscout's and the apps' names for them) is refused as such.
TREATMENT_ROW_FIELDS = {
    "insulin", "bolus", "basal", "carbs", "carbohydrates", "absolute", "rate", "percent", "eventType",
    "enteredinsulin", "duration", "treatment", "treatments", "meal", "steps",
}


def history_readings(rows, *, as_of: datetime | None = None, tz=dt_timezone.utc) -> Readings:
    """Readings sent with a request, checked by the same rules as every import
    (observations.validation: units and their spellings, the accepted range, "Low"/"High",
    naive times read on the person's clock `tz`, nothing in the future) plus: each row an object
    with only effective_at/value/unit, none after `as_of`.

    Every row is checked and all problems are reported together (row index and what to fix);
    nothing of them is stored.
    """
    if not isinstance(rows, (list, tuple)):
        raise BadHistory(wording.BAD_HISTORY, field="history", rows=[])
    max_rows = settings.GLUCAST_FORECAST_MAX_HISTORY_ROWS
    if len(rows) > max_rows:
        raise BadHistory(wording.HISTORY_TOO_LONG % {"max": max_rows}, field="history")
    problems: dict[int, list[str]] = {}
    raws = []
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            problems.setdefault(index, []).append(str(wording.HISTORY_ROW_SHAPE))
            continue
        treatment_fields = sorted(set(map(str, row)) & TREATMENT_ROW_FIELDS)
        if treatment_fields:
            raise BadHistory(wording.TREATMENTS_NOT_ACCEPTED, field="history",
                             rows=[{"index": index, "errors": [f"{', '.join(treatment_fields)}: "
                                                                f"{wording.TREATMENTS_NOT_ACCEPTED}"]}])
        unknown = set(row) - HISTORY_FIELDS
        if unknown:
            problems.setdefault(index, []).append(
                str(wording.HISTORY_ROW_SHAPE) + f" (unknown: {', '.join(sorted(map(str, unknown)))})"
            )
        raws.append(RawReading(row=index + 1, time=row.get("effective_at"), value=row.get("value"),
                               unit=row.get("unit", MG_DL)))
    try:
        readings = validate_readings(raws, tz=tz)
    except ImportRejected as exc:
        for error in exc.errors:
            field = "effective_at" if error.field == "time" else error.field
            problems.setdefault(error.row - 1, []).append(f"{field}: {error.reason}")
        readings = []
    else:
        for raw, reading in zip(raws, readings):
            if as_of is not None and reading.effective_at > as_of:
                problems.setdefault(raw.row - 1, []).append(str(wording.HISTORY_ROW_FUTURE))
    if problems:
        listed = [{"index": i, "errors": problems[i]} for i in sorted(problems)]
        raise BadHistory(
            wording.BAD_HISTORY,
            field="history",
            rows=listed[:MAX_ROW_ERRORS_REPORTED],
            n_invalid_rows=len(listed),
        )
    return Readings.from_rows(
        [to_ns(r.effective_at) for r in readings],
        [r.value_mg_dl for r in readings],
        [r.at_sensor_limit for r in readings],
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=dt_timezone.utc)


def to_ns(moment: datetime) -> int:
    """An aware datetime as integer UTC epoch nanoseconds (exact, no float rounding)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def from_ns(ns: int) -> pd.Timestamp:
    return pd.Timestamp(int(ns), tz="UTC")


def _readings_queryset(person_id, start, end):
    """The one definition of "a person's usable CGM readings in [start, end]" for serving."""
    return (
        Observation.objects.filter(person_id=person_id)
        .usable()
        .filter(kind=Observation.Kind.CGM)
        .in_range(start, end)
        .order_by("effective_at")
        .values_list("id", "effective_at", "value_mg_dl", "at_sensor_limit")
    )


_SENTINEL_PERSON = -918_273_645
_SENTINEL_START = datetime(1971, 2, 3, 4, 5, 6, tzinfo=dt_timezone.utc)
_SENTINEL_END = datetime(1972, 3, 4, 5, 6, 7, tzinfo=dt_timezone.utc)
_readings_sql: tuple[str, tuple] | None = None


def _compiled_readings_sql() -> tuple[str, tuple]:
    """The readings query compiled once per process (compiling it cost about as much as running
    it on every forecast). The SQL comes from the ORM queryset above, so `usable()` and the other
    rules stay defined in one place; sentinels mark where each request's values go."""
    global _readings_sql
    if _readings_sql is None:
        sql, params = _readings_queryset(_SENTINEL_PERSON, _SENTINEL_START, _SENTINEL_END).query.sql_with_params()
        slots = {_SENTINEL_PERSON: "person", _SENTINEL_START: "start", _SENTINEL_END: "end"}
        # (slot name, None) where a request's value goes, (None, constant) for the rest.
        roles = tuple(
            (slots[p], None) if isinstance(p, (int, datetime)) and not isinstance(p, bool) and p in slots
            else (None, p)
            for p in params
        )
        if sorted(name for name, _ in roles if name) != ["end", "person", "start"]:
            raise RuntimeError(f"unexpected parameters in the readings query: {params!r}")
        _readings_sql = (sql, roles)
    return _readings_sql


def stored_readings(person, start: datetime, end: datetime) -> Readings:
    """The person's usable CGM readings in [start, end] as arrays (one indexed query, no pandas).

    Same rows as observations.readings.readings_frame(person, start=..., end=...).
    """
    sql, roles = _compiled_readings_sql()
    values = {"person": person.pk, "start": start, "end": end}
    params = [values[name] if name else constant for name, constant in roles]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows:
        return Readings.from_rows([], [], [], [])
    ids, moments, values_mg_dl, limits = zip(*rows)
    return Readings.from_rows([to_ns(m) for m in moments], values_mg_dl, limits, ids)


def _jsonable(value):
    return value if isinstance(value, (int, float, str, bool)) or value is None else repr(value)


# --- Model loading and bounded prediction -----------------------------------------------------

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()
_baseline = None
_short_history: dict = {}
_population: tuple | None = None  # (PopulationForecaster | None, why not)
_population_lock = threading.Lock()


def _prediction_executor() -> ThreadPoolExecutor:
    """Threads that run load+predict, so a request can stop waiting after the time bound."""
    global _executor
    if _executor is None:
        with _executor_lock:
            if _executor is None:
                _executor = ThreadPoolExecutor(
                    max_workers=settings.GLUCAST_PREDICT_THREADS,
                    thread_name_prefix="glucast-predict",
                    initializer=single_threaded_numerics,
                )
    return _executor


def single_threaded_numerics() -> None:
    """One forecast is one row: XGBoost's thread pool only costs time here (building a DMatrix
    with all cores took ~3.6 ms instead of 0.35 ms), and the web server already runs requests
    in parallel. XGBoost's global configuration is per thread, so each serving thread sets it."""
    import xgboost

    xgboost.set_config(nthread=1)


def baseline_forecaster():
    """The no-training forecaster that answers when no personal model can (one per process)."""
    global _baseline
    if _baseline is None:
        _baseline = BaselineForecaster()
    return _baseline


def short_history_forecaster(variability_class: str = POOLED):
    """AR2 from the last two readings with the bands of a variability class (one per class and
    process)."""
    forecaster = _short_history.get(variability_class)
    if forecaster is None:
        forecaster = _short_history[variability_class] = ShortHistoryForecaster(variability_class=variability_class)
    return forecaster


def short_history_classes(items, earlier) -> list[str]:
    """The variability class of each (Readings, as_of_ns) item for its short-history bands.

    `earlier[i]`: where item i's readings before the gap are: a person id (their stored readings),
    a Readings (a what-if's own history), or None (pooled bands). The class is read from the
    HISTORY_DAYS before as_of - 2 h (a short history is shorter than 2 hours, so those readings
    lie before its gap); one query for all stored people.
    """
    bands = ShortHistoryBands.load()
    margin = GAP_MARGIN_MIN * 60 * 10**9

    def before_of(i):
        readings, as_of_ns = items[i]
        end = as_of_ns if as_of_ns is not None else (int(readings.times_ns[-1]) if len(readings) else 0)
        return int(end) - margin

    stored = {i: int(e) for i, e in enumerate(earlier) if isinstance(e, (int, np.integer)) and not isinstance(e, bool)}
    arrays: dict[int, tuple] = {}
    if stored:
        ends = [before_of(i) for i in stored]
        start = from_ns(min(ends) - int(HISTORY_DAYS * 86400 * 10**9))
        rows = (
            Observation.objects.filter(person_id__in=set(stored.values()), kind=Observation.Kind.CGM).usable()
            .filter(effective_at__gte=start, effective_at__lt=from_ns(max(ends)))
            .order_by("person_id", "effective_at").values_list("person_id", "effective_at", "value_mg_dl")
        )
        by_person: dict[int, list] = {}
        for pid, at, value in rows:
            by_person.setdefault(pid, []).append((to_ns(at), float(value)))
        for pid, pairs in by_person.items():
            arrays[pid] = (np.array([p[0] for p in pairs], dtype=np.int64), np.array([p[1] for p in pairs]))
    out = []
    for i, source in enumerate(earlier):
        if i in stored:
            times_values = arrays.get(stored[i])
        elif isinstance(source, Readings):
            times_values = (source.times_ns, source.values)
        else:
            times_values = None
        if times_values is None:
            out.append(POOLED)
            continue
        out.append(bands.classify(*variability(times_values[0], times_values[1], before_of(i))))
    return out


def population_forecaster():
    """The population prior served alone (loaded once per process), or None where it cannot be
    loaded (the reason is logged once; AR2 then answers people without a model) or is switched
    off (GLUCAST_POPULATION_PRIOR)."""
    global _population
    if not settings.GLUCAST_POPULATION_PRIOR:
        return None
    if _population is None:
        with _population_lock:
            if _population is None:
                try:
                    _population = (PopulationForecaster(load_prior()), "")
                except Exception as exc:  # noqa: BLE001 - serving goes on with AR2
                    logger.error("The population prior cannot serve in this process: %s", exc)
                    _population = (None, f"{exc.__class__.__name__}: {exc}")
    return _population[0]


def reset_population_forecaster() -> None:
    """Forget the loaded prior (tests; a process that ships a new prior restarts anyway)."""
    global _population
    with _population_lock:
        _population = None


def artifact_nbytes(mlmodel) -> int:
    """Approximate memory of a loaded model: the size of its stored model files (measured on
    100 loaded blend models: 0.40 MB resident each for 0.37 MB of files)."""
    storage = artifact_storage()
    total = 0
    for name in mlmodel.artifact_manifest or {}:
        if name in RESERVED_FILES:
            continue
        try:
            total += storage.size(f"{mlmodel.storage_path}/{name}")
        except (OSError, NotImplementedError):
            total += 1 << 20
    return max(total, 1 << 16)


def cache_key(mlmodel) -> tuple:
    return (mlmodel.person_id, mlmodel.version, mlmodel.artifact_sha256)


def cached_forecaster(mlmodel):
    """The model's loaded forecaster from the per-process cache (loads and verifies on a miss)."""
    forecaster, _hit = forecaster_cache().get_or_load(
        cache_key(mlmodel),
        lambda: load_forecaster(mlmodel),
        size_of=lambda _f: artifact_nbytes(mlmodel),
    )
    return forecaster


def predict_timeout_s() -> float:
    return float(settings.GLUCAST_PREDICT_TIMEOUT_S)


@dataclass
class Answer:
    forecast: object
    ml_model: object | None
    variant: str
    version: str
    algorithm: str
    fallback_reason: str = ""
    reason: str = ""  # why no personal model answered (quality.reason), for population/short history
    uses_treatments: bool = False  # a release-3 model whose blend reads the person's treatments
    # Which calibration the bands used (mlmodels.recalibration.calibration_info); None: training-time.
    calibration: dict | None = None


def model_calibration(mlmodel, forecaster) -> dict:
    """The calibration a stored model's bands carry, read from its loaded (cached) forecaster."""
    return calibration_info(mlmodel, getattr(getattr(forecaster, "conformal", None), "personal", None))


def fallback_reason_for(exc: BaseException) -> str:
    if isinstance(exc, FutureTimeout):
        return "timeout"
    if isinstance(exc, ArtifactIntegrityError):
        return "artifact_integrity"
    name = exc.__class__.__name__
    if name == "FeatureSchemaMismatch":
        return "feature_schema_mismatch"
    if name == "NotEnoughReadings":
        return "not_enough_readings_for_model"
    return "model_error"


def describe(forecaster, mlmodel=None) -> tuple[str, str]:
    """(version, algorithm) for the log: the registry's when a stored model answered."""
    if mlmodel is not None:
        return mlmodel.version, mlmodel.algorithm or _meta(forecaster).get("algorithm", "")
    meta = _meta(forecaster)
    return str(meta.get("version") or "baseline"), str(meta.get("algorithm") or "baseline")


def _meta(forecaster) -> dict:
    metadata = getattr(forecaster, "metadata", None)
    try:
        return dict(metadata()) if callable(metadata) else dict(metadata or {})
    except Exception:  # noqa: BLE001 - description only
        return {}


# How far back recorded treatments can shape a forecast (the slowest insulin curve, and the
# "anything logged in the last 24 h" input); what provenance lists: the last 12 hours.
TREATMENT_LOOKBACK = timedelta(minutes=max(KERNEL_MIN, LOGGED_RECENTLY_MIN))
TREATMENT_PROVENANCE_LOOKBACK = timedelta(minutes=KERNEL_MIN)
MAX_PROVENANCE_TREATMENTS = 100
# Names in provenance: what was recorded, in plain words (never the pumps' own vocabulary).
TREATMENT_LABELS = {
    "bolus": "insulin", "basal_rate": "basal_rate", "temp_basal": "temporary_basal_rate",
    "carbs": "carbohydrates", "steps": "steps",
}
UNUSED_INSULIN_KINDS = ("intermediate", "long_acting")


def is_release_3(mlmodel) -> bool:
    return mlmodel is not None and int(mlmodel.version_major) == RELEASE_3


def recorded_treatments(person, mlmodel, until: datetime) -> pd.DataFrame | None:
    """The person's recorded treatments that can shape a release-3 forecast made at `until`
    (withdrawn ones never; only those at or before `until`); None for other models, which read
    none (so serving a release-2 person costs no query)."""
    if not is_release_3(mlmodel):
        return None
    return treatments_between(person=person, start=until - TREATMENT_LOOKBACK, end=until)


def treatment_provenance(frame: pd.DataFrame | None, forecast_time: datetime) -> list[dict]:
    """What provenance lists: kind, time, amount and unit of the recorded treatments in the 12
    hours before the forecast that its inputs read (heart rate and long-acting insulin are not
    inputs), newest first, at most MAX_PROVENANCE_TREATMENTS."""
    if frame is None or frame.empty:
        return []
    since = pd.Timestamp(forecast_time - TREATMENT_PROVENANCE_LOOKBACK)
    used = frame[frame["kind"].isin(list(TREATMENT_LABELS)) & ~frame["insulin_kind"].isin(UNUSED_INSULIN_KINDS)
                 & (frame["time"] <= pd.Timestamp(forecast_time))
                 & ((frame["time"] >= since) | (frame["kind"] == "basal_rate"))]
    used = used.iloc[::-1].head(MAX_PROVENANCE_TREATMENTS)
    return [
        {"kind": TREATMENT_LABELS[row.kind], "time": _iso(row.time), "amount": round(float(row.amount), 3),
         "unit": str(row.unit),
         **({"duration_min": round(float(row.duration_min), 1)} if np.isfinite(row.duration_min) else {})}
        for row in used.itertuples()
    ]


def treatment_quality(frame: pd.DataFrame | None, forecast_time: datetime, *, expected: bool) -> dict:
    """`quality.treatments`: whether the model uses them, how many were recorded in the last
    GLUCAST_TREATMENTS_EXPECTED_WITHIN_H hours, and `missing` when it uses them and none were."""
    hours = float(settings.GLUCAST_TREATMENTS_EXPECTED_WITHIN_H)
    recent = 0
    if frame is not None and not frame.empty:
        since = pd.Timestamp(forecast_time - timedelta(hours=hours))
        insulin_or_carbs = frame["kind"].isin(["bolus", "temp_basal", "carbs"])
        recent = int((insulin_or_carbs & (frame["time"] >= since) & (frame["time"] <= pd.Timestamp(forecast_time))).sum())
    out = {"expected": bool(expected), "recorded_within_hours": hours, "recorded": recent,
           "missing": bool(expected and recent == 0)}
    if out["missing"]:
        out["note"] = str(wording.TREATMENTS_MISSING % {"hours": f"{hours:g}"})
    return out


def predict_with_fallback(
    person, mlmodel, variant, readings: Readings, *, as_of, horizons, earlier=None, treatments=None
) -> Answer:
    """Predict with the person's model within the time bound; the baseline on any failure.

    `earlier`: where readings before a gap are, for short-history bands (short_history_classes):
    default the person's stored readings.

    Readings that cannot support any forecast (too few in the window) give TooFewReadings; the
    baseline is still tried first in case it needs less than the model. `treatments`: the
    person's recorded treatments (mlmodels.core.treatments.Treatments) for a release-3 model.
    """
    tz = person.time_zone
    as_of_ns = to_ns(as_of)
    fallback_reason = ""
    failure = None
    if mlmodel is not None:
        def run():
            forecaster = cached_forecaster(mlmodel)
            uses = bool(getattr(forecaster, "uses_treatments", False))
            forecast = fastpath.predict(
                forecaster, readings, as_of_ns=as_of_ns, horizons=horizons, tz=tz, treatments=treatments
            )
            return forecast, uses, model_calibration(mlmodel, forecaster)

        future = _prediction_executor().submit(run)
        try:
            forecast, uses, calibration = future.result(timeout=predict_timeout_s())
            return Answer(forecast, mlmodel, variant, mlmodel.version, mlmodel.algorithm or "",
                          uses_treatments=uses, calibration=calibration)
        except Exception as exc:  # noqa: BLE001 - never a 500: the baseline answers instead
            future.cancel()
            failure = exc
            fallback_reason = f"{fallback_reason_for(exc)}: model {mlmodel.version}"
    try:
        answer = answers_without_model(
            [(readings, as_of_ns)], tz=tz, horizons=horizons, fallback_reason=fallback_reason,
            earlier=[person.pk if earlier is None else earlier],
        )[0]
    except Exception as exc:
        logger.exception("Neither the prior nor the baseline could forecast for person %s", person.pk)
        raise ForecastUnavailable(wording.FORECAST_UNAVAILABLE) from exc
    if isinstance(answer, ForecastInputError):
        raise TooFewReadings(wording.TOO_FEW_READINGS % {"detail": str(answer)}) from answer
    if failure is not None:
        reason = fallback_reason_for(failure)
        forecaster_cache().count_fallback(reason)
        # A window too short for the model is an expected moment (a sensor change), not a fault.
        log = logger.info if isinstance(failure, NotEnoughReadings) else logger.error
        log(
            "Forecast for person %s answered by %s (%s) instead of model %s: %s: %s",
            person.pk, answer.variant, reason, mlmodel.version, failure.__class__.__name__, str(failure)[:300],
            exc_info=failure if reason == "model_error" else None,
        )
    return answer


def _reason_population(fallback_reason: str) -> str:
    if fallback_reason:
        return f"population: the personal model could not answer ({fallback_reason}); forecast from the population model"
    return (
        "population: no personal model yet (one is trained from 1 day of readings); forecast from the population "
        "model learned from many people, with wider ranges"
    )


def _reason_short_history(forecast, variability_class: str = POOLED) -> str:
    minutes = int(round((forecast.window_end - forecast.window_start) / pd.Timedelta(minutes=1)))
    return (
        f"short_history: only {forecast.n_readings} readings over the {minutes} minutes since the last gap longer "
        "than 20 minutes; a full forecast needs 120 minutes, so this one follows the trend of the last two "
        f"readings (AR2) with wider ranges: {ShortHistoryBands.load().describe(variability_class)}"
    )


def answers_without_model(items, *, tz: str, horizons, fallback_reason: str = "", earlier=None) -> list:
    """An Answer (or the ForecastInputError saying why none) per (Readings, as_of_ns) item, for
    people no personal model answers: the population prior, else AR2, and AR2 from the last two
    readings where the full window is missing (module docstring). One model call per kind (and
    per variability class of the short-history answers). `earlier`: per item, where its readings
    before a gap are (short_history_classes); None: pooled short-history bands for all."""
    primary, variant = population_forecaster(), Variant.POPULATION
    if primary is None:
        primary, variant = baseline_forecaster(), Variant.BASELINE
    try:
        forecasts = fastpath.predict_many(primary, items, horizons=horizons, tz=tz)
    except Exception as exc:  # noqa: BLE001 - a prior failing at run time: AR2 answers
        if variant == Variant.BASELINE:
            raise
        logger.exception("The population prior failed for %d forecast(s); the baseline answers", len(items))
        forecaster_cache().count_fallback("population_error")
        fallback_reason = fallback_reason or f"population_error: {exc.__class__.__name__}"
        primary, variant = baseline_forecaster(), Variant.BASELINE
        forecasts = fastpath.predict_many(primary, items, horizons=horizons, tz=tz)
    version, algorithm = describe(primary)
    if variant == Variant.POPULATION:
        version, algorithm = primary.version, "population_prior"
    out: list = []
    short = []
    for i, forecast in enumerate(forecasts):
        if isinstance(forecast, NotEnoughReadings):
            short.append(i)
            out.append(forecast)
        elif isinstance(forecast, ForecastInputError):
            out.append(forecast)
        else:
            reason = _reason_population(fallback_reason) if variant == Variant.POPULATION else ""
            out.append(Answer(forecast, None, variant, version, algorithm, fallback_reason, reason))
    if short:
        classes = short_history_classes(
            [items[i] for i in short], [None] * len(short) if earlier is None else [earlier[i] for i in short]
        )
        for variability_class in sorted(set(classes)):
            group = [i for i, c in zip(short, classes) if c == variability_class]
            shorts = fastpath.predict_many(
                short_history_forecaster(variability_class), [items[i] for i in group], horizons=horizons, tz=tz,
                window=fastpath.short_input_window,
            )
            for i, forecast in zip(group, shorts):
                if not isinstance(forecast, ForecastInputError):
                    out[i] = Answer(
                        forecast, None, Variant.SHORT_HISTORY, "short_history", "ar2_short_history",
                        fallback_reason, _reason_short_history(forecast, variability_class),
                    )
                else:
                    out[i] = forecast
    return out


# --- The service ------------------------------------------------------------------------------


def check_fresh(readings: Readings, as_of: datetime) -> int:
    """The last reading's time (ns), or NoReadings / StaleReadings (422) saying what to do."""
    if readings.empty:
        raise NoReadings(wording.NO_READINGS)
    last_ns = int(readings.times_ns[-1])
    age_min = (to_ns(as_of) - last_ns) / 60e9
    if age_min > STALE_AFTER_MIN:
        last = _iso(from_ns(last_ns))
        raise StaleReadings(
            wording.STALE_READINGS % {"last": last, "age": int(age_min), "limit": STALE_AFTER_MIN},
            last_reading_at=last,
        )
    return last_ns


def forecast_for_person(
    person,
    *,
    horizons=None,
    range_24h: bool = False,
    history=None,
    as_of=None,
    unit=None,
    source: str = Source.API,
) -> PredictionLog:
    """Forecast the person's glucose and store the answer in the log (returned, saved).

    `history`: readings [{"effective_at", "value", "unit"}] to use INSTEAD of the stored ones
    (stored nowhere). `as_of`: forecast time (default now; with `history`, its last reading).
    Raises a ForecastError subclass (400/422) for requests that cannot be answered as asked.
    """
    started = time.perf_counter()
    horizons = resolve_horizons(horizons, range_24h)
    unit = resolve_unit(unit, person)
    as_of = parse_as_of(as_of)
    issued_at = timezone.now()
    earlier = None  # the stored readings
    if history is not None:
        readings = history_readings(history, as_of=as_of, tz=person.tz)
        if readings.empty:
            raise NoReadings(wording.NO_READINGS)
        forecast_time = as_of or from_ns(readings.times_ns[-1]).to_pydatetime()
        earlier = readings  # a short history's band class comes from the sent days, not the store
        # Only what the stored path would fetch, so both give the same answer for the same data.
        readings = readings.since(to_ns(forecast_time - READINGS_LOOKBACK))
    else:
        forecast_time = as_of or issued_at
        readings = stored_readings(person, forecast_time - READINGS_LOOKBACK, forecast_time)
    last_reading_ns = check_fresh(readings, forecast_time)

    choice = choose_model(person)
    mlmodel, variant = choice
    # Release 3 reads the person's RECORDED treatments up to the forecast time, never any sent
    # with the request (forecast_arguments and history_readings refuse those with a 400).
    recorded = recorded_treatments(person, mlmodel, forecast_time)
    answer = predict_with_fallback(
        person, mlmodel, variant, readings, as_of=forecast_time, horizons=horizons, earlier=earlier,
        treatments=None if recorded is None else Treatments.from_frame(recorded),
    )
    log = build_log(
        person,
        answer,
        readings,
        horizons=horizons,
        unit=unit,
        issued_at=issued_at,
        forecast_time=forecast_time,
        last_reading_ns=last_reading_ns,
        source=source,
        from_history=history is not None,
        treatments=recorded,
    )
    record_choice(log, choice)
    log.latency_ms = round((time.perf_counter() - started) * 1000, 2)
    store_log(log)
    return log


def store_log(log: PredictionLog) -> None:
    """Insert a forecast's log row with an asynchronous commit.

    A synchronous commit waits for PostgreSQL to flush its write-ahead log to disk: measured on
    this machine 4.0 ms p50 against 0.2 ms asynchronously (bench/forecast_latency.py, docs/figures.md), the
    largest single cost of a warm forecast. With `synchronous_commit` off for this transaction
    only (SET LOCAL: no other write of the request or the connection is affected) the row is
    committed and visible at once, and durable within 3 x wal_writer_delay (0.6 s by default):
    if the DATABASE SERVER crashes, the forecasts logged in that last moment can be lost; it
    never corrupts anything and an application crash loses nothing. docs/figures.md ("Forecast latency") says so.
    """
    if connection.in_atomic_block:  # inside the request's transaction: no savepoint needed
        _insert_without_waiting_for_disk(log)
        return
    with transaction.atomic():
        _insert_without_waiting_for_disk(log)


def _insert_without_waiting_for_disk(log: PredictionLog) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit TO off")
    log.save()


def _iso(moment) -> str:
    text = pd.Timestamp(moment).tz_convert("UTC").isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


OUTCOME_MATCH_MIN = 5
LIVE_TOLERANCE_NS = 5 * 60 * 10**9


def build_log(
    person,
    answer: Answer,
    readings: Readings,
    *,
    horizons,
    unit,
    issued_at,
    forecast_time,
    last_reading_ns: int,
    source,
    from_history,
    treatments: pd.DataFrame | None = None,
) -> PredictionLog:
    """An unsaved PredictionLog from a forecast (the batch path bulk-creates these).

    `treatments`: the person's recorded treatments read for a release-3 model (recorded_treatments):
    provenance lists those that shaped the answer, quality says whether any were expected and missing."""
    forecast = answer.forecast
    points = [
        {
            "horizon_min": int(point["horizon_min"]),
            "time": _iso(point["time"]),
            "value_mg_dl": round(float(point["value"]), 1),
            "lower_80_mg_dl": round(float(point["lower_80"]), 1),
            "upper_80_mg_dl": round(float(point["upper_80"]), 1),
            "lower_95_mg_dl": round(float(point["lower_95"]), 1),
            "upper_95_mg_dl": round(float(point["upper_95"]), 1),
            "actual_mg_dl": None,
            "actual_at": None,
            "matched_at": None,
        }
        for point in forecast.points
    ]
    window_start_ns = to_ns(forecast.window_start.to_pydatetime())
    window_end_ns = to_ns(forecast.window_end.to_pydatetime())
    # The readings that reached the model: those inside its window (the grid rounds times to
    # 5-minute slots, so include readings up to half a step before the window's start).
    inside = (readings.times_ns >= window_start_ns - STEP_NS // 2) & (readings.times_ns <= window_end_ns)
    if readings.ids is not None and not from_history:
        observations = [int(i) for i in readings.ids[inside]]
    else:
        observations = [_iso(from_ns(t)) for t in readings.times_ns[inside]]
    provenance = {
        "window_start": _iso(forecast.window_start),
        "window_end": _iso(forecast.window_end),
        "n_readings": int(forecast.n_readings),
        "observations": observations,
        "top_features": [
            {"feature": str(item["feature"]), "contribution": round(float(item["contribution"]), 2)}
            for item in (forecast.top_features or [])
        ],
    }
    quality = {
        "gaps_in_window": int(forecast.gaps_in_window),
        "data_age_min": round(max((to_ns(forecast_time) - last_reading_ns) / 60e9, 0.0), 1),
    }
    if answer.reason:
        quality["reason"] = answer.reason
    if is_release_3(answer.ml_model):
        if answer.uses_treatments:
            provenance["treatments"] = treatment_provenance(treatments, forecast_time)
        quality["treatments"] = treatment_quality(treatments, forecast_time, expected=answer.uses_treatments)
    # Which calibration the bands used (training-time or the person's own outcomes).
    provenance["calibration"] = answer.calibration or calibration_info(answer.ml_model)
    # Scored only when made live from stored readings: a what-if has no real outcome, and a
    # replay of the past (as_of long before now) may lie inside the model's own training data,
    # which would flatter its realized accuracy. Looked up from when the first point can be.
    live = abs(to_ns(issued_at) - to_ns(forecast_time)) <= LIVE_TOLERANCE_NS
    pending = not from_history and live and bool(points)
    first_due = (
        forecast.points[0]["time"].to_pydatetime() + timedelta(minutes=OUTCOME_MATCH_MIN) if pending else None
    )
    return PredictionLog(
        person=person,
        ml_model=answer.ml_model,
        model_version=answer.version,
        variant=answer.variant,
        algorithm=answer.algorithm,
        source=source,
        from_history=from_history,
        issued_at=issued_at,
        as_of=forecast.as_of.to_pydatetime(),
        unit=unit,
        horizons=list(horizons),
        points=points,
        provenance=provenance,
        quality=quality,
        fallback_reason=answer.fallback_reason[:255],
        outcome_pending=pending,
        outcomes_next_at=first_due,
    )


# --- Output -----------------------------------------------------------------------------------


def _in_unit(value_mg_dl, unit):
    return None if value_mg_dl is None else from_mgdl(value_mg_dl, unit)


def prediction_payload(log: PredictionLog, *, with_outcomes: bool = False) -> dict:
    """The API answer for a logged forecast, values in the log's unit."""
    unit = log.unit
    points = []
    for point in log.points:
        item = {
            "horizon_min": point["horizon_min"],
            "time": point["time"],
            "value": _in_unit(point["value_mg_dl"], unit),
            "lower_80": _in_unit(point["lower_80_mg_dl"], unit),
            "upper_80": _in_unit(point["upper_80_mg_dl"], unit),
            "lower_95": _in_unit(point["lower_95_mg_dl"], unit),
            "upper_95": _in_unit(point["upper_95_mg_dl"], unit),
        }
        if with_outcomes:
            item["actual"] = _in_unit(point.get("actual_mg_dl"), unit)
            item["actual_at"] = point.get("actual_at")
        points.append(item)
    payload = {
        "prediction_id": log.pk,
        "issued_at": _iso(log.issued_at),
        "as_of": _iso(log.as_of),
        "unit": unit,
        "model": {
            "type": log.model_type,
            "version": log.model_version,
            "variant": log.variant,
            "algorithm": log.algorithm,
            "calibration": (log.provenance or {}).get("calibration") or calibration_info(None),
        },
        "points": points,
        "provenance": {k: v for k, v in (log.provenance or {}).items() if k != "calibration"},
        "quality": log.quality,
        "disclaimer": str(wording.DISCLAIMER),
    }
    if with_outcomes:
        payload["source"] = log.source
    return payload
