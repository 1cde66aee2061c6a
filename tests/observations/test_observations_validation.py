"""Every validation rule answers 400 with row, field and reason, and saves nothing.

The same rules hold for the REST list, FHIR Bundles and files (one validation path).
"""

import datetime as dt
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings

from observations.models import ImportBatch, Observation
from observations.validation import MAX_REPORTED_ERRORS

GOOD = {"effective_at": "2025-03-01T08:00:00Z", "value": 120, "unit": "mg/dL"}


def soon(minutes: int) -> str:
    return (dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=minutes)).isoformat()


def assert_rejected(response, row, field, reason_part):
    assert response.status_code == 400, response.data
    errors = response.data["errors"]
    assert any(
        e["row"] == row and e["field"] == field and reason_part in e["reason"] for e in errors
    ), errors
    assert not Observation.objects.exists()
    assert not ImportBatch.objects.exists()


@pytest.mark.parametrize(
    "bad, field, reason",
    [
        ({"value": "abc"}, "value", "is not a number"),
        ({"value": "NaN"}, "value", "not a finite number"),
        ({"value": "inf"}, "value", "not a finite number"),
        ({"value": -5}, "value", "is negative"),
        ({"value": 19}, "value", "outside the accepted 20-600 mg/dL"),
        ({"value": 601}, "value", "outside the accepted 20-600 mg/dL"),
        ({"value": 1.0, "unit": "mmol/L"}, "value", "outside the accepted 1.1-33.3 mmol/L"),
        ({"value": 33.4, "unit": "mmol/L"}, "value", "outside the accepted 1.1-33.3 mmol/L"),
        ({"value": None}, "value", "missing"),
        ({"unit": "g/L"}, "unit", "is not a glucose unit"),
        ({"unit": None}, "unit", "missing"),
        ({"effective_at": "next tuesday"}, "effective_at", "not a recognised date and time"),
        ({"effective_at": "2025-03-01"}, "effective_at", "no time of day"),
        ({"effective_at": None}, "effective_at", "missing"),
        ({"code": "12345-6"}, "code", "not a glucose LOINC code"),
        ({"code": "99504-3", "unit": "mmol/L", "value": 6}, "code", "measured in mg/dL"),
    ],
)
def test_rest_row_errors(api, bad, field, reason):
    readings = [dict(GOOD), {**GOOD, "effective_at": "2025-03-01T08:05:00Z", **bad}]
    response = api.post("/api/observations/", readings, format="json")
    assert_rejected(response, 2, field, reason)
    assert response.data["error_count"] >= 1 and response.data["more_errors"] == 0


def test_future_timestamps_beyond_five_minutes_are_rejected_but_clock_skew_is_not(api):
    response = api.post("/api/observations/", [{**GOOD, "effective_at": soon(10)}], format="json")
    assert_rejected(response, 1, "effective_at", "more than 5 minutes in the future")
    ok = api.post("/api/observations/", [{**GOOD, "effective_at": soon(3)}], format="json")
    assert ok.status_code == 201


def test_low_and_high_strings_store_the_device_limits_with_the_flag(api, person):
    response = api.post(
        "/api/observations/",
        [{**GOOD, "value": "Low"}, {**GOOD, "effective_at": "2025-03-01T08:05:00Z", "value": "HIGH"}],
        format="json",
    )
    assert response.status_code == 201
    values = list(Observation.objects.order_by("effective_at").values_list("value_mg_dl", "at_sensor_limit"))
    assert values == [(40.0, True), (400.0, True)]


def test_every_bad_row_is_listed_and_the_list_is_capped(api):
    readings = [{**GOOD, "effective_at": f"2025-03-01T{h:02d}:{m:02d}:00Z", "value": -1} for h in range(12) for m in range(0, 60, 5)]
    response = api.post("/api/observations/", readings, format="json")
    assert response.status_code == 400
    assert response.data["error_count"] == 144
    assert len(response.data["errors"]) == MAX_REPORTED_ERRORS
    assert response.data["more_errors"] == 144 - MAX_REPORTED_ERRORS
    assert not Observation.objects.exists()


def test_items_that_are_not_objects(api):
    response = api.post("/api/observations/", [GOOD, 42], format="json")
    assert_rejected(response, 2, "item", "must be an object")


def test_empty_list(api):
    response = api.post("/api/observations/", [], format="json")
    assert response.status_code == 400 and not Observation.objects.exists()


# --- files --------------------------------------------------------------------------------------


def post_file(api, name, content: bytes, **extra):
    return api.post(
        "/api/observations/import/",
        {"file": SimpleUploadedFile(name, content), **extra},
        format="multipart",
    )


