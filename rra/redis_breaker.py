"""A circuit breaker in front of Redis, for every client of the process (the caches,
the rate limits, the answers' streams).

When Redis stops answering (a partition, a stopped process), every command waits for
its socket timeout: pages took 2.5-4 s for their first request and 270 ms for each
after that, liveness included. After the first timeout or connection error the breaker
opens: for REDIS_BREAKER_S seconds every command fails at once with a ConnectionError
(which the callers already handle: the cache misses, sessions fall back to the
database, most rate limits fail open and sign-in's fail closed, answers answer 503).
Then a PING on a socket of its own, in a background thread, tries Redis (half-open):
a reply closes the breaker, none opens it again for REDIS_BREAKER_S; no request waits
for it (over TLS, one request's command is the probe instead). Readiness reports it ("degraded", rra/health.py).

One breaker per Redis server and process. It is a connection class: settings and
chats.answering.transport build their clients with connection_class_for(url).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from urllib.parse import urlsplit

import redis
from redis.connection import Connection, SSLConnection, UnixDomainSocketConnection

logger = logging.getLogger(__name__)

# What a partition looks like; a ResponseError is Redis answering.
_OUTAGE = (redis.ConnectionError, redis.TimeoutError, OSError)


class CircuitOpen(redis.ConnectionError):
    """Refused without trying: Redis did not answer a moment ago."""


class Breaker:
    def __init__(self, address: str = "") -> None:
        self.address = address  # host:port or a unix socket's path
        self._probing = False
        self._lock = threading.Lock()
        self._local = threading.local()
        self.open_until = 0.0  # monotonic; 0: closed
        self.trips = 0
        self.refused = 0
        self.attempts = 0  # commands and connections let through (for tests, benches)

    @staticmethod
    def _seconds() -> float:
        from django.conf import settings

        return getattr(settings, "REDIS_BREAKER_S", 5.0)

    @property
    def is_open(self) -> bool:
        return self.open_until > 0

    @property
    def refusing(self) -> bool:
        """Open and within its open period: a command now would be refused. (After the
        period the next command goes on to before(), which starts the half-open try.)"""
        until = self.open_until
        return bool(until) and time.monotonic() < until

    def before(self) -> None:
        """Let a command through, or raise CircuitOpen."""
        if getattr(self._local, "probe", False):
            self.attempts += 1
            return
        with self._lock:
            if not self.open_until:
                self.attempts += 1
                return
            now = time.monotonic()
            if now >= self.open_until and not self._can_ping():
                # Half-open (a TLS server): this request tries; the others are refused.
                self.open_until = now + self._seconds()
                self._local.probe = True
                self.attempts += 1
                return
            if now >= self.open_until and not self._probing:
                # Half-open: a background PING tries, no request waits for it.
                self._probing = True
                self.open_until = now + self._seconds()
                threading.Thread(target=self._ping, name="redis-breaker", daemon=True).start()
            self.refused += 1
            raise CircuitOpen("Redis did not answer a moment ago (circuit open)")

    def failed(self, exc: BaseException) -> None:
        self._local.probe = False
        with self._lock:
            was_open = bool(self.open_until)
            self.open_until = time.monotonic() + self._seconds()
            if not was_open:
                self.trips += 1
        if not was_open:
            logger.warning(
                "Redis does not answer (%s: %s): commands fail at once for %.1f s",
                type(exc).__name__,
                exc,
                self._seconds(),
            )

    def succeeded(self) -> None:
        if getattr(self._local, "probe", False) or self.open_until:
            self._local.probe = False
            with self._lock:
                was_open = bool(self.open_until)
                self.open_until = 0.0
            if was_open:
                logger.warning("Redis answers again: circuit closed")

    def _can_ping(self) -> bool:
        return bool(self.address) and not self.address.startswith("tls:")

    def _ping(self) -> None:
        """PING on a socket of its own within the socket timeout: any reply (even an
        error such as NOAUTH) means Redis answers again, and the breaker closes."""
        import socket

        from django.conf import settings

        timeout = getattr(settings, "REDIS_SOCKET_TIMEOUT", 0.5)
        answered, error = False, OSError("no reply")
        try:
            if self.address.startswith("/"):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(timeout)
                sock.connect(self.address)
            else:
                host, _, port = self.address.rpartition(":")
                sock = socket.create_connection((host, int(port)), timeout=timeout)
            with sock:
                sock.sendall(b"PING\r\n")
                answered = bool(sock.recv(64))
        except OSError as exc:
            error = exc
        with self._lock:
            self._probing = False
        if answered:
            self.succeeded()
        else:
            self.failed(error)

    def reset(self) -> None:
        with self._lock:
            self.open_until = 0.0
        self._local.probe = False


_breakers: dict[str, Breaker] = {}
_breakers_lock = threading.Lock()


def breaker_for(address: str) -> Breaker:
    """One breaker per Redis server (host:port or socket path) in this process."""
    with _breakers_lock:
        if address not in _breakers:
            _breakers[address] = Breaker(address)
        return _breakers[address]


def breakers() -> dict[str, Breaker]:
    with _breakers_lock:
        return dict(_breakers)


@functools.lru_cache(maxsize=64)
def address_of(url: str) -> str:
    """The breaker's address for a Redis URL, as its connections name it."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    address = f"{parts.hostname or 'localhost'}:{parts.port or 6379}"
    return "tls:" + address if parts.scheme == "rediss" else address


