"""Each anomaly flag on a constructed series, and silence where there is nothing to flag."""

import re

import numpy as np
import pandas as pd
import pytest

from observations.insights import anomaly_flags

from .series import at_times, daily, readings

TZ = "Europe/Berlin"


def kinds(frame, tz=TZ):
    return [flag["kind"] for flag in anomaly_flags(frame, tz)]


def flags_of(frame, kind, tz=TZ, **kwargs):
    return [flag for flag in anomaly_flags(frame, tz, **kwargs) if flag["kind"] == kind]


def test_clean_regular_series_has_no_flags():
    assert kinds(daily(lambda m, d, w: 130 + 20 * np.sin(2 * np.pi * m / 1440), noise_sd=5)) == []


def test_unusual_day_by_its_mean():
    frame = daily(lambda m, d, w: np.where(d == 6, 220, 140), days=10, noise_sd=8)
    flags = flags_of(frame, "unusual_day")
    assert len(flags) == 1
    flag = flags[0]
    assert flag["params"]["date"] == "2026-01-11"
    assert flag["values"]["statistic"] == "mean"
    assert flag["values"]["robust_z"] > 3.5
    assert flag["start"] == pd.Timestamp("2026-01-11 00:00", tz=TZ)
    assert flag["end"] == pd.Timestamp("2026-01-12 00:00", tz=TZ)
    assert str(flag["start"].tz) == "UTC"
    assert re.fullmatch(r"On 2026-01-11 the average glucose was 2[12]\d mg/dL, far from your typical days "
                        r"\(median 1[34]\d mg/dL\)\.", flag["text"])


def test_unusual_day_by_its_variability():
    swing = lambda m, d, w: 140 + np.where(d == 2, 80 * np.sin(2 * np.pi * m / 180), 0)
    flags = flags_of(daily(swing, days=10, noise_sd=8), "unusual_day")
    assert [f["values"]["statistic"] for f in flags] == ["sd"]
    assert flags[0]["params"]["date"] == "2026-01-07"


def test_ordinary_day_to_day_differences_are_not_unusual():
    # daily means 130..150 in steps of 2: at most ~1.3 robust z with the 5 mg/dL MAD floor
    frame = daily(lambda m, d, w: 130 + 2 * d, days=11, noise_sd=8)
    assert flags_of(frame, "unusual_day") == []


def test_unusual_day_needs_five_typical_days():
    frame = daily(lambda m, d, w: np.where(d == 3, 260, 140), days=4, noise_sd=8)
    assert flags_of(frame, "unusual_day") == []


def test_implausible_jump_above_ten_per_minute():
    frame = readings([120, 122, 200, 198, 196])  # +78 in 5 min = 15.6 mg/dL/min
    flags = flags_of(frame, "implausible_jump", tz="UTC")
    assert len(flags) == 1
    assert flags[0]["values"]["rate_mg_dl_per_min"] == pytest.approx(78 / 5)
    assert flags[0]["start"] == pd.Timestamp("2026-01-05 00:05", tz="UTC")
    assert flags[0]["end"] == pd.Timestamp("2026-01-05 00:10", tz="UTC")
    assert "from 122 mg/dL to 200 mg/dL in 5 minutes" in flags[0]["text"]


def test_fast_but_plausible_change_and_changes_across_gaps_are_not_jumps():
    assert flags_of(readings([120, 160, 200]), "implausible_jump") == []  # 8 mg/dL/min
    exactly_ten = readings([120, 170])  # 50 in 5 min = 10 mg/dL/min, not above it
    assert flags_of(exactly_ten, "implausible_jump") == []
    across_gap = at_times([("2026-01-05 10:00", 100), ("2026-01-05 10:20", 300)])  # not consecutive
    assert flags_of(across_gap, "implausible_jump") == []
    falling = readings([250, 180])  # -14 mg/dL/min counts too
    assert len(flags_of(falling, "implausible_jump")) == 1


def compression_night(start_local: str, nadir: float = 55, recover_to: float = 138) -> pd.DataFrame:
    """Flat 140 for two hours, a drop over 10 minutes, 15 minutes low, back over 10 minutes."""
    shape = [140] * 24 + [110, nadir + 20, nadir, nadir, nadir, nadir + 30, recover_to] + [140] * 24
    return readings(shape, start=start_local, tz=TZ)


def test_compression_low_at_night():
    flags = flags_of(compression_night("2026-01-06 01:00"), "compression_low")
    assert len(flags) == 1
    flag = flags[0]
    assert flag["values"]["low_mg_dl"] == 55
    assert flag["values"]["before_mg_dl"] == 140
    assert flag["values"]["recovered_mg_dl"] == 138
    assert flag["params"]["time"] == "2026-01-06 03:10"
    assert flag["start"] < pd.Timestamp("2026-01-06 03:10", tz=TZ) < flag["end"]
    assert "dropped sharply from 140 mg/dL to 55 mg/dL" in flag["text"]


