"""A promotion or rollback made in this process reaches ANOTHER running process on its very next
forecast: a real `manage.py serving_probe` subprocess keeps its caches (forecasters, rollout
configuration) between forecasts and must still serve the new choice."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mlmodels.lifecycle import activate_model, rollback_person_model
from mlmodels.rollouts import (
    create_rollout,
    pin_person,
    promote_candidate,
    rollback_to_previous_stable,
    set_candidate,
    set_canary_percentage,
    unpin_person,
)
from tests.lifecycle.conftest import give_readings, make_model
from tests.workers import database_url

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db(transaction=True)


class Probe:
    """A long-lived `manage.py serving_probe`: one person id in, one JSON answer out."""

    def __init__(self, artifact_root: Path):
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "GLUCAST_ARTIFACT_ROOT": str(artifact_root),
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "GLUCAST_LOG_LEVEL": "WARNING",
        }
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "serving_probe"], cwd=REPO, env=env, text=True, bufsize=1,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.put(line)

    def forecast(self, person) -> dict:
        self.process.stdin.write(f"{person.pk}\n")
        self.process.stdin.flush()
        while True:
            try:
                line = self.lines.get(timeout=120)
            except queue.Empty:
                raise AssertionError("serving_probe did not answer: " + self.stop()) from None
            if line.startswith("{"):
                answer = json.loads(line)
                assert "error" not in answer, answer
                return answer

    def stop(self) -> str:
        if self.process.poll() is None:
            try:
                self.process.stdin.write("quit\n")
                self.process.stdin.close()
                self.process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait(timeout=30)
        return self.process.stderr.read()[-3000:]


@pytest.fixture
def probe(artifact_root):
    probe = Probe(artifact_root)
    yield probe
    probe.stop()


def test_promotion_pin_and_rollback_reach_another_process_on_its_next_forecast(probe, person):
    give_readings(person)
    make_model(person, "1.0.0", status="archived")
    make_model(person, "2.0.0", active=True)
    rollout = create_rollout("glucose-prediction", 1, actor="test", reason="release 1 serves")

    first = probe.forecast(person)
    assert (first["version"], first["variant"], first["arm"], first["rollout"]) == ("1.0.0", "stable", "stable", rollout.pk)
    assert probe.forecast(person)["version"] == "1.0.0"  # cached in the probe now

    set_candidate(rollout, 2, percentage=0, actor="test", reason="candidate at 0%")
    assert probe.forecast(person)["version"] == "1.0.0"
    set_canary_percentage(rollout, 100, actor="test", reason="everyone into the canary")
    answer = probe.forecast(person)
    assert (answer["version"], answer["variant"], answer["arm"]) == ("2.0.0", "canary", "canary")

    promote_candidate(rollout, actor="test", reason="release 2 is better")
    answer = probe.forecast(person)
    assert (answer["version"], answer["variant"], answer["arm"]) == ("2.0.0", "stable", "stable")

    pin_person(person.ml_models.get(version="1.0.0"), actor="test", reason="hold this person back")
    answer = probe.forecast(person)
    assert (answer["version"], answer["arm"], answer["rollout"]) == ("1.0.0", "pinned", None)
    unpin_person(person, actor="test", reason="done")
    assert probe.forecast(person)["version"] == "2.0.0"

    rollback_to_previous_stable(rollout, actor="test", reason="complaints")
    answer = probe.forecast(person)
    assert (answer["version"], answer["variant"], answer["arm"]) == ("1.0.0", "stable", "stable")


def test_activation_and_person_rollback_reach_another_process(probe, person):
    give_readings(person)
    old = make_model(person, "1.0.0", active=True)
    new = make_model(person, "1.1.0", parent=old)

    assert probe.forecast(person)["version"] == "1.0.0"
    activate_model(new, actor="test", reason="the retrain is better")
    assert probe.forecast(person)["version"] == "1.1.0"
    rollback_person_model(person, actor="test", reason="1.1.0 drifts at night")
    assert probe.forecast(person)["version"] == "1.0.0"
