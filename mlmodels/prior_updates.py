"""Retraining when a new population prior ships.

A release-2 model records the version of the prior it was built on (its feature schema's
`prior_version`, mlmodels/core/schemas.py). When the code ships another prior, such a model is a
schema mismatch: serving falls back to the (new) prior alone (`feature_schema_mismatch`) until a
training replaces the model. This module finds those people and asks for their retraining:

    prior_update_plan(model_type, now=None) -> dict   who is on another prior, who is due now
    retrain_on_prior_change(now=None) -> dict         the hourly schedule: request their retrains

Who is due: people whose release-2 model (the active one, else the newest servable one a
rollout of release 2 would serve) was built on another prior, with readings in the last
GLUCAST_RETRAIN_SCHEDULE_ACTIVE_DAYS (someone who stopped uploading is trained by the new-data
trigger when they come back), and not already handled: a training of theirs on the shipped prior
newer than that model (deployed or not: a new model that lost to the prior alone is not retried
here — the weekly schedule keeps trying), or a job of this trigger in the last
PRIOR_RETRY_AFTER (one that was skipped or failed is retried after it, not every hour).

The load spreads through the training queue: the jobs wait with the trigger's priority (20: above
the weekly refresh, below a day of new data — the person is served by the new prior meanwhile,
as a new person is) and at most GLUCAST_TRAINING_IN_FLIGHT run at once. Admission is bounded
too: this trigger fills at most half of GLUCAST_RETRAIN_MAX_WAITING, so the new-data and
performance triggers always find room behind it; people beyond that are asked for on the next
run, the most recently active first. An open job of the person (any trigger) is never doubled:
request_training returns it (raising its priority to this trigger's if it was lower).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Max
from django.db.models.fields.json import KT
from django.utils import timezone

from mlmodels.core.population import forecast_line
from mlmodels.core.schemas import RELEASE_2
from mlmodels.models import (
    GLUCOSE_PREDICTION,
    JobStatus,
    JobTrigger,
    MLModel,
    ModelStatus,
    TrainingJob,
)
from mlmodels.rollouts import SERVABLE_STATUSES
from mlmodels.services import open_job, request_training, training_prior
from observations.models import Observation
from persons.models import Person

logger = logging.getLogger(__name__)

# A prior-change job that ended without a model on the shipped prior (skipped, failed) is asked
# for again after this long, not on every hourly run.
PRIOR_RETRY_AFTER = timedelta(days=7)
# Finished trainings: a model row on the shipped prior in one of these means "retrained".
FINISHED_STATUSES = (ModelStatus.READY, ModelStatus.REJECTED, ModelStatus.ARCHIVED)


def same_forecasts(built_on: str | None, shipped: str) -> bool:
    """A model built on any PATCH of the shipped prior's MAJOR.MINOR line needs no retrain: a PATCH
    only recalibrates the prior's bands (population.forecast_line)."""
    return built_on is not None and forecast_line(built_on) == forecast_line(shipped)


def shipped_prior_version() -> str | None:
    """The version of the prior new models are trained on; None when none is (switched off or
    not loadable): then there is nothing to move anyone to."""
    prior = training_prior()
    return None if prior is None else str(prior.version)


def _release_2_models(model_type: str, person_ids=None):
    rows = (
        MLModel.objects.filter(model_type=model_type, version_major=RELEASE_2)
        .annotate(built_on=KT("feature_schema__prior_version"))
        .order_by("person_id", "-version_major", "-version_minor", "-version_patch")
        .values("pk", "person_id", "version", "status", "is_active", "storage_path", "artifact_sha256",
                "built_on", "created_at")
    )
    return rows if person_ids is None else rows.filter(person_id__in=person_ids)


def _serving_model(rows: list[dict]) -> dict | None:
    """Of one person's release-2 rows (newest first): the active one, else the newest servable."""
    usable = [r for r in rows if r["status"] in SERVABLE_STATUSES and r["storage_path"] and r["artifact_sha256"]]
    return next((r for r in usable if r["is_active"]), usable[0] if usable else None)


