"""Release 3 (recorded treatments as inputs) through the lifecycle beside release 2: trained in the
worker as 3.0.0 next to 2.x.y, then in shadow (paired with release 2 on the same origins, the
candidate reading each person's recorded treatments), then a canary; real artifacts of both
schemas."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from mlmodels.core import schemas
from mlmodels.models import MLModel, ModelStatus
from mlmodels.rollouts import create_rollout, in_canary, set_candidate, set_shadow_percentage
from mlmodels.services import train_person
from mlmodels.storage import save_artifacts
from observations.treatments.services import store_treatments
from observations.treatments.validation import RawTreatment
from predictions.models import PredictionLog
from predictions.outcomes import fill_outcomes
from predictions.services import forecast_for_person
from predictions.shadow import paired_comparison, run_pending_shadows
from tests.factories import PersonFactory
from tests.lifecycle.conftest import give_readings, recent_readings, store_readings
from tests.lifecycle.test_lifecycle_releases import store_version
from tests.predictions.test_predictions_treatments import release_3_files

pytestmark = pytest.mark.django_db


def store_release_3(person, version="3.0.0", *, active=False) -> MLModel:
    files, algorithm = release_3_files()
    major, minor, patch = (int(p) for p in version.split("."))
    row = MLModel.objects.create(
        person=person, version=version, version_major=major, version_minor=minor, version_patch=patch,
        algorithm=algorithm, status=ModelStatus.READY if active else ModelStatus.ARCHIVED,
        feature_schema={"version": 3}, is_active=False,
    )
    save_artifacts(row, files, {"algorithm": algorithm, "version": version}, "trained in tests\n")
    row.is_active = active
    row.save()
    return row


def record_meal(person, minutes_ago: int, grams: float, units: float):
    now = timezone.now()
    store_treatments(person=person, source="api", records=[
        RawTreatment(row=1, kind="carbs", time=(now - dt.timedelta(minutes=minutes_ago)).isoformat(), amount=grams),
        RawTreatment(row=2, kind="bolus", time=(now - dt.timedelta(minutes=minutes_ago - 5)).isoformat(), amount=units),
    ])


@pytest.fixture
def people():
    """Six people with recent readings and a logged meal, an active 2.0.0 and a stored 3.0.0."""
    assert {2, 3} <= set(schemas.REGISTRY)
    out = []
    for i in range(6):
        person = give_readings(PersonFactory(), seed=60 + i)
        record_meal(person, 45 + 5 * i, 40 + 5 * i, 3 + 0.5 * i)
        store_version(person, "2.0.0", active=True)
        store_release_3(person)
        out.append(person)
    return out


def test_release_3_in_shadow_is_paired_with_release_2_and_reads_each_persons_treatments(people):
    rollout = create_rollout("glucose-prediction", 2, actor="test", reason="release 2 serves")
    set_candidate(rollout, 3, actor="test", reason="release 3 in shadow first")
    rollout = set_shadow_percentage(rollout, 100, actor="test", reason="shadow everyone")
    served = [forecast_for_person(p, horizons=[30, 60]) for p in people]
    assert {log.model_version for log in served} == {"2.0.0"}
    assert all("treatments" not in log.provenance for log in served)  # release 2 reads none

    counts = run_pending_shadows()
    assert counts["shadows"] == len(people) and counts["failures"] == 0
    shadows = PredictionLog.objects.filter(source="shadow").order_by("person_id")
    assert {s.model_version for s in shadows} == {"3.0.0"}
    for shadow in shadows:
        kinds = [t["kind"] for t in shadow.provenance["treatments"]]
        assert kinds == ["insulin", "carbohydrates"], shadow.provenance
        assert not shadow.quality["treatments"]["missing"]

    for i, person in enumerate(people):
        store_readings(person, recent_readings(1.2, seed=60 + i, end=timezone.now() + dt.timedelta(minutes=65)).iloc[-15:])
    fill_outcomes(now=timezone.now() + dt.timedelta(minutes=70))
    paired = paired_comparison(rollout, until=timezone.now() + dt.timedelta(hours=2))
    assert paired["n_people"] == len(people) and paired["n_pairs"] == 2 * len(people)
    assert paired["n_shadow_errors"] == 0


def test_a_release_3_canary_serves_its_people_with_their_treatments(people):
    rollout = create_rollout("glucose-prediction", 2, actor="test", reason="release 2 serves")
    set_candidate(rollout, 3, percentage=50, actor="test", reason="release 3 on half")
    for person in people:
        log = forecast_for_person(person)
        if in_canary(person.pk, rollout.pk, 50):
            assert log.model_version == "3.0.0" and log.variant == "canary"
            assert [t["kind"] for t in log.provenance["treatments"]] == ["insulin", "carbohydrates"]
        else:
            assert log.model_version == "2.0.0" and "treatments" not in log.quality


def test_the_worker_trains_release_3_next_to_release_2_when_switched_on(settings):
    settings.GLUCAST_TRAIN_RELEASE_3 = True
    person = PersonFactory()
    store_readings(person, recent_readings(40, seed=70))
    for hours in (30, 24, 18, 12, 6):
        record_meal(person, hours * 60, 50, 4)
    job = train_person(person, trigger="operator", time_budget_s=3)
    assert job.status == "succeeded", job.detail
    assert job.model.version_major == 3 and job.model.feature_schema["version"] == 3
    assert job.model.feature_schema.get("reference_basal_u_h") is None  # nobody's pump here
