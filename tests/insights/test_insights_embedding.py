"""Window embeddings: shape, invariances, and which windows are produced."""

from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from observations.insights import EMBEDDING_DIM, embed_windows, window_embedding, windows_for_embedding
from observations.insights.embedding import TIME_WEIGHT

from .series import at_times, readings

RAMP = 100 + 10.0 * np.arange(24)  # +2 mg/dL per minute


def test_dimension_is_fixed_at_28():
    assert EMBEDDING_DIM == 28
    vector = window_embedding(RAMP, datetime(2026, 1, 5, 8, 0))
    assert vector.shape == (28,) and vector.dtype == float and np.isfinite(vector).all()


def test_shape_part_ignores_the_level_and_the_level_part_sees_it():
    low = window_embedding(RAMP, datetime(2026, 1, 5, 8, 0))
    high = window_embedding(RAMP + 60, datetime(2026, 1, 5, 8, 0))
    changed = np.flatnonzero(~np.isclose(low, high))
    assert changed.tolist() == [23]
    assert high[23] - low[23] == pytest.approx(60 / 50)


def test_coordinates_by_hand():
    vector = window_embedding(RAMP, datetime(2026, 1, 5, 6, 0))
    last = RAMP[-1]  # 330
    assert vector[:23] == pytest.approx((RAMP[:-1] - last) / 50)
    assert vector[0] == pytest.approx(-230 / 50)
    assert vector[23] == pytest.approx((330 - 140) / 50)
    assert vector[24] == pytest.approx(2 / 2)  # 2 mg/dL/min scaled by 2
    assert vector[25] == pytest.approx(RAMP.std() / 50)
    assert vector[26:] == pytest.approx([TIME_WEIGHT, 0], abs=1e-12)  # 06:00 is a quarter of the day


def test_time_of_day_is_periodic_and_ignores_the_date():
    a = window_embedding(RAMP, datetime(2026, 1, 5, 23, 55))
    b = window_embedding(RAMP, datetime(2026, 7, 9, 23, 55))
    assert a == pytest.approx(b)
    midnight = window_embedding(RAMP, datetime(2026, 1, 6, 0, 0))
    # 23:55 is next to 00:00 across midnight: the chord of 5 minutes on a circle of radius TIME_WEIGHT
    assert np.linalg.norm(a[26:] - midnight[26:]) == pytest.approx(2 * TIME_WEIGHT * np.sin(np.pi * 5 / 1440))
    noon = window_embedding(RAMP, datetime(2026, 1, 6, 12, 0))
    assert np.linalg.norm(noon[26:] - midnight[26:]) == pytest.approx(2 * TIME_WEIGHT)
    assert np.linalg.norm(a[26:]) == pytest.approx(TIME_WEIGHT)


def test_a_flat_window_has_zero_shape_rate_and_variability():
    vector = window_embedding(np.full(24, 140.0), datetime(2026, 1, 5, 12, 0))
    assert np.allclose(vector[:26], 0)


@pytest.mark.parametrize("values", [np.ones(23), np.ones(25), np.ones((24, 1)), np.r_[np.ones(23), np.nan]])
def test_bad_windows_raise(values):
    with pytest.raises(ValueError):
        window_embedding(values, datetime(2026, 1, 5, 12, 0))


def test_windows_every_30_minutes_on_a_regular_series():
    frame = readings(np.arange(72) + 100.0, start="2026-01-05 00:00")  # 00:00 .. 05:55 UTC
    windows = list(windows_for_embedding(frame))
    ends = [end for end, _ in windows]
    assert ends[0] == pd.Timestamp("2026-01-05 02:00", tz="UTC")  # first complete window: 00:05-02:00
    assert ends[-1] == pd.Timestamp("2026-01-05 05:30", tz="UTC")
    assert len(windows) == 8
    end, values = windows[0]
    assert values.tolist() == (np.arange(1, 25) + 100.0).tolist()


def test_non_overlapping_windows_with_a_two_hour_step():
    frame = readings(np.arange(72) + 100.0, start="2026-01-05 00:00")
    ends = [end for end, _ in windows_for_embedding(frame, step_minutes=120)]
    assert ends == [pd.Timestamp("2026-01-05 02:00", tz="UTC"), pd.Timestamp("2026-01-05 04:00", tz="UTC")]


def test_jittered_times_are_interpolated_onto_the_grid():
    frame = readings(np.arange(40) * 5.0 + 100, start="2026-01-05 00:00:20")  # 20 s late, 1 mg/dL/min
    end, values = next(windows_for_embedding(frame))
    assert end == pd.Timestamp("2026-01-05 02:00", tz="UTC")  # grid 00:05 .. 02:00
    # each grid point lies 20 s (1/3 minute) before a reading of a 1 mg/dL/min ramp
    expected = 100 + (np.arange(24) * 5 + 5) - 1 / 3
    assert values == pytest.approx(expected)


def test_gaps_up_to_15_minutes_are_bridged_longer_ones_break_windows():
    times = pd.date_range("2026-01-05 00:00", "2026-01-05 05:55", freq="5min", tz="UTC")
    values = np.full(times.size, 120.0)
    keep = (times < pd.Timestamp("2026-01-05 03:00", tz="UTC")) | (times >= pd.Timestamp("2026-01-05 03:10", tz="UTC"))
    bridged = pd.DataFrame({"time": times[keep], "glucose_mg_dl": values[keep]})  # 15-minute step
    assert len(list(windows_for_embedding(bridged))) == 8
    keep = (times < pd.Timestamp("2026-01-05 03:00", tz="UTC")) | (times >= pd.Timestamp("2026-01-05 03:15", tz="UTC"))
    broken = pd.DataFrame({"time": times[keep], "glucose_mg_dl": values[keep]})  # 20-minute step
    ends = [end.strftime("%H:%M") for end, _ in windows_for_embedding(broken)]
    # windows covering 02:55..03:15 are skipped; the next complete one is 03:15..05:10
    assert ends == ["02:00", "02:30", "05:30"]


def test_too_few_readings_give_no_windows():
    assert list(windows_for_embedding(readings(np.full(23, 100.0)))) == []
    assert list(windows_for_embedding(readings([]))) == []


def test_step_must_be_a_multiple_of_five_minutes():
    with pytest.raises(ValueError, match="step_minutes"):
        list(windows_for_embedding(readings(np.full(30, 100.0)), step_minutes=7))


def test_embed_windows_uses_local_time_of_day():
    frame = readings(np.arange(30) + 100.0, start="2026-01-05 00:00")  # ends 02:00 .. 02:25 UTC
    ends, matrix = embed_windows(frame, "Europe/Berlin")
    assert matrix.shape == (1, EMBEDDING_DIM)
    assert ends[0] == pd.Timestamp("2026-01-05 02:00", tz="UTC")
    local = window_embedding(np.arange(1, 25) + 100.0, datetime(2026, 1, 5, 3, 0))  # 03:00 in Berlin
    assert matrix[0] == pytest.approx(local)


def test_embed_windows_of_nothing_is_an_empty_matrix():
    ends, matrix = embed_windows(at_times([("2026-01-05 10:00", 120)]), "Europe/Berlin")
    assert len(ends) == 0 and matrix.shape == (0, EMBEDDING_DIM)
