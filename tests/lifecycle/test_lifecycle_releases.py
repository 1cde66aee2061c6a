"""Two releases serve side by side: each person is served from their own arm's artifact, built
by that artifact's own feature schema, on the request path and in the batch; an unknown schema
still falls back to the baseline with the reason."""

from __future__ import annotations

import pytest

from mlmodels.core import schemas
from mlmodels.models import MLModel, ModelStatus
from mlmodels.rollouts import assign_models, create_rollout, in_canary, set_candidate
from mlmodels.storage import load_forecaster, save_artifacts
from predictions.batch import predict_batch
from predictions.services import forecast_for_person
from tests.factories import PersonFactory
from tests.lifecycle.conftest import give_readings
from tests.lifecycle.releases import release_files

pytestmark = pytest.mark.django_db


def store_version(person, version: str, *, active: bool = False) -> MLModel:
    major, minor, patch = (int(p) for p in version.split("."))
    files, algorithm = release_files(major)
    row = MLModel.objects.create(
        person=person, version=version, version_major=major, version_minor=minor, version_patch=patch,
        algorithm=algorithm, status=ModelStatus.READY if active else ModelStatus.ARCHIVED,
        feature_schema={"version": major}, is_active=False,
    )
    save_artifacts(row, files, {"algorithm": algorithm, "version": version}, "trained in tests\n")
    row.is_active = active
    row.save()
    return row


@pytest.fixture
def two_releases(settings):
    """Both releases are servable by this code (release 2 needs the shipped population prior)."""
    assert {1, 2} <= set(schemas.REGISTRY)


@pytest.fixture
def people(two_releases):
    """Ten people with recent readings, each with a release-1 version and an active release-2 one."""
    out = []
    for i in range(10):
        person = give_readings(PersonFactory(), seed=40 + i)
        store_version(person, "1.0.0")
        store_version(person, "2.0.0", active=True)
        out.append(person)
    return out


def test_the_two_artifacts_are_different_models_with_different_schemas(two_releases):
    files_1, _ = release_files(1)
    files_2, _ = release_files(2)
    assert files_1 != files_2
    from mlmodels.core.forecaster import GlucoseForecaster

    one, two = GlucoseForecaster.from_files(files_1), GlucoseForecaster.from_files(files_2)
    assert one.features.version == 1 and two.features.version == 2
    assert one.features.names() != two.features.names()


def test_a_canary_between_two_releases_serves_each_person_from_their_own_arm(people):
    rollout = create_rollout("glucose-prediction", 1, actor="test", reason="release 1 serves")
    set_candidate(rollout, 2, percentage=50, actor="test", reason="release 2 on half")
    canary = {p.pk for p in people if in_canary(p.pk, rollout.pk, 50)}
    assert 0 < len(canary) < len(people)  # both arms are populated

    logs = {p.pk: forecast_for_person(p) for p in people}

    for pid, log in logs.items():
        expected = "2.0.0" if pid in canary else "1.0.0"
        assert log.model_version == expected, (pid, log.fallback_reason)
        assert log.variant == ("canary" if pid in canary else "stable")
        assert log.fallback_reason == ""  # no arm drops to the baseline
        assert log.arm == log.variant and log.rollout_id == rollout.pk


def test_same_readings_give_different_forecasts_from_the_two_releases(people):
    person = people[0]
    v1, v2 = (MLModel.objects.get(person=person, version=v) for v in ("1.0.0", "2.0.0"))
    rollout = create_rollout("glucose-prediction", 1, actor="test", reason="release 1 serves")
    one = forecast_for_person(person).points
    set_candidate(rollout, 2, percentage=100, actor="test", reason="everyone on 2")
    two = forecast_for_person(person).points
    assert [p["value_mg_dl"] for p in one] != [p["value_mg_dl"] for p in two]
    assert load_forecaster(v1).features.version == 1 and load_forecaster(v2).features.version == 2


def test_the_batch_builds_each_artifacts_features_with_its_own_schema(people):
    rollout = create_rollout("glucose-prediction", 1, actor="test", reason="release 1 serves")
    set_candidate(rollout, 2, percentage=50, actor="test", reason="release 2 on half")
    choices = assign_models([p.pk for p in people])

    result = predict_batch(people)

    assert result.n_fallbacks == 0 and result.n_forecasts == len(people)
    from predictions.models import PredictionLog

    for log in PredictionLog.objects.filter(source="batch"):
        assert log.model_version == choices[log.person_id].mlmodel.version
        assert log.fallback_reason == ""
    # The batch's forecast equals the request path's for the same person and artifact (to the
    # rounding of the log: the prior's float32 network may differ in the last bit between a batch
    # of windows and one window).
    person = people[0]
    api = forecast_for_person(person, as_of=PredictionLog.objects.get(person=person, source="batch").issued_at)
    batch = PredictionLog.objects.get(person=person, source="batch")
    assert [p["value_mg_dl"] for p in api.points] == pytest.approx([p["value_mg_dl"] for p in batch.points], abs=0.11)


def test_a_schema_the_code_does_not_know_falls_back_with_the_reason(people, monkeypatch, caplog):
    monkeypatch.delitem(schemas.REGISTRY, 2)
    log = forecast_for_person(people[0])
    # What answers people without a usable model (the population prior, else AR2) answers instead.
    assert log.variant in ("population", "baseline")
    assert log.fallback_reason.startswith("feature_schema_mismatch: model 2.0.0")
    assert any("feature_schema_mismatch" in r.getMessage() for r in caplog.records)
