"""Per-person model lifecycle: staff actions on versions, retraining triggers, recovery of crashed
jobs, and the cleanup of old versions.

Staff actions (each one transaction, a RolloutEvent and a serving-generation bump):
    activate_model(mlmodel, *, actor, reason) -> MLModel
    rollback_person_model(person, model_type=..., *, actor, reason) -> MLModel   (the previous one)
    archive_model(mlmodel, *, actor, reason) -> MLModel      (files removed, the row stays)

Retraining triggers (django-q2 schedules call these; each returns what it started):
    retrain_scheduled(now=None)       weekly for everyone with readings in the last week, each person
                                      in their own hour of the week (hourly schedule, flat load)
    retrain_on_new_data(now=None)     N new readings (default 288 = one day) since the last job
    (the performance-triggered retrain judges outcomes: predictions.decisions)
    (on request: POST /api/models/train/ -> mlmodels.services.request_training)
Every trigger goes through request_trainings -> request_training, so two triggers at once make one job, and the
trigger is recorded on the job. Jobs wait in the training queue by priority (mlmodels/training_queue.py);
automatic triggers keep its backlog bounded (GLUCAST_RETRAIN_MAX_WAITING). Deploy-only-if-better is the registry's (train_person).

Housekeeping:
    recover_stalled_jobs(now=None)    re-queue a crashed job, or fail it after MAX attempts
    cleanup_old_versions(keep=None)   archive + remove files beyond the newest K per person
"""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Max, OuterRef, Q, Subquery
from django.utils import timezone

from mlmodels.models import (
    GLUCOSE_PREDICTION,
    OPEN_JOB_STATUSES,
    EventAction,
    JobStatus,
    JobTrigger,
    MLModel,
    ModelPin,
    ModelStatus,
    Rollout,
    RolloutEvent,
    TrainingJob,
)
from mlmodels.rollouts import (
    PINNABLE_STATUSES,
    SERVABLE_STATUSES,
    RolloutError,
    actor_fields,
    bump_generation,
    model_of_release,
    require_reason,
    usable,
)
from mlmodels.services import request_training
from mlmodels.storage import ArtifactIntegrityError, delete_artifacts, read_verified_files
from mlmodels.training_queue import dispatch_training_jobs
from observations.models import Observation
from persons.models import Person

logger = logging.getLogger(__name__)

# --- Staff actions on versions ----------------------------------------------------------------


def version_key(mlmodel: MLModel) -> tuple[int, int, int]:
    return (mlmodel.version_major, mlmodel.version_minor, mlmodel.version_patch)


def previous_version(active: MLModel) -> MLModel | None:
    """The version to go back to: the one the active version replaced (its parent) if it can
    still serve, else the newest servable version older than the active one."""
    parent = active.parent
    if parent is not None and parent.pk != active.pk and usable(parent):
        return parent
    older = [
        m
        for m in MLModel.objects.for_person(active.person_id).of_type(active.model_type)
        .filter(status__in=SERVABLE_STATUSES).exclude(pk=active.pk).exclude(storage_path="")
        if version_key(m) < version_key(active)
    ]
    return max(older, key=version_key) if older else None


def _event(action, *, actor, reason, mlmodel, before, after):
    return RolloutEvent.objects.create(
        rollout=None, model_type=mlmodel.model_type, action=action, reason=reason,
        before=before, after=after, person_id=mlmodel.person_id, ml_model=mlmodel,
        **actor_fields(actor),
    )


def can_serve(mlmodel: MLModel) -> bool:
    """Staff may put any finished version with stored files back into service (a rejected one
    too: the registry's verdict is advice, the operator decides)."""
    return bool(mlmodel.status in PINNABLE_STATUSES and mlmodel.storage_path and mlmodel.artifact_sha256)


def activate_model(mlmodel: MLModel, *, actor, reason: str, action=EventAction.MODEL_ACTIVATED) -> MLModel:
    """Make this version the person's active one (the one before is archived, files kept).

    The artifact is verified first: a tampered or missing file is refused here rather than
    discovered by the next forecast.
    """
    reason = require_reason(reason)
    if not can_serve(mlmodel):
        raise RolloutError(
            f"Version {mlmodel.version} cannot serve: status {mlmodel.status}"
            f"{' and its files were removed' if not mlmodel.storage_path else ''}."
        )
    try:
        read_verified_files(mlmodel)
    except ArtifactIntegrityError as exc:
        raise RolloutError(f"Version {mlmodel.version} was not activated: {exc}") from exc
    with transaction.atomic():
        target = MLModel.objects.select_for_update().get(pk=mlmodel.pk)
        current = (
            MLModel.objects.select_for_update()
            .filter(person_id=target.person_id, model_type=target.model_type, is_active=True)
            .exclude(pk=target.pk).first()
        )
        if not can_serve(target):
            raise RolloutError(f"Version {target.version} changed meanwhile and cannot serve.")
        before = {"active": current.version if current else None}
        if current is not None:
            current.is_active = False
            current.status = ModelStatus.ARCHIVED
            current.save(update_fields=["is_active", "status"])
        target.is_active = True
        target.status = ModelStatus.READY
        target.save(update_fields=["is_active", "status"])
        _event(action, actor=actor, reason=reason, mlmodel=target, before=before,
               after={"active": target.version})
        bump_generation()
    return target


