"""Two genuinely different releases for the side-by-side tests: real artifacts trained by the
real pipeline with two different feature schemas — release 1 (the window features, a blend) and
release 2 (the population prior's forecasts among its inputs, mlmodels/core/schemas.py)."""

from __future__ import annotations

from mlmodels.core import schemas
from observations.synthetic import generate_cgm
from tests.predictions.conftest import TRAIN_END

_FILES: dict[int, tuple[dict, str]] = {}


def release_files(release: int) -> tuple[dict[str, bytes], str]:
    """(files, algorithm) of a forecaster of `release`, trained once per session on 7 days."""
    if release not in _FILES:
        from mlmodels.core.training import train_forecaster

        readings = generate_cgm(7, seed=5, end=TRAIN_END, tz="Europe/Berlin")
        prior = schemas.load_prior() if release == 2 else None
        result = train_forecaster(readings, tz="Europe/Berlin", time_budget_s=4.0, random_state=0, prior=prior)
        assert result.feature_schema["version"] == release
        _FILES[release] = (result.forecaster.to_files(), str(result.algorithm))
    return _FILES[release]
