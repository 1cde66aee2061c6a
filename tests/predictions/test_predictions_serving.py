"""Serving behaviour: history vs stored data, the model cache, fallbacks to the baseline."""

import datetime as dt
import json

import pytest
from django.utils import timezone

from mlmodels.models import ModelStatus
from mlmodels.storage import artifact_storage
from predictions.cache import forecaster_cache
from predictions.models import PredictionLog
from predictions.selection import choose_model
from predictions.services import forecast_for_person
from tests.predictions.conftest import (
    history_rows,
    recent_readings,
    register_model,
    store_readings,
    trained_model_files,
)

pytestmark = pytest.mark.django_db

URL = "/api/predictions/glucose/"


def retrained_files(note: str) -> dict[str, bytes]:
    """The trained model with different bytes (so a different SHA-256), still loadable."""
    files, _ = trained_model_files()
    manifest = json.loads(files["manifest.json"])
    manifest["info"] = {**manifest.get("info", {}), "note": note}
    return {**files, "manifest.json": json.dumps(manifest).encode()}


@pytest.mark.parametrize("with_model", [True, False], ids=["model", "baseline"])
def test_history_and_stored_readings_give_the_same_forecast(api, person, with_model):
    frame = recent_readings(hours=5, seed=3)
    store_readings(person, frame)
    if with_model:
        register_model(person)
    as_of = (frame["time"].iloc[-1] + dt.timedelta(minutes=2)).isoformat()

    stored = api.post(URL, {"as_of": as_of, "horizons": [15, 60, 240]}, format="json").json()
    sent = api.post(URL, {"as_of": as_of, "horizons": [15, 60, 240], "history": history_rows(frame)},
                    format="json").json()

    assert sent["points"] == stored["points"]
    assert sent["model"] == stored["model"]
    assert sent["as_of"] == stored["as_of"]
    for key in ("window_start", "window_end", "n_readings", "top_features"):
        assert sent["provenance"][key] == stored["provenance"][key]
    assert sent["quality"] == stored["quality"]
    # Stored readings are named by id, readings sent along by time; the same number of each.
    assert all(isinstance(i, int) for i in stored["provenance"]["observations"])
    assert all(isinstance(t, str) for t in sent["provenance"]["observations"])
    assert len(sent["provenance"]["observations"]) == len(stored["provenance"]["observations"])


def test_history_stores_no_readings_and_is_not_scored(api, person):
    from observations.models import Observation

    frame = recent_readings(hours=3, end=timezone.now() - dt.timedelta(days=30))
    body = api.post(URL, {"history": history_rows(frame)}, format="json").json()

    assert Observation.objects.count() == 0
    log = PredictionLog.objects.get(pk=body["prediction_id"])
    assert log.from_history and not log.outcome_pending
    # With history and no as_of the forecast starts at the last reading sent, however old.
    assert body["quality"]["data_age_min"] == 0.0


def test_a_new_active_version_is_used_on_the_next_request(api, person_with_model):
    first = api.post(URL, {}, format="json").json()
    assert first["model"]["version"] == "1.0.0"
    old_keys = forecaster_cache().keys()
    assert [k[:2] for k in old_keys] == [(person_with_model.pk, "1.0.0")]

    api.post(URL, {}, format="json")
    assert forecaster_cache().stats()["hits"] == 1

    register_model(person_with_model, version="1.1.0", files=retrained_files("retrain"))
    second = api.post(URL, {}, format="json").json()

    assert second["model"]["version"] == "1.1.0" and second["model"]["variant"] == "stable"
    keys = forecaster_cache().keys()
    assert [k[:2] for k in keys] == [(person_with_model.pk, "1.1.0")]  # the old one is dropped
    assert keys[0][2] != old_keys[0][2]
    assert forecaster_cache().stats()["misses"] == 2


def test_a_replaced_artifact_with_the_same_version_is_reloaded(person_with_model):
    model = choose_model(person_with_model)[0]
    forecast_for_person(person_with_model)
    model.artifact_sha256 = "0" * 64  # the registry row now names other bytes
    model.save()
    log = forecast_for_person(person_with_model)
    assert forecaster_cache().stats()["misses"] == 2
    assert log.variant == "population" and log.fallback_reason.startswith("artifact_integrity")


