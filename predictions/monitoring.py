"""Numbers for the people on call, all computed from the prediction log and the job table.

    arm_comparison(rollout, since=None) -> dict       stable vs canary since the candidate started
    monitoring_overview(days=7, bucket="day") -> dict per release and arm over time + training jobs
    prometheus_text(now=None) -> str                  the same counters for /metrics

Definitions (docs/lifecycle.md repeats them):
- realized MAE/RMSE at h minutes: |forecast - the reading matched to its time| over the points
  whose outcome is known (forecasts from sent-along `history` are never scored);
- coverage: share of matched points inside the 80% / 95% range;
- fallback: the person's model did not answer and the baseline did (any `fallback_reason`);
  error: a fallback caused by a failure (timeout, model error, artifact or schema problem), i.e.
  every fallback except "not enough readings for the model";
- latency: of API forecasts only (a batch log carries its share of the whole batch);
- an arm has enough evidence once it has GLUCAST_ROLLOUT_MIN_OUTCOMES matched points at 30+60 min
  from at least GLUCAST_ROLLOUT_MIN_PEOPLE people.
"""

from __future__ import annotations

import math
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from mlmodels.models import Rollout, TrainingJob
from mlmodels.rollouts import generation_token
from predictions.cache import forecaster_cache
from predictions.selectors import (
    feedback_table,
    log_table,
    matched_points_sql,
    release_sql,
    served_figures_sql,
)

COMPARISON_HORIZONS = (30, 60)
MONITOR_HORIZONS = (30, 60, 120)


def _num(value, digits=2):
    if value is None:
        return None
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


def _rate(part, whole):
    return round(part / whole, 4) if whole else None


# --- Stable vs canary -------------------------------------------------------------------------


def _empty_arm(release) -> dict:
    return {
        "release": release,
        "n_forecasts": 0,
        "n_people": 0,
        "n_fallbacks": 0,
        "n_errors": 0,
        "fallback_rate": None,
        "error_rate": None,
        "latency_p50_ms": None,
        "latency_p95_ms": None,
        "horizons": {},
        "n_matched": 0,
        "n_people_matched": 0,
        "mae": None,
        "feedback_helpful": 0,
        "feedback_not_helpful": 0,
        "enough_evidence": False,
    }


