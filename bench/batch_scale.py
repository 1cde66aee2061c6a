"""Does the sharded 5-minute batch spread? 20,000 people, real django-q2 clusters of 1 and 2
worker processes, with the ORM broker and with Redis.

    .venv/bin/python bench/batch_scale.py [--people 20000] [--workers 1,2] [--repeats 2]

Set-up (not timed): --models real models trained by the pipeline on synthetic people; --people
people with 3 hours of readings ending a minute ago (inserted with one array INSERT per 50,000
rows) and an active model version each. The versions SHARE the trained artifacts (each row
points at one of the --models stored artifacts), so every worker loads each model once: this
measures the database, the chunking and the forecasts, not model loading (bench/batch_forecast.py
measures that: about 17 ms per person when every person has their own artifact and the worker
has not loaded it yet). Runs on the benchmark's embedded PostgreSQL (var/pg-bench-serving).

Timed, for each broker (ORM always; Redis when GLUCAST_REDIS_URL or redis://localhost:6379/0
answers a PING, else skipped with a message) and each worker count:
  forecasts  a fresh `manage.py qcluster` with N worker processes is started and warmed up; the
             batch logs of the bench people are removed (so everyone is fresh), then ONE cycle
             is dispatched as the 5-minute schedule does (predictions.sharding.dispatch); the
             cycle time is from the dispatch until the last chunk committed (the chunks' own
             finished_at), throughput = forecasts / cycle time, per worker = that / N.
  outcomes   the points of those forecasts are moved 150 minutes back (into the stored
             readings) and made due; one outcome cycle is dispatched and timed the same way.
Medians over --repeats cycles; the machine is shared, so the ratio 2 workers / 1 worker within the
same run is the figure to read.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import numpy as np  # noqa: E402

from forecast_latency import BENCH_ENV, _children, cpu_seconds, row_fields, setup_django, trained_files  # noqa: E402

PREFIX = "bench-scale-"
ROWS_PER_INSERT = 50_000


def redis_url() -> str | None:
    url = os.environ.get("GLUCAST_REDIS_URL") or "redis://localhost:6379/0"
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
        return url
    except Exception as exc:  # noqa: BLE001 - any failure means: no Redis here
        print(f"(no Redis answers at {url}: {exc.__class__.__name__}; the Redis part is skipped)")
        return None


# --- Set-up -----------------------------------------------------------------------------------


def ensure_people(n: int) -> list[int]:
    """n bench people (created once, kept between runs); their ids."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password

    from persons.models import Person

    User = get_user_model()
    have = User.objects.filter(username__startswith=PREFIX).count()
    if have < n:
        unusable = make_password(None)
        User.objects.bulk_create(
            [User(username=f"{PREFIX}{i:06d}", password=unusable) for i in range(have, n)], batch_size=5000
        )
        owners = User.objects.filter(username__startswith=PREFIX, person__isnull=True).order_by("pk")
        Person.objects.bulk_create(
            [Person(owner=u, display_name=u.username, time_zone="Europe/Berlin") for u in owners], batch_size=5000
        )
    return list(
        Person.objects.filter(owner__username__startswith=PREFIX).order_by("pk").values_list("pk", flat=True)[:n]
    )


