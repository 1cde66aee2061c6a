"""Retiring a feature schema (= the release of that MAJOR): the only way a release stops being
servable. Used by `manage.py retire_schema`, which first prints the plan.

    retirement_plan(model_type, schema_version) -> dict     who is still on it, what blocks it
    retire_schema(model_type, schema_version, *, actor, reason, run_job=None, wait_s=0) -> dict

Order, so nobody is left without their model: (1) refuse while a rollout serves the release
(stable or candidate) or a pin holds someone on it; (2) retrain everyone still on it (trigger
`retirement`: their new version is compared with the baseline, not with the version that is
going away); (3) only when nobody is served by it and nobody's active version is on it, record
RetiredSchema (with an event and a generation bump). From then on its versions are never chosen,
and its builder may be removed from mlmodels/core/schemas.py.
"""

from __future__ import annotations

import time

from django.db import transaction

from mlmodels.core.schemas import REGISTRY
from mlmodels.lifecycle import request_trainings
from mlmodels.models import (
    OPEN_JOB_STATUSES,
    EventAction,
    JobTrigger,
    MLModel,
    ModelPin,
    RetiredSchema,
    Rollout,
    RolloutEvent,
    TrainingJob,
)
from mlmodels.rollouts import RolloutError, actor_fields, assign_models, bump_generation, require_reason
from mlmodels.services import pipeline_major
from persons.models import Person


def retirement_plan(model_type: str, schema_version: int) -> dict:
    version = int(schema_version)
    person_ids = list(Person.objects.order_by("pk").values_list("pk", flat=True))
    choices = assign_models(person_ids, model_type)
    served = sorted(pid for pid, c in choices.items() if c.mlmodel is not None and c.mlmodel.version_major == version)
    active = sorted(
        MLModel.objects.filter(model_type=model_type, version_major=version, is_active=True)
        .values_list("person_id", flat=True)
    )
    pins = list(
        ModelPin.objects.filter(model_type=model_type, ml_model__version_major=version)
        .values_list("person_id", "ml_model__version")
    )
    blockers = []
    rollout = Rollout.objects.filter(model_type=model_type).first()
    if rollout is not None and version in (rollout.stable_release, rollout.candidate_release):
        role = "stable" if version == rollout.stable_release else "candidate"
        blockers.append(f"the rollout serves release {version} as its {role} release: promote or change it first")
    if pins:
        blockers.append(f"{len(pins)} pin(s) hold people on release {version}: remove them first (with a reason)")
    if version == pipeline_major():
        blockers.append(f"new models are still trained as release {version}")
    return {
        "model_type": model_type,
        "schema_version": version,
        "known_to_code": version in REGISTRY,
        "already_retired": RetiredSchema.objects.filter(model_type=model_type, schema_version=version).exists(),
        "people_served": served,
        "people_active": active,
        "people_to_retrain": sorted(set(served) | set(active)),
        "pins": pins,
        "blockers": blockers,
        "versions": MLModel.objects.filter(model_type=model_type, version_major=version).count(),
    }


def retire_schema(model_type: str, schema_version: int, *, actor, reason: str, run_job=None,
                  wait_s: float = 0.0, poll_s: float = 2.0) -> dict:
    """Retrain everyone still on the schema, then mark it retired if nobody is left on it.

    `run_job(job_id)`: run each retraining job right here (the command's --train-here); without
    it the jobs go to the workers and this waits up to `wait_s` for them. Returns what happened;
    `retired` False (with `remaining`) when people are still on it — run it again later.
    """
    reason = require_reason(reason)
    plan = retirement_plan(model_type, schema_version)
    if plan["already_retired"]:
        raise RolloutError(f"Schema {schema_version} of {model_type} is already retired.")
    if plan["blockers"]:
        raise RolloutError("Cannot retire: " + "; ".join(plan["blockers"]) + ".")
    jobs = request_trainings(plan["people_to_retrain"], JobTrigger.RETIREMENT, model_type)
    if run_job is not None:
        for job_id in jobs:
            run_job(job_id)
    deadline = time.monotonic() + float(wait_s)
    while time.monotonic() < deadline and TrainingJob.objects.filter(pk__in=jobs, status__in=OPEN_JOB_STATUSES).exists():
        time.sleep(poll_s)
    after = retirement_plan(model_type, schema_version)
    outcome = {
        "before": plan, "jobs": jobs, "after": after,
        "job_results": list(TrainingJob.objects.filter(pk__in=jobs).values("id", "person_id", "status", "reason")),
    }
    remaining = after["people_to_retrain"]
    if remaining or after["blockers"]:
        return {**outcome, "retired": False, "remaining": remaining}
    with transaction.atomic():
        RetiredSchema.objects.create(
            model_type=model_type, schema_version=int(schema_version), reason=reason,
            actor_name=actor_fields(actor)["actor_name"],
            detail={"retrained": plan["people_to_retrain"], "jobs": jobs},
        )
        RolloutEvent.objects.create(
            model_type=model_type, action=EventAction.SCHEMA_RETIRED, reason=reason,
            before={"schema_version": int(schema_version), "people": plan["people_to_retrain"]},
            after={"retired": True}, evidence={"jobs": outcome["job_results"]}, **actor_fields(actor),
        )
        bump_generation()
    return {**outcome, "retired": True, "remaining": []}
