"""Hostile input on the Nightscout surfaces (v1 uploads and reads, API v3 as AndroidAPS calls it):
property-based, starting from the real bodies xDrip+, Loop and AndroidAPS send (tests/fixtures/)
and breaking them field by field. These routes are outside glucast's OpenAPI schema, so the
schema fuzz audit (tests/audit/) does not reach them, and a phone app sends whatever it has.

Every answer is below 500; every refusal says what is wrong in its body and stores nothing
(no reading or treatment half-saved). Derandomized: the same examples on every machine."""

from __future__ import annotations

import copy
import hashlib
import json
from urllib.parse import urlencode

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st
from rest_framework.throttling import SimpleRateThrottle

from observations.models import Observation, Treatment
from observations.nightscout.secrets import issue_secret
from observations.nightscout.tokens import issue_access_token
from tests.conftest import FIXTURES
from tests.nightscout.test_nightscout_v3 import AapsClient, now_ms

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
    | st.sampled_from(["", "0", "-1", "1e400", "2026-12-08T01:00:00Z", "2026-12-08T01:00:00+25:00",
                       "9999-12-31T23:59:59Z", "NaN", "Infinity", "\x00", "Meal Bolus", "Temp Basal", "sgv", "²", "17²",
                       # st.text() draws no lone surrogates; st.integers() above stays inside float's range
                       "\ud800", "a\udc00", 10**400, -(10**400)]),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=8) | st.sampled_from(["\ud800"]), children, max_size=3),
    max_leaves=6,
)
# The fields the apps send and the mappers read (Nightscout's entries and treatments).
FIELDS = ["date", "sgv", "mbg", "type", "dateString", "sysTime", "created_at", "eventType", "insulin", "carbs",
          "duration", "durationInMilliseconds", "absolute", "rate", "percent", "timestamp", "mills", "identifier",
          "_id", "utcOffset", "device", "direction", "noise", "isValid", "enteredBy", "glucose", "units",
          "pumpId", "splitNow", "splitExt", "srvModified", "isReadOnly"]


def _documents(value) -> list[dict]:
    if isinstance(value, list):
        return [doc for doc in value if isinstance(doc, dict)]
    if isinstance(value, dict):
        return [doc for child in value.values() for doc in _documents(child)]
    return []


def _recorded(name: str):
    return json.loads((FIXTURES / name).read_text())


_AAPS_V3 = _recorded("nightscout_v3_aaps.json")
ENTRIES = _AAPS_V3["entries"] + _documents(_recorded("nightscout_upload_xdrip.json")) + _documents(_recorded("nightscout_upload_aaps.json"))
TREATMENTS = [{k: v for k, v in t.items() if k not in ("NAME", "expect")} for t in _AAPS_V3["treatments"]] + [
    doc for name in ("nightscout_treatments_aaps.json", "nightscout_treatments_loop.json", "nightscout_treatments_xdrip.json")
    for doc in _documents(_recorded(name))
]


@st.composite
def broken_document(draw, recorded: list[dict]) -> dict:
    doc = copy.deepcopy(draw(st.sampled_from(recorded)))
    for _ in range(draw(st.integers(0, 3))):
        field = draw(st.sampled_from(FIELDS + sorted(doc)))
        if field in doc and draw(st.booleans()):
            del doc[field]
        else:
            doc[field] = draw(JSON_VALUES)
    return doc


def bodies(recorded: list[dict]):
    one = broken_document(recorded)
    return one | st.lists(one, max_size=4) | JSON_VALUES


EXAMPLES = hypothesis_settings(max_examples=60, derandomize=True, database=None, deadline=None,
                               suppress_health_check=list(HealthCheck))


@pytest.fixture
def unthrottled(monkeypatch):
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES",
                        {**SimpleRateThrottle.THROTTLE_RATES, "nightscout": "100000/min", "nightscout-v3": "100000/min"})


@pytest.fixture
def v1(person, unthrottled):
    return Client(), hashlib.sha1(issue_secret(person=person).encode()).hexdigest()


@pytest.fixture
def v3(person, unthrottled):
    return AapsClient(issue_access_token(person=person))


def stored(person) -> tuple[int, int]:
    return Observation.objects.for_person(person).count(), Treatment.objects.for_person(person).count()


