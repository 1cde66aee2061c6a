"""A new population prior ships: people whose release-2 model was built on the old one are
retrained by the hourly check, once, with the trigger `prior`, and their new model records the
shipped prior. Real models: a release-2 training, then its stored artifact and row rewritten the
way a model built on an earlier prior looks (the shipped prior is never touched); the last test
runs the scheduled task and a real qcluster."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.core.management import call_command

from mlmodels.core.features import FeatureSchemaMismatch
from mlmodels.core.forecaster import MANIFEST
from mlmodels.core.population import shipped_prior
from mlmodels.lifecycle import activate_model
from mlmodels.models import TRIGGER_PRIORITY, JobStatus, JobTrigger, MLModel, TrainingJob
from mlmodels.prior_updates import prior_update_plan, retrain_on_prior_change
from mlmodels.storage import (
    LOG_FILE,
    METADATA_FILE,
    RESERVED_FILES,
    load_forecaster,
    read_verified_files,
    save_artifacts,
)
from mlmodels.tasks import retrain_on_prior_change_task, run_training_job
from tests.factories import PersonFactory
from tests.mlmodels.conftest import store_readings, synthetic_readings
from tests.mlmodels.test_mlmodels_worker import wait_for_final_status
from tests.workers import running_qcluster

pytestmark = pytest.mark.django_db

OLD_PRIOR = "prior-0.9.0-test"
# The readings end now: these people are active (the command looks at the real clock).
NOW = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)


@pytest.fixture(autouse=True)
def _now_is_when_the_test_starts():
    # Taken again for each test, not once at import: a test that ran long after the module was
    # imported (a slow suite, or bin/test-at's clock) saw its people as inactive.
    global NOW
    NOW = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)


def built_on_older_prior(model: MLModel, version: str = OLD_PRIOR) -> MLModel:
    """Rewrite a stored release-2 model as one trained on another prior: its manifest and
    metadata name that prior, the row's feature schema too, the checksums are recomputed."""
    files = read_verified_files(model)
    manifest = json.loads(files[MANIFEST])
    manifest["feature_schema"]["prior_version"] = version
    files[MANIFEST] = json.dumps(manifest).encode()
    metadata = json.loads(files[METADATA_FILE])
    metadata["feature_schema"]["prior_version"] = version
    log = files[LOG_FILE].decode()
    model_files = {name: data for name, data in files.items() if name not in RESERVED_FILES}
    save_artifacts(model, model_files, metadata, log)
    model.feature_schema = {**model.feature_schema, "prior_version": version}
    model.save(update_fields=["feature_schema", "storage_path", "artifact_manifest", "artifact_sha256"])
    return model


@pytest.fixture
def on_old_prior(person, settings, artifact_root):
    settings.GLUCAST_TRAINING_TIME_BUDGET_S = 3
    settings.GLUCAST_POPULATION_PRIOR = True
    store_readings(person, synthetic_readings(8, seed=11, end=NOW - dt.timedelta(minutes=5)))
    job = TrainingJob.objects.create(person=person, trigger=JobTrigger.OPERATOR)
    assert run_training_job(job.pk) == JobStatus.SUCCEEDED
    model = TrainingJob.objects.get(pk=job.pk).model
    assert model.version_major == 2 and model.feature_schema["prior_version"] == shipped_prior().version
    if not model.is_active:  # lost to the prior alone on this synthetic person: serve it anyway
        model = activate_model(model, actor="test", reason="the test needs an active release-2 model")
    return built_on_older_prior(model)


