"""Imports through the API keep the similar-episode windows in step with the readings."""

import datetime as dt

from django.core.files.uploadedfile import SimpleUploadedFile
from django_q.models import OrmQ

from observations.models import GlucoseWindow
from observations.synthetic import generate_cgm
from observations.tasks import refresh_windows_task


def day_of_readings_csv() -> bytes:
    frame = generate_cgm(1, seed=3, end=dt.datetime(2025, 6, 2, 12, tzinfo=dt.timezone.utc), tz="Europe/Berlin")
    lines = [f"{t.isoformat()},{v:g}" for t, v in zip(frame["time"], frame["glucose_mg_dl"], strict=True)]
    return ("time,value\n" + "\n".join(lines)).encode()


def test_upload_enqueues_window_embedding_after_commit_and_delete_drops_the_windows(
    api, person, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            "/api/observations/import/",
            {"file": SimpleUploadedFile("day.csv", day_of_readings_csv())},
            format="multipart",
        )
    assert response.status_code == 201
    queued = OrmQ.objects.all()
    assert queued.count() == 1

    # what the worker runs (arguments as enqueued)
    task = queued.get().task
    assert task["func"] == "observations.tasks.refresh_windows_task"
    assert refresh_windows_task(*task["args"]) > 0
    assert GlucoseWindow.objects.for_person(person).exists()

    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"/api/imports/{response.data['import_id']}/").status_code == 204
    assert not GlucoseWindow.objects.for_person(person).exists()


def test_rejected_import_enqueues_nothing(api, person, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        api.post("/api/observations/", [{"effective_at": "x", "value": 1, "unit": "mg/dL"}], format="json")
    assert OrmQ.objects.count() == 0