def arm_comparison(rollout, since=None, *, until=None) -> dict:
    """Realized figures of the stable and the canary arm of a rollout since `since` (default: since
    the current candidate started, else since the rollout was last changed)."""
    since = since or rollout.candidate_since or rollout.updated_at
    until = until or timezone.now()
    min_outcomes = int(settings.GLUCAST_ROLLOUT_MIN_OUTCOMES)
    min_people = int(settings.GLUCAST_ROLLOUT_MIN_PEOPLE)
    arms = {
        "stable": _empty_arm(rollout.stable_release),
        "canary": _empty_arm(rollout.candidate_release),
    }
    where = "l.rollout_id = %s AND l.issued_at >= %s AND l.issued_at <= %s AND l.arm IN ('stable', 'canary')"
    params = [rollout.pk, since, until]
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT l.arm, count(DISTINCT l.person_id), {served_figures_sql()}
              FROM {log_table()} l WHERE {where} GROUP BY l.arm
            """,
            params,
        )
        for arm, people, n, fallbacks, errors, p50, p95, _p99 in cursor.fetchall():
            entry = arms[arm]
            entry.update(
                n_forecasts=n, n_people=people, n_fallbacks=fallbacks, n_errors=errors,
                fallback_rate=_rate(fallbacks, n), error_rate=_rate(errors, n),
                latency_p50_ms=_num(p50, 1), latency_p95_ms=_num(p95, 1),
            )
        cursor.execute(
            f"""
            WITH points AS (
                SELECT m.arm, m.person_id, m.h, m.value - m.actual AS err,
                       m.actual BETWEEN m.lower_80 AND m.upper_80 AS in80,
                       m.actual BETWEEN m.lower_95 AND m.upper_95 AS in95
                  FROM ({matched_points_sql(where)}) m
            )
            SELECT arm, h, count(*), avg(abs(err)), sqrt(avg(err * err)),
                   avg(in80::int), avg(in95::int), count(DISTINCT person_id)
              FROM points GROUP BY arm, h
            """,
            params + [list(COMPARISON_HORIZONS)],
        )
        for arm, h, n, mae, rmse, cov80, cov95, _people in cursor.fetchall():
            arms[arm]["horizons"][str(h)] = {
                "n_matched": n, "mae_mg_dl": _num(mae), "rmse_mg_dl": _num(rmse),
                "coverage_80": _num(cov80, 3), "coverage_95": _num(cov95, 3),
            }
            arms[arm]["n_matched"] += n
        cursor.execute(
            f"""
            SELECT m.arm, count(DISTINCT m.person_id) FROM ({matched_points_sql(where)}) m GROUP BY m.arm
            """,
            params + [list(COMPARISON_HORIZONS)],
        )
        for arm, people in cursor.fetchall():
            arms[arm]["n_people_matched"] = people
        cursor.execute(
            f"""
            SELECT l.arm, count(*) FILTER (WHERE f.helpful), count(*) FILTER (WHERE NOT f.helpful)
              FROM {log_table()} l JOIN {feedback_table()} f ON f.prediction_id = l.id
             WHERE {where} GROUP BY l.arm
            """,
            params,
        )
        for arm, helpful, not_helpful in cursor.fetchall():
            arms[arm]["feedback_helpful"] = helpful
            arms[arm]["feedback_not_helpful"] = not_helpful
    for entry in arms.values():
        maes = [entry["horizons"].get(str(h), {}).get("mae_mg_dl") for h in COMPARISON_HORIZONS]
        entry["mae"] = _num(sum(maes) / len(maes)) if all(m is not None for m in maes) else None
        entry["enough_evidence"] = bool(
            entry["n_matched"] >= min_outcomes and entry["n_people_matched"] >= min_people
            and entry["mae"] is not None
        )
    stable, canary = arms["stable"], arms["canary"]
    return {
        "rollout_id": rollout.pk,
        "model_type": rollout.model_type,
        "since": since.isoformat(),
        "until": until.isoformat(),
        "min_outcomes": min_outcomes,
        "min_people": min_people,
        "arms": arms,
        "canary_vs_stable_mae": (
            _num((canary["mae"] - stable["mae"]) / stable["mae"], 4)
            if canary["mae"] is not None and stable["mae"] else None
        ),
        "enough_evidence": stable["enough_evidence"] and canary["enough_evidence"],
    }


# --- Over time --------------------------------------------------------------------------------


def monitoring_overview(days: int = 7, bucket: str = "day", *, now=None) -> dict:
    """Per time bucket, release and arm: forecasts, latency percentiles, fallbacks and errors,
    realized MAE by horizon; and training jobs per bucket by outcome."""
    if bucket not in ("hour", "day"):
        raise ValueError("bucket must be 'hour' or 'day'")
    now = now or timezone.now()
    since = now - timedelta(days=days)
    rows: dict[tuple, dict] = {}
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT date_trunc(%s, l.issued_at) AS b, l.model_type, {release_sql()} AS release,
                   coalesce(nullif(l.arm, ''), '-') AS arm, {served_figures_sql()}
              FROM {log_table()} l WHERE l.issued_at >= %s
             GROUP BY 1, 2, 3, 4 ORDER BY 1 DESC, 2, 3, 4
            """,
            [bucket, since],
        )
        for b, model_type, rel, arm, n, fallbacks, errors, p50, p95, p99 in cursor.fetchall():
            rows[(b, model_type, rel, arm)] = {
                "bucket": b.isoformat(), "model_type": model_type, "release": rel, "arm": arm,
                "n_forecasts": n, "n_fallbacks": fallbacks, "n_errors": errors,
                "latency_p50_ms": _num(p50, 1), "latency_p95_ms": _num(p95, 1), "latency_p99_ms": _num(p99, 1),
                "mae": {}, "n_matched": {},
            }
        cursor.execute(
            f"""
            SELECT date_trunc(%s, m.issued_at), m.model_type, {release_sql("m")},
                   coalesce(nullif(m.arm, ''), '-'), m.h, count(*), avg(abs(m.value - m.actual))
              FROM ({matched_points_sql("l.issued_at >= %s")}) m
             GROUP BY 1, 2, 3, 4, 5
            """,
            [bucket, since, list(MONITOR_HORIZONS)],
        )
        for b, model_type, rel, arm, h, n, mae in cursor.fetchall():
            row = rows.get((b, model_type, rel, arm))
            if row is not None:
                row["mae"][str(h)] = _num(mae)
                row["n_matched"][str(h)] = n
    jobs: dict = {}
    for created, status, reason in TrainingJob.objects.filter(created_at__gte=since).values_list(
        "created_at", "status", "reason"
    ):
        key = _truncate(created, bucket).isoformat()
        outcome = job_outcome(status, reason)
        jobs.setdefault(key, {}).setdefault(outcome, 0)
        jobs[key][outcome] += 1
    return {
        "since": since.isoformat(),
        "bucket": bucket,
        "horizons": list(MONITOR_HORIZONS),
        "serving": list(rows.values()),
        "training_jobs": [{"bucket": k, **v} for k, v in sorted(jobs.items(), reverse=True)],
    }


