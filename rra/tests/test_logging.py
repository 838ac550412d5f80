"""Structured logs: request ids, access lines, one formatter, shipping to LOG_ENDPOINT."""

from __future__ import annotations

import json
import logging
import re
import threading
import time

import pytest
import structlog

from rra import logs, metrics
from rra.testing.fakes import FakeServer, Response
from rra.testing.redis_server import free_port

pytestmark = pytest.mark.django_db

HEX_ID = re.compile(r"[0-9a-f]{32}")


def _access(lines: list[dict]) -> list[dict]:
    return [line for line in lines if line["logger"] == "rra.access"]


def test_it_generates_a_request_id_echoes_it_and_logs_one_access_line(client, log_lines):
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    request_id = response["X-Request-ID"]
    assert HEX_ID.fullmatch(request_id)
    [access] = _access(log_lines())
    assert access["event"] == "request"
    assert access["level"] == "info"
    assert access["request_id"] == request_id
    assert access["method"] == "GET" and access["path"] == "/accounts/login/"
    assert access["status"] == 200 and access["view"] == "accounts:login"
    assert isinstance(access["duration_ms"], float)
    assert access["db_queries"] >= 0 and "timestamp" in access


def test_it_honours_a_sane_incoming_request_id(client, log_lines):
    response = client.get("/accounts/login/", HTTP_X_REQUEST_ID="edge-7f3a:42.b_c")
    assert response["X-Request-ID"] == "edge-7f3a:42.b_c"
    assert _access(log_lines())[0]["request_id"] == "edge-7f3a:42.b_c"


@pytest.mark.parametrize(
    "incoming",
    [
        "x" * 129,
        "abc\r\nSet-Cookie: sessionid=stolen",
        '<script>alert("id")</script>',
        "two words",
        "",
    ],
)
def test_it_replaces_a_malicious_or_oversized_request_id(client, log_lines, incoming):
    response = client.get("/accounts/login/", HTTP_X_REQUEST_ID=incoming)
    assert HEX_ID.fullmatch(response["X-Request-ID"])
    assert _access(log_lines())[0]["request_id"] == response["X-Request-ID"]


def test_library_lines_during_a_request_carry_its_context_and_user(owner_client, owner, log_lines):
    response = owner_client.get("/api/documents/999999")  # Django logs "Not Found"
    assert response.status_code == 404
    lines = log_lines()
    request_id = response["X-Request-ID"]
    warning = next(line for line in lines if line["logger"] == "django.request")
    assert warning["level"] == "warning" and "Not Found" in warning["event"]
    assert warning["request_id"] == request_id
    [access] = _access(lines)
    assert access["user_id"] == owner.pk and access["status"] == 404
    assert access["view"] == "api:document-detail"  # the route name, not the raw path
    # The next request on this thread starts a clean context.
    client_lines_before = len(lines)
    owner_client.get("/api/health/live")
    later = _access(log_lines()[client_lines_before:])[0]
    assert later["request_id"] != request_id
    assert later["level"] == "debug"  # probes are quiet


