"""The model registry API: 202 + job URL, one open job per person, status flow, isolation."""

import pytest
from django.db import IntegrityError, transaction

from mlmodels.models import JobStatus, MLModel, ModelStatus, TrainingJob
from mlmodels.services import request_training

pytestmark = pytest.mark.django_db


def model_row(person, version="1.0.0", **fields):
    major, minor, patch = (int(p) for p in version.split("."))
    return MLModel.objects.create(
        person=person, version=version, version_major=major, version_minor=minor,
        version_patch=patch, algorithm="ridge", status=fields.pop("status", ModelStatus.READY),
        metrics=fields.pop("metrics", {}), **fields,
    )


def test_train_answers_202_with_the_job_url_in_location_and_body(api, person):
    response = api.post("/api/models/train/")

    assert response.status_code == 202
    body = response.json()
    job = TrainingJob.objects.get(pk=body["id"])
    assert job.person == person and job.status == JobStatus.QUEUED and job.trigger == "api"
    assert response["Location"] == body["url"]
    assert body["url"].endswith(f"/api/models/jobs/{job.pk}/")
    assert body["status"] == "queued" and body["created"] is True
    assert body["version"] is None and body["model"] is None


def test_a_second_request_while_queued_returns_the_same_job(api, person):
    first = api.post("/api/models/train/").json()
    second = api.post("/api/models/train/")

    assert second.status_code == 202
    assert second.json()["id"] == first["id"] and second.json()["created"] is False
    assert second["Location"] == first["url"]
    assert TrainingJob.objects.for_person(person).count() == 1


def test_a_running_job_is_returned_too_and_a_finished_one_is_not(api, person):
    job, created = request_training(person, trigger="page")
    assert created
    TrainingJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
    assert api.post("/api/models/train/").json()["id"] == job.pk

    TrainingJob.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
    again = api.post("/api/models/train/").json()
    assert again["id"] != job.pk and again["created"] is True


def test_the_database_refuses_a_second_open_job(person):
    TrainingJob.objects.create(person=person, status=JobStatus.QUEUED)
    with pytest.raises(IntegrityError), transaction.atomic():
        TrainingJob.objects.create(person=person, status=JobStatus.RUNNING)
    # Finished jobs do not count.
    TrainingJob.objects.create(person=person, status=JobStatus.FAILED)
    TrainingJob.objects.create(person=person, status=JobStatus.SKIPPED)


def test_the_database_refuses_two_active_versions(person):
    model_row(person, "1.0.0", is_active=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        model_row(person, "1.1.0", is_active=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        model_row(person, "1.0.0")  # same version twice
    with pytest.raises(IntegrityError), transaction.atomic():
        model_row(person, "1.2.0", is_active=True, status=ModelStatus.REJECTED)  # active must be ready


def test_job_status_shows_the_reason_and_when_done_the_version_and_metrics(api, person):
    metrics = {"horizons": {"30": {"mae": 12.0}, "60": {"mae": 20.0}}}
    model = model_row(person, "1.0.0", is_active=True, metrics=metrics)
    skipped = TrainingJob.objects.create(
        person=person, status=JobStatus.SKIPPED, reason="insufficient_data", detail={"days": 1.0}
    )
    done = TrainingJob.objects.create(
        person=person, status=JobStatus.SUCCEEDED, reason="deployed", model=model
    )

    body = api.get(f"/api/models/jobs/{skipped.pk}/").json()
    assert body["status"] == "skipped" and body["reason"] == "insufficient_data"
    assert body["detail"] == {"days": 1.0} and body["model"] is None

    body = api.get(f"/api/models/jobs/{done.pk}/").json()
    assert body["status"] == "succeeded" and body["version"] == "1.0.0"
    assert body["model"]["metrics"] == metrics and body["model"]["is_active"] is True


def test_listing_shows_own_versions_newest_first_with_metrics(api, person, other_person):
    model_row(person, "1.2.0", status=ModelStatus.REJECTED)
    model_row(person, "1.10.0", is_active=True)
    model_row(person, "1.9.0", status=ModelStatus.ARCHIVED)
    model_row(other_person, "1.0.0", is_active=True)

    body = api.get("/api/models/").json()
    assert body["count"] == 3
    assert [m["version"] for m in body["results"]] == ["1.10.0", "1.9.0", "1.2.0"]
    first = body["results"][0]
    assert first["is_active"] is True and "metrics" in first and "summary" in first
    assert "storage_path" not in first


def test_another_persons_models_and_jobs_answer_404(api, other_api, person, other_person):
    mine = model_row(person, "1.0.0", is_active=True)
    job = TrainingJob.objects.create(person=person, status=JobStatus.SUCCEEDED, model=mine)

    assert api.get(f"/api/models/{mine.pk}/").status_code == 200
    assert api.get(f"/api/models/jobs/{job.pk}/").status_code == 200
    assert other_api.get(f"/api/models/{mine.pk}/").status_code == 404
    assert other_api.get(f"/api/models/jobs/{job.pk}/").status_code == 404
    assert other_api.get("/api/models/").json()["count"] == 0
    assert other_api.get("/api/models/jobs/").json()["count"] == 0
    # The other person's train request creates their own job, not a view on mine.
    theirs = other_api.post("/api/models/train/").json()
    assert TrainingJob.objects.get(pk=theirs["id"]).person == other_person


def test_anonymous_callers_are_refused(client):
    from rest_framework.test import APIClient

    anonymous = APIClient()
    assert anonymous.post("/api/models/train/").status_code in (401, 403)
    assert anonymous.get("/api/models/").status_code in (401, 403)


def test_a_train_request_enqueues_the_task_only_after_commit(api, person, django_capture_on_commit_callbacks):
    from django_q.models import OrmQ

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job_id = api.post("/api/models/train/").json()["id"]
        assert OrmQ.objects.count() == 0
    assert len(callbacks) == 1
    # The committed job goes through the training queue, which hands it to the broker once its
    # own transaction commits.
    with django_capture_on_commit_callbacks(execute=True):
        callbacks[0]()
    assert OrmQ.objects.count() == 1
    assert TrainingJob.objects.get(pk=job_id).task_id


@pytest.mark.django_db(transaction=True)
def test_concurrent_train_requests_create_one_job(person):
    import threading

    from django.db import connection

    barrier = threading.Barrier(4)
    results, errors = [], []

    def request():
        try:
            barrier.wait(timeout=10)
            job, created = request_training(person, trigger="api")
            results.append((job.pk, created))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=request) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert len({pk for pk, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert TrainingJob.objects.for_person(person).count() == 1


def test_a_lost_job_is_marked_stale_and_a_new_one_queued(api, person):
    import datetime as dt

    from django.utils import timezone

    from mlmodels.services import stale_after_s

    lost = TrainingJob.objects.create(person=person, status=JobStatus.RUNNING)
    TrainingJob.objects.filter(pk=lost.pk).update(
        started_at=timezone.now() - dt.timedelta(seconds=stale_after_s() + 60)
    )
    body = api.post("/api/models/train/").json()
    assert body["id"] != lost.pk and body["created"] is True
    lost.refresh_from_db()
    assert lost.status == JobStatus.FAILED and lost.reason == "stale"
