"""PATCH versions: the same point model with bands recalibrated from the person's realized
outcomes (the numbers: mlmodels/core/recalibration.py).

The outcome task (predictions/recalibration.py, which reads the prediction log) measures each
serving version's realized 80% coverage; when it drifts outside GLUCAST_RECALIBRATE_COVERAGE_TOLERANCE
it computes the band scale factors and calls request_recalibration(), which queues a cheap job
(a TrainingJob with trigger `calibration`, so it shares the one-open-job-per-person rule and the
worker). The job, run_recalibration(), loads the version, rescales its conformal quantiles and
stores the result as MAJOR.MINOR.(PATCH+1): same point model, same held-out metrics, new bands.
It takes the parent's place: active if the parent was active, else next to it (the newest
version of its release, so a rollout arm serving the parent serves the patch).

A personal calibration (docs/bands.md; predictions/recalibration.calibrate_personal_bands) is
the same kind of job with `personal` factors in its detail: the PATCH keeps the training-time
quantiles and carries the person's factors per horizon and glucose range (they replace the
parent's: each is computed against the training-time band). Its decision is "personal_calibration",
and `calibration_info` says which calibration a version's bands are (the forecast answer's
model.calibration).
"""

from __future__ import annotations

import logging

from django.db import IntegrityError, transaction
from django.utils import timezone

from mlmodels.models import (
    TRIGGER_PRIORITY,
    EventAction,
    JobStatus,
    JobTrigger,
    MLModel,
    ModelStatus,
    RolloutEvent,
    TrainingJob,
)
from mlmodels.core.recalibration import rescaled
from mlmodels.rollouts import actor_fields, bump_generation
from mlmodels.services import open_job, to_jsonable
from mlmodels.storage import delete_artifacts, load_forecaster, save_artifacts
from mlmodels.training_queue import dispatch_training_jobs
from persons.erasure import PersonErased, check_not_erased, erasure_mark

logger = logging.getLogger(__name__)


def next_patch(mlmodel: MLModel) -> tuple[int, int, int]:
    latest = (
        MLModel.objects.filter(
            person_id=mlmodel.person_id, model_type=mlmodel.model_type,
            version_major=mlmodel.version_major, version_minor=mlmodel.version_minor,
        ).order_by("-version_patch").first()
    )
    return mlmodel.version_major, mlmodel.version_minor, latest.version_patch + 1


PERSONAL_CALIBRATION = "personal_calibration"


def personal_calibration_of(mlmodel: MLModel) -> dict | None:
    """The personal factors a version's bands carry (None: training-time bands, maybe PATCHed)."""
    comparison = mlmodel.comparison or {}
    return comparison.get("personal") if comparison.get("decision") == PERSONAL_CALIBRATION else None


def calibration_info(mlmodel: MLModel | None, personal: dict | None = None) -> dict:
    """Which calibration a forecast's bands used: {version, kind, outcomes_used, updated_at}.

    `personal`: the personal factors the loaded forecaster's bands carry (conformal.personal):
    serving passes them, since it never reads the version's large JSON columns. kind "personal":
    the bands were calibrated from the person's own matched outcomes; "training": the
    training-time bands (the population's, without a personal model), maybe rescaled by a drift
    PATCH."""
    if mlmodel is None:
        return {"version": None, "kind": "training", "outcomes_used": 0, "updated_at": None}
    if personal:
        at = personal.get("at") or (mlmodel.created_at.isoformat() if mlmodel.created_at else None)
        return {"version": mlmodel.version, "kind": "personal", "outcomes_used": int(personal.get("outcomes_used", 0)),
                "updated_at": at}
    at = mlmodel.created_at if mlmodel.parent_id else (mlmodel.trained_at or mlmodel.created_at)
    return {"version": mlmodel.version, "kind": "training", "outcomes_used": 0,
            "updated_at": at.isoformat() if at else None}


def request_recalibration(
    mlmodel: MLModel, *, factors: dict, evidence: dict, personal: dict | None = None
) -> TrainingJob | None:
    """Queue a PATCH of `mlmodel` with these band scale factors (or, with `personal`, the person's
    own calibration factors); None when a job is already open."""
    if open_job(mlmodel.person, mlmodel.model_type) is not None:
        return None
    try:
        with transaction.atomic():
            job = TrainingJob.objects.create(
                person_id=mlmodel.person_id, model_type=mlmodel.model_type, trigger=JobTrigger.CALIBRATION,
                status=JobStatus.QUEUED, priority=TRIGGER_PRIORITY[JobTrigger.CALIBRATION],
                detail=to_jsonable({"model_id": mlmodel.pk, "version": mlmodel.version, "factors": factors,
                                    "evidence": evidence, **({"personal": personal} if personal else {})}),
            )
    except IntegrityError:  # another job opened in between
        return None
    transaction.on_commit(dispatch_training_jobs)  # waits in the training queue by priority
    return job


