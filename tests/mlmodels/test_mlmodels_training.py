"""train_person: insufficient data, versioning, artifacts of a real model, deploy-if-better."""

import numpy as np
import pytest

from mlmodels.models import JobStatus, MLModel, ModelStatus, TrainingJob
from mlmodels.services import active_model, decide, next_version, train_person
from mlmodels.storage import ArtifactIntegrityError, load_forecaster
from observations.models import Observation
from observations.readings import readings_frame
from tests.mlmodels.conftest import store_readings, synthetic_readings

pytestmark = pytest.mark.django_db


@pytest.fixture
def trained(person_with_readings, artifact_root):
    job = train_person(person_with_readings, trigger="operator", time_budget_s=3)
    assert job.status == JobStatus.SUCCEEDED, job.error
    return job


def test_too_little_data_is_skipped_with_the_reason_and_numbers(person, artifact_root):
    store_readings(person, synthetic_readings(0.6, seed=3))

    job = train_person(person, trigger="operator")

    assert job.status == JobStatus.SKIPPED and job.reason == "insufficient_data"
    assert job.detail["span_days"] < 1 and job.detail["min_span_days"] == 1
    assert "n_observed" in job.detail and job.finished_at is not None
    assert not MLModel.objects.for_person(person).exists()
    assert not artifact_root.exists() or not any(artifact_root.rglob("*.*"))


def test_without_the_prior_release_1_still_needs_3_days(person, artifact_root, without_prior):
    store_readings(person, synthetic_readings(1.5, seed=3))

    job = train_person(person, trigger="operator")

    assert job.status == JobStatus.SKIPPED and job.reason == "insufficient_data"
    assert job.detail["span_days"] < 3 and job.detail["min_span_days"] == 3


def test_no_readings_at_all_is_skipped_too(person, artifact_root):
    job = train_person(person)
    assert job.status == JobStatus.SKIPPED and job.reason == "insufficient_data"


def test_first_model_is_version_major_0_0_and_active_when_it_beats_the_prior(trained, artifact_root):
    from mlmodels.core.schemas import RELEASE_2 as FEATURE_SCHEMA_VERSION

    model = trained.model
    assert model.version == f"{FEATURE_SCHEMA_VERSION}.0.0"
    assert trained.reason == "deployed" and model.status == ModelStatus.READY and model.is_active
    assert active_model(model.person) == model
    comparison = model.comparison
    # A first model must beat what served the person before it: the population prior.
    assert comparison["reference"]["kind"] == "population"
    assert comparison["candidate_score"] < comparison["reference_score"]
    assert set(comparison["candidate_mae"]) == {"30", "60"}
    assert model.metrics["per_horizon"]["model"]["60"]["mae"] > 0
    assert model.metrics["per_horizon"]["baseline_ar2"]["60"]["mae"] > 0
    assert model.data_start < model.data_end and model.n_readings > 2000
    assert model.feature_schema["version"] == FEATURE_SCHEMA_VERSION
    folder = artifact_root / model.storage_path
    assert (folder / "metadata.json").exists() and (folder / "training_log.txt").read_text()
    assert next_version(model.person) == (FEATURE_SCHEMA_VERSION, 1, 0)


def test_a_real_model_round_trips_through_storage(trained):
    model = MLModel.objects.get(pk=trained.model_id)
    forecaster = load_forecaster(model)
    readings = readings_frame(model.person)
    as_of = readings["time"].iloc[-1]
    forecast = forecaster.predict(readings, as_of=as_of, horizons=[30, 60], tz="Europe/Berlin")
    values = [p["value"] for p in forecast.points]
    assert len(values) == 2 and all(40 <= v <= 400 for v in values)
    again = load_forecaster(model).predict(readings, as_of=as_of, horizons=[30, 60], tz="Europe/Berlin")
    assert [p["value"] for p in again.points] == values


def test_a_tampered_model_file_is_refused(trained, artifact_root):
    model = MLModel.objects.get(pk=trained.model_id)
    model_file = sorted(n for n in model.artifact_manifest if n.endswith((".ubj", ".skops")))[0]
    path = artifact_root / model.storage_path / model_file
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError, match=model_file):
        load_forecaster(model)


