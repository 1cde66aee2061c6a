"""Consensus metrics and AGP against hand-computed values."""

import math

import numpy as np
import pandas as pd
import pytest

from observations.insights import METRIC_KEYS, agp_profile, consensus_metrics, gmi_percent

from .series import at_times, readings

START = pd.Timestamp("2026-01-05 00:00", tz="UTC")

# Every band boundary exactly, one reading each, 5 minutes apart.
BOUNDARY_VALUES = [40, 53, 54, 69, 70, 100, 180, 181, 250, 251]


def metrics_of(values, minutes=None, **kwargs):
    frame = readings(values)
    end = START + pd.Timedelta(minutes=minutes if minutes is not None else 5 * len(values))
    return consensus_metrics(frame, START, end, **kwargs)


def test_band_boundaries_are_treated_as_documented():
    m = metrics_of(BOUNDARY_VALUES)
    # below 54: 40, 53 (54 is not below 54)
    assert m["time_below_54_percent"] == pytest.approx(20.0)
    # below 70 includes below 54: 40, 53, 54, 69 (70 is in range)
    assert m["time_below_70_percent"] == pytest.approx(40.0)
    # in range 70..180 inclusive: 70, 100, 180
    assert m["time_in_range_percent"] == pytest.approx(30.0)
    # above 180 includes above 250: 181, 250, 251
    assert m["time_above_180_percent"] == pytest.approx(30.0)
    # above 250: only 251 (250 is not above 250)
    assert m["time_above_250_percent"] == pytest.approx(10.0)
    assert m["time_in_range_percent"] + m["time_below_70_percent"] + m["time_above_180_percent"] == pytest.approx(100)


def test_mean_gmi_and_count_by_hand():
    m = metrics_of(BOUNDARY_VALUES)
    assert m["n_readings"] == 10
    assert m["mean_mg_dl"] == pytest.approx(1248 / 10)
    assert m["gmi_percent"] == pytest.approx(3.31 + 0.02392 * 124.8)
    assert m["gmi_percent"] == pytest.approx(6.295216)


@pytest.mark.parametrize("mean, gmi", [(100, 5.702), (154, 6.99368), (183, 7.68736)])
def test_gmi_formula(mean, gmi):
    assert gmi_percent(mean) == pytest.approx(gmi)


def test_sd_is_the_sample_sd_and_cv_is_sd_over_mean():
    m = metrics_of([100, 200])
    # mean 150, deviations +-50, sample variance (2500 + 2500) / (2 - 1)
    assert m["mean_mg_dl"] == 150
    assert m["sd_mg_dl"] == pytest.approx(math.sqrt(5000))
    assert m["cv_percent"] == pytest.approx(100 * math.sqrt(5000) / 150)


def test_active_percent_counts_readings_against_the_expected_number():
    # one hour = 12 expected readings at 5 minutes; 9 present
    m = metrics_of([120] * 9, minutes=60)
    assert m["expected_readings"] == 12
    assert m["active_percent"] == pytest.approx(75.0)
    assert m["days_in_period"] == pytest.approx(1 / 24)
    assert m["days_covered"] == pytest.approx(40 / 1440)
    assert m["sufficient_data"] is False


def test_active_percent_never_exceeds_100_and_duplicates_count_once():
    frame = readings([120] * 12)
    frame = pd.concat([frame, frame.iloc[:3]], ignore_index=True)
    m = consensus_metrics(frame, START, START + pd.Timedelta(hours=1))
    assert m["n_readings"] == 12
    assert m["n_left_out"] == 3
    assert m["active_percent"] == pytest.approx(100.0)


def test_non_numeric_values_are_left_out_and_counted():
    frame = readings([120, np.nan, 140, 160])
    m = consensus_metrics(frame, START, START + pd.Timedelta(minutes=20))
    assert m["n_readings"] == 3
    assert m["n_left_out"] == 1
    assert m["mean_mg_dl"] == pytest.approx(140)


