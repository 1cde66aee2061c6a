"""Each pattern statement fires on a series that has the pattern and stays silent on one that has not."""

import numpy as np
import pandas as pd
import pytest

from observations.insights import pattern_statements
from observations.synthetic import ar1_noise

from .series import bump, daily, readings

TZ = "Europe/Berlin"


def codes(frame, tz=TZ):
    return [statement["code"] for statement in pattern_statements(frame, tz)]


def by_code(frame, code, **kwargs):
    found = [s for s in pattern_statements(frame, TZ, **kwargs) if s["code"] == code]
    assert len(found) == 1, [s["code"] for s in pattern_statements(frame, TZ, **kwargs)]
    return found[0]


@pytest.mark.parametrize(
    "slot, peak_minute",
    [("breakfast", 8 * 60 + 30), ("lunch", 13 * 60 + 30), ("dinner", 20 * 60)],
)
def test_meal_time_rise_is_stated_for_its_slot_only(slot, peak_minute):
    frame = daily(lambda m, d, w: 120 + bump(m, peak_minute, 90, 90), noise_sd=8)
    statement = by_code(frame, f"higher_after_{slot}")
    values = statement["values"]
    after_start, after_end = values["after_window_minutes"]
    assert after_start <= peak_minute <= after_end
    assert values["after_median_mg_dl"] > 160
    assert values["before_median_mg_dl"] == pytest.approx(120, abs=5)
    assert statement["params"]["days"] == 14
    others = {"breakfast", "lunch", "dinner"} - {slot}
    assert not {f"higher_after_{other}" for other in others} & set(codes(frame))


def test_meal_time_rise_text_reads_as_an_observation():
    frame = daily(lambda m, d, w: 140 + bump(m, 8 * 60 + 30, 90, 90))
    statement = by_code(frame, "higher_after_breakfast")
    assert statement["text"] == statement["template"] % statement["params"]
    assert statement["text"].startswith("Your glucose is typically higher after breakfast time: median ")
    assert "140 mg/dL between" in statement["text"]
    assert statement["text"].endswith("on 14 of 14 days.")


def test_meal_time_rise_needs_five_days():
    four_days = daily(lambda m, d, w: 120 + bump(m, 8 * 60 + 30, 90, 90), days=4)
    five_days = daily(lambda m, d, w: 120 + bump(m, 8 * 60 + 30, 90, 90), days=5)
    assert "higher_after_breakfast" not in codes(four_days)
    assert "higher_after_breakfast" in codes(five_days)


def test_meal_time_rise_needs_a_big_enough_rise():
    small = daily(lambda m, d, w: 120 + bump(m, 8 * 60 + 30, 90, 25))  # window medians ~17 apart
    assert "higher_after_breakfast" not in codes(small)


def test_meal_time_rise_needs_consistency_across_days():
    # A big rise on only 6 of 14 days: a median of daily differences near zero.
    frame = daily(lambda m, d, w: 120 + np.where(d % 7 < 3, bump(m, 8 * 60 + 30, 90, 120), 0))
    assert "higher_after_breakfast" not in codes(frame)


def test_early_morning_rise():
    dawn = lambda m, d, w: 110 + 40 * np.clip((m - 240) / 150, 0, 1) * (m < 600)  # 04:00 to 06:30
    statement = by_code(daily(dawn, noise_sd=5), "early_morning_rise")
    assert statement["values"]["median_daily_rise_mg_dl"] >= 20
    assert "between 05:00 and 07:00" in statement["text"] and "between 02:00 and 04:00" in statement["text"]


def test_no_early_morning_rise_when_the_morning_is_flat():
    assert "early_morning_rise" not in codes(daily(lambda m, d, w: 110 + 0 * m, noise_sd=5))


def test_overnight_stable_fires_on_quiet_nights_only():
    quiet = daily(lambda m, d, w: 120 + 0 * m, noise_sd=4)
    assert "overnight_stable" in codes(quiet)
    swinging = daily(lambda m, d, w: 130 + 40 * np.sin(2 * np.pi * m / 120), noise_sd=4)
    assert "overnight_stable" not in codes(swinging)


def test_overnight_stable_needs_enough_night_readings():
    quiet = daily(lambda m, d, w: 120 + 0 * m, noise_sd=4)
    local_minute = quiet["time"].dt.tz_convert(TZ).dt.hour
    sparse = quiet[~((local_minute >= 1) & (local_minute < 3))]  # only 3 of 5 night hours left
    assert "overnight_stable" not in codes(sparse)


@pytest.mark.parametrize("shift, code", [(40, "higher_on_weekends"), (-40, "lower_on_weekends")])
def test_weekend_difference(shift, code):
    frame = daily(lambda m, d, w: 140 + shift * (w >= 5), noise_sd=10)
    statement = by_code(frame, code)
    assert statement["params"]["weekend_days"] == 4 and statement["params"]["weekdays"] == 10
    assert statement["values"]["weekend_median_mg_dl"] - statement["values"]["weekday_median_mg_dl"] == pytest.approx(shift, abs=3)