def test_a_deleted_model_file_is_refused(trained, artifact_root):
    model = MLModel.objects.get(pk=trained.model_id)
    (artifact_root / model.storage_path / "manifest.json").unlink()
    with pytest.raises(ArtifactIntegrityError, match="missing"):
        load_forecaster(model)


def degrade_training_part(person, *, keep_last_fraction: float = 0.3, seed: int = 5) -> None:
    """Shuffle the glucose values of all but the last part of the person's readings.

    The readings keep their times, but their order in time is destroyed: a model trained on them
    can learn no dynamics. The held-out tail (where both models are compared) stays untouched.
    """
    rows = list(Observation.objects.for_person(person).order_by("effective_at"))
    cut = int(len(rows) * (1 - keep_last_fraction))
    values = np.array([r.value_mg_dl for r in rows[:cut]])
    np.random.default_rng(seed).shuffle(values)
    for row, value in zip(rows[:cut], values):
        row.value_mg_dl = row.original_value = float(value)
    Observation.objects.bulk_update(rows[:cut], ["value_mg_dl", "original_value"])


def test_a_worse_retrain_is_rejected_with_the_numbers_and_the_active_version_stays(trained):
    first = trained.model
    person = first.person
    degrade_training_part(person)

    job = train_person(person, trigger="operator", time_budget_s=3)

    assert job.status == JobStatus.SUCCEEDED and job.reason == "not_better"
    second = job.model
    assert second.version == f"{first.version_major}.1.0" and second.parent == first
    assert second.status == ModelStatus.REJECTED and not second.is_active
    comparison = second.comparison
    assert comparison["reference"] == {
        "kind": "active", "version": first.version, "id": first.pk, "algorithm": first.algorithm,
        "saw_test_period": True,
    }
    assert comparison["better"] is False and comparison["decision"].startswith("rejected")
    assert comparison["candidate_score"] > comparison["reference_score"]
    for h in ("30", "60"):
        assert comparison["candidate_mae"][h] is not None and comparison["reference_mae"][h] is not None
    assert comparison["period"]["start"] and comparison["n_origins"] > 100
    first.refresh_from_db()
    assert first.is_active and first.status == ModelStatus.READY
    assert active_model(person) == first
    # The rejected version is kept, with its artifacts, for inspection.
    assert load_forecaster(second) is not None


def test_a_better_retrain_replaces_the_active_version(person_with_readings, artifact_root):
    person = person_with_readings
    clean = {o.pk: o.value_mg_dl for o in Observation.objects.for_person(person)}
    # A weak version: trained on readings whose order in time was destroyed. On such readings
    # it may even beat AR2 (which extrapolates noise); if not, an operator forces it live.
    degrade_training_part(person, keep_last_fraction=0.0)
    weak = train_person(person, time_budget_s=3).model
    MLModel.objects.filter(pk=weak.pk).update(status=ModelStatus.READY, is_active=True)
    # The readings are corrected; the retrain must beat the weak version on the same period.
    rows = list(Observation.objects.for_person(person))
    for row in rows:
        row.value_mg_dl = clean[row.pk]
    Observation.objects.bulk_update(rows, ["value_mg_dl"])

    job = train_person(person, time_budget_s=3)

    new = job.model
    assert job.reason == "deployed" and new.is_active and new.status == ModelStatus.READY
    assert new.parent_id == weak.pk and new.version == f"{weak.version_major}.1.0"
    assert new.comparison["reference"]["version"] == weak.version
    assert new.comparison["candidate_score"] < new.comparison["reference_score"]
    weak.refresh_from_db()
    assert not weak.is_active and weak.status == ModelStatus.ARCHIVED
    assert active_model(person) == new


