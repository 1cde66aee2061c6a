"""PostgreSQL row-level security: the second wall behind the ownership querysets.

Every table with per-person rows (found from the models: Person itself and every table with a
foreign key or one-to-one link to it, so a new table is covered by the next `migrate`) has ENABLE and FORCE ROW
LEVEL SECURITY and one policy, `glucast_person_rows`, that admits a row only when

- its person is the one set for the current transaction (`glucast.person_id`), or
- the connection is in the explicit, named context for everyone (`glucast.scope` = 'all'),
  which staff screens, jobs over many people, operators' commands and the test harness enter
  on purpose (`everyone("why")`), never by leaving the setting out.

With neither setting a query sees no per-person rows at all. The app connects as a role without
SUPERUSER and BYPASSRLS (config/embedded_db.py creates it for the embedded server), so the
policies bind it; FORCE binds it although it owns the tables.

Where the settings come from:
- a web request: `RowSecurityMiddleware` runs the request in one transaction and sets them with
  set_config(..., is_local=true) (SET LOCAL: gone at commit, so they cannot leak to the next use
  of the connection): the logged-in person, 'all' for staff in the admin, nothing otherwise.
  Token-authenticated API calls set the person when DRF authenticates them (`PersonContext*`).
- a task or command: `for_person(person_id)` or `everyone("why")` (persons.row_security) around
  its work.
"""

from __future__ import annotations

from contextlib import nullcontext

from django.apps import apps
from django.db import connection, connections, transaction
from rest_framework.authentication import TokenAuthentication

from persons.models import Person

from persons.row_security import (
    EVERYONE,
    PERSON_SETTING,
    SCOPE_SETTING,
    USER_SETTING,
    context_block,
    clear_for_request,
    use_everyone_for_request,
    use_person_of,
)

POLICY = "glucast_person_rows"


# --- The policies ------------------------------------------------------------------------------


def per_person_tables() -> list[tuple[str, str]]:
    """(table, person column) of every table with per-person rows, from the installed models."""
    tables = [(Person._meta.db_table, "id")]
    for model in apps.get_models():
        if model._meta.proxy or not model._meta.managed:
            continue
        for field in model._meta.concrete_fields:
            if (field.many_to_one or field.one_to_one) and field.related_model is Person:
                tables.append((model._meta.db_table, field.column))
    return sorted(set(tables))


def _admits(table: str, column: str) -> str:
    scope = f"current_setting('{SCOPE_SETTING}', true) = '{EVERYONE}'"
    own = f"{column} = NULLIF(current_setting('{PERSON_SETTING}', true), '')::bigint"
    if column == "id":  # persons_person: also the logged-in account's own row, to find the person
        owner = f"owner_id = NULLIF(current_setting('{USER_SETTING}', true), '')::bigint"
        return f"({scope} OR {own} OR {owner})"
    return f"({scope} OR {own})"


def apply_row_level_security(using: str = "default") -> list[str]:
    """Enable, force and (re)create the policy on every per-person table; idempotent."""
    conn = connections[using]
    done = []
    with conn.cursor() as cursor:
        for table, column in per_person_tables():
            if table not in conn.introspection.table_names(cursor):
                continue
            quoted = conn.ops.quote_name(table)
            admits = _admits(table, column)
            cursor.execute(f"ALTER TABLE {quoted} ENABLE ROW LEVEL SECURITY")
            cursor.execute(f"ALTER TABLE {quoted} FORCE ROW LEVEL SECURITY")
            cursor.execute(f"DROP POLICY IF EXISTS {POLICY} ON {quoted}")
            cursor.execute(f"CREATE POLICY {POLICY} ON {quoted} USING {admits} WITH CHECK {admits}")
            done.append(table)
    return done


def apply_after_migrate(sender, using="default", **kwargs) -> None:
    """post_migrate receiver (config.apps): every migrate leaves every per-person table covered.

    Django sends post_migrate once per app with models, after all migrations ran; acting on the
    last of them does the work once."""
    with_models = [config for config in apps.get_app_configs() if config.models_module is not None]
    if with_models and sender.label == with_models[-1].label:
        apply_row_level_security(using)


# --- The request path -------------------------------------------------------------------------


def _is_staff_screen(request) -> bool:
    user = getattr(request, "user", None)
    return bool(
        user is not None and user.is_authenticated and user.is_active and user.is_staff
        and request.path.startswith("/admin/")
    )


class RowSecurityMiddleware:
    """After AuthenticationMiddleware: the request runs in one transaction whose row-security
    context is the logged-in person, 'all' for staff in the admin, or nothing (anonymous; an API
    token sets its person when DRF authenticates it). A 5xx rolls the transaction back."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        # Normally the request's transaction is the outermost one and its SET LOCALs end with it.
        # Inside another transaction (the test client in a test's transaction) the context
        # before the request is put back after it.
        nested = connection.in_atomic_block
        with transaction.atomic():
            with context_block({}) if nested else nullcontext():
                user = getattr(request, "user", None)
                if _is_staff_screen(request):
                    use_everyone_for_request("admin")
                elif user is not None and user.is_authenticated:
                    use_person_of(user)
                elif not request.headers.get("Authorization", "").startswith("Token "):
                    clear_for_request()  # (a token's person is set when DRF authenticates it)
                response = self.get_response(request)
                if response.status_code >= 500:
                    transaction.set_rollback(True)
        return response


class PersonContextMixin:
    """For DRF authentication classes: the authenticated account's person becomes the context."""

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is not None and connection.in_atomic_block:
            use_person_of(result[0])
        return result


class PersonTokenAuthentication(PersonContextMixin, TokenAuthentication):
    """DRF's token authentication; the token's person becomes the row-security context."""