def test_no_weekend_difference_without_enough_weekend_days():
    # Monday to Saturday: one weekend day only.
    frame = daily(lambda m, d, w: 140 + 40 * (w >= 5), days=6, noise_sd=10)
    assert not {"higher_on_weekends", "lower_on_weekends"} & set(codes(frame))


def test_no_weekend_difference_when_weekdays_vary_as_much():
    # Weekday averages alternate 100/180: a weekend at 160 is within their spread.
    frame = daily(lambda m, d, w: np.where(w >= 5, 160, np.where(d % 2 == 0, 100, 180)), noise_sd=5)
    assert not {"higher_on_weekends", "lower_on_weekends"} & set(codes(frame))


def test_lows_concentrated_at_night():
    frame = daily(lambda m, d, w: np.where((m >= 120) & (m < 240), 62, 130))
    statement = by_code(frame, "lows_concentrated_night")
    assert statement["values"]["share_of_lows"] == 1.0
    assert statement["params"]["share"] == 100
    assert "between 00:00 and 06:00" in statement["text"]


def test_lows_concentrated_in_the_afternoon():
    frame = daily(lambda m, d, w: np.where((m >= 15 * 60) & (m < 16 * 60), 60, 130))
    assert "lows_concentrated_afternoon" in codes(frame)


def test_lows_spread_over_the_day_are_not_concentrated():
    frame = daily(lambda m, d, w: np.where((m % 360) < 30, 60, 130))  # 30 minutes in every quarter
    assert not [c for c in codes(frame) if c.startswith("lows_concentrated")]


def test_too_few_lows_are_not_a_pattern():
    frame = daily(lambda m, d, w: np.where((d == 3) & (m >= 120) & (m < 240), 62, 130))  # one night
    assert not [c for c in codes(frame) if c.startswith("lows_concentrated")]


def test_flat_noisy_series_states_nothing():
    assert codes(daily(lambda m, d, w: 140 + 0 * m, noise_sd=15)) == []


@pytest.mark.parametrize("seed", range(5))
def test_drifting_noisy_series_states_no_meal_or_dawn_pattern(seed):
    rng = np.random.default_rng(seed)
    n = 14 * 288
    values = 140 + ar1_noise(rng, n, 0.995, 20) + ar1_noise(rng, n, 0.7, 6)
    found = set(codes(readings(np.round(values), start="2026-01-05 00:00", tz=TZ)))
    assert not found & {"higher_after_breakfast", "higher_after_lunch", "higher_after_dinner",
                        "early_morning_rise"}


def test_statements_in_mmol_per_litre():
    frame = daily(lambda m, d, w: 126 + bump(m, 8 * 60 + 30, 90, 90))
    statement = by_code(frame, "higher_after_breakfast", unit="mmol/L")
    assert statement["params"]["before"] == "7.0 mmol/L"
    assert "mg/dL" not in statement["text"]
    assert statement["values"]["before_median_mg_dl"] == pytest.approx(126)


def test_pattern_statements_on_the_autumn_dst_change_still_work():
    frame = daily(lambda m, d, w: 120 + bump(m, 8 * 60 + 30, 90, 90), first_day="2026-10-19")
    assert "higher_after_breakfast" in codes(frame)


def test_no_readings_give_no_statements_and_bad_arguments_raise():
    assert pattern_statements(readings([]), TZ) == []
    with pytest.raises(ValueError, match="unit"):
        pattern_statements(readings([120]), TZ, unit="mmol")
    with pytest.raises(ValueError, match="time zone"):
        pattern_statements(readings([120]), "Nowhere/Atlantis")


def test_every_statement_has_template_params_text_and_values():
    frame = daily(lambda m, d, w: 120 + bump(m, 8 * 60 + 30, 90, 90) + 30 * (w >= 5)
                  + np.where((m >= 120) & (m < 240), -60, 0), noise_sd=5)
    statements = pattern_statements(frame, TZ)
    assert len(statements) >= 3
    for statement in statements:
        assert set(statement) == {"code", "template", "params", "text", "values"}
        assert statement["template"] % statement["params"] == statement["text"]
        assert pd.Series(statement["params"]).map(lambda v: isinstance(v, (str, int))).all()


def test_fifteen_minute_sensor_data_is_judged_by_its_own_expected_counts():
    five_minute = daily(lambda m, d, w: 120 + bump(m, 8 * 60 + 30, 90, 90) + 40 * (w >= 5), noise_sd=5)
    fifteen_minute = five_minute.iloc[::3]  # like Libre history
    found = set(codes(fifteen_minute))
    assert {"higher_after_breakfast", "higher_on_weekends", "overnight_stable"} <= found


def test_readings_must_be_a_dataframe():
    with pytest.raises(ValueError, match="DataFrame"):
        pattern_statements([("2026-01-05T00:00Z", 120)], TZ)
