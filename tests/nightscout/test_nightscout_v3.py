"""Nightscout API v3 (/ns/api/v3/) as AndroidAPS' NSClientV3 uses it.

tests/fixtures/nightscout_v3_aaps.json holds the bodies AndroidAPS builds (its extensions and
nssdk mappers, Gson without nulls; see the file's COMMENT). `AapsClient` below replays its
client's behaviour: every call with `Date: <epoch ms>` and `Authorization: Bearer <jwt>`
(empty at first), on 401/403 one GET of /api/v2/authorization/request/<token> at the host's
root (an absolute path in its Retrofit service) and a retry; the history cursor read from the
ETag as `substring(3, length - 1)`; and its sync cycle in WorkManager's order. One test runs it
over real HTTP against the live server; the others through Django's test client.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import jwt as pyjwt
import pytest
from django.test import Client
from django.utils import timezone

from observations.models import Observation, ObservationStatus, Treatment
from observations.nightscout import tokens
from observations.nightscout.documents import calculate_identifier
from observations.nightscout.models import NightscoutAccessToken
from observations.nightscout.secrets import issue_secret
from observations.nightscout.tokens import issue_access_token
from tests.conftest import FIXTURES, token_client
from tests.mlmodels.conftest import store_readings
from tests.predictions.conftest import recent_readings

V3 = "/ns/api/v3"
BERLIN = ZoneInfo("Europe/Berlin")  # PersonFactory's time zone


def aaps_fixture() -> dict:
    """The recorded AndroidAPS bodies, dates shifted so the newest is two minutes old, each
    utcOffset the one a phone in the people's zone (Europe/Berlin) has at the shifted date."""
    data = json.loads((FIXTURES / "nightscout_v3_aaps.json").read_text())
    newest = max(doc["date"] for doc in data["entries"] + data["treatments"])
    shift = int(time.time() * 1000) - 120_000 - newest
    for doc in data["entries"] + data["treatments"] + [data["devicestatus"], data["profile"]]:
        doc["date"] += shift
        if "utcOffset" in doc:
            # The recording's 60 (a winter day) on a summer date was an offset no phone in Berlin
            # sends, and a stored entry's utcOffset is the person's zone at its date: from the last
            # Sunday of March to the last of October an entry's PUT was refused as changing it.
            moment = datetime.fromtimestamp(doc["date"] / 1000, tz=BERLIN)
            doc["utcOffset"] = int(moment.utcoffset().total_seconds() // 60)
    return data


def now_ms() -> int:
    return int(time.time() * 1000)


class AapsClient:
    """NSAndroidClientImpl + NSAuthInterceptor over Django's test client."""

    def __init__(self, access_token: str, client: Client | None = None):
        self.access_token = access_token
        self.client = client or Client(enforce_csrf_checks=True)  # AndroidAPS sends no CSRF token
        self.jwt = ""
        self.refreshes = 0

    def _headers(self, date_ms=None):
        return {"HTTP_DATE": str(date_ms if date_ms is not None else now_ms()),
                "HTTP_AUTHORIZATION": f"Bearer {self.jwt}"}

    def call(self, method: str, path: str, body=None, date_ms=None):
        def send():
            kwargs = self._headers(date_ms)
            if body is not None:
                return getattr(self.client, method)(V3 + path, json.dumps(body), content_type="application/json", **kwargs)
            return getattr(self.client, method)(V3 + path, **kwargs)

        response = send()
        if response.status_code in (401, 403):
            assert "Date header out of tolerance" not in response.content.decode()
            refreshed = self.client.get(f"/api/v2/authorization/request/{self.access_token}")
            self.refreshes += 1
            if refreshed.status_code in (401, 403):
                raise PermissionError("Invalid access token")
            self.jwt = refreshed.json()["token"]
            response = send()
        return response


@pytest.fixture
def access_token(person):
    return issue_access_token(person=person)


@pytest.fixture
def aaps(access_token):
    return AapsClient(access_token)


def upload_all(aaps: AapsClient, data: dict) -> dict:
    """DataSyncSelectorV3.doUpload's order: glucose values, boluses, carbs, ..., device status,
    profile store. Returns {name: response}."""
    answers = {}
    for position, entry in enumerate(data["entries"]):
        answers[f"entry {position}"] = aaps.call("post", "/entries", entry)
    for treatment in data["treatments"]:
        body = {k: v for k, v in treatment.items() if k not in ("NAME", "expect")}
        answers[treatment["NAME"]] = aaps.call("post", "/treatments", body)
    answers["devicestatus"] = aaps.call("post", "/devicestatus", data["devicestatus"])
    answers["profile"] = aaps.call("post", "/profile", data["profile"])
    return answers


def etag_cursor(response) -> int | None:
    tag = response.get("ETag")
    return int(tag[3:-1]) if tag else None  # NSAndroidClientImpl: substring(3, length - 1)


# --- Authorization --------------------------------------------------------------------------


def test_the_access_token_has_nightscouts_form_and_is_stored_only_as_a_hash(person, access_token):
    row = NightscoutAccessToken.objects.get(person=person)
    assert access_token.startswith("glucast-") and len(access_token) == 40 and len(access_token) >= 17
    assert row.lookup == hashlib.sha256(access_token.encode()).hexdigest()
    assert access_token not in json.dumps(list(NightscoutAccessToken.objects.values()), default=str)


def test_first_call_is_refused_then_the_token_buys_a_jwt_and_the_retry_passes(aaps):
    first = aaps.client.get(f"{V3}/status", HTTP_AUTHORIZATION="Bearer ", HTTP_DATE=str(now_ms()))
    assert first.status_code == 401
    assert first.json() == {"status": 401, "message": "Missing or bad access token or JWT"}
    status = aaps.call("get", "/status")
    assert status.status_code == 200 and aaps.refreshes == 1
    result = status.json()["result"]
    # NSClientV3Plugin uploads only when all six are full ("crud")
    assert result["apiPermissions"] == {name: "crud" for name in
                                        ("devicestatus", "entries", "food", "profile", "settings", "treatments")}
    assert result["version"] and result["apiVersion"] and result["storage"]["storage"] == "postgresql"
    assert aaps.call("get", "/status").status_code == 200 and aaps.refreshes == 1  # the JWT is reused


def test_the_exchange_answers_at_the_root_and_under_ns_with_an_8_hour_jwt(access_token):
    client = Client()
    for path in (f"/api/v2/authorization/request/{access_token}", f"/ns/api/v2/authorization/request/{access_token}"):
        answer = client.get(path)
        assert answer.status_code == 200 and answer["Cache-Control"] == "no-store"
        body = answer.json()
        assert body["exp"] - body["iat"] == 8 * 3600
        claims = pyjwt.decode(body["token"], options={"verify_signature": False})
        assert access_token not in json.dumps(claims)  # unlike Nightscout's, no token inside


@pytest.mark.parametrize("presented", ["glucast-" + "0" * 32, "nobody-0123456789abcdef", "x" * 300, "%00", "a b"])
def test_an_unknown_token_is_nightscouts_401(presented, access_token):
    answer = Client().get(f"/api/v2/authorization/request/{presented}")
    assert answer.status_code in (401, 404)
    if answer.status_code == 401:
        assert answer.json() == {"status": 401, "message": "Unauthorized", "description": "Invalid/Missing"}


def _jwt_for(access_token):
    return Client().get(f"/api/v2/authorization/request/{access_token}").json()["token"]


def test_expired_forged_and_rotated_jwts_answer_401(person, access_token):
    good = _jwt_for(access_token)
    claims = pyjwt.decode(good, options={"verify_signature": False})
    expired = pyjwt.encode({**claims, "iat": claims["iat"] - 9 * 3600, "exp": claims["iat"] - 3600},
                           tokens._jwt_key(), algorithm="HS256")
    forged = pyjwt.encode(claims, b"not glucast's key", algorithm="HS256")
    unsigned = pyjwt.encode(claims, None, algorithm="none")
    other = NightscoutAccessToken.objects.exclude(person=person).first()
    assert other is None
    client = Client()
    for bad in (expired, forged, unsigned, "garbage", good + "x"):
        answer = client.get(f"{V3}/status", HTTP_AUTHORIZATION=f"Bearer {bad}")
        assert answer.status_code == 401, bad
        assert answer.json() == {"status": 401, "message": "Bad access token or JWT"}
    assert client.get(f"{V3}/status", HTTP_AUTHORIZATION=f"Bearer {good}").status_code == 200
    issue_access_token(person=person)  # rotation ends the JWTs of the old token
    assert client.get(f"{V3}/status", HTTP_AUTHORIZATION=f"Bearer {good}").status_code == 401
    assert Client().get(f"/api/v2/authorization/request/{access_token}").status_code == 401


def test_every_v3_route_refuses_a_missing_bearer(access_token):
    client = Client()
    for method, path in (("get", "/status"), ("get", "/lastModified"), ("get", "/entries"), ("post", "/entries"),
                         ("get", "/treatments/history/0"), ("delete", "/treatments/abc"), ("get", "/food"),
                         ("get", "/devicestatus/history/0"), ("get", "/nothing-here")):
        answer = getattr(client, method)(V3 + path)
        assert answer.status_code == 401, (method, path, answer.content)
        assert answer.json()["status"] == 401
    assert client.get(f"{V3}/version").status_code == 200  # public in Nightscout too


def test_a_clock_off_by_more_than_5_minutes_is_told_as_androidaps_expects(aaps):
    aaps.call("get", "/status")
    for skew_ms in (6 * 60_000, -6 * 60_000):
        answer = aaps.client.get(f"{V3}/status", HTTP_AUTHORIZATION=f"Bearer {aaps.jwt}", HTTP_DATE=str(now_ms() + skew_ms))
        assert answer.status_code == 401
        assert "Date header out of tolerance" in answer.content.decode()  # NSAuthInterceptor.testCanRefresh
    near = aaps.client.get(f"{V3}/status", HTTP_AUTHORIZATION=f"Bearer {aaps.jwt}", HTTP_DATE=str(now_ms() - 60_000))
    assert near.status_code == 200
    http_date = timezone.now().strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert aaps.client.get(f"{V3}/status", HTTP_AUTHORIZATION=f"Bearer {aaps.jwt}", HTTP_DATE=http_date).status_code == 200
    bad = aaps.client.get(f"{V3}/status", HTTP_AUTHORIZATION=f"Bearer {aaps.jwt}", HTTP_DATE="yesterday")
    assert bad.status_code == 401 and bad.json()["message"] == "Bad Date header"


def test_the_token_opens_only_the_nightscout_v3_surface(person, access_token):
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {_jwt_for(access_token)}"}
    client = Client()
    for path in ("/api/observations/", "/api/predictions/", "/api/me/", "/ns/api/v1/entries.json"):
        assert client.get(path, **bearer).status_code in (401, 403), path
    # glucast's API token, the v1 upload secret and a session do not open v3
    api = token_client(person)
    assert api.get(f"{V3}/status").status_code == 401
    secret = issue_secret(person=person)
    assert client.get(f"{V3}/status", HTTP_API_SECRET=hashlib.sha1(secret.encode()).hexdigest()).status_code == 401
    assert client.get(f"{V3}/status", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 401
    assert client.get(f"{V3}/status", HTTP_AUTHORIZATION=f"Bearer {access_token}").status_code == 401
    session = Client()
    session.force_login(person.owner)
    assert session.get(f"{V3}/status").status_code == 401


# --- AndroidAPS' sync cycle, replayed ----------------------------------------------------------


def test_androidaps_sync_cycle_uploads_readings_and_treatments(person, aaps):
    data = aaps_fixture()
    # LoadStatusWorker, LoadLastModificationWorker (nothing on the server yet: no downloads)
    assert aaps.call("get", "/status").status_code == 200
    last = aaps.call("get", "/lastModified").json()["result"]
    assert last["collections"] == {} and last["srvDate"] > 0
    # LoadTreatmentsWorker's first load, LoadFoodsWorker, LoadProfileStoreWorker, LoadDeviceStatusWorker
    since = (timezone.now() - timedelta(days=100)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    for path in (f"/treatments?sort=created_at&created_at$gt={since}&limit=500", "/food?limit=1000",
                 "/profile?sort$desc=date&limit=1", f"/devicestatus/history/{now_ms() - 7 * 60_000}"):
        answer = aaps.call("get", path)
        assert answer.status_code == 200 and answer.json() == {"status": 200, "result": []}, path
    answers = upload_all(aaps, data)

    for position, entry in enumerate(data["entries"]):
        answer = answers[f"entry {position}"]
        assert answer.status_code == 201, answer.content
        body = answer.json()
        assert body["identifier"] == calculate_identifier(entry) and body["lastModified"] > 0
    readings = Observation.objects.for_person(person).order_by("effective_at")
    assert [r.value_mg_dl for r in readings] == [132, 138, 141]
    assert {r.source for r in readings} == {"nightscout-v3"} and readings[0].device == "DexcomG6"

    for treatment in data["treatments"]:
        answer = answers[treatment["NAME"]]
        body = answer.json()
        assert body["identifier"], treatment["NAME"]
        if treatment["expect"] == "stored":
            assert answer.status_code == 201, (treatment["NAME"], body)
        else:  # 200: AndroidAPS marks it synced and does not resend it forever
            assert answer.status_code == 200 and body["stored"] is False and body["reason"], treatment["NAME"]
    stored = {(t.kind, t.bolus_type, t.amount) for t in Treatment.objects.for_person(person)}
    assert stored == {("bolus", None, 6.5), ("bolus", "smb", 0.35), ("carbs", None, 60.0), ("carbs", None, 10.0),
                      ("temp_basal", None, 1.6), ("temp_basal", None, 0.64), ("bolus", "extended", 2.0)}
    extended_carbs = Treatment.objects.for_person(person).get(kind="carbs", amount=10.0)
    assert extended_carbs.duration == timedelta(hours=2)
    for name in ("devicestatus", "profile"):
        answer = answers[name]
        assert answer.status_code == 200 and answer.json()["stored"] is False and answer.json()["identifier"]

    # The next cycle: lastModified names what the server has, history returns AndroidAPS' own
    # records once, and the cursor from the ETag ends the loop.
    collections = aaps.call("get", "/lastModified").json()["result"]["collections"]
    assert set(collections) == {"entries", "treatments"}
    for collection, expected in (("entries", 3), ("treatments", 7)):
        page = aaps.call("get", f"/{collection}/history/{now_ms() - 3600_000}?limit=500")
        assert page.status_code == 200
        documents = page.json()["result"]
        assert len(documents) == expected
        cursor = etag_cursor(page)
        assert cursor == max(d["srvModified"] for d in documents) == collections[collection]
        again = aaps.call("get", f"/{collection}/history/{cursor}?limit=500")
        assert again.json() == {"status": 200, "result": []} and again.get("ETag") is None
    bolus = next(d for d in aaps.call("get", "/treatments/history/0").json()["result"] if d.get("insulin") == 6.5)
    sent = next(t for t in data["treatments"] if t.get("insulin") == 6.5)
    assert bolus["eventType"] == "Meal Bolus" and bolus["pumpId"] == 4102 and bolus["utcOffset"] == sent["utcOffset"]
    assert bolus["identifier"] == answers["meal bolus (BS.Type.NORMAL)"].json()["identifier"]


def test_resending_is_deduplicated_as_androidaps_reads_it(person, aaps):
    data = aaps_fixture()
    first = upload_all(aaps, data)
    second = upload_all(aaps, copy.deepcopy(data))
    for name, answer in second.items():
        assert answer.status_code == 200, (name, answer.content)
        if first[name].status_code == 201:
            assert answer.json()["isDeduplication"] is True, name
            assert answer.json()["identifier"] == first[name].json()["identifier"]
    assert Observation.objects.for_person(person).count() == 3
    assert Treatment.objects.for_person(person).count() == 7


def test_a_reading_uploaded_over_v1_first_takes_the_v3_identifier(person, aaps):
    entry = aaps_fixture()["entries"][0]
    secret = issue_secret(person=person)
    v1 = Client().post("/ns/api/v1/entries", json.dumps({k: entry[k] for k in ("type", "sgv", "date", "device")}),
                       content_type="application/json", HTTP_API_SECRET=hashlib.sha1(secret.encode()).hexdigest())
    assert v1.status_code == 200
    row = Observation.objects.for_person(person).get()
    answer = aaps.call("post", "/entries", entry)
    assert answer.status_code == 200
    body = answer.json()
    assert body["isDeduplication"] is True and body["deduplicatedIdentifier"] == f"{row.pk:024x}"
    assert aaps.call("get", f"/entries/{body['identifier']}").json()["result"]["sgv"] == 132


def test_a_cancelled_temporary_basal_is_shortened_by_patch_and_a_deleted_bolus_withdrawn(person, aaps):
    data = aaps_fixture()
    answers = upload_all(aaps, data)
    basal_id = answers["temporary basal, absolute"].json()["identifier"]
    bolus_id = answers["SMB"].json()["identifier"]
    # NSAndroidClientImpl.updateTreatment: the whole record without date and utcOffset
    basal = {k: v for k, v in data["treatments"][6].items() if k not in ("NAME", "expect", "date", "utcOffset")}
    basal.update(identifier=basal_id, duration=12, durationInMilliseconds=720_000)
    answer = aaps.call("patch", f"/treatments/{basal_id}", basal)
    assert answer.status_code == 200, answer.content
    row = Treatment.objects.for_person(person).get(kind="temp_basal", amount=1.6)
    assert row.duration == timedelta(minutes=12) and row.is_valid
    assert aaps.call("get", f"/treatments/{basal_id}").json()["result"]["duration"] == 12
    # updateTreatment of an invalidated record: DELETE
    assert aaps.call("delete", f"/treatments/{bolus_id}").json() == {"status": 200}
    smb = Treatment.objects.for_person(person).get(bolus_type="smb")
    assert smb.is_valid is False
    assert aaps.call("get", f"/treatments/{bolus_id}").status_code == 410
    history = aaps.call("get", "/treatments/history/0").json()["result"]
    assert next(d for d in history if d["identifier"] == bolus_id)["isValid"] is False
    assert aaps.call("patch", f"/treatments/{bolus_id}", {"insulin": 0.4}).status_code == 410
    # a reading deleted in AndroidAPS (updateSvg with isValid false)
    entry_id = answers["entry 0"].json()["identifier"]
    assert aaps.call("delete", f"/entries/{entry_id}").status_code == 200
    assert Observation.objects.for_person(person).filter(status=ObservationStatus.ENTERED_IN_ERROR).count() == 1
    assert aaps.call("get", f"/entries/{entry_id}").status_code == 410
    assert next(d for d in aaps.call("get", "/entries/history/0").json()["result"]
                if d["identifier"] == entry_id)["isValid"] is False
    assert len(aaps.call("get", "/entries?sort$desc=date&type=sgv").json()["result"]) == 2


def test_search_sorts_limits_filters_and_projects(person, aaps):
    data = aaps_fixture()
    upload_all(aaps, data)
    dates = sorted(e["date"] for e in data["entries"])
    newest_first = aaps.call("get", "/entries?sort$desc=date&type=sgv").json()["result"]
    assert [d["date"] for d in newest_first] == dates[::-1]
    newer = aaps.call("get", f"/entries?sort=date&date$gt={dates[0]}&limit=1").json()["result"]
    assert [d["date"] for d in newer] == [dates[1]]
    projected = aaps.call("get", "/entries?fields=sgv,date&limit=1").json()["result"][0]
    assert set(projected) == {"identifier", "sgv", "date"}
    assert aaps.call("get", "/entries?type=mbg").json()["result"] == []
    meals = aaps.call("get", "/treatments?eventType=Meal%20Bolus").json()["result"]
    assert {d.get("insulin") or d.get("carbs") for d in meals} == {6.5, 60.0}


# --- Hostile input ------------------------------------------------------------------------------


@pytest.mark.parametrize("change, field, message", [
    ({"sgv": 5000}, "sgv", None),
    ({"sgv": "lots"}, "sgv", None),
    ({"date": None}, "date", "Bad or missing date field"),
    ({"date": "soon"}, "date", "Bad or missing date field"),
    ({"date": 100}, "date", "Bad or missing date field"),
    ({"utcOffset": 5000}, "utcOffset", "Bad or missing utcOffset field"),
    ({"utcOffset": "60"}, "utcOffset", "Bad or missing utcOffset field"),
    ({"app": ""}, "app", "Bad or missing app field"),
    ({"identifier": 12}, "identifier", "Bad or missing identifier field"),
    ({"identifier": "x" * 500}, "identifier", "Bad or missing identifier field"),
    ({"date": 4102444800000}, "date", None),  # 2100: a reading from the future
])
def test_a_bad_entry_is_a_400_naming_the_field_and_nothing_is_saved(person, aaps, change, field, message):
    entry = {**aaps_fixture()["entries"][0], **change}
    if change.get("date", 1) is None:
        del entry["date"]
    answer = aaps.call("post", "/entries", entry)
    assert answer.status_code == 400, answer.content
    body = answer.json()
    assert body["status"] == 400 and body["field"] == field and body["message"]
    if message:
        assert body["message"] == message
    assert Observation.objects.for_person(person).count() == 0


@pytest.mark.parametrize("change, field", [
    ({"insulin": 500}, "insulin"), ({"insulin": -1}, "insulin"), ({"insulin": "1e999"}, "insulin"),
    ({"insulin": True}, "insulin"), ({"eventType": 7}, "eventType"), ({"date": 4102444800000}, "created_at"),
])
def test_a_bad_treatment_is_a_400_naming_the_field_and_nothing_is_saved(person, aaps, change, field):
    bolus = {k: v for k, v in aaps_fixture()["treatments"][0].items() if k not in ("NAME", "expect")}
    answer = aaps.call("post", "/treatments", {**bolus, **change})
    assert answer.status_code == 400, answer.content
    assert answer.json()["field"] == field
    assert Treatment.objects.for_person(person).count() == 0


def test_bodies_and_queries_that_are_not_what_nightscout_takes_are_refused(person, aaps):
    aaps.call("get", "/status")
    headers = {"HTTP_AUTHORIZATION": f"Bearer {aaps.jwt}"}
    client = aaps.client
    for body in (b"", b"[]", b"{}", b"not json", b"[" * 5000 + b"]" * 5000, b'"text"', b"[1, 2]"):
        answer = client.post(f"{V3}/entries", body, content_type="application/json", **headers)
        assert answer.status_code == 400 and answer.json()["status"] == 400, body[:20]
    huge = b'{"a": "' + b"x" * (3 * 1024 * 1024) + b'"}'
    assert client.post(f"{V3}/treatments", huge, content_type="application/json", **headers).status_code == 413
    for query in ("limit=0", "limit=5000", "limit=ten", "sort=date&sort$desc=date", "date$regex=1", "skip=-1",
                  "direction=Flat", "sort=sgv", "date$gt=soon"):
        answer = client.get(f"{V3}/entries?{query}", **headers)
        assert answer.status_code == 400 and answer.json()["message"], query
    for path in ("/entries/history/soon", "/treatments/history/soon", "/entries/history"):
        assert client.get(V3 + path, **headers).status_code == 400, path
    identifier = aaps.call("post", "/treatments", {k: v for k, v in aaps_fixture()["treatments"][0].items()
                                                   if k not in ("NAME", "expect")}).json()["identifier"]
    for immutable in ({"eventType": "Correction Bolus"}, {"date": 1}, {"identifier": "other"}, {"utcOffset": 0}):
        answer = aaps.call("patch", f"/treatments/{identifier}", immutable)
        assert answer.status_code == 400, immutable
    assert aaps.call("patch", f"/treatments/{identifier}", {"insulin": 900}).status_code == 400
    assert Treatment.objects.for_person(person).get().amount == 6.5  # nothing half-changed


def test_another_persons_identifiers_answer_404_and_change_nothing(person, other_person, aaps):
    answers = upload_all(aaps, aaps_fixture())
    entry_id = answers["entry 0"].json()["identifier"]
    bolus_id = answers["meal bolus (BS.Type.NORMAL)"].json()["identifier"]
    intruder = AapsClient(issue_access_token(person=other_person))
    before = (Observation.objects.for_person(person).filter(status="final").count(),
              Treatment.objects.for_person(person).filter(is_valid=True).count())
    for collection, identifier in (("entries", entry_id), ("treatments", bolus_id)):
        assert intruder.call("get", f"/{collection}/{identifier}").status_code == 404
        assert intruder.call("patch", f"/{collection}/{identifier}", {"sgv": 90, "insulin": 1}).status_code == 404
        assert intruder.call("delete", f"/{collection}/{identifier}").status_code == 404
        assert intruder.call("delete", f"/{collection}/{identifier}?permanent=true").status_code == 404
        assert intruder.call("get", f"/{collection}/history/0").json()["result"] == []
        assert intruder.call("get", f"/{collection}?identifier={identifier}").json()["result"] == []
    assert intruder.call("get", "/lastModified").json()["result"]["collections"] == {}
    after = (Observation.objects.for_person(person).filter(status="final").count(),
             Treatment.objects.for_person(person).filter(is_valid=True).count())
    assert after == before


def test_listings_serve_only_what_came_in_over_v3(person, aaps):
    """A file import or another app's upload is never handed to AndroidAPS as its data."""
    store_readings(person, recent_readings(12, seed=5), source="csv")
    aaps.call("get", "/status")
    assert aaps.call("get", "/entries/history/0").json()["result"] == []
    assert aaps.call("get", "/entries").json()["result"] == []
    assert aaps.call("get", "/lastModified").json()["result"]["collections"] == {}
    # but a reading's identifier finds it whatever its source
    reading = Observation.objects.for_person(person).first()
    assert aaps.call("get", f"/entries/{reading.pk:024x}").status_code == 200


def test_device_status_and_profiles_are_accepted_and_not_stored(person, aaps):
    data = aaps_fixture()
    before = (Observation.objects.count(), Treatment.objects.count())
    for collection in ("devicestatus", "profile"):
        answer = aaps.call("post", f"/{collection}", data[collection])
        assert answer.status_code == 200 and answer.json()["stored"] is False
        assert aaps.call("get", f"/{collection}/history/0").json() == {"status": 200, "result": []}
        assert aaps.call("get", f"/{collection}/{answer.json()['identifier']}").status_code == 404
    assert (Observation.objects.count(), Treatment.objects.count()) == before


# --- Over real HTTP -----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_sync_cycle_over_http_with_androidaps_url_handling(live_server):
    """The base URL is what AndroidAPS derives from the person's "https://host/ns" (the scheme
    is the live server's plain http here: TLS is the web server's part, not glucast's); the JWT
    comes from the host's root."""
    from tests.factories import PersonFactory

    person = PersonFactory()
    access_token = issue_access_token(person=person)
    base = f"{live_server.url}/ns/api/"
    state = {"jwt": ""}

    def request(method, path, body=None):
        def send():
            data = json.dumps(body).encode() if body is not None else None
            req = urllib.request.Request(base + path, data=data, method=method.upper(), headers={
                "Date": str(now_ms()), "Authorization": f"Bearer {state['jwt']}", "Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=10) as answer:
                    return answer.status, dict(answer.headers), json.loads(answer.read())
            except urllib.error.HTTPError as error:
                return error.code, dict(error.headers), json.loads(error.read())

        code, headers, payload = send()
        if code in (401, 403):
            with urllib.request.urlopen(f"{live_server.url}/api/v2/authorization/request/{access_token}", timeout=10) as answer:
                state["jwt"] = json.loads(answer.read())["token"]
            code, headers, payload = send()
        return code, headers, payload

    data = aaps_fixture()
    assert request("get", "v3/status")[0] == 200
    codes = [request("post", "v3/entries", entry)[0] for entry in data["entries"]]
    bolus = {k: v for k, v in data["treatments"][0].items() if k not in ("NAME", "expect")}
    codes.append(request("post", "v3/treatments", bolus)[0])
    codes.append(request("post", "v3/devicestatus", data["devicestatus"])[0])
    assert codes == [201, 201, 201, 201, 200]
    code, headers, payload = request("get", "v3/entries/history/0?limit=500")
    assert code == 200 and len(payload["result"]) == 3
    assert int(headers["ETag"][3:-1]) == max(d["srvModified"] for d in payload["result"])
    assert Observation.objects.filter(person=person).count() == 3


def test_a_refused_token_is_not_written_to_the_request_log(db, caplog):
    presented = "glucast-" + "ab" * 16
    with caplog.at_level("WARNING", logger="django.request"):
        assert Client().get(f"/api/v2/authorization/request/{presented}").status_code == 401
    assert presented not in caplog.text


def test_put_replaces_a_stored_document_and_never_creates_one(person, aaps):
    data = aaps_fixture()
    answers = upload_all(aaps, data)
    entry_id = answers["entry 1"].json()["identifier"]
    basal_id = answers["temporary basal, absolute"].json()["identifier"]
    entry = {**data["entries"][1], "identifier": entry_id, "sgv": 140.0}
    assert aaps.call("put", f"/entries/{entry_id}", entry).status_code == 200
    assert Observation.objects.for_person(person).get(source_identifier=entry_id).value_mg_dl == 140
    basal = {k: v for k, v in data["treatments"][6].items() if k not in ("NAME", "expect")}
    basal.update(identifier=basal_id, absolute=1.2, rate=1.2)
    assert aaps.call("put", f"/treatments/{basal_id}", basal).status_code == 200
    assert Treatment.objects.for_person(person).get(source_identifier=f"{basal_id}/temp_basal").amount == 1.2
    without_app = {k: v for k, v in basal.items() if k != "app"}
    assert aaps.call("put", f"/treatments/{basal_id}", without_app).json()["message"] == "Bad or missing app field"
    unknown = "0f0f0f0f-0000-5000-8000-000000000000"
    assert aaps.call("put", f"/entries/{unknown}", {**entry, "identifier": unknown}).status_code == 404
    assert aaps.call("put", f"/treatments/{unknown}", {**basal, "identifier": unknown}).status_code == 404


def test_a_phone_in_another_time_zone_may_put_and_patch_its_entries(person, aaps):
    # The person's zone is Berlin; the phone is in New York and says so in every body. Readings
    # keep no offset of their own, so the phone's is no change to anything stored.
    data = aaps_fixture()
    entry = {**data["entries"][1], "utcOffset": -300}
    entry_id = aaps.call("post", "/entries", entry).json()["identifier"]
    assert aaps.call("put", f"/entries/{entry_id}", {**entry, "identifier": entry_id, "sgv": 141.0}).status_code == 200
    assert aaps.call("patch", f"/entries/{entry_id}", {"utcOffset": -300, "sgv": 142.0}).status_code == 200
    assert Observation.objects.for_person(person).get(source_identifier=entry_id).value_mg_dl == 142
    # What is stored stays immutable: the reading's time.
    moved = aaps.call("patch", f"/entries/{entry_id}", {"date": entry["date"] + 60_000})
    assert moved.status_code == 400 and moved.json()["field"] == "date"
