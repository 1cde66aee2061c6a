"""Personal from the first day: the population prior serves people without a model, short
histories get a labelled AR2 answer instead of a 422, release-1 and release-2 models serve side
by side. Real database, real prior (the artifact shipped in the repository), real trained models."""

import datetime as dt
import json
import math

import pandas as pd
import pytest
from django.utils import timezone

from mlmodels.core.schemas import load_prior
from mlmodels.core.short_history import POOLED, ShortHistoryBands, variability
from mlmodels.models import JobStatus
from mlmodels.services import train_person
from predictions.batch import predict_batch
from predictions.wording import DISCLAIMER
from predictions.models import PredictionLog
from tests.factories import PersonFactory
from tests.predictions.conftest import (
    recent_readings,
    register_model,
    store_readings,
    trained_model_files,
    trained_release2_files,
)

pytestmark = pytest.mark.django_db
URL = "/api/predictions/glucose/"


def after_a_gap(minutes: int, *, seed: int = 3) -> pd.DataFrame:
    """Three hours of readings that stopped 90 minutes ago, then `minutes` of new readings
    (a sensor change) ending a minute ago."""
    now = timezone.now()
    before = recent_readings(hours=3, seed=seed, end=now - dt.timedelta(minutes=90))
    after = recent_readings(hours=minutes / 60, seed=seed + 1, end=now - dt.timedelta(minutes=1))
    return pd.concat([before, after], ignore_index=True)


def test_a_new_person_with_4_hours_of_readings_gets_a_population_forecast(api, person):
    store_readings(person, recent_readings(hours=4, seed=2))

    response = api.post(URL, {"horizons": [30, 60, 120, 240]}, format="json")

    assert response.status_code == 201
    body = response.json()
    prior = load_prior()
    assert body["model"] == {
        "type": "glucose-prediction", "version": str(prior.version), "variant": "population",
        "algorithm": "population_prior",
        # The population's bands, as calibrated when the prior was made: no personal calibration.
        "calibration": {"version": None, "kind": "training", "outcomes_used": 0, "updated_at": None},
    }
    assert [p["horizon_min"] for p in body["points"]] == [30, 60, 120, 240]
    for point in body["points"]:
        assert point["lower_95"] <= point["lower_80"] < point["value"] < point["upper_80"] <= point["upper_95"]
    widths = [p["upper_80"] - p["lower_80"] for p in body["points"]]
    assert widths[0] < widths[2]  # the prior's held-out bands widen with the horizon
    assert body["quality"]["reason"].startswith("population: no personal model yet")
    assert body["provenance"]["n_readings"] >= 20 and body["provenance"]["observations"]
    assert body["disclaimer"] == str(DISCLAIMER)
    log = PredictionLog.objects.get(pk=body["prediction_id"])
    assert (log.variant, log.ml_model, log.model_version, log.fallback_reason) == (
        "population", None, str(prior.version), ""
    )
    assert log.outcome_pending  # scored against outcomes like every live forecast