def test_file_rows_are_named_by_their_line(api, fixtures_dir):
    text = (fixtures_dir / "dexcom_clarity_g6_mgdl.csv").read_text()
    text = text.replace(",Android G6,118,", ",Android G6,abc,").replace(",Android G6,131,", ",Android G6,-5,")
    response = post_file(api, "clarity.csv", text.encode())
    assert_rejected(response, 13, "value", "'abc' is not a number")
    assert_rejected(response, 14, "value", "-5 is negative")


def test_libre_bad_value_and_time(api, fixtures_dir):
    raw = (fixtures_dir / "libreview_eu_mmol.csv").read_bytes()
    raw = raw.replace(b"11-11-2024 21:40,0,6.2", b"11-11-2024 21:40,0,99.9")
    raw = raw.replace(b"11-11-2024 21:45", b"31-02-2024 21:45")
    response = post_file(api, "libre.csv", raw)
    assert_rejected(response, 4, "value", "outside the accepted 1.1-33.3 mmol/L")
    assert_rejected(response, 6, "time", "not a recognised date and time")


def test_nightscout_bad_entry(api, fixtures_dir):
    entries = json.loads((fixtures_dir / "nightscout_entries.json").read_text())
    entries[2]["sgv"] = "NaN"
    entries[5]["date"] = None
    entries[5].pop("dateString")
    entries[5].pop("sysTime")
    response = post_file(api, "entries.json", json.dumps(entries).encode())
    assert_rejected(response, 3, "value", "not a finite number")
    assert_rejected(response, 6, "time", "missing")


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
        (b"name,colour\nanna,blue\n", "not a recognised CGM file"),
        (b'{"hello": "world"}', "neither a FHIR Bundle nor"),
        (b"[1, 2", "not valid JSON"),
        (b"", "empty"),
    ],
)
def test_wrong_file_formats(api, content, reason):
    response = post_file(api, "upload.bin", content)
    assert_rejected(response, 0, "file", reason)


def test_explicit_format_that_does_not_match(api, fixtures_dir):
    response = post_file(api, "x.csv", (fixtures_dir / "libreview_us_mgdl.csv").read_bytes(), format="dexcom")
    assert_rejected(response, 0, "file", "not a Dexcom Clarity export")


def test_unknown_format_name(api, fixtures_dir):
    response = post_file(api, "x.csv", (fixtures_dir / "plain_readings.csv").read_bytes(), format="medtronic")
    assert_rejected(response, 0, "format", "unknown format")


def test_missing_file(api):
    response = api.post("/api/observations/import/", {}, format="multipart")
    assert_rejected(response, 0, "file", "missing")


@override_settings(GLUCAST_MAX_UPLOAD_BYTES=1024)
def test_file_over_the_size_limit(api, fixtures_dir):
    """Cut off while it streams in (never read whole): 413 naming the file, nothing stored."""
    content = b"time,value\n" + b"2025-01-01T10:00:00,120\n" * 100
    response = post_file(api, "big.csv", content)
    assert response.status_code == 413, response.data
    assert response.data["errors"] == [{"row": 0, "field": "file", "reason": response.data["detail"]}]
    assert "limit" in response.data["detail"]
    assert not Observation.objects.exists() and not ImportBatch.objects.exists()


def test_default_size_limit_is_50_mb(settings):
    assert settings.GLUCAST_MAX_UPLOAD_BYTES == 50 * 1024 * 1024


def test_plain_csv_with_several_subjects_is_refused(api, tmp_path):
    content = b"subject,time,glucose_mg_dl\nA,2015-06-06T21:50:27,153\nB,2015-06-06T21:55:27,150\n"
    response = post_file(api, "broll.csv", content)
    assert_rejected(response, 0, "file", "2 subjects")


# --- FHIR ---------------------------------------------------------------------------------------


def bundle(person, *resources, bundle_type="collection"):
    return {
        "resourceType": "Bundle",
        "type": bundle_type,
        "entry": [{"resource": r} for r in resources],
    }


def observation(person, **overrides):
    resource = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "99504-3"}]},
        "subject": {"reference": f"Patient/{person.pk}"},
        "effectiveDateTime": "2025-03-01T08:00:00Z",
        "valueQuantity": {"value": 120, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"},
    }
    resource.update(overrides)
    return resource


def post_bundle(api, document):
    return api.post("/api/fhir/Bundle", json.dumps(document), content_type="application/fhir+json")


