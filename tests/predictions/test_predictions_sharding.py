"""Sharded batch forecasts and outcome matching (predictions/sharding.py): chunks of people that
any worker takes, idempotent, safe to retry, no double work when cycles overlap — in-process and
with a REAL django-q2 cluster of two worker processes."""

import datetime as dt
import threading
import time
from collections import Counter

import pytest
from django.db import connection, connections
from django.utils import timezone

from predictions import sharding
from predictions.batch import predict_batch
from predictions.models import BatchChunk, ChunkKind, ChunkStatus, PredictionLog
from tests.factories import PersonFactory
from tests.workers import running_qcluster
from tests.predictions.conftest import recent_readings, register_model, store_readings


@pytest.fixture
def small_chunks(settings):
    settings.GLUCAST_BATCH_CHUNK_SIZE = 2
    return 2


def _people(n_with_model: int = 3, n_without: int = 2, n_stale: int = 1, hours: float = 4):
    people = []
    for i in range(n_with_model + n_without):
        person = PersonFactory()
        store_readings(person, recent_readings(hours=hours, seed=i))
        if i < n_with_model:
            register_model(person)
        people.append(person)
    for _ in range(n_stale):
        stale = PersonFactory()
        store_readings(stale, recent_readings(hours=4, end=timezone.now() - dt.timedelta(hours=1)))
    return people


def _run_all(kind, now=None) -> list[dict]:
    ids = BatchChunk.objects.filter(kind=kind, status=ChunkStatus.QUEUED).order_by("slot").values_list("pk", flat=True)
    return [sharding.run_chunk(pk, now=now) for pk in ids]


@pytest.mark.django_db
def test_a_cycle_is_dispatched_once_and_its_chunks_forecast_everyone_once(small_chunks):
    fresh = _people()
    now = timezone.now()

    # The schedule firing twice within one cycle, whatever the clock: 30 s apart, both inside the
    # 5-minute cycle that `now` falls in (the later one, unless `now` is in its last 30 s).
    later = now + dt.timedelta(seconds=30)
    if sharding.cycle_of(later) != sharding.cycle_of(now):
        now, later = now - dt.timedelta(seconds=30), now
    first = sharding.dispatch(ChunkKind.FORECASTS, now=now, enqueue=False)
    again = sharding.dispatch(ChunkKind.FORECASTS, now=later, enqueue=False)

    from persons.models import Person

    slots = {pk // small_chunks for pk in Person.objects.values_list("pk", flat=True)}
    assert first["created"] == first["slots"] == len(slots) > 1
    assert again["created"] == 0  # same cycle: the schedule fired twice, nothing new
    results = _run_all(ChunkKind.FORECASTS)
    assert all(r["status"] == "done" for r in results)
    per_person = Counter(PredictionLog.objects.values_list("person_id", flat=True))
    assert per_person == Counter({p.pk: 1 for p in fresh})  # everyone fresh, once; the stale one not
    assert sum(r.get("n_forecasts", 0) for r in results) == len(fresh)


@pytest.mark.django_db
def test_a_retried_chunk_does_nothing_and_a_failed_one_leaves_nothing_behind(small_chunks, monkeypatch):
    _people(n_with_model=2, n_without=1, n_stale=0)
    sharding.dispatch(ChunkKind.FORECASTS, enqueue=False)
    chunk = BatchChunk.objects.order_by("slot").first()

    # A worker that dies after storing the forecasts but before the chunk is marked done: the
    # forecasts roll back with it, and the retry does the whole chunk.
    real = sharding.predict_batch

    def dies_after_storing(*args, **kwargs):
        real(*args, **kwargs)
        raise RuntimeError("worker lost")

    monkeypatch.setattr(sharding, "predict_batch", dies_after_storing)
    with pytest.raises(RuntimeError):
        sharding.run_chunk(chunk.pk)
    assert PredictionLog.objects.count() == 0
    assert BatchChunk.objects.get(pk=chunk.pk).status == ChunkStatus.QUEUED
    monkeypatch.setattr(sharding, "predict_batch", real)

    done = sharding.run_chunk(chunk.pk)
    stored = PredictionLog.objects.count()
    assert done["status"] == "done" and stored == done["n_forecasts"] > 0
    retried = sharding.run_chunk(chunk.pk)  # the broker hands the same chunk out again
    assert retried["status"] == "done" and retried["note"] == "already finished"
    assert PredictionLog.objects.count() == stored


@pytest.mark.django_db
def test_same_input_is_not_forecast_again_by_a_later_cycle(small_chunks):
    _people(n_with_model=1, n_without=1, n_stale=0)
    now = timezone.now()
    sharding.dispatch(ChunkKind.FORECASTS, now=now, enqueue=False)
    _run_all(ChunkKind.FORECASTS)
    sharding.dispatch(ChunkKind.FORECASTS, now=now + sharding.CYCLE, enqueue=False)
    later = _run_all(ChunkKind.FORECASTS)
    assert later and sum(r.get("n_forecasts", 0) for r in later) == 0
    assert sum(r.get("n_unchanged", 0) for r in later) == 2


@pytest.mark.django_db(transaction=True)
def test_a_chunk_whose_people_an_earlier_cycle_still_works_on_is_skipped(small_chunks):
    person = _people(n_with_model=0, n_without=1, n_stale=0)[0]
    slot = person.pk // small_chunks
    sharding.dispatch(ChunkKind.FORECASTS, enqueue=False)
    chunk = BatchChunk.objects.get(slot=slot)

    # Another worker, on its own connection, is still inside the earlier cycle's chunk for
    # this slot (it holds the slot's advisory lock until its transaction ends).
    holding, release = threading.Event(), threading.Event()

    def earlier_cycle():
        try:
            with connections["default"].cursor() as cursor:
                cursor.execute("BEGIN")
                cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [sharding.LOCK_KEYS[ChunkKind.FORECASTS], slot])
                holding.set()
                release.wait(30)
                cursor.execute("COMMIT")
        finally:
            connections["default"].close()

    thread = threading.Thread(target=earlier_cycle)
    thread.start()
    try:
        assert holding.wait(30)
        result = sharding.run_chunk(chunk.pk)
    finally:
        release.set()
        thread.join(30)
    assert result["status"] == "skipped"
    assert PredictionLog.objects.count() == 0
    # Once the earlier chunk is over, the next cycle's chunk does the work.
    sharding.dispatch(ChunkKind.FORECASTS, now=timezone.now() + sharding.CYCLE, enqueue=False)
    assert [r["status"] for r in _run_all(ChunkKind.FORECASTS)] == ["done"]
    assert PredictionLog.objects.filter(person=person).count() == 1


