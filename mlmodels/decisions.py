"""Automated rollout decisions, run by a django-q2 schedule (every 15 minutes by default).

    evaluate_rollouts(now=None) -> list[dict]     one verdict per rollout with a canary serving

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
Decisions are made with the rollout row locked, so a staff change at the same moment is never
overwritten by a verdict computed for the state before it.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from mlmodels.lifecycle_models import Rollout
from mlmodels.monitoring import arm_comparison, rollout_setting
from mlmodels.rollouts import promote_candidate, stop_canary

logger = logging.getLogger(__name__)


def not_enough_evidence(arm: dict, comparison: dict) -> str:
    return (
        f"{arm['n_matched']} of {comparison['min_outcomes']} matched outcomes from "
        f"{arm['n_people_matched']} of {comparison['min_people']} people"
    )


def judge(comparison: dict, *, auto_promote: bool) -> tuple[str, list[str]]:
    """("rollback" | "promote" | "keep" | "wait", reasons) for a comparison. Pure."""
    stable, canary = comparison["arms"]["stable"], comparison["arms"]["canary"]
    if not canary["enough_evidence"]:
        return "wait", [f"not enough evidence yet in the canary arm: {not_enough_evidence(canary, comparison)}"]
    max_error = float(rollout_setting("GLUCAST_ROLLOUT_MAX_ERROR_RATE"))
    max_fallback = float(rollout_setting("GLUCAST_ROLLOUT_MAX_FALLBACK_RATE"))
    margin = float(rollout_setting("GLUCAST_ROLLOUT_MAE_MARGIN"))
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
    promote_margin = float(rollout_setting("GLUCAST_ROLLOUT_PROMOTE_MARGIN"))
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
        if rollout.candidate_release is None or rollout.canary_percentage == 0:
            return {"rollout": rollout.pk, "decision": "none", "reasons": ["no canary is serving"]}
        comparison = arm_comparison(rollout, until=now)
        decision, reasons = judge(comparison, auto_promote=rollout.auto_promote)
        if decision == "rollback":
            stop_canary(
                rollout,
                reason="Automated rollback: " + "; ".join(reasons) + ".",
                evidence=comparison,
            )
        elif decision == "promote":
            promote_candidate(
                rollout, actor=None, reason="Automated promotion: " + "; ".join(reasons) + ".",
                evidence=comparison,
            )
    if decision in ("rollback", "promote"):
        logger.warning("Rollout %s (%s): %s — %s", rollout.pk, rollout.model_type, decision, "; ".join(reasons))
    return {"rollout": rollout.pk, "decision": decision, "reasons": reasons}


def evaluate_rollouts(now=None) -> list[dict]:
    return [evaluate_rollout(rollout, now) for rollout in Rollout.objects.order_by("pk")]
