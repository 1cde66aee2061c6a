"""One real person end to end (skips cleanly when the shared Broll file is absent)."""

import pandas as pd
import pytest

from mlmodels.core.forecaster import GlucoseForecaster
from mlmodels.core.training import train_forecaster

pytestmark = pytest.mark.broll


def test_broll_person_end_to_end(broll_csv_path):
    data = pd.read_csv(broll_csv_path)
    person = data.loc[data["subject"] == "Subject 4", ["time", "glucose_mg_dl"]].copy()
    # the file holds local times without a zone; treat them as UTC with tz="UTC" (same clock)
    person["time"] = pd.to_datetime(person["time"]).dt.tz_localize("UTC")
    result = train_forecaster(person, tz="UTC", time_budget_s=15)
    summary = result.metrics["summary"]
    assert summary["model"]["mae_60"] < summary["persistence"]["mae_60"]
    assert 0.65 <= summary["model"]["coverage_80_mean"] <= 0.95
    loaded = GlucoseForecaster.from_files(result.forecaster.to_files())
    forecast = loaded.predict(person, horizons=[30, 60, 1440])
    assert forecast.points[1]["lower_80"] <= forecast.points[1]["value"] <= forecast.points[1]["upper_80"]
