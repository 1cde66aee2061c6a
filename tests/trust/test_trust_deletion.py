"""Deletion that stays deleted: "delete all my data" in the middle of a training job that a REAL
django-q2 worker is running leaves nothing of the person anywhere afterwards — no row in any
per-person table, no artifact file, no queued task or task result naming them — while the
worker finishes quietly. Also: the batch forecast and a window refresh that read before an
erasure write nothing after it."""

from __future__ import annotations

import time

import pytest
from django_q.models import OrmQ, Task
from django_q.signing import SignedPackage

from config.account import delete_all_my_data, person_related_models
from mlmodels.models import JobStatus, TrainingJob
from observations.episodes import refresh_windows
from persons.erasure import erasure_mark
from predictions.batch import predict_batch
from predictions.models import PredictionLog
from tests.mlmodels.conftest import store_readings, synthetic_readings
from tests.mlmodels.test_mlmodels_worker import worker  # noqa: F401  (the real-worker fixture)
from tests.predictions.conftest import recent_readings, register_model

WAIT_S = 240


def rows_of(person) -> dict[str, int]:
    return {
        model._meta.label: model._base_manager.filter(**{field: person}).count()
        for model, field in person_related_models()
    }


def task_rows_naming(person, job_ids) -> list[str]:
    found = []
    for row in OrmQ.objects.all():
        task = SignedPackage.loads(row.payload)
        args = tuple(task.get("args") or ())
        if args and (args[0] in job_ids and "training" in task.get("func", "") or args[0] == person.pk):
            found.append(f"queued {task.get('func')}{args}")
    for task in Task.objects.all():
        args = tuple(task.args or ())
        if args and ((args[0] in job_ids and "training" in task.func) or (args[0] == person.pk and "windows" in task.func)):
            found.append(f"result {task.func}{args} {task.result}")
    return found


def wait_until(condition, what: str, process, log_path):
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"qcluster exited ({process.returncode}):\n{log_path.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {WAIT_S} s\n{log_path.read_text()[-3000:]}")
        time.sleep(0.2)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_deleting_during_a_running_training_job_leaves_nothing(person, other_person, api, worker, artifact_root):  # noqa: F811
    process, log_path = worker
    store_readings(person, synthetic_readings(8, seed=11))
    store_readings(other_person, synthetic_readings(3, seed=12))
    other_before = rows_of(other_person)

    response = api.post("/api/models/train/")
    assert response.status_code == 202
    job_id = response.json()["id"]
    job = TrainingJob.objects.get(pk=job_id)
    wait_until(
        lambda: TrainingJob.objects.filter(pk=job_id, status=JobStatus.RUNNING).exists(),
        "the job starting", process, log_path,
    )
    time.sleep(1.0)  # well inside model selection (GLUCAST_TRAINING_TIME_BUDGET_S)
    assert TrainingJob.objects.filter(pk=job_id, status=JobStatus.RUNNING).exists(), "finished too soon"

    delete_all_my_data(person)
    assert all(n == 0 for n in rows_of(person).values()), rows_of(person)

    # The worker finishes the job (quietly) and its monitor saves and then drops the result.
    wait_until(lambda: f"(train-job-{job_id})" in log_path.read_text(), "the worker finishing the job",
               process, log_path)
    time.sleep(1.0)  # the monitor's post-save hook runs right after the save it logs

    left = {label: n for label, n in rows_of(person).items() if n}
    assert not left, f"rows of the person after the deletion: {left}"
    assert not task_rows_naming(person, {job.pk}), task_rows_naming(person, {job.pk})
    person_folder = artifact_root / "models" / str(person.pk)
    assert not person_folder.exists() or not any(person_folder.rglob("*")), list(person_folder.rglob("*"))
    assert erasure_mark(person.pk) == 1  # the login and the Person stay
    assert rows_of(other_person) == other_before
    assert "Traceback" not in log_path.read_text()


@pytest.mark.django_db
def test_writers_that_read_before_an_erasure_write_nothing_after_it(person, monkeypatch):
    """The batch forecast and a window refresh take their mark before reading; an erasure that
    commits between their read and their write leaves nothing of the person stored."""
    import predictions.batch as batch_module
    import observations.episodes as episodes

    store_readings(person, recent_readings(6, seed=3))
    register_model(person)

    real_predict_group = batch_module._predict_group

    def erase_meanwhile(*args, **kwargs):
        answers = real_predict_group(*args, **kwargs)
        delete_all_my_data(person)  # between the batch's read and its write
        return answers

    monkeypatch.setattr(batch_module, "_predict_group", erase_meanwhile)
    result = predict_batch()
    assert result.n_forecasts == 0 and not PredictionLog.objects.filter(person=person).exists()

    store_readings(person, recent_readings(6, seed=3))  # new data after the erasure
    real_windows = episodes._windows

    def erase_after_reading(*args, **kwargs):
        found = real_windows(*args, **kwargs)
        delete_all_my_data(person)
        return found

    monkeypatch.setattr(episodes, "_windows", erase_after_reading)
    assert refresh_windows(person) == 0
    assert all(n == 0 for n in rows_of(person).values()), rows_of(person)
