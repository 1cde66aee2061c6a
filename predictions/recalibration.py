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
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db import connection
from django.utils import timezone

from mlmodels.core.recalibration import band_scale_factors
from mlmodels.models import MLModel
from mlmodels.recalibration import request_recalibration
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
        MLModel.objects.filter(parent_id__in=list(models), comparison__decision="recalibrated")
        .values_list("parent_id", flat=True)
    )
    requested = []
    for model_id, model in models.items():
        if model_id in patched:
            continue
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