def assert_answered(response, person, before, what):
    assert response.status_code < 500, (response.status_code, what, response.content[:400])
    if response.status_code >= 400:
        assert stored(person) == before, f"a {response.status_code} stored something: {what}"
        assert response.status_code == 405 or response.content.strip() not in (b"", b"{}", b"[]"), what


@EXAMPLES
@given(body=bodies(ENTRIES), path=st.sampled_from(["/ns/api/v1/entries", "/ns/api/v1/entries.json", "/ns/api/v1/entries/sgv.json"]))
def test_v1_entry_uploads(person, v1, body, path):
    client, secret_sha1 = v1
    before = stored(person)
    response = client.post(path, json.dumps(body), content_type="application/json", HTTP_API_SECRET=secret_sha1)
    assert_answered(response, person, before, body)


@EXAMPLES
@given(body=bodies(TREATMENTS))
def test_v1_treatment_uploads(person, v1, body):
    client, secret_sha1 = v1
    before = stored(person)
    response = client.post("/ns/api/v1/treatments", json.dumps(body), content_type="application/json", HTTP_API_SECRET=secret_sha1)
    assert_answered(response, person, before, body)


QUERY_TEXT = st.text(max_size=30) | st.sampled_from(["-1", "0", "99999999999999999999", "9" * 5000, "1e10", "2026-12-08",
                                                    "date", "_all", "²", "1²"])


@EXAMPLES
@given(
    params=st.dictionaries(st.sampled_from(["count", "find[date][$gte]", "find[date][$lt]", "find[created_at][$gte]",
                                            "find[sgv][$gt]", "find[type]", "find[eventType]", "token"]), QUERY_TEXT, max_size=4),
    path=st.sampled_from(["/ns/api/v1/entries.json", "/ns/api/v1/entries/sgv.json", "/ns/api/v1/treatments.json", "/ns/api/v1/status.json"]),
)
def test_v1_reads(person, v1, params, path):
    client, secret_sha1 = v1
    response = client.get(path, params, HTTP_API_SECRET=secret_sha1)
    assert_answered(response, person, stored(person), params)


@EXAMPLES
@given(
    body=bodies(ENTRIES + TREATMENTS),
    collection=st.sampled_from(["entries", "treatments", "devicestatus", "profile", "food"]),
    method=st.sampled_from(["post", "put", "patch"]),
    identifier=st.text(max_size=20).filter(lambda t: "/" not in t and "?" not in t and "#" not in t),
)
def test_v3_writes(person, v3, body, collection, method, identifier):
    path = f"/{collection}" if method == "post" else f"/{collection}/{urlencode({'': identifier})[1:] or 'x'}"
    before = stored(person)
    response = v3.call(method, path, body)
    assert_answered(response, person, before, (method, path, body))


@EXAMPLES
@given(
    params=st.dictionaries(st.sampled_from(["limit", "skip", "sort", "sort$desc", "fields", "date$gt", "date$gte",
                                            "created_at$gt", "srvModified$gte", "eventType$eq", "sgv$in", "type$re",
                                            "identifier$eq", "now"]), QUERY_TEXT, max_size=5),
    collection=st.sampled_from(["entries", "treatments", "devicestatus"]),
    tail=st.sampled_from(["", "/history", "/history/0", "/history/99999999999999999999", "/history/-5", "/not-an-identifier",
                          "/history/0001-01-01T00:00:00%2B14:00", "/history/9999-12-31T23:59:59.999999Z"]),
)
def test_v3_reads_and_deletes(person, v3, params, collection, tail):
    path = f"/{collection}{tail}?{urlencode(params)}"
    assert_answered(v3.call("get", path), person, stored(person), path)
    before = stored(person)
    assert_answered(v3.call("delete", f"/{collection}{tail or '/x'}"), person, before, tail)


# --- Found by the fuzz above (kept as plain examples) -----------------------------------------


@pytest.mark.parametrize("collection", ["entries", "treatments", "devicestatus", "profile"])
@pytest.mark.parametrize("method", ["get", "patch", "put", "delete"])
def test_an_identifier_with_a_nul_names_no_document(person, v3, collection, method):
    # PostgreSQL text cannot hold NUL: looking it up was a DataError, a 500.
    body = None if method in ("get", "delete") else {"date": 1765010100000, "sgv": 100, "type": "sgv"}
    response = v3.call(method, f"/{collection}/a%00b", body)
    assert response.status_code == 404 and response.json() == {"status": 404}