def refresh_readings(person_ids: list[int]) -> None:
    """3 hours of readings every 5 minutes ending a minute ago, for everyone (replaces older ones)."""
    from django.db import connection
    from django.utils import timezone

    from observations.models import Observation
    from observations.synthetic import generate_cgm

    Observation.objects.filter(person_id__in=person_ids).delete()
    end = timezone.now() - dt.timedelta(minutes=1)
    grid = [end - dt.timedelta(minutes=5 * k) for k in range(36, -1, -1)]
    base = generate_cgm(1, seed=3, end=end, tz="Europe/Berlin")["glucose_mg_dl"].to_numpy()
    table = Observation._meta.db_table
    rng = np.random.default_rng(0)
    batch: list[tuple] = []

    def flush():
        if not batch:
            return
        pids, times, values = zip(*batch)
        with connection.cursor() as cursor:
            cursor.execute(
                f"""INSERT INTO {table} (person_id, kind, code_system, code, display, value_mg_dl,
                        original_value, original_unit, at_sensor_limit, effective_at, status, device,
                        source, source_identifier, created_at)
                    SELECT p, 'cgm', 'http://loinc.org', '99504-3', '', v, v, 'mg/dL', false, t,
                           'final', '', 'bench', '', now()
                      FROM unnest(%s::bigint[], %s::timestamptz[], %s::float8[]) AS x(p, t, v)""",
                [list(pids), list(times), list(values)],
            )
        batch.clear()

    for pid in person_ids:
        start = int(rng.integers(0, len(base) - len(grid)))
        offset = float(rng.normal(0, 15))
        for t, v in zip(grid, base[start : start + len(grid)]):
            batch.append((pid, t, float(np.clip(round(v + offset), 40, 400))))
        if len(batch) >= ROWS_PER_INSERT:
            flush()
    flush()


def ensure_models(person_ids: list[int], n_models: int) -> None:
    """An active version per person pointing at one of n_models stored, really trained artifacts."""
    from django.utils import timezone

    from mlmodels.models import MLModel, ModelStatus
    from mlmodels.storage import save_artifacts

    have = MLModel.objects.filter(person_id__in=person_ids, is_active=True).count()
    if have == len(person_ids):
        return
    MLModel.objects.filter(person_id__in=person_ids).delete()
    templates = []
    for seed in range(n_models):
        files, algorithm = trained_files(seed=seed)
        row = MLModel(person_id=person_ids[seed], version="1.0.0", version_major=1, version_minor=0,
                      version_patch=0, algorithm=algorithm, status=ModelStatus.READY,
                      trained_at=timezone.now(), is_active=True, **row_fields(algorithm))
        save_artifacts(row, files, {"algorithm": algorithm, "bench": True}, "bench copy\n")
        templates.append(row)
    rows = []
    for i, pid in enumerate(person_ids):
        t = templates[i % n_models]
        rows.append(MLModel(
            person_id=pid, version="1.0.0", version_major=1, version_minor=0, version_patch=0,
            algorithm=t.algorithm, status=ModelStatus.READY, trained_at=t.trained_at, is_active=True,
            storage_path=t.storage_path, artifact_manifest=t.artifact_manifest,
            artifact_sha256=t.artifact_sha256, **row_fields(t.algorithm),
        ))
    MLModel.objects.bulk_create(rows, batch_size=2000)


# --- A cluster ---------------------------------------------------------------------------------


class Cluster:
    """`manage.py qcluster` with N worker processes on the bench database, stopped on exit."""

    def __init__(self, workers: int, redis: str | None):
        env = {**os.environ, **BENCH_ENV, "GLUCAST_Q_WORKERS": str(workers), "PYTHONWARNINGS": "ignore",
               "OMP_NUM_THREADS": "1", "GLUCAST_LOG_LEVEL": "WARNING"}
        env.pop("GLUCAST_REDIS_URL", None)
        if redis:
            env["GLUCAST_REDIS_URL"] = redis
        self.log = open(REPO / "var" / f"bench-qcluster-{workers}.log", "wb")
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"], cwd=REPO, env=env,
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)  # the group this bench started
                self.process.wait(timeout=10)
        self.log.close()


def broker_for(redis: str | None):
    """A django-q2 broker object of the same kind the cluster uses (to enqueue from here)."""
    from django.conf import settings
    from django_q.brokers import get_broker

    if redis:
        settings.Q_CLUSTER.pop("orm", None)
        settings.Q_CLUSTER["redis"] = redis
    else:
        settings.Q_CLUSTER.pop("redis", None)
        settings.Q_CLUSTER["orm"] = "default"
    from django_q import conf

    conf.Conf.ORM = settings.Q_CLUSTER.get("orm")
    conf.Conf.REDIS = settings.Q_CLUSTER.get("redis")
    return get_broker()


def wait_for(condition, timeout_s: float, what: str, cluster: Cluster) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if cluster.process.poll() is not None:
            raise SystemExit(f"qcluster exited while waiting for {what}; see {cluster.log.name}")
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.25)


