"""Deletion that stays deleted: background writers re-check, in the same transaction as their
write, that the person's data was not erased since they began.

"Delete all my data" keeps the login (and the Person row) but bumps `Person.erasures` while it
holds the person's row locked (FOR UPDATE) in its transaction. A background writer (a training
job finishing, a window refresh, the batch forecast, outcome matching) takes the person's
`erasure_mark()` before it reads anything, and in the transaction of its write locks the row
FOR SHARE and compares (`check_not_erased` / `not_erased`):

- the writer first: the deletion waits for the writer's commit, then deletes what it wrote;
- the deletion first: the writer waits for it, then finds the mark changed and drops its
  write quietly (PersonErased for one person; the person left out for a batch).
"""

from __future__ import annotations

from django.db import connection

from persons.models import Person


class PersonErased(Exception):
    """The person's data was deleted while this work ran: nothing of it may be written."""


def erasure_mark(person_id: int) -> int | None:
    """The person's erasure count now (None: no such person)."""
    return Person.objects.filter(pk=person_id).values_list("erasures", flat=True).first()


def erasure_marks(person_ids) -> dict[int, int]:
    return dict(Person.objects.filter(pk__in=list(person_ids)).values_list("id", "erasures"))


def not_erased(marks: dict[int, int], *, skip_locked: bool = False) -> set[int]:
    """Inside the write's transaction: the people of `marks` whose data was not erased since
    their mark, their rows locked FOR SHARE until the transaction ends (a deletion waits).
    `skip_locked` leaves out people being erased right now instead of waiting for them."""
    if not marks:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, erasures FROM {Person._meta.db_table} WHERE id = ANY(%s) "
            f"FOR SHARE{' SKIP LOCKED' if skip_locked else ''}",
            [list(marks)],
        )
        return {pid for pid, erasures in cursor.fetchall() if erasures == marks[pid]}


def check_not_erased(person_id: int, mark: int | None) -> None:
    """Inside the write's transaction: raise PersonErased unless the person's data is as at `mark`."""
    if mark is None or person_id not in not_erased({person_id: mark}):
        raise PersonErased(f"person {person_id}'s data was deleted meanwhile")


def begin_erasure(person) -> None:
    """Inside the deletion's transaction, first: lock the person's row and bump the count, so
    every writer that began before sees the change (and waits for this transaction)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Person._meta.db_table} SET erasures = erasures + 1 WHERE id = %s", [person.pk]
        )


def lock_people(person_ids, *, skip_locked: bool = True) -> set[int]:
    """Inside a write's transaction that read its people's rows in the same transaction: lock
    them FOR SHARE (a deletion waits for this transaction) and return those present; with
    `skip_locked`, people being erased right now are left out instead of waited for."""
    ids = list(set(person_ids))
    if not ids:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {Person._meta.db_table} WHERE id = ANY(%s) FOR SHARE{' SKIP LOCKED' if skip_locked else ''}",
            [ids],
        )
        return {row[0] for row in cursor.fetchall()}


# What a per-person task returns when an erasure overtook it; its django-q result row (which
# names the person or their job) is then removed by `forget_erased_result`, the task's hook.
ERASED = "erased"


def forget_erased_result(task) -> None:
    """django-q2 hook (called when the task's result row is saved): an overtaken task leaves no
    result row naming the person behind."""
    if task.result == ERASED:
        task.delete()