@pytest.mark.parametrize("collection", ["entries", "treatments"])
def test_a_search_for_text_with_a_nul_is_a_400_naming_the_filter(person, v3, collection):
    response = v3.call("get", f"/{collection}?identifier$eq=a%00")
    assert response.status_code == 400
    assert response.json()["field"] == "identifier$eq" and "control characters" in response.json()["message"]


def test_a_created_document_whose_identifier_has_a_nul_is_a_400_and_not_stored(person, v3):
    before = stored(person)
    body = {"identifier": "a\x00", "date": now_ms() - 60_000, "utcOffset": 60, "app": "AAPS", "eventType": "Meal Bolus", "insulin": 1.0}
    response = v3.call("post", "/treatments", body)
    assert response.status_code == 400 and response.json()["field"] == "identifier"
    assert stored(person) == before


# str.isdigit() takes "²", which int() refuses: each of these was a ValueError, a 500.
SUPERSCRIPT = [
    ("get", "/ns/api/v1/entries.json?find[date][$gte]=1²"),
    ("get", "/ns/api/v1/entries.json?count=²"),
    ("get", "/ns/api/v3/entries?limit=²"),
    ("get", "/ns/api/v3/entries?limit=" + "9" * 5000),
    ("get", "/ns/api/v3/entries?skip=²"),
    ("get", "/ns/api/v3/entries/history/²"),
    ("get", "/ns/api/v3/entries?date$gt=²"),
    ("post", "/ns/api/v1/entries", [{"type": "sgv", "sgv": "1²", "date": 1765010100000}]),
    ("post", "/ns/api/v1/entries", [{"type": "sgv", "sgv": 100, "date": "17²"}]),
    ("post", "/ns/api/v1/treatments", [{"eventType": "Meal Bolus", "insulin": 1, "mills": "²"}]),
    ("post", "/ns/api/v3/entries", {"date": "17²", "utcOffset": 60, "app": "AAPS", "sgv": 100, "type": "sgv"}),
]


@pytest.mark.parametrize("method,path,body", [(*case, None)[:3] for case in SUPERSCRIPT])
def test_superscript_digits_are_a_400_naming_the_field(person, v1, v3, method, path, body):
    if path.startswith("/ns/api/v3"):
        response = v3.call(method, path.removeprefix("/ns/api/v3"), body)
    else:
        client, secret_sha1 = v1
        kwargs = {"data": json.dumps(body), "content_type": "application/json"} if body is not None else {}
        response = getattr(client, method)(path, HTTP_API_SECRET=secret_sha1, **kwargs)
    assert response.status_code == 400, response.content[:300]
    assert response.content.strip() not in (b"", b"{}")


def test_a_superscript_date_header_is_refused_not_a_500(person, v3):
    v3.call("get", "/entries")  # a JWT first
    response = v3.client.get("/ns/api/v3/entries", HTTP_DATE="²", HTTP_AUTHORIZATION=f"Bearer {v3.jwt}")
    assert response.status_code == 401


# Lone UTF-16 surrogates ("\ud800" in JSON) could be neither stored (psycopg's UnicodeEncodeError,
# jsonb's DataError) nor hashed into a v3 identifier: each of these was a 500.
LONE_SURROGATE = [
    ("post", "/ns/api/v1/entries", [{"type": "sgv", "sgv": 100, "date": 1765010100000, "device": "\ud800"}], "[0].device"),
    ("post", "/ns/api/v1/entries", [{"type": "\ud800", "sgv": 100, "date": 1765010100000}], "[0].type"),
    ("post", "/ns/api/v1/treatments", [{"eventType": "Meal Bolus", "insulin": 1, "created_at": "2025-12-06T08:35:00Z",
                                        "pumpId": "\ud800"}], "[0].pumpId"),
    ("post", "/ns/api/v1/treatments", [{"eventType": "Meal Bolus", "insulin": 1, "created_at": "2025-12-06T08:35:00Z",
                                        "enteredBy": "a\udc00"}], "[0].enteredBy"),
    ("post", "/ns/api/v3/entries", {"date": "NOW", "utcOffset": 60, "app": "AAPS", "sgv": 100, "type": "sgv",
                                    "device": "\ud800"}, "device"),
    ("post", "/ns/api/v3/treatments", {"date": "NOW", "utcOffset": 60, "app": "AAPS", "eventType": "Meal Bolus",
                                       "insulin": 1.0, "identifier": "\ud800"}, "identifier"),
    ("post", "/ns/api/v3/treatments", {"date": "NOW", "utcOffset": 60, "app": "AAPS", "eventType": "Meal Bolus",
                                       "insulin": 1.0, "pumpSerial": "\ud800"}, "pumpSerial"),
]


