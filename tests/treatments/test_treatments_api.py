"""The treatments REST API: record past treatments, list them (paged, filtered), delete them per
import; every bad row named in a 400, another person's treatments 404, the schema documents it."""

import datetime as dt

import pytest
from rest_framework.test import APIClient

from observations.models import ImportBatch, Treatment

pytestmark = pytest.mark.django_db

MEAL = [
    {"kind": "carbs", "effective_at": "2026-03-01T12:00:00Z", "amount": 60, "absorption_min": 180},
    {"kind": "bolus", "effective_at": "2026-03-01T12:02:00Z", "amount": 5.5, "insulin_kind": "Fiasp",
     "bolus_type": "meal", "identifier": "pen-17"},
    {"kind": "temp_basal", "effective_at": "2026-03-01T13:00:00Z", "amount": 0.2, "duration_min": 45},
    {"kind": "steps", "effective_at": "2026-03-01T14:00:00Z", "amount": 1200, "duration_min": 15},
    {"kind": "heart_rate", "effective_at": "2026-03-01T14:00:00Z", "amount": 96, "unit": "bpm"},
]


def test_everything_requires_authentication():
    client = APIClient()
    for method, url in (("get", "/api/treatments/"), ("post", "/api/treatments/"), ("get", "/api/treatments/1/")):
        assert getattr(client, method)(url).status_code in (401, 403), url


def test_record_list_and_filter(api, person):
    response = api.post("/api/treatments/", MEAL, format="json")
    assert response.status_code == 201, response.data
    assert (response.data["created"], response.data["duplicates"]) == (5, 0)
    again = api.post("/api/treatments/", MEAL, format="json")
    assert (again.data["created"], again.data["duplicates"]) == (0, 5)
    listed = api.get("/api/treatments/").data
    assert listed["count"] == 5
    bolus = next(t for t in listed["results"] if t["kind"] == "bolus")
    assert (bolus["insulin_kind"], bolus["bolus_type"], bolus["source_identifier"]) == ("ultra_rapid", "meal", "pen-17")
    assert bolus["fhir_resource"] == "MedicationAdministration" and bolus["unit"] == "U"
    carbs = next(t for t in listed["results"] if t["kind"] == "carbs")
    assert carbs["absorption_min"] == 180 and carbs["fhir_resource"] == "Observation"
    only = api.get("/api/treatments/?kind=bolus&kind=carbs&start=2026-03-01T12:01:00Z").data
    assert [t["kind"] for t in only["results"]] == ["bolus"]
    paged = api.get("/api/treatments/?limit=2&offset=2").data
    assert paged["count"] == 5 and [t["kind"] for t in paged["results"]] == ["temp_basal", "steps"]
    assert api.get("/api/treatments/?kind=insulin").status_code == 400
    assert api.get("/api/treatments/?start=yesterday").status_code == 400


def test_delete_per_import(api, person):
    first = api.post("/api/treatments/", MEAL[:2], format="json").data["import_id"]
    second = api.post("/api/treatments/", MEAL[2:], format="json").data["import_id"]
    imports = {i["id"]: i for i in api.get("/api/imports/").data["results"]}
    assert imports[first]["n_treatments"] == 2 and imports[second]["n_treatments"] == 3
    assert api.get(f"/api/treatments/?import_batch={first}").data["count"] == 2
    assert api.delete(f"/api/imports/{second}/").status_code == 204
    assert sorted(Treatment.objects.values_list("kind", flat=True)) == ["bolus", "carbs"]


@pytest.mark.parametrize(
    "item, field, reason",
    [
        ({"amount": "NaN"}, "amount", "not a finite number"),
        ({"amount": "-inf"}, "amount", "not a finite number"),
        ({"amount": 10**30}, "amount", "outside the accepted"),
        ({"amount": -2}, "amount", "negative"),
        ({"kind": "insulin"}, "kind", "is not one of"),
        ({"effective_at": "2999-01-01T00:00:00Z"}, "effective_at", "in the future"),
        ({"identifier": "\x00"}, "identifier", "control characters"),
        ({"dose_suggestion": 3}, "dose_suggestion", "is not a treatment field"),
    ],
)
def test_hostile_rows_are_named_and_nothing_is_saved(api, person, item, field, reason):
    good = {"kind": "bolus", "effective_at": "2026-03-01T12:00:00Z", "amount": 2}
    bad = {"kind": "bolus", "effective_at": "2026-03-01T13:00:00Z", "amount": 2, **item}
    response = api.post("/api/treatments/", [good, bad], format="json")
    assert response.status_code == 400, response.data
    assert any(e["row"] == 2 and e["field"] == field and reason in e["reason"] for e in response.data["errors"]), response.data
    assert not Treatment.objects.exists() and not ImportBatch.objects.exists()


def test_raw_json_nan_and_overflowing_numbers(api, person):
    nan = api.post("/api/treatments/", '{"kind": "bolus", "effective_at": "2026-03-01T12:00:00Z", "amount": NaN}',
                   content_type="application/json")
    assert nan.status_code == 400 and "NaN" in str(nan.data)
    huge = api.post("/api/treatments/", '[{"kind": "carbs", "effective_at": "2026-03-01T12:00:00Z", "amount": 1e999}]',
                    content_type="application/json")
    assert huge.status_code == 400 and huge.data["errors"][0]["field"] == "amount"
    assert "finite" in huge.data["errors"][0]["reason"]
    assert not Treatment.objects.exists()


def test_oversized_batches_and_duplicate_identifiers(api, person, settings):
    settings.GLUCAST_IMPORT_MAX_ROWS = 2
    response = api.post("/api/treatments/", MEAL[:3], format="json")
    assert response.status_code == 400 and "limit is 2" in response.data["detail"]
    settings.GLUCAST_IMPORT_MAX_ROWS = 100
    twice = [dict(MEAL[1]), dict(MEAL[1], amount=9)]
    response = api.post("/api/treatments/", twice, format="json")
    assert response.status_code == 400 and response.data["errors"][0]["field"] == "identifier"
    assert not Treatment.objects.exists()


def test_another_persons_treatments_answer_404(api, other_api, person, other_person):
    api.post("/api/treatments/", MEAL, format="json")
    mine = Treatment.objects.for_person(person).first()
    assert api.get(f"/api/treatments/{mine.pk}/").status_code == 200
    assert other_api.get(f"/api/treatments/{mine.pk}/").status_code == 404
    assert other_api.get("/api/treatments/").data["count"] == 0
    batch = mine.import_batch_id
    assert other_api.delete(f"/api/imports/{batch}/").status_code == 404
    assert other_api.get(f"/api/treatments/?import_batch={batch}").data["count"] == 0
    response = other_api.post("/api/treatments/", [dict(MEAL[0], person=person.pk)], format="json")
    assert response.status_code == 404
    assert Treatment.objects.for_person(person).count() == 5


def test_the_schema_documents_treatments(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert "/api/treatments/" in schema["paths"] and "/api/treatments/{id}/" in schema["paths"]
    components = schema["components"]["schemas"]
    assert {"Treatment", "TreatmentInputOneOrManyRequest", "TreatmentImportSummary"} <= set(components)
    assert "n_treatments" in components["ImportBatch"]["properties"]
