"""Slow queries are logged once, with normalized SQL and never their parameters."""

from __future__ import annotations

import io
import json
import logging
import threading

import pytest
import structlog
from django.db import OperationalError, connection, connections, transaction

from rra import logs, metrics
from rra.slow_queries import normalize_sql

pytestmark = pytest.mark.django_db


@pytest.fixture
def slow_lines():
    """The JSON lines of "rra.db.slow" written during the test, through the real formatter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.json_formatter())
    logger = logging.getLogger("rra.db.slow")
    logger.addHandler(handler)

    def read() -> list[dict]:
        return [json.loads(line) for line in stream.getvalue().splitlines() if line]

    read.raw = stream.getvalue
    yield read
    logger.removeHandler(handler)
    structlog.contextvars.clear_contextvars()


def _sleeps(lines: list[dict]) -> list[dict]:
    return [line for line in lines if "pg_sleep" in line["sql"]]


def _slow_count() -> float:
    return metrics.samples("rra_db_slow_queries_total").get((("db_alias", "default"),), 0.0)


def test_it_logs_a_slow_query_once_with_normalized_sql_and_no_params(settings, slow_lines):
    settings.SLOW_QUERY_MS = 1
    before = _slow_count()
    logs.bind_request(request_id="req-42")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_sleep(%s), 'literal in the text',\n  length(%s)",
            [0.01, "a secret question"],
        )
    [line] = _sleeps(slow_lines())
    assert line["event"] == "db.slow_query" and line["level"] == "warning"
    assert line["logger"] == "rra.db.slow"
    assert line["sql"] == "SELECT pg_sleep(?), ?, length(?)"
    assert line["duration_ms"] >= 10
    assert line["db_alias"] == "default"
    assert line["request_id"] == "req-42"
    assert "params" not in line
    assert "secret" not in slow_lines.raw() and "0.01" not in slow_lines.raw()
    assert _slow_count() >= before + 1


def test_it_logs_nothing_under_the_threshold_or_when_off(settings, slow_lines):
    before = _slow_count()
    for threshold in (10_000, 0):
        settings.SLOW_QUERY_MS = threshold
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(0.01)")
    assert _sleeps(slow_lines()) == []
    assert _slow_count() == before


def test_every_new_connection_times_its_queries(settings, slow_lines):
    """A connection made anywhere (a worker thread, a management command) gets the wrapper."""
    settings.SLOW_QUERY_MS = 1

    def work():
        try:
            with connections["default"].cursor() as cursor:
                cursor.execute("SELECT pg_sleep(0.01)")
        finally:
            connections["default"].close()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(30)
    assert [line["sql"] for line in _sleeps(slow_lines())] == ["SELECT pg_sleep(?)"]


def test_a_query_cancelled_for_taking_too_long_is_logged_with_its_error(settings, slow_lines):
    settings.SLOW_QUERY_MS = 1
    with pytest.raises(OperationalError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL statement_timeout = 20")
        cursor.execute("SELECT pg_sleep(5)")
    [line] = _sleeps(slow_lines())
    assert line["sql"] == "SELECT pg_sleep(?)"
    assert line["error"] == "OperationalError" and line["duration_ms"] >= 10


@pytest.mark.parametrize(
    ("sql", "normalized"),
    [
        (
            "SELECT * FROM t WHERE name = 'O''Brien' AND note = 'it''s -- not a comment'",
            "SELECT * FROM t WHERE name = ? AND note = ?",
        ),
        (
            'SELECT "T1"."id", "say ""hi"" 2" FROM "documents_chunk" "T1" LIMIT 21 OFFSET 3.5',
            'SELECT "T1"."id", "say ""hi"" 2" FROM "documents_chunk" "T1" LIMIT ? OFFSET ?',
        ),
        (
            'SELECT U0."id" FROM x U0 WHERE U0."id" IN (%s, %s, %s) AND b in (1,2) AND c IN (%s)',
            'SELECT U0."id" FROM x U0 WHERE U0."id" IN (...) AND b IN (...) AND c IN (...)',
        ),
        (
            "INSERT INTO t (a, b) VALUES (%s, %s), (%s, %s), (%s, 'x') RETURNING id",
            "INSERT INTO t (a, b) VALUES (?, ?), ... RETURNING id",
        ),
        (
            "WITH q AS (\n  -- the query\n  SELECT %(query)s::text /* cast */ )\tSELECT 1e-3",
            "WITH q AS ( SELECT ?::text ) SELECT ?",
        ),
        ("DO $body$ BEGIN PERFORM 'x'; END $body$", "DO ?"),
        (
            "SELECT e.vector::vector(384) <=> %s::vector(384)",
            "SELECT e.vector::vector(?) <=> ?::vector(?)",
        ),
    ],
)
def test_it_normalizes_sql(sql, normalized):
    assert normalize_sql(sql) == normalized


def test_it_cuts_a_huge_statement():
    normalized = normalize_sql("SELECT " + ", ".join(f"col{n}" for n in range(5000)))
    assert len(normalized) == 4001 and normalized.endswith("…")
