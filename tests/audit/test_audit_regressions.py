"""Regression tests for the 500s the schema fuzzing found (tests/audit/test_audit_schema_fuzz.py)."""

from django.core.files.uploadedfile import SimpleUploadedFile

from observations.models import ImportBatch, Observation
from tests.factories import ObservationFactory


def test_a_huge_offset_is_a_400_naming_it_not_a_bigint_500(api, person):
    ObservationFactory(person=person)
    response = api.get("/api/observations/", {"offset": 2959203938176625803264})
    assert response.status_code == 400
    assert "offset" in response.json()


def test_a_huge_limit_is_lowered_to_the_maximum_page(api, person):
    ObservationFactory.create_batch(2, person=person)
    response = api.get("/api/observations/", {"limit": 2959203938176625803264})
    assert response.status_code == 200
    assert len(response.json()["results"]) == 2


def test_the_schema_documents_the_page_bounds(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    parameters = {p["name"]: p for p in schema["paths"]["/api/observations/"]["get"]["parameters"]}
    assert parameters["limit"]["schema"]["maximum"] == 1000
    assert parameters["offset"]["schema"]["maximum"] == 10**12


def test_an_unreadable_csv_upload_is_a_400_naming_the_file_and_saves_nothing(api, person):
    # A bare carriage return inside an unquoted cell: Python's csv reader raises csv.Error.
    data = b"Timestamp (YYYY-MM-DDThh:mm:ss),Glucose Value (mg/dL)\n2026-01-01T00:00:00,1\r2\n"
    upload = SimpleUploadedFile("export.csv", data)
    response = api.post("/api/observations/import/", {"file": upload, "format": "dexcom"}, format="multipart")
    assert response.status_code == 400, response.content
    assert "not a readable CSV file" in response.content.decode()
    assert not Observation.objects.exists() and not ImportBatch.objects.exists()
