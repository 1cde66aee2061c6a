"""Shared set-up for the serving tests: a REAL trained model (trained once per test session on
synthetic CGM data), stored through the registry's storage into a private artifact folder, and
people with recent readings in the real database."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from django.utils import timezone

from mlmodels.models import MLModel, ModelStatus
from mlmodels.storage import save_artifacts
from observations.models import Observation
from observations.synthetic import generate_cgm
from predictions.cache import reset_forecaster_cache

TRAIN_END = dt.datetime(2026, 3, 20, 12, 0, tzinfo=dt.timezone.utc)
_TRAINED: dict = {}


def trained_model_files() -> tuple[dict[str, bytes], str]:
    """(files, algorithm) of a forecaster trained by the real pipeline, once per session."""
    if not _TRAINED:
        from mlmodels.core.training import train_forecaster

        readings = generate_cgm(7, seed=5, end=TRAIN_END, tz="Europe/Berlin")
        result = train_forecaster(readings, tz="Europe/Berlin", time_budget_s=4.0, random_state=0)
        _TRAINED["files"] = result.forecaster.to_files()
        _TRAINED["algorithm"] = str(result.algorithm)
    return _TRAINED["files"], _TRAINED["algorithm"]


def trained_release2_files() -> tuple[dict[str, bytes], str]:
    """(files, algorithm) of a release-2 forecaster (started from the shipped population prior),
    trained by the real pipeline on 2 days of synthetic readings, once per session."""
    if "files_2" not in _TRAINED:
        from mlmodels.core.schemas import load_prior
        from mlmodels.core.training import train_forecaster

        readings = generate_cgm(2, seed=6, end=TRAIN_END, tz="Europe/Berlin")
        result = train_forecaster(
            readings, tz="Europe/Berlin", time_budget_s=4.0, random_state=0, prior=load_prior()
        )
        _TRAINED["files_2"] = result.forecaster.to_files()
        _TRAINED["algorithm_2"] = str(result.algorithm)
    return _TRAINED["files_2"], _TRAINED["algorithm_2"]


def register_model(person, *, version: str = "1.0.0", active: bool = True, files=None, algorithm=None) -> MLModel:
    """A ready model version for `person` with real artifacts, stored and SHA-256 recorded."""
    trained, trained_algorithm = trained_model_files()
    algorithm = algorithm or trained_algorithm
    major, minor, patch = (int(p) for p in version.split("."))
    if active:
        MLModel.objects.for_person(person).filter(is_active=True).update(is_active=False)
    row = MLModel.objects.create(
        person=person,
        version=version,
        version_major=major,
        version_minor=minor,
        version_patch=patch,
        algorithm=algorithm,
        status=ModelStatus.READY,
        trained_at=timezone.now(),
        is_active=False,
    )
    save_artifacts(row, files or trained, {"algorithm": algorithm}, "trained in tests\n")
    row.is_active = active
    row.save()
    return row


def store_readings(person, frame: pd.DataFrame) -> list[Observation]:
    rows = [
        Observation(
            person=person,
            kind=Observation.Kind.CGM,
            value_mg_dl=float(value),
            original_value=float(value),
            original_unit="mg/dL",
            effective_at=moment.to_pydatetime(),
            source="test",
        )
        for moment, value in zip(frame["time"], frame["glucose_mg_dl"])
    ]
    return Observation.objects.bulk_create(rows, batch_size=2000)


def recent_readings(hours: float = 6, *, seed: int = 1, end=None) -> pd.DataFrame:
    """Synthetic readings ending `end` (default: a minute ago), every ~5 minutes."""
    end = end or timezone.now() - dt.timedelta(minutes=1)
    frame = generate_cgm(hours / 24, seed=seed, end=end, tz="Europe/Berlin")
    frame["time"] = frame["time"].dt.floor("us")  # the database keeps microseconds
    return frame


def history_rows(frame: pd.DataFrame, unit: str = "mg/dL") -> list[dict]:
    from observations.units import from_mgdl

    return [
        {
            "effective_at": moment.isoformat(),
            "value": float(value) if unit == "mg/dL" else round(from_mgdl(value, unit), 2),
            "unit": unit,
        }
        for moment, value in zip(frame["time"], frame["glucose_mg_dl"])
    ]


@pytest.fixture(autouse=True)
def _fresh_process_state():
    """Each test starts with an empty model cache (throttle counters live in the database
    cache, rolled back with each test)."""
    reset_forecaster_cache()
    yield
    reset_forecaster_cache()


@pytest.fixture
def person_with_readings(person):
    store_readings(person, recent_readings(seed=1))
    return person


@pytest.fixture
def person_with_model(person_with_readings):
    register_model(person_with_readings)
    return person_with_readings
