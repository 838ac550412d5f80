"""The database connection pool: psycopg_pool's ConnectionPool, with its reconnection
delay capped and a health check that costs no round trip on a busy connection.

Django builds the pool (``OPTIONS["pool"]``, Django 5.1+) through the backend's ``pool``
property; rra/postgres/base.py builds this class instead, with the same arguments, and
the options of ``DATABASES["default"]["OPTIONS"]["pool"]`` reach it as they reach
psycopg_pool's (``max_reconnect_delay`` and ``check_after`` are this class's own).

**Reconnection.** When the server goes away, psycopg_pool tries again after 1, 2, 4,
8, 16 s... (``AttemptWithBackoff``), up to ``reconnect_timeout``: after an outage of
18.7 s the site served again only 9.7 s after the server was back (bench/db_restart.py).
Here the delay between two attempts never exceeds ``max_reconnect_delay`` (1 s unless
set: one connection attempt a second per pool while the server is down), so the pool
finds the server within about that long of its return, whatever the outage's length.
The same cap holds for the pause between two connections that fail their check in one
``getconn()``. (Both are psycopg_pool 3.3's methods with the capped attempt in place of
its own; requirements.txt pins the version they follow.)

**Check.** Django asks the pool to check every connection it hands out
(``CONN_HEALTH_CHECKS``): psycopg_pool's check sends an empty query, one round trip per
request that touches the database, on top of the request's own queries. A connection
that the server ended (a restart, an administrator's terminate) has something to read
while idle: the server's FATAL message, then the end of the stream. So this check looks
at the socket first (no waiting) and sends the empty query only when there is something
to read, or when the connection sat in the pool unused for ``check_after`` seconds (5 s
unless set), as psycopg_pool's check always does. A connection lost without a word (a
dropped network path) while in use every few seconds is then found by the request's
own query, which answers 503 ``database_unavailable`` as a failed check's wait would
after ``DB_POOL_TIMEOUT``.
"""

from __future__ import annotations

import select
from time import monotonic

import psycopg
import psycopg_pool
from psycopg_pool.base import AttemptWithBackoff
from psycopg_pool.errors import PoolTimeout

_CHECKED_AT = "_rra_checked_at"


class CappedAttempt(AttemptWithBackoff):
    """psycopg_pool's exponential backoff, never longer than ``max_delay`` seconds
    between two attempts."""

    def __init__(self, *, timeout: float, max_delay: float) -> None:
        super().__init__(timeout=timeout)
        self.max_delay = max_delay

    def update_delay(self, now: float) -> None:
        super().update_delay(now)
        self.delay = min(self.delay, self.max_delay)


class ConnectionPool(psycopg_pool.ConnectionPool):
    def __init__(
        self, *args, max_reconnect_delay: float = 1.0, check_after: float = 5.0, **kwargs
    ) -> None:
        if max_reconnect_delay <= 0:
            raise ValueError("max_reconnect_delay must be positive")
        self.max_reconnect_delay = max_reconnect_delay
        self.check_after = check_after
        super().__init__(*args, **kwargs)

    def _attempt(self, timeout: float) -> CappedAttempt:
        return CappedAttempt(timeout=timeout, max_delay=self.max_reconnect_delay)

    def _add_connection(self, attempt: AttemptWithBackoff | None, growing: bool = False) -> None:
        if attempt is None:
            attempt = self._attempt(self.reconnect_timeout)
        super()._add_connection(attempt, growing=growing)

    def _getconn_with_check_loop(self, deadline: float):
        # psycopg_pool 3.3's, with the capped attempt.
        attempt: CappedAttempt | None = None
        while True:
            conn = self._getconn_unchecked(deadline - monotonic())
            try:
                self._check_connection(conn)
            except Exception:
                self._putconn(conn, from_getconn=True)
            except BaseException:
                self._putconn(conn, from_getconn=True)
                raise
            else:
                return conn
            now = monotonic()
            if not attempt:
                attempt = self._attempt(deadline - now)
            else:
                attempt.update_delay(now)
            if attempt.time_to_give_up(now):
                raise PoolTimeout()
            psycopg_pool.pool.sleep(attempt.delay)


def quick_check(conn: psycopg.Connection) -> None:
    """The pool's check (``check=quick_check``): raises when the connection is unusable.
    The empty query only when the socket has something to read while the connection is
    idle, or it sat in the pool unused for its pool's ``check_after`` seconds."""
    if conn.closed or conn.broken:
        raise psycopg.OperationalError("the connection is closed")
    now = monotonic()
    checked_at = getattr(conn, _CHECKED_AT, None)
    check_after = getattr(getattr(conn, "_pool", None), "check_after", 0.0)
    if checked_at is None or now - checked_at >= check_after or _readable(conn):
        psycopg_pool.ConnectionPool.check_connection(conn)
    setattr(conn, _CHECKED_AT, now)


def _readable(conn: psycopg.Connection) -> bool:
    """Whether the idle connection's socket has anything to read (the server's FATAL
    message and the end of the stream, after it ended the connection), without waiting.
    True when it cannot tell."""
    try:
        poller = select.poll()
        poller.register(conn.fileno(), select.POLLIN | select.POLLPRI)
        return bool(poller.poll(0))
    except (OSError, ValueError, psycopg.Error):
        return True
