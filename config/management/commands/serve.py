"""Run the web server and the django-q2 worker together until Ctrl-C.

This process is the supervisor: it holds the embedded PostgreSQL (when DATABASE_URL is unset)
for as long as it runs, starts gunicorn and `qcluster` as children that join the same server,
and on Ctrl-C/SIGTERM stops the children first and the database last, so PostgreSQL always
gets a clean shutdown after its last client is gone.

At start it installs the django-q2 schedules, among them the live demo's replay
(config/demo_live.py), which posts to the address this server binds.
"""

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from config.demo_live import install_demo_schedule
from predictions.schedules import ensure_schedules


class Command(BaseCommand):
    help = "Run gunicorn (web) and qcluster (background worker) together until interrupted."

    def add_arguments(self, parser):
        parser.add_argument("--bind", default=settings.GLUCAST_BIND)
        parser.add_argument("--web-workers", type=int, default=settings.GLUCAST_WEB_WORKERS)
        parser.add_argument("--no-worker", action="store_true", help="web server only")

    def handle(self, *args, bind, web_workers, no_worker, **options):
        self._install_schedules(bind)
        env = os.environ.copy()
        python = sys.executable
        commands = {
            "web": [
                python, "-m", "gunicorn", "config.wsgi:application",
                "--bind", bind, "--workers", str(web_workers), "--threads", "4",
                "--access-logfile", "-", "--graceful-timeout", "10",
            ],
        }
        if not no_worker:
            commands["worker"] = [python, "manage.py", "qcluster"]
        children = {
            name: subprocess.Popen(cmd, env=env, cwd=settings.BASE_DIR, start_new_session=True)
            for name, cmd in commands.items()
        }
        self.stdout.write(self.style.SUCCESS(f"glucast is running at http://{bind}/ (Ctrl-C stops it)"))

        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        exit_code = 0
        while not stopping:
            for name, child in children.items():
                if child.poll() is not None:
                    self.stderr.write(f"{name} exited with status {child.returncode}; stopping.")
                    exit_code = child.returncode or 1
                    stopping = True
            time.sleep(0.5)
        self._stop(children)
        if exit_code:
            sys.exit(exit_code)

    def _stop(self, children):
        self.stdout.write("stopping web server and worker…")
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for child in children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self.stdout.write("stopped.")

    def _install_schedules(self, bind):
        ensure_schedules()
        if install_demo_schedule(bind=bind) is not None:
            self.stdout.write("The demo people's recordings go on as live uploads (GLUCAST_DEMO_LIVE=0 turns this off).")
