"""The synthetic CGM generator: realistic enough, deterministic, within sensor limits, ends at `end`."""

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from observations.insights import agp_profile, anomaly_flags, consensus_metrics, pattern_statements
from observations.synthetic import generate_cgm

END = datetime(2026, 3, 30, 12, 0, tzinfo=timezone.utc)
TZ = "Europe/Berlin"


@pytest.fixture(scope="module")
def fortnights():
    return {profile: [generate_cgm(14, seed=seed, end=END, profile=profile) for seed in range(8)]
            for profile in ("t2d", "t1d")}


def cv(frame):
    values = frame["glucose_mg_dl"]
    return 100 * values.std() / values.mean()


def test_columns_types_and_order():
    frame = generate_cgm(2, seed=1, end=END)
    assert list(frame.columns) == ["time", "glucose_mg_dl"]
    assert str(frame["time"].dt.tz) == "UTC"
    assert frame["time"].is_monotonic_increasing and frame["time"].is_unique
    assert frame["glucose_mg_dl"].dtype == float
    assert (frame["glucose_mg_dl"] == frame["glucose_mg_dl"].round()).all()  # whole mg/dL like devices


def test_ends_exactly_at_end_and_spans_the_days():
    frame = generate_cgm(14, seed=3, end=END)
    assert frame["time"].iloc[-1] == pd.Timestamp(END)
    assert frame["time"].iloc[0] >= pd.Timestamp(END) - timedelta(days=14, minutes=1)
    assert frame["time"].iloc[0] <= pd.Timestamp(END) - timedelta(days=13, hours=20)
    # the last 30 minutes are complete
    tail = frame[frame["time"] > pd.Timestamp(END) - timedelta(minutes=30)]
    assert len(tail) == 6


def test_end_in_another_zone_is_the_same_instant():
    berlin_end = END.astimezone(pd.Timestamp(END).tz_convert(TZ).tzinfo)
    frame = generate_cgm(1, seed=0, end=berlin_end)
    assert frame["time"].iloc[-1] == pd.Timestamp(END)


def test_default_end_is_now():
    frame = generate_cgm(0.5, seed=0)
    assert abs(frame["time"].iloc[-1] - pd.Timestamp.now(tz="UTC")) < pd.Timedelta(minutes=1)


def test_deterministic_for_a_seed():
    a = generate_cgm(14, seed=42, end=END)
    b = generate_cgm(14, seed=42, end=END)
    c = generate_cgm(14, seed=43, end=END)
    pd.testing.assert_frame_equal(a, b)
    assert not a["glucose_mg_dl"].equals(c["glucose_mg_dl"])


def test_sampling_is_five_minutes_with_jitter_dropouts_and_gaps():
    frame = generate_cgm(14, seed=5, end=END)
    minutes = frame["time"].diff().dt.total_seconds().dropna() / 60
    assert minutes.median() == pytest.approx(5, abs=0.1)
    assert minutes.between(4.8, 5.2).mean() > 0.9
    assert (minutes.round(6) != 5).mean() > 0.5  # seconds of jitter, not an exact grid
    assert (minutes > 7).sum() >= 5  # short dropouts
    assert (minutes >= 55).sum() >= 1  # a sensor warm-up or longer gap
    assert 0.9 < len(frame) / (14 * 288) < 0.995


def test_values_respect_sensor_limits(fortnights):
    for frame in fortnights["t1d"] + fortnights["t2d"]:
        assert frame["glucose_mg_dl"].between(40, 400).all()


def test_t2d_is_like_the_real_data(fortnights):
    means = [frame["glucose_mg_dl"].mean() for frame in fortnights["t2d"]]
    cvs = [cv(frame) for frame in fortnights["t2d"]]
    assert 135 <= np.median(means) <= 165
    assert all(115 <= mean <= 190 for mean in means)
    assert 20 <= np.median(cvs) <= 30
    # consecutive changes like a real sensor (the Broll data: SD 4-7 mg/dL per 5 minutes)
    steps = fortnights["t2d"][0]["glucose_mg_dl"].diff().std()
    assert 3 <= steps <= 9


def test_t1d_is_more_variable_than_t2d(fortnights):
    t1d_cvs = [cv(frame) for frame in fortnights["t1d"]]
    t2d_cvs = [cv(frame) for frame in fortnights["t2d"]]
    assert np.median(t1d_cvs) > np.median(t2d_cvs) + 5
    assert 30 <= np.median(t1d_cvs) <= 45
    below_70 = [(frame["glucose_mg_dl"] < 70).mean() for frame in fortnights["t1d"]]
    assert np.median(below_70) > 0.01


def test_daily_rhythm_dawn_and_meals_show_in_the_agp(fortnights):
    frame = pd.concat(fortnights["t2d"], ignore_index=True)
    median = agp_profile(frame, TZ, bin_minutes=60).set_index("time_of_day")["p50"]
    assert median["06:00"] > median["03:00"] + 10  # dawn phenomenon
    assert median["08:00"] > median["06:00"] + 10  # after breakfast
    assert median["20:00"] > median["17:00"] + 10  # after dinner


def test_the_insights_find_the_built_in_patterns(fortnights):
    found = set()
    for frame in fortnights["t2d"]:
        found |= {statement["code"] for statement in pattern_statements(frame, TZ)}
    assert {"early_morning_rise", "higher_after_breakfast", "higher_after_dinner"} <= found


def test_compression_lows_are_optional(fortnights):
    with_lows = sum(flag["kind"] == "compression_low" for frame in fortnights["t2d"]
                    for flag in anomaly_flags(frame, TZ))
    without = sum(flag["kind"] == "compression_low" for seed in range(8)
                  for flag in anomaly_flags(generate_cgm(14, seed=seed, end=END, compression_lows=False), TZ))
    assert with_lows >= 3
    assert without == 0


def test_consensus_metrics_on_a_synthetic_fortnight_are_sufficient(fortnights):
    metrics = consensus_metrics(fortnights["t2d"][0], END - timedelta(days=14), END, tz=TZ)
    assert metrics["sufficient_data"] is True
    assert 90 <= metrics["active_percent"] <= 100


def test_other_zone_and_dst_are_handled():
    frame = generate_cgm(3, seed=0, end=datetime(2026, 11, 2, 18, 0, tzinfo=timezone.utc), tz="America/New_York")
    assert frame["time"].is_monotonic_increasing
    median = agp_profile(frame, "America/New_York", bin_minutes=60)
    assert median["n"].sum() == len(frame)


@pytest.mark.parametrize("kwargs, message", [
    ({"profile": "t3d"}, "profile"),
    ({"days": 0}, "days"),
    ({"end": datetime(2026, 3, 30, 12, 0)}, "timezone-aware"),
])
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate_cgm(**kwargs)
