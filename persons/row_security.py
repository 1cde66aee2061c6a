"""Row-security contexts: which person's rows the current database connection may see.

The policies (config/rls.py) admit a per-person row only when its person is the one set here
(`glucast.person_id`) or the connection is in the explicit, named context for everyone
(`glucast.scope` = 'all'). With neither, no per-person row is visible. This module is the one
place that sets them; it is in the lowest app so every app's tasks can use it.

- `for_person(person_id)` / `everyone("why")`: around a task's or command's work. Inside a
  transaction they are transaction-local (SET LOCAL via set_config(..., true)); outside one the
  session's setting, reset when the block ends. Nested blocks restore what was there before.
- `use_person_of(user)` / `use_everyone_for_request(why)` / `clear_for_request()`: inside the
  web request's transaction (config.rls.RowSecurityMiddleware), gone at its commit.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

from django.db import connection

from persons.models import Person

logger = logging.getLogger(__name__)

PERSON_SETTING = "glucast.person_id"
USER_SETTING = "glucast.user_id"
SCOPE_SETTING = "glucast.scope"
EVERYONE = "all"
_SETTINGS = (PERSON_SETTING, USER_SETTING, SCOPE_SETTING)


# --- Contexts ----------------------------------------------------------------------------------


def _current() -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(f"current_setting('{name}', true)" for name in _SETTINGS))
        return dict(zip(_SETTINGS, (value or "" for value in cursor.fetchone())))


def _set(values: dict[str, str], *, local: bool) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT " + ", ".join("set_config(%s, %s, %s)" for _ in values),
            [item for name, value in values.items() for item in (name, value, local)],
        )


@contextmanager
def context_block(values: dict[str, str]):
    """Set the context for the block and restore what was there before, even when nested.

    Inside a transaction the settings are transaction-local (SET LOCAL); outside one (a task, a
    command, a shell) they are set for the session and reset when the block ends.
    """
    local = connection.in_atomic_block
    before = _current()
    _set({**dict.fromkeys(_SETTINGS, ""), **values}, local=local)
    try:
        yield
    finally:
        if connection.connection is not None and not connection.needs_rollback:
            try:
                _set(before, local=local)
            except Exception:  # the connection broke: it goes, and its settings with it
                logger.warning("Could not restore the row-security context; closing the connection")
                connection.close()


def for_person(person_id: int):
    """Only this person's rows are visible and writable in the block."""
    return context_block({PERSON_SETTING: str(int(person_id))})


def everyone(reason: str):
    """The explicit context for work over many people (staff screens, batch jobs, operators'
    commands). `reason` names it in the log."""
    logger.debug("row security: everyone (%s)", reason)
    return context_block({SCOPE_SETTING: EVERYONE})


def use_person_of(user) -> None:
    """In the request's transaction: the logged-in account's person (and nothing else) from now
    to the end of the transaction. One statement: PostgreSQL evaluates the select list in order,
    so the account is set before the subquery (an init plan, run when first needed) reads the
    account's own person row, which the policy on persons_person admits by that account."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config(%s, '', true), set_config(%s, %s, true), "
            f"set_config(%s, COALESCE((SELECT id::text FROM {Person._meta.db_table} WHERE owner_id = %s), ''), true)",
            [SCOPE_SETTING, USER_SETTING, str(user.pk), PERSON_SETTING, user.pk],
        )


def clear_for_request() -> None:
    """No per-person rows for the rest of the transaction (an anonymous request)."""
    _set(dict.fromkeys(_SETTINGS, ""), local=True)


def use_everyone_for_request(reason: str) -> None:
    logger.debug("row security: everyone for a request (%s)", reason)
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config(%s, %s, true)", [SCOPE_SETTING, EVERYONE])


class EveryoneCommand:
    """Mixin for management commands (before BaseCommand): operators' commands work over many
    people, in the explicit context for everyone, named after the command."""

    def execute(self, *args, **options):
        with everyone(f"manage.py {self.__module__.rsplit('.', 1)[-1]}"):
            return super().execute(*args, **options)
