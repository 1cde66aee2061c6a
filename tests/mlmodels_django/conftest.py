"""Shared set-up for the model registry tests: a private artifact folder and real readings."""

import datetime as dt

import pandas as pd
import pytest

from observations.models import Observation
from observations.synthetic import generate_cgm

END = dt.datetime(2026, 3, 20, 12, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def artifact_root(tmp_path, settings):
    """Artifacts of this test go to a temporary folder (Django resets storages on change)."""
    root = tmp_path / "artifacts"
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(root)},
        },
    }
    return root


def store_readings(person, frame: pd.DataFrame, *, source: str = "test") -> int:
    """Save a frame of (time, glucose_mg_dl) as the person's CGM observations."""
    rows = [
        Observation(
            person=person,
            kind=Observation.Kind.CGM,
            value_mg_dl=float(value),
            original_value=float(value),
            original_unit="mg/dL",
            effective_at=time.floor("us").to_pydatetime(),
            source=source,
            display="Glucose [Mass/volume] in Interstitial fluid",
        )
        for time, value in zip(frame["time"], frame["glucose_mg_dl"])
    ]
    Observation.objects.bulk_create(rows, batch_size=2000)
    return len(rows)


def synthetic_readings(days: float, *, seed: int = 0, end=END) -> pd.DataFrame:
    return generate_cgm(days, seed=seed, end=end, tz="Europe/Berlin")


@pytest.fixture
def person_with_readings(person):
    store_readings(person, synthetic_readings(8, seed=11))
    return person
