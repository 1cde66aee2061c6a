"""Shadow mode: the candidate release forecasts the same origins after the answer, is logged and
scored against the same outcomes, is never shown, and its paired comparison drives the automated
decisions."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from django.utils import timezone

from mlmodels.core.paired import paired_mae_difference
from mlmodels.models import EventAction, Rollout, RolloutStatus
from mlmodels.rollouts import create_rollout, in_shadow, set_auto_promote, set_candidate, set_shadow_percentage
from predictions.decisions import evaluate_rollouts
from predictions.models import PredictionLog
from predictions.outcomes import fill_outcomes
from predictions.services import forecast_for_person
from predictions.shadow import paired_comparison, run_pending_shadows
from tests.conftest import token_client
from tests.factories import PersonFactory
from tests.lifecycle.conftest import give_readings, recent_readings, store_readings
from tests.lifecycle.test_lifecycle_releases import people, store_version, two_releases  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def evidence_rules(settings):
    settings.GLUCAST_ROLLOUT_MIN_OUTCOMES = 100
    settings.GLUCAST_ROLLOUT_MIN_PEOPLE = 3
    settings.GLUCAST_ROLLOUT_MAE_MARGIN = 0.10
    settings.GLUCAST_ROLLOUT_MAX_ERROR_RATE = 0.05
    settings.GLUCAST_ROLLOUT_PROMOTE_MARGIN = 0.05


def shadow_rollout(percentage=100):
    rollout = create_rollout("glucose-prediction", 1, actor="test", reason="release 1 serves")
    set_candidate(rollout, 2, actor="test", reason="try release 2 in shadow first")
    return set_shadow_percentage(rollout, percentage, actor="test", reason="shadow everyone")


def test_the_shadow_is_computed_after_the_answer_logged_and_never_shown(people):
    rollout = shadow_rollout()
    assert rollout.status == RolloutStatus.SHADOW
    person = people[0]

    served = forecast_for_person(person)

    assert served.model_version == "1.0.0" and served.variant == "stable" and served.shadow_pending
    assert not PredictionLog.objects.filter(source="shadow").exists()  # nothing on the request path

    counts = run_pending_shadows()

    assert counts["shadows"] == 1 and counts["failures"] == 0
    shadow = PredictionLog.objects.get(source="shadow")
    served.refresh_from_db()
    assert not served.shadow_pending
    assert shadow.shadow_of_id == served.pk and shadow.arm == "shadow" and shadow.variant == "shadow"
    assert shadow.model_version == "2.0.0" and shadow.rollout_id == rollout.pk
    assert shadow.issued_at == served.issued_at and shadow.as_of == served.as_of
    assert [p["time"] for p in shadow.points] == [p["time"] for p in served.points]
    assert [p["value_mg_dl"] for p in shadow.points] != [p["value_mg_dl"] for p in served.points]
    assert shadow.outcome_pending  # scored like any forecast

    # The person never sees it: not in their list, not by id.
    client = token_client(person)
    listed = client.get("/api/predictions/").json()
    ids = [row["prediction_id"] for row in listed["results"]]
    assert served.pk in ids and shadow.pk not in ids
    assert client.get(f"/api/predictions/{shadow.pk}/").status_code == 404
    assert run_pending_shadows()["logs"] == 0  # done once


def test_only_the_shadow_share_gets_shadows_and_the_canary_share_is_served(people):
    rollout = create_rollout("glucose-prediction", 1, actor="test", reason="release 1 serves")
    rollout = set_candidate(rollout, 2, percentage=20, shadow_percentage=30, actor="test", reason="both")
    logs = {p.pk: forecast_for_person(p) for p in people}
    for pid, log in logs.items():
        assert log.shadow_pending == in_shadow(pid, rollout.pk, 20, 30)
        if log.variant == "canary":
            assert not log.shadow_pending


def test_both_are_scored_on_the_same_outcomes_and_compared_in_pairs(people):
    rollout = shadow_rollout()
    for person in people:
        forecast_for_person(person, horizons=[30, 60])
    run_pending_shadows()
    # The next hour of readings arrives.
    for i, person in enumerate(people):
        store_readings(person, recent_readings(1.2, seed=40 + i, end=timezone.now() + dt.timedelta(minutes=65)).iloc[-15:])
    fill_outcomes(now=timezone.now() + dt.timedelta(minutes=70))

    paired = paired_comparison(rollout, until=timezone.now() + dt.timedelta(hours=2))

    assert paired["n_people"] == len(people) and paired["n_pairs"] == 2 * len(people)
    assert paired["mae_candidate"] > 0 and paired["mae_served"] > 0
    assert paired["difference"] == pytest.approx(paired["mae_candidate"] - paired["mae_served"], abs=0.01)
    low, high = paired["difference_interval"]
    assert low <= paired["difference"] <= high
    assert paired["n_shadow_forecasts"] == len(people) and paired["n_shadow_errors"] == 0


def test_paired_bootstrap_is_over_people_and_reproducible():
    rng = np.random.default_rng(1)
    n = rng.integers(50, 100, size=8)
    served = n * rng.uniform(10, 20, size=8)
    candidate = served * 0.9
    one = paired_mae_difference(n, candidate, served)
    two = paired_mae_difference(n, candidate, served)
    assert one == two
    assert one["relative_difference"] == pytest.approx(-0.10)
    assert one["relative_interval"][1] < 0  # better for every person: the whole interval below 0
    assert paired_mae_difference([10], [100], [120])["relative_interval"] is None  # one person


def paired_logs(rollout, people, per_person, *, served_mae, candidate_mae, seed=0):
    """Served logs with their shadow twins, outcomes known, errors of the given sizes."""
    rng = np.random.default_rng(seed)
    start = rollout.candidate_since + dt.timedelta(minutes=1)
    for person in people:
        for i in range(per_person):
            issued = start + dt.timedelta(minutes=5 * i)
            pair = []
            for mae, source, arm, version in ((served_mae, "api", "stable", "1.0.0"),
                                              (candidate_mae, "shadow", "shadow", "2.0.0")):
                points = []
                for horizon in (30, 60):
                    actual = 120.0 + horizon
                    value = actual + float(rng.choice([-1, 1]) * mae)
                    points.append({"horizon_min": horizon, "time": (issued + dt.timedelta(minutes=horizon)).isoformat(),
                                   "value_mg_dl": value, "lower_80_mg_dl": value - 20, "upper_80_mg_dl": value + 20,
                                   "lower_95_mg_dl": value - 40, "upper_95_mg_dl": value + 40,
                                   "actual_mg_dl": actual, "actual_at": issued.isoformat(),
                                   "matched_at": issued.isoformat()})
                pair.append(PredictionLog(
                    person=person, model_version=version, variant="stable" if arm == "stable" else "shadow",
                    algorithm="test", source=source, issued_at=issued, as_of=issued, unit="mg/dL",
                    horizons=[30, 60], points=points, latency_ms=30.0, arm=arm, rollout=rollout,
                    outcome_pending=False,
                ))
            pair[0].save()
            pair[1].shadow_of = pair[0]
            pair[1].save()


@pytest.fixture
def shadow_only(db):
    rollout = shadow_rollout(50)
    Rollout.objects.filter(pk=rollout.pk).update(candidate_since=timezone.now() - dt.timedelta(days=1))
    rollout.refresh_from_db()
    return rollout, [PersonFactory() for _ in range(4)]


def test_a_worse_candidate_in_shadow_is_rolled_back_on_paired_evidence(shadow_only):
    rollout, people = shadow_only
    paired_logs(rollout, people, 20, served_mae=10, candidate_mae=13)

    verdicts = evaluate_rollouts()

    assert verdicts[0]["decision"] == "rollback", verdicts
    rollout.refresh_from_db()
    assert rollout.status == RolloutStatus.ROLLED_BACK and rollout.shadow_percentage == 0
    assert "paired MAE" in rollout.status_reason
    event = rollout.events.get(action=EventAction.AUTO_ROLLED_BACK)
    assert event.evidence["paired"]["enough_evidence"] and event.evidence["paired"]["relative_difference"] > 0.1


def test_a_better_candidate_is_promoted_only_with_automatic_promotion(shadow_only):
    rollout, people = shadow_only
    paired_logs(rollout, people, 20, served_mae=10, candidate_mae=8)

    assert evaluate_rollouts()[0]["decision"] == "keep"
    set_auto_promote(rollout, True, actor="test", reason="promote when better")
    verdict = evaluate_rollouts()[0]

    assert verdict["decision"] == "promote", verdict
    rollout.refresh_from_db()
    assert rollout.stable_release == 2 and rollout.previous_stable_release == 1


def test_without_enough_pairs_nothing_happens(shadow_only):
    rollout, people = shadow_only
    paired_logs(rollout, people[:2], 10, served_mae=10, candidate_mae=30)
    verdict = evaluate_rollouts()[0]
    assert verdict["decision"] == "wait"
    assert paired_comparison(rollout)["enough_evidence"] is False
