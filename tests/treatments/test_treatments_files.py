"""Treatments from files: FHIR Bundles (Observations 9059-7 / 55423-8 / 8867-4 and insulin
MedicationAdministrations, with readings in the same Bundle) and the documented treatments CSV."""

import datetime as dt
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from observations.models import ImportBatch, Observation, Treatment
from tests.conftest import FIXTURES

pytestmark = pytest.mark.django_db
UTC = dt.timezone.utc


def treatments_bundle(person) -> dict:
    return json.loads((FIXTURES / "fhir_bundle_treatments.json").read_text().replace("PATIENT_ID", str(person.pk)))


def post_bundle(api, document):
    return api.post("/api/fhir/Bundle", json.dumps(document), content_type="application/fhir+json")


def test_a_bundle_brings_readings_and_treatments_in_one_import(api, person):
    response = post_bundle(api, treatments_bundle(person))
    assert response.status_code == 201, response.data
    assert (response.data["created"], response.data["treatments"], response.data["skipped"]) == (1, 5, 1)
    rows = {t.source_identifier: t for t in Treatment.objects.for_person(person)}
    assert (rows["meal-1"].kind, rows["meal-1"].amount) == ("carbs", 55)
    assert (rows["bolus-1"].kind, rows["bolus-1"].insulin_kind) == ("bolus", "ultra_rapid")
    temp = rows["temp-basal-1"]
    assert (temp.kind, temp.amount, temp.duration, temp.insulin_kind) == ("temp_basal", 0.4, dt.timedelta(minutes=30), "rapid")
    assert (rows["steps-1"].amount, rows["steps-1"].duration) == (1480, dt.timedelta(minutes=15))
    assert rows["hr-1"].unit == "/min"
    assert {t.import_batch_id for t in rows.values()} == {Observation.objects.get().import_batch_id}
    again = post_bundle(api, treatments_bundle(person))
    assert (again.data["treatments"], again.data["treatment_duplicates"]) == (0, 5)


@pytest.mark.parametrize(
    "position, change, field, reason",
    [
        (2, {"valueQuantity": {"value": 900, "code": "g"}}, "valueQuantity.value", "0-500 g"),
        (2, {"valueQuantity": {"value": 50, "code": "mg/dL"}}, "valueQuantity.code", "not a unit of carbs"),
        (3, {"dosage": {"dose": {"value": 250, "code": "U"}}}, "dosage.dose.value", "0-100 U"),
        (3, {"dosage": {}}, "dosage", "missing"),
        (3, {"effectiveDateTime": "2999-01-01T00:00:00Z"}, "effectiveDateTime", "in the future"),
        (4, {"effectivePeriod": {"start": "2024-05-02T13:00:00Z", "end": "2024-05-04T13:00:00Z"}}, "effectivePeriod", "longer than 24 hours"),
        (4, {"effectivePeriod": {"start": "2024-05-02T13:00:00Z", "end": "2024-05-02T12:00:00Z"}}, "effectivePeriod", "end must be after start"),
    ],
)
def test_bad_treatment_resources_are_named_and_nothing_is_saved(api, person, position, change, field, reason):
    document = treatments_bundle(person)
    document["entry"][position - 1]["resource"].update(change)
    response = post_bundle(api, document)
    assert response.status_code == 400, response.data
    assert any(e["row"] == position and e["field"] == field and reason in e["reason"] for e in response.data["errors"]), response.data
    assert not Treatment.objects.exists() and not Observation.objects.exists() and not ImportBatch.objects.exists()


def test_another_patients_treatments_are_404(api, person, other_person):
    document = treatments_bundle(person)
    document["entry"][2]["resource"]["subject"]["reference"] = f"Patient/{other_person.pk}"
    assert post_bundle(api, document).status_code == 404
    assert not Treatment.objects.exists()