def rollback_person_model(person, model_type: str = GLUCOSE_PREDICTION, *, actor, reason: str) -> MLModel:
    """Go back to the version the active one replaced; returns the newly active version."""
    active = MLModel.objects.for_person(person).of_type(model_type).active().select_related("parent").first()
    if active is None:
        raise RolloutError("This person has no active version to roll back from.")
    previous = previous_version(active)
    if previous is None:
        raise RolloutError(f"Version {active.version} has no earlier version that can still serve.")
    return activate_model(previous, actor=actor, reason=reason, action=EventAction.MODEL_ROLLED_BACK)


def protected_model_ids(person_id: int, model_type: str) -> set[int]:
    """Versions that must keep their files: active, previous, pinned, and what a rollout serves."""
    models = list(
        MLModel.objects.filter(person_id=person_id, model_type=model_type)
        .select_related("parent")
        .order_by("-version_major", "-version_minor", "-version_patch")
    )
    keep: set[int] = set()
    active = next((m for m in models if m.is_active), None)
    if active is not None:
        keep.add(active.pk)
        previous = previous_version(active)
        if previous is not None:
            keep.add(previous.pk)
    keep.update(
        ModelPin.objects.filter(person_id=person_id, model_type=model_type).values_list("ml_model_id", flat=True)
    )
    rollout = Rollout.objects.filter(model_type=model_type).first()
    if rollout is not None:
        for release in (rollout.stable_release, rollout.candidate_release, rollout.previous_stable_release):
            if release is not None:
                served = model_of_release(models, release)
                if served is not None:
                    keep.add(served.pk)
    return keep


def archive_model(mlmodel: MLModel, *, actor, reason: str) -> MLModel:
    """Retire a version for good: status archived, artifact files removed, row and metrics kept.

    Never the active version, the previous one, a pinned one or one a rollout serves.
    """
    reason = require_reason(reason)
    with transaction.atomic():
        target = MLModel.objects.select_for_update().get(pk=mlmodel.pk)
        if target.pk in protected_model_ids(target.person_id, target.model_type):
            raise RolloutError(
                f"Version {target.version} is active, the previous version, pinned or served by a "
                "rollout; it cannot be archived."
            )
        if target.status == ModelStatus.TRAINING:
            raise RolloutError(f"Version {target.version} is still training.")
        before = {"status": target.status, "storage_path": target.storage_path}
        _retire(target)
        _event(EventAction.MODEL_ARCHIVED, actor=actor, reason=reason, mlmodel=target, before=before,
               after={"status": target.status, "storage_path": ""})
        bump_generation()
    return target


def _retire(mlmodel: MLModel) -> None:
    """Archive a row and remove its files once the transaction commits (not before: a rolled
    back transaction must not leave a row pointing at deleted files)."""
    if mlmodel.status == ModelStatus.READY:
        mlmodel.status = ModelStatus.ARCHIVED
    path = mlmodel.storage_path
    mlmodel.storage_path = ""
    mlmodel.is_active = False
    mlmodel.save(update_fields=["status", "storage_path", "is_active"])
    if path:
        ghost = MLModel(pk=mlmodel.pk, person_id=mlmodel.person_id, model_type=mlmodel.model_type,
                        version=mlmodel.version, storage_path=path)
        transaction.on_commit(lambda: delete_artifacts(ghost))


