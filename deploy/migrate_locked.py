#!/usr/bin/env python
"""Wait for the database, then apply migrations holding a PostgreSQL advisory lock.

deploy/entrypoint.sh runs this before the web server or the worker starts. Every replica
runs it; the lock lets one of them migrate while the others wait for it and then find
nothing left to do. The lock belongs to the database session, so a replica that dies
mid-way releases it.

    python deploy/migrate_locked.py [--wait SECONDS] [--lock-timeout SECONDS] [--no-migrate]

--wait: how long to keep retrying an unreachable database (once a second) before giving
up with exit status 1. --lock-timeout: how long to wait for another replica's
migrations (exit status 2 after it). --no-migrate: only wait for the database.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# One fixed 64-bit key for "RRA migrations" (pg_advisory_lock takes a bigint).
LOCK_KEY = 0x5252_415F_4D49_4752  # "RRA_MIGR"


def log(message: str) -> None:
    print(f"migrate_locked: {message}", file=sys.stderr, flush=True)


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rra.settings")
    # A one-off process: a plain connection, whose session (and so the advisory lock)
    # lives exactly as long as Django keeps it, rather than a connection pool.
    os.environ["DB_POOL"] = "false"
    import django

    django.setup()


def wait_for_database(timeout: float) -> None:
    from django.db import connection

    deadline = time.monotonic() + timeout
    attempt = 0
    while True:
        attempt += 1
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            if attempt > 1:
                log(f"database reachable after {attempt} attempts")
            return
        except Exception as exc:  # OperationalError, DNS not resolvable yet, ...
            connection.close()
            reason = " ".join(str(exc).split())[:200] or type(exc).__name__
            if time.monotonic() >= deadline:
                log(f"giving up: the database is unreachable after {timeout:g} s ({reason})")
                raise SystemExit(1) from None
            if attempt == 1 or attempt % 10 == 0:
                log(f"waiting for the database ({reason})")
            time.sleep(1)


def migrate_locked(lock_timeout: float, verbosity: int) -> None:
    from django.core.management import call_command
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY])
        (locked,) = cursor.fetchone()
        if not locked:
            log("another process is applying migrations; waiting for it")
            started = time.monotonic()
            # Polled, not a blocking pg_advisory_lock(): a waiter blocked in a statement
            # holds a snapshot, and a migration that builds an index CONCURRENTLY waits
            # for every such transaction, while the waiter waits for its lock: a deadlock
            # (documents 0008). Between polls this session holds no transaction.
            while not locked:
                if time.monotonic() - started >= lock_timeout:
                    log(f"giving up: the migration lock was not free after {lock_timeout:g} s")
                    raise SystemExit(2)
                time.sleep(0.5)
                cursor.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY])
                (locked,) = cursor.fetchone()
            log(f"got the migration lock after {time.monotonic() - started:.1f} s")
    try:
        call_command("migrate", interactive=False, verbosity=verbosity)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])
        connection.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wait", type=float, default=60.0, metavar="SECONDS")
    parser.add_argument("--lock-timeout", type=float, default=600.0, metavar="SECONDS")
    parser.add_argument("--no-migrate", action="store_true")
    parser.add_argument("--verbosity", type=int, default=1, choices=(0, 1, 2, 3))
    args = parser.parse_args(argv)

    setup_django()
    wait_for_database(args.wait)
    if not args.no_migrate:
        migrate_locked(args.lock_timeout, args.verbosity)
    return 0


if __name__ == "__main__":
    sys.exit(main())