def _send(v1, v3, method, path, body):
    if isinstance(body, dict) and body.get("date") == "NOW":
        body = {**body, "date": now_ms() - 60_000}
    if path.startswith("/ns/api/v3"):
        return v3.call(method, path.removeprefix("/ns/api/v3"), body)
    client, secret_sha1 = v1
    return getattr(client, method)(path, json.dumps(body), content_type="application/json", HTTP_API_SECRET=secret_sha1)


@pytest.mark.parametrize("method,path,body,field", LONE_SURROGATE)
def test_a_lone_surrogate_is_a_400_naming_the_field_and_stores_nothing(person, v1, v3, method, path, body, field):
    before = stored(person)
    response = _send(v1, v3, method, path, body)
    assert response.status_code == 400, response.content[:300]
    answer = response.json()
    assert field in (answer.get("field") or answer["errors"][0]["field"]) and "surrogate" in response.content.decode()
    assert stored(person) == before


# JSON integers have no size limit: math.isfinite() of one beyond float's range raised OverflowError
# (utcOffset's check, a v3 document's client fields), and a JSON text inside a field went to
# json.loads unbounded (100,000 brackets: RecursionError). Each was a 500.
HUGE_OR_DEEP = [
    ("post", "/ns/api/v3/entries", {"date": "NOW", "utcOffset": 10**400, "app": "AAPS", "sgv": 100, "type": "sgv"}, 400),
    ("post", "/ns/api/v3/treatments", {"date": "NOW", "utcOffset": 60, "app": "AAPS", "eventType": "Meal Bolus",
                                       "insulin": 1.0, "pumpId": 10**400}, 201),  # the pump's id is not kept
    ("post", "/ns/api/v1/treatments", [{"eventType": "Meal Bolus", "insulin": 1, "created_at": "2025-12-06T08:35:00Z",
                                        "pumpId": 10**400}], 200),
    ("post", "/ns/api/v1/treatments", [{"eventType": "Correction Bolus", "insulin": 1, "created_at": "2025-12-06T08:35:00Z",
                                        "insulinInjections": "[" * 100_000}], 200),  # xDrip+'s JSON text, unreadable
]


@pytest.mark.parametrize("method,path,body,status", HUGE_OR_DEEP, ids=range(len(HUGE_OR_DEEP)))
def test_huge_integers_and_deep_json_text_are_answered_not_a_500(person, v1, v3, method, path, body, status):
    response = _send(v1, v3, method, path, body)
    assert response.status_code == status, response.content[:300]



# A history cursor in year 1 or 9999 with an offset lies outside UTC's datetimes: reading rows
# from it was a ValueError ("year 0 is out of range"), a 500.
@pytest.mark.parametrize("collection", ["entries", "treatments"])
@pytest.mark.parametrize("since, header", [
    ("0001-01-01T00:00:00%2B14:00", None), ("9999-12-31T23:59:59-12:00", None), ("9999-12-31T23:59:59.999999Z", None),
    (None, "Fri, 31 Dec 9999 23:59:59 -1200"),
])
def test_a_history_cursor_outside_utc_is_a_400(person, v3, collection, since, header):
    v3.call("get", "/entries")  # a JWT first
    path = f"/ns/api/v3/{collection}/history" + (f"/{since}" if since else "")
    extra = {"HTTP_LAST_MODIFIED": header} if header else {}
    response = v3.client.get(path, HTTP_DATE=str(now_ms()), HTTP_AUTHORIZATION=f"Bearer {v3.jwt}", **extra)
    assert response.status_code == 400, response.content[:300]
    assert response.json()["field"] == ("lastModified" if since else "Last-Modified")