def test_a_model_on_an_older_prior_is_retrained_once_and_records_the_shipped_prior(on_old_prior, capsys):
    old = on_old_prior
    shipped = shipped_prior().version
    with pytest.raises(FeatureSchemaMismatch, match=OLD_PRIOR):  # serving falls back to the prior
        load_forecaster(old)

    call_command("prior_update")
    out = capsys.readouterr().out
    assert f"Shipped prior: {shipped}. On another prior: 1 people." in out
    assert f"version {old.version} built on {OLD_PRIOR}" in out and "Due now: 1" in out

    first = retrain_on_prior_change(now=NOW)
    assert first["on_old_prior"] == 1 and len(first["started"]) == 1
    assert retrain_on_prior_change(now=NOW)["started"] == []  # the queued job is never doubled
    call_command("prior_update", "--request")
    job = TrainingJob.objects.get(trigger=JobTrigger.PRIOR)
    assert TrainingJob.objects.filter(person=old.person).open().count() == 1
    assert job.priority == TRIGGER_PRIORITY[JobTrigger.PRIOR]
    assert TRIGGER_PRIORITY[JobTrigger.SCHEDULE] < job.priority < TRIGGER_PRIORITY[JobTrigger.DATA]

    assert run_training_job(job.pk) == JobStatus.SUCCEEDED
    job.refresh_from_db()
    new = job.model
    assert new.feature_schema["prior_version"] == shipped
    assert load_forecaster(new).features.prior.version == shipped
    # The old model could not be loaded with this prior: the new one was compared with the prior alone.
    assert new.comparison["reference"]["kind"] == "population"
    # Deployed or not (it must beat the prior alone), the person is not asked for again.
    plan = prior_update_plan(now=NOW)
    assert plan["due"] == []
    assert retrain_on_prior_change(now=NOW)["started"] == []
    assert TrainingJob.objects.filter(trigger=JobTrigger.PRIOR).count() == 1


def test_a_model_on_another_patch_of_the_shipped_prior_is_not_retrained(on_old_prior):
    """A PATCH of the prior only recalibrates its bands: same forecasts, nothing to retrain."""
    major, minor, _patch = str(shipped_prior().version).rpartition("-")[2].split(".")
    model = built_on_older_prior(on_old_prior, f"prior-{major}.{minor}.999")
    plan = prior_update_plan()
    assert model.person_id not in plan["on_old_prior"] and plan["due"] == []
    assert retrain_on_prior_change()["started"] == []


def test_the_check_skips_inactive_people_and_keeps_room_for_the_other_triggers(on_old_prior, settings):
    later = NOW + dt.timedelta(days=30)  # no readings for a month: left to the new-data trigger
    plan = prior_update_plan(now=later)
    assert plan["inactive"] == [on_old_prior.person_id] and plan["due"] == []
    assert retrain_on_prior_change(now=later)["started"] == []

    # The prior trigger fills at most half of the automatic backlog bound.
    settings.GLUCAST_RETRAIN_MAX_WAITING = 2
    TrainingJob.objects.create(person=PersonFactory(), trigger=JobTrigger.PRIOR, priority=20)
    result = retrain_on_prior_change(now=NOW)
    assert result["started"] == [] and result["deferred"] == 1
    TrainingJob.objects.filter(trigger=JobTrigger.PRIOR).delete()
    assert len(retrain_on_prior_change(now=NOW)["started"]) == 1


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_replaces_the_model_after_the_hourly_check(on_old_prior, artifact_root, tmp_path):
    """The scheduled task (as django-q2 calls it) queues the job; a real qcluster trains it."""
    log_path = tmp_path / "qcluster.log"
    with running_qcluster(artifact_root=artifact_root, log_path=log_path,
                          GLUCAST_TRAINING_TIME_BUDGET_S="3") as process:
        result = retrain_on_prior_change_task()  # autocommit: the training queue hands it out at once
        assert len(result["started"]) == 1
        job, _seen = wait_for_final_status(result["started"][0], process, log_path)
    assert job.status == JobStatus.SUCCEEDED, f"{job.reason} {job.error}"
    assert job.trigger == JobTrigger.PRIOR
    assert job.model.feature_schema["prior_version"] == shipped_prior().version
    assert retrain_on_prior_change_task()["started"] == []