def test_20_minutes_after_a_gap_get_a_labelled_short_history_answer(api, person):
    frame = after_a_gap(20)
    store_readings(person, frame)

    response = api.post(URL, {"horizons": [30, 60]}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert body["model"]["variant"] == "short_history" and body["model"]["algorithm"] == "ar2_short_history"
    reason = body["quality"]["reason"]
    assert reason.startswith("short_history:") and "120 minutes" in reason
    provenance = body["provenance"]
    span = pd.Timestamp(provenance["window_end"]) - pd.Timestamp(provenance["window_start"])
    assert span <= pd.Timedelta(minutes=20) and 3 <= provenance["n_readings"] <= 5
    # 2.5 hours before the gap are too few to judge the person's variability: the pooled bands.
    assert "ranges for everybody" in reason
    pooled = ShortHistoryBands.load().offsets(POOLED, [60], [frame["glucose_mg_dl"].iloc[-1]])
    at_60 = body["points"][1]
    assert math.log(at_60["upper_80"] / at_60["value"]) == pytest.approx(max(pooled["upper_80"][0, 0], 0), abs=0.015)
    assert body["disclaimer"] == str(DISCLAIMER)


def test_after_a_sensor_change_the_bands_follow_the_variability_of_the_days_before(api, person):
    days = recent_readings(hours=72, seed=8, end=timezone.now() - dt.timedelta(minutes=90))
    after = recent_readings(hours=0.25, seed=9, end=timezone.now() - dt.timedelta(minutes=1))
    store_readings(person, pd.concat([days, after], ignore_index=True))
    bands = ShortHistoryBands.load()
    times = pd.DatetimeIndex(pd.to_datetime(days["time"], utc=True)).as_unit("ns").asi8
    as_of = pd.Timestamp(timezone.now()).value
    expected = bands.classify(*variability(times, days["glucose_mg_dl"].to_numpy(), as_of - 120 * 60 * 10**9))
    assert expected != POOLED

    body = api.post(URL, {"horizons": [30, 60]}, format="json").json()

    assert body["model"]["variant"] == "short_history"
    assert f"variability class '{expected}'" in body["quality"]["reason"]
    own = bands.offsets(expected, [30, 60], [after["glucose_mg_dl"].iloc[-1]])
    # (the answer's mg/dL are whole numbers: up to 0.5 / 70 on each side of the ratio)
    for point, upper, lower in zip(body["points"], own["upper_80"][0], own["lower_80"][0]):
        assert math.log(point["upper_80"] / point["value"]) == pytest.approx(max(upper, 0), abs=0.015)
        assert math.log(point["lower_80"] / point["value"]) == pytest.approx(min(lower, 0), abs=0.015)

    # A what-if with the same days sent as its history answers with the same class.
    from tests.predictions.conftest import history_rows

    sent = pd.concat([days, after], ignore_index=True)
    what_if = api.post(URL, {"history": history_rows(sent), "horizons": [30, 60]}, format="json").json()
    assert what_if["model"]["variant"] == "short_history"
    assert f"variability class '{expected}'" in what_if["quality"]["reason"]


def test_a_personal_model_after_a_sensor_change_answers_short_history_too(api, person):
    store_readings(person, after_a_gap(15, seed=5))
    register_model(person)

    body = api.post(URL, {}, format="json").json()

    assert body["model"]["variant"] == "short_history"
    log = PredictionLog.objects.get(pk=body["prediction_id"])
    assert log.fallback_reason.startswith("not_enough_readings_for_model: model 1.0.0")


def test_one_reading_after_a_gap_is_still_422(api, person):
    frame = after_a_gap(20)
    recent = frame["time"] > timezone.now() - dt.timedelta(minutes=30)
    store_readings(person, pd.concat([frame[~recent], frame[recent].tail(1)]))  # one new reading

    response = api.post(URL, {}, format="json")

    assert response.status_code == 422 and response.json()["code"] == "too_few_readings"
    assert "at least two readings" in response.json()["detail"]
    assert not PredictionLog.objects.exists()


def test_a_person_with_a_day_and_a_half_gets_a_release_2_model(person, artifact_root):
    from tests.mlmodels.conftest import synthetic_readings

    store_readings(person, synthetic_readings(1.5, seed=3).assign(time=lambda f: f["time"].dt.floor("us")))

    job = train_person(person, trigger="operator", time_budget_s=5)

    assert job.status == JobStatus.SUCCEEDED, (job.reason, job.detail, job.error)
    model = job.model
    assert model.version == "2.0.0" and model.version_major == 2
    assert model.feature_schema["version"] == 2
    assert model.feature_schema["prior_version"] == str(load_prior().version)
    assert model.hyperparameters["split"]["kind"] == "rolling_origin"
    # Release 2 starts from the prior: it serves (a blend candidate or the trees' base), or, with
    # the per-horizon choice on, it was weighed on the person's own days against what serves.
    assert "prior" in model.hyperparameters["candidates"] or any(
        c.get("base") == "prior" for c in model.hyperparameters["candidate_params"].values()
    ) or "prior" in model.hyperparameters.get("per_horizon_evidence_mae_30_60", {})
    assert model.comparison["reference"]["kind"] == "population"
    assert job.reason in ("deployed", "not_better")  # deploy-if-better against the prior
    assert model.metrics["per_horizon"]["model"]["60"]["mae"] > 0


def test_a_stored_release_1_model_keeps_serving_beside_release_2(api, person):
    other = PersonFactory()
    for who, seed in ((person, 1), (other, 2)):
        store_readings(who, recent_readings(hours=4, seed=seed))
    files_2, algorithm_2 = trained_release2_files()
    register_model(person, version="1.0.0", files=trained_model_files()[0])
    register_model(other, version="2.0.0", files=files_2, algorithm=algorithm_2)

    one = api.post(URL, {}, format="json").json()
    from tests.conftest import token_client

    two = token_client(other).post(URL, {}, format="json").json()

    assert (one["model"]["version"], one["model"]["variant"]) == ("1.0.0", "stable")
    assert (two["model"]["version"], two["model"]["variant"]) == ("2.0.0", "stable")
    names = {f["feature"] for f in two["provenance"]["top_features"]}
    assert names  # release 2 explains itself too (its prior features and trends included)
    assert PredictionLog.objects.filter(fallback_reason="").count() == 2
    # The batch serves both releases in the same run, each with its own features.
    PredictionLog.objects.all().delete()
    result = predict_batch(persons=[person, other])
    assert result.n_forecasts == 2 and result.n_fallbacks == 0
    assert sorted(PredictionLog.objects.values_list("model_version", "variant")) == [
        ("1.0.0", "stable"), ("2.0.0", "stable")
    ]


def test_a_release_2_model_built_on_another_prior_falls_back_with_the_reason(api, person):
    store_readings(person, recent_readings(hours=4, seed=4))
    files, algorithm = trained_release2_files()
    manifest = json.loads(files["manifest.json"])
    manifest["feature_schema"]["prior_version"] = "prior-0.0.1"
    register_model(person, version="2.0.0", files={**files, "manifest.json": json.dumps(manifest).encode()})

    body = api.post(URL, {}, format="json").json()

    assert body["model"]["variant"] == "population"
    log = PredictionLog.objects.get(pk=body["prediction_id"])
    assert log.fallback_reason == "feature_schema_mismatch: model 2.0.0"


def test_the_batch_serves_the_prior_and_short_histories(person):
    new, changed, single = PersonFactory(), PersonFactory(), PersonFactory()
    store_readings(new, recent_readings(hours=4, seed=7))
    store_readings(changed, after_a_gap(20, seed=8))
    store_readings(single, recent_readings(hours=0.05, seed=9).tail(1))

    result = predict_batch(persons=[new, changed, single])

    assert result.n_fresh == 3 and result.n_forecasts == 2 and result.n_too_few_readings == 1
    logs = {log.person_id: log for log in PredictionLog.objects.all()}
    assert logs[new.pk].variant == "population" and logs[new.pk].quality["reason"].startswith("population:")
    assert logs[changed.pk].variant == "short_history"
    assert logs[changed.pk].quality["reason"].startswith("short_history:")
    assert single.pk not in logs


def test_a_what_if_with_three_readings_gets_a_short_history_answer_and_stores_nothing(api, person):
    from tests.predictions.conftest import history_rows

    rows = history_rows(recent_readings(hours=0.25, seed=11).tail(3))

    response = api.post(URL, {"history": rows, "horizons": [15, 30]}, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["model"]["variant"] == "short_history" and body["quality"]["reason"].startswith("short_history:")
    assert body["provenance"]["n_readings"] == 3
    log = PredictionLog.objects.get(pk=body["prediction_id"])
    assert log.from_history and not log.outcome_pending  # a what-if is never scored


class BrokenPrior:
    """A population forecaster with a bug: every call fails with an unexpected error."""

    method = "population"
    version = "prior-broken"

    def forecast_windows(self, *args, **kwargs):
        raise ArithmeticError("a bug in the prior")


def test_when_the_prior_fails_at_run_time_ar2_answers_with_the_reason(api, person, monkeypatch, caplog):
    from predictions import services

    store_readings(person, recent_readings(hours=4, seed=12))
    monkeypatch.setattr(services, "_population", (BrokenPrior(), ""))

    body = api.post(URL, {}, format="json").json()

    assert body["model"]["variant"] == "baseline" and body["model"]["algorithm"] == "ar2_baseline"
    log = PredictionLog.objects.get(pk=body["prediction_id"])
    assert log.fallback_reason == "population_error: ArithmeticError"
    assert "The population prior failed" in caplog.text
