"""Every way a forecast request can be wrong: a clear 4xx that says what to fix, never a 500,
and nothing stored."""

import datetime as dt

import pytest
from django.utils import timezone

from predictions.models import PredictionLog
from tests.predictions.conftest import history_rows, recent_readings, store_readings

pytestmark = pytest.mark.django_db

URL = "/api/predictions/glucose/"


def post(api, body):
    response = api.post(URL, body, format="json")
    assert response.status_code < 500, response.content
    return response


def assert_nothing_logged():
    assert PredictionLog.objects.count() == 0


def test_no_readings_is_422_and_says_to_import(api, person):
    response = post(api, {})
    assert response.status_code == 422
    assert response.json()["code"] == "no_readings"
    assert "Import recent CGM readings" in response.json()["detail"]
    assert_nothing_logged()


def test_readings_older_than_30_minutes_are_422(api, person):
    store_readings(person, recent_readings(end=timezone.now() - dt.timedelta(minutes=45)))
    response = post(api, {})
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "stale_readings" and "last 30 minutes" in body["detail"]
    assert body["last_reading_at"]
    assert_nothing_logged()


def test_a_single_recent_reading_is_422(api, person):
    # Fewer than two readings: not even the short-history forecast (AR2) can answer.
    store_readings(person, recent_readings(hours=2).tail(1))
    response = post(api, {})
    assert response.status_code == 422
    assert response.json()["code"] == "too_few_readings"
    assert "at least two readings" in response.json()["detail"]
    assert_nothing_logged()


@pytest.mark.parametrize(
    "horizons",
    [[], [7], [0], [-5], [1445], [30, 30], ["30"], [30.5], [True], "30", 30, [None], {"a": 1}],
)
def test_bad_horizons_are_400(api, person_with_readings, horizons):
    response = post(api, {"horizons": horizons})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_horizons" and body["field"] == "horizons"
    assert "multiple of 5 from 5 to 1440" in body["detail"]
    assert_nothing_logged()


def test_bad_horizons_are_listed(api, person_with_readings):
    body = post(api, {"horizons": [30, 7, 2000]}).json()
    assert body["invalid"] == [7, 2000]


def test_range_other_than_24h_and_range_with_horizons_are_400(api, person_with_readings):
    assert post(api, {"range": "12h"}).json()["field"] == "range"
    body = post(api, {"range": "24h", "horizons": [30]}).json()
    assert "either `horizons` or `range`" in body["detail"]
    assert_nothing_logged()


def test_unknown_unit_and_unknown_fields_are_400(api, person_with_readings):
    assert post(api, {"unit": "mmol"}).status_code == 400
    response = post(api, {"horizon": [30]})
    assert response.status_code == 400 and "horizon" in response.json()["detail"]
    assert post(api, [1, 2]).status_code == 400
    assert_nothing_logged()


def test_bad_as_of_is_400(api, person_with_readings):
    assert post(api, {"as_of": "yesterday"}).status_code == 400
    assert post(api, {"as_of": "2026-01-01T10:00:00"}).json()["field"] == "as_of"  # no offset


def test_bad_history_rows_are_400_and_each_is_listed(api, person):
    good = history_rows(recent_readings(hours=3))
    rows = good[:-5] + [
        {"effective_at": "yesterday at noon", "value": 120},
        {"effective_at": good[-4]["effective_at"], "value": "high-ish"},
        {"effective_at": good[-3]["effective_at"], "value": 120, "unit": "mg"},
        "120",
        {"effective_at": good[-1]["effective_at"], "value": 5000, "note": "x"},
    ]
    response = post(api, {"history": rows})

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_history" and body["n_invalid_rows"] == 5
    listed = {row["index"]: " ".join(row["errors"]) for row in body["rows"]}
    n = len(good) - 5
    assert set(listed) == {n, n + 1, n + 2, n + 3, n + 4}
    assert "effective_at: 'yesterday at noon' is not a recognised date and time" in listed[n]
    assert "value: 'high-ish' is not a number" in listed[n + 1]
    assert "unit: 'mg' is not a glucose unit" in listed[n + 2]
    assert "must be an object" in listed[n + 3]
    assert "outside the accepted 20-600 mg/dL" in listed[n + 4] and "unknown: note" in listed[n + 4]
    assert_nothing_logged()


def test_history_follows_the_import_rules(api, person):
    """Naive times are read on the person's clock, "Low"/"High" are the sensor's limits and
    unit spellings are forgiven, exactly as when the same readings are imported."""
    frame = recent_readings(hours=3)
    rows = history_rows(frame)
    local = frame["time"].dt.tz_convert(person.time_zone).dt.tz_localize(None)
    for row, naive in zip(rows, local):
        row["effective_at"] = naive.isoformat()
        row["unit"] = "mg/dl"
    rows[-3]["value"] = "Low"
    response = post(api, {"history": rows})
    assert response.status_code == 201, response.content
    aware = post(api, {"history": history_rows(frame)}).json()
    assert response.json()["as_of"] == aware["as_of"]


def test_history_in_the_future_is_refused(api, person):
    rows = history_rows(recent_readings(hours=3, end=timezone.now() + dt.timedelta(hours=1)))
    body = post(api, {"history": rows}).json()
    assert body["code"] == "invalid_history" and "in the future" in body["rows"][-1]["errors"][0]


def test_history_must_be_a_list_and_not_empty(api, person):
    assert post(api, {"history": {"value": 1}}).json()["code"] == "invalid_history"
    assert post(api, {"history": []}).json()["code"] == "no_readings"


def test_history_after_as_of_is_refused(api, person):
    rows = history_rows(recent_readings(hours=3))
    as_of = rows[-3]["effective_at"]
    body = post(api, {"history": rows, "as_of": as_of}).json()
    assert body["code"] == "invalid_history"
    assert [row["index"] for row in body["rows"]] == [len(rows) - 2, len(rows) - 1]


def test_history_in_mmol_l_is_accepted(api, person):
    rows = history_rows(recent_readings(hours=3), unit="mmol/L")
    response = post(api, {"history": rows})
    assert response.status_code == 201, response.content


def test_history_too_long_is_400(api, person):
    rows = [{"effective_at": "2026-01-01T10:00:00Z", "value": 100}] * 5001
    assert post(api, {"history": rows}).json()["code"] == "invalid_history"


@pytest.mark.parametrize(
    "as_of", ["2026-13-45T10:00:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", 1234567890, ["x"]]
)
def test_impossible_or_absurd_as_of_is_400_not_500(api, person_with_readings, as_of):
    response = post(api, {"as_of": as_of})
    assert response.status_code == 400 and response.json()["field"] == "as_of"


@pytest.mark.parametrize("moment", ["2026-02-30T10:00:00Z", "0001-01-01T00:00:00+00:00", "1900-05-01T10:00:00Z", 17, None])
def test_impossible_history_times_are_listed_not_500(api, person, moment):
    rows = history_rows(recent_readings(hours=3))
    rows[3] = {"effective_at": moment, "value": 120}
    body = post(api, {"history": rows}).json()
    assert body["code"] == "invalid_history" and [r["index"] for r in body["rows"]] == [3]


def test_a_forecast_time_in_the_future_is_refused(api, person_with_readings):
    """as_of obeys the rule of every reading time: a few minutes ahead at most."""
    future = (timezone.now() + dt.timedelta(hours=2)).isoformat()
    body = post(api, {"as_of": future}).json()
    assert body["code"] == "invalid_request" and body["field"] == "as_of"
    assert "in the future" in body["detail"]
