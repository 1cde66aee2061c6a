"""The pandas-free serving path must give exactly what the forecaster's own predict gives."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from mlmodels.core.forecaster import BaselineForecaster, GlucoseForecaster, NotEnoughReadings, StaleReadings
from observations.synthetic import generate_cgm
from predictions import fastpath
from predictions.fastpath import Readings
from mlmodels.core.coldstart import PopulationForecaster
from mlmodels.core.schemas import load_prior
from tests.predictions.conftest import trained_model_files, trained_release2_files

END = dt.datetime(2026, 3, 27, 7, 42, 13, tzinfo=dt.timezone.utc)
HORIZONS = [5, 30, 60, 120, 180, 720, 1440]


@pytest.fixture(scope="module")
def forecasters():
    files, _ = trained_model_files()
    files_2, _ = trained_release2_files()
    return [
        GlucoseForecaster.from_files(files),
        BaselineForecaster(),
        GlucoseForecaster.from_files(files_2),
        PopulationForecaster(load_prior()),
    ]


def as_readings(frame: pd.DataFrame) -> Readings:
    return Readings.from_rows(
        frame["time"].to_numpy(dtype="datetime64[ns]").astype(np.int64),
        frame["glucose_mg_dl"].to_numpy(),
        frame["at_sensor_limit"].to_numpy() if "at_sensor_limit" in frame else None,
    )


def variants():
    """Windows with the things that make the grid interesting."""
    base = generate_cgm(0.2, seed=9, end=END, tz="Europe/Berlin")
    base["at_sensor_limit"] = False
    out = {"clean": base}
    out["short_gaps"] = base.drop(index=[40, 41, 50, 55, 56, 57]).reset_index(drop=True)
    dup = pd.concat([base, base.iloc[[45, 46]].assign(glucose_mg_dl=lambda f: f["glucose_mg_dl"] + 7)])
    out["duplicates_unsorted"] = dup.sample(frac=1.0, random_state=1).reset_index(drop=True)
    limit = base.copy()
    limit.loc[limit.index[-6:-3], "glucose_mg_dl"] = 40.0
    limit.loc[limit.index[-10], "at_sensor_limit"] = True
    out["sensor_limits"] = limit
    jitter = base.copy()
    jitter["time"] = jitter["time"] + pd.to_timedelta(np.random.default_rng(0).integers(-100, 100, len(base)), unit="s")
    out["clock_jitter"] = jitter.sort_values("time").reset_index(drop=True)
    return out


@pytest.mark.parametrize("name", list(variants()))
@pytest.mark.parametrize("which", [0, 1, 2, 3], ids=["trained", "baseline", "release_2", "population"])
def test_fast_path_equals_the_forecasters_predict(forecasters, name, which):
    forecaster = forecasters[which]
    frame = variants()[name]
    as_of = frame["time"].max() + pd.Timedelta(minutes=3)

    expected = forecaster.predict(frame, as_of=as_of, horizons=HORIZONS, tz="Europe/Berlin")
    got = fastpath.predict(forecaster, as_readings(frame), as_of_ns=as_of.value, horizons=HORIZONS, tz="Europe/Berlin")

    assert got.points == expected.points
    assert got.top_features == expected.top_features
    assert (got.as_of, got.window_start, got.window_end) == (expected.as_of, expected.window_start, expected.window_end)
    assert (got.n_readings, got.gaps_in_window) == (expected.n_readings, expected.gaps_in_window)


def test_fast_path_batch_equals_predict_many(forecasters):
    forecaster = forecasters[0]
    frames = list(variants().values())
    items = [(f, f["time"].max()) for f in frames]
    expected = forecaster.predict_many(items, horizons=[30, 60], tz="UTC")
    got = fastpath.predict_many(
        forecaster, [(as_readings(f), a.value) for f, a in items], horizons=[30, 60], tz="UTC"
    )
    assert [g.points for g in got] == [e.points for e in expected]


@pytest.mark.parametrize(
    "cut, error",
    [
        (lambda f: f.iloc[-10:], NotEnoughReadings),  # 45 minutes only
        (lambda f: f.drop(index=range(len(f) - 15, len(f) - 8)), NotEnoughReadings),  # 35-minute gap
        (lambda f: f.iloc[:0], NotEnoughReadings),
    ],
)
def test_fast_path_refuses_what_predict_refuses(forecasters, cut, error):
    frame = cut(variants()["clean"]).reset_index(drop=True)
    as_of = END
    with pytest.raises(error) as expected:
        forecasters[0].predict(frame, as_of=as_of, horizons=[30], tz="UTC")
    with pytest.raises(error) as got:
        fastpath.predict(forecasters[0], as_readings(frame), as_of_ns=pd.Timestamp(as_of).value, horizons=[30], tz="UTC")
    assert str(got.value) == str(expected.value)


def test_stale_readings_are_refused_the_same_way(forecasters):
    frame = variants()["clean"]
    as_of = frame["time"].max() + pd.Timedelta(minutes=31)
    with pytest.raises(StaleReadings) as expected:
        forecasters[1].predict(frame, as_of=as_of, horizons=[30], tz="UTC")
    with pytest.raises(StaleReadings) as got:
        fastpath.predict(forecasters[1], as_readings(frame), as_of_ns=as_of.value, horizons=[30], tz="UTC")
    assert str(got.value) == str(expected.value)
