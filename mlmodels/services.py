"""Training, versioning and deployment of per-person models (the Django side of mlmodels).

Flow: request_training() records a TrainingJob with its trigger's priority and, once the
surrounding transaction commits, runs the training queue (mlmodels/training_queue.py), which hands
the highest-priority waiting jobs to django-q2 workers; a worker calls train_person(). The management command
`train_models` calls train_person() directly. Web requests never train.

Deploy only if better: a new version becomes active only when it beats the reference on the
SAME held-out period — the currently active version if there is one (evaluated with
mlmodels.core.training.evaluate_on on the new version's test period), else the population prior
served alone (what answers the person today), else, where the prior cannot load, the AR2
baseline. The
score is the mean of MAE at 30 and 60 minutes (DEPLOY_HORIZONS); the new version must be
strictly lower. Otherwise it is kept as `rejected` with both sets of numbers in `comparison`.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import traceback
from dataclasses import asdict, is_dataclass
from datetime import datetime

import pandas as pd
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from mlmodels.core.coldstart import PopulationForecaster
from mlmodels.core.evaluation import DEPLOY_HORIZONS, FAR_TIEBREAK_HORIZONS, decide, deploy_score  # noqa: F401 - the rule lives in the core
from mlmodels.core.schemas import RELEASE_1, RELEASE_2, RELEASE_3, PriorUnavailable, Release3Features, load_prior
from mlmodels.core.treatments import KERNEL_MIN, LOGGED_RECENTLY_MIN, Treatments
from mlmodels.models import (
    GLUCOSE_PREDICTION,
    OPEN_JOB_STATUSES,
    JobStatus,
    JobTrigger,
    TRIGGER_PRIORITY,
    MLModel,
    ModelStatus,
    TrainingJob,
    metric_value,
)
from mlmodels.storage import (
    ArtifactIntegrityError,
    artifact_storage,
    delete_artifacts,
    library_versions,
    load_forecaster,
    save_artifacts,
)
from mlmodels.training_queue import dispatch_training_jobs
from persons.erasure import PersonErased, check_not_erased, erasure_mark
from observations.readings import readings_frame
from observations.treatments.services import treatments_between

logger = logging.getLogger(__name__)



def training_prior():
    """The population prior new models start from (release 2), or None: release 1 is trained
    when the prior cannot load in this process (the reason is logged) or is switched off
    (GLUCAST_POPULATION_PRIOR)."""
    if not settings.GLUCAST_POPULATION_PRIOR:
        return None
    try:
        return load_prior()
    except PriorUnavailable as exc:
        logger.error("Training release 1: %s", exc)
        return None


def pipeline_major() -> int:
    """MAJOR of every version = the feature schema version (release) training produces now:
    release 3 (treatments as inputs) when GLUCAST_TRAIN_RELEASE_3 is on, else release 2."""
    if training_prior() is None:
        return RELEASE_1
    return RELEASE_3 if settings.GLUCAST_TRAIN_RELEASE_3 else RELEASE_2


def training_time_budget_s() -> float:
    return float(settings.GLUCAST_TRAINING_TIME_BUDGET_S)


# --- Reading the registry ---------------------------------------------------------------------


def active_model(person, model_type: str = GLUCOSE_PREDICTION) -> MLModel | None:
    return MLModel.objects.for_person(person).of_type(model_type).active().first()


def next_version(person, model_type: str = GLUCOSE_PREDICTION, major: int | None = None) -> tuple[int, int, int]:
    """MAJOR.0.0 for the first model of a schema, then each retrain bumps MINOR.

    Counts every version of this MAJOR (rejected and failed ones too), so numbers are never reused.
    """
    major = pipeline_major() if major is None else int(major)
    latest = (
        MLModel.objects.for_person(person)
        .of_type(model_type)
        .filter(version_major=major)
        .newest_first()
        .first()
    )
    if latest is None:
        return major, 0, 0
    return major, latest.version_minor + 1, 0


# --- Requesting training ----------------------------------------------------------------------


def open_job(person, model_type: str = GLUCOSE_PREDICTION) -> TrainingJob | None:
    return TrainingJob.objects.for_person(person).filter(model_type=model_type).open().first()


def request_training(
    person, *, trigger: str = JobTrigger.API, model_type: str = GLUCOSE_PREDICTION
) -> tuple[TrainingJob, bool]:
    """Queue a training job for a person; (job, created).

    While a job is queued or running for this person and model type, that job is returned
    (created=False). Two concurrent calls cannot both create one: a partial unique constraint
    refuses the second insert, which then returns the winner's job. The django-q2 task is only
    enqueued after the transaction commits, so a worker never looks for an uncommitted job.

    The job waits in the training queue with its trigger's priority; an open job that still
    waits gets the higher priority of a new request (the person asked: they wait least).
    """
    priority = TRIGGER_PRIORITY.get(trigger, 0)
    existing = open_job(person, model_type)
    if existing is not None and not fail_if_stale(existing):
        if TrainingJob.objects.filter(pk=existing.pk, priority__lt=priority).update(priority=priority):
            transaction.on_commit(dispatch_training_jobs)
        return existing, False
    try:
        with transaction.atomic():
            job = TrainingJob.objects.create(
                person=person, model_type=model_type, trigger=trigger, status=JobStatus.QUEUED,
                priority=priority,
            )
    except IntegrityError:
        existing = open_job(person, model_type)
        if existing is None:  # the other job finished in between: try once more
            return request_training(person, trigger=trigger, model_type=model_type)
        return existing, False
    transaction.on_commit(dispatch_training_jobs)
    return job, True


def stale_after_s() -> float:
    """An open job older than this was lost (worker killed beyond django-q2's retries)."""
    q = settings.Q_CLUSTER
    return float(q.get("retry", 720)) * (int(q.get("max_attempts", 3) or 3) + 1)


def fail_if_stale(job: TrainingJob) -> bool:
    """Mark a lost open job failed (reason `stale`) so the person can train again; True if so.
    A job still waiting in the training queue was never handed out, so it cannot be lost."""
    since = job.started_at or job.dispatched_at
    if since is None or (timezone.now() - since).total_seconds() <= stale_after_s():
        return False
    updated = TrainingJob.objects.filter(pk=job.pk, status__in=OPEN_JOB_STATUSES).update(
        status=JobStatus.FAILED,
        reason="stale",
        error=f"no result after {stale_after_s():.0f} s; the worker was probably stopped",
        finished_at=timezone.now(),
    )
    if updated:
        logger.warning("Training job %s of person %s marked stale", job.pk, job.person_id)
    return True


# --- Training ---------------------------------------------------------------------------------


def train_person(
    person,
    *,
    job: TrainingJob | None = None,
    trigger: str = JobTrigger.OPERATOR,
    model_type: str = GLUCOSE_PREDICTION,
    time_budget_s: float | None = None,
    release: int | None = None,
    data_until: datetime | None = None,
) -> TrainingJob:
    """Train, store and (only if better) deploy a new version for one person.

    `release`: the release (feature schema) to train, default what the pipeline trains now
    (pipeline_major); 1 trains without the population prior. `data_until`: use only the readings
    up to this moment (a replay that serves the days after it, config/demo_rollout.py); default all.

    Without `job` (the management command) a running job is created here; if the person already
    has a queued or running job, a `skipped` job with reason `job_already_open` is returned and
    nothing is trained. The returned job is final: succeeded (reason `deployed` or
    `not_better`), skipped (`insufficient_data`, with the numbers in `detail`) or failed.
    """
    if job is None:
        try:
            with transaction.atomic():
                job = TrainingJob.objects.create(
                    person=person,
                    model_type=model_type,
                    trigger=trigger,
                    status=JobStatus.RUNNING,
                    started_at=timezone.now(),
                    attempts=1,
                )
        except IntegrityError:
            other = open_job(person, model_type)
            return TrainingJob.objects.create(
                person=person,
                model_type=model_type,
                trigger=trigger,
                status=JobStatus.SKIPPED,
                reason="job_already_open",
                detail={"open_job_id": other.pk if other else None},
                finished_at=timezone.now(),
            )

    # Taken before any reading is read: every write below re-checks it in its own transaction,
    # so a "delete all my data" meanwhile leaves nothing of this job behind.
    mark = erasure_mark(person.pk)
    try:
        return _train(person, job, model_type, time_budget_s, mark, release=release, data_until=data_until)
    except PersonErased:
        logger.info("Training job %s: person %s's data was deleted meanwhile; nothing kept", job.pk, person.pk)
        _forget_erased(person, job)
        return job


def _forget_erased(person, job: TrainingJob) -> None:
    """After an erasure overtook the job: its rows went with the erasure and a version's files
    with the failed write (_store); empty folders it made are removed too."""
    try:
        root = artifact_storage().path(f"models/{person.pk}")
    except NotImplementedError:  # storages without folders
        return
    for directory, _subdirectories, files in os.walk(root, topdown=False):
        if not files and not os.listdir(directory):
            os.rmdir(directory)


def _save_job(job: TrainingJob, mark) -> None:
    """Save a job's final state unless its person's data was erased (never re-create the row)."""
    with transaction.atomic():
        check_not_erased(job.person_id, mark)
        job.save(force_update=True)


def prior_for_release(release: int | None):
    """The prior a training of `release` starts from: None for release 1, the shipped prior for
    release 2 (PriorUnavailable where it cannot load: asked for release 2, never a silent 1)."""
    if release is None:
        return training_prior()
    if release == RELEASE_1:
        return None
    if release in (RELEASE_2, RELEASE_3):
        return load_prior()
    raise ValueError(f"release {release} cannot be trained by this code (it trains releases 1, 2 and 3)")


def training_treatments(person, readings, release: int):
    """Release 3: the person's recorded treatments over their readings' span (plus the look-back
    the features need), as the numeric core reads them; None for other releases."""
    if release != RELEASE_3:
        return None
    if len(readings) == 0:
        return Treatments()
    start = pd.Timestamp(readings["time"].iloc[0]) - pd.Timedelta(minutes=max(KERNEL_MIN, LOGGED_RECENTLY_MIN))
    end = pd.Timestamp(readings["time"].iloc[-1])
    return Treatments.from_frame(treatments_between(person=person, start=start.to_pydatetime(), end=end.to_pydatetime()))


def _train(person, job, model_type, time_budget_s, mark, *, release=None, data_until=None) -> TrainingJob:
    mlmodel = None
    try:
        from mlmodels.core import training  # XGBoost and scikit-learn load on the first training

        prior = prior_for_release(release)
        readings = readings_frame(person, end=data_until)
        budget = training_time_budget_s() if time_budget_s is None else time_budget_s
        treatments = training_treatments(person, readings, pipeline_major() if release is None else release)
        try:
            result = training.train_forecaster(
                readings, tz=person.time_zone, time_budget_s=budget, prior=prior, treatments=treatments
            )
        except training.InsufficientData as exc:  # the core may raise it ...
            return _finish_skipped(job, exc, mark)
        if isinstance(result, training.InsufficientData):  # ... or return it
            return _finish_skipped(job, result, mark)

        mlmodel = _create_version(person, model_type, result, mark)
        _store(mlmodel, result, mark)
        # A retirement retrain moves the person off a schema that is going away: its active
        # version is not the reference to beat (the baseline is), or nobody could ever leave it.
        comparison = compare_with_reference(
            mlmodel, result, readings, use_active=job.trigger != JobTrigger.RETIREMENT, treatments=treatments
        )
        _decide(mlmodel, comparison, mark)
    except PersonErased:
        raise
    except Exception as exc:
        _finish_failed(job, mlmodel, exc, mark)
        return job

    job.model = mlmodel
    job.status = JobStatus.SUCCEEDED
    job.reason = "deployed" if mlmodel.is_active else "not_better"
    job.detail = {"version": mlmodel.version, "decision": comparison.get("decision")}
    job.finished_at = timezone.now()
    _save_job(job, mark)
    logger.info("Trained %s for person %s: %s", mlmodel.version, person.pk, job.reason)
    return job


def _create_version(person, model_type: str, result, mark) -> MLModel:
    # Retried on a unique-version clash: two trainings of one person racing for a number.
    for _ in range(3):
        major, minor, patch = next_version(person, model_type, int(result.feature_schema["version"]))
        try:
            with transaction.atomic():
                check_not_erased(person.pk, mark)
                return MLModel.objects.create(
                    person=person,
                    model_type=model_type,
                    version=f"{major}.{minor}.{patch}",
                    version_major=major,
                    version_minor=minor,
                    version_patch=patch,
                    algorithm=str(result.algorithm),
                    trained_at=timezone.now(),
                    data_start=result.data_start,
                    data_end=result.data_end,
                    n_readings=int(result.n_readings),
                    hyperparameters=to_jsonable(result.hyperparameters),
                    feature_schema=to_jsonable(result.feature_schema),
                    metrics=to_jsonable(result.metrics),
                    status=ModelStatus.TRAINING,
                    parent=active_model(person, model_type),
                )
        except IntegrityError:
            continue
    raise RuntimeError("could not reserve a version number for the new model")


def _store(mlmodel: MLModel, result, mark) -> None:
    files = result.forecaster.to_files()
    metadata = {
        "person_id": mlmodel.person_id,
        "model_type": mlmodel.model_type,
        "version": mlmodel.version,
        "trained_at": mlmodel.trained_at,
        "algorithm": mlmodel.algorithm,
        "data_start": mlmodel.data_start,
        "data_end": mlmodel.data_end,
        "n_readings": mlmodel.n_readings,
        "test_period": to_jsonable(getattr(result, "test_period", None)),
        "feature_schema": mlmodel.feature_schema,
        "features": feature_list(mlmodel.feature_schema),
        "hyperparameters": mlmodel.hyperparameters,
        "metrics": mlmodel.metrics,
        "forecaster": to_jsonable(_safe_forecaster_metadata(result.forecaster)),
        "library_versions": library_versions(),
    }
    log_text = result.log if isinstance(result.log, str) else "\n".join(map(str, result.log or []))
    try:
        save_artifacts(mlmodel, files, metadata, log_text)
        with transaction.atomic():
            check_not_erased(mlmodel.person_id, mark)
            mlmodel.save(update_fields=["storage_path", "artifact_manifest", "artifact_sha256"])
    except BaseException:
        delete_artifacts(mlmodel)
        raise


def _safe_forecaster_metadata(forecaster) -> dict:
    getter = getattr(forecaster, "metadata", None)
    return getter() if callable(getter) else {}


def feature_list(feature_schema) -> list[str]:
    if isinstance(feature_schema, dict):
        return list(feature_schema.get("names") or feature_schema.get("features") or [])
    return list(feature_schema or [])


# --- Deploy only if better --------------------------------------------------------------------


def compare_with_reference(mlmodel: MLModel, result, readings, *, use_active: bool = True, treatments=None) -> dict:
    """Score the new version and its reference with evaluate_on on the new test period.

    The candidate is scored as it was before its final refit (`result.evaluated_forecaster`):
    the served forecaster is refitted on all data and has seen the test period. The reference is
    the active version as served; if its training data overlapped the test period it has seen
    part of it (`saw_test_period`), which favours keeping it — deployment errs on the cautious
    side. Without an active version (or with one that cannot be loaded) the reference is what
    would answer the person instead: the population prior served alone, or where it cannot load
    the AR2 baseline (scored by the same evaluate_on call on the same rows). A release-3 reference
    is scored with the person's recorded treatments (`treatments`, else read here), as it serves.
    """
    from mlmodels.core import training

    start, end = _test_period(result)
    tz = mlmodel.person.time_zone
    horizons = list(DEPLOY_HORIZONS) + list(FAR_TIEBREAK_HORIZONS)
    candidate = getattr(result, "evaluated_forecaster", None) or result.forecaster
    candidate_metrics = training.evaluate_on(candidate, readings, start, end, tz=tz, horizons=horizons)
    active = (
        MLModel.objects.for_person(mlmodel.person).of_type(mlmodel.model_type).active()
        .exclude(pk=mlmodel.pk).first()
    )
    reference: dict = {"kind": "baseline", "version": None, "algorithm": "ar2_baseline"}
    reference_metrics = None
    if active is not None and not use_active:
        reference["active_id"] = active.pk
        reference["active_skipped"] = f"version {active.version} is on a schema being retired"
    elif active is not None:
        try:
            reference_forecaster = load_forecaster(active)
            if isinstance(reference_forecaster.features, Release3Features):
                reference_forecaster = copy.copy(reference_forecaster)
                reference_forecaster.features = reference_forecaster.features.bind(
                    treatments if treatments is not None else training_treatments(mlmodel.person, readings, RELEASE_3))
            reference_metrics = training.evaluate_on(
                reference_forecaster, readings, start, end, tz=tz, horizons=horizons
            )
            reference = {
                "kind": "active",
                "version": active.version,
                "id": active.pk,
                "algorithm": active.algorithm,
                "saw_test_period": bool(active.data_end and active.data_end > pd_timestamp(start)),
            }
        except ArtifactIntegrityError as exc:
            reference["active_unloadable"] = str(exc)
            reference["active_id"] = active.pk
        except Exception as exc:  # e.g. a feature schema the current code cannot read
            reference["active_unloadable"] = f"{exc.__class__.__name__}: {exc}"
            reference["active_id"] = active.pk
    if reference_metrics is None:
        population = _population_reference()
        if population is not None:
            reference_metrics = training.evaluate_on(population, readings, start, end, tz=tz, horizons=horizons)
            reference = {
                **reference, "kind": "population", "version": population.version, "algorithm": "population_prior",
            }
    if reference_metrics is None:
        comparison = decide(candidate_metrics, candidate_metrics, reference_is_baseline=True)
    else:
        comparison = decide(candidate_metrics, reference_metrics)
    comparison.update(
        {
            "reference": reference,
            "period": {"start": to_jsonable(start), "end": to_jsonable(end)},
            "n_origins": candidate_metrics.get("n_origins"),
            "candidate_metrics": to_jsonable(candidate_metrics.get("per_horizon", {}).get("model")),
            "reference_metrics": to_jsonable(
                (reference_metrics or candidate_metrics).get("per_horizon", {})
                .get("baseline_ar2" if reference_metrics is None else "model")
            ),
        }
    )
    return comparison


def _population_reference():
    prior = training_prior()
    return PopulationForecaster(prior) if prior is not None else None


def pd_timestamp(value):
    import pandas as pd

    return pd.Timestamp(value).to_pydatetime()


def _test_period(result) -> tuple[datetime, datetime]:
    period = result.test_period
    if isinstance(period, dict):
        return period["start"], period["end"]
    if hasattr(period, "start"):
        return period.start, period.end
    start, end = period
    return start, end


def _decide(mlmodel: MLModel, comparison: dict, mark) -> None:
    """Record the comparison and switch the active version atomically if the new one won."""
    with transaction.atomic():
        check_not_erased(mlmodel.person_id, mark)
        current = (
            MLModel.objects.select_for_update()
            .for_person(mlmodel.person).of_type(mlmodel.model_type).active()
            .exclude(pk=mlmodel.pk).first()
        )
        reference = comparison["reference"]
        reference_id = reference.get("id") or reference.get("active_id")
        still_same_reference = reference_id == (current.pk if current else None)
        if comparison["better"] and not still_same_reference:
            # Someone activated another version while we evaluated: do not override them blindly.
            comparison["better"] = False
            comparison["decision"] = "rejected: the active version changed during training"
        mlmodel.comparison = to_jsonable(comparison)
        if comparison["better"]:
            if current is not None:
                current.is_active = False
                current.status = ModelStatus.ARCHIVED
                current.save(update_fields=["is_active", "status"])
            mlmodel.status = ModelStatus.READY
            mlmodel.is_active = True
        else:
            mlmodel.status = ModelStatus.REJECTED
            mlmodel.is_active = False
        mlmodel.save(update_fields=["comparison", "status", "is_active"])


# --- Outcomes ---------------------------------------------------------------------------------


def _finish_skipped(job: TrainingJob, insufficient, mark) -> TrainingJob:
    job.status = JobStatus.SKIPPED
    job.reason = str(getattr(insufficient, "reason", "insufficient_data") or "insufficient_data")
    job.detail = to_jsonable(_insufficient_detail(insufficient))
    job.finished_at = timezone.now()
    _save_job(job, mark)
    return job


def _insufficient_detail(insufficient) -> dict:
    for attribute in ("figures", "detail", "details"):
        value = getattr(insufficient, attribute, None)
        if isinstance(value, dict):
            return dict(value)
    if is_dataclass(insufficient):
        return {k: v for k, v in asdict(insufficient).items() if k != "reason"}
    return {"message": str(insufficient)}


def _finish_failed(job: TrainingJob, mlmodel: MLModel | None, exc: Exception, mark) -> None:
    logger.exception("Training job %s for person %s failed", job.pk, job.person_id)
    error = f"{exc.__class__.__name__}: {exc}"
    if mlmodel is not None and mlmodel.pk is not None:
        delete_artifacts(mlmodel)
        MLModel.objects.filter(pk=mlmodel.pk).update(
            status=ModelStatus.FAILED,
            is_active=False,
            error=error + "\n" + traceback.format_exc(limit=8),
            storage_path="",
            artifact_manifest={},
            artifact_sha256="",
        )
    job.status = JobStatus.FAILED
    job.reason = "error"
    job.error = error
    job.model_id = mlmodel.pk if mlmodel is not None and mlmodel.pk else None
    job.finished_at = timezone.now()
    _save_job(job, mark)


def to_jsonable(value):
    """Numbers, timestamps and small structures from the numeric core as plain JSON values."""
    import numpy as np
    import pandas as pd

    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, (pd.Timestamp, datetime)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, np.ndarray)):
        return [to_jsonable(v) for v in value]
    if is_dataclass(value):
        return to_jsonable(asdict(value))
    if hasattr(value, "to_dict"):
        return to_jsonable(value.to_dict())
    return str(value)