def test_period_is_half_open():
    frame = readings([100, 200, 300])  # at 00:00, 00:05, 00:10
    m = consensus_metrics(frame, START, START + pd.Timedelta(minutes=10))
    assert m["n_readings"] == 2
    assert m["mean_mg_dl"] == 150


def test_fourteen_full_days_are_sufficient_thirteen_are_not():
    fourteen = readings([120] * (14 * 288))
    assert consensus_metrics(fourteen, START, START + pd.Timedelta(days=14))["sufficient_data"] is True
    assert consensus_metrics(fourteen, START, START + pd.Timedelta(days=13))["sufficient_data"] is False


def test_days_with_data_uses_the_persons_time_zone():
    # 23:30 and 00:30 UTC on consecutive UTC days are both 5 January in Berlin (UTC+1 in winter)
    frame = at_times([("2026-01-04 23:30", 120), ("2026-01-05 00:30", 130)])
    period = (pd.Timestamp("2026-01-04", tz="UTC"), pd.Timestamp("2026-01-06", tz="UTC"))
    assert consensus_metrics(frame, *period)["days_with_data"] == 2
    assert consensus_metrics(frame, *period, tz="Europe/Berlin")["days_with_data"] == 1


def test_no_readings_gives_none_values_and_a_reason():
    empty = readings([])
    m = consensus_metrics(empty, START, START + pd.Timedelta(days=1))
    assert set(m) == set(METRIC_KEYS)
    assert m["reason"] == "no_readings"
    assert m["n_readings"] == 0
    for key in ("mean_mg_dl", "sd_mg_dl", "cv_percent", "gmi_percent", "time_in_range_percent"):
        assert m[key] is None


def test_readings_outside_the_period_count_as_none():
    m = consensus_metrics(readings([120, 130]), START + pd.Timedelta(days=1), START + pd.Timedelta(days=2))
    assert m["reason"] == "no_readings"
    assert m["active_percent"] == 0.0


def test_single_reading_has_no_sd():
    m = metrics_of([150], minutes=60)
    assert m["mean_mg_dl"] == 150
    assert m["sd_mg_dl"] is None and m["cv_percent"] is None
    assert m["reason"] == "single_reading"


def test_metrics_are_plain_python_numbers():
    m = metrics_of(BOUNDARY_VALUES)
    for key, value in m.items():
        assert value is None or type(value) in (int, float, bool, str), key


@pytest.mark.parametrize(
    "start, end, message",
    [
        (START, START, "end must be after start"),
        (START + pd.Timedelta(hours=1), START, "end must be after start"),
        (START.tz_localize(None), START + pd.Timedelta(hours=1), "start must be timezone-aware"),
    ],
)
def test_bad_period_raises_a_clear_error(start, end, message):
    with pytest.raises(ValueError, match=message):
        consensus_metrics(readings([120]), start, end)


def test_naive_reading_times_and_missing_columns_raise_clear_errors():
    naive = pd.DataFrame({"time": pd.date_range("2026-01-05", periods=3, freq="5min"), "glucose_mg_dl": [1, 2, 3]})
    with pytest.raises(ValueError, match="timezone-aware"):
        consensus_metrics(naive, START, START + pd.Timedelta(hours=1))
    with pytest.raises(ValueError, match="glucose_mg_dl"):
        consensus_metrics(naive[["time"]], START, START + pd.Timedelta(hours=1))


def test_unknown_time_zone_raises():
    with pytest.raises(ValueError, match="time zone"):
        consensus_metrics(readings([120]), START, START + pd.Timedelta(hours=1), tz="Mars/Olympus")


# --- AGP ---------------------------------------------------------------------------------------