def test_fhir_malformed_structure_is_reported_per_entry(api, person):
    document = bundle(
        person,
        observation(person),
        observation(person, effectiveDateTime="2025-03-01T08:05:00Z", valueQuantity={"value": "abc", "code": "mg/dL"}),
    )
    response = post_bundle(api, document)
    assert_rejected(response, 2, "valueQuantity.value", "")


def test_fhir_missing_value_code_and_time(api, person):
    no_value = observation(person, effectiveDateTime="2025-03-01T08:05:00Z")
    no_value.pop("valueQuantity")
    no_time = observation(person)
    no_time.pop("effectiveDateTime")
    # body weight: neither glucose nor a treatment (8867-4, heart rate, is one now)
    wrong_code = observation(person, effectiveDateTime="2025-03-01T08:10:00Z", code={"coding": [{"system": "http://loinc.org", "code": "29463-7"}]})
    response = post_bundle(api, bundle(person, observation(person), no_value, no_time, wrong_code))
    assert_rejected(response, 2, "valueQuantity", "missing")
    assert_rejected(response, 3, "effectiveDateTime", "missing")
    assert_rejected(response, 4, "code", "LOINC 29463-7")


def test_fhir_value_errors_use_the_shared_rules(api, person):
    response = post_bundle(
        api,
        bundle(
            person,
            observation(person, valueQuantity={"value": 45, "code": "mmol/L", "system": "http://unitsofmeasure.org"},
                        code={"coding": [{"system": "http://loinc.org", "code": "105272-9"}]}),
            observation(person, effectiveDateTime="2025-03-01T08:05:00Z", valueQuantity={"value": 120, "code": "g/dL"}),
            observation(person, effectiveDateTime=soon(30)),
        ),
    )
    assert_rejected(response, 1, "valueQuantity.value", "outside the accepted 1.1-33.3 mmol/L")
    assert_rejected(response, 2, "valueQuantity.code", "is not a glucose unit")
    assert_rejected(response, 3, "effectiveDateTime", "in the future")


def test_fhir_not_a_bundle_and_wrong_bundle_type(api, person):
    response = post_bundle(api, observation(person))
    assert_rejected(response, 0, "resourceType", "not a FHIR Bundle")
    response = post_bundle(api, bundle(person, observation(person), bundle_type="searchset"))
    assert_rejected(response, 0, "type", "is not accepted")
    response = api.post("/api/fhir/Bundle", "{not json", content_type="application/fhir+json")
    assert response.status_code == 400 and not Observation.objects.exists()


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=2048)
def test_json_body_over_the_request_limit_is_a_4xx_not_a_500(api):
    readings = [{**GOOD, "effective_at": f"2025-03-01T08:{m:02d}:00Z"} for m in range(60)]
    response = api.post("/api/observations/", readings, format="json")
    assert 400 <= response.status_code < 500
    assert not Observation.objects.exists()


def test_fhir_unknown_resource_type_and_bad_entry_shapes(api, person):
    response = post_bundle(api, bundle(person, observation(person), {"resourceType": "Glucometer", "id": "x"}))
    assert_rejected(response, 2, "resourceType", "not a FHIR resource type")
    response = post_bundle(api, {"resourceType": "Bundle", "type": "collection", "entry": ["nope"]})
    assert_rejected(response, 0, "entry", "list of objects")
    response = post_bundle(api, {"resourceType": "Bundle", "type": "not-a-type", "entry": [{"resource": observation(person)}]})
    assert_rejected(response, 0, "type", "")


def test_fhir_per_reading_primitives_and_repeated_shapes_are_each_reported(api, person):
    """Bundles are validated shape by shape (see importers._ShapeValidator): bad ids, times
    and values are still caught on every entry, and an invalid shape on every entry that has it."""
    bad_subject = {"subject": "Patient/1"}  # a string where FHIR has a Reference object
    response = post_bundle(
        api,
        bundle(
            person,
            observation(person, id="bad id!"),
            observation(person, effectiveDateTime="2025-03-01T08:05:00"),  # FHIR needs an offset
            observation(person, effectiveDateTime="2025-03-01T08:10:00Z", **bad_subject),
            observation(person, effectiveDateTime="2025-03-01T08:15:00Z", **bad_subject),
            observation(person, effectiveDateTime="2025-03-01T08:20:00Z", valueQuantity={"value": True, "code": "mg/dL"}),
        ),
    )
    assert_rejected(response, 1, "id", "")
    assert_rejected(response, 2, "effectiveDateTime", "")
    assert_rejected(response, 3, "subject", "")
    assert_rejected(response, 4, "subject", "")
    assert_rejected(response, 5, "valueQuantity.value", "")
