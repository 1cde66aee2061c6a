"""The live paths end to end with a REAL django-q2 worker (`manage.py qcluster`) on the test
database: the 5-minute pull task fetching from the loopback Nightscout site, and an upload's
similar-episode window refresh."""

from __future__ import annotations

import hashlib
import json
import time

import pytest
from django.test import Client
from django.utils import timezone

from observations.models import GlucoseWindow, Observation
from observations.nightscout.models import NightscoutSource
from observations.nightscout.pull import pull_due_sources, save_source
from observations.nightscout.secrets import issue_secret
from tests.workers import running_qcluster
from tests.nightscout.conftest import SITE_TOKEN

WAIT_S = 120


@pytest.fixture
def loopback_worker(artifact_root, tmp_path):
    log_path = tmp_path / "qcluster.log"
    # the operator setting that lets the pull reach loopback, for this test's worker only
    with running_qcluster(artifact_root=artifact_root, log_path=log_path,
                          GLUCAST_NIGHTSCOUT_ALLOW_NETWORKS="127.0.0.0/8") as process:
        yield process, log_path


def wait_until(check, process, log_path, what):
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if check():
            return
        if process.poll() is not None:
            pytest.fail(f"qcluster exited ({process.returncode}):\n{log_path.read_text()[-3000:]}")
        time.sleep(0.3)
    pytest.fail(f"{what} not done after {WAIT_S}s\n{log_path.read_text()[-3000:]}")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_pulls_the_site_and_refreshes_windows_after_an_upload(
    person, other_person, nightscout_site, settings, loopback_worker
):
    process, log_path = loopback_worker
    base, _ = nightscout_site
    settings.GLUCAST_NIGHTSCOUT_ALLOW_NETWORKS = ["127.0.0.0/8"]
    source = save_source(person, url=f"{base}/site/", access_token=SITE_TOKEN)
    assert pull_due_sources() == 1

    def pulled():
        source.refresh_from_db()
        return source.last_success_at is not None or source.last_error

    wait_until(pulled, process, log_path, "the pull")
    assert source.last_error == "" and source.last_n_created == 12
    assert Observation.objects.for_person(person).count() == 12

    # An upload (autocommit, so its window refresh is enqueued at once) of 3 hours of readings.
    secret = issue_secret(person=other_person)
    now_ms = int(timezone.now().timestamp() * 1000)
    entries = [{"type": "sgv", "sgv": 110 + (i % 12), "date": now_ms - (36 - i) * 300_000, "device": "xDrip-DexcomG6"}
               for i in range(36)]
    response = Client().post("/ns/api/v1/entries", json.dumps(entries), content_type="application/json",
                             HTTP_API_SECRET=hashlib.sha1(secret.encode()).hexdigest())
    assert response["X-Glucast-Created"] == "36"
    wait_until(lambda: GlucoseWindow.objects.for_person(other_person).exists(), process, log_path, "the window refresh")
    assert NightscoutSource.objects.count() == 1
