"""Decisions taken from realized outcomes, run by django-q2 schedules (predictions/schedules.py):
automated rollout rollback / promotion, and the performance-triggered retrain. The changes
themselves are the model registry's services (mlmodels.rollouts, mlmodels.lifecycle); judging
them needs the prediction log, which is why they are made here.

    evaluate_rollouts(now=None) -> list[dict]     one verdict per rollout with a canary serving
    retrain_on_performance(now=None) -> dict      realized MAE (24 h) worse than validation MAE

For a rollout whose canary serves (> 0%):
- nothing happens until the canary arm has enough evidence (GLUCAST_ROLLOUT_MIN_OUTCOMES matched
  points at 30+60 min from GLUCAST_ROLLOUT_MIN_PEOPLE people) -> verdict "wait";
- automated rollback (canary set to 0%, status rolled_back, the reason and numbers recorded) when
  its error rate > GLUCAST_ROLLOUT_MAX_ERROR_RATE, or its fallback rate >
  GLUCAST_ROLLOUT_MAX_FALLBACK_RATE, or — the stable arm having enough evidence too — its realized
  MAE (mean of 30 and 60 min) is worse than stable's by more than GLUCAST_ROLLOUT_MAE_MARGIN;
- optional automated promotion (rollout.auto_promote) when both arms have enough evidence, the
  canary's MAE is lower than stable's by at least GLUCAST_ROLLOUT_PROMOTE_MARGIN and its error and
  fallback rates are within the limits.
With a shadow share (the candidate forecasting the same origins as what was served), the paired
comparison (predictions/shadow.py) replaces the unpaired MAE comparison once it has enough
evidence (GLUCAST_ROLLOUT_MIN_OUTCOMES pairs from GLUCAST_ROLLOUT_MIN_PEOPLE people): roll back
when the candidate's paired MAE is worse by more than the margin or its shadow error rate is
above the limit; promote (automatic promotion on) when it is better by at least the promotion
margin AND the bootstrap interval of the difference lies wholly below 0.
Decisions are made with the rollout row locked, so a staff change at the same moment is never
overwritten by a verdict computed for the state before it.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from mlmodels.lifecycle import request_trainings
from mlmodels.models import GLUCOSE_PREDICTION, JobTrigger, MLModel, Rollout, TrainingJob, metric_value
from mlmodels.rollouts import promote_candidate, stop_canary
from predictions.monitoring import arm_comparison
from predictions.selectors import matched_points_sql
from predictions.shadow import paired_comparison

logger = logging.getLogger(__name__)


def not_enough_evidence(arm: dict, comparison: dict) -> str:
    return (
        f"{arm['n_matched']} of {comparison['min_outcomes']} matched outcomes from "
        f"{arm['n_people_matched']} of {comparison['min_people']} people"
    )


def judge_paired(paired: dict, comparison: dict | None, *, auto_promote: bool) -> tuple[str, list[str]]:
    """The verdict from the paired (shadow) comparison; the canary arm's error and fallback
    rates still count when it has its own evidence. Pure."""
    max_error = float(settings.GLUCAST_ROLLOUT_MAX_ERROR_RATE)
    max_fallback = float(settings.GLUCAST_ROLLOUT_MAX_FALLBACK_RATE)
    margin = float(settings.GLUCAST_ROLLOUT_MAE_MARGIN)
    rel, interval = paired["relative_difference"], paired["relative_interval"]
    problems = []
    if paired["shadow_error_rate"] is not None and paired["shadow_error_rate"] > max_error:
        problems.append(f"shadow error rate {paired['shadow_error_rate']:.1%} is above {max_error:.1%}")
    canary = (comparison or {}).get("arms", {}).get("canary")
    if canary and canary["enough_evidence"]:
        if canary["error_rate"] is not None and canary["error_rate"] > max_error:
            problems.append(f"canary error rate {canary['error_rate']:.1%} is above {max_error:.1%}")
        if canary["fallback_rate"] is not None and canary["fallback_rate"] > max_fallback:
            problems.append(f"canary fallback rate {canary['fallback_rate']:.1%} is above {max_fallback:.1%}")
    described = (
        f"paired MAE candidate {paired['mae_candidate']:.1f} vs served {paired['mae_served']:.1f} mg/dL "
        f"({rel:+.1%}, 95% interval {_interval(interval)}) on {paired['n_pairs']} paired points "
        f"from {paired['n_people']} people"
    ) if rel is not None else "no paired MAE"
    if rel is not None and rel > margin:
        problems.append(f"{described} (limit +{margin:.0%})")
    if problems:
        return "rollback", problems
    promote_margin = float(settings.GLUCAST_ROLLOUT_PROMOTE_MARGIN)
    if auto_promote and rel is not None and rel <= -promote_margin and interval is not None and interval[1] < 0:
        return "promote", [f"{described} (needed -{promote_margin:.0%} with the whole interval below 0)"]
    return "keep", [f"candidate within limits: {described}"]


def _interval(interval) -> str:
    return "–" if interval is None else f"{interval[0]:+.1%} to {interval[1]:+.1%}"


def judge(comparison: dict, *, auto_promote: bool, paired: dict | None = None) -> tuple[str, list[str]]:
    """("rollback" | "promote" | "keep" | "wait", reasons) for a comparison. Pure.

    With a paired (shadow) comparison that has enough evidence, that one decides (judge_paired)."""
    if paired is not None and paired.get("enough_evidence"):
        return judge_paired(paired, comparison, auto_promote=auto_promote)
    stable, canary = comparison["arms"]["stable"], comparison["arms"]["canary"]
    if not canary["enough_evidence"]:
        return "wait", [f"not enough evidence yet in the canary arm: {not_enough_evidence(canary, comparison)}"]
    max_error = float(settings.GLUCAST_ROLLOUT_MAX_ERROR_RATE)
    max_fallback = float(settings.GLUCAST_ROLLOUT_MAX_FALLBACK_RATE)
    margin = float(settings.GLUCAST_ROLLOUT_MAE_MARGIN)
    problems = []
    if canary["error_rate"] is not None and canary["error_rate"] > max_error:
        problems.append(f"canary error rate {canary['error_rate']:.1%} is above {max_error:.1%}")
    if canary["fallback_rate"] is not None and canary["fallback_rate"] > max_fallback:
        problems.append(f"canary fallback rate {canary['fallback_rate']:.1%} is above {max_fallback:.1%}")
    if stable["enough_evidence"] and canary["mae"] > stable["mae"] * (1 + margin):
        problems.append(
            f"canary realized MAE {canary['mae']:.1f} mg/dL is "
            f"{(canary['mae'] - stable['mae']) / stable['mae']:+.0%} against stable "
            f"{stable['mae']:.1f} mg/dL (limit +{margin:.0%})"
        )
    if problems:
        return "rollback", problems
    if not stable["enough_evidence"]:
        return "keep", [f"stable arm has not enough evidence to compare MAE: {not_enough_evidence(stable, comparison)}"]
    promote_margin = float(settings.GLUCAST_ROLLOUT_PROMOTE_MARGIN)
    if auto_promote and canary["mae"] <= stable["mae"] * (1 - promote_margin):
        return "promote", [
            f"canary realized MAE {canary['mae']:.1f} mg/dL is "
            f"{(canary['mae'] - stable['mae']) / stable['mae']:+.0%} against stable "
            f"{stable['mae']:.1f} mg/dL (needed -{promote_margin:.0%}) with error and fallback rates "
            "within limits"
        ]
    return "keep", ["canary within limits"]


def evaluate_rollout(rollout: Rollout, now=None) -> dict:
    now = now or timezone.now()
    with transaction.atomic():
        rollout = Rollout.objects.select_for_update().get(pk=rollout.pk)
        if rollout.candidate_release is None or (rollout.canary_percentage == 0 and rollout.shadow_percentage == 0):
            return {"rollout": rollout.pk, "decision": "none", "reasons": ["no canary or shadow is running"]}
        comparison = arm_comparison(rollout, until=now)
        paired = paired_comparison(rollout, until=now)
        decision, reasons = judge(comparison, auto_promote=rollout.auto_promote, paired=paired)
        evidence = {**comparison, "paired": paired}
        if decision == "rollback":
            stop_canary(
                rollout,
                reason="Automated rollback: " + "; ".join(reasons) + ".",
                evidence=evidence,
            )
        elif decision == "promote":
            promote_candidate(
                rollout, actor=None, reason="Automated promotion: " + "; ".join(reasons) + ".",
                evidence=evidence,
            )
    if decision in ("rollback", "promote"):
        logger.warning("Rollout %s (%s): %s — %s", rollout.pk, rollout.model_type, decision, "; ".join(reasons))
    return {"rollout": rollout.pk, "decision": decision, "reasons": reasons}


def evaluate_rollouts(now=None) -> list[dict]:
    return [evaluate_rollout(rollout, now) for rollout in Rollout.objects.order_by("pk")]


# --- Performance-triggered retraining ---------------------------------------------------------

PERFORMANCE_WINDOW = timedelta(hours=24)
PERFORMANCE_HORIZONS = (30, 60)


def realized_mae(model_ids, since, horizons=PERFORMANCE_HORIZONS) -> dict[int, dict]:
    """{model_id: {"n": matched points, "mae": {h: MAE}}} from the prediction log since `since`."""
    ids = [int(i) for i in model_ids]
    if not ids:
        return {}
    sql = f"""
        SELECT m.ml_model_id, m.h, count(*), avg(abs(m.value - m.actual))
          FROM ({matched_points_sql("l.ml_model_id = ANY(%s) AND l.issued_at >= %s")}) m
         GROUP BY 1, 2
    """
    out: dict[int, dict] = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, [ids, since, list(horizons)])
        for model_id, horizon, n, mae in cursor.fetchall():
            entry = out.setdefault(model_id, {"n": 0, "mae": {}})
            entry["n"] += int(n)
            entry["mae"][int(horizon)] = float(mae)
    return out


def retrain_on_performance(now=None, *, model_type: str = GLUCOSE_PREDICTION) -> dict:
    """Retrain when the active model's realized MAE over the last 24 h (mean of 30 and 60 min)
    is worse than its validation MAE by the margin, with enough matched outcomes.

    Once per condition: not again within 24 h of an earlier performance-triggered job, nor for a
    model that was activated after that window started (its own 24 h have to show it).
    """
    now = now or timezone.now()
    since = now - PERFORMANCE_WINDOW
    margin = float(settings.GLUCAST_RETRAIN_PERFORMANCE_MARGIN)
    min_outcomes = int(settings.GLUCAST_RETRAIN_PERFORMANCE_MIN_OUTCOMES)
    actives = list(MLModel.objects.filter(model_type=model_type).active())
    realized = realized_mae([m.pk for m in actives], since)
    recently = set(
        TrainingJob.objects.filter(
            model_type=model_type, trigger=JobTrigger.PERFORMANCE, created_at__gte=since
        ).values_list("person_id", flat=True)
    )
    due, evidence = set(), {}
    for mlmodel in actives:
        figures = realized.get(mlmodel.pk)
        validation = [metric_value(mlmodel.metrics, h, "mae") for h in PERFORMANCE_HORIZONS]
        if figures is None or figures["n"] < min_outcomes or any(v is None for v in validation):
            continue
        if any(h not in figures["mae"] for h in PERFORMANCE_HORIZONS):
            continue
        realized_score = sum(figures["mae"][h] for h in PERFORMANCE_HORIZONS) / len(PERFORMANCE_HORIZONS)
        validation_score = sum(validation) / len(validation)
        if realized_score > validation_score * (1 + margin) and mlmodel.person_id not in recently:
            due.add(mlmodel.person_id)
            evidence[mlmodel.person_id] = {
                "version": mlmodel.version,
                "realized_mae": round(realized_score, 2),
                "validation_mae": round(validation_score, 2),
                "n_matched": figures["n"],
            }
    started = request_trainings(due, JobTrigger.PERFORMANCE, model_type)
    for person_id, numbers in evidence.items():
        logger.info("Performance retrain for person %s: %s", person_id, numbers)
    return {"trigger": "performance", "due": sorted(due), "started": started, "evidence": evidence}