def prior_update_plan(model_type: str = GLUCOSE_PREDICTION, now=None) -> dict:
    """Who is on another prior than the shipped one, and which of them are due for a retrain now.

    `on_old_prior`: {person_id: {"version", "built_on", "active", "last_reading"}} for everyone
    whose release-2 model was built on another prior; `due`: the ids to request now, most
    recently active first; the rest are explained by `inactive`, `retrained`, `recently_tried`
    and `open_jobs`.
    """
    now = now or timezone.now()
    shipped = shipped_prior_version()
    plan = {"model_type": model_type, "shipped": shipped, "on_old_prior": {}, "due": [], "inactive": [],
            "retrained": [], "recently_tried": [], "open_jobs": []}
    if shipped is None:
        return plan
    by_person: dict[int, list[dict]] = {}
    for row in _release_2_models(model_type):
        by_person.setdefault(row["person_id"], []).append(row)
    old = {}
    for person_id, rows in by_person.items():
        serving = _serving_model(rows)
        if serving is None or same_forecasts(serving["built_on"], shipped):
            continue
        newer_on_shipped = any(
            same_forecasts(r["built_on"], shipped) and r["status"] in FINISHED_STATUSES and r["created_at"] > serving["created_at"]
            for r in rows
        )
        old[person_id] = (serving, newer_on_shipped)
    if not old:
        return plan
    last_reading = dict(
        Observation.objects.filter(kind=Observation.Kind.CGM, person_id__in=list(old)).usable()
        .values("person_id").annotate(last=Max("effective_at")).values_list("person_id", "last")
    )
    tried = set(
        TrainingJob.objects.filter(
            model_type=model_type, trigger=JobTrigger.PRIOR, person_id__in=list(old),
            created_at__gte=now - PRIOR_RETRY_AFTER,
        ).exclude(status__in=(JobStatus.QUEUED, JobStatus.RUNNING)).values_list("person_id", flat=True)
    )
    open_people = set(
        TrainingJob.objects.filter(model_type=model_type, person_id__in=list(old)).open()
        .values_list("person_id", flat=True)
    )
    recent = now - timedelta(days=int(settings.GLUCAST_RETRAIN_SCHEDULE_ACTIVE_DAYS))
    due = []
    for person_id, (serving, newer_on_shipped) in sorted(old.items()):
        last = last_reading.get(person_id)
        plan["on_old_prior"][person_id] = {
            "version": serving["version"], "built_on": serving["built_on"], "active": serving["is_active"],
            "last_reading": last,
        }
        if newer_on_shipped:
            plan["retrained"].append(person_id)
        elif person_id in tried:
            plan["recently_tried"].append(person_id)
        elif last is None or last < recent:
            plan["inactive"].append(person_id)
        else:
            if person_id in open_people:
                plan["open_jobs"].append(person_id)
            due.append((last, person_id))
    plan["due"] = [pid for _last, pid in sorted(due, key=lambda item: (-item[0].timestamp(), item[1]))]
    return plan


def admission_room(model_type: str = GLUCOSE_PREDICTION) -> int:
    """How many new prior-change jobs may wait now: the backlog bound of the automatic triggers,
    of which this trigger takes at most half."""
    limit = int(settings.GLUCAST_RETRAIN_MAX_WAITING)
    waiting = TrainingJob.objects.waiting()
    total = waiting.count()
    ours = waiting.filter(trigger=JobTrigger.PRIOR).count()
    return max(0, min(limit - total, limit // 2 - ours))


def retrain_on_prior_change(now=None, model_type: str = GLUCOSE_PREDICTION) -> dict:
    """Request the retraining of everyone due (prior_update_plan) with trigger `prior`, within the
    admission room; people with an open job keep it (its priority raised, never a second job)."""
    plan = prior_update_plan(model_type, now=now)
    started, deferred = [], 0
    room = admission_room(model_type) if plan["due"] else 0
    people = Person.objects.in_bulk(plan["due"])
    for person_id in plan["due"]:
        person = people.get(person_id)
        if person is None:
            continue
        has_open = open_job(person, model_type) is not None
        if not has_open and room <= 0:
            deferred += 1
            continue
        job, created = request_training(person, trigger=JobTrigger.PRIOR, model_type=model_type)
        if created:
            started.append(job.pk)
            room -= 1
    if deferred:
        logger.warning("Prior update: %d retrains left for the next run (training queue's share full)", deferred)
    if started:
        logger.info("Prior update to %s: %d retrains requested", plan["shipped"], len(started))
    return {"trigger": "prior", "shipped": plan["shipped"], "on_old_prior": len(plan["on_old_prior"]),
            "due": len(plan["due"]), "started": started, "deferred": deferred}