def job_outcome(status: str, reason: str) -> str:
    """succeeded (deployed), rejected (trained, not better), failed, skipped, queued, running."""
    if status == "succeeded":
        return "succeeded" if reason == "deployed" else "rejected"
    return status


def _truncate(moment, bucket):
    moment = moment.astimezone(timezone.get_current_timezone())
    moment = moment.replace(minute=0, second=0, microsecond=0)
    return moment if bucket == "hour" else moment.replace(hour=0)


# --- Prometheus -------------------------------------------------------------------------------


def _label(value) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class _Exposition:
    def __init__(self):
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str, samples) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            if value is None:
                continue
            rendered = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            self.lines.append(f"{name}{{{rendered}}} {float(value):g}" if rendered else f"{name} {float(value):g}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def prometheus_text(now=None) -> str:
    """Prometheus text exposition (version 0.0.4) of the serving and training counters.

    Forecast figures cover the last 24 h (gauges: the log is pruned, so totals would go down);
    training jobs are counted over all time (counters: jobs are never deleted).
    """
    now = now or timezone.now()
    since = now - timedelta(hours=24)
    release = release_sql()
    out = _Exposition()
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT l.model_type, {release}, coalesce(nullif(l.arm, ''), 'none'), l.variant,
                   {served_figures_sql()}
              FROM {log_table()} l WHERE l.issued_at >= %s GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
            """,
            [since],
        )
        serving = cursor.fetchall()
        cursor.execute(
            f"""
            SELECT m.model_type, {release_sql("m")}, coalesce(nullif(m.arm, ''), 'none'), m.h,
                   count(*), avg(abs(m.value - m.actual)),
                   sqrt(avg(power(m.value - m.actual, 2))),
                   avg((m.actual BETWEEN m.lower_80 AND m.upper_80)::int)
              FROM ({matched_points_sql("l.issued_at >= %s")}) m
             GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
            """,
            [since, list(MONITOR_HORIZONS)],
        )
        accuracy = cursor.fetchall()
        cursor.execute(
            f"""
            SELECT l.model_type, {release}, coalesce(nullif(l.arm, ''), 'none'), f.helpful, count(*)
              FROM {log_table()} l JOIN {feedback_table()} f ON f.prediction_id = l.id
             WHERE f.updated_at >= %s GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
            """,
            [since],
        )
        feedback = cursor.fetchall()

    def key(row):
        return {"model_type": row[0], "release": row[1], "arm": row[2]}

    out.family("glucast_forecasts_24h", "gauge", "Forecasts served in the last 24 hours.",
               [({**key(r), "variant": r[3]}, r[4]) for r in serving])
    out.family("glucast_forecast_fallbacks_24h", "gauge",
               "Forecasts answered by the baseline because the model could not (last 24 h).",
               [({**key(r), "variant": r[3]}, r[5]) for r in serving])
    out.family("glucast_forecast_errors_24h", "gauge",
               "Fallbacks caused by a failure: timeout, model error, artifact or schema (last 24 h).",
               [({**key(r), "variant": r[3]}, r[6]) for r in serving])
    out.family("glucast_forecast_latency_ms_24h", "gauge", "API forecast latency percentiles (last 24 h).",
               [({**key(r), "variant": r[3], "quantile": q}, r[i])
                for r in serving for q, i in (("0.5", 7), ("0.95", 8), ("0.99", 9))])
    out.family("glucast_forecast_matched_outcomes_24h", "gauge",
               "Forecast points of the last 24 h whose actual reading is known.",
               [({**key(r), "horizon_min": r[3]}, r[4]) for r in accuracy])
    out.family("glucast_forecast_mae_mg_dl_24h", "gauge", "Realized mean absolute error (last 24 h).",
               [({**key(r), "horizon_min": r[3]}, _num(r[5], 3)) for r in accuracy])
    out.family("glucast_forecast_rmse_mg_dl_24h", "gauge", "Realized root mean squared error (last 24 h).",
               [({**key(r), "horizon_min": r[3]}, _num(r[6], 3)) for r in accuracy])
    out.family("glucast_forecast_coverage_80_24h", "gauge", "Share of matched points inside the 80% range.",
               [({**key(r), "horizon_min": r[3]}, _num(r[7], 4)) for r in accuracy])
    out.family("glucast_prediction_feedback_24h", "gauge", "User verdicts on forecasts (last 24 h).",
               [({**key(r), "helpful": str(bool(r[3])).lower()}, r[4]) for r in feedback])
    job_counts = (
        TrainingJob.objects.values("model_type", "status", "reason", "trigger")
        .annotate(n=Count("id")).order_by("model_type", "status", "reason", "trigger")
    )
    out.family("glucast_training_jobs_total", "counter", "Training jobs by outcome and trigger.",
               [({"model_type": r["model_type"], "outcome": job_outcome(r["status"], r["reason"]),
                  "status": r["status"], "reason": r["reason"] or "none", "trigger": r["trigger"]}, r["n"])
                for r in job_counts])
    rollouts = list(Rollout.objects.all())
    out.family("glucast_rollout_stable_release", "gauge", "MAJOR version serving the stable arm.",
               [({"model_type": r.model_type}, r.stable_release) for r in rollouts])
    out.family("glucast_rollout_candidate_release", "gauge", "MAJOR version tried in the canary arm.",
               [({"model_type": r.model_type}, r.candidate_release) for r in rollouts])
    out.family("glucast_rollout_canary_percentage", "gauge", "Share of people in the canary arm (0-100).",
               [({"model_type": r.model_type, "status": r.status}, r.canary_percentage) for r in rollouts])
    token = generation_token()
    out.family("glucast_serving_generation", "gauge", "Serving changes so far (rollouts, pins, activations).",
               [({}, token[0] if token else 0)])
    stats = forecaster_cache().stats()
    out.family("glucast_process_model_cache_hits_total", "counter",
               "Forecaster cache hits in the process that answered this scrape.", [({}, stats["hits"])])
    out.family("glucast_process_model_cache_misses_total", "counter",
               "Forecaster cache misses (model loads) in the process that answered this scrape.",
               [({}, stats["misses"])])
    return out.text()