@pytest.mark.django_db
def test_outcome_matching_goes_by_chunks_of_people_with_lookups_due(small_chunks):
    people = _people(n_with_model=1, n_without=2, n_stale=0, hours=8)
    issued = timezone.now() - dt.timedelta(hours=3)
    # Forecasts made three hours ago from the readings then: every point is due now.
    predict_batch(people, now=issued)
    n_logs = PredictionLog.objects.count()
    assert n_logs >= 2  # the synthetic sensor may have dropped out for one of them

    dispatched = sharding.dispatch(ChunkKind.OUTCOMES, enqueue=False)
    slots = set(PredictionLog.objects.values_list("person_id", flat=True))
    assert dispatched["created"] == len({pk // small_chunks for pk in slots})
    results = _run_all(ChunkKind.OUTCOMES)
    assert sum(r["logs"] for r in results) == n_logs
    assert sum(r["matched"] + r["missing"] for r in results) == 3 * n_logs  # 30/60/120 min
    assert not PredictionLog.objects.filter(outcome_pending=True).exists()
    # Nothing is due any more: the next cycle has no chunk of outcomes.
    assert sharding.dispatch(ChunkKind.OUTCOMES, now=timezone.now() + sharding.CYCLE, enqueue=False)["created"] == 0


# --- A real cluster -------------------------------------------------------------------------------


@pytest.fixture
def cluster(artifact_root, tmp_path):
    """`manage.py qcluster` with TWO worker processes on the test database."""
    log_path = tmp_path / "qcluster.log"
    with running_qcluster(artifact_root=artifact_root, log_path=log_path,
                          GLUCAST_Q_WORKERS="2", GLUCAST_BATCH_CHUNK_SIZE="2") as process:
        yield process, log_path


def _wait_until_finished(kind, process, log_path, timeout_s=180) -> list[BatchChunk]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        chunks = list(BatchChunk.objects.filter(kind=kind))
        if chunks and all(c.status != ChunkStatus.QUEUED for c in chunks):
            return chunks
        if process.poll() is not None:
            pytest.fail(f"qcluster exited ({process.returncode}):\n{log_path.read_text()[-3000:]}")
        time.sleep(0.2)
    pytest.fail(f"chunks still queued after {timeout_s}s\n{log_path.read_text()[-3000:]}")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_real_workers_share_a_cycle_and_a_double_enqueue_does_no_double_work(small_chunks, cluster):
    from django_q.models import Task
    from django_q.tasks import async_task

    process, log_path = cluster
    fresh = _people(n_with_model=3, n_without=3, n_stale=1)

    # Both firings at one moment of one cycle: with a fresh clock each, a cycle that ended
    # between them (during the first one's enqueueing, e.g. at 10:04:59.95) made the second a new cycle.
    now = timezone.now()
    dispatched = sharding.dispatch(ChunkKind.FORECASTS, now=now)  # autocommit: enqueued at once
    assert dispatched["created"] > 2
    duplicate = sharding.dispatch(ChunkKind.FORECASTS, now=now)  # the schedule fires twice in a cycle
    assert duplicate["created"] == 0
    chunks = _wait_until_finished(ChunkKind.FORECASTS, process, log_path)
    assert {c.status for c in chunks} == {ChunkStatus.DONE}
    per_person = Counter(PredictionLog.objects.values_list("person_id", flat=True))
    assert per_person == Counter({p.pk: 1 for p in fresh})

    # The broker hands every chunk out once more (a retry after a lost acknowledgement).
    for chunk in chunks:
        async_task(sharding.RUN_TASK, chunk.pk, task_name=f"again-{chunk.pk}", group="batch-again")
    deadline = time.monotonic() + 120
    while Task.objects.filter(group="batch-again").count() < len(chunks):
        assert time.monotonic() < deadline, log_path.read_text()[-3000:]
        time.sleep(0.2)
    again = Task.objects.filter(group="batch-again")
    assert all(t.success and t.result["note"] == "already finished" for t in again)
    assert PredictionLog.objects.count() == len(fresh)

    first_runs = Task.objects.filter(group="batch")
    assert first_runs.count() == len(chunks) and all(t.success for t in first_runs)