def warm_up(cluster: Cluster, workers: int) -> None:
    """Every worker process imports the stack and loads the shared models before timing: one
    small forecast chunk per worker."""
    from django_q.models import Task
    from django_q.tasks import async_task

    ids = [async_task("math.floor", 1.5, group="bench-warm") for _ in range(2 * workers)]
    wait_for(lambda: Task.objects.filter(id__in=ids).count() == len(ids), 180, "the cluster to start", cluster)


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        children = _children(todo.pop())
        out += children
        todo += children
    return out


def cpu_now(cluster: Cluster) -> dict[str, float]:
    """CPU seconds so far of the cluster's processes and of the database server's backends."""
    postmaster = int((Path(os.environ["GLUCAST_PGDATA"]) / "postmaster.pid").read_text().split()[0])
    return {"workers": cpu_seconds([cluster.process.pid, *descendants(cluster.process.pid)]),
            "db": cpu_seconds(_children(postmaster))}


def time_cycle(kind: str, person_ids: list[int], cluster: Cluster) -> dict:
    from django.db.models import Max, Sum
    from django.utils import timezone

    from predictions import sharding
    from predictions.models import BatchChunk, ChunkStatus

    BatchChunk.objects.all().delete()
    cpu_before = cpu_now(cluster)
    t0 = timezone.now()
    started = time.perf_counter()
    dispatched = sharding.dispatch(kind, now=t0)
    chunks = BatchChunk.objects.filter(kind=kind, cycle_at=sharding.cycle_of(t0))
    wait_for(lambda: not chunks.filter(status=ChunkStatus.QUEUED).exists(), 1800, f"the {kind} cycle", cluster)
    wall = time.perf_counter() - started
    cpu_after = cpu_now(cluster)
    cpu = {k: cpu_after[k] - cpu_before[k] for k in cpu_after}
    last = chunks.aggregate(t=Max("finished_at"))["t"]
    seconds = (last - t0).total_seconds()
    per_chunk = [c.result.get("seconds", 0.0) for c in chunks]
    if kind == "forecasts":
        done = sum(c.result.get("n_forecasts", 0) for c in chunks)
    else:
        done = sum(c.result.get("logs", 0) for c in chunks)
    statuses = {s: chunks.filter(status=s).count() for s in (ChunkStatus.DONE, ChunkStatus.SKIPPED)}
    return {"seconds": seconds, "wall": wall, "items": done, "chunks": dispatched["created"], "cpu": cpu,
            "chunk_median_s": statistics.median(per_chunk) if per_chunk else 0.0, "statuses": statuses}


