"""Contract of POST /api/predictions/glucose/ and the prediction log endpoints."""

import datetime as dt
import math

import pytest

from predictions.wording import DISCLAIMER
from predictions.models import PredictionLog

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
    assert set(body["model"]) == {"type", "version", "variant", "algorithm", "calibration"}
    assert body["model"] == {"type": "glucose-prediction", "version": "1.0.0", "variant": "stable",
                             "algorithm": body["model"]["algorithm"], "calibration": body["model"]["calibration"]}
    calibration = body["model"]["calibration"]  # the training-time bands: no outcomes of their own yet
    assert calibration["version"] == "1.0.0" and calibration["kind"] == "training"
    assert calibration["outcomes_used"] == 0 and calibration["updated_at"]
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


def test_without_a_model_or_prior_the_baseline_answers(api, person_with_readings, without_prior):
    body = api.post(URL, {}, format="json").json()

    assert body["model"]["variant"] == "baseline"
    assert body["model"]["algorithm"] == "ar2_baseline"


def test_answer_in_mmol_l_converts_every_value(api, person_with_model):
    mg = api.post(URL, {"horizons": [30]}, format="json").json()
    mmol = api.post(URL, {"horizons": [30], "unit": "mmol/L"}, format="json").json()

    assert mmol["unit"] == "mmol/L"
    log = PredictionLog.objects.get(pk=mmol["prediction_id"])
    stored = log.points[0]
    for key in ("value", "lower_80", "upper_80", "lower_95", "upper_95"):
        assert mmol["points"][0][key] == round(stored[f"{key}_mg_dl"] / 18.0, 1)
    assert mg["points"][0]["value"] == round(stored["value_mg_dl"])


def test_the_persons_preferred_unit_is_the_default(api, person_with_model):
    person_with_model.preferred_unit = "mmol/L"
    person_with_model.save()
    assert api.post(URL, {}, format="json").json()["unit"] == "mmol/L"


def test_range_24h_gives_a_point_every_15_minutes_with_widening_ranges(api, person_with_model):
    body = api.post(URL, {"range": "24h"}, format="json").json()

    horizons = [p["horizon_min"] for p in body["points"]]
    assert horizons == list(range(15, 1441, 15))
    width = {p["horizon_min"]: p["upper_95"] - p["lower_95"] for p in body["points"]}
    assert width[1440] > width[30]


def test_the_baseline_widens_its_ranges_honestly_far_ahead(api, person_with_readings, without_prior):
    body = api.post(URL, {"horizons": [30, 120, 360, 1440]}, format="json").json()

    assert body["model"]["variant"] == "baseline"
    width = [p["upper_80"] - p["lower_80"] for p in body["points"]]
    # The baseline's band is multiplicative (log space): its relative width never shrinks with
    # the horizon, while the mg/dL width also follows the forecast level (AR2 drifts toward 140),
    # so compare relative widths, allowing for whole-mg/dL rounding.
    relative = [math.log(p["upper_80"] / p["lower_80"]) for p in body["points"]]
    assert all(later >= earlier - 0.01 for earlier, later in zip(relative, relative[1:]))
    assert width[-1] > 2 * width[0]


def test_custom_horizons_are_answered_in_ascending_order(api, person_with_model):
    body = api.post(URL, {"horizons": [120, 5, 1440, 45]}, format="json").json()
    assert [p["horizon_min"] for p in body["points"]] == [5, 45, 120, 1440]


def test_the_log_lists_only_the_callers_own_forecasts_newest_first(api, other_api, person_with_model, other_person):
    first = api.post(URL, {}, format="json").json()["prediction_id"]
    second = api.post(URL, {"horizons": [60]}, format="json").json()["prediction_id"]

    page = api.get("/api/predictions/").json()
    assert page["count"] == 2
    assert [item["prediction_id"] for item in page["results"]] == [second, first]
    item = page["results"][0]
    assert item["disclaimer"] == str(DISCLAIMER)
    assert set(item["points"][0]) == POINT_KEYS | {"actual", "actual_at"}
    assert other_api.get("/api/predictions/").json()["count"] == 0


def test_the_log_is_paged(api, person_with_readings):
    for _ in range(3):
        api.post(URL, {"horizons": [30]}, format="json")
    page = api.get("/api/predictions/?limit=2").json()
    assert page["count"] == 3 and len(page["results"]) == 2 and page["next"]


def test_one_forecast_by_id_and_another_persons_id_is_404(api, other_api, person_with_model, other_person):
    prediction_id = api.post(URL, {}, format="json").json()["prediction_id"]

    mine = api.get(f"/api/predictions/{prediction_id}/")
    assert mine.status_code == 200 and mine.json()["prediction_id"] == prediction_id
    assert mine.json()["points"][0]["actual"] is None
    assert other_api.get(f"/api/predictions/{prediction_id}/").status_code == 404
    assert api.get("/api/predictions/999999999/").status_code == 404


def test_anonymous_callers_are_refused(client, person_with_readings):
    from rest_framework.test import APIClient

    assert APIClient().post(URL, {}, format="json").status_code in (401, 403)
    assert APIClient().get("/api/predictions/").status_code in (401, 403)


def test_another_persons_readings_never_reach_the_forecast(api, other_api, person_with_readings, other_person):
    from tests.predictions.conftest import recent_readings, store_readings

    store_readings(other_person, recent_readings(seed=7))
    mine = api.post(URL, {}, format="json").json()
    theirs = other_api.post(URL, {}, format="json").json()

    from observations.models import Observation

    assert set(mine["provenance"]["observations"]) <= set(
        Observation.objects.for_person(person_with_readings).values_list("id", flat=True)
    )
    assert set(theirs["provenance"]["observations"]) <= set(
        Observation.objects.for_person(other_person).values_list("id", flat=True)
    )


def test_the_openapi_schema_describes_the_forecast_endpoints(api, admin_client):
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    post = schema["paths"]["/api/predictions/glucose/"]["post"]
    assert set(post["responses"]) >= {"201", "400", "422", "429"}
    response_schema = schema["components"]["schemas"]["ForecastResponse"]
    assert set(response_schema["properties"]) == {"prediction_id", "issued_at", "as_of", "unit", "model",
                                                  "points", "provenance", "quality", "disclaimer"}
    point = schema["components"]["schemas"]["ForecastPoint"]
    assert set(point["properties"]) == POINT_KEYS
    request_schema = schema["components"]["schemas"]["ForecastRequestRequest"]
    assert set(request_schema["properties"]) == {"horizons", "range", "history", "unit", "as_of"}
    assert "/api/models/{id}/performance/" in schema["paths"]


def test_the_log_can_be_filtered_by_source(api, person_with_readings):
    from predictions.batch import predict_batch

    api.post(URL, {}, format="json")
    predict_batch()
    assert api.get("/api/predictions/").json()["count"] == 2
    assert [i["source"] for i in api.get("/api/predictions/?source=batch").json()["results"]] == ["batch"]
    assert [i["source"] for i in api.get("/api/predictions/?source=api").json()["results"]] == ["api"]
    assert api.get("/api/predictions/?source=other").status_code == 400