def test_the_access_line_counts_the_queries_of_a_connection_made_in_the_request_s_thread(
    log_lines, settings
):
    """The counter goes on each connection when it connects (connection_created), in
    any thread: a worker thread's first request is counted like any other, once."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from rra.middleware import _count_query

    seen = {}

    def serve() -> None:
        try:
            with CaptureQueriesContext(connection) as queries:  # connects this thread's
                client = Client()
                client.cookies[settings.SESSION_COOKIE_NAME] = "no-such-session"
                seen["status"] = client.get("/api/documents/999999").status_code
            seen["queries"] = len(queries)
            seen["counters"] = connection.execute_wrappers.count(_count_query)
        finally:
            connection.close()

    thread = threading.Thread(target=serve)
    thread.start()
    thread.join()
    [access] = _access(log_lines())
    assert seen["status"] in (401, 403, 404)
    assert seen["queries"] >= 1  # the unknown session, looked up in the database
    assert access["db_queries"] == seen["queries"]
    assert seen["counters"] == 1


def test_perf_lines_for_search_and_an_api_token_user(client, owner, log_lines, settings):
    from accounts.models import ApiToken

    _, secret = ApiToken.issue(user=owner, name="script")
    response = client.get(
        "/api/search", {"q": "calibration", "mode": "text"}, HTTP_AUTHORIZATION=f"Bearer {secret}"
    )
    assert response.status_code == 200
    lines = log_lines()
    search = next(line for line in lines if line["event"] == "search")
    assert search["logger"] == "rra.perf" and search["mode"] == "text"
    assert search["request_id"] == response["X-Request-ID"]
    assert search["user_id"] == owner.pk and "calibration" not in json.dumps(search)
    assert {"duration_ms", "sql_ms", "hits", "query_chars"} <= set(search)
    [access] = _access(lines)
    assert access["user_id"] == owner.pk


def test_exceptions_are_one_json_line_with_the_traceback(log_lines):
    try:
        raise ValueError("bad value")
    except ValueError:
        logging.getLogger("django_tasks").exception("task %s failed", 7)
    [line] = [line for line in log_lines() if line["logger"] == "django_tasks"]
    assert line["event"] == "task 7 failed" and line["level"] == "error"
    assert "Traceback" in line["exception"] and "ValueError: bad value" in line["exception"]


def test_the_json_formatter_writes_every_line_as_structlogs_processor_formatter_does():
    """logs.JsonFormatter's short way for structlog lines without an exception gives
    the same text as ProcessorFormatter with the same processors; the other lines
    (exceptions, positional arguments, a library's) take ProcessorFormatter's way."""
    records: list[logging.LogRecord] = []
    keeper = logging.Handler()
    keeper.emit = records.append  # type: ignore[method-assign]
    keeper.addFilter(lambda record: record.name in ("rra.test", "some.library"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(keeper)
    root.setLevel(logging.DEBUG)
    log = structlog.get_logger("rra.test")
    try:
        logs.bind_request(request_id="r-1", method="GET", path="/x")
        log.info("plain", n=1, ratio=0.5, when=time.gmtime(0), nested={"a": [1, "b"]})
        log.warning("with %s", "args", quote='"\n\u2028')
        try:
            raise ValueError("boom")
        except ValueError as exc:  # the exception itself: formatted after the except block
            log.error("failed", exc_info=exc)
            logging.getLogger("some.library").exception("library failed")
        logging.getLogger("some.library").info("library %d", 5, extra={"extra_field": "x"})
    finally:
        root.removeHandler(keeper)
        root.setLevel(level)
        structlog.contextvars.clear_contextvars()
    reference = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*logs.SHARED_PROCESSORS, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(default=str),
        ],
    )
    formatter = logs.json_formatter()
    assert len(records) == 5
    for record in records:
        fast, slow = formatter.format(record), reference.format(record)
        if "timestamp" in json.loads(fast) and record.msg.__class__ is not dict:
            # a library line is stamped when formatted: compare all but the time
            fast, slow = json.loads(fast), json.loads(slow)
            fast.pop("timestamp"), slow.pop("timestamp")
        assert fast == slow
    lines = [json.loads(formatter.format(record)) for record in records]
    assert lines[0]["request_id"] == "r-1" and lines[0]["nested"] == {"a": [1, "b"]}
    assert lines[1]["event"] == "with args"
    assert "ValueError: boom" in lines[2]["exception"]
    assert "ValueError: boom" in lines[3]["exception"]
    assert lines[4]["extra_field"] == "x" and lines[4]["event"] == "library 5"


def test_settings_route_every_logger_through_one_formatter(settings):
    config = settings.LOGGING
    assert settings.LOGGING_CONFIG == "rra.logs.configure"
    assert config["handlers"]["console"]["formatter"] == "json"  # DEBUG is off in tests
    assert config["root"]["level"] == "WARNING"  # LOG_LEVEL of the test session
    assert logging.getLogger().level == logging.WARNING
    for name in ("django", "gunicorn.error"):
        logger = logging.getLogger(name)
        assert logger.handlers == [] and logger.propagate
    assert logging.getLogger("gunicorn.access").level == logging.WARNING
    console = logs.logging_config(level="DEBUG", fmt="console")
    assert console["handlers"]["console"]["formatter"] == "console"
    # LOG_DEBUG: named loggers at DEBUG whatever the level (bench/streams.py's timings).
    timed = logs.logging_config(level="WARNING", fmt="json", debug=["chats.answering.timing"])
    assert timed["loggers"]["chats.answering.timing"]["level"] == "DEBUG"
    assert timed["root"]["level"] == "WARNING"
    assert "chats.answering.timing" not in config["loggers"]
    record = logging.LogRecord("rra.test", logging.INFO, __file__, 1, "hello %s", ("you",), None)
    text = logs.console_formatter().format(record)
    assert "hello you" in text and not text.startswith("{")


# --- Shipping ------------------------------------------------------------------------------


def _record(n: int) -> logging.LogRecord:
    return logging.LogRecord("rra.test", logging.INFO, __file__, 1, "line %d", (n,), None)


def test_it_ships_json_batches_to_the_log_endpoint():
    with FakeServer() as server:
        server.route("POST", "/ingest", lambda request: Response.json({"ok": True}))
        handler = logs.ShippingHandler(
            f"{server.url}/ingest", token="log-token", batch_size=5, flush_interval=0.05
        )
        for n in range(12):
            handler.emit(_record(n))
        handler.flush(timeout=5)
        handler.close()
    batches = [request.json for request in server.requests]
    assert all(isinstance(batch, list) and 1 <= len(batch) <= 5 for batch in batches)
    assert [line["event"] for batch in batches for line in batch] == [
        f"line {n}" for n in range(12)
    ]
    first = server.requests[0]
    assert first.headers["content-type"] == "application/json"
    assert first.headers["authorization"] == "Bearer log-token"
    assert handler.sent == 12 and handler.dropped == 0


def test_shipping_never_blocks_and_counts_drops_when_the_endpoint_hangs():
    dropped_before = sum(metrics.samples("rra_log_records_dropped_total").values())
    with FakeServer() as server:
        server.route("POST", "/ingest", lambda request: Response.json({}))
        server.stall_next(5, seconds=30)
        handler = logs.ShippingHandler(
            f"{server.url}/ingest", queue_size=10, batch_size=5, flush_interval=0.01, timeout=0.3
        )
        handler.MAX_BACKOFF_S = 0.05  # the real 1, 2, 4... s would only slow the test
        started = time.perf_counter()
        for n in range(2000):
            handler.emit(_record(n))
        elapsed = time.perf_counter() - started
        assert handler.dropped >= 2000 - 10 - 5  # only the queue and one batch wait
        handler.flush(timeout=5)
        handler.close()
    # 2,000 emits with a hung endpoint take milliseconds, not 2,000 timeouts.
    assert elapsed < 2.0
    assert handler.sent == 0 and handler.dropped == 2000
    dropped_after = sum(metrics.samples("rra_log_records_dropped_total").values())
    assert dropped_after - dropped_before == 2000


def test_shipping_to_a_closed_port_drops_the_batch_and_keeps_going():
    handler = logs.ShippingHandler(
        f"http://127.0.0.1:{free_port()}/ingest", batch_size=5, flush_interval=0.01, timeout=0.3
    )
    for n in range(3):
        handler.emit(_record(n))
    handler.flush(timeout=5)
    handler.close()
    assert handler.sent == 0 and handler.dropped == 3