def make_outcomes_due(person_ids: list[int]) -> int:
    """Move the bench's batch forecasts 150 minutes back, into the stored readings, and make them due."""
    from django.db import connection

    from predictions.models import PredictionLog

    table = PredictionLog._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""UPDATE {table} SET
                    points = (SELECT jsonb_agg(p || jsonb_build_object('time', to_char(
                        ((p->>'time')::timestamptz - interval '150 minutes') AT TIME ZONE 'UTC',
                        'YYYY-MM-DD"T"HH24:MI:SS"Z"'))) FROM jsonb_array_elements(points) AS p),
                    issued_at = issued_at - interval '150 minutes',
                    outcome_pending = true, outcomes_next_at = now() - interval '1 minute'
                WHERE source = 'batch' AND person_id = ANY(%s)""",
            [person_ids],
        )
        return cursor.rowcount


def run(person_ids: list[int], workers: int, redis: str | None, repeats: int) -> dict:
    from predictions.models import PredictionLog

    label = "Redis" if redis else "ORM"
    broker_for(redis)
    cluster = Cluster(workers, redis)
    try:
        warm_up(cluster, workers)
        forecasts, outcomes = [], []
        for _ in range(repeats):
            PredictionLog.objects.filter(person_id__in=person_ids, source="batch").delete()
            forecasts.append(time_cycle("forecasts", person_ids, cluster))
            make_outcomes_due(person_ids)
            outcomes.append(time_cycle("outcomes", person_ids, cluster))
    finally:
        cluster.stop()
    out = {"broker": label, "workers": workers}
    for name, runs in (("forecasts", forecasts), ("outcomes", outcomes)):
        seconds = statistics.median(r["seconds"] for r in runs)
        items = statistics.median(r["items"] for r in runs)
        cpu_ms = {k: statistics.median(1000 * r["cpu"][k] / max(r["items"], 1) for r in runs) for k in ("workers", "db")}
        out[name] = {"seconds": seconds, "items": items, "per_s": items / seconds, "per_worker_s": items / seconds / workers,
                     "cpu_ms": cpu_ms,
                     "chunks": runs[-1]["chunks"], "chunk_median_s": statistics.median(r["chunk_median_s"] for r in runs),
                     "statuses": runs[-1]["statuses"]}
        print(f"  {label:5} {workers} worker{'s' if workers > 1 else ' '} {name:9}: cycle {seconds:7.1f} s for "
              f"{items:,.0f} {'forecasts' if name == 'forecasts' else 'forecasts scored'} in {out[name]['chunks']} chunks "
              f"(median chunk {out[name]['chunk_median_s']:.2f} s) -> {out[name]['per_s']:,.0f}/s, "
              f"{out[name]['per_worker_s']:,.0f}/s per worker; CPU per item: workers {cpu_ms['workers']:.2f} ms + "
              f"database {cpu_ms['db']:.2f} ms  {dict((str(k), v) for k, v in runs[-1]['statuses'].items())}", flush=True)
    return out


def database_sizes() -> dict:
    from django.db import connection

    from observations.models import Observation
    from predictions.models import PredictionLog

    with connection.cursor() as cursor:
        out = {}
        for model in (Observation, PredictionLog):
            table = model._meta.db_table
            # Live rows as stored (dead rows of the bench's own deletes and updates left out).
            cursor.execute(f"SELECT count(*), coalesce(avg(pg_column_size(t.*)), 0) FROM {table} AS t")
            rows, row_bytes = cursor.fetchone()
            cursor.execute(f"SELECT pg_indexes_size('{table}')")
            index_bytes = cursor.fetchone()[0]
            out[table] = (rows, float(row_bytes), index_bytes)
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--models", type=int, default=5, help="really trained models the people share")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-redis", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    setup_django()
    from django.conf import settings

    t = time.perf_counter()
    person_ids = ensure_people(args.people)
    ensure_models(person_ids, args.models)
    refresh_readings(person_ids)
    print(f"set-up: {len(person_ids):,} people with 3 h of readings and a model each (sharing {args.models} "
          f"artifacts) in {time.perf_counter() - t:.0f} s; chunk size {settings.GLUCAST_BATCH_CHUNK_SIZE}")

    brokers = [None]
    if not args.no_redis:
        url = redis_url()
        if url:
            brokers.append(url)
    results = []
    for broker in brokers:
        for workers in [int(w) for w in args.workers.split(",")]:
            results.append(run(person_ids, workers, broker, args.repeats))

    print("\nScaling (same run):")
    for broker in {r["broker"] for r in results}:
        rows = sorted((r for r in results if r["broker"] == broker), key=lambda r: r["workers"])
        if len(rows) > 1:
            for name in ("forecasts", "outcomes"):
                ratio = rows[0][name]["seconds"] / rows[-1][name]["seconds"]
                print(f"  {broker}: {name} cycle {rows[0]['workers']} -> {rows[-1]['workers']} workers: "
                      f"{ratio:.2f}x faster")
    sizes = database_sizes()
    for table, (rows, row_bytes, index_bytes) in sizes.items():
        print(f"  {table}: {rows:,} rows, {row_bytes:,.0f} bytes per row (pg_column_size) + indexes "
              f"{index_bytes / 2**20:,.0f} MB (bloated by the bench's deletes; a lower bound is ~40 bytes per row per index)")
    load = os.getloadavg()
    print(f"  machine: {os.cpu_count()} cores, load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}")


if __name__ == "__main__":
    main()
