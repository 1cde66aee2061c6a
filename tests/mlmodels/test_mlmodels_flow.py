"""The job's status flow through the task function, the operator command and the admin."""

import pytest
from django.core.management import CommandError, call_command

from mlmodels.models import JobStatus, MLModel, TrainingJob
from mlmodels.tasks import run_training_job
from tests.factories import PersonFactory
from tests.mlmodels.conftest import store_readings, synthetic_readings

pytestmark = pytest.mark.django_db


def test_status_goes_queued_then_final_with_version_and_metrics(api, person_with_readings, artifact_root):
    posted = api.post("/api/models/train/")
    url = posted["Location"]
    assert api.get(url).json()["status"] == "queued"

    assert run_training_job(posted.json()["id"]) == "succeeded"  # what the worker calls

    body = api.get(url).json()
    assert body["status"] == "succeeded" and body["reason"] in ("deployed", "not_better")
    assert body["attempts"] == 1 and body["started_at"] and body["finished_at"]
    assert body["version"] == body["model"]["version"] == "2.0.0"  # release 2: starts from the prior
    assert body["model"]["metrics"]["summary"]["model"]["mae_60"] > 0
    listing = api.get("/api/models/").json()["results"]
    assert [m["version"] for m in listing] == ["2.0.0"]
    summary = {s["horizon_min"]: s for s in listing[0]["summary"]}
    assert summary[60]["mae"] > 0 and summary[60]["baseline_mae"] > 0
    # A finished job is not run again when the broker delivers it twice.
    assert run_training_job(posted.json()["id"]) == "succeeded"
    assert MLModel.objects.count() == 1


def test_skipped_job_reports_insufficient_data(api, person, artifact_root):
    store_readings(person, synthetic_readings(0.5, seed=2))
    job_id = api.post("/api/models/train/").json()["id"]
    assert run_training_job(job_id) == "skipped"
    body = api.get(f"/api/models/jobs/{job_id}/").json()
    assert body["status"] == "skipped" and body["reason"] == "insufficient_data"
    assert body["detail"]["span_days"] < 1 and body["version"] is None


def test_a_missing_job_is_reported_not_raised(db):
    assert run_training_job(987654) == "missing"


def test_the_command_trains_named_people_and_prints_a_summary(person_with_readings, artifact_root, capsys):
    short = PersonFactory()
    store_readings(short, synthetic_readings(0.5, seed=4))

    call_command("train_models", person_with_readings.owner.username, short.owner.username, "--time-budget", "3")

    out = capsys.readouterr().out
    assert f"{person_with_readings.owner.username}: 2.0.0" in out and "MAE60" in out and "vs baseline" in out
    assert "(vs population " in out  # a first model is compared with the prior that served before
    assert f"{short.owner.username}: skipped (insufficient_data)" in out
    assert "Done: 1 skipped, 1 succeeded." in out
    jobs = TrainingJob.objects.order_by("pk")
    assert [j.trigger for j in jobs] == ["operator", "operator"]
    assert {j.status for j in jobs} == {JobStatus.SUCCEEDED, JobStatus.SKIPPED}


def test_the_command_refuses_unknown_people_and_ambiguous_arguments(person):
    with pytest.raises(CommandError, match="nobody"):
        call_command("train_models", "nobody")
    with pytest.raises(CommandError):
        call_command("train_models")
    with pytest.raises(CommandError):
        call_command("train_models", person.owner.username, "--all")


def test_the_command_all_covers_everyone(person, other_person, artifact_root, capsys):
    call_command("train_models", "--all")
    out = capsys.readouterr().out
    assert out.count("skipped (insufficient_data)") == 2 and "Done: 2 skipped." in out


def test_admin_lists_models_and_jobs(admin_client, person, artifact_root):
    model = MLModel.objects.create(
        person=person, version="1.0.0", version_major=1, version_minor=0, algorithm="blend",
        status="ready", is_active=True,
        metrics={"per_horizon": {"model": {"30": {"mae": 10.0}, "60": {"mae": 15.0}},
                                 "baseline_ar2": {"30": {"mae": 12.0}, "60": {"mae": 20.0}}}},
    )
    TrainingJob.objects.create(person=person, status="succeeded", model=model)
    page = admin_client.get("/admin/mlmodels/mlmodel/?status__exact=ready").content.decode()
    assert "1.0.0" in page and "15.0" in page and "-25%" in page
    assert admin_client.get(f"/admin/mlmodels/mlmodel/{model.pk}/change/").status_code == 200
    assert admin_client.get("/admin/mlmodels/trainingjob/").status_code == 200
    assert admin_client.get("/admin/mlmodels/mlmodel/?q=blend").status_code == 200
