"""Forecast latency through the real stack, against a trivial endpoint on the same server.

    .venv/bin/python bench/forecast_latency.py [--requests 400] [--cold 30]

What runs: gunicorn serving config.wsgi (the server `manage.py serve` starts: gthread, 2 workers x
4 threads) on 127.0.0.1, the embedded PostgreSQL (its own data dir, var/pg-bench-serving unless
GLUCAST_PGDATA is set), token authentication, DEBUG off. One person has 10 days of readings
ending now and a model trained by the real pipeline (mlmodels.core.training.train_forecaster, a blend
with XGBoost) stored through the registry's storage with its SHA-256.

Measured over one keep-alive HTTP connection, requests one after another (after a warm-up):
  bare      GET /hello on a bare WSGI app (bench/hello_wsgi.py) under the same gunicorn settings:
            the floor (server + loopback) of the same run
  trivial   GET /api/me/ (authenticated DRF view)                  the framework's cost
  warm      POST /api/predictions/glucose/ {} (default horizons)   model cached in the worker
  warm-24h  POST ... {"range": "24h"}                                96 points
  cold      the same POST right after a new model version was registered, so the worker must
            load and verify the artifact (a cache miss, what happens after every retrain)
bare, trivial and warm requests are interleaved so all see the same machine load. Prints
p50/p95/p99 in ms and the ratios to the floor. Goals (p95): warm forecast <= 10 ms, trivial
endpoint <= 4 ms, 24 h forecast <= 14 ms.

The helpers here (environment, person with a trained model, server) are shared by
bench/parallel_load.py and bench/batch_forecast.py.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BENCH_ENV = {
    "DJANGO_SETTINGS_MODULE": "config.settings",
    "GLUCAST_PGDATA": str(REPO / "var" / "pg-bench-serving"),
    "GLUCAST_ARTIFACT_ROOT": str(REPO / "var" / "bench-serving-artifacts"),
    "DJANGO_DEBUG": "0",
    "DJANGO_SECRET_KEY": "glucast-bench-only-not-a-secret",
    "DJANGO_SECURE_SSL_REDIRECT": "0",
    "DJANGO_SECURE_COOKIES": "0",
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
    # The benchmark measures latency, not the throttle.
    "GLUCAST_FORECAST_RATE": "1000000/min",
    "GLUCAST_LOG_LEVEL": "ERROR",  # 404s of the isolation checks are expected
}


_CONTEXT = None


def setup_django() -> None:
    for key, value in BENCH_ENV.items():
        os.environ.setdefault(key, value)
    import django

    django.setup()
    from django.core.management import call_command

    from persons.row_security import everyone

    call_command("migrate", verbosity=0)
    # The benchmark sets up and inspects many people's rows: the explicit context for everyone,
    # for the whole process (the servers it starts set each request's own context).
    global _CONTEXT
    _CONTEXT = everyone("benchmark set-up")  # kept: a collected context manager would end
    _CONTEXT.__enter__()


# --- Data ---------------------------------------------------------------------------------------

_TRAINED: dict[int, tuple[dict, str]] = {}
_ROW_FIELDS: dict[str, dict] = {}


def trained_files(seed: int = 0, days: float = 10) -> tuple[dict[str, bytes], str]:
    """(artifact files, algorithm) of a model trained by the real pipeline on synthetic data.

    The registry fields training records (metrics, hyperparameters, feature schema) are kept
    too, so registered rows weigh what real ones weigh when serving reads them."""
    if seed not in _TRAINED:
        from mlmodels.services import to_jsonable
        from mlmodels.core.training import train_forecaster
        from observations.synthetic import generate_cgm

        end = dt.datetime(2026, 3, 20, 12, 0, tzinfo=dt.timezone.utc)
        readings = generate_cgm(days, seed=seed, end=end, tz="Europe/Berlin")
        result = train_forecaster(readings, tz="Europe/Berlin", time_budget_s=10.0, random_state=seed)
        algorithm = str(result.algorithm)
        _TRAINED[seed] = (result.forecaster.to_files(), algorithm)
        _ROW_FIELDS[algorithm] = {
            "metrics": to_jsonable(result.metrics),
            "hyperparameters": to_jsonable(result.hyperparameters),
            "feature_schema": to_jsonable(result.feature_schema),
            "n_readings": int(result.n_readings),
        }
    return _TRAINED[seed]


def row_fields(algorithm: str) -> dict:
    return dict(_ROW_FIELDS.get(algorithm, {}))


def distinct_copy(files: dict[str, bytes], note: str) -> dict[str, bytes]:
    """The same model with different bytes (its own SHA-256), as a retrain would produce."""
    manifest = json.loads(files["manifest.json"])
    manifest["info"] = {**(manifest.get("info") or {}), "bench_copy": note}
    return {**files, "manifest.json": json.dumps(manifest, separators=(",", ":")).encode()}


def fresh_person(username: str, *, days: float = 10, seed: int = 0):
    """(person, token key) with `days` of synthetic readings ending a minute ago (replaces an
    earlier bench person of that name)."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from observations.models import Observation
    from observations.synthetic import generate_cgm
    from persons.services import create_person

    from mlmodels.models import MLModel
    from mlmodels.storage import delete_artifacts

    for model in MLModel.objects.filter(person__owner__username=username):
        delete_artifacts(model)
    get_user_model().objects.filter(username=username).delete()
    person, _password, token = create_person(username, time_zone="Europe/Berlin")
    frame = generate_cgm(days, seed=seed, end=timezone.now() - dt.timedelta(minutes=1), tz="Europe/Berlin")
    Observation.objects.bulk_create(
        [
            Observation(
                person=person,
                value_mg_dl=float(v),
                original_value=float(v),
                original_unit="mg/dL",
                effective_at=t.floor("us").to_pydatetime(),
                source="bench",
            )
            for t, v in zip(frame["time"], frame["glucose_mg_dl"])
        ],
        batch_size=5000,
    )
    return person, token