def test_a_failed_save_marks_job_and_model_failed_and_leaves_no_files(person_with_readings, artifact_root):
    from mlmodels.core.schemas import RELEASE_2 as FEATURE_SCHEMA_VERSION

    folder = artifact_root / "models" / str(person_with_readings.pk) / "glucose-prediction"
    (folder / f"{FEATURE_SCHEMA_VERSION}.0.0" / "metadata.json").mkdir(parents=True)

    job = train_person(person_with_readings, time_budget_s=3)

    assert job.status == JobStatus.FAILED and "RuntimeError" in job.error
    model = MLModel.objects.get(pk=job.model_id)
    assert model.status == ModelStatus.FAILED and not model.is_active and model.artifact_sha256 == ""
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert files == []
    assert active_model(person_with_readings) is None
    # The next attempt gets a new number instead of reusing the failed one.
    assert next_version(person_with_readings)[1] == 1


def test_the_command_path_skips_when_a_job_is_already_open(person_with_readings, artifact_root):
    open_job = TrainingJob.objects.create(person=person_with_readings, status=JobStatus.RUNNING)
    job = train_person(person_with_readings)
    assert job.status == JobStatus.SKIPPED and job.reason == "job_already_open"
    assert job.detail == {"open_job_id": open_job.pk}
    assert not MLModel.objects.exists()


@pytest.mark.parametrize(
    "candidate, reference, better",
    [((10.0, 20.0), (11.0, 21.0), True), ((12.0, 18.0), (11.0, 20.0), True),
     ((11.0, 21.0), (11.0, 21.0), False), ((9.0, 25.0), (11.0, 20.0), False)],
)
def test_the_deploy_rule_is_the_mean_mae_at_30_and_60_minutes(candidate, reference, better):
    def metrics(mae30, mae60):
        return {"per_horizon": {"model": {"30": {"mae": mae30}, "60": {"mae": mae60}}}}

    result = decide(metrics(*candidate), metrics(*reference))
    assert result["better"] is better
    assert result["candidate_score"] == pytest.approx(sum(candidate) / 2)
    assert result["reference_score"] == pytest.approx(sum(reference) / 2)


@pytest.mark.parametrize(
    "far_candidate, far_reference, better",
    [((50.0, 55.0, 60.0), (52.0, 58.0, 61.0), True), ((50.0, 60.0, 62.0), (50.0, 58.0, 60.0), False)],
)
def test_the_same_forecast_to_an_hour_is_decided_by_the_far_horizons(far_candidate, far_reference, better):
    """A release-2 model that kept the prior's short horizons ties with the prior there; its own
    far horizons (the person's time of day) are what can make it better."""
    def metrics(far):
        return {"per_horizon": {"model": {"30": {"mae": 10.0}, "60": {"mae": 20.0},
                                          **{str(h): {"mae": v} for h, v in zip((240, 720, 1440), far)}}}}

    result = decide(metrics(far_candidate), metrics(far_reference))
    assert result["better"] is better
    assert ("better at [240, 720, 1440] min" in result["decision"]) is better


def test_far_horizons_never_outweigh_a_worse_hour():
    worse_hour = {"per_horizon": {"model": {"30": {"mae": 10.5}, "60": {"mae": 20.0}, "240": {"mae": 1.0}}}}
    reference = {"per_horizon": {"model": {"30": {"mae": 10.0}, "60": {"mae": 20.0}, "240": {"mae": 50.0}}}}
    assert decide(worse_hour, reference)["better"] is False


def test_a_candidate_without_figures_is_never_deployed():
    assert decide({}, {"per_horizon": {"model": {"30": {"mae": 1.0}, "60": {"mae": 1.0}}}})["better"] is False


@pytest.mark.broll
def test_a_broll_person_trains_through_the_registry(person, artifact_root, broll_csv_path):
    from observations.services import import_broll_csv

    person.time_zone = "UTC"  # the file's naive local times, read as they are
    person.save()
    subject, frame = next(iter(import_broll_csv(broll_csv_path).items()))
    store_readings(person, frame)

    job = train_person(person, time_budget_s=5)

    assert job.status == JobStatus.SUCCEEDED, f"{subject}: {job.reason} {job.error}"
    model = job.model
    assert model.comparison["reference"]["kind"] == "population"
    assert model.metrics["per_horizon"]["model"]["60"]["mae"] < model.metrics["per_horizon"]["persistence"]["60"]["mae"]
    assert load_forecaster(model).algorithm == model.algorithm
