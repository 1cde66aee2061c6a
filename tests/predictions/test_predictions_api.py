"""Contract of POST /api/predictions/glucose/ and the prediction log endpoints."""

import datetime as dt

import pytest

from predictions.copy import DISCLAIMER
from predictions.models import PredictionLog
from tests.predictions.conftest import register_model

pytestmark = pytest.mark.django_db

URL = "/api/predictions/glucose/"
POINT_KEYS = {"horizon_min", "time", "value", "lower_80", "upper_80", "lower_95", "upper_95"}


def parse(moment: str) -> dt.datetime:
    return dt.datetime.fromisoformat(moment.replace("Z", "+00:00"))


def test_default_request_answers_the_documented_shape(api, person_with_model):
    response = api.post(URL, {}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"prediction_id", "issued_at", "as_of", "unit", "model", "points",
                         "provenance", "quality", "disclaimer"}
    assert set(body["model"]) == {"type", "version", "variant", "algorithm"}
    assert body["model"] == {"type": "glucose-prediction", "version": "1.0.0", "variant": "stable",
                             "algorithm": body["model"]["algorithm"]}
    assert body["unit"] == "mg/dL"
    assert [p["horizon_min"] for p in body["points"]] == [30, 60, 120]
    for point in body["points"]:
        assert set(point) == POINT_KEYS
        assert point["lower_95"] <= point["lower_80"] <= point["value"] <= point["upper_80"] <= point["upper_95"]
        assert parse(point["time"]) == parse(body["as_of"]) + dt.timedelta(minutes=point["horizon_min"])
    provenance = body["provenance"]
    assert set(provenance) == {"window_start", "window_end", "n_readings", "observations", "top_features"}
    assert parse(provenance["window_end"]) == parse(body["as_of"])
    assert parse(provenance["window_end"]) - parse(provenance["window_start"]) == dt.timedelta(minutes=120)
    assert provenance["n_readings"] >= 20 and all(isinstance(i, int) for i in provenance["observations"])
    assert provenance["top_features"] and set(provenance["top_features"][0]) == {"feature", "contribution"}
    assert set(body["quality"]) == {"gaps_in_window", "data_age_min"}
    assert 0 <= body["quality"]["data_age_min"] < 5
    assert body["disclaimer"] == str(DISCLAIMER)
    log = PredictionLog.objects.get(pk=body["prediction_id"])
    assert log.source == "api" and log.variant == "stable" and log.latency_ms > 0


def test_without_a_model_the_baseline_answers(api, person_with_readings):
    body = api.post(URL, {}, format="json").json()

    assert body["model"]["variant"] == "baseline"
    assert body["model"]["algorithm"] == "ar2_baseline"
