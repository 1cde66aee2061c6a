"""Release 3: the person's recorded past treatments as inputs, beside the glucose-only candidates."""

import numpy as np
import pandas as pd
import pytest

from mlmodels.core.evaluation import decide
from mlmodels.core.forecaster import GlucoseForecaster
from mlmodels.core.schemas import Release3Features, load_prior
from mlmodels.core.training import evaluate_on, train_forecaster
from mlmodels.core.treatments import Treatments, exponential_iob, linear_cob
from tests.core.synthetic import synthetic_person

MIN = 60 * 10**9


def treated_person(days: float, seed: int = 0):
    """Glucose moved by recorded meals (+3 mg/dL per absorbed gram, 2-hour linear absorption)
    and boluses (-40 mg/dL per unit as it acts), at irregular times, on a synthetic person."""
    rng = np.random.default_rng(seed)
    base = synthetic_person(days, seed=seed)
    t = base["time"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    n_meals = int(days * 3)
    meal_ns = np.sort(t[0] + rng.integers(0, int(days * 1440), n_meals) * MIN)
    grams = rng.uniform(20, 80, n_meals)
    bolus_ns = meal_ns + rng.integers(-10, 20, n_meals) * MIN
    units = grams / rng.uniform(8, 14, n_meals)
    effect = np.zeros(len(t))
    for when, g in zip(meal_ns, grams):
        effect += 3.0 * g * (1 - linear_cob((t - when) / MIN, 120.0)) * (t >= when)
    for when, u in zip(bolus_ns, units):
        effect -= 40.0 * u * (1 - exponential_iob((t - when) / MIN, 75.0, 360.0)) * (t >= when)
    readings = base.assign(glucose_mg_dl=np.clip(110 + (base["glucose_mg_dl"] - 110) * 0.3 + effect, 40, 400).round())
    tr = Treatments(insulin_ns=bolus_ns, insulin_units=units, carbs_ns=meal_ns, carbs_g=grams)
    return readings, tr


@pytest.fixture(scope="module")
def prior():
    return load_prior()


@pytest.fixture(scope="module")
def trained(prior):
    readings, tr = treated_person(4, seed=5)
    r3 = train_forecaster(readings, time_budget_s=8.0, prior=prior, treatments=tr)
    r2 = train_forecaster(readings, time_budget_s=8.0, prior=prior)
    return readings, tr, r3, r2


def test_release_3_learns_from_recorded_treatments_and_beats_release_2_where_they_drive_glucose(trained):
    readings, tr, r3, r2 = trained
    assert r3.feature_schema["version"] == 3
    assert "ridge_treatments" in r3.hyperparameters["candidates"] or "xgboost_treatments" in r3.hyperparameters["candidates"]
    assert r3.forecaster.uses_treatments
    # the deploy rule on release 2's own held-out period: release 3 is better
    start, end = r2.test_period
    own = evaluate_on(r3.evaluated_forecaster, readings, start, end, horizons=[30, 60])
    ref = evaluate_on(r2.evaluated_forecaster, readings, start, end, horizons=[30, 60])
    assert decide(own, ref)["better"]
    assert own["summary"]["model"]["mae_60"] < 0.97 * ref["summary"]["model"]["mae_60"]


def test_release_3_round_trips_and_serves_from_the_treatments_passed_at_forecast_time(trained):
    readings, tr, r3, _ = trained
    loaded = GlucoseForecaster.from_files(r3.forecaster.to_files())
    assert isinstance(loaded.features, Release3Features) and loaded.features.treatments is None
    assert loaded.features.reference_basal_u_h == r3.forecaster.features.reference_basal_u_h
    as_of = readings["time"].iloc[-60]
    past = tr.before(as_of.value)
    a = r3.forecaster.predict(readings, as_of=as_of, horizons=[30, 60], treatments=past)
    b = loaded.predict(readings, as_of=as_of, horizons=[30, 60], treatments=past)
    assert a.points == b.points
    # treatments after the origin change nothing (only past records are inputs)
    c = loaded.predict(readings, as_of=as_of, horizons=[30, 60], treatments=tr)
    assert c.points == b.points
    # without the records the same model still answers (a person who stopped logging)
    d = loaded.predict(readings, as_of=as_of, horizons=[30, 60], treatments=None)
    assert len(d.points) == 2


def test_release_3_without_any_treatments_is_no_worse_than_release_2(prior):
    """Someone who logs nothing: the treatment candidates see zeros, the glucose-only ones stay."""
    readings = synthetic_person(3, seed=8)
    r3 = train_forecaster(readings, time_budget_s=6.0, prior=prior, treatments=Treatments())
    r2 = train_forecaster(readings, time_budget_s=6.0, prior=prior)
    start, end = r2.test_period
    own = evaluate_on(r3.evaluated_forecaster, readings, start, end, horizons=[30, 60])
    ref = evaluate_on(r2.evaluated_forecaster, readings, start, end, horizons=[30, 60])
    assert own["summary"]["model"]["mae_60"] <= 1.02 * ref["summary"]["model"]["mae_60"]
    assert not r3.forecaster.uses_treatments or r3.forecaster.model.weights.max() > 0