def cleanup_old_versions(keep: int | None = None) -> dict:
    """Remove the files of versions beyond the newest `keep` per person and model type.

    Kept whatever their age: the active version, the previous one, pinned versions, the versions a
    rollout serves, and anything still training. READY rows become archived; rejected and failed
    rows keep their status (the record of that decision). Idempotent.
    """
    keep = int(settings.GLUCAST_KEEP_VERSIONS if keep is None else keep)
    counts = {"people": 0, "archived": 0, "kept": 0}
    owners = (
        MLModel.objects.exclude(storage_path="")
        .values_list("person_id", "model_type").distinct().order_by("person_id", "model_type")
    )
    for person_id, model_type in list(owners):
        counts["people"] += 1
        with transaction.atomic():
            rows = list(
                MLModel.objects.select_for_update()
                .filter(person_id=person_id, model_type=model_type)
                .order_by("-version_major", "-version_minor", "-version_patch")
            )
            protected = protected_model_ids(person_id, model_type)
            with_files = [m for m in rows if m.storage_path]
            newest = {m.pk for m in with_files[:keep]}
            for mlmodel in with_files:
                if mlmodel.pk in protected or mlmodel.pk in newest or mlmodel.status == ModelStatus.TRAINING:
                    counts["kept"] += 1
                    continue
                _retire(mlmodel)
                counts["archived"] += 1
            if counts["archived"]:
                bump_generation()
    if counts["archived"]:
        logger.info("Version cleanup: %(archived)d archived, %(kept)d kept", counts)
    return counts


# --- Retraining triggers ----------------------------------------------------------------------


AUTOMATIC_TRIGGERS = (JobTrigger.SCHEDULE, JobTrigger.DATA, JobTrigger.PERFORMANCE)


def request_trainings(person_ids, trigger: str, model_type: str = GLUCOSE_PREDICTION) -> list[int]:
    """request_training for each person (the path of every retraining trigger); the ids of the
    jobs it newly created.

    The training queue's backlog stays bounded for the automatic triggers (schedule, new data,
    performance): at most GLUCAST_RETRAIN_MAX_WAITING jobs wait to be handed out. People beyond
    that are left for the trigger's next run (they stay due: their new readings, their drop in
    accuracy or their hour of the week are still there). An operator's run (a schema
    retirement) is not held back.
    """
    started = []
    person_ids = list(person_ids)
    if trigger in AUTOMATIC_TRIGGERS:
        room = int(settings.GLUCAST_RETRAIN_MAX_WAITING) - TrainingJob.objects.waiting().count()
    else:
        room = len(person_ids)
    people = Person.objects.filter(pk__in=person_ids).order_by("pk")
    deferred = 0
    for person in people:
        if room <= 0:
            deferred += 1
            continue
        job, created = request_training(person, trigger=trigger, model_type=model_type)
        if created:
            started.append(job.pk)
            room -= 1
    if deferred:
        logger.warning("Training queue full: %d %s retrains left for the next run", deferred, trigger)
    return started


HOURS_PER_WEEK = 7 * 24
SCHEDULE_CATCH_UP = timedelta(hours=24)


