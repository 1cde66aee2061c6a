import numpy as np
import pytest

from mlmodels.core.conformal import ConformalIntervals, finite_sample_quantile
from mlmodels.core.features import HORIZONS, feature_names


def _features(n, rng):
    X = np.zeros((n, len(feature_names())))
    X[:, feature_names().index("glucose_now")] = rng.uniform(70, 250, n)
    X[:, feature_names().index("rate_15min")] = rng.normal(0, 1.0, n)
    X[:, feature_names().index("std_30min")] = rng.uniform(1, 10, n)
    return X


def test_finite_sample_quantile_uses_the_ceil_rule():
    values = np.arange(1, 10, dtype=float)  # n = 9; (n+1)*0.9 = 9 -> 9th smallest
    assert finite_sample_quantile(values, 0.9, "upper") == 9
    assert finite_sample_quantile(values, 0.1, "lower") == 1
    assert finite_sample_quantile(values, 0.5, "upper") == 5


@pytest.mark.parametrize("normalized", [False, True])
def test_bands_reach_nominal_coverage_on_exchangeable_synthetic_errors(normalized):
    rng = np.random.default_rng(42)
    n = 3000
    X = _features(3 * n, rng)
    # errors that grow with the movement: what normalised conformal is meant for
    sd = 3 + 4 * np.abs(X[:, feature_names().index("rate_15min")])
    residual = rng.normal(size=(3 * n, len(HORIZONS))) * sd[:, None] * np.sqrt(np.arange(1, 25))[None, :]
    intervals = ConformalIntervals(normalized=normalized, drift_factor=1.0)
    intervals.fit_difficulty(X[:n], residual[:n]).calibrate(X[n: 2 * n], residual[n: 2 * n])
    bands = intervals.bands(X[2 * n:], np.zeros((n, len(HORIZONS))))
    outcome = residual[2 * n:]
    for tag, nominal in (("80", 0.80), ("95", 0.95)):
        inside = (outcome >= bands[f"lower_{tag}"]) & (outcome <= bands[f"upper_{tag}"])
        assert inside.mean() == pytest.approx(nominal, abs=0.02)
    if normalized:  # bands are wider when glucose moves fast
        width = bands["upper_80"][:, 11] - bands["lower_80"][:, 11]
        fast = np.abs(X[2 * n:, feature_names().index("rate_15min")]) > 1.5
        assert width[fast].mean() > 1.5 * width[~fast].mean()


def test_round_trip_through_dict():
    rng = np.random.default_rng(1)
    X = _features(500, rng)
    residual = rng.normal(size=(500, len(HORIZONS)))
    intervals = ConformalIntervals().fit_difficulty(X, residual).calibrate(X, residual)
    again = ConformalIntervals.from_dict(intervals.to_dict())
    change = rng.normal(size=(500, len(HORIZONS)))
    for key, value in intervals.bands(X, change).items():
        assert again.bands(X, change)[key] == pytest.approx(value)