def test_the_same_shape_in_the_afternoon_is_not_a_compression_low():
    assert flags_of(compression_night("2026-01-06 13:00"), "compression_low") == []


def test_a_low_that_stays_low_is_not_a_compression_low():
    shape = [140] * 24 + [110, 80, 60] + [60] * 24
    assert flags_of(readings(shape, start="2026-01-06 01:00", tz=TZ), "compression_low") == []


def test_a_gentle_dip_is_not_a_compression_low():
    # from 100 to 65: a drop of 35 < 40
    shape = [100] * 24 + [90, 75, 65, 65, 65, 80, 98] + [100] * 24
    assert flags_of(readings(shape, start="2026-01-06 01:00", tz=TZ), "compression_low") == []


def test_compression_low_uses_local_night_not_utc():
    frame = compression_night("2026-01-06 01:00")  # the low at 03:10 Berlin = 02:10 UTC
    assert len(flags_of(frame, "compression_low", tz="UTC")) == 1
    assert flags_of(frame, "compression_low", tz="America/New_York") == []  # 21:10 the evening before


def test_long_gap_over_two_hours():
    frame = at_times([("2026-01-05 10:00", 120), ("2026-01-05 12:05", 130), ("2026-01-05 14:00", 140),
                      ("2026-01-05 16:00", 150)])
    flags = flags_of(frame, "long_gap", tz="UTC")
    assert len(flags) == 1  # 1 h 55 and exactly 2 h are not over 2 hours
    assert flags[0]["start"] == pd.Timestamp("2026-01-05 10:00", tz="UTC")
    assert flags[0]["end"] == pd.Timestamp("2026-01-05 12:05", tz="UTC")
    assert flags[0]["text"] == "No readings for 2 h 5 min, from 2026-01-05 10:00 to 2026-01-05 12:05."


def test_long_gap_times_are_shown_in_local_time():
    frame = at_times([("2026-01-05 10:00", 120), ("2026-01-05 13:00", 130)])
    flag = flags_of(frame, "long_gap")[0]
    assert flag["params"]["start"] == "2026-01-05 11:00"  # Berlin is UTC+1 in January


def test_sensor_limits_group_consecutive_readings():
    frame = readings([100, 60, 40, 40, 40, 70, 200, 400, 400, 300, 41, 399])
    flags = flags_of(frame, "sensor_limit", tz="UTC")
    assert [(f["values"]["side"], f["values"]["count"]) for f in flags] == [("low", 3), ("high", 2)]
    assert flags[0]["start"] == pd.Timestamp("2026-01-05 00:10", tz="UTC")
    assert flags[0]["end"] == pd.Timestamp("2026-01-05 00:20", tz="UTC")
    assert flags[0]["text"] == ("Readings at the sensor's lower limit (40 mg/dL) from 2026-01-05 00:10 to "
                                "2026-01-05 00:20; the actual values may have been lower.")


def test_sensor_limit_runs_split_at_gaps_and_beyond_limit_values_count():
    frame = at_times([("2026-01-05 10:00", 400), ("2026-01-05 10:30", 400), ("2026-01-05 10:35", 420)])
    flags = flags_of(frame, "sensor_limit", tz="UTC")
    assert [f["values"]["count"] for f in flags] == [1, 2]
    assert flags[0]["text"] == ("A reading at the sensor's upper limit (400 mg/dL) at 2026-01-05 10:00; "
                                "the actual value may have been higher.")


def test_flags_are_sorted_by_start_and_fully_described():
    frame = readings([40, 40, 48, 120, 121] + [150] * 30)
    frame = pd.concat([frame, at_times([("2026-01-05 06:00", 150)])], ignore_index=True)
    flags = anomaly_flags(frame, "UTC")
    assert [f["kind"] for f in flags] == ["sensor_limit", "implausible_jump", "long_gap"]
    for flag in flags:
        assert {"kind", "code", "start", "end", "template", "params", "text", "values"} <= set(flag)
        assert flag["template"] % flag["params"] == flag["text"]
        assert flag["start"] <= flag["end"]


def test_flags_in_mmol_per_litre():
    flag = flags_of(readings([120, 122, 200]), "implausible_jump", unit="mmol/L")[0]
    assert flag["params"]["after"] == "11.1 mmol/L"
    assert "faster than 0.6 mmol/L per minute" in flag["text"]


def test_no_readings_no_flags_and_bad_arguments_raise():
    assert anomaly_flags(readings([]), TZ) == []
    with pytest.raises(ValueError, match="time zone"):
        anomaly_flags(readings([]), "Nowhere/Atlantis")
    with pytest.raises(ValueError, match="unit"):
        anomaly_flags(readings([100]), TZ, unit="mg")


def test_unusual_day_with_fifteen_minute_sensor_data():
    frame = daily(lambda m, d, w: np.where(d == 6, 220, 140), days=10, noise_sd=8).iloc[::3]
    assert [f["params"]["date"] for f in flags_of(frame, "unusual_day")] == ["2026-01-11"]
