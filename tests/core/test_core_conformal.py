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


def test_mondrian_bands_cover_each_glucose_range_where_pooled_ones_starve_the_high_one():
    """Errors twice as wide above 180 mg/dL as in range, with the high rows a minority: pooled
    quantiles under-cover the high range and over-cover the rest; per-range quantiles cover
    each at the nominal level, and survive the round trip through the stored dict."""
    rng = np.random.default_rng(7)
    n = 6000
    X = np.zeros((3 * n, len(feature_names())))
    X[:, feature_names().index("glucose_now")] = np.where(rng.uniform(size=3 * n) < 0.15, 250.0, 120.0)
    high = X[:, 0] >= 180
    residual = rng.normal(size=(3 * n, len(HORIZONS))) * np.where(high, 20.0, 6.0)[:, None]
    cal, test = slice(n, 2 * n), slice(2 * n, None)
    pooled = ConformalIntervals(normalized=False, drift_factor=1.0).calibrate(X[cal], residual[cal])
    mondrian = ConformalIntervals(normalized=False, drift_factor=1.0, range_by="now").calibrate(X[cal], residual[cal])
    assert mondrian.range_counts[2, 11] == int(high[cal].sum())
    again = ConformalIntervals.from_dict(mondrian.to_dict())
    zero = np.zeros((n, len(HORIZONS)))
    for name, intervals, close in (("pooled", pooled, False), ("mondrian", mondrian, True), ("again", again, True)):
        bands = intervals.bands(X[test], zero)
        inside = (residual[test] >= bands["lower_80"]) & (residual[test] <= bands["upper_80"])
        for rows in (high[test], ~high[test]):
            if close:
                assert inside[rows].mean() == pytest.approx(0.80, abs=0.03), name
            else:
                assert abs(inside[rows].mean() - 0.80) > 0.05, name


def test_a_thin_range_leans_on_the_pooled_quantiles():
    rng = np.random.default_rng(3)
    X = np.zeros((400, len(feature_names())))
    X[:, 0] = 120.0
    X[:5, 0] = 60.0  # five low rows: too few for a quantile of their own
    residual = rng.normal(size=(400, len(HORIZONS))) * 5
    intervals = ConformalIntervals(normalized=False, drift_factor=1.0, range_by="now").calibrate(X, residual)
    table = intervals.effective_quantiles("upper_80")
    assert np.allclose(table[0], intervals.quantiles["upper_80"])  # below 70: the pooled quantile
    weight = intervals.range_counts[1, 0] / (intervals.range_counts[1, 0] + 100.0)
    assert table[1, 0] == pytest.approx(
        weight * intervals.range_quantiles["upper_80"][1, 0] + (1 - weight) * intervals.quantiles["upper_80"][0]
    )
