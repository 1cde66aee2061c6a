import math

import numpy as np
import pytest

from mlmodels.core.estimators import (
    AR2Forecaster,
    BlendForecaster,
    PersistenceForecaster,
    RidgeForecaster,
    ar2_path,
    nonnegative_simplex_weights,
)
from mlmodels.core.features import HORIZONS, build_features, build_targets, feature_names
from mlmodels.core.preparation import prepare_grid
from tests.core.synthetic import synthetic_person


def test_ar2_matches_hand_computed_nightscout_steps():
    # prev = ln(140/140) = 0, curr = ln(150/140) = 0.0689929
    # step 1: -0.723*0 + 1.716*0.0689929 = 0.1183918 -> 140*e^0.1183918 = 157.595
    # step 2: -0.723*0.0689929 + 1.716*0.1183918 = 0.1532756 -> 140*e^0.1532756 = 163.190
    path = ar2_path(np.array([150.0]), np.array([140.0]), 2)[0]
    assert path[0] == pytest.approx(157.595, abs=1e-3)
    assert path[1] == pytest.approx(163.190, abs=1e-3)
    assert path[0] == pytest.approx(140 * math.exp(1.716 * math.log(150 / 140)))


def test_ar2_is_clamped_and_flat_at_the_reference():
    assert ar2_path(np.array([140.0]), np.array([140.0]), 24) == pytest.approx(np.full((1, 24), 140.0))
    assert ar2_path(np.array([400.0]), np.array([300.0]), 24).max() == 400.0


def test_ar2_forecaster_reads_its_inputs_from_the_features():
    X = np.zeros((1, len(feature_names())))
    X[0, feature_names().index("glucose_now")] = 150
    X[0, feature_names().index("lag_5min")] = -10
    change = AR2Forecaster().predict(X)
    assert change.shape == (1, len(HORIZONS))
    assert change[0, 0] == pytest.approx(157.595 - 150, abs=1e-3)


def test_simplex_weights_recover_a_known_mixture():
    rng = np.random.default_rng(0)
    P = rng.normal(size=(500, 3))
    y = 0.7 * P[:, 0] + 0.3 * P[:, 2]
    w = nonnegative_simplex_weights(P, y)
    assert w == pytest.approx([0.7, 0.0, 0.3], abs=1e-3)
    shrunk = nonnegative_simplex_weights(P, y, prior=np.full(3, 1 / 3), prior_rows=1e6)
    assert shrunk == pytest.approx([1 / 3] * 3, abs=0.05)


def test_ridge_beats_persistence_and_contributions_add_up():
    grid = prepare_grid(synthetic_person(days=3, seed=1))
    X = build_features(grid).to_numpy()
    Y = build_targets(grid).to_numpy()
    ok = np.isfinite(X).all(axis=1) & np.isfinite(Y).all(axis=1)
    X, Y = X[ok], Y[ok]
    half = len(X) // 2
    ridge = RidgeForecaster().fit(X[:half], Y[:half], X[half:], Y[half:])
    err_ridge = np.abs(ridge.predict(X[half:]) - Y[half:])[:, 5].mean()
    err_persist = np.abs(PersistenceForecaster().predict(X[half:]) - Y[half:])[:, 5].mean()
    assert err_ridge < err_persist
    j = HORIZONS.index(60)
    contrib = ridge.contributions(X[:5], j)
    assert contrib.sum(axis=1) + ridge._intercept[j] == pytest.approx(ridge.predict(X[:5])[:, j])
    blend = BlendForecaster([PersistenceForecaster(), ridge], np.tile([0.5, 0.5], (len(HORIZONS), 1)))
    assert blend.predict(X[:5]) == pytest.approx(0.5 * ridge.predict(X[:5]))
    assert blend.contributions(X[:5], j) == pytest.approx(0.5 * contrib)
