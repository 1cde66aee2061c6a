import numpy as np
import pandas as pd
import pytest

from mlmodels.core.preparation import data_sufficiency, prepare_grid
from tests.core.synthetic import series


def test_gap_of_20_minutes_is_bridged_linearly():
    # 100 at 08:00, then nothing until 08:20 (three slots missing) -> bridged
    readings = series([100, None, None, None, 140])
    grid = prepare_grid(readings)
    assert grid["glucose_mg_dl"].tolist() == [100, 110, 120, 130, 140]
    assert grid["observed"].tolist() == [True, False, False, False, True]
    assert grid["interpolated"].tolist() == [False, True, True, True, False]


def test_gap_longer_than_20_minutes_stays_missing():
    readings = series([100, None, None, None, None, 150, 155])
    grid = prepare_grid(readings)
    values = grid["glucose_mg_dl"].to_numpy()
    assert len(grid) == 7
    assert np.isnan(values[1:5]).all()
    assert not grid["interpolated"].any()
    assert values[5] == 150


def test_times_are_rounded_to_a_grid_aligned_to_the_data_and_duplicates_averaged():
    times = pd.to_datetime(
        ["2024-01-01 08:02:27", "2024-01-01 08:07:28", "2024-01-01 08:07:40", "2024-01-01 08:12:26"], utc=True
    )
    grid = prepare_grid(pd.DataFrame({"time": times, "glucose_mg_dl": [100.0, 104.0, 106.0, 110.0]}))
    assert len(grid) == 3
    assert grid["glucose_mg_dl"].tolist() == [100.0, 105.0, 110.0]
    # the grid sits on the readings' own offset (about hh:m2:27), not on the wall clock
    assert grid.index[0].minute == 2 and 20 <= grid.index[0].second <= 35


def test_entered_in_error_rows_are_dropped_and_sensor_limits_flagged():
    readings = series([39, 100, 400, 120])
    readings["status"] = ["final", "entered-in-error", "final", "final"]
    grid = prepare_grid(readings)
    assert grid["observed"].tolist() == [True, False, True, True]
    assert grid["interpolated"].tolist() == [False, True, False, False]  # 5-minute hole bridged
    assert grid["at_sensor_limit"].tolist() == [True, False, True, False]


def test_source_sensor_limit_flag_is_kept():
    readings = series([100, 110])
    readings["at_sensor_limit"] = [False, True]
    assert prepare_grid(readings)["at_sensor_limit"].tolist() == [False, True]


def test_naive_times_are_refused():
    readings = pd.DataFrame({"time": pd.date_range("2024-01-01", periods=3, freq="5min"), "glucose_mg_dl": 100})
    with pytest.raises(ValueError, match="timezone-aware"):
        prepare_grid(readings)


def test_empty_readings_give_empty_grid_and_zero_sufficiency():
    grid = prepare_grid(pd.DataFrame({"time": pd.to_datetime([], utc=True), "glucose_mg_dl": []}))
    assert grid.empty
    assert data_sufficiency(grid)["n_observed"] == 0


def test_anchor_puts_a_given_time_on_the_grid():
    readings = series([100, 101, 102], start="2024-01-01 08:01:00")
    grid = prepare_grid(readings, anchor=pd.Timestamp("2024-01-01 08:11:00", tz="UTC"))
    assert grid.index[-1] == pd.Timestamp("2024-01-01 08:11:00", tz="UTC")


def test_time_resolution_of_the_input_does_not_matter():
    readings = series([100.0, 101.0, 103.0])
    coarse = readings.assign(time=readings["time"].astype("datetime64[s, UTC]"))
    pd.testing.assert_frame_equal(prepare_grid(readings), prepare_grid(coarse))
