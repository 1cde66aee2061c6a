"""Scheduled work over everyone, in chunks that any django-q2 worker takes: the 5-minute batch
forecasts and outcome matching.

Why: one task forecasting everyone runs in one worker (1,000 people with their own models took
18.6 s, so 100,000 would take half an hour — six cycles late), and adding workers did not help.

How a cycle goes:

1. The schedule runs a *dispatcher* (`dispatch`) every 5 minutes. It names the cycle (the start
   of the current 5-minute period), finds the slots that have work — people are split into
   fixed id ranges of GLUCAST_BATCH_CHUNK_SIZE (slot = person id // size), so a chunk is a few
   seconds of work and a person is always in the same slot — and inserts one claim row
   (`BatchChunk`) per slot with ON CONFLICT DO NOTHING. Only the rows it actually created are
   enqueued, so a schedule that fires twice, or a dispatcher that is retried, enqueues nothing new.
2. Any worker runs a chunk (`run_chunk`) in ONE transaction: it locks the claim row (SKIP
   LOCKED: a chunk another worker holds is left to it), returns at once if the row is already
   done, does the work, and writes the results and `done` together. A crash in between rolls
   everything back and the broker's retry redoes the whole chunk; a retry after success finds
   `done`. Each chunk is idempotent and safe to retry.
3. A cycle that has not finished when the next starts does not double work: a chunk also holds a
   transaction-level advisory lock on (kind, slot), which spans cycles. When the next cycle's
   chunk for the same people finds it taken, the earlier cycle is still working on them and the
   new chunk is recorded as `skipped` (those people are forecast by the earlier chunk and again
   in the next cycle: under overload the batch sheds cycles, it never piles them up). Forecasts
   also skip people whose input did not change since their last batch forecast
   (predictions.batch), and outcome matching skips rows another transaction holds.

Claim rows are pruned with the prediction log (predictions.outcomes.prune_prediction_log).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from persons.models import Person
from predictions.batch import predict_batch
from predictions.models import BatchChunk, ChunkKind, ChunkStatus, PredictionLog
from predictions.outcomes import fill_outcomes

logger = logging.getLogger(__name__)

CYCLE = timedelta(minutes=5)
RUN_TASK = "predictions.tasks.run_batch_chunk_task"
# First key of the advisory locks on (kind, slot); the second is the slot.
LOCK_KEYS = {ChunkKind.FORECASTS: 0x67630001, ChunkKind.OUTCOMES: 0x67630002}
CLAIM_RETENTION = timedelta(days=2)


def chunk_size() -> int:
    return max(1, int(settings.GLUCAST_BATCH_CHUNK_SIZE))


def cycle_of(now: datetime) -> datetime:
    """The start of the 5-minute cycle `now` falls in (the name of that cycle's chunks)."""
    seconds = int(CYCLE.total_seconds())
    return datetime.fromtimestamp(int(now.timestamp()) // seconds * seconds, tz=now.tzinfo)


def _slots_with_work(kind: str, now: datetime, size: int) -> list[int]:
    """Slots that may have work: every slot holding people (forecasts: whether a person's data
    is fresh is decided in the chunk, from the readings it reads anyway), or the slots with
    outcome lookups due (from the partial index on due logs)."""
    if kind == ChunkKind.FORECASTS:
        sql = f"SELECT DISTINCT id / %s FROM {Person._meta.db_table} ORDER BY 1"
        params = [size]
    else:
        sql = (
            f"SELECT DISTINCT person_id / %s FROM {PredictionLog._meta.db_table} "
            "WHERE outcome_pending AND outcomes_next_at <= %s ORDER BY 1"
        )
        params = [size, now]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [int(row[0]) for row in cursor.fetchall()]


def dispatch(kind: str, *, now: datetime | None = None, enqueue: bool = True) -> dict:
    """Create this cycle's chunks of `kind` and enqueue the ones this call created."""
    now = now or timezone.now()
    cycle = cycle_of(now)
    size = chunk_size()
    slots = _slots_with_work(kind, now, size)
    table = BatchChunk._meta.db_table
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                INSERT INTO {table} (kind, cycle_at, slot, chunk_size, status, result, created_at)
                SELECT %s, %s, slot, %s, %s, '{{}}'::jsonb, now() FROM unnest(%s::int[]) AS slot
                ON CONFLICT (kind, cycle_at, slot) DO NOTHING
                RETURNING id
                """,
                [kind, cycle, size, ChunkStatus.QUEUED, slots],
            )
            created = sorted(row[0] for row in cursor.fetchall())
        if enqueue and created:
            transaction.on_commit(lambda: _enqueue(created))
    result = {"kind": kind, "cycle": cycle.isoformat(), "slots": len(slots), "created": len(created)}
    if slots and not created:
        logger.info("Cycle %s of %s was already dispatched; nothing enqueued", cycle, kind)
    return result


def _enqueue(chunk_ids: list[int]) -> None:
    from django_q.tasks import async_task

    for chunk_id in chunk_ids:
        try:
            async_task(RUN_TASK, chunk_id, task_name=f"chunk-{chunk_id}", group="batch")
        except Exception:  # the broker is down: this cycle's chunk is lost, the next cycle covers it
            logger.exception("Could not enqueue batch chunk %s", chunk_id)


def _take_slot(kind: str, slot: int) -> bool:
    """The advisory lock on (kind, slot) until this transaction ends; False if another holds it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [LOCK_KEYS[kind], slot])
        return bool(cursor.fetchone()[0])


def people_of_slot(slot: int, size: int) -> list[int]:
    return list(
        Person.objects.filter(pk__gte=slot * size, pk__lt=(slot + 1) * size).order_by("pk").values_list("pk", flat=True)
    )


def run_chunk(chunk_id: int, *, now: datetime | None = None) -> dict:
    """Do one chunk's work (see the module docstring); returns what happened."""
    started = time.perf_counter()
    with transaction.atomic():
        chunk = BatchChunk.objects.select_for_update(skip_locked=True).filter(pk=chunk_id).first()
        if chunk is None:
            held = BatchChunk.objects.filter(pk=chunk_id).exists()
            return {"chunk": chunk_id, "status": "running elsewhere" if held else "missing"}
        if chunk.status != ChunkStatus.QUEUED:
            return {"chunk": chunk_id, "status": chunk.status, "note": "already finished"}
        chunk.started_at = timezone.now()
        if not _take_slot(chunk.kind, chunk.slot):
            chunk.status = ChunkStatus.SKIPPED
            chunk.result = {"reason": "an earlier cycle is still working on these people"}
        else:
            people = people_of_slot(chunk.slot, chunk.chunk_size)
            work_now = now or timezone.now()
            if chunk.kind == ChunkKind.FORECASTS:
                outcome = predict_batch(people, now=work_now).as_dict() if people else {"n_forecasts": 0}
            else:
                outcome = fill_outcomes(work_now, person_ids=people) if people else {"logs": 0}
            chunk.status = ChunkStatus.DONE
            chunk.result = {"people": len(people), **outcome}
        chunk.finished_at = timezone.now()
        chunk.result["seconds"] = round(time.perf_counter() - started, 3)
        chunk.save(update_fields=["status", "result", "started_at", "finished_at"])
    return {"chunk": chunk_id, "kind": chunk.kind, "slot": chunk.slot, "status": chunk.status, **chunk.result}


def prune_claims(now: datetime | None = None) -> int:
    """Delete claim rows older than two days (they only matter while their cycle runs)."""
    now = now or timezone.now()
    deleted, _ = BatchChunk.objects.filter(created_at__lt=now - CLAIM_RETENTION).delete()
    return deleted