def register_model(person, files: dict[str, bytes], algorithm: str, *, version: str):
    """A ready, active model version for `person` with the given artifact files."""
    from django.db import transaction
    from django.utils import timezone

    from mlmodels.models import MLModel, ModelStatus
    from mlmodels.storage import save_artifacts

    major, minor, patch = (int(p) for p in version.split("."))
    row = MLModel(
        person=person, version=version, version_major=major, version_minor=minor, version_patch=patch,
        algorithm=algorithm, status=ModelStatus.READY, trained_at=timezone.now(), **row_fields(algorithm),
    )
    save_artifacts(row, files, {"algorithm": algorithm, "bench": True}, "bench copy\n")
    with transaction.atomic():
        MLModel.objects.for_person(person).filter(is_active=True).update(is_active=False)
        row.is_active = True
        row.save()
    return row


# --- Server -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """gunicorn with the same worker model as `manage.py serve`, stopped on exit."""

    def __init__(self, workers: int = 2, threads: int = 4, settings_module: str | None = None,
                 app: str = "config.wsgi:application"):
        self.port = free_port()
        env = {**os.environ, **{k: os.environ.get(k, v) for k, v in BENCH_ENV.items()}, "PYTHONWARNINGS": "ignore"}
        if settings_module:
            env["DJANGO_SETTINGS_MODULE"] = settings_module
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", app, "--bind", f"127.0.0.1:{self.port}",
             "--workers", str(workers), "--threads", str(threads), "--graceful-timeout", "10",
             "--log-level", "warning", "--pythonpath", str(REPO / "bench")],
            cwd=REPO, env=env, start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/admin/login/", headers={"Host": "127.0.0.1"})
                conn.getresponse().read()
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("gunicorn did not start within 60 s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class Client:
    """One keep-alive connection with a person's token."""

    def __init__(self, port: int, token: str):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"Authorization": f"Token {token}", "Content-Type": "application/json",
                        "Host": "127.0.0.1"}

    def call(self, method: str, path: str, body=None) -> tuple[int, dict | None, float]:
        data = None if body is None else json.dumps(body)
        started = time.perf_counter()
        self.conn.request(method, path, body=data, headers=self.headers)
        response = self.conn.getresponse()
        raw = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = {"raw": raw[:200].decode(errors="replace")}
        return response.status, parsed, elapsed


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def cpu_seconds(pids) -> float:
    """user+system CPU time of these processes (Linux /proc), in seconds."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def server_processes(server: "Server") -> dict[str, list[int]]:
    """gunicorn workers and the PostgreSQL backends of this data directory."""
    postmaster = int((Path(os.environ["GLUCAST_PGDATA"]) / "postmaster.pid").read_text().split()[0])
    return {"web": _children(server.process.pid), "db": _children(postmaster)}


def cpu_per_request(server: "Server", client: "Client", method: str, path: str, body, n: int) -> dict:
    """Server-side CPU (web workers, database backends) per request: what a request costs
    whatever else the machine is doing."""
    procs = server_processes(server)
    before = {k: cpu_seconds(v) for k, v in procs.items()}
    for _ in range(n):
        client.call(method, path, body)
    return {k: 1000 * (cpu_seconds(v) - before[k]) / n for k, v in procs.items()}


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def pct(p):
        k = (len(ordered) - 1) * p / 100
        lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
        return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)

    return {"n": len(ordered), "p50": pct(50), "p95": pct(95), "p99": pct(99), "mean": statistics.fmean(ordered)}


def show(label: str, stats: dict) -> None:
    print(f"  {label:<34} n={stats['n']:<5} p50 {stats['p50']:7.2f} ms   p95 {stats['p95']:7.2f} ms   "
          f"p99 {stats['p99']:7.2f} ms")


# --- The benchmark ------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=400, help="warm forecasts (and as many trivial requests)")
    parser.add_argument("--cold", type=int, default=30, help="cold loads (a new version before each)")
    args = parser.parse_args()

    setup_django()
    print("setting up: a person with 10 days of readings and a model trained by the real pipeline ...")
    files, algorithm = trained_files(seed=0)
    person, token = fresh_person("bench-latency", seed=1)
    register_model(person, files, algorithm, version="1.0.0")
    sizes = sum(len(v) for v in files.values()) / 1024
    metrics_kib = len(json.dumps(row_fields(algorithm))) / 1024
    print(f"  model: {algorithm}, {len(files)} files, {sizes:.0f} KiB ({', '.join(sorted(files))}); "
          f"registry row JSON {metrics_kib:.0f} KiB")

    with Server() as server, Server(app="hello_wsgi:application") as bare_server:
        client = Client(server.port, token)
        bare_client = Client(bare_server.port, token)
        for _ in range(40):  # warm both workers: connections, imports, the model cache
            status, body, _ = client.call("POST", "/api/predictions/glucose/", {})
            assert status == 201, (status, body)
            client.call("GET", "/api/me/")
            bare_client.call("GET", "/hello")
        assert body["model"]["variant"] == "stable", body["model"]

        bare, trivial, warm = [], [], []
        for _ in range(args.requests):
            status, _, ms = bare_client.call("GET", "/hello")
            assert status == 200
            bare.append(ms)
            status, _, ms = client.call("GET", "/api/me/")
            assert status == 200
            trivial.append(ms)
            status, body, ms = client.call("POST", "/api/predictions/glucose/", {})
            assert status == 201 and body["model"]["variant"] == "stable", body
            warm.append(ms)

        cpu_trivial = cpu_per_request(server, client, "GET", "/api/me/", None, args.requests)
        cpu_warm = cpu_per_request(server, client, "POST", "/api/predictions/glucose/", {}, args.requests)

        warm_24h = []
        for _ in range(max(args.requests // 4, 20)):
            status, body, ms = client.call("POST", "/api/predictions/glucose/", {"range": "24h"})
            assert status == 201 and len(body["points"]) == 96
            warm_24h.append(ms)

        cold, versions = [], []
        for i in range(args.cold):
            # A retrain: new version, new bytes -> both workers miss on their next request.
            register_model(person, distinct_copy(files, f"cold-{i}"), algorithm, version=f"1.{i + 1}.0")
            status, body, ms = client.call("POST", "/api/predictions/glucose/", {})
            assert status == 201, body
            versions.append(body["model"]["version"] == f"1.{i + 1}.0" and body["model"]["variant"] == "stable")
            cold.append(ms)

    from predictions.models import PredictionLog

    service_ms = list(
        PredictionLog.objects.filter(person=person, horizons=[30, 60, 120])
        .order_by("-id")[args.cold : args.cold + args.requests]
        .values_list("latency_ms", flat=True)
    )
    b, t, w, w24, c = (percentiles(bare), percentiles(trivial), percentiles(warm), percentiles(warm_24h),
                       percentiles(cold))
    print("\nForecast latency over loopback (gunicorn gthread 2x4, embedded PostgreSQL, token auth):")
    show("bare WSGI hello (same gunicorn)", b)
    show("trivial GET /api/me/", t)
    show("warm forecast (30/60/120 min)", w)
    show("warm forecast (24 h, 96 points)", w24)
    show("cold forecast (load + verify model)", c)
    s = percentiles(service_ms)
    print(f"  inside the service (forecast_for_person, as logged): p50 {s['p50']:.2f} ms, p95 {s['p95']:.2f} ms")
    print(f"  server CPU per request (web workers + database): trivial {cpu_trivial['web']:.2f} + "
          f"{cpu_trivial['db']:.2f} ms, warm forecast {cpu_warm['web']:.2f} + {cpu_warm['db']:.2f} ms "
          f"(x{sum(cpu_warm.values()) / sum(cpu_trivial.values()):.2f})")
    print(f"  warm / trivial: p50 x{w['p50'] / t['p50']:.2f}, p95 x{w['p95'] / t['p95']:.2f}; "
          f"forecast cost over the trivial request: p50 +{w['p50'] - t['p50']:.2f} ms")
    print(f"  cold answers served by the new version: {sum(versions)}/{len(versions)}")
    print(f"  over the bare WSGI floor: trivial p50 +{t['p50'] - b['p50']:.2f} ms (p95 x{t['p95'] / b['p95']:.1f}), "
          f"warm p50 +{w['p50'] - b['p50']:.2f} ms (p95 x{w['p95'] / b['p95']:.1f}), "
          f"24 h p50 +{w24['p50'] - b['p50']:.2f} ms (p95 x{w24['p95'] / b['p95']:.1f})")
    for label, stats, goal_ms in (("warm forecast", w, 10), ("trivial endpoint", t, 4), ("24 h forecast", w24, 14)):
        verdict = "met" if stats["p95"] <= goal_ms else "NOT met"
        print(f"  goal {label} p95 <= {goal_ms} ms: {verdict} ({stats['p95']:.2f} ms)")
    load = os.getloadavg()
    print(f"  machine: {os.cpu_count()} cores, load average {load[0]:.2f} / {load[1]:.2f} during the run")


if __name__ == "__main__":
    main()
