"""REST endpoints for readings and imports."""

import datetime as dt

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from observations.models import ImportBatch, Observation
from tests.factories import ObservationFactory

UTC = dt.timezone.utc


def upload(fixtures_dir, name, **extra):
    data = {"file": SimpleUploadedFile(name, (fixtures_dir / name).read_bytes())}
    data.update(extra)
    return data


def test_everything_requires_authentication(db):
    client = APIClient()
    for method, url in [
        ("get", "/api/observations/"),
        ("post", "/api/observations/"),
        ("get", "/api/observations/1/"),
        ("post", "/api/observations/import/"),
        ("get", "/api/imports/"),
        ("delete", "/api/imports/1/"),
        ("post", "/api/fhir/Bundle"),
        ("get", "/api/fhir/Observation"),
    ]:
        assert getattr(client, method)(url).status_code in (401, 403), url


def test_post_one_reading(api, person):
    response = api.post(
        "/api/observations/",
        {"effective_at": "2025-03-01T08:00:00", "value": 104, "unit": "mg/dL"},
        format="json",
    )
    assert response.status_code == 201, response.data
    assert response.data["created"] == 1 and response.data["duplicates"] == 0
    obs = Observation.objects.get(person=person)
    # naive time read in the person's zone (Europe/Berlin, CET = UTC+1)
    assert obs.effective_at == dt.datetime(2025, 3, 1, 7, 0, tzinfo=UTC)
    assert obs.source == "api" and obs.import_batch_id == response.data["import_id"]


def test_post_a_list_counts_created_and_duplicates(api, person):
    readings = [
        {"effective_at": f"2025-03-01T08:{m:02d}:00Z", "value": 100 + m, "unit": "mg/dL"} for m in range(0, 30, 5)
    ]
    first = api.post("/api/observations/", readings, format="json")
    assert (first.data["created"], first.data["duplicates"]) == (6, 0)
    readings.append({"effective_at": "2025-03-01T08:30:00Z", "value": 6.0, "unit": "mmol/L"})
    second = api.post("/api/observations/", readings, format="json")
    assert second.status_code == 201
    assert (second.data["created"], second.data["duplicates"]) == (1, 6)


def test_post_blood_reading_with_code(api, person):
    response = api.post(
        "/api/observations/",
        [{"effective_at": "2025-03-01T08:00:00Z", "value": 5.9, "unit": "mmol/L", "code": "15074-8"}],
        format="json",
    )
    assert response.status_code == 201
    obs = Observation.objects.get(person=person)
    assert obs.kind == "blood" and obs.code == "15074-8" and obs.display == "Glucose [Moles/volume] in Blood"


def test_list_pages_with_total_count_and_filters_by_time(api, person):
    start = dt.datetime(2025, 1, 1, tzinfo=UTC)
    for k in range(150):
        ObservationFactory(person=person, effective_at=start + dt.timedelta(minutes=5 * k))
    page = api.get("/api/observations/")
    assert page.status_code == 200
    assert page.data["count"] == 150 and len(page.data["results"]) == 100 and page.data["next"]
    filtered = api.get(
        "/api/observations/", {"start": "2025-01-01T01:00:00Z", "end": "2025-01-01T02:00:00Z"}
    )
    assert filtered.data["count"] == 13
    assert filtered.data["results"][0]["effective_at"] == "2025-01-01T01:00:00Z"
    # naive bounds are the person's local time (CET): 02:00 local = 01:00 UTC
    local = api.get("/api/observations/", {"start": "2025-01-01T02:00:00", "end": "2025-01-01T03:00:00"})
    assert local.data["count"] == 13


@pytest.mark.parametrize(
    "params, field",
    [
        ({"start": "yesterday"}, "start"),
        ({"end": "2025-13-01T00:00:00Z"}, "end"),
        ({"start": "2025-01-02T00:00:00Z", "end": "2025-01-01T00:00:00Z"}, "end"),
    ],
)
def test_list_bad_bounds_answer_400(api, person, params, field):
    response = api.get("/api/observations/", params)
    assert response.status_code == 400
    assert field in response.data


def test_detail(api, person):
    obs = ObservationFactory(person=person, value_mg_dl=142)
    response = api.get(f"/api/observations/{obs.pk}/")
    assert response.status_code == 200
    assert response.data["value_mg_dl"] == 142 and response.data["code"] == "99504-3"


def test_file_upload_import_and_imports_list_and_delete(api, person, fixtures_dir):
    response = api.post("/api/observations/import/", upload(fixtures_dir, "dexcom_clarity_g6_mgdl.csv"), format="multipart")
    assert response.status_code == 201, response.data
    assert response.data["format"] == "dexcom"
    assert (response.data["created"], response.data["duplicates"], response.data["skipped"]) == (13, 0, 2)
    import_id = response.data["import_id"]

    again = api.post("/api/observations/import/", upload(fixtures_dir, "dexcom_clarity_g6_mgdl.csv"), format="multipart")
    assert (again.data["created"], again.data["duplicates"]) == (0, 13)

    listing = api.get("/api/imports/")
    assert listing.status_code == 200 and listing.data["count"] == 2
    assert listing.data["results"][1]["filename"] == "dexcom_clarity_g6_mgdl.csv"

    deleted = api.delete(f"/api/imports/{import_id}/")
    assert deleted.status_code == 204
    assert Observation.objects.for_person(person).count() == 0
    assert not ImportBatch.objects.filter(pk=import_id).exists()


def test_file_upload_with_explicit_format(api, person, fixtures_dir):
    response = api.post(
        "/api/observations/import/",
        upload(fixtures_dir, "nightscout_entries.json", format="nightscout"),
        format="multipart",
    )
    assert response.status_code == 201 and response.data["created"] == 7


def test_deleting_an_import_keeps_readings_of_earlier_imports(api, person, fixtures_dir):
    api.post("/api/observations/import/", upload(fixtures_dir, "plain_readings.csv"), format="multipart")
    second = api.post(
        "/api/observations/",
        [
            {"effective_at": "2025-02-01T08:00:00", "value": 110, "unit": "mg/dL"},  # duplicate
            {"effective_at": "2025-02-01T09:00:00", "value": 130, "unit": "mg/dL"},  # new
        ],
        format="json",
    )
    assert (second.data["created"], second.data["duplicates"]) == (1, 1)
    api.delete(f"/api/imports/{second.data['import_id']}/")
    assert Observation.objects.for_person(person).count() == 4
