"""Per-person online calibration of the bands (docs/bands.md): after outcome matching, the
person's own matched outcomes give factors per horizon and glucose range; a real worker stores
them as the next PATCH (kind "personal"), and the forecast answer says which calibration its
bands used."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from django.utils import timezone

from mlmodels.models import JobStatus, JobTrigger, MLModel, TrainingJob
from mlmodels.recalibration import PERSONAL_CALIBRATION, calibration_info
from mlmodels.services import train_person
from mlmodels.storage import load_forecaster
from predictions.models import PredictionLog
from predictions.recalibration import calibrate_personal_bands
from predictions.tasks import fill_outcomes_task
from tests.mlmodels.conftest import store_readings, synthetic_readings
from tests.mlmodels.test_mlmodels_worker import wait_for_final_status
from tests.workers import running_qcluster

pytestmark = pytest.mark.django_db

URL = "/api/predictions/glucose/"


def logs_with_outcomes(model, n, *, now):
    """Live forecasts of `model` with matched outcomes: in range (forecast 140) every outcome
    lies well inside the 80% band (half-width 20), above 180 (forecast 250) half lie outside it."""
    rng = np.random.default_rng(5)
    rows = []
    for i in range(n):
        issued = now - dt.timedelta(hours=2, minutes=15 * i)
        value = 250.0 if i % 2 else 140.0
        points = []
        for h in (30, 60, 120):
            miss = value > 180 and rng.random() < 0.5
            actual = value + (rng.choice([-1, 1]) * rng.uniform(25, 40) if miss else rng.uniform(-8, 8))
            points.append({"horizon_min": h, "time": (issued + dt.timedelta(minutes=h)).isoformat(),
                           "value_mg_dl": value, "lower_80_mg_dl": value - 20, "upper_80_mg_dl": value + 20,
                           "lower_95_mg_dl": value - 35, "upper_95_mg_dl": value + 35,
                           "actual_mg_dl": round(float(actual), 1), "actual_at": issued.isoformat(),
                           "matched_at": issued.isoformat()})
        rows.append(PredictionLog(person=model.person, ml_model=model, model_version=model.version, variant="stable",
                                  algorithm=model.algorithm, source="batch", issued_at=issued, as_of=issued,
                                  unit="mg/dL", horizons=[30, 60, 120], points=points, outcome_pending=False))
    PredictionLog.objects.bulk_create(rows)


@pytest.fixture
def trained(person, settings):
    settings.GLUCAST_TRAINING_TIME_BUDGET_S = 3
    store_readings(person, synthetic_readings(8, seed=11, end=timezone.now()))
    model = train_person(person).model
    assert model.is_active
    return model


def half_widths(model, level: float):
    forecaster = load_forecaster(model)
    readings = synthetic_readings(8, seed=11).iloc[-40:]
    out = {}
    for shift, name in ((0.0, "in_range"), (130.0, "high")):
        shifted = readings.assign(glucose_mg_dl=np.clip(readings["glucose_mg_dl"] * 0 + 120 + shift, 40, 400))
        point = forecaster.predict(shifted, horizons=[60]).points[0]
        out[name] = (point[f"upper_{level}"] - point[f"lower_{level}"]) / 2
    return out


def test_outcomes_narrow_the_in_range_band_and_widen_the_high_one_in_a_personal_patch(trained, settings):
    settings.GLUCAST_PERSONAL_BANDS_MIN_OUTCOMES = 30
    logs_with_outcomes(trained, 120, now=timezone.now())

    result = fill_outcomes_task()["personal_bands"]

    job = TrainingJob.objects.get(trigger=JobTrigger.CALIBRATION)
    assert result["requested"] == [job.pk]
    personal = job.detail["personal"]
    assert personal["outcomes_used"] == 360 and personal["horizons"] == [30, 60, 120]
    in_range, high = (np.asarray(personal["factors"]["80"])[r] for r in (1, 2))
    assert (in_range < 1).all() and (high > 1).all()
    assert job.detail["evidence"]["counts"][1] == [60, 60, 60]  # evidence per range and horizon

    from mlmodels.tasks import run_training_job

    assert run_training_job(job.pk) == "succeeded"
    job.refresh_from_db()
    patch = job.model
    assert patch.version == "2.0.1" and patch.parent_id == trained.pk and patch.is_active
    assert patch.comparison["decision"] == PERSONAL_CALIBRATION
    before, after = half_widths(trained, 80), half_widths(patch, 80)
    assert after["in_range"] < before["in_range"] and after["high"] > before["high"]
    info = calibration_info(patch, load_forecaster(patch).conformal.personal)
    assert info["kind"] == "personal" and info["version"] == "2.0.1" and info["outcomes_used"] == 360
    # Right after, nothing is due: the new version was just calibrated, the old one has a patch.
    assert calibrate_personal_bands()["requested"] == []


def test_the_forecast_answer_says_which_calibration_its_bands_used(trained, api, settings):
    body = api.post(URL, {}, format="json").json()
    assert body["model"]["calibration"]["kind"] == "training"
    logs_with_outcomes(trained, 120, now=timezone.now())
    job = TrainingJob.objects.get(pk=calibrate_personal_bands()["requested"][0])
    from mlmodels.tasks import run_training_job

    assert run_training_job(job.pk) == "succeeded"
    body = api.post(URL, {}, format="json").json()
    calibration = body["model"]["calibration"]
    assert body["model"]["version"] == "2.0.1"
    assert calibration["kind"] == "personal" and calibration["version"] == "2.0.1"
    assert calibration["outcomes_used"] == 360 and calibration["updated_at"]
    logged = PredictionLog.objects.get(pk=body["prediction_id"])
    assert logged.provenance["calibration"] == calibration
    assert "calibration" not in body["provenance"]


def test_too_few_outcomes_or_switched_off_means_no_calibration(trained, settings):
    logs_with_outcomes(trained, 5, now=timezone.now())  # 15 points
    assert calibrate_personal_bands()["requested"] == []
    logs_with_outcomes(trained, 120, now=timezone.now() - dt.timedelta(minutes=1))
    settings.GLUCAST_PERSONAL_BANDS = False
    assert calibrate_personal_bands() == {"enabled": False, "requested": []}


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_stores_the_personal_calibration(trained, artifact_root, tmp_path):
    log_path = tmp_path / "qcluster.log"
    logs_with_outcomes(trained, 120, now=timezone.now())
    with running_qcluster(artifact_root=artifact_root, log_path=log_path) as process:
        result = fill_outcomes_task()  # as django-q2 runs it; autocommit hands the job out at once
        assert len(result["personal_bands"]["requested"]) == 1
        job, _seen = wait_for_final_status(result["personal_bands"]["requested"][0], process, log_path)
    assert job.status == JobStatus.SUCCEEDED, f"{job.reason} {job.error}"
    patch = MLModel.objects.get(pk=job.model_id)
    assert patch.comparison["decision"] == PERSONAL_CALIBRATION and patch.is_active
    assert load_forecaster(patch).conformal.personal["outcomes_used"] == 360