def _save_job_unless_erased(job: TrainingJob, mark) -> None:
    """Never re-create a job row that an erasure deleted (a plain save would)."""
    with transaction.atomic():
        try:
            check_not_erased(job.person_id, mark)
        except PersonErased:
            return
        job.save(force_update=True)


def run_recalibration(job: TrainingJob, *, mark=None) -> TrainingJob:
    """Store the PATCH version the job asks for; the job ends succeeded (`recalibrated`) or failed.

    `mark` (the person's erasure count when the job began): each write re-checks it in its own
    transaction, so a "delete all my data" meanwhile leaves nothing of the job (persons/erasure.py).
    """
    if mark is None:
        mark = erasure_mark(job.person_id)
    patch = None
    try:
        parent = MLModel.objects.select_related("person").get(pk=job.detail["model_id"])
        if not parent.storage_path:
            raise ValueError(f"version {parent.version} has no stored files any more")
        forecaster = load_forecaster(parent)
        personal = job.detail.get("personal")
        if personal:
            forecaster.conformal.personal = personal
        else:
            forecaster.conformal = rescaled(forecaster.conformal, job.detail["factors"])
        major, minor, patch_no = next_patch(parent)
        with transaction.atomic():
            check_not_erased(job.person_id, mark)
            patch = MLModel.objects.create(
                person=parent.person, model_type=parent.model_type,
                version=f"{major}.{minor}.{patch_no}", version_major=major, version_minor=minor,
                version_patch=patch_no, algorithm=parent.algorithm, trained_at=parent.trained_at,
                data_start=parent.data_start, data_end=parent.data_end, n_readings=parent.n_readings,
                hyperparameters=parent.hyperparameters, feature_schema=parent.feature_schema,
                metrics=parent.metrics, status=ModelStatus.TRAINING, parent=parent,
                comparison=(
                    {"decision": PERSONAL_CALIBRATION, "rule": "same point model, bands calibrated per horizon "
                     "and glucose range from the person's own matched outcomes (docs/bands.md)", **job.detail}
                    if personal else
                    {"decision": "recalibrated", "rule": "same point model, bands rescaled so the "
                     "realized outcomes fall inside at the nominal level", **job.detail}
                ),
            )
        metadata = {"version": patch.version, "recalibrated_from": parent.version, "factors": job.detail["factors"],
                    "feature_schema": parent.feature_schema, "algorithm": parent.algorithm}
        save_artifacts(patch, forecaster.to_files(), to_jsonable(metadata),
                       f"PATCH of {parent.version}: " + (
                           f"personal band calibration from {personal.get('outcomes_used')} outcomes\n" if personal
                           else f"bands rescaled by {job.detail['factors']}\n"))
        with transaction.atomic():
            check_not_erased(job.person_id, mark)
            parent = MLModel.objects.select_for_update().get(pk=parent.pk)
            patch.status = ModelStatus.READY
            if parent.is_active:
                parent.is_active = False
                parent.status = ModelStatus.ARCHIVED
                parent.save(update_fields=["is_active", "status"])
                patch.is_active = True
            patch.save()
            RolloutEvent.objects.create(
                model_type=patch.model_type, action=EventAction.MODEL_RECALIBRATED,
                reason=(
                    f"bands calibrated from the person's own {personal.get('outcomes_used')} matched outcomes"
                    if personal else
                    f"realized 80% coverage {job.detail.get('evidence', {}).get('coverage_80')} "
                    f"outside the tolerance; bands rescaled"
                ),
                before={"version": parent.version}, after={"version": patch.version, "active": patch.is_active},
                evidence=job.detail.get("evidence", {}), person=patch.person, ml_model=patch, **actor_fields(None),
            )
            bump_generation()
    except PersonErased:
        if patch is not None and patch.pk:
            delete_artifacts(patch)  # its row went with the erasure
        logger.info("Recalibration job %s: the person's data was deleted meanwhile; nothing kept", job.pk)
        return job
    except Exception as exc:  # noqa: BLE001 - the job records why
        logger.exception("Recalibration job %s failed", job.pk)
        if patch is not None and patch.pk:
            delete_artifacts(patch)
            MLModel.objects.filter(pk=patch.pk).update(status=ModelStatus.FAILED, storage_path="",
                                                       artifact_manifest={}, artifact_sha256="",
                                                       error=f"{exc.__class__.__name__}: {exc}")
        job.status, job.reason, job.error = JobStatus.FAILED, "error", f"{exc.__class__.__name__}: {exc}"
        job.finished_at = timezone.now()
        _save_job_unless_erased(job, mark)
        return job
    job.model = patch
    job.status, job.reason = JobStatus.SUCCEEDED, "recalibrated"
    job.detail = {**job.detail, "patch_version": patch.version}
    job.finished_at = timezone.now()
    _save_job_unless_erased(job, mark)
    logger.info("Recalibrated %s -> %s for person %s", parent.version, patch.version, patch.person_id)
    return job
