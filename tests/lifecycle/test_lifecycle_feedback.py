"""Feedback on forecasts: own forecasts only (404 otherwise), strict body, one verdict per
forecast, counted per model version and arm."""

import pytest
from django.http import Http404

from mlmodels.rollouts import create_rollout, set_candidate
from predictions.feedback import BadFeedback, feedback_counts, record_feedback
from predictions.models import PredictionFeedback
from predictions.services import forecast_for_person
from tests.conftest import token_client
from tests.lifecycle.conftest import give_readings, make_model

pytestmark = pytest.mark.django_db


@pytest.fixture
def forecast(person):
    give_readings(person)
    make_model(person, "1.0.0", active=True)
    return forecast_for_person(person)


def url(prediction_id):
    return f"/api/predictions/{prediction_id}/feedback/"


def test_a_person_marks_their_forecast_helpful_and_can_change_their_mind(api, forecast):
    response = api.post(url(forecast.pk), {"helpful": True}, format="json")
    assert response.status_code == 200
    assert response.json()["prediction_id"] == forecast.pk and response.json()["helpful"] is True

    assert api.post(url(forecast.pk), {"helpful": False}, format="json").status_code == 200
    feedback = PredictionFeedback.objects.get()
    assert feedback.helpful is False and feedback.person_id == forecast.person_id


def test_another_persons_forecast_answers_404_and_stores_nothing(other_api, forecast, other_person):
    assert other_api.post(url(forecast.pk), {"helpful": True}, format="json").status_code == 404
    assert other_api.post(url(999999), {"helpful": True}, format="json").status_code == 404
    with pytest.raises(Http404):
        record_feedback(other_person, forecast.pk, True)
    assert not PredictionFeedback.objects.exists()


@pytest.mark.parametrize(
    "body, field",
    [({}, "helpful"), ({"helpful": "yes"}, "helpful"), ({"helpful": 1}, "helpful"),
     ({"helpful": None}, "helpful"), ({"helpful": True, "stars": 5}, "stars"), ([True], "helpful")],
)
def test_bad_bodies_are_400_naming_the_field(api, forecast, body, field):
    response = api.post(url(forecast.pk), body, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == field and response.json()["code"] == "invalid_feedback"
    assert not PredictionFeedback.objects.exists()


def test_malformed_json_is_400(api, forecast):
    response = api.generic("POST", url(forecast.pk), "{not json", content_type="application/json")
    assert response.status_code == 400


def test_anonymous_callers_are_refused(client, forecast):
    assert client.post(url(forecast.pk), {"helpful": True}, content_type="application/json").status_code in (401, 403)


def test_record_feedback_refuses_non_booleans(person, forecast):
    with pytest.raises(BadFeedback):
        record_feedback(person, forecast.pk, "true")


def test_feedback_is_counted_per_version_and_arm(person, other_person):
    give_readings(person, seed=1)
    give_readings(other_person, seed=2)
    make_model(person, "1.0.0", active=True)
    make_model(other_person, "1.0.0", status="archived")
    make_model(other_person, "2.0.0", active=True)
    rollout = create_rollout("glucose-prediction", 1, actor="test", reason="start")
    set_candidate(rollout, 2, percentage=100, actor="test", reason="all")

    mine = [forecast_for_person(person) for _ in range(3)]
    theirs = forecast_for_person(other_person)
    record_feedback(person, mine[0].pk, True)
    record_feedback(person, mine[1].pk, True)
    record_feedback(person, mine[2].pk, False)
    token_client(other_person).post(url(theirs.pk), {"helpful": False}, format="json")

    counts = {(c["model_version"], c["arm"]): (c["helpful"], c["not_helpful"]) for c in feedback_counts()}
    assert counts == {("1.0.0", "stable"): (2, 1), ("2.0.0", "canary"): (0, 1)}