def refusing(url: str) -> bool:
    """True while the breaker of this Redis refuses commands: a caller that can do
    without Redis (the query cache, the sessions' cache) skips it instead of being
    refused."""
    with _breakers_lock:
        found = _breakers.get(address_of(url))
    return found is not None and found.refusing


class QuietWhileOpen(logging.Filter):
    """Drops the log record of a cache command the open breaker refused: the trip was
    logged once, a traceback per refused command says nothing more (and cost each
    request a few milliseconds of formatting while Redis was away)."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        while error is not None:
            if isinstance(error, CircuitOpen):
                return False
            error = error.__cause__
        return True


def reset_all() -> None:
    for breaker in breakers().values():
        breaker.reset()


class _Guarded:
    @property
    def breaker(self) -> Breaker:
        found = self.__dict__.get("_rra_breaker")
        if found is None:
            path = getattr(self, "path", None)
            address = path or f"{getattr(self, 'host', '')}:{getattr(self, 'port', '')}"
            if isinstance(self, SSLConnection):
                address = "tls:" + address  # no plain PING: a request tries instead
            found = self.__dict__["_rra_breaker"] = breaker_for(address)
        return found

    def connect(self, *args, **kwargs):
        self.breaker.before()
        try:
            return super().connect(*args, **kwargs)
        except _OUTAGE as exc:
            if not isinstance(exc, CircuitOpen):
                self.breaker.failed(exc)
            raise

    def send_packed_command(self, *args, **kwargs):
        self.breaker.before()
        try:
            return super().send_packed_command(*args, **kwargs)
        except _OUTAGE as exc:
            if not isinstance(exc, CircuitOpen):
                self.breaker.failed(exc)
            raise

    def read_response(self, *args, **kwargs):
        try:
            response = super().read_response(*args, **kwargs)
        except _OUTAGE as exc:
            if not isinstance(exc, CircuitOpen):
                self.breaker.failed(exc)
            raise
        self.breaker.succeeded()
        return response


class GuardedConnection(_Guarded, Connection):
    pass


class GuardedSSLConnection(_Guarded, SSLConnection):
    pass


class GuardedUnixDomainSocketConnection(_Guarded, UnixDomainSocketConnection):
    pass


def connection_class_for(url: str) -> type:
    scheme = url.split("://", 1)[0].lower()
    if scheme == "unix":
        return GuardedUnixDomainSocketConnection
    if scheme == "rediss":
        return GuardedSSLConnection
    return GuardedConnection
