"""Shared set-up for the model registry tests: a private artifact folder and real readings."""

import datetime as dt

import pandas as pd
import pytest

from observations.services import import_frame
from observations.synthetic import generate_cgm

END = dt.datetime(2026, 3, 20, 12, 0, tzinfo=dt.timezone.utc)


def store_readings(person, frame: pd.DataFrame, *, source: str = "test") -> int:
    """Save a frame of (time, glucose_mg_dl) as the person's CGM readings, the way imports do."""
    batch = import_frame(person, frame, source=source)
    return batch.n_created


def synthetic_readings(days: float, *, seed: int = 0, end=END) -> pd.DataFrame:
    return generate_cgm(days, seed=seed, end=end, tz="Europe/Berlin")


@pytest.fixture
def person_with_readings(person):
    store_readings(person, synthetic_readings(8, seed=11))
    return person
