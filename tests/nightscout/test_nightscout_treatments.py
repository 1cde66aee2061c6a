"""Nightscout v1 treatments: stored as the uploaders really send them, the rest skipped with a reason.

Fixtures (tests/fixtures/), field sets taken from the apps' public source:
- nightscout_treatments_loop.json: Loop's NightscoutKit treatments (BolusNightscoutTreatment,
  CarbCorrection, TempBasal, Override, MealBolus, BG Check, Note, Site Change, Sensor Start) as
  cgm-remote-monitor's tests/fixtures/nightscoutkit-treatments.js records them.
- nightscout_treatments_aaps.json: AndroidAPS plugins/sync/nsclient/extensions toJson (BS normal,
  SMB and priming; CA, extended carbs with duration in ms; TB absolute and percent; EB as Combo
  Bolus; TT, Profile Switch, therapy events).
- nightscout_treatments_xdrip.json: xDrip+ treatments (eventType "<none>" with insulin and carbs
  together, uuid, insulinInjections as JSON text).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from observations.models import ImportBatch, Treatment
from tests.nightscout.test_nightscout_upload import client, counts, load, post, secret, sha1  # noqa: F401

TREATMENTS = "/ns/api/v1/treatments"
pytestmark = pytest.mark.django_db


def stored(person):
    return list(Treatment.objects.for_person(person).order_by("effective_at").values_list(
        "kind", "amount", "bolus_type", "insulin_kind"))


def test_loop_uploads(client, person, secret):
    body = load("nightscout_treatments_loop.json")
    response = post(client, body, secret, path=TREATMENTS)
    assert counts(response) == {"received": 11, "created": 7, "duplicates": 0, "skipped": 5}
    answer = response.json()
    assert len(answer) == 11 and all("_id" not in item for item in answer)
    by_type = {item["eventType"]: item for item in answer}
    assert by_type["Meal Bolus"]["stored_as"] == ["bolus", "carbs"]
    assert by_type["Temporary Override"]["status"] == "skipped" and "targets" in by_type["Temporary Override"]["reason"]
    assert "meter" in by_type["BG Check"]["reason"]
    rows = {t.source_identifier: t for t in Treatment.objects.for_person(person)}
    auto = rows["loop-bolus-abc123-def456/bolus"]
    assert (auto.amount, auto.bolus_type, auto.insulin_kind) == (1.5, "smb", "rapid")
    assert rows["loop-bolus-manual-789012/bolus"].bolus_type == "correction"
    carbs = rows["loop-carb-xyz789/carbs"]
    assert (carbs.amount, carbs.absorption) == (45, timedelta(minutes=180))
    suspend = rows["loop-tempbasal-suspend-002/temp_basal"]
    assert (suspend.kind, suspend.amount, suspend.duration) == ("temp_basal", 0.0, timedelta(minutes=30))
    meal = rows["loop-meal-lunch001/bolus"]
    assert meal.bolus_type == "meal" and rows["loop-meal-lunch001/carbs"].absorption == timedelta(hours=4)
    assert meal.effective_at == datetime(2025, 6, 1, 7, 15, tzinfo=timezone.utc)
    # Loop re-sends until it is sure: nothing new, all counted
    again = counts(post(client, body, secret, path=TREATMENTS))
    assert (again["created"], again["duplicates"]) == (0, 7)
    batch = ImportBatch.objects.get(person=person)
    assert (batch.source, batch.n_treatments, batch.n_treatment_duplicates) == ("nightscout-upload", 7, 7)


def test_androidaps_uploads(client, person, secret):
    response = post(client, load("nightscout_treatments_aaps.json"), secret, path=TREATMENTS)
    assert counts(response) == {"received": 14, "created": 8, "duplicates": 0, "skipped": 6}
    reasons = [item.get("reason", "") for item in response.json()]
    assert any("priming" in r for r in reasons) and any("profile" in r for r in reasons)
    rows = {t.source_identifier: t for t in Treatment.objects.for_person(person)}
    normal = rows["pump:OMNIPOD_DASH:1710231:4102/bolus"]
    assert (normal.amount, normal.bolus_type, normal.client_fields["pumpId"]) == (4.2, None, 4102)
    assert rows["pump:OMNIPOD_DASH:1710231:4107/bolus"].bolus_type == "smb"
    extended_carbs = Treatment.objects.get(kind="carbs", amount=40)
    assert extended_carbs.duration == timedelta(hours=2)  # AndroidAPS sends it in ms
    temp = rows["pump:OMNIPOD_DASH:1710231:4110/temp_basal"]
    assert (temp.amount, temp.duration) == (1.6, timedelta(minutes=30))  # `rate`: the absolute one
    combo = rows["pump:DANA_I:AAA00001:4120/bolus-extended"]
    assert (combo.amount, combo.bolus_type, combo.duration) == (3.0, "extended", timedelta(hours=2))


def test_xdrip_uploads_insulin_and_carbs_in_one_treatment(client, person, secret):
    response = post(client, load("nightscout_treatments_xdrip.json"), secret, path=TREATMENTS)
    assert counts(response) == {"received": 4, "created": 3, "duplicates": 0, "skipped": 2}
    assert stored(person) == [("bolus", 2.5, None, "ultra_rapid"), ("carbs", 30.0, None, None), ("bolus", 1.0, None, None)]
    assert "no insulin or carbohydrate" in response.json()[3]["reason"]
    # xDrip+ upserts treatments with PUT
    again = client.put(TREATMENTS, json.dumps(load("nightscout_treatments_xdrip.json")),
                       content_type="application/json", HTTP_API_SECRET=sha1(secret))
    assert counts(again)["duplicates"] == 3


def test_a_cancelled_temp_basal_is_shortened_and_a_withdrawn_one_leaves_the_inputs(client, person, secret):
    start = {"eventType": "Temp Basal", "created_at": "2025-06-01T10:00:00Z", "absolute": 2.0, "duration": 60,
             "syncIdentifier": "tb-1"}
    post(client, start, secret, path=TREATMENTS)
    cancel = {"eventType": "Temp Basal", "created_at": "2025-06-01T10:20:00Z", "duration": 0, "syncIdentifier": "tb-end"}
    answer = post(client, cancel, secret, path=TREATMENTS).json()
    assert answer[0]["stored_as"] == ["end of temp_basal"]
    assert Treatment.objects.get().duration == timedelta(minutes=20)
    withdrawn = post(client, {**start, "isValid": False}, secret, path=TREATMENTS).json()
    assert withdrawn[0]["status"] == "withdrawn"
    assert not Treatment.objects.usable().exists() and Treatment.objects.count() == 1


@pytest.mark.parametrize(
    "treatment, field, reason",
    [
        ({"insulin": float("1e400")}, "insulin", "not a finite number"),
        ({"insulin": -1}, "insulin", "negative"),
        ({"insulin": 150}, "insulin", "0-100 U"),
        ({"carbs": 900}, "carbs", "0-500 g"),
        ({"carbs": "lots"}, "carbs", "not a number"),
        ({"eventType": "Temp Basal", "absolute": 50, "duration": 30}, "absolute", "0-35 U/h"),
        ({"eventType": "Temp Basal", "absolute": 1, "duration": 3000}, "duration", "longer than 24 hours"),
        ({"eventType": "Temp Basal", "absolute": 1}, "duration", "missing"),
        ({"created_at": "2999-01-01T00:00:00Z"}, "created_at", "in the future"),
        ({"created_at": None, "date": 1748779}, "date", "epoch seconds"),
        ({"created_at": None}, "created_at", "missing"),
        ({"eventType": 5}, "eventType", "must be text"),
    ],
)
def test_bad_treatments_are_a_400_naming_the_field_and_nothing_is_saved(client, person, secret, treatment, field, reason):
    good = {"eventType": "Meal Bolus", "insulin": 2.0, "created_at": "2025-06-01T08:00:00Z", "syncIdentifier": "ok"}
    bad = {"eventType": "Correction Bolus", "insulin": 1.0, "created_at": "2025-06-01T09:00:00Z", **treatment}
    response = post(client, [good, bad], secret, path=TREATMENTS)
    assert response.status_code == 400, response.content
    errors = response.json()["errors"]
    assert any(e["row"] == 2 and e["field"] == field and reason in e["reason"] for e in errors), errors
    assert not Treatment.objects.exists() and not ImportBatch.objects.exists()


def test_the_same_id_twice_with_other_values_is_refused(client, person, secret):
    one = {"eventType": "Correction Bolus", "insulin": 1.0, "created_at": "2025-06-01T09:00:00Z", "_id": "x1"}
    response = post(client, [one, {**one, "insulin": 5.0}], secret, path=TREATMENTS)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "source_identifier"
    same = counts(post(client, [one, one], secret, path=TREATMENTS))
    assert (same["created"], same["duplicates"]) == (1, 1)


def test_oversized_uploads_are_refused(client, person, secret, settings):
    settings.GLUCAST_NIGHTSCOUT_MAX_ENTRIES = 3
    body = [{"eventType": "Note", "created_at": "2025-06-01T09:00:00Z"}] * 4
    response = post(client, body, secret, path=TREATMENTS)
    assert response.status_code == 400 and "at most 3" in response.json()["detail"]


def test_get_treatments_with_count_and_created_at(client, person, other_person, secret):
    post(client, load("nightscout_treatments_loop.json"), secret, path=TREATMENTS)
    from observations.nightscout.secrets import issue_secret

    other_secret = issue_secret(person=other_person)
    post(client, load("nightscout_treatments_xdrip.json"), other_secret, path=TREATMENTS)
    headers = {"HTTP_API_SECRET": sha1(secret)}
    everything = client.get(TREATMENTS + ".json?count=100", **headers).json()
    assert len(everything) == 7 and {t["enteredBy"] for t in everything} == {"glucast"}
    assert [t["created_at"] for t in everything] == sorted((t["created_at"] for t in everything), reverse=True)
    recent = client.get(TREATMENTS + ".json?find[created_at][$gte]=2025-06-01T07:50:00Z&count=10", **headers).json()
    assert {t["identifier"] for t in recent} == {"loop-bolus-abc123-def456/bolus", "loop-bolus-manual-789012/bolus",
                                                 "loop-carb-xyz789/carbs"}
    meal = next(t for t in everything if t["identifier"] == "loop-meal-lunch001/carbs")
    assert (meal["eventType"], meal["carbs"], meal["absorptionTime"]) == ("Carb Correction", 60.0, 240.0)
    assert client.get(TREATMENTS + ".json?count=1", **headers).json()[0]["insulin"] == 1.5
    refused = client.get(TREATMENTS + ".json?find[eventType]=Note", **headers)
    assert refused.status_code == 400 and "find[created_at]" in refused.json()["errors"][0]
    assert client.get(TREATMENTS + ".json").status_code == 401
