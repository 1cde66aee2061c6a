import json
import time

import pandas as pd
import pytest

from mlmodels.core.features import FEATURE_SCHEMA_VERSION, HORIZONS
from mlmodels.core.forecaster import (
    BaselineForecaster,
    FeatureSchemaMismatch,
    GlucoseForecaster,
    NotEnoughReadings,
    StaleReadings,
)
from mlmodels.core.training import InsufficientData, evaluate_on, train_forecaster
from tests.core.synthetic import synthetic_person

TZ = "Europe/Berlin"


@pytest.fixture(scope="module")
def person():
    return synthetic_person(days=5, seed=7, tz=TZ)


@pytest.fixture(scope="module")
def trained(person):
    return train_forecaster(person, tz=TZ, time_budget_s=5)


def test_training_end_to_end_on_a_synthetic_person_with_a_daily_rhythm(trained, person):
    r = trained
    assert isinstance(r.forecaster, GlucoseForecaster)
    assert r.algorithm in {"blend", "ridge", "xgboost", "ar2", "damped_trend", "persistence"}
    json.dumps(r.metrics), json.dumps(r.hyperparameters), json.dumps(r.feature_schema)
    assert r.feature_schema["version"] == FEATURE_SCHEMA_VERSION
    summary = r.metrics["summary"]
    # a learnable rhythm: the model must beat persistence and the AR2 baseline at an hour
    assert summary["model"]["mae_60"] < summary["persistence"]["mae_60"]
    assert summary["model"]["mae_60"] < summary["baseline_ar2"]["mae_60"]
    assert 0.6 <= summary["model"]["coverage_80_mean"] <= 1.0
    assert set(r.metrics["per_horizon"]) == {"model", "baseline_ar2", "persistence"}
    assert {str(h) for h in HORIZONS} <= set(r.metrics["per_horizon"]["model"])
    # the test part is the end of the data and nothing after it exists
    start, end = r.test_period
    assert end == r.data_end and start > r.data_start + (r.data_end - r.data_start) * 0.7
    assert r.n_readings == len(person)
    assert any("test" in line for line in r.log)


def test_evaluate_on_scores_the_same_period_for_two_models(trained, person):
    start, end = trained.test_period
    held_out = evaluate_on(trained.evaluated_forecaster, person, start, end)
    baseline = evaluate_on(BaselineForecaster(tz=TZ), person, start, end)
    assert held_out["n_origins"] == baseline["n_origins"] == trained.metrics["n_origins"]
    assert held_out["summary"]["model"]["mae_60"] == pytest.approx(trained.metrics["summary"]["model"]["mae_60"])
    assert baseline["summary"]["model"]["mae_60"] == pytest.approx(
        trained.metrics["summary"]["baseline_ar2"]["mae_60"]
    )


def test_predict_gives_clamped_ordered_points_and_top_features(trained, person):
    forecast = trained.forecaster.predict(person, horizons=[5, 30, 60, 120, 125, 240, 1440], tz=TZ)
    assert forecast.as_of == person["time"].iloc[-1]
    assert [p["horizon_min"] for p in forecast.points] == [5, 30, 60, 120, 125, 240, 1440]
    for p in forecast.points:
        assert 40 <= p["lower_95"] <= p["lower_80"] <= p["value"] <= p["upper_80"] <= p["upper_95"] <= 400
        assert p["time"] == forecast.as_of + pd.Timedelta(minutes=p["horizon_min"])
    widths = {p["horizon_min"]: p["upper_80"] - p["lower_80"] for p in forecast.points}
    assert widths[240] >= widths[120] - 0.2 and widths[1440] >= widths[120] - 0.2
    assert 1 <= len(forecast.top_features) <= 5
    assert all({"feature", "contribution"} == set(t) for t in forecast.top_features)
    assert forecast.window_end - forecast.window_start == pd.Timedelta(minutes=120)
    assert forecast.n_readings == 25 and forecast.gaps_in_window == 0
    json.dumps(forecast.to_dict())


def test_files_round_trip_gives_identical_predictions_and_safe_formats(trained, person):
    files = trained.forecaster.to_files()
    assert all(name.endswith((".json", ".ubj", ".skops")) for name in files)
    assert not any(b"pickle" in name.encode() for name in files)
    loaded = GlucoseForecaster.from_files(files)
    as_of = person["time"].iloc[-100]
    a = trained.forecaster.predict(person, as_of=as_of, horizons=[30, 60, 240], tz=TZ)
    b = loaded.predict(person, as_of=as_of, horizons=[30, 60, 240], tz=TZ)
    assert a.points == b.points and a.top_features == b.top_features
    meta = loaded.metadata()
    assert {"sklearn", "xgboost", "numpy", "pandas"} <= set(meta["libraries"])
    assert meta["features"] and meta["hyperparameters"]


def test_from_files_refuses_another_feature_schema(trained):
    files = trained.forecaster.to_files()
    manifest = json.loads(files["manifest.json"])
    manifest["feature_schema"]["version"] = FEATURE_SCHEMA_VERSION + 1
    with pytest.raises(FeatureSchemaMismatch):
        GlucoseForecaster.from_files({**files, "manifest.json": json.dumps(manifest).encode()})
    manifest["feature_schema"] = {"version": FEATURE_SCHEMA_VERSION, "names": ["glucose_now"]}
    with pytest.raises(FeatureSchemaMismatch):
        GlucoseForecaster.from_files({**files, "manifest.json": json.dumps(manifest).encode()})


