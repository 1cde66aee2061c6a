import numpy as np
import pandas as pd
import pytest

from mlmodels.core.preparation import prepare_grid
from mlmodels.core.profile import TimeOfDayProfile
from tests.core.synthetic import synthetic_person

TZ = "America/New_York"


@pytest.fixture(scope="module")
def profile():
    grid = prepare_grid(synthetic_person(days=14, seed=5, tz=TZ))
    return TimeOfDayProfile().fit(grid, TZ)


def test_profile_follows_the_local_meal_rhythm(profile):
    # synthetic meals peak ~45 min after 08:00, 13:00 and 19:00 local time
    assert profile.median_at(np.array([19 * 60 + 45]))[0] > profile.median_at(np.array([3 * 60]))[0] + 30
    q = profile.quantiles
    assert (np.diff(q, axis=1) >= 0).all()  # quantiles ordered in every bin
    # circular: just before and just after midnight are close
    assert abs(profile.median_at(np.array([1439.0]))[0] - profile.median_at(np.array([0.0]))[0]) < 1.0


def test_long_forecast_decays_into_the_profile_and_never_narrows(profile):
    origin = pd.Timestamp("2024-03-20 07:00", tz=TZ).tz_convert("UTC")
    value_120 = np.array([250.0])
    bands_120 = {"lower_80": np.array([230.0]), "upper_80": np.array([265.0]),
                 "lower_95": np.array([220.0]), "upper_95": np.array([280.0])}
    horizons = [125, 180, 360, 720, 1440]
    out = profile.extend(np.array([origin.value]), value_120, bands_120, horizons, TZ)
    minutes = (origin.tz_convert(TZ).hour * 60 + np.array(horizons)) % 1440
    gap = np.abs(out["value"][0] - profile.median_at(minutes))
    assert gap[0] > gap[-1] and gap[-1] < 1.0  # far ahead: the profile median
    width = out["upper_80"][0] - out["lower_80"][0]
    assert (width >= (265 - 230) - 1e-9).all()
    assert (out["upper_95"] >= out["upper_80"]).all() and (out["lower_95"] <= out["lower_80"]).all()


def test_profile_round_trip_and_time_constant_in_range(profile):
    again = TimeOfDayProfile.from_dict(profile.to_dict())
    minutes = np.arange(0, 1440, 7.0)
    assert again.median_at(minutes) == pytest.approx(profile.median_at(minutes), abs=1e-3)
    assert 30 <= profile.tau_min <= 480
