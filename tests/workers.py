"""Real background processes for tests: the test database as a DATABASE_URL, and a real
`manage.py qcluster` started against it and stopped gracefully.

Tests that prove something about the workers (training, chunked batches, the Nightscout pull,
deletion during a job) start the same process the product runs, not a stand-in; this module is
the one place that knows how.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import urllib.parse
from pathlib import Path

from django.db import connection

REPO_ROOT = Path(__file__).resolve().parents[1]


def database_url() -> str:
    """The test database (test_glucast) as a DATABASE_URL the child process's settings understand."""
    db = connection.settings_dict
    host = urllib.parse.quote(str(db["HOST"] or "localhost"), safe="")
    password = f":{urllib.parse.quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else ""
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{db['USER']}{password}@{host}{port}/{db['NAME']}"


@contextlib.contextmanager
def running_qcluster(*, artifact_root: Path, log_path: Path, **settings: str):
    """Yield a running qcluster (one worker unless `GLUCAST_Q_WORKERS` says otherwise) with
    `settings` as extra environment; on exit SIGTERM (its graceful shutdown), then kill only
    the process group it started."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "GLUCAST_ARTIFACT_ROOT": str(artifact_root),
        "GLUCAST_Q_WORKERS": "1",
        "GLUCAST_Q_LOG_LEVEL": "INFO",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        **settings,
    }
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
