"""Delete all my data: nothing of the person is left behind - rows in any per-person table,
model artifact files - while other people's data and the login stay."""

import pytest
from django.urls import reverse

from config.account import person_related_models
from mlmodels.storage import artifact_storage
from observations.episodes import refresh_windows
from observations.models import ImportBatch, Observation, Treatment
from observations.treatments.services import store_treatments
from observations.treatments.validation import RawTreatment
from predictions.models import PredictionFeedback, PredictionLog
from tests.pages.conftest import load_readings, train_model

pytestmark = pytest.mark.django_db(transaction=True)


def _rows_of(person) -> dict[str, int]:
    return {
        model._meta.label: model._base_manager.filter(**{field: person}).count()
        for model, field in person_related_models()
    }


def test_delete_all_leaves_nothing_of_the_person(client, person, other_person, settings, tmp_path):
    settings.STORAGES = {**settings.STORAGES, "artifacts": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}}}
    for who, seed in ((person, 1), (other_person, 2)):
        load_readings(who, days=14, seed=seed)
        refresh_windows(who)
        train_model(who)
        store_treatments(person=who, source="api", records=[
            RawTreatment(row=1, kind="bolus", time="2026-01-01T08:00:00Z", amount=3.0, insulin_kind="rapid"),
            RawTreatment(row=2, kind="carbs", time="2026-01-01T08:01:00Z", amount=40.0),
        ])
    person.owner.save()
    client.force_login(person.owner)
    client.get(reverse("dashboard"))
    log = PredictionLog.objects.for_person(person).get()
    client.post(reverse("forecast-feedback", args=[log.pk]), {"helpful": "yes"})
    assert log.ml_model is not None  # the forecast came from the trained model
    storage = artifact_storage()
    assert storage.exists(f"models/{person.pk}")
    before = _rows_of(person)
    for label in ("observations.Observation", "observations.ImportBatch", "observations.GlucoseWindow",
                  "observations.Treatment",
                  "mlmodels.MLModel", "mlmodels.TrainingJob", "predictions.PredictionLog",
                  "predictions.PredictionFeedback"):
        assert before[label] > 0, label
    other_before = _rows_of(other_person)

    response = client.post(reverse("data-delete-all"), {"confirm": "on"})

    assert response.status_code == 302
    assert all(count == 0 for count in _rows_of(person).values()), _rows_of(person)
    assert not storage.exists(f"models/{person.pk}")
    assert not (tmp_path / "models" / str(person.pk)).exists()
    # the login stays, and nobody else lost anything
    person.refresh_from_db()
    assert client.get(reverse("data")).status_code == 200
    assert _rows_of(other_person) == other_before
    assert storage.exists(f"models/{other_person.pk}")
    assert not PredictionFeedback.objects.filter(person=person).exists()
    assert Observation.objects.filter(person=other_person).exists()
    assert ImportBatch.objects.filter(person=other_person).exists()
    assert Treatment.objects.filter(person=other_person).count() == 2
