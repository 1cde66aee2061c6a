import numpy as np
import pandas as pd
import pytest

from mlmodels.core.features import (
    FEATURE_SCHEMA_VERSION,
    HORIZONS,
    FeatureSchema,
    FeatureSchemaMismatch,
    build_features,
    build_targets,
    feature_names,
)
from mlmodels.core.preparation import prepare_grid
from tests.core.synthetic import series, synthetic_person


def _linear(n=40, start=100.0, slope=2.0):
    return series([start + slope * i for i in range(n)])


def test_features_on_a_straight_line_have_known_values():
    grid = prepare_grid(_linear())
    features = build_features(grid)
    row = features.iloc[30]  # 150 min in: the 120-min window is complete
    now = 100 + 2 * 30
    assert row["glucose_now"] == now
    assert row["lag_5min"] == -2 and row["lag_60min"] == -24 and row["lag_120min"] == -48
    assert row["rate_5min"] == pytest.approx(0.4) and row["rate_30min"] == pytest.approx(0.4)
    assert row["accel_15min"] == pytest.approx(0.0)
    assert row["mean_30min"] == pytest.approx(-6.0)  # mean of now-12 .. now
    assert row["min_60min"] == -24 and row["max_60min"] == 0
    assert row["interpolated_frac_60min"] == 0 and row["sensor_limit_60min"] == 0


def test_rows_without_two_full_hours_of_history_are_nan():
    features = build_features(prepare_grid(_linear()))
    assert features.iloc[:24].isna().all(axis=1).all()
    assert features.iloc[24:].notna().all(axis=1).all()


def test_rows_whose_window_crosses_an_unbridged_gap_are_nan_and_bridged_ones_are_not():
    values = [100.0 + i for i in range(60)]
    bridged = list(values)
    bridged[30:33] = [None] * 3  # 20 minutes between readings: bridged
    unbridged = list(values)
    unbridged[30:35] = [None] * 5  # 30 minutes: not bridged
    f_bridged = build_features(prepare_grid(series(bridged)))
    f_gap = build_features(prepare_grid(series(unbridged)))
    assert f_bridged.iloc[40].notna().all()
    assert f_bridged.iloc[40]["interpolated_frac_60min"] == pytest.approx(3 / 13)
    # every window that contains slots 30..34 is NaN; the first window after them is complete
    assert f_gap.iloc[30:35 + 24].isna().all(axis=1).all()
    assert f_gap.iloc[35 + 24].notna().all()


def test_no_feature_uses_a_reading_after_the_forecast_time():
    readings = synthetic_person(days=1.5, seed=3)
    grid = prepare_grid(readings)
    base = build_features(grid)
    rng = np.random.default_rng(0)
    for cut in (100, 200, 333):
        t = grid.index[cut]
        changed = grid.copy()
        future = changed.index > t
        changed.loc[future, "glucose_mg_dl"] = rng.uniform(40, 400, future.sum())
        changed.loc[future, "at_sensor_limit"] = True
        changed.loc[future, "interpolated"] = True
        perturbed = build_features(changed)
        pd.testing.assert_frame_equal(base.loc[:t], perturbed.loc[:t])
        assert not base.loc[grid.index[cut + 1]:].equals(perturbed.loc[grid.index[cut + 1]:])


def test_sensor_limit_flag_reaches_the_features():
    values = [120.0] * 40
    values[35] = 40.0
    features = build_features(prepare_grid(series(values)))
    assert features.iloc[34]["sensor_limit_60min"] == 0
    assert features.iloc[35]["sensor_limit_60min"] == 1
    assert features.iloc[39]["sensor_limit_60min"] == 1


def test_time_of_day_follows_the_local_clock_across_dst():
    # New York switched to summer time on 2021-03-14: 12:00 UTC is 07:00 the day before, 08:00 after.
    times = pd.to_datetime(["2021-03-13 12:00", "2021-03-14 12:00"], utc=True)
    readings = pd.concat(
        [series([100.0] * 30, start=str(t - pd.Timedelta(minutes=145)).replace("+00:00", "")) for t in times]
    )
    grid = prepare_grid(readings)
    features = build_features(grid, tz="America/New_York").dropna()
    local_hours = {}
    for t in times:
        row = features.loc[t]
        angle = np.arctan2(row["time_of_day_sin"], row["time_of_day_cos"]) % (2 * np.pi)
        local_hours[t.day] = angle / (2 * np.pi) * 24
    assert local_hours[13] == pytest.approx(7.0)
    assert local_hours[14] == pytest.approx(8.0)
    utc_features = build_features(grid, tz="UTC").loc[times[0]]
    assert np.arctan2(utc_features["time_of_day_sin"], utc_features["time_of_day_cos"]) == pytest.approx(np.pi)


def test_targets_are_changes_and_nan_across_gaps_or_past_the_end():
    values = [100.0 + i for i in range(30)] + [None] * 6 + [200.0] * 30
    grid = prepare_grid(series(values))
    targets = build_targets(grid, [5, 30, 60])
    assert targets["h5"].iloc[0] == 1 and targets["h30"].iloc[0] == 6
    assert np.isnan(targets["h30"].iloc[25])  # path from slot 25 to 31 crosses the gap
    assert np.isnan(targets["h60"].iloc[20])  # lands inside the gap (slot 32)
    assert targets["h5"].iloc[40] == 0
    assert np.isnan(targets["h5"].iloc[-1])  # no data after the end
    assert list(build_targets(grid).columns) == [f"h{h}" for h in HORIZONS]


def test_targets_observed_only_skip_interpolated_outcomes():
    grid = prepare_grid(series([100.0, None, 110.0, 115.0]))
    assert build_targets(grid, [5])["h5"].iloc[0] == 5  # bridged value 105
    assert np.isnan(build_targets(grid, [5], observed_only=True)["h5"].iloc[0])


def test_feature_schema_check():
    schema = FeatureSchema.current()
    assert schema.version == FEATURE_SCHEMA_VERSION and list(schema.names) == feature_names()
    schema.check(schema.to_dict())
    with pytest.raises(FeatureSchemaMismatch, match="version"):
        schema.check({"version": FEATURE_SCHEMA_VERSION + 1, "names": feature_names()})
    with pytest.raises(FeatureSchemaMismatch, match="names differ"):
        schema.check({"version": FEATURE_SCHEMA_VERSION, "names": feature_names()[::-1]})
