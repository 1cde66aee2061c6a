"""When a serving version's bands stop saying the truth, start a PATCH (run after the outcome
task): realized 80% coverage of its own matched points over the last RECALIBRATION_WINDOW, when
it lies outside 80% ± GLUCAST_RECALIBRATE_COVERAGE_TOLERANCE with at least
GLUCAST_RECALIBRATE_MIN_OUTCOMES points, gives band scale factors
(mlmodels.core.recalibration) and a recalibration job (mlmodels.recalibration).

Why 0.07 by default: with 200 matched points the standard error of a realized 80% coverage is
about 0.03 (points of one person are correlated, so more in practice); 0.07 keeps noise from
patching a calibrated model while catching the drift seen on real people (74% for a nominal 80%
one week after training on Broll, conformal.py). Shadow forecasts are never used: a candidate is
judged as it is, not patched mid-comparison.

    recalibrate_drifted(now=None) -> dict

Per-person online calibration (docs/bands.md) runs beside it after the outcome task: for the
version that served each person's latest live forecast, at most once per
GLUCAST_PERSONAL_BANDS_EVERY_HOURS and once GLUCAST_PERSONAL_BANDS_MIN_OUTCOMES new outcomes are
matched, the person's outcomes of that point model (every PATCH of its MAJOR.MINOR) over the last
two weeks give per-horizon, per-range factors (mlmodels.core.personal_bands) and a calibration
job that stores them as the next PATCH (kind "personal"). A version made so is not also patched
by the drift rule: its successor is the next personal calibration.

    calibrate_personal_bands(now=None) -> dict
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta

import numpy as np
from django.conf import settings
from django.db import connection
from django.utils import timezone

from mlmodels.core.personal_bands import WINDOW_DAYS, applied_factors, personal_factors
from mlmodels.core.recalibration import band_scale_factors
from mlmodels.models import MLModel, ModelStatus
from mlmodels.recalibration import PERSONAL_CALIBRATION, personal_calibration_of, request_recalibration
from predictions.selectors import matched_points_sql

logger = logging.getLogger(__name__)

RECALIBRATION_WINDOW = timedelta(days=7)
NOMINAL_80 = 0.80
SHORT_HORIZONS = list(range(5, 121, 5))


def recalibrate_drifted(now=None) -> dict:
    now = now or timezone.now()
    since = now - RECALIBRATION_WINDOW
    tolerance = float(settings.GLUCAST_RECALIBRATE_COVERAGE_TOLERANCE)
    min_outcomes = int(settings.GLUCAST_RECALIBRATE_MIN_OUTCOMES)
    where = "l.issued_at >= %s AND l.ml_model_id IS NOT NULL AND l.source <> 'shadow'"
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT m.ml_model_id, count(*), avg((m.actual BETWEEN m.lower_80 AND m.upper_80)::int)
              FROM ({matched_points_sql(where)}) m
             WHERE m.model_version = (SELECT v.version FROM {MLModel._meta.db_table} v WHERE v.id = m.ml_model_id)
             GROUP BY 1 HAVING count(*) >= %s
            """,
            [since, SHORT_HORIZONS, min_outcomes],
        )
        measured = [(mid, int(n), float(cov)) for mid, n, cov in cursor.fetchall()]
    drifted = {mid: (n, cov) for mid, n, cov in measured if abs(cov - NOMINAL_80) > tolerance}
    if not drifted:
        return {"checked": True, "drifted": [], "requested": []}
    models = {
        m.pk: m for m in MLModel.objects.filter(pk__in=list(drifted)).select_related("person").exclude(storage_path="")
    }
    # A version that already has a PATCH was recalibrated: its successor collects its own outcomes.
    patched = set(
        MLModel.objects.filter(parent_id__in=list(models),
                               comparison__decision__in=["recalibrated", PERSONAL_CALIBRATION])
        .values_list("parent_id", flat=True)
    )
    requested = []
    for model_id, model in models.items():
        if model_id in patched or personal_calibration_of(model) is not None:
            continue  # a personal calibration is judged by the next one, from the same outcomes
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                SELECT m.h, m.value, m.actual, m.lower_80, m.upper_80, m.lower_95, m.upper_95
                  FROM ({matched_points_sql(where + " AND l.ml_model_id = %s")}) m
                """,
                [since, model_id, SHORT_HORIZONS],
            )
            rows = cursor.fetchall()
        points: dict[int, dict[str, list]] = defaultdict(lambda: defaultdict(list))
        for h, *values in rows:
            for key, value in zip(("value", "actual", "lower_80", "upper_80", "lower_95", "upper_95"), values):
                points[h][key].append(value)
        arrays = {h: {k: np.asarray(v, float) for k, v in p.items()} for h, p in points.items()}
        factors = band_scale_factors(arrays)
        if not any(factors.values()):
            continue
        n, coverage = drifted[model_id]
        evidence = {"n_matched": int(n), "coverage_80": round(float(coverage), 4), "tolerance": tolerance,
                    "since": since.isoformat()}
        job = request_recalibration(model, factors=factors, evidence=evidence)
        if job is not None:
            requested.append(job.pk)
            logger.info("Recalibration of %s (person %s) requested: %s", model.version, model.person_id, evidence)
    return {"checked": True, "drifted": sorted(drifted), "requested": requested}


PERSONAL_HORIZONS = [30, 60, 120]  # the batch's horizons: every person has outcomes there


def calibrate_personal_bands(now=None) -> dict:
    """Queue a personal calibration for each person whose serving version is due (module docstring)."""
    if not settings.GLUCAST_PERSONAL_BANDS:
        return {"enabled": False, "requested": []}
    now = now or timezone.now()
    since = now - timedelta(days=WINDOW_DAYS)
    every = timedelta(hours=float(settings.GLUCAST_PERSONAL_BANDS_EVERY_HOURS))
    min_new = int(settings.GLUCAST_PERSONAL_BANDS_MIN_OUTCOMES)
    where = "l.issued_at >= %s AND l.ml_model_id IS NOT NULL AND l.source <> 'shadow'"
    with connection.cursor() as cursor:
        # The version behind each person's latest live forecast with a matched outcome.
        cursor.execute(
            f"""
            SELECT DISTINCT ON (m.person_id) m.person_id, m.ml_model_id
              FROM ({matched_points_sql(where)}) m
             ORDER BY m.person_id, m.issued_at DESC
            """,
            [since, PERSONAL_HORIZONS],
        )
        serving = dict(cursor.fetchall())
    models = MLModel.objects.in_bulk(list(serving.values()))
    requested, skipped = [], defaultdict(int)
    for person_id, model_id in serving.items():
        model = models.get(model_id)
        if model is None or not model.storage_path or model.status not in (ModelStatus.READY, ModelStatus.ARCHIVED):
            skipped["not stored"] += 1
            continue
        line = MLModel.objects.filter(
            person_id=person_id, model_type=model.model_type,
            version_major=model.version_major, version_minor=model.version_minor,
        )
        if line.filter(version_patch__gt=model.version_patch).exists():
            skipped["a newer patch exists"] += 1
            continue
        current = personal_calibration_of(model)
        # As of the outcomes it used (a replay of past days runs with an earlier `now`).
        last_at = datetime.fromisoformat(current["at"]) if current is not None and current.get("at") else (
            model.created_at if current is not None else None)
        if last_at is not None and now - last_at < every:
            skipped["calibrated recently"] += 1
            continue
        versions = {v.pk: personal_calibration_of(v) for v in line.only("pk", "comparison")}
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                SELECT m.ml_model_id, m.issued_at, m.h, m.value, m.actual, m.lower_80, m.upper_80, m.lower_95, m.upper_95
                  FROM ({matched_points_sql(where + " AND l.person_id = %s AND l.ml_model_id = ANY(%s)")}) m
                """,
                [since, person_id, list(versions), PERSONAL_HORIZONS],
            )
            rows = cursor.fetchall()
        new = sum(1 for r in rows if last_at is None or r[1] > last_at)
        if new < min_new:
            skipped["too few new outcomes"] += 1
            continue
        columns = list(zip(*rows))
        mids, issued = columns[0], columns[1]
        points = {key: np.asarray(col, dtype=float) for key, col in zip(
            ("horizon", "value", "actual", "lower_80", "upper_80", "lower_95", "upper_95"), columns[2:])}
        points["age_days"] = np.array([(now - t).total_seconds() / 86400.0 for t in issued])
        for tag in ("80", "95"):
            applied = np.ones(len(rows))
            for mid in set(mids):
                rows_of = np.array([m == mid for m in mids])
                applied[rows_of] = applied_factors(versions.get(mid), points["horizon"][rows_of],
                                                   points["value"][rows_of], tag)
            points[f"applied_{tag}"] = applied
        calibration = personal_factors(points, at=now.isoformat())
        evidence = {"outcomes_used": calibration["outcomes_used"], "new_outcomes": int(new),
                    "counts": calibration["counts"], "since": since.isoformat(), "at": now.isoformat()}
        job = request_recalibration(model, factors={}, evidence=evidence, personal=calibration)
        if job is not None:
            requested.append(job.pk)
            logger.info("Personal band calibration of %s (person %s) requested: %s outcomes",
                        model.version, person_id, calibration["outcomes_used"])
    return {"enabled": True, "requested": requested, "skipped": dict(skipped)}