def test_agp_percentiles_by_hand():
    # 08:00-08:15 holds 1, 2, 3, 4, 5 (on five days); 13:00-13:15 holds 10 and 20.
    pairs = [(f"2026-01-0{5 + i} 08:0{i}", v) for i, v in enumerate([3, 1, 5, 2, 4])]
    pairs += [("2026-01-05 13:05", 10), ("2026-01-06 13:10", 20)]
    agp = agp_profile(at_times(pairs), "UTC")
    assert len(agp) == 96
    morning = agp.loc[agp["time_of_day"] == "08:00"].iloc[0]
    # linear interpolation at position (n - 1) q: p5 -> 0.2 between 1 and 2, p95 -> 3.8 between 4 and 5
    assert morning["n"] == 5
    assert [morning[p] for p in ("p5", "p25", "p50", "p75", "p95")] == pytest.approx([1.2, 2, 3, 4, 4.8])
    lunch = agp.loc[agp["time_of_day"] == "13:00"].iloc[0]
    assert lunch["n"] == 2
    assert [lunch[p] for p in ("p5", "p25", "p50", "p75", "p95")] == pytest.approx([10.5, 12.5, 15, 17.5, 19.5])
    empty = agp.loc[agp["time_of_day"] == "08:15"].iloc[0]
    assert empty["n"] == 0 and np.isnan(empty["p50"])
    assert agp["n"].sum() == 7


def test_agp_bins_follow_local_clock_time_across_the_spring_dst_change():
    # Berlin, 29 March 2026: 02:00 CET jumps to 03:00 CEST (01:00 UTC).
    pairs = [("2026-03-29 00:30", 100),  # 01:30 CET
             ("2026-03-29 01:30", 200),  # 03:30 CEST
             ("2026-03-30 01:30", 300)]  # 03:30 CEST the next day
    agp = agp_profile(at_times(pairs), "Europe/Berlin", bin_minutes=30).set_index("time_of_day")
    assert agp.loc["01:30", "n"] == 1 and agp.loc["01:30", "p50"] == 100
    assert agp.loc["02:00", "n"] == 0 and agp.loc["02:30", "n"] == 0  # the hour that did not exist
    assert agp.loc["03:30", "n"] == 2 and agp.loc["03:30", "p50"] == 250


def test_agp_repeated_autumn_hour_lands_twice_in_the_same_bins():
    # Berlin, 25 October 2026: 03:00 CEST falls back to 02:00 CET (01:00 UTC).
    pairs = [("2026-10-25 00:30", 100),  # 02:30 CEST
             ("2026-10-25 01:30", 140)]  # 02:30 CET
    agp = agp_profile(at_times(pairs), "Europe/Berlin").set_index("time_of_day")
    assert agp.loc["02:30", "n"] == 2 and agp.loc["02:30", "p50"] == 120


def test_agp_in_a_negative_offset_zone():
    pairs = [("2026-07-01 03:00", 90)]  # 23:00 the day before in New York (EDT, UTC-4)
    agp = agp_profile(at_times(pairs), "America/New_York", bin_minutes=60).set_index("time_of_day")
    assert agp.loc["23:00", "n"] == 1


def test_agp_light_circular_smoothing_wraps_midnight_and_skips_empty_bins():
    pairs = [("2026-01-05 23:50", 100), ("2026-01-05 00:05", 200), ("2026-01-05 00:20", 100),
             ("2026-01-05 12:05", 160)]
    plain = agp_profile(at_times(pairs), "UTC").set_index("time_of_day")
    smooth = agp_profile(at_times(pairs), "UTC", smooth=True).set_index("time_of_day")
    assert plain.loc["00:00", "p50"] == 200
    assert smooth.loc["00:00", "p50"] == pytest.approx((100 + 2 * 200 + 100) / 4)
    assert smooth.loc["23:45", "p50"] == pytest.approx((2 * 100 + 200) / 3)  # 23:30 is empty
    assert smooth.loc["12:00", "p50"] == 160  # both neighbours empty
    assert np.isnan(smooth.loc["06:00", "p50"])


def test_agp_of_no_readings_is_all_empty_bins():
    agp = agp_profile(readings([]), "Europe/Berlin", bin_minutes=60)
    assert len(agp) == 24 and agp["n"].sum() == 0 and agp["p50"].isna().all()


@pytest.mark.parametrize("bin_minutes", [0, 7, -15])
def test_agp_rejects_bins_that_do_not_divide_the_day(bin_minutes):
    with pytest.raises(ValueError, match="bin_minutes"):
        agp_profile(readings([100]), "UTC", bin_minutes=bin_minutes)
