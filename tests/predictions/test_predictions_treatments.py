"""Serving release 3: the person's RECORDED past treatments shape the forecast, provenance lists
them, quality says when they were expected and missing, and a request can never carry any."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from mlmodels.core.schemas import load_prior
from mlmodels.core.training import train_forecaster
from observations.treatments.services import store_treatments
from observations.treatments.validation import RawTreatment
from predictions.services import forecast_for_person
from tests.core.test_core_release3 import treated_person
from tests.predictions.conftest import history_rows, recent_readings, register_model, store_readings

pytestmark = pytest.mark.django_db
_FILES: dict = {}


def release_3_files():
    """A release-3 forecaster trained by the real pipeline on a person whose glucose follows
    their recorded meals and boluses (its blend uses the treatment candidates), once per session."""
    if not _FILES:
        readings, tr = treated_person(4, seed=5)
        result = train_forecaster(readings, time_budget_s=4.0, prior=load_prior(), treatments=tr)
        assert result.feature_schema["version"] == 3 and result.forecaster.uses_treatments
        _FILES["files"], _FILES["algorithm"] = result.forecaster.to_files(), str(result.algorithm)
    return _FILES["files"], _FILES["algorithm"]


def record(person, rows):
    store_treatments(person=person, records=[RawTreatment(row=i + 1, **r) for i, r in enumerate(rows)], source="api")


@pytest.fixture
def person_on_release_3(person):
    store_readings(person, recent_readings(hours=6, seed=3))
    files, algorithm = release_3_files()
    register_model(person, version="3.0.0", files=files, algorithm=algorithm)
    return person


def minutes_ago(m):
    return (timezone.now() - dt.timedelta(minutes=m)).isoformat()


def test_recorded_treatments_shape_the_forecast_and_are_listed(person_on_release_3):
    person = person_on_release_3
    without = forecast_for_person(person)
    assert without.model_version == "3.0.0"
    assert without.quality["treatments"]["expected"] and without.quality["treatments"]["missing"]
    assert "none were recorded in the last 6 hours" in without.quality["treatments"]["note"]
    assert without.provenance["treatments"] == []

    record(person, [
        {"kind": "carbs", "time": minutes_ago(40), "amount": 60},
        {"kind": "bolus", "time": minutes_ago(35), "amount": 5, "insulin_kind": "rapid"},
        {"kind": "heart_rate", "time": minutes_ago(5), "amount": 80},
    ])
    shaped = forecast_for_person(person)
    assert shaped.points != without.points  # the model uses them
    listed = shaped.provenance["treatments"]
    assert [(t["kind"], t["amount"], t["unit"]) for t in listed] == [("insulin", 5.0, "U"), ("carbohydrates", 60.0, "g")]
    assert not shaped.quality["treatments"]["missing"] and shaped.quality["treatments"]["recorded"] == 2


def test_only_treatments_before_the_forecast_time_are_inputs(person_on_release_3):
    person = person_on_release_3
    as_of = timezone.now() - dt.timedelta(minutes=30)
    before = forecast_for_person(person, as_of=as_of.isoformat())
    record(person, [{"kind": "carbs", "time": minutes_ago(10), "amount": 80}])  # after as_of
    after = forecast_for_person(person, as_of=as_of.isoformat())
    assert after.points == before.points and after.provenance["treatments"] == []


def test_a_release_2_person_reads_no_treatments(person):
    from tests.predictions.conftest import trained_release2_files

    store_readings(person, recent_readings(hours=6, seed=3))
    files, algorithm = trained_release2_files()
    register_model(person, version="2.0.0", files=files, algorithm=algorithm)
    record(person, [{"kind": "carbs", "time": minutes_ago(40), "amount": 60}])
    log = forecast_for_person(person)
    assert "treatments" not in log.provenance and "treatments" not in log.quality


@pytest.mark.parametrize("body, field", [
    ({"treatments": [{"kind": "bolus", "amount": 4}]}, "treatments"),
    ({"insulin": 4}, "insulin"),
    ({"carbs": 50, "horizons": [30]}, "carbs"),
])
def test_a_request_that_carries_treatments_is_a_400_that_says_why(api, person_on_release_3, body, field):
    answer = api.post("/api/predictions/glucose/", body, format="json")
    assert answer.status_code == 400, answer.content
    text = answer.content.decode()
    assert "cannot carry insulin, meals or other treatments" in text and field in text


def test_a_history_row_that_carries_a_treatment_is_a_400(api, person_on_release_3):
    rows = history_rows(recent_readings(hours=3, seed=4))
    rows[-1] = {**rows[-1], "insulin": 6}
    answer = api.post("/api/predictions/glucose/", {"history": rows}, format="json")
    assert answer.status_code == 400
    assert "cannot carry insulin" in answer.content.decode()


def test_every_treatment_feature_has_plain_words_in_english_and_german():
    from django.utils import translation

    from mlmodels.core.treatments import TREATMENT_FEATURES
    from predictions.pages import feature_in_words

    for name in TREATMENT_FEATURES:
        words = str(feature_in_words(name))
        assert "_" not in words and "recorded" in words or "steps" in words, (name, words)
    with translation.override("de"):
        assert str(feature_in_words("insulin_next_60min_p100")) == "erfasstes Insulin, das in den nächsten 60 Minuten wirkt"
