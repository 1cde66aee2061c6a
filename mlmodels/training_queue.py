"""The training queue: which waiting job a worker gets next, and how many are handed out at once.

django-q2 runs tasks in the order they were enqueued and has no priorities. So a training job
is not handed to the broker when it is created: it waits as a row (status `queued`,
`dispatched_at` empty) with a priority from its trigger (mlmodels.models.TRIGGER_PRIORITY: the
person asking 100, operator 80, schema retirement 70, band recalibration 60, performance drop 50, new data 30, a new population prior 20, the weekly schedule 10), and
`dispatch_training_jobs` hands the highest-priority, oldest waiting jobs to the broker until
GLUCAST_TRAINING_IN_FLIGHT jobs are in flight. A person who asks therefore waits for at most
that many trainings ahead of them, never behind a whole week's scheduled backlog; a person who
asks while an automatic job of theirs still waits has that job's priority raised.

The dispatcher runs when a job is requested (after its transaction commits), when a job
finishes (the next one starts at once) and every minute from a schedule (a safety net); one
dispatcher at a time (a transaction-level advisory lock), so the count in flight is exact.
Automatic triggers also keep the backlog itself bounded (GLUCAST_RETRAIN_MAX_WAITING, see
mlmodels.lifecycle.request_trainings): people beyond it stay due and are asked again next time.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from mlmodels.models import JobStatus, TrainingJob
from persons.row_security import everyone

logger = logging.getLogger(__name__)

TASK_PATH = "mlmodels.tasks.run_training_job"
# A result of a person erased meanwhile is dropped (persons.erasure).
ERASED_HOOK = "persons.erasure.forget_erased_result"
DISPATCH_LOCK = 0x67630010  # advisory lock key: one dispatcher at a time


def in_flight_limit() -> int:
    return max(1, int(settings.GLUCAST_TRAINING_IN_FLIGHT))


def dispatch_training_jobs() -> list[int]:
    """Hand waiting jobs to the broker, highest priority first, up to the in-flight limit.
    Returns the ids handed out."""
    # Everyone's jobs (the queue is shared), whoever's request or job calls it.
    with transaction.atomic(), everyone("training queue"):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [DISPATCH_LOCK])
        room = in_flight_limit() - TrainingJob.objects.in_flight().count()
        if room <= 0:
            return []
        ids = list(
            TrainingJob.objects.waiting()
            .order_by("-priority", "created_at", "id")
            .values_list("pk", flat=True)[:room]
        )
        if not ids:
            return []
        TrainingJob.objects.filter(pk__in=ids).update(dispatched_at=timezone.now())
        transaction.on_commit(lambda: [enqueue_training_job(pk) for pk in ids])
    return ids


def enqueue_training_job(job_id: int) -> None:
    """Hand a job to django-q2; if the broker refuses, fail the job instead of leaving it queued."""
    with everyone("training queue"):
        _enqueue(job_id)


def _enqueue(job_id: int) -> None:
    from django_q.tasks import async_task

    try:
        task_id = async_task(
            TASK_PATH, job_id, task_name=f"train-job-{job_id}", group="training", hook=ERASED_HOOK
        )
    except Exception as exc:  # the broker is unreachable: nobody would ever run this job
        logger.exception("Could not enqueue training job %s", job_id)
        TrainingJob.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(
            status=JobStatus.FAILED,
            reason="enqueue_failed",
            error=f"{exc.__class__.__name__}: {exc}",
            finished_at=timezone.now(),
        )
        return
    TrainingJob.objects.filter(pk=job_id).update(task_id=str(task_id or ""))
