"""Automated rollout decisions on synthetic prediction logs with known outcomes: a degraded canary
is rolled back (with the reason shown), nothing happens without enough evidence, a better canary
is promoted only when automatic promotion is on."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from django.utils import timezone

from mlmodels.models import EventAction, Rollout
from mlmodels.rollouts import create_rollout, set_auto_promote, set_candidate
from predictions.decisions import evaluate_rollouts, judge
from predictions.feedback import record_feedback
from predictions.models import PredictionLog
from predictions.monitoring import arm_comparison
from tests.factories import PersonFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def evidence_rules(settings):
    settings.GLUCAST_ROLLOUT_MIN_OUTCOMES = 100
    settings.GLUCAST_ROLLOUT_MIN_PEOPLE = 3
    settings.GLUCAST_ROLLOUT_MAE_MARGIN = 0.10
    settings.GLUCAST_ROLLOUT_MAX_ERROR_RATE = 0.05
    settings.GLUCAST_ROLLOUT_MAX_FALLBACK_RATE = 0.20
    settings.GLUCAST_ROLLOUT_PROMOTE_MARGIN = 0.05


def add_logs(rollout, arm, people, per_person, *, mae, fallback_every=0, error_every=0, seed=0,
             start=None, latency_ms=40.0):
    """Forecasts with matched outcomes whose absolute error averages `mae` mg/dL."""
    rng = np.random.default_rng(seed)
    start = start or rollout.candidate_since + dt.timedelta(minutes=1)
    rows = []
    for person in people:
        for i in range(per_person):
            issued = start + dt.timedelta(minutes=5 * i)
            points = []
            for horizon in (30, 60):
                actual = float(rng.uniform(80, 200))
                error = float(rng.choice([-1, 1]) * mae)
                value = actual + error
                points.append({
                    "horizon_min": horizon,
                    "time": (issued + dt.timedelta(minutes=horizon)).isoformat(),
                    "value_mg_dl": value,
                    "lower_80_mg_dl": value - 20, "upper_80_mg_dl": value + 20,
                    "lower_95_mg_dl": value - 40, "upper_95_mg_dl": value + 40,
                    "actual_mg_dl": actual,
                    "actual_at": (issued + dt.timedelta(minutes=horizon)).isoformat(),
                    "matched_at": timezone.now().isoformat(),
                })
            fallback = ""
            if error_every and i % error_every == 0:
                fallback = "model_error: model 2.0.0"
            elif fallback_every and i % fallback_every == 0:
                fallback = "not_enough_readings_for_model: model 2.0.0"
            rows.append(PredictionLog(
                person=person, model_version="2.0.0" if arm == "canary" else "1.0.0",
                variant=arm if not fallback else "baseline", algorithm="test", source="api",
                issued_at=issued, as_of=issued, unit="mg/dL", horizons=[30, 60], points=points,
                latency_ms=latency_ms, fallback_reason=fallback, arm=arm, rollout=rollout,
                outcome_pending=False,
            ))
    return PredictionLog.objects.bulk_create(rows)


@pytest.fixture
def rollout():
    rollout = create_rollout("glucose-prediction", 1, actor="test", reason="start")
    set_candidate(rollout, 2, percentage=20, actor="test", reason="try release 2 on 20%")
    # The comparison started a day ago, so the synthetic forecasts below lie in the past.
    Rollout.objects.filter(pk=rollout.pk).update(candidate_since=timezone.now() - dt.timedelta(days=1))
    rollout.refresh_from_db()
    return rollout


def people(n):
    return [PersonFactory() for _ in range(n)]


def test_a_canary_worse_by_more_than_the_margin_is_rolled_back_with_the_reason(rollout):
    add_logs(rollout, "stable", people(5), 20, mae=10.0)
    add_logs(rollout, "canary", people(4), 20, mae=12.0, seed=1)  # +20%

    verdicts = evaluate_rollouts()

    assert verdicts[0]["decision"] == "rollback"
    rollout.refresh_from_db()
    assert rollout.canary_percentage == 0 and rollout.status == "rolled_back"
    assert rollout.status_reason.startswith("Automated rollback: canary realized MAE 12.0 mg/dL is +20%")
    event = rollout.events.first()
    assert event.action == EventAction.AUTO_ROLLED_BACK and event.actor_name == "automation"
    assert event.evidence["arms"]["canary"]["n_matched"] == 160
    assert event.before["canary_percentage"] == 20 and event.after["canary_percentage"] == 0
    # Once stopped, later runs leave it alone.
    assert evaluate_rollouts()[0]["decision"] == "none"
    assert rollout.events.count() == 3


def test_no_rollback_without_enough_evidence_however_bad_it_looks(rollout):
    add_logs(rollout, "stable", people(5), 20, mae=10.0)
    add_logs(rollout, "canary", people(4), 10, mae=30.0, error_every=2)  # 80 outcomes < 100

    verdict = evaluate_rollouts()[0]

    assert verdict["decision"] == "wait"
    assert "not enough evidence" in verdict["reasons"][0] and "80 of 100" in verdict["reasons"][0]
    rollout.refresh_from_db()
    assert rollout.canary_percentage == 20 and rollout.status == "canary"


def test_too_few_people_is_not_enough_evidence_either(rollout):
    add_logs(rollout, "stable", people(5), 20, mae=10.0)
    add_logs(rollout, "canary", people(2), 60, mae=30.0)  # 240 outcomes but 2 people < 3
    assert evaluate_rollouts()[0]["decision"] == "wait"


def test_a_canary_within_the_margin_is_kept(rollout):
    add_logs(rollout, "stable", people(5), 20, mae=10.0)
    add_logs(rollout, "canary", people(4), 20, mae=10.8, seed=2)  # +8%
    assert evaluate_rollouts()[0]["decision"] == "keep"
    rollout.refresh_from_db()
    assert rollout.canary_percentage == 20


def test_an_error_rate_over_the_threshold_rolls_back_even_when_accurate(rollout):
    add_logs(rollout, "stable", people(5), 20, mae=10.0)
    add_logs(rollout, "canary", people(4), 20, mae=9.0, error_every=10)  # 10% errors
    verdict = evaluate_rollouts()[0]
    assert verdict["decision"] == "rollback" and "error rate 10.0%" in verdict["reasons"][0]


def test_fallbacks_for_short_data_count_as_fallbacks_not_errors(rollout):
    add_logs(rollout, "stable", people(5), 20, mae=10.0)
    add_logs(rollout, "canary", people(4), 20, mae=9.0, fallback_every=4)  # 25% fallbacks, 0 errors
    comparison = arm_comparison(rollout)
    canary = comparison["arms"]["canary"]
    assert canary["error_rate"] == 0 and canary["fallback_rate"] == 0.25
    verdict = evaluate_rollouts()[0]
    assert verdict["decision"] == "rollback" and "fallback rate 25.0%" in verdict["reasons"][0]


def test_a_better_canary_is_promoted_only_with_automatic_promotion_on(rollout):
    add_logs(rollout, "stable", people(5), 20, mae=10.0)
    add_logs(rollout, "canary", people(4), 20, mae=8.0)
    assert evaluate_rollouts()[0]["decision"] == "keep"

    set_auto_promote(rollout, True, actor="test", reason="let it promote itself")
    assert evaluate_rollouts()[0]["decision"] == "promote"
    rollout = Rollout.objects.get(pk=rollout.pk)
    assert (rollout.stable_release, rollout.candidate_release, rollout.previous_stable_release) == (2, None, 1)
    event = rollout.events.first()
    assert event.action == EventAction.AUTO_PROMOTED and event.reason.startswith("Automated promotion")


def test_comparison_reports_every_figure_per_arm(rollout, person):
    add_logs(rollout, "stable", people(3), 40, mae=10.0, latency_ms=30)
    logs = add_logs(rollout, "canary", [person] + people(2), 40, mae=12.0, latency_ms=60)
    record_feedback(person, logs[0].pk, True)
    record_feedback(person, logs[1].pk, False)
    record_feedback(person, logs[2].pk, False)
    # Forecasts before the candidate started do not count.
    add_logs(rollout, "canary", people(3), 10, mae=50.0, start=rollout.candidate_since - dt.timedelta(hours=5))

    comparison = arm_comparison(rollout)
    stable, canary = comparison["arms"]["stable"], comparison["arms"]["canary"]
    assert canary["n_forecasts"] == 120 and canary["n_matched"] == 240 and canary["n_people_matched"] == 3
    assert canary["horizons"]["30"]["mae_mg_dl"] == pytest.approx(12.0)
    assert canary["horizons"]["60"]["rmse_mg_dl"] == pytest.approx(12.0)
    assert canary["horizons"]["30"]["coverage_80"] == 1.0 and canary["horizons"]["60"]["coverage_95"] == 1.0
    assert canary["latency_p95_ms"] == pytest.approx(60) and stable["latency_p95_ms"] == pytest.approx(30)
    assert (canary["feedback_helpful"], canary["feedback_not_helpful"]) == (1, 2)
    assert comparison["canary_vs_stable_mae"] == pytest.approx(0.2)
    assert comparison["enough_evidence"] and stable["release"] == 1 and canary["release"] == 2


def test_judge_is_pure_and_waits_for_the_canary_first():
    empty = {"n_matched": 0, "n_people_matched": 0, "enough_evidence": False}
    decision, reasons = judge({"arms": {"stable": empty, "canary": empty}, "min_outcomes": 100, "min_people": 3},
                              auto_promote=True)
    assert decision == "wait" and "0 of 100" in reasons[0]