def retrain_hour_of_week(person_id: int) -> int:
    """The person's hour of the week for the scheduled retrain (0 = Monday 00:00 UTC): a stable
    hash of the person's id, so the same on every machine and spread evenly over the week."""
    digest = hashlib.blake2b(str(int(person_id)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % HOURS_PER_WEEK


def retrain_slot_start(person_id: int, now):
    """The latest start of the person's retrain hour at or before `now`."""
    week_start = (now - timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    start = week_start + timedelta(hours=retrain_hour_of_week(person_id))
    return start if start <= now else start - timedelta(days=7)


def retrain_scheduled(now=None, model_type: str = GLUCOSE_PREDICTION) -> dict:
    """Weekly retraining of everyone with readings in the last week, spread over the week: the
    hourly schedule takes the people whose hour of the week (retrain_hour_of_week) began within
    the last 24 hours (a missed run or a full queue catches up the next hour), so about 1/168
    of the active people each hour instead of everyone on Monday morning.

    Once per week per person even if the schedule fires twice: people with a schedule-triggered
    job in the last 6 days are left out.
    """
    now = now or timezone.now()
    recent = now - timedelta(days=int(settings.GLUCAST_RETRAIN_SCHEDULE_ACTIVE_DAYS))
    active = set(
        Observation.objects.filter(kind=Observation.Kind.CGM, effective_at__gte=recent)
        .usable().values_list("person_id", flat=True).distinct()
    )
    people = {pid for pid in active if now - retrain_slot_start(pid, now) < SCHEDULE_CATCH_UP}
    already = set(
        TrainingJob.objects.filter(
            model_type=model_type, trigger=JobTrigger.SCHEDULE, created_at__gte=now - timedelta(days=6)
        ).values_list("person_id", flat=True)
    )
    started = request_trainings(people - already, JobTrigger.SCHEDULE, model_type)
    return {"trigger": "schedule", "active": len(active), "candidates": len(people), "started": started}


def new_readings_since_last_job(model_type: str = GLUCOSE_PREDICTION) -> dict[int, int]:
    """{person_id: readings that ARRIVED (created_at) after the person's newest training job}.

    Arrival time, not measurement time: an import of last month's readings is new data too.
    """
    last_job = (
        TrainingJob.objects.filter(person_id=OuterRef("person_id"), model_type=model_type)
        .order_by("-created_at").values("created_at")[:1]
    )
    rows = (
        Observation.objects.filter(kind=Observation.Kind.CGM).usable()
        .annotate(last_job_at=Subquery(last_job))
        .values("person_id", "created_at", "last_job_at")
    )
    # Grouping in SQL: count readings newer than the person's last job (or all, without one).
    counted = (
        rows.filter(Q(last_job_at__isnull=True) | Q(created_at__gt=F("last_job_at")))
        .values("person_id").annotate(n=Count("id")).values_list("person_id", "n")
    )
    return dict(counted)


def retrain_on_new_data(now=None, *, threshold: int | None = None, model_type: str = GLUCOSE_PREDICTION) -> dict:
    """Retrain people with at least `threshold` new readings since their last job (once: the
    job it starts becomes the new 'last job', so the count starts again from zero)."""
    threshold = int(settings.GLUCAST_RETRAIN_NEW_READINGS if threshold is None else threshold)
    counts = new_readings_since_last_job(model_type)
    due = {pid for pid, n in counts.items() if n >= threshold}
    started = request_trainings(due, JobTrigger.DATA, model_type)
    return {"trigger": "data", "threshold": threshold, "due": sorted(due), "started": started}


# --- Crashed jobs -----------------------------------------------------------------------------


def stall_after() -> timedelta:
    """A RUNNING job whose attempt started this long ago has lost its worker for good.

    django-q2 kills a task after Q_CLUSTER["timeout"] and the ORM broker hands an unacknowledged
    task out again after Q_CLUSTER["retry"]; a redelivered attempt restarts `started_at`. So once
    retry + timeout + 2 minutes have passed without a new attempt, nobody will run the job
    (GLUCAST_TRAINING_STALL_S, whose default is that sum).
    """
    return timedelta(seconds=int(settings.GLUCAST_TRAINING_STALL_S))


def queued_stall_after() -> timedelta:
    """A QUEUED job never picked up this long after it was queued lost its broker message (a
    backlog of many trainings legitimately waits a while, hence hours, not minutes)."""
    return timedelta(seconds=int(settings.GLUCAST_TRAINING_QUEUED_STALL_S))


def max_attempts() -> int:
    return int(settings.GLUCAST_TRAINING_MAX_ATTEMPTS)


def give_up_if_exhausted(job: TrainingJob) -> bool:
    """Fail a job that has used its attempts (call with the job row locked); True if it did."""
    if job.attempts < max_attempts():
        return False
    job.status = JobStatus.FAILED
    job.reason = "too_many_attempts"
    job.error = f"gave up after {job.attempts} attempts (GLUCAST_TRAINING_MAX_ATTEMPTS={max_attempts()})"
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "reason", "error", "finished_at"])
    return True


def recover_stalled_jobs(now=None) -> dict:
    """Re-queue open jobs whose worker died; after max attempts mark them failed. Idempotent and
    safe to run concurrently (locked rows are skipped)."""
    now = now or timezone.now()
    cutoff = now - stall_after()
    queued_cutoff = now - queued_stall_after()
    requeued, failed = [], []
    with transaction.atomic():
        stalled = list(
            TrainingJob.objects.select_for_update(skip_locked=True)
            .filter(status__in=OPEN_JOB_STATUSES)
            .filter(
                Q(status=JobStatus.RUNNING, started_at__lt=cutoff)
                # queued: only what was handed to the broker (a job waiting in the training
                # queue has lost nothing, however long the backlog)
                | Q(status=JobStatus.QUEUED, started_at__isnull=True, dispatched_at__lt=queued_cutoff)
                | Q(status=JobStatus.QUEUED, dispatched_at__isnull=False, started_at__lt=queued_cutoff)
            )
        )
        for job in stalled:
            if give_up_if_exhausted(job):
                failed.append(job.pk)
                continue
            job.status = JobStatus.QUEUED
            job.started_at = now  # the stall clock restarts from the re-queue
            job.dispatched_at = None  # back into the training queue, with its priority
            job.save(update_fields=["status", "started_at", "dispatched_at"])
            requeued.append(job.pk)
        if requeued:
            transaction.on_commit(dispatch_training_jobs)
    if requeued or failed:
        logger.warning("Stalled training jobs: re-queued %s, failed %s", requeued, failed)
    return {"requeued": requeued, "failed": failed}


def last_training_at(person_id: int, model_type: str = GLUCOSE_PREDICTION):
    return (
        TrainingJob.objects.filter(person_id=person_id, model_type=model_type)
        .aggregate(last=Max("created_at"))["last"]
    )
