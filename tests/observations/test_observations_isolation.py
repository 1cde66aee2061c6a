"""A person never sees or changes another person's readings or imports: the answer is 404."""

import json

from django.core.files.uploadedfile import SimpleUploadedFile

from observations.models import ImportBatch, Observation
from observations.services import import_file
from tests.factories import ObservationFactory


def test_list_shows_only_own_readings(api, other_api, person, other_person):
    ObservationFactory.create_batch(3, person=person)
    ObservationFactory.create_batch(5, person=other_person)
    assert api.get("/api/observations/").data["count"] == 3
    assert other_api.get("/api/observations/").data["count"] == 5


def test_detail_of_another_persons_reading_is_404(api, other_person):
    theirs = ObservationFactory(person=other_person)
    assert api.get(f"/api/observations/{theirs.pk}/").status_code == 404


def test_import_list_and_delete_of_another_persons_import_is_404(api, other_api, person, other_person, fixtures_dir):
    theirs = import_file(other_person, (fixtures_dir / "plain_readings.csv").read_bytes()).batch
    mine = import_file(person, (fixtures_dir / "plain_readings.csv").read_bytes()).batch
    assert [b["id"] for b in api.get("/api/imports/").data["results"]] == [mine.pk]
    assert api.get(f"/api/imports/{theirs.pk}/").status_code == 404
    assert api.delete(f"/api/imports/{theirs.pk}/").status_code == 404
    assert ImportBatch.objects.filter(pk=theirs.pk).exists()
    assert Observation.objects.for_person(other_person).count() == 4


def test_file_import_lands_in_the_callers_own_data(api, person, other_person, fixtures_dir):
    upload = SimpleUploadedFile("x.csv", (fixtures_dir / "plain_readings.csv").read_bytes())
    assert api.post("/api/observations/import/", {"file": upload}, format="multipart").status_code == 201
    assert Observation.objects.for_person(person).count() == 4
    assert not Observation.objects.for_person(other_person).exists()


def test_file_import_naming_another_patient_is_404_and_saves_nothing(api, other_person, fixtures_dir):
    data = (fixtures_dir / "fhir_bundle_collection.json").read_bytes().replace(b"PATIENT_ID", str(other_person.pk).encode())
    upload = SimpleUploadedFile("bundle.json", data)
    assert api.post("/api/observations/import/", {"file": upload}, format="multipart").status_code == 404
    assert not Observation.objects.exists() and not ImportBatch.objects.exists()


def test_fhir_bundle_for_another_patient_is_404(api, other_person, fixtures_dir):
    data = (fixtures_dir / "fhir_bundle_transaction.json").read_text().replace("PATIENT_ID", str(other_person.pk))
    response = api.post("/api/fhir/Bundle", data, content_type="application/fhir+json")
    assert response.status_code == 404
    assert not Observation.objects.exists()


def test_fhir_search_for_another_patient_is_404(api, person, other_person):
    ObservationFactory(person=other_person)
    for patient in (str(other_person.pk), f"Patient/{other_person.pk}", "999999"):
        response = api.get("/api/fhir/Observation", {"patient": patient})
        assert response.status_code == 404, patient
        assert "entry" not in json.loads(response.content)


def test_fhir_search_returns_only_own_readings(api, person, other_person):
    ObservationFactory.create_batch(2, person=person)
    ObservationFactory.create_batch(4, person=other_person)
    body = json.loads(api.get("/api/fhir/Observation").content)
    assert body["total"] == 2
    assert {e["resource"]["subject"]["reference"] for e in body["entry"]} == {f"Patient/{person.pk}"}


def test_a_user_without_a_person_gets_404_not_someone_elses_data(db, other_person):
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    ObservationFactory(person=other_person)
    staff = get_user_model().objects.create_user("staff-only", password="x-long-password-1")
    client = APIClient()
    client.force_authenticate(staff)
    assert client.get("/api/observations/").status_code == 404
    assert client.get("/api/fhir/Observation").status_code == 404
    assert client.get("/api/imports/").data["count"] == 0


def test_rest_post_naming_another_person_is_404_and_saves_nothing(api, person, other_person):
    reading = {"effective_at": "2025-03-01T08:00:00Z", "value": 120, "unit": "mg/dL"}
    response = api.post("/api/observations/", [reading, {**reading, "person": other_person.pk}], format="json")
    assert response.status_code == 404
    assert not Observation.objects.exists()
    own = api.post("/api/observations/", {**reading, "person": person.pk}, format="json")
    assert own.status_code == 201
