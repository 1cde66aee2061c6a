"""Retraining that spreads: the weekly retrain by each person's hour of the week, and a bounded
training queue in which the person who asked waits least (mlmodels/training_queue.py)."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from django.utils import timezone

from mlmodels.lifecycle import (
    HOURS_PER_WEEK,
    retrain_hour_of_week,
    retrain_on_new_data,
    retrain_scheduled,
    retrain_slot_start,
)
from mlmodels.models import JobStatus, JobTrigger, TrainingJob
from mlmodels.services import fail_if_stale, request_training
from mlmodels.training_queue import dispatch_training_jobs
from tests.factories import PersonFactory
from tests.lifecycle.conftest import give_readings

pytestmark = pytest.mark.django_db


def finish(job_ids):
    TrainingJob.objects.filter(pk__in=job_ids).update(status=JobStatus.SUCCEEDED, finished_at=timezone.now())


def test_hours_of_the_week_are_stable_and_flat():
    hours = Counter(retrain_hour_of_week(pid) for pid in range(1, 16_801))
    assert set(hours) == set(range(HOURS_PER_WEEK))
    # 100 people per hour on average; a Monday peak would put all 16,800 in one.
    assert max(hours.values()) < 150 and min(hours.values()) > 55
    assert [retrain_hour_of_week(pid) for pid in (1, 2, 3)] == [retrain_hour_of_week(pid) for pid in (1, 2, 3)]
    now = timezone.now()
    start = retrain_slot_start(7, now)
    assert now - dt.timedelta(days=7) < start <= now
    assert start.weekday() * 24 + start.hour == retrain_hour_of_week(7)


def test_a_week_of_hourly_runs_retrains_everyone_once_in_their_own_hour():
    people = [PersonFactory() for _ in range(6)]
    for seed, person in enumerate(people):
        give_readings(person, hours=2, seed=seed)
    # The simulated fortnight lies wholly in the past, so the readings (given now) count as
    # recent at every simulated hour; starting this week's Monday made the people inactive
    # from a week after the readings on and failed early in the week (e.g. Monday 01:00 UTC).
    three_weeks_ago = timezone.now() - dt.timedelta(weeks=3)
    monday = (three_weeks_ago - dt.timedelta(days=three_weeks_ago.weekday())).replace(
        hour=0, minute=5, second=0, microsecond=0
    )
    started_at = {}
    for hour in range(2 * HOURS_PER_WEEK + 24):  # two weeks and a day of the hourly schedule
        now = monday + dt.timedelta(hours=hour)
        started = retrain_scheduled(now=now)["started"]
        for job in TrainingJob.objects.filter(pk__in=started):
            started_at.setdefault(job.person_id, []).append(hour)
        finish(started)
        TrainingJob.objects.filter(pk__in=started).update(created_at=now)  # made at that hour
    assert sorted(started_at) == sorted(p.pk for p in people)
    for person in people:
        hours, own = started_at[person.pk], retrain_hour_of_week(person.pk)
        # The first run catches up on an hour that began within the last day; after that each
        # person is retrained in their own hour of the week, once a week.
        assert (hours[0] - own) % HOURS_PER_WEEK < 24
        assert all(h % HOURS_PER_WEEK == own for h in hours[1:]) and len(hours) >= 2
        assert all(b - a >= 144 for a, b in zip(hours, hours[1:]))


def test_the_person_who_asks_is_handed_out_first(settings):
    settings.GLUCAST_TRAINING_IN_FLIGHT = 1
    scheduled = [request_training(PersonFactory(), trigger=JobTrigger.SCHEDULE)[0] for _ in range(2)]
    data, _ = request_training(PersonFactory(), trigger=JobTrigger.DATA)
    asked, _ = request_training(PersonFactory(), trigger=JobTrigger.API)

    order = []
    for _ in range(4):
        handed = dispatch_training_jobs()
        assert len(handed) == 1  # never more than the in-flight limit
        assert dispatch_training_jobs() == []  # full until that one finishes
        order += handed
        finish(handed)
    assert order == [asked.pk, data.pk, scheduled[0].pk, scheduled[1].pk]


def test_asking_raises_the_priority_of_ones_own_waiting_job(settings):
    settings.GLUCAST_TRAINING_IN_FLIGHT = 1
    person = PersonFactory()
    others = [request_training(PersonFactory(), trigger=JobTrigger.DATA)[0] for _ in range(2)]
    waiting, _ = request_training(person, trigger=JobTrigger.SCHEDULE)
    same, created = request_training(person, trigger=JobTrigger.PAGE)
    assert (same.pk, created) == (waiting.pk, False)
    assert TrainingJob.objects.get(pk=waiting.pk).priority == 100
    assert dispatch_training_jobs() == [waiting.pk]
    finish([waiting.pk])
    assert dispatch_training_jobs() == [others[0].pk]


def test_automatic_triggers_keep_the_backlog_bounded(settings):
    settings.GLUCAST_RETRAIN_MAX_WAITING = 2
    settings.GLUCAST_TRAINING_IN_FLIGHT = 1
    people = [PersonFactory() for _ in range(4)]
    for seed, person in enumerate(people):
        give_readings(person, hours=2, seed=seed)
    first = retrain_on_new_data(threshold=10)
    assert len(first["due"]) == 4 and len(first["started"]) == 2
    assert TrainingJob.objects.waiting().count() == 2
    # The person who asks is never refused by the bound.
    asked, created = request_training(PersonFactory(), trigger=JobTrigger.API)
    assert created and TrainingJob.objects.waiting().count() == 3
    handed = dispatch_training_jobs()
    assert handed == [asked.pk]
    finish(handed)
    handed = dispatch_training_jobs()
    finish(handed)
    # Room again: the next run asks for the people left over (they are still due).
    second = retrain_on_new_data(threshold=10)
    assert len(second["started"]) == 1
    assert TrainingJob.objects.filter(trigger=JobTrigger.DATA).count() == 3


def test_a_job_waiting_in_the_queue_is_never_taken_for_lost(person):
    job, _ = request_training(person, trigger=JobTrigger.SCHEDULE)
    TrainingJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - dt.timedelta(days=3))
    job.refresh_from_db()
    assert not fail_if_stale(job)
    assert request_training(person, trigger=JobTrigger.API)[0].pk == job.pk
