"""django-q2 tasks of the model registry: training jobs, and the lifecycle's schedules
(mlmodels/schedules.py says when). Workers run `manage.py qcluster`; web requests only enqueue.

Q_CLUSTER["retry"] stays above Q_CLUSTER["timeout"] (config/settings.py), otherwise the ORM
broker would hand a long training job to a second worker while the first still runs it.
"""

import logging

from django.db import transaction
from django.utils import timezone

from mlmodels.lifecycle import (
    cleanup_old_versions,
    give_up_if_exhausted,
    recover_stalled_jobs,
    retrain_on_new_data,
    retrain_scheduled,
)
from mlmodels.models import OPEN_JOB_STATUSES, JobStatus, JobTrigger, TrainingJob
from mlmodels.prior_updates import retrain_on_prior_change
from mlmodels.recalibration import run_recalibration
from mlmodels.services import train_person
from mlmodels.training_queue import dispatch_training_jobs
from persons.erasure import ERASED, erasure_mark
from persons.row_security import everyone, for_person

logger = logging.getLogger(__name__)


def run_training_job(job_id: int) -> str:
    """Run one queued TrainingJob to a final status; returns that status.

    A redelivered task (worker died, broker retry) finds the job running and runs it again,
    counting the attempt; a job that already finished is left alone.
    """
    with everyone("find a training job's person"):
        person_id = TrainingJob.objects.filter(pk=job_id).values_list("person_id", flat=True).first()
    if person_id is None:
        logger.warning("Training job %s no longer exists", job_id)
        return "missing"
    with for_person(person_id):  # the job sees and writes only its person's rows
        return _run_training_job(job_id)


def _run_training_job(job_id: int) -> str:
    with transaction.atomic():
        job = (
            TrainingJob.objects.select_for_update().select_related("person").filter(pk=job_id).first()
        )
        if job is None:
            logger.warning("Training job %s no longer exists", job_id)
            return "missing"
        if job.status not in OPEN_JOB_STATUSES:
            return job.status
        if give_up_if_exhausted(job):  # a job that keeps crashing its worker stops here
            return job.status
        job.status = JobStatus.RUNNING
        job.started_at = timezone.now()
        job.attempts += 1
        job.save(update_fields=["status", "started_at", "attempts"])
    mark = erasure_mark(job.person_id)
    try:
        if job.trigger == JobTrigger.CALIBRATION:  # a PATCH: bands only, no training
            status = run_recalibration(job, mark=mark).status
            return ERASED if erasure_mark(job.person_id) != mark else status
        job = train_person(job.person, job=job, trigger=job.trigger, model_type=job.model_type)
    finally:
        dispatch_training_jobs()  # the next waiting job starts now, not at the next minute
    if erasure_mark(job.person_id) != mark:
        return ERASED  # "delete all my data" overtook the job: its result row goes too (the hook)
    return job.status


def dispatch_training_jobs_task() -> list:
    return dispatch_training_jobs()


def retrain_scheduled_task() -> dict:
    with everyone("retrain scheduled"):  # works over many people
        return retrain_scheduled()


def retrain_on_new_data_task() -> dict:
    with everyone("retrain on new data"):  # works over many people
        return retrain_on_new_data()


def retrain_on_prior_change_task() -> dict:
    with everyone("retrain on a new population prior"):  # works over many people
        return retrain_on_prior_change()


def recover_stalled_jobs_task() -> dict:
    with everyone("recover stalled jobs"):  # works over many people
        return recover_stalled_jobs()


def cleanup_old_versions_task() -> dict:
    with everyone("cleanup old versions"):  # works over many people
        return cleanup_old_versions()
