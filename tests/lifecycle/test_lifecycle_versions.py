"""Semantic versions that mean what they say, each with a real model: MAJOR = a new release
(another feature schema), MINOR = retrained on new data, PATCH = the same point model with bands
recalibrated from the person's realized outcomes (started by the outcome task when coverage
drifts); and a schema is retired only after everyone on it was retrained."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from mlmodels.models import EventAction, JobTrigger, MLModel, RetiredSchema, RolloutEvent, TrainingJob
from mlmodels.rollouts import RolloutError, assign_models, create_rollout
from mlmodels.services import train_person
from mlmodels.storage import load_forecaster
from mlmodels.tasks import run_training_job
from predictions.models import PredictionLog
from predictions.recalibration import recalibrate_drifted
from predictions.tasks import fill_outcomes_task
from tests.mlmodels.conftest import store_readings, synthetic_readings

pytestmark = pytest.mark.django_db


@pytest.fixture
def person_with_days(person, settings):
    settings.GLUCAST_TRAINING_TIME_BUDGET_S = 3
    settings.GLUCAST_POPULATION_PRIOR = False  # new models start as release 1 here
    store_readings(person, synthetic_readings(8, seed=11))
    return person


def train_release_2_from_now_on(settings):
    """The code moves on: new models are trained as release 2 (release 1 keeps serving)."""
    settings.GLUCAST_POPULATION_PRIOR = True


def test_minor_is_a_retrain_on_new_data_and_major_is_a_new_release(person_with_days, settings):
    first = train_person(person_with_days).model
    assert first.version == "1.0.0"
    store_readings(person_with_days, synthetic_readings(1, seed=12, end=synthetic_readings(8, seed=11)["time"].max()
                                                       + dt.timedelta(days=1)))
    second = train_person(person_with_days).model
    assert second.version == "1.1.0"  # MINOR: same release, new data
    assert second.feature_schema["version"] == 1

    train_release_2_from_now_on(settings)
    third = train_person(person_with_days).model
    assert third.version == "2.0.0"  # MAJOR: another feature schema
    assert third.feature_schema["version"] == 2 and load_forecaster(third).features.version == 2
    assert load_forecaster(second).features.version == 1  # the old release still loads


def drifted_logs(model, n, *, inside_share):
    """Live forecasts of `model` with outcomes where only `inside_share` fall inside the 80% band."""
    rng = np.random.default_rng(3)
    now = timezone.now()
    rows = []
    for i in range(n):
        issued = now - dt.timedelta(hours=1, minutes=5 * i)
        points = []
        for h in (30, 60):
            value = 140.0
            inside = rng.random() < inside_share
            actual = value + (rng.uniform(-15, 15) if inside else rng.choice([-1, 1]) * rng.uniform(25, 40))
            points.append({"horizon_min": h, "time": (issued + dt.timedelta(minutes=h)).isoformat(),
                           "value_mg_dl": value, "lower_80_mg_dl": value - 20, "upper_80_mg_dl": value + 20,
                           "lower_95_mg_dl": value - 35, "upper_95_mg_dl": value + 35,
                           "actual_mg_dl": round(actual, 1), "actual_at": issued.isoformat(),
                           "matched_at": issued.isoformat()})
        rows.append(PredictionLog(person=model.person, ml_model=model, model_version=model.version, variant="stable",
                                  algorithm=model.algorithm, source="api", issued_at=issued, as_of=issued,
                                  unit="mg/dL", horizons=[30, 60], points=points, outcome_pending=False))
    PredictionLog.objects.bulk_create(rows)


def test_patch_recalibrates_the_bands_of_the_same_point_model_when_coverage_drifts(person_with_days, settings):
    settings.GLUCAST_RECALIBRATE_COVERAGE_TOLERANCE = 0.07
    settings.GLUCAST_RECALIBRATE_MIN_OUTCOMES = 200
    model = train_person(person_with_days).model
    assert model.is_active
    drifted_logs(model, 150, inside_share=0.6)  # 300 points, ~60% inside a nominal 80% band

    result = fill_outcomes_task()["recalibration"]

    job = TrainingJob.objects.get(trigger=JobTrigger.CALIBRATION)
    assert result["requested"] == [job.pk] and job.detail["model_id"] == model.pk
    assert job.detail["evidence"]["coverage_80"] < 0.73
    assert run_training_job(job.pk) == "succeeded"  # the worker's entry point
    job.refresh_from_db()
    patch = job.model
    assert patch.version == "1.0.1" and patch.parent_id == model.pk and patch.is_active
    model.refresh_from_db()
    assert not model.is_active and model.status == "archived"
    assert patch.metrics == model.metrics and patch.feature_schema == model.feature_schema
    old, new = load_forecaster(model), load_forecaster(patch)
    readings = synthetic_readings(8, seed=11).iloc[-60:]
    a, b = old.predict(readings, horizons=[30, 60]), new.predict(readings, horizons=[30, 60])
    for p, q in zip(a.points, b.points):
        assert p["value"] == q["value"]  # the same point model
        assert (q["upper_80"] - q["lower_80"]) > (p["upper_80"] - p["lower_80"])  # wider bands
    assert RolloutEvent.objects.filter(action=EventAction.MODEL_RECALIBRATED, ml_model=patch).exists()
    assert assign_models([model.person_id])[model.person_id].mlmodel.version == "1.0.1"
    # Once patched, the old version is not patched again.
    assert recalibrate_drifted()["requested"] == []


def test_no_patch_while_coverage_is_within_the_tolerance(person_with_days, settings):
    settings.GLUCAST_RECALIBRATE_MIN_OUTCOMES = 200
    model = train_person(person_with_days).model
    drifted_logs(model, 150, inside_share=0.8)
    assert recalibrate_drifted()["requested"] == []


def test_a_schema_is_retired_only_after_everyone_on_it_was_retrained(person_with_days, settings, capsys):
    old = train_person(person_with_days).model
    assert old.version == "1.0.0"
    with pytest.raises(CommandError, match="still trained as release 1"):
        call_command("retire_schema", "glucose-prediction", "1", "--apply", "--reason", "x")

    # The code moves on to release 2 (new models are trained with it); release 1 still serves.
    train_release_2_from_now_on(settings)
    create_rollout("glucose-prediction", 1, actor="test", reason="release 1 serves")
    call_command("retire_schema", "glucose-prediction", "1")
    out = capsys.readouterr().out
    assert "served by it now: 1 people" in out and "BLOCKED: the rollout serves release 1" in out
    assert "Nothing done" in out and not RetiredSchema.objects.exists()
    from mlmodels.models import Rollout
    from mlmodels.rollouts import bump_generation

    Rollout.objects.all().delete()  # (no service removes a rollout; the test does, and says so)
    bump_generation()

    call_command("retire_schema", "glucose-prediction", "1", "--apply", "--train-here", "--reason", "release 2 ships")

    job = TrainingJob.objects.get(trigger=JobTrigger.RETIREMENT)
    assert job.status == "succeeded" and job.model.version == "2.0.0"
    assert job.model.comparison["reference"]["kind"] in ("baseline", "population")
    assert job.model.comparison["reference"]["active_skipped"]
    assert RetiredSchema.objects.filter(schema_version=1).exists()
    assert "retired" in capsys.readouterr().out
    # Versions of a retired schema never serve again, and no rollout may name it.
    choice = assign_models([old.person_id])[old.person_id]
    assert choice.mlmodel is None or choice.mlmodel.version_major != 1
    with pytest.raises(RolloutError, match="retired"):
        create_rollout("glucose-prediction", 1, actor="test", reason="again")
    assert RolloutEvent.objects.filter(action=EventAction.SCHEMA_RETIRED).exists()