def tamper(model, name_part: str, how: str) -> None:
    storage = artifact_storage()
    name = next(n for n in model.artifact_manifest if name_part in n)
    path = storage.path(f"{model.storage_path}/{name}")
    if how == "delete":
        storage.delete(f"{model.storage_path}/{name}")
        return
    with open(path, "r+b") as handle:
        data = bytearray(handle.read())
        data[len(data) // 2] ^= 0x01
        handle.seek(0)
        handle.write(data)


@pytest.mark.parametrize("how", ["flip a byte", "delete"])
def test_a_tampered_or_missing_artifact_falls_back_to_the_population_prior(api, person_with_model, how, caplog):
    model = choose_model(person_with_model)[0]
    tamper(model, "xgboost", how)

    response = api.post(URL, {}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert body["model"]["variant"] == "population" and body["model"]["algorithm"] == "population_prior"
    assert body["quality"]["reason"].startswith("population: the personal model could not answer (artifact_integrity")
    log = PredictionLog.objects.get(pk=body["prediction_id"])
    assert log.fallback_reason == "artifact_integrity: model 1.0.0"
    assert log.ml_model is None
    assert forecaster_cache().stats()["fallbacks"] == {"artifact_integrity": 1}
    assert "Refusing to load model" in caplog.text
    # Nothing broken is cached: every request tries (and refuses) again.
    api.post(URL, {}, format="json")
    assert forecaster_cache().stats()["fallbacks"] == {"artifact_integrity": 2}
    assert forecaster_cache().keys() == []


def test_a_model_built_for_other_features_falls_back(api, person):
    store_readings(person, recent_readings())
    files, _ = trained_model_files()
    manifest = json.loads(files["manifest.json"])
    manifest["feature_schema"]["version"] = 999
    register_model(person, files={**files, "manifest.json": json.dumps(manifest).encode()})

    body = api.post(URL, {}, format="json").json()

    assert body["model"]["variant"] == "population"
    log = PredictionLog.objects.get(pk=body["prediction_id"])
    assert log.fallback_reason.startswith("feature_schema_mismatch")


def test_without_the_prior_a_broken_model_falls_back_to_the_baseline(api, person_with_model, without_prior):
    tamper(choose_model(person_with_model)[0], "xgboost", "delete")

    body = api.post(URL, {}, format="json").json()

    assert body["model"]["variant"] == "baseline" and body["model"]["algorithm"] == "ar2_baseline"
    assert "reason" not in body["quality"]
    assert PredictionLog.objects.get(pk=body["prediction_id"]).fallback_reason == "artifact_integrity: model 1.0.0"


def test_a_slow_model_is_abandoned_after_the_time_bound(api, person_with_model, settings):
    settings.GLUCAST_PREDICT_TIMEOUT_S = 0.0005  # far below a model load

    body = api.post(URL, {}, format="json").json()

    assert body["model"]["variant"] == "population"
    assert PredictionLog.objects.get(pk=body["prediction_id"]).fallback_reason == "timeout: model 1.0.0"
    assert forecaster_cache().stats()["fallbacks"] == {"timeout": 1}


def test_only_an_active_ready_model_is_chosen(person_with_readings):
    assert choose_model(person_with_readings) == (None, "baseline")
    model = register_model(person_with_readings, active=False)
    assert choose_model(person_with_readings) == (None, "baseline")
    model.is_active = True
    model.save()
    assert choose_model(person_with_readings) == (model, "stable")
    model.is_active = False
    model.status = ModelStatus.ARCHIVED
    model.save()
    assert choose_model(person_with_readings) == (None, "baseline")


def test_the_service_is_what_pages_call(person_with_model):
    log = forecast_for_person(person_with_model, horizons=[60], unit="mmol/L", source="api")
    assert log.pk and log.unit == "mmol/L" and log.horizons == [60]
    assert log.points[0]["value_mg_dl"] > 30  # stored in mg/dL whatever the answer's unit


class BrokenBaseline:
    """A forecaster with a bug: every call fails with an unexpected error."""

    method = "broken"

    def forecast_matrix(self, *args):
        raise ArithmeticError("a bug in the numeric core")

    def feature_contributions(self, *args):
        raise ArithmeticError("a bug in the numeric core")


def test_when_even_the_baseline_fails_the_answer_is_503_not_500(
    api, person_with_readings, monkeypatch, caplog, without_prior
):
    from predictions import services

    monkeypatch.setattr(services, "_baseline", BrokenBaseline())
    response = api.post(URL, {}, format="json")

    assert response.status_code == 503
    assert response.json()["code"] == "forecast_unavailable"
    assert "Neither the prior nor the baseline could forecast" in caplog.text
    assert PredictionLog.objects.count() == 0


def test_stored_readings_are_exactly_what_readings_frame_returns(person):
    import numpy as np

    from observations.models import Observation, ObservationStatus
    from observations.readings import readings_frame
    from predictions.services import READINGS_LOOKBACK, stored_readings

    rows = store_readings(person, recent_readings(hours=5))
    Observation.objects.filter(pk=rows[-3].pk).update(status=ObservationStatus.ENTERED_IN_ERROR)
    Observation.objects.filter(pk=rows[-5].pk).update(at_sensor_limit=True)
    Observation.objects.create(person=person, kind="blood", value_mg_dl=99, original_value=99,
                               original_unit="mg/dL", effective_at=timezone.now() - dt.timedelta(minutes=7))
    end = timezone.now()
    start = end - READINGS_LOOKBACK

    arrays = stored_readings(person, start, end)
    frame = readings_frame(person, start=start, end=end)

    assert arrays.ids.tolist() == frame["id"].tolist()
    assert arrays.times_ns.tolist() == frame["time"].to_numpy(dtype="datetime64[ns]").astype(np.int64).tolist()
    assert arrays.values.tolist() == frame["glucose_mg_dl"].tolist()
    assert arrays.at_limit.tolist() == frame["at_sensor_limit"].tolist()
    assert rows[-3].pk not in arrays.ids and arrays.at_limit.sum() == 1