def test_the_treatments_csv(api, person):
    upload = {"file": SimpleUploadedFile("treatments.csv", (FIXTURES / "treatments.csv").read_bytes())}
    response = api.post("/api/observations/import/", upload, format="multipart")
    assert response.status_code == 201, response.data
    assert (response.data["format"], response.data["treatments"], response.data["created"]) == ("treatments-csv", 7, 0)
    rows = list(Treatment.objects.for_person(person).order_by("effective_at"))
    assert [t.kind for t in rows] == ["carbs", "bolus", "basal_rate", "temp_basal", "steps", "heart_rate", "bolus"]
    assert rows[0].effective_at == dt.datetime(2024, 5, 2, 5, 30, tzinfo=UTC)  # Europe/Berlin summer time
    assert (rows[1].insulin_kind, rows[1].bolus_type, rows[1].source_identifier) == ("ultra_rapid", "meal", "pen-0732")
    assert rows[-1].insulin_kind == "long_acting"
    again = api.post("/api/observations/import/", {"file": SimpleUploadedFile(
        "treatments.csv", (FIXTURES / "treatments.csv").read_bytes())}, format="multipart")
    assert again.data["treatment_duplicates"] == 7


def test_a_bad_csv_row_is_named_by_line_and_column(api, person):
    text = (FIXTURES / "treatments.csv").read_text().replace("2024-05-02 10:30,heart_rate,112", "2024-05-02 10:30,heart_rate,NaN")
    text += "2024-05-02 23:00,insulin,2,U,,,,,\n"
    response = api.post("/api/observations/import/", {"file": SimpleUploadedFile("t.csv", text.encode())}, format="multipart")
    assert response.status_code == 400
    found = {(e["row"], e["field"]) for e in response.data["errors"]}
    assert found == {(7, "amount"), (9, "kind")}
    assert not Treatment.objects.exists()


def test_fhir_search_returns_the_treatments(api, other_api, person, other_person):
    post_bundle(api, treatments_bundle(person))
    post_bundle(other_api, treatments_bundle(other_person))
    everything = api.get("/api/fhir/Observation").json()
    assert everything["total"] == 4  # the reading, then carbs, steps, heart rate
    kinds = [e["resource"]["code"]["coding"][0]["code"] for e in everything["entry"]]
    assert kinds == ["99504-3", "9059-7", "55423-8", "8867-4"]
    steps = everything["entry"][2]["resource"]
    assert steps["effectivePeriod"] == {"start": "2024-05-02T14:00:00Z", "end": "2024-05-02T14:15:00Z"}
    assert steps["valueQuantity"]["code"] == "{steps}" and steps["subject"]["reference"] == f"Patient/{person.pk}"
    meals = api.get("/api/fhir/Observation?code=http://loinc.org|9059-7").json()
    assert meals["total"] == 1 and meals["entry"][0]["resource"]["valueQuantity"]["value"] == 55
    paged = api.get("/api/fhir/Observation?_count=2&_offset=1").json()
    assert [e["resource"]["code"]["coding"][0]["code"] for e in paged["entry"]] == ["9059-7", "55423-8"]
    assert any(link["relation"] == "next" for link in paged["link"])
    assert api.get("/api/fhir/Observation?code=1234-5").status_code == 400
    insulin = api.get("/api/fhir/MedicationAdministration?date=ge2024-05-02T12:00:00Z").json()
    assert insulin["total"] == 2
    bolus, temp = (e["resource"] for e in insulin["entry"])
    assert bolus["dosage"]["dose"]["value"] == 5.5 and bolus["medicationCodeableConcept"]["text"] == "insulin, ultra-rapid-acting"
    assert temp["dosage"]["rateQuantity"]["code"] == "U/h" and temp["effectivePeriod"]["end"] == "2024-05-02T13:30:00Z"
    assert api.get(f"/api/fhir/MedicationAdministration?patient={other_person.pk}").status_code == 404
    # a round trip: the searchset's resources, posted back as a collection, are duplicates
    round_trip = {"resourceType": "Bundle", "type": "collection",
                  "entry": [{"resource": e["resource"]} for e in insulin["entry"] + everything["entry"][1:]]}
    again = post_bundle(api, round_trip)
    assert again.status_code == 201, again.data
    assert (again.data["treatments"], again.data["treatment_duplicates"]) == (0, 5)
