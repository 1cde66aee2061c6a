"""A training job run by a REAL django-q2 worker (`manage.py qcluster`) on the test database."""

import time
from pathlib import Path

import pytest

from mlmodels.models import JobStatus, ModelStatus, TrainingJob
from mlmodels.storage import load_forecaster
from tests.mlmodels.conftest import store_readings, synthetic_readings
from tests.workers import running_qcluster

JOB_TIMEOUT_S = 240


@pytest.fixture
def worker(artifact_root, tmp_path):
    """A real qcluster against the test database."""
    log_path = tmp_path / "qcluster.log"
    with running_qcluster(artifact_root=artifact_root, log_path=log_path) as process:
        yield process, log_path


def wait_for_final_status(job_id: int, process, log_path: Path) -> TrainingJob:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    seen = []
    while time.monotonic() < deadline:
        job = TrainingJob.objects.get(pk=job_id)
        if not seen or seen[-1] != job.status:
            seen.append(job.status)
        if not job.is_open:
            return job, seen
        if process.poll() is not None:
            pytest.fail(f"qcluster exited ({process.returncode}):\n{log_path.read_text()[-3000:]}")
        time.sleep(0.2)
    pytest.fail(f"job still {seen[-1]} after {JOB_TIMEOUT_S}s; statuses {seen}\n{log_path.read_text()[-3000:]}")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_a_requested_training_job(person, api, worker):
    from django_q.models import Task

    process, log_path = worker
    store_readings(person, synthetic_readings(8, seed=11))

    response = api.post("/api/models/train/")  # autocommit: the task is enqueued at once
    assert response.status_code == 202
    job_id = response.json()["id"]
    assert TrainingJob.objects.get(pk=job_id).task_id

    job, seen = wait_for_final_status(job_id, process, log_path)

    assert job.status == JobStatus.SUCCEEDED, f"{job.reason} {job.error}"
    assert job.attempts == 1 and job.started_at and job.finished_at >= job.started_at
    assert job.model.status in (ModelStatus.READY, ModelStatus.REJECTED)
    assert load_forecaster(job.model) is not None  # the worker's artifacts verify here
    body = api.get(f"/api/models/jobs/{job_id}/").json()
    assert body["status"] == "succeeded" and body["version"] == job.model.version
    assert body["model"]["metrics"]["per_horizon"]["model"]["60"]["mae"] > 0
    # django-q2 recorded the task as a success (its monitor saves results asynchronously).
    deadline = time.monotonic() + 30
    while not Task.objects.filter(id=job.task_id, success=True).exists():
        assert time.monotonic() < deadline, "django-q2 did not record the task result"
        time.sleep(0.2)
    assert Task.objects.get(id=job.task_id).result == "succeeded"
