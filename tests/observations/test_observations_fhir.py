"""FHIR R4: Bundle intake and Observation search output that validates with fhir.resources."""

import datetime as dt
import json

from fhir.resources.R4B.bundle import Bundle

from observations.models import Observation
from tests.factories import ObservationFactory

UTC = dt.timezone.utc


def search(api, params=None):
    response = api.get("/api/fhir/Observation", params or {}, HTTP_ACCEPT="application/fhir+json")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("application/fhir+json")
    return json.loads(response.content)


def test_post_collection_and_transaction(api, person, fixtures_dir):
    for name, n in (("fhir_bundle_collection.json", 4), ("fhir_bundle_transaction.json", 3)):
        body = (fixtures_dir / name).read_text().replace("PATIENT_ID", str(person.pk))
        response = api.post("/api/fhir/Bundle", body, content_type="application/fhir+json")
        assert response.status_code == 201, response.data
        assert response.data["created"] == n and response.data["format"] == "fhir"
    assert Observation.objects.for_person(person).count() == 7


def test_post_bundle_as_plain_json_and_idempotent(api, person, fixtures_dir):
    body = json.loads((fixtures_dir / "fhir_bundle_transaction.json").read_text().replace("PATIENT_ID", str(person.pk)))
    first = api.post("/api/fhir/Bundle", body, format="json")
    second = api.post("/api/fhir/Bundle", body, format="json")
    assert (first.data["created"], second.data["created"], second.data["duplicates"]) == (3, 0, 3)


def test_non_observation_entries_and_entered_in_error_are_skipped_and_counted(api, person, fixtures_dir):
    body = json.loads((fixtures_dir / "fhir_bundle_transaction.json").read_text().replace("PATIENT_ID", str(person.pk)))
    body["entry"].append({"resource": {"resourceType": "Patient", "id": "p1"}})
    body["entry"][0]["resource"]["status"] = "entered-in-error"
    response = api.post("/api/fhir/Bundle", body, format="json")
    assert response.status_code == 201
    assert response.data["created"] == 2 and response.data["skipped"] == 2


def test_search_output_validates_and_follows_the_cgm_sensor_reading_profile(api, person, fixtures_dir):
    body = (fixtures_dir / "fhir_bundle_collection.json").read_text().replace("PATIENT_ID", str(person.pk))
    api.post("/api/fhir/Bundle", body, content_type="application/fhir+json")
    document = search(api, {"patient": str(person.pk)})
    bundle = Bundle.model_validate(document)  # raises if the Bundle is not valid FHIR
    assert bundle.type == "searchset" and bundle.total == 4
    by_id = {e["resource"]["identifier"][0]["value"]: e["resource"] for e in document["entry"]}
    mass = by_id["cgm-1"]
    assert mass["meta"]["profile"] == ["http://hl7.org/fhir/uv/cgm/StructureDefinition/cgm-sensor-reading-mass-per-volume"]
    assert mass["category"][0]["coding"][0]["code"] == "laboratory"
    assert mass["code"]["coding"][0] == {
        "system": "http://loinc.org",
        "code": "99504-3",
        "display": "Glucose [Mass/volume] in Interstitial fluid",
    }
    assert mass["valueQuantity"] == {"value": 120.0, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}
    assert mass["effectiveDateTime"] == "2024-05-02T10:15:00Z"
    assert mass["subject"] == {"reference": f"Patient/{person.pk}"}
    assert mass["device"] == {"display": "Dexcom G7"}
    molar = by_id["cgm-2"]
    assert molar["meta"]["profile"][0].endswith("cgm-sensor-reading-moles-per-volume")
    assert molar["valueQuantity"]["code"] == "mmol/L" and molar["code"]["coding"][0]["code"] == "105272-9"
    assert by_id["cgm-3"]["valueQuantity"]["comparator"] == "<"
    assert "meta" not in by_id["bg-1"]  # blood readings are not CGM sensor readings


def test_search_by_date_and_paging(api, person):
    start = dt.datetime(2025, 1, 1, tzinfo=UTC)
    for k in range(30):
        ObservationFactory(person=person, effective_at=start + dt.timedelta(minutes=5 * k))
    document = search(api, {"date": ["ge2025-01-01T01:00:00Z", "lt2025-01-01T02:00:00Z"]})
    assert document["total"] == 12
    first_page = search(api, {"_count": "10"})
    assert first_page["total"] == 30 and len(first_page["entry"]) == 10
    next_link = [link["url"] for link in first_page["link"] if link["relation"] == "next"][0]
    second = json.loads(api.get(next_link, HTTP_ACCEPT="application/fhir+json").content)
    assert second["entry"][0]["resource"]["effectiveDateTime"] == "2025-01-01T00:50:00Z"
    Bundle.model_validate(second)
    # a bare date is the person's local day (Europe/Berlin): 2025-01-01 local starts 2024-12-31T23:00Z
    assert search(api, {"date": "2025-01-01"})["total"] == 30
    assert search(api, {"date": "ge2025-01-02"})["total"] == 0


def test_search_with_bad_date_is_400(api, person):
    for value in ("ge-yesterday", "2025-02-30", "le2025-01-01T25:00:00Z"):
        assert api.get("/api/fhir/Observation", {"date": value}).status_code == 400, value
    assert api.get("/api/fhir/Observation", {"_count": "-1"}).status_code == 400


def test_empty_search_is_a_valid_bundle(api, person):
    document = search(api)
    assert document["total"] == 0 and "entry" not in document  # FHIR JSON has no empty arrays
    Bundle.model_validate(document)
