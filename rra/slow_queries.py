"""The slow-query log.

A database query that takes SLOW_QUERY_MS or longer (0: never) is counted
(rra_db_slow_queries_total) and logged once on "rra.db.slow" (event db.slow_query) with
its duration, the database alias and its SQL normalized by normalize_sql(): the same
statement always reads the same, whatever its values. The parameters are never logged:
they can hold what people typed. During a request the line carries the request id, like
every line (rra.logs binds it).

The timing is an execute wrapper put on each database connection when it connects
(the connection_created signal, hooked up in RraConfig.ready), so web requests, the
worker and management commands are all covered. `with connection.execute_wrapper()`
would only cover the code inside the block, on one thread.
"""

from __future__ import annotations

import contextlib
import re
import time
from typing import Any

from django.conf import settings
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created

from rra import telemetry

MAX_SQL_CHARS = 4000

# One pass over the statement, left to right, so that a quote or "--" inside a literal
# or a quoted identifier is never taken for the start of something else.
_TOKEN = re.compile(
    r"""
      (?P<identifier>"(?:[^"]|"")*")                # "quoted identifier": kept
    | (?P<string>'(?:[^']|'')*')                    # 'literal'
    | (?P<dollar>\$(?P<tag>\w*)\$.*?\$(?P=tag)\$)   # $$dollar-quoted literal$$
    | (?P<comment>--[^\n]*|/\*.*?\*/)
    | (?P<placeholder>%s|%\(\w+\)s)
    | (?P<number>\b\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\b)
    """,
    re.VERBOSE | re.DOTALL,
)
_VALUE_LIST = r"\(\s*\?(?:\s*,\s*\?)*\s*\)"
_IN_LIST = re.compile(rf"\bIN\s*{_VALUE_LIST}", re.IGNORECASE)
_ROWS = re.compile(rf"({_VALUE_LIST})(?:\s*,\s*{_VALUE_LIST})+")


def _token(match: re.Match) -> str:
    if match["identifier"]:
        return match["identifier"]
    return " " if match["comment"] else "?"


def normalize_sql(sql: str) -> str:
    """The statement with every value (literal, number, placeholder) as ?, lists of
    values (IN (?, ?, ...) and rows of a multi-row VALUES) collapsed, comments dropped
    and whitespace collapsed; cut at MAX_SQL_CHARS."""
    text = _TOKEN.sub(_token, str(sql))
    text = _IN_LIST.sub("IN (...)", text)
    text = _ROWS.sub(r"\1, ...", text)
    text = " ".join(text.split())
    return text if len(text) <= MAX_SQL_CHARS else text[:MAX_SQL_CHARS] + "…"


def time_query(execute, sql, params, many, context):
    """The execute wrapper: run the query; report it when it was slow (failed too)."""
    threshold = settings.SLOW_QUERY_MS
    if threshold <= 0:
        return execute(sql, params, many, context)
    started = time.perf_counter()
    error = None
    try:
        return execute(sql, params, many, context)
    except Exception as exc:
        error = type(exc).__name__
        raise
    finally:
        duration_ms = (time.perf_counter() - started) * 1000
        if duration_ms >= threshold:
            _report(sql, duration_ms, context["connection"].alias, many=many, error=error)


def _report(sql, duration_ms: float, alias: str, *, many: bool, error: str | None) -> None:
    # Reporting must never break the query (or hide its own exception).
    with contextlib.suppress(Exception):
        telemetry.slow_query(
            db_alias=alias,
            sql=normalize_sql(sql),
            duration_ms=duration_ms,
            many=many,
            error=error,
        )


def install(sender: Any = None, *, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    """connection_created receiver: time this connection's queries from now on. The
    wrapper goes first: `with connection.execute_wrapper(...)` pops the last one."""
    if time_query not in connection.execute_wrappers:
        connection.execute_wrappers.insert(0, time_query)


def connect() -> None:
    connection_created.connect(install, dispatch_uid="rra.slow_queries")