def test_predict_many_matches_single_predictions_and_returns_errors_in_place(trained, person):
    as_ofs = [person["time"].iloc[i] for i in (-1, -50, -300)]
    items = [(person, t) for t in as_ofs] + [(person.iloc[:3], None)]
    results = trained.forecaster.predict_many(items, horizons=[60, 180], tz=TZ)
    assert isinstance(results[-1], NotEnoughReadings)
    for t, res in zip(as_ofs, results):
        assert res.points == trained.forecaster.predict(person, as_of=t, horizons=[60, 180], tz=TZ).points


def test_input_errors(trained, person):
    f = trained.forecaster
    with pytest.raises(NotEnoughReadings, match="no glucose readings"):
        f.predict(person.iloc[:0])
    with pytest.raises(StaleReadings, match="older than"):
        f.predict(person, as_of=person["time"].iloc[-1] + pd.Timedelta(minutes=31))
    with pytest.raises(NotEnoughReadings, match="120 minutes"):
        f.predict(person.iloc[:10])
    gappy = person.drop(person.index[-20:-12])
    with pytest.raises(NotEnoughReadings):
        f.predict(gappy)
    with pytest.raises(ValueError, match="multiple of 5"):
        f.predict(person, horizons=[7])
    with pytest.raises(ValueError, match="1440"):
        f.predict(person, horizons=[1445])
    with pytest.raises(ValueError, match="at least one horizon"):
        f.predict(person, horizons=[])


def test_single_forecast_is_fast_after_a_fast_load(trained, person):
    files = trained.forecaster.to_files()
    started = time.perf_counter()
    loaded = GlucoseForecaster.from_files(files)
    load_s = time.perf_counter() - started
    recent = person.iloc[-40:]
    loaded.predict(recent, horizons=HORIZONS, tz=TZ)
    started = time.perf_counter()
    for _ in range(20):
        loaded.predict(recent, horizons=HORIZONS, tz=TZ)
    per_call = (time.perf_counter() - started) / 20
    # generous bounds for a loaded CI machine; bench/accuracy.py prints the real figures
    assert load_s < 0.5 and per_call < 0.1


def test_insufficient_data_is_refused_with_the_measured_numbers():
    short = synthetic_person(days=2.5, seed=1)
    with pytest.raises(InsufficientData) as info:
        train_forecaster(short)
    assert info.value.reason == "insufficient_data"
    assert info.value.figures["span_days"] < 3 and info.value.figures["n_observed"] == len(short)
    sparse = synthetic_person(days=4, seed=1).iloc[::3]  # 4 days but a third of the readings
    with pytest.raises(InsufficientData, match="readings"):
        train_forecaster(sparse)


def test_baseline_forecaster_needs_no_training():
    person = synthetic_person(days=1, seed=2)
    forecast = BaselineForecaster().predict(person, horizons=[5, 60, 120, 720])
    assert forecast.method == "ar2_baseline"
    widths = [p["upper_95"] - p["lower_95"] for p in forecast.points]
    assert widths == sorted(widths)
    for p in forecast.points:
        assert 40 <= p["lower_95"] <= p["lower_80"] <= p["value"] <= p["upper_80"] <= p["upper_95"] <= 400


def test_the_test_period_never_influences_the_evaluated_model(person):
    """Perturbing every reading in the test period leaves the held-out model unchanged."""
    # A budget no run reaches, so both runs make the same (time-dependent) choices.
    first = train_forecaster(person, tz=TZ, time_budget_s=120)
    start, _ = first.test_period
    changed = person.copy()
    in_test = changed["time"] >= start
    changed.loc[in_test, "glucose_mg_dl"] = 400 - changed.loc[in_test, "glucose_mg_dl"] * 0.5
    again = train_forecaster(changed, tz=TZ, time_budget_s=120)
    assert again.test_period[0] == start
    assert again.hyperparameters["blend_weights"] == first.hyperparameters["blend_weights"]
    as_of = start - pd.Timedelta(minutes=150)
    a = first.evaluated_forecaster.predict(person, as_of=as_of, horizons=[30, 60, 120], tz=TZ)
    b = again.evaluated_forecaster.predict(person, as_of=as_of, horizons=[30, 60, 120], tz=TZ)
    assert a.points == b.points


def test_a_restricted_candidate_set_trains_and_round_trips(person):
    result = train_forecaster(person, tz=TZ, candidates=("persistence", "ar2", "ridge_ar2"))
    assert set(result.hyperparameters["candidates"]) <= {"persistence", "ar2", "ridge_ar2"}
    loaded = GlucoseForecaster.from_files(result.forecaster.to_files())
    a = result.forecaster.predict(person, horizons=[15, 60, 300], tz=TZ)
    assert loaded.predict(person, horizons=[15, 60, 300], tz=TZ).points == a.points


def test_concurrent_forecasts_from_one_loaded_model_do_not_mix(trained, person):
    """A served model is shared by threads; its small per-forecast caches must not leak across."""
    from concurrent.futures import ThreadPoolExecutor

    model = GlucoseForecaster.from_files(trained.forecaster.to_files())
    as_ofs = [person["time"].iloc[-i] for i in range(1, 200, 7)]
    expected = {t: model.predict(person, as_of=t, horizons=[30, 60], tz=TZ).points for t in as_ofs}
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(lambda t: (t, model.predict(person, as_of=t, horizons=[30, 60], tz=TZ).points),
                            as_ofs * 4))
    assert all(points == expected[t] for t, points in got)
