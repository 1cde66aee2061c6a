"""The person's own band calibration (mlmodels/core/personal_bands.py), on synthetic outcomes."""

import numpy as np
import pytest

from mlmodels.core import personal_bands
from mlmodels.core.conformal import ConformalIntervals
from mlmodels.core.features import HORIZONS, feature_names
from mlmodels.core.personal_bands import applied_factors, personal_factors, weighted_quantile


def outcomes(n, *, value, half_width, spread, rng, applied=1.0):
    """Matched points at 30/60/120 min: bands of `half_width`, outcomes value + N(0, spread)."""
    h = np.repeat([30, 60, 120], n)
    v = np.full(len(h), float(value))
    actual = v + rng.normal(0, spread, len(h))
    return {"horizon": h, "age_days": np.tile(np.linspace(0, 5, n), 3), "value": v, "actual": actual,
            "lower_80": v - half_width, "upper_80": v + half_width,
            "lower_95": v - 2 * half_width, "upper_95": v + 2 * half_width,
            "applied_80": np.full(len(h), applied), "applied_95": np.full(len(h), applied)}


def joined(*parts):
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def test_weighted_quantile_is_the_finite_sample_quantile_with_equal_weights():
    values = np.arange(1, 10, dtype=float)
    assert weighted_quantile(values, np.ones(9), 0.9) == 9  # ceil((9+1)*0.9) = 9th
    assert weighted_quantile(values, np.ones(9), 0.5) == 5
    assert weighted_quantile(values, np.ones(9), 0.95) == np.inf


@pytest.mark.parametrize("kind", ["window", "aci"])
def test_factors_narrow_an_over_wide_range_and_widen_a_too_narrow_one(kind):
    rng = np.random.default_rng(1)
    # In range the band is 2x too wide (80% of N(0, 10) lies within 12.8); above 180 too narrow.
    points = joined(outcomes(400, value=130, half_width=25.6, spread=10, rng=rng),
                    outcomes(400, value=250, half_width=12.8, spread=20, rng=rng))
    out = personal_factors(points, kind=kind, prior_points=10)
    f80 = np.asarray(out["factors"]["80"])
    assert out["horizons"] == [30, 60, 120] and out["outcomes_used"] == 2400
    assert out["counts"][1] == [400, 400, 400] and out["counts"][0] == [0, 0, 0]
    assert np.allclose(f80[1], 0.5, atol=0.08) and np.allclose(f80[2], 2.0, atol=0.3)
    assert np.allclose(f80[0], 1.0)  # no outcomes below 70: the training-time band


def test_thin_evidence_keeps_the_training_time_band_and_earlier_factors_are_undone():
    rng = np.random.default_rng(2)
    few = personal_factors(outcomes(12, value=130, half_width=25.6, spread=10, rng=rng), prior_points=60)
    many = personal_factors(outcomes(600, value=130, half_width=25.6, spread=10, rng=rng), prior_points=60)
    assert 0.5 < np.asarray(few["factors"]["80"])[1, 0] < np.asarray(many["factors"]["80"])[1, 0] + 0.5
    assert abs(np.log(np.asarray(few["factors"]["80"])[1, 0])) < abs(np.log(np.asarray(many["factors"]["80"])[1, 0]))
    # Served already narrowed by 0.5 (half-width 12.8): the scores are taken against the
    # training-time band again, so the factor is the same as from the unnarrowed band.
    again = personal_factors(outcomes(600, value=130, half_width=12.8, spread=10, rng=np.random.default_rng(2),
                                      applied=0.5), prior_points=60)
    assert np.asarray(again["factors"]["80"])[1, 0] == pytest.approx(np.asarray(many["factors"]["80"])[1, 0], abs=0.1)
    assert applied_factors(many, np.array([30, 90, 200]), np.array([130.0, 130.0, 130.0]), "80") == pytest.approx(
        [np.asarray(many["factors"]["80"])[1, 0], np.mean(np.asarray(many["factors"]["80"])[1, 1:]),
         np.asarray(many["factors"]["80"])[1, 2]], abs=1e-6)


def test_the_conformal_bands_carry_the_factors_by_range_of_the_forecast_and_round_trip():
    X = np.zeros((2, len(feature_names())))
    X[:, 0] = [120.0, 250.0]
    intervals = ConformalIntervals(normalized=False, drift_factor=1.0).calibrate(
        X.repeat(50, axis=0), np.random.default_rng(0).normal(size=(100, len(HORIZONS))) * 10)
    before = intervals.bands(X, np.zeros((2, len(HORIZONS))))
    intervals.personal = {"horizons": [30, 60], "factors": {"80": [[1, 1], [0.5, 0.5], [2, 2]]}, "outcomes_used": 9}
    after = ConformalIntervals.from_dict(intervals.to_dict()).bands(X, np.zeros((2, len(HORIZONS))))
    j = HORIZONS.index(60)
    assert after["upper_80"][0, j] == pytest.approx(0.5 * before["upper_80"][0, j])
    assert after["upper_80"][1, j] == pytest.approx(2 * before["upper_80"][1, j])
    assert after["upper_95"][0, j] == pytest.approx(before["upper_95"][0, j])  # no 95% factors


def test_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown"):
        personal_factors(outcomes(20, value=130, half_width=10, spread=5, rng=np.random.default_rng(0)), kind="magic")
    assert personal_bands.KIND in personal_bands.KINDS
