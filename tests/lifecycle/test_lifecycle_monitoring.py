"""Monitoring figures per release and arm over time, the Prometheus exposition, and the rollout
management command that staff use to roll back by hand."""

import datetime as dt
import re
from collections import Counter

import pytest
from django.core.management import call_command
from django.utils import timezone

from mlmodels.models import JobStatus, Rollout, TrainingJob
from mlmodels.rollouts import create_rollout, promote_candidate, set_candidate
from predictions.monitoring import monitoring_overview, prometheus_text
from predictions.services import forecast_for_person
from tests.lifecycle.conftest import give_readings, make_model
from tests.lifecycle.test_lifecycle_decisions import add_logs

pytestmark = pytest.mark.django_db

SAMPLE = re.compile(r'^[a-z_0-9]+(\{([a-z_]+="(?:[^"\\]|\\.)*",?)*\})? -?[0-9.e+-]+$')


@pytest.fixture
def served(person, other_person):
    give_readings(person, seed=1)
    give_readings(other_person, seed=2)
    make_model(person, "1.0.0", active=True)
    make_model(other_person, "1.0.0", status="archived")
    make_model(other_person, "2.0.0", active=True)
    rollout = create_rollout("glucose-prediction", 1, actor="test", reason="start")
    set_candidate(rollout, 2, percentage=100, actor="test", reason="all who have it")
    for _ in range(2):
        forecast_for_person(person)
        forecast_for_person(other_person)
    TrainingJob.objects.create(person=person, status=JobStatus.SUCCEEDED, reason="deployed")
    TrainingJob.objects.create(person=person, status=JobStatus.SUCCEEDED, reason="not_better")
    TrainingJob.objects.create(person=other_person, status=JobStatus.FAILED, reason="error")
    TrainingJob.objects.create(person=other_person, status=JobStatus.SKIPPED, reason="insufficient_data")
    return Rollout.objects.get(pk=rollout.pk)


def test_overview_per_release_and_arm_with_latency_and_training_outcomes(served):
    overview = monitoring_overview(days=1, bucket="hour")
    # Summed over the hour buckets: a fixture run across the top of an hour (hh:59:59) puts its
    # forecasts and jobs in two buckets, and one bucket's row held only some of them.
    rows, forecasts, jobs = {}, Counter(), Counter()
    for row in overview["serving"]:
        rows[(row["release"], row["arm"])] = row
        forecasts[(row["release"], row["arm"])] += row["n_forecasts"]
    for bucket in overview["training_jobs"]:
        jobs.update({k: v for k, v in bucket.items() if k != "bucket"})
    assert set(rows) == {("1", "stable"), ("2", "canary")}
    assert forecasts == {("1", "stable"): 2, ("2", "canary"): 2}
    assert rows[("2", "canary")]["latency_p95_ms"] > 0 and rows[("2", "canary")]["n_errors"] == 0
    assert (jobs["succeeded"], jobs["rejected"], jobs["failed"], jobs["skipped"]) == (1, 1, 1, 1)


def test_overview_shows_realized_accuracy_by_horizon(served):
    rollout = served
    start = timezone.now() - dt.timedelta(hours=2)
    if (start + dt.timedelta(minutes=25)).date() != start.date():
        start -= dt.timedelta(minutes=30)  # the five forecasts stay within one day's bucket
    add_logs(rollout, "canary", [rollout.predictions.first().person], 5, mae=7.0, start=start)
    # Buckets are UTC days: two hours back may be yesterday's (before 02:00 UTC), not the
    # bucket of the fixture's own forecasts.
    day = start.replace(hour=0, minute=0, second=0, microsecond=0).isoformat()
    rows = [r for r in monitoring_overview(days=1)["serving"] if r["arm"] == "canary" and r["bucket"] == day]
    assert rows[0]["mae"]["30"] == pytest.approx(7.0) and rows[0]["n_matched"]["60"] == 5


def test_prometheus_text_is_well_formed_and_carries_the_counters(served):
    text = prometheus_text()
    for line in text.splitlines():
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or SAMPLE.match(line), line
    assert 'glucast_forecasts_24h{model_type="glucose-prediction",release="2",arm="canary",variant="canary"} 2' in text
    assert 'glucast_forecast_latency_ms_24h{model_type="glucose-prediction",release="1",arm="stable",variant="stable",quantile="0.95"}' in text
    assert 'outcome="rejected"' in text and 'outcome="failed"' in text
    assert 'glucast_rollout_canary_percentage{model_type="glucose-prediction",status="canary"} 100' in text
    assert "glucast_serving_generation" in text


def test_monitoring_page_for_staff(staff_client, served):
    page = staff_client.get("/admin/mlmodels/rollout/monitoring/?days=1&bucket=hour").content.decode()
    assert "Forecasts served per release and arm" in page and "canary" in page and "Training jobs" in page


def test_rollback_by_hand_with_the_management_command(served, capsys):
    promote_candidate(served, actor="test", reason="release 2 for everyone")

    call_command("rollout", "rollback", "glucose-prediction", "--reason", "evening drift")

    rollout = Rollout.objects.get(pk=served.pk)
    assert (rollout.stable_release, rollout.candidate_release, rollout.status) == (1, 2, "rolled_back")
    event = rollout.events.first()
    assert event.action == "rolled_back" and event.reason == "evening drift" and event.actor_name.startswith("cli:")
    call_command("rollout", "show")
    assert "rolled back" in capsys.readouterr().out


def test_the_command_refuses_a_change_without_a_reason(served):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="reason"):
        call_command("rollout", "percentage", "glucose-prediction", "50")
    assert Rollout.objects.get(pk=served.pk).canary_percentage == 100


def test_which_tells_what_serves_a_person(served, person, capsys):
    call_command("rollout", "which", str(person.pk))
    assert '"version": "1.0.0"' in capsys.readouterr().out
