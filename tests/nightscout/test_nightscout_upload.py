"""The Nightscout upload surface (/ns/api/v1/...) with bodies as the uploaders really send them.

Fixtures (tests/fixtures/), field sets taken from the apps' public source:
- nightscout_upload_xdrip.json: xDrip+ NightscoutUploader.populateV1APIBGEntry (sgv entries with
  delta, filtered, unfiltered, rssi, noise, sysTime, a "+0200" dateString) plus its meter (mbg)
  and calibration (cal) entries, as one REST upload list.
- nightscout_upload_aaps.json: AndroidAPS GlucoseValue.toJson (one object, sgv as a decimal).
- nightscout_upload_aaps_v3.json: AndroidAPS NSSgvV3 -> RemoteEntry (identifier, utcOffset,
  isValid, units), one entry marked deleted.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from datetime import datetime, timedelta, timezone

import pytest
from django.test import Client
from django.urls import reverse

from observations.models import ImportBatch, Observation
from observations.nightscout.models import NightscoutUploadSecret
from observations.nightscout.secrets import issue_secret, lookup_for
from tests.conftest import FIXTURES, token_client

ENTRIES = "/ns/api/v1/entries"


def load(name):
    return json.loads((FIXTURES / name).read_text())


def sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def post(client, body, secret, path=ENTRIES, **extra):
    return client.post(path, json.dumps(body), content_type="application/json", HTTP_API_SECRET=sha1(secret), **extra)


def counts(response) -> dict:
    """The upload summary glucast puts in headers (the body is Nightscout's array)."""
    assert response.status_code == 200, response.content
    return {name: int(response[f"X-Glucast-{name.title()}"]) for name in ("received", "created", "duplicates", "skipped")}


@pytest.fixture
def secret(person):
    return issue_secret(person=person)


@pytest.fixture
def client():
    return Client(enforce_csrf_checks=True)  # the uploaders send no CSRF token


def test_the_secret_is_stored_only_as_a_hash_of_its_sha1(person, secret):
    row = NightscoutUploadSecret.objects.get(person=person)
    assert len(secret) >= 32 and secret not in (row.lookup, row.hint * 8)
    assert row.lookup == hashlib.sha256(sha1(secret).encode()).hexdigest() == lookup_for(secret) == lookup_for(sha1(secret))
    assert secret not in json.dumps(list(NightscoutUploadSecret.objects.values()), default=str)


def test_xdrip_upload_stores_sgv_and_counts_meter_and_calibration_as_skipped(client, person, secret):
    response = post(client, load("nightscout_upload_xdrip.json"), secret)
    assert counts(response) == {"received": 5, "created": 3, "duplicates": 0, "skipped": 2}
    body = response.json()  # Nightscout's shape: one object per posted entry, in order (Loop needs it)
    assert [item["status"] for item in body] == ["stored", "stored", "stored", "skipped", "skipped"]
    assert [item.get("reason") for item in body[3:]] == [
        "meter readings (mbg): only sensor readings are stored from live uploads", "sensor calibrations (cal)"]
    assert body[0] == {"type": "sgv", "date": 1748764801234, "sgv": 112, "status": "stored"}
    readings = list(Observation.objects.for_person(person).order_by("effective_at"))
    assert [r.value_mg_dl for r in readings] == [112, 118, 131]
    assert readings[0].effective_at == datetime(2025, 6, 1, 8, 0, 1, 234000, tzinfo=timezone.utc)
    assert readings[0].device == "xDrip-DexcomG6" and readings[0].source == "nightscout-upload"
    batch = ImportBatch.objects.for_person(person).get()
    assert batch.source == "nightscout-upload" and batch.filename.startswith("live upload ")


def test_resending_the_last_hour_adds_nothing_and_uploads_share_a_days_import(client, person, secret):
    body = load("nightscout_upload_xdrip.json")
    assert counts(post(client, body, secret))["created"] == 3
    again = counts(post(client, body, secret))
    assert (again["created"], again["duplicates"]) == (0, 3)
    assert counts(post(client, load("nightscout_upload_aaps.json"), secret))["created"] == 1
    assert Observation.objects.for_person(person).count() == 4
    batch = ImportBatch.objects.for_person(person).get()  # one import per local day, not per post
    assert (batch.n_created, batch.n_duplicates) == (4, 3)


def test_androidaps_single_object_and_v3_shape(client, person, secret):
    one = post(client, load("nightscout_upload_aaps.json"), secret)
    assert (counts(one)["received"], counts(one)["created"]) == (1, 1) and len(one.json()) == 1
    response = post(client, load("nightscout_upload_aaps_v3.json"), secret, path="/ns/api/v1/entries.json")
    v3 = counts(response)
    assert (v3["received"], v3["created"], v3["skipped"]) == (3, 2, 1)
    assert response.json()[1] == {"type": "sgv", "date": 1748766300000, "sgv": 146.0, "status": "skipped",
                                  "reason": "entries marked deleted (isValid false)"}
    ids = set(Observation.objects.for_person(person).values_list("source_identifier", flat=True))
    assert "3d1c7a52-9a4e-4e0b-8c3f-7b6b2a1e0000" in ids
    assert Observation.objects.for_person(person).get(value_mg_dl=139).device == "G6 Native"


@pytest.mark.parametrize("how", ["sha1-header", "plain-header", "token-plain", "token-sha1"])
def test_the_secret_is_accepted_as_nightscout_clients_present_it(client, person, secret, how):
    body = json.dumps(load("nightscout_upload_aaps.json"))
    path, headers = ENTRIES, {}
    if how == "sha1-header":
        headers["HTTP_API_SECRET"] = sha1(secret)
    elif how == "plain-header":
        headers["HTTP_API_SECRET"] = secret
    else:
        path += "?token=" + (secret if how == "token-plain" else sha1(secret))
    response = client.post(path, body, content_type="application/json", **headers)
    assert response.status_code == 200, response.content
    assert Observation.objects.for_person(person).count() == 1


def test_wrong_missing_and_rotated_secrets_are_401(client, person, secret):
    body = load("nightscout_upload_aaps.json")
    assert post(client, body, "not-the-secret").status_code == 401
    missing = client.post(ENTRIES, json.dumps(body), content_type="application/json")
    assert missing.status_code == 401 and missing["WWW-Authenticate"] == "api-secret"
    new = issue_secret(person=person)
    assert post(client, body, secret).status_code == 401  # rotated: the old one stops at once
    assert post(client, body, new).status_code == 200
    assert Observation.objects.for_person(person).count() == 1


def test_another_persons_secret_writes_only_to_that_person(client, person, other_person, secret):
    other_secret = issue_secret(person=other_person)
    assert post(client, load("nightscout_upload_xdrip.json"), other_secret).status_code == 200
    assert Observation.objects.for_person(person).count() == 0
    assert Observation.objects.for_person(other_person).count() == 3
    # ...and reads only that person's readings
    mine = client.get("/ns/api/v1/entries.json?count=100", HTTP_API_SECRET=sha1(secret)).json()
    assert mine == []


def test_the_upload_secret_opens_nothing_outside_ns(client, person, secret):
    for url in ("/api/observations/", "/api/me/", "/api/imports/"):
        for headers in ({"HTTP_API_SECRET": sha1(secret)}, {"HTTP_AUTHORIZATION": f"Token {secret}"}):
            assert client.get(url, **headers).status_code in (401, 403), url
    assert client.get("/api/observations/?token=" + secret).status_code in (401, 403)
    # and an API token does not open /ns/
    api = token_client(person)
    assert api.get("/ns/api/v1/entries.json").status_code == 401


def test_bad_fields_are_400_listing_every_entry_and_nothing_is_stored(client, person, secret):
    entries = load("nightscout_upload_xdrip.json")[:3] + [
        {"type": "sgv", "sgv": "abc", "date": 1748765701234},
        {"type": "sgv", "sgv": 120},
        {"type": "sgv", "sgv": 120, "date": 1748765701},
        {"type": "sgv", "sgv": 9000, "date": 1748766001234, "direction": 5},
        "not an entry",
        {"type": "sgv", "sgv": 120, "date": 4102444800000},
    ]
    response = post(client, entries, secret)
    assert response.status_code == 400
    body = response.json()
    found = {(e["row"], e["field"]) for e in body["errors"]}
    assert {(4, "sgv"), (5, "date"), (6, "date"), (7, "direction"), (8, "entry"), (9, "date")} <= found
    assert any(e["row"] == 6 and "epoch seconds" in e["reason"] for e in body["errors"])
    assert "nothing was saved" in body["detail"]
    assert Observation.objects.count() == 0 and ImportBatch.objects.count() == 0
    # value errors are listed even when another entry has a shape error
    response = post(client, [{"type": "sgv", "sgv": 9000, "date": 1748766001234}, {"type": 5}], secret)
    assert {(e["row"], e["field"]) for e in response.json()["errors"]} == {(1, "sgv"), (2, "type")}


@pytest.mark.parametrize("body", [b"", b"{not json", b"42", b"[]", b'"sgv"', b"\xff\xfe"])
def test_hostile_bodies_are_4xx_never_500(client, secret, body):
    response = client.post(ENTRIES, body, content_type="application/json", HTTP_API_SECRET=sha1(secret))
    assert response.status_code == 400, (body, response.status_code, response.content)


def test_size_limits(client, person, secret, settings):
    settings.GLUCAST_NIGHTSCOUT_MAX_ENTRIES = 10
    many = [{"type": "sgv", "sgv": 100, "date": 1748764800000 + i * 300000} for i in range(11)]
    response = post(client, many, secret)
    assert response.status_code == 400 and "at most 10" in response.json()["detail"]
    settings.GLUCAST_NIGHTSCOUT_MAX_BODY_BYTES = 2000
    big = [{"type": "sgv", "sgv": 100, "date": 1748764800000 + i * 300000, "device": "x" * 300} for i in range(9)]
    assert post(client, big, secret).status_code == 413
    bomb = gzip.compress(b"[" + b" " * 100_000 + b"]")  # small on the wire, large inflated
    response = client.post(ENTRIES, bomb, content_type="application/json", HTTP_CONTENT_ENCODING="gzip",
                           HTTP_API_SECRET=sha1(secret))
    assert response.status_code == 413
    small = gzip.compress(json.dumps(load("nightscout_upload_aaps.json")).encode())
    response = client.post(ENTRIES, small, content_type="application/json", HTTP_CONTENT_ENCODING="gzip",
                           HTTP_API_SECRET=sha1(secret))
    assert response.status_code == 200 and Observation.objects.for_person(person).count() == 1


def test_get_entries_with_count_and_date_filters(client, person, secret):
    post(client, load("nightscout_upload_xdrip.json"), secret)
    post(client, load("nightscout_upload_aaps.json"), secret)
    headers = {"HTTP_API_SECRET": sha1(secret)}
    newest_first = client.get("/ns/api/v1/entries.json", **headers).json()
    assert [e["sgv"] for e in newest_first] == [139, 131, 118, 112]
    first = newest_first[-1]
    assert first["type"] == "sgv" and first["date"] == 1748764801234 and first["dateString"] == "2025-06-01T08:00:01.234Z"
    assert len(first["_id"]) == 24
    assert [e["sgv"] for e in client.get("/ns/api/v1/entries/sgv.json?count=2", **headers).json()] == [139, 131]
    after = client.get(f"/ns/api/v1/entries/sgv.json?find[date][$gt]={first['date']}", **headers).json()
    assert [e["sgv"] for e in after] == [139, 131, 118]
    window = client.get(
        f"/ns/api/v1/entries.json?find[date][$gte]={first['date']}&find[date][$lt]={newest_first[1]['date']}", **headers
    ).json()
    assert [e["sgv"] for e in window] == [118, 112]
    assert client.get("/ns/api/v1/entries/mbg.json", **headers).json() == []
    for bad in ("count=-1", "count=abc", "find[date][$where]=1", "find[sgv][$gt]=100", "find[date][$gt]=yesterday"):
        response = client.get(f"/ns/api/v1/entries.json?{bad}", **headers)
        assert response.status_code == 400, bad


def test_status_and_verifyauth_answer_what_apps_read(client, person, secret):
    person.preferred_unit = "mmol/L"
    person.save()
    status = client.get("/ns/api/v1/status.json", HTTP_API_SECRET=sha1(secret))
    assert status.status_code == 200
    body = status.json()
    assert body["status"] == "ok" and body["apiEnabled"] is True and body["careportalEnabled"] is False
    assert body["settings"]["units"] == "mmol" and not body["version"].startswith(("0.6", "0.7", "0.8"))
    assert client.get("/ns/api/v1/status.json").status_code == 401
    assert client.get("/ns/api/v1/verifyauth", HTTP_API_SECRET=sha1(secret)).json()["message"]["canWrite"] is True
    assert client.get("/ns/api/v1/experiments/test", HTTP_API_SECRET=sha1(secret)).status_code == 200  # Loop
    assert client.get("/ns/api/v1/experiments/test", HTTP_API_SECRET=sha1("wrong")).status_code == 401


def test_devicestatus_is_accepted_counted_and_not_stored(client, person, secret):
    device = {"device": "xDrip-DexcomG6", "uploader": {"battery": 80}}
    response = post(client, device, secret, path="/ns/api/v1/devicestatus")
    assert (response["X-Glucast-Received"], response["X-Glucast-Stored"]) == ("1", "0")
    (item,) = response.json()  # one object per item, without an invented _id
    assert item["status"] == "not stored" and "does not store" in item["reason"] and "_id" not in item
    assert Observation.objects.count() == 0 and ImportBatch.objects.count() == 0
    # (treatments are stored: tests/nightscout/test_nightscout_treatments.py)


def test_ns_routes_stay_out_of_the_public_schema(api):
    schema = api.get(reverse("schema"), HTTP_ACCEPT="application/json").content.decode()
    assert "/ns/" not in schema


def test_uploads_are_throttled_per_person(client, person, other_person, secret, monkeypatch):
    from django.core.cache import cache

    from observations.nightscout.api import NightscoutThrottle

    cache.clear()
    monkeypatch.setattr(NightscoutThrottle, "THROTTLE_RATES", {"nightscout": "3/min"})
    try:
        codes = [client.get("/ns/api/v1/status.json", HTTP_API_SECRET=sha1(secret)).status_code for _ in range(4)]
        other = client.get("/ns/api/v1/status.json", HTTP_API_SECRET=sha1(issue_secret(person=other_person)))
    finally:
        cache.clear()
    assert codes == [200, 200, 200, 429]
    assert other.status_code == 200  # per person, not per address


def test_new_readings_queue_the_window_refresh_and_resends_do_not(client, person, secret, django_capture_on_commit_callbacks):
    from django_q.models import OrmQ

    now_ms = int(datetime.now(timezone.utc).timestamp() * 1000)
    entries = [{"type": "sgv", "sgv": 100 + i, "date": now_ms - (12 - i) * 300_000} for i in range(12)]
    with django_capture_on_commit_callbacks(execute=True):
        assert counts(post(client, entries, secret))["created"] == 12
    assert OrmQ.objects.count() == 1
    task = OrmQ.objects.get().task
    assert task["func"] == "observations.tasks.refresh_windows_task" and task["args"][0] == person.pk
    with django_capture_on_commit_callbacks(execute=True):
        assert counts(post(client, entries, secret))["created"] == 0
    assert OrmQ.objects.count() == 1


def test_more_hostile_requests_on_ns(client, person, secret):
    headers = {"HTTP_API_SECRET": sha1(secret)}
    assert client.put(ENTRIES, "[]", content_type="application/json", **headers).status_code == 405
    assert client.delete(ENTRIES, **headers).status_code == 405
    assert client.get(ENTRIES + ".json?count=99999999999999999999", **headers).status_code == 200
    assert client.get(ENTRIES + ".json?find[date][$gt]=99999999999999999", **headers).status_code in (200, 400)
    assert client.get(ENTRIES + ".json?find[date][$gt]=-99999999999999", **headers).status_code in (200, 400)
    assert client.get(ENTRIES + ".json", HTTP_API_SECRET="x" * 5000).status_code == 401
    assert client.get(ENTRIES + ".json?token=" + "%00" * 10).status_code == 401
    nested = "[" * 5000 + "]" * 5000
    assert client.post(ENTRIES, nested, content_type="application/json", **headers).status_code == 400
    weird = [{"type": "sgv", "sgv": float("nan"), "date": 1748764800000}]
    response = client.post(ENTRIES, json.dumps(weird), content_type="application/json", **headers)
    assert response.status_code == 400
    odd = [{"type": "sgv", "sgv": 120, "date": 1748764800000, "_id": {"$oid": "x" * 500}, "device": "d" * 1000}]
    assert client.post(ENTRIES, json.dumps(odd), content_type="text/plain", **headers).status_code == 200
    assert Observation.objects.for_person(person).get().device == "d" * 128
