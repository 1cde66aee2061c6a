"""Retraining triggers: each fires once per condition and records itself on the job; concurrent
triggers make one job; crashed jobs are retried a bounded number of times."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection
from django.utils import timezone

from mlmodels.lifecycle import (
    recover_stalled_jobs,
    retrain_on_new_data,
    retrain_scheduled,
    retrain_slot_start,
)
from mlmodels.models import JobStatus, TrainingJob
from mlmodels.schedules import ensure_lifecycle_schedules
from mlmodels.tasks import run_training_job
from predictions.decisions import retrain_on_performance
from predictions.models import PredictionLog
from predictions.schedules import SCHEDULES, ensure_schedules
from tests.factories import PersonFactory
from tests.lifecycle.conftest import give_readings, make_model

VALIDATION = {"per_horizon": {"model": {"30": {"mae": 10.0}, "60": {"mae": 14.0}}}}


def jobs(person, trigger=None):
    queryset = TrainingJob.objects.filter(person=person)
    return queryset.filter(trigger=trigger) if trigger else queryset


def finish(job):
    TrainingJob.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED, reason="deployed",
                                                finished_at=timezone.now())


@pytest.mark.django_db
def test_weekly_schedule_trains_active_people_once_per_week(person, other_person):
    give_readings(person)  # other_person has no readings this week
    # In the person's own hour of the week (the schedule spreads people over the week), one that
    # began at least an hour ago: the readings (up to a minute ago) then reach past `now`, so a week
    # later the person still has readings "this week". Run in the first 9 minutes of the person's
    # hour, `now` (its start + 10 min) lay after the newest reading and next week found no one.
    now = retrain_slot_start(person.pk, timezone.now() - dt.timedelta(hours=1)) + dt.timedelta(minutes=10)

    first = retrain_scheduled(now=now)
    assert len(first["started"]) == 1
    job = jobs(person, "schedule").get()
    assert job.status == JobStatus.QUEUED and not jobs(other_person).exists()

    finish(job)
    TrainingJob.objects.filter(pk=job.pk).update(created_at=now)  # made at that hour
    assert retrain_scheduled(now=now)["started"] == []  # fired twice in its hour: no second job
    next_week = now + dt.timedelta(days=7)
    assert len(retrain_scheduled(now=next_week)["started"]) == 1


@pytest.mark.django_db
def test_new_data_trigger_fires_at_the_threshold_and_then_counts_again_from_zero(person):
    give_readings(person, hours=4, seed=1)  # 48 readings
    assert retrain_on_new_data(threshold=50)["started"] == []
    give_readings(person, hours=1, seed=2)  # +12 -> 60 readings, no job yet

    assert len(retrain_on_new_data(threshold=50)["started"]) == 1
    job = jobs(person, "data").get()
    assert retrain_on_new_data(threshold=50)["started"] == []  # open job: same condition, no new job
    finish(job)
    assert retrain_on_new_data(threshold=50)["started"] == []  # nothing new since that job

    later = timezone.now() + dt.timedelta(hours=5)
    give_readings_at(person, later)
    assert len(retrain_on_new_data(threshold=50)["started"]) == 1
    assert jobs(person, "data").count() == 2


def give_readings_at(person, end):
    from tests.lifecycle.conftest import recent_readings, store_readings

    frame = recent_readings(5, seed=9, end=end)
    store_readings(person, frame)


@pytest.mark.django_db
def test_default_threshold_is_one_day_of_readings(person):
    give_readings(person, hours=23, seed=3)  # 276 < 288
    assert retrain_on_new_data()["started"] == []
    give_readings_at(person, timezone.now() + dt.timedelta(hours=2))
    result = retrain_on_new_data()
    assert result["threshold"] == 288 and len(result["started"]) == 1
    assert jobs(person, "data").count() == 1


def add_outcomes(mlmodel, n, *, error):
    now = timezone.now()
    rows = []
    for i in range(n):
        issued = now - dt.timedelta(hours=3, minutes=5 * i)
        rows.append(PredictionLog(
            person_id=mlmodel.person_id, ml_model=mlmodel, model_version=mlmodel.version, variant="stable",
            algorithm="test", issued_at=issued, as_of=issued, unit="mg/dL", horizons=[30, 60],
            points=[{"horizon_min": h, "time": (issued + dt.timedelta(minutes=h)).isoformat(),
                     "value_mg_dl": 120.0 + error, "lower_80_mg_dl": 100, "upper_80_mg_dl": 150,
                     "lower_95_mg_dl": 90, "upper_95_mg_dl": 160, "actual_mg_dl": 120.0,
                     "actual_at": issued.isoformat(), "matched_at": now.isoformat()} for h in (30, 60)],
            outcome_pending=False,
        ))
    PredictionLog.objects.bulk_create(rows)


@pytest.mark.django_db
def test_performance_trigger_fires_once_when_realized_mae_is_worse_than_validation(person, other_person):
    drifting = make_model(person, "1.0.0", active=True, metrics=VALIDATION)
    fine = make_model(other_person, "1.0.0", active=True, metrics=VALIDATION)
    add_outcomes(drifting, 20, error=16.0)  # 16 vs validation 12 -> +33% > 25%
    add_outcomes(fine, 20, error=13.0)  # +8%

    result = retrain_on_performance()
    assert result["due"] == [person.pk]
    assert result["evidence"][person.pk]["realized_mae"] == 16.0
    assert result["evidence"][person.pk]["validation_mae"] == 12.0
    job = jobs(person, "performance").get()
    finish(job)
    assert retrain_on_performance()["started"] == []  # not again within 24 h
    assert not jobs(other_person).exists()


@pytest.mark.django_db
def test_performance_trigger_needs_enough_outcomes(person):
    drifting = make_model(person, "1.0.0", active=True, metrics=VALIDATION)
    add_outcomes(drifting, 10, error=40.0)  # 20 matched points < 24
    assert retrain_on_performance()["due"] == []


@pytest.mark.django_db
def test_on_request_trigger_is_recorded_too(person):
    from tests.conftest import token_client

    response = token_client(person).post("/api/models/train/")
    assert response.status_code == 202 and jobs(person, "api").count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_triggers_for_one_person_make_one_job():
    person = PersonFactory()
    give_readings(person, hours=5)
    barrier = threading.Barrier(4)
    results, errors = [], []

    def fire(trigger):
        try:
            barrier.wait(timeout=30)
            if trigger == "data":
                results.append(retrain_on_new_data(threshold=10))
            else:
                results.append(retrain_scheduled())
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=fire, args=(t,)) for t in ("data", "schedule", "data", "schedule")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert TrainingJob.objects.filter(person=person).count() == 1
    assert sum(len(r["started"]) for r in results) == 1


@pytest.mark.django_db
def test_a_crashed_job_is_requeued_then_failed_after_the_maximum_attempts(person, other_person, settings):
    settings.GLUCAST_TRAINING_MAX_ATTEMPTS = 3
    settings.GLUCAST_TRAINING_STALL_S = 600
    long_ago = timezone.now() - dt.timedelta(hours=1)
    job = TrainingJob.objects.create(person=person, status=JobStatus.RUNNING, started_at=long_ago, attempts=1)

    assert recover_stalled_jobs() == {"requeued": [job.pk], "failed": []}
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED
    assert recover_stalled_jobs() == {"requeued": [], "failed": []}  # just re-queued: not stalled
    # A queued job handed to the broker waits hours (a backlog) before it counts as lost; one
    # still waiting in the training queue is never lost, however old.
    waiting = TrainingJob.objects.create(person=other_person, status=JobStatus.QUEUED)
    TrainingJob.objects.filter(pk=waiting.pk).update(created_at=long_ago - dt.timedelta(days=2))
    settings.GLUCAST_TRAINING_QUEUED_STALL_S = 1800
    assert recover_stalled_jobs() == {"requeued": [], "failed": []}
    settings.GLUCAST_TRAINING_QUEUED_STALL_S = 6 * 3600
    TrainingJob.objects.filter(pk=waiting.pk).update(dispatched_at=long_ago)
    assert recover_stalled_jobs() == {"requeued": [], "failed": []}
    settings.GLUCAST_TRAINING_QUEUED_STALL_S = 1800
    assert recover_stalled_jobs() == {"requeued": [waiting.pk], "failed": []}

    TrainingJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, started_at=long_ago, attempts=3)
    assert recover_stalled_jobs() == {"requeued": [], "failed": [job.pk]}
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.reason == "too_many_attempts"


@pytest.mark.django_db
def test_a_redelivered_task_past_the_maximum_attempts_fails_without_training(person, settings):
    settings.GLUCAST_TRAINING_MAX_ATTEMPTS = 2
    job = TrainingJob.objects.create(person=person, status=JobStatus.RUNNING, attempts=2,
                                     started_at=timezone.now())
    assert run_training_job(job.pk) == JobStatus.FAILED
    job.refresh_from_db()
    assert job.reason == "too_many_attempts" and job.attempts == 2 and job.model is None


@pytest.mark.django_db
def test_schedules_are_created_once_and_the_weekly_retrain_runs_hourly():
    from django_q.models import Schedule

    ensure_schedules()
    ensure_schedules()
    names = set(Schedule.objects.values_list("name", flat=True))
    assert {"glucast: evaluate rollouts", "glucast: weekly retraining", "glucast: retrain on new data",
            "glucast: retrain on performance drop", "glucast: recover stalled training jobs",
            "glucast: clean up old model versions", "glucast: retrain on a new prior"} <= names
    weekly = Schedule.objects.get(name="glucast: weekly retraining")
    assert (weekly.schedule_type, weekly.minutes) == ("I", 60)
    assert Schedule.objects.filter(name="glucast: weekly retraining").count() == 1
    # registry's (with the training queue's dispatcher and the prior update) + serving/judging +
    # Nightscout pull + shadows
    assert len(ensure_lifecycle_schedules()) + len(SCHEDULES) == 13

    # An installation that still has the old Monday cron gets the hourly schedule.
    Schedule.objects.filter(pk=weekly.pk).update(schedule_type="C", cron="0 3 * * 1", minutes=None)
    ensure_schedules()
    weekly.refresh_from_db()
    assert (weekly.schedule_type, weekly.minutes, weekly.cron) == ("I", 60, None)
