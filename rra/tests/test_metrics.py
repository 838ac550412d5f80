"""/metrics: access, what moves after requests/searches/ingestion, multiprocess mode."""

from __future__ import annotations

import os
import runpy
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.test import Client

from chats.models import Chat
from chats.tests.conftest import MANUAL, events
from documents.services import document_ingest
from documents.tests.conftest import make_document
from rra import metrics
from rra.testing.fakes import FakeOpenAI, FakeServer, Response

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "metrics-token-0123456789"


def value(name: str, **labels: str) -> float:
    return metrics.samples(name).get(tuple(sorted(labels.items())), 0.0)


# --- Access --------------------------------------------------------------------------------


def test_it_refuses_a_scrape_from_an_address_outside_the_allowed_networks(client):
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 403
    assert b"rra_" not in response.content


def test_it_answers_a_scrape_with_the_token_from_anywhere(client, settings):
    settings.METRICS_TOKEN = TOKEN
    response = client.get(
        "/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION=f"Bearer {TOKEN}"
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    assert b"# TYPE rra_http_request_duration_seconds histogram" in response.content
    wrong = client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 403


def test_loopback_may_scrape_by_default_but_not_through_an_unknown_proxy(client, settings):
    assert client.get("/metrics").status_code == 200  # the test client is 127.0.0.1
    proxied = client.get("/metrics", HTTP_X_FORWARDED_FOR="198.51.100.4")
    assert proxied.status_code == 403
    settings.TRUSTED_PROXY_COUNT = 1
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    assert client.get("/metrics", HTTP_X_FORWARDED_FOR="10.1.2.3").status_code == 200
    assert client.get("/metrics", HTTP_X_FORWARDED_FOR="198.51.100.4").status_code == 403


# --- What moves ---------------------------------------------------------------------------------


def test_requests_are_counted_by_route_name_method_and_status(owner_client):
    labels = {"view": "api:document-detail", "method": "GET", "status": "404"}
    before = value("rra_http_request_duration_seconds_count", **labels)
    queries_before = value("rra_http_request_db_queries_sum", view="api:document-detail")
    owner_client.get("/api/documents/123456")
    owner_client.get("/api/documents/654321")
    assert value("rra_http_request_duration_seconds_count", **labels) == before + 2
    assert value("rra_http_request_db_queries_sum", view="api:document-detail") > queries_before
    unmatched = {"view": "unmatched", "method": "other", "status": "404"}
    before = value("rra_http_request_duration_seconds_count", **unmatched)
    owner_client.generic("BREW", "/no/such/page")
    assert value("rra_http_request_duration_seconds_count", **unmatched) == before + 1


@pytest.mark.urls("rra.tests.urls_failing")
def test_exceptions_and_server_errors_are_counted():
    before_exc = value("rra_http_exceptions_total", view="test-fail", exception="RuntimeError")
    before_5xx = value("rra_http_server_errors_total", view="test-fail", status="500")
    response = Client(raise_request_exception=False).get("/test/fail")
    assert response.status_code == 500
    assert value("rra_http_exceptions_total", view="test-fail", exception="RuntimeError") == (
        before_exc + 1
    )
    assert value("rra_http_server_errors_total", view="test-fail", status="500") == before_5xx + 1


@pytest.fixture
def fake_openai(settings):
    """Embeddings and answers from a fake OpenAI-compatible server (no model to load)."""
    from chats.answering.llm import reset_llm
    from documents.embeddings import reset_providers

    with FakeOpenAI(dimensions=16, reply="Put a spirit level on the chuck [1].") as server:
        settings.EMBEDDINGS_PROVIDER = "openai"
        settings.EMBEDDINGS_BASE_URL = server.base_url
        settings.EMBEDDINGS_API_KEY = server.api_key
        settings.EMBEDDINGS_MODEL = "text-embedding-3-small"
        settings.LLM_BASE_URL = server.base_url
        settings.LLM_API_KEY = server.api_key
        settings.LLM_MODEL = "gpt-test"
        settings.LLM_RETRY_DELAY_S = 0
        settings.ANSWER_MIN_SCORE = -1.0
        reset_providers()
        reset_llm()
        yield server
    reset_providers()
    reset_llm()


def test_ingestion_search_cache_and_answers_move_their_counters(
    owner, owner_client, media, fake_openai, settings
):
    ready = value("rra_ingest_documents_total", outcome="ready")
    pages, chunks = value("rra_ingest_pages_total"), value("rra_ingest_chunks_total")
    embeds = value("rra_ingest_step_seconds_count", step="embed")
    document = make_document(owner, name="roborail.md", content=MANUAL)
    assert document_ingest(document_id=document.pk) == "ready"
    assert value("rra_ingest_documents_total", outcome="ready") == ready + 1
    assert value("rra_ingest_pages_total") == pages + 1
    assert value("rra_ingest_chunks_total") > chunks
    assert value("rra_ingest_step_seconds_count", step="embed") == embeds + 1

    failed = value("rra_ingest_documents_total", outcome="failed")
    settings.INGEST_MAX_ATTEMPTS = 1
    fake_openai.fail_next(status=503)
    broken = make_document(owner, name="other.md")
    assert document_ingest(document_id=broken.pk) == "failed"
    assert value("rra_ingest_documents_total", outcome="failed") == failed + 1

    searches = value("rra_search_duration_seconds_count", mode="hybrid")
    miss = value("rra_cache_requests_total", cache="search", result="miss")
    hit = value("rra_cache_requests_total", cache="search", result="hit")
    for _ in range(2):
        assert owner_client.get("/api/search", {"q": "spirit level"}).status_code == 200
    assert value("rra_search_duration_seconds_count", mode="hybrid") == searches + 1
    assert value("rra_cache_requests_total", cache="search", result="miss") == miss + 1
    assert value("rra_cache_requests_total", cache="search", result="hit") == hit + 1

    ok = {"provider": "openai", "outcome": "ok"}
    calls = value("rra_llm_request_duration_seconds_count", **ok)
    prompt = value("rra_llm_tokens_total", provider="openai", kind="prompt")
    completion = value("rra_llm_tokens_total", provider="openai", kind="completion")
    chat = Chat.objects.create(owner=owner)
    stream = events(
        owner_client.post(
            f"/api/chats/{chat.pk}/messages",
            {"question": "How do I level the front chuck?"},
            content_type="application/json",
        )
    )
    assert stream[-1][0] == "done", stream[-1]
    usage = stream[-1][1]["usage"]
    assert value("rra_llm_request_duration_seconds_count", **ok) == calls + 1
    assert value("rra_llm_tokens_total", provider="openai", kind="prompt") == (
        prompt + usage["prompt_tokens"]
    )
    assert value("rra_llm_tokens_total", provider="openai", kind="completion") == (
        completion + usage["completion_tokens"]
    )
    assert value("rra_llm_first_token_seconds_count", provider="openai") >= 1


def test_rate_limit_rejections_are_counted_by_group(owner_client, settings):
    settings.SEARCH_RATE = "1/m"
    before = value("rra_ratelimit_rejections_total", group="search")
    owner_client.get("/api/search", {"q": "chuck", "mode": "text"})
    assert owner_client.get("/api/search", {"q": "chuck", "mode": "text"}).status_code == 429
    assert value("rra_ratelimit_rejections_total", group="search") == before + 1


def test_queue_depth_and_workers_are_read_at_scrape_time(client, owner, media):
    from rra.health import heartbeat_beat

    make_document(owner, name="a.md")
    make_document(owner, name="b.md", status="embedding")
    heartbeat_beat(worker="scrape-test")
    text = client.get("/metrics").content.decode()
    assert 'rra_ingest_queue_documents{status="queued"} 1.0' in text
    assert 'rra_ingest_queue_documents{status="embedding"} 1.0' in text
    assert 'rra_ingest_queue_documents{status="extracting"} 0.0' in text
    assert "rra_ingest_oldest_queued_seconds " in text
    assert "rra_workers_alive 1.0" in text
    assert "rra_process_resident_memory_bytes " in text and "process_cpu_seconds_total " in text


def test_it_pushes_what_a_scrape_returns_to_a_pushgateway():
    path = f"/metrics/job/rra-test/instance/{socket.gethostname()}"
    with FakeServer() as gateway:
        gateway.route("PUT", path, lambda request: Response(200))
        assert metrics.push_once(endpoint=gateway.url, job="rra-test")
        failures = value("rra_metrics_push_failures_total")
        gateway.fail_next(status=500)
        assert not metrics.push_once(endpoint=gateway.url, job="rra-test")
    body = gateway.requests[0].body.decode()
    assert "rra_http_request_duration_seconds" in body and "rra_ingest_queue_documents" in body
    assert value("rra_metrics_push_failures_total") == failures + 1


def test_a_failing_push_is_logged_once_until_it_works_again(caplog):
    with FakeServer() as gateway:
        gateway.route(
            "PUT", f"/metrics/job/j/instance/{socket.gethostname()}", lambda r: Response(200)
        )
        with caplog.at_level("DEBUG", logger="rra.metrics"):
            for _ in range(3):
                gateway.fail_next(status=500)
                assert not metrics.push_once(endpoint=gateway.url, job="j")
            assert metrics.push_once(endpoint=gateway.url, job="j")
            gateway.fail_next(status=500)
            assert not metrics.push_once(endpoint=gateway.url, job="j")
    pushes = [r for r in caplog.records if r.getMessage().startswith("metrics push")]
    warnings = [r for r in pushes if r.levelname == "WARNING" and "failed" in r.getMessage()]
    assert len(warnings) == 2, [r.getMessage() for r in caplog.records]
    assert any("works again" in r.getMessage() for r in caplog.records)


def test_the_token_can_come_from_a_file_written_after_start(client, settings, tmp_path):
    token_file = tmp_path / "token"
    settings.METRICS_TOKEN = ""
    settings.METRICS_TOKEN_FILE = str(token_file)
    auth = {"REMOTE_ADDR": "172.18.0.5", "HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
    assert client.get("/metrics", **auth).status_code == 403  # no file yet
    token_file.write_text(TOKEN + "\n")
    assert client.get("/metrics", **auth).status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="172.18.0.5").status_code == 403
    token_file.write_text("a-new-token")  # replaced: the old one stops working
    assert client.get("/metrics", **auth).status_code == 403


# --- Several processes ----------------------------------------------------------------------------

WRITER = """
import os, sys
from rra import metrics
metrics.CACHE_REQUESTS.labels("search", "hit").inc(int(sys.argv[1]))
metrics.REQUEST_SECONDS.labels("api:search", "GET", "200").observe(0.02)
metrics.update_process_gauges()
print(os.getpid(), flush=True)
if sys.argv[2] == "killed":
    os._exit(0)  # like a worker that was killed: no clean-up at exit
"""


def _write_from_another_process(directory: Path, hits: int, exit: str) -> int:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    result = subprocess.run(
        [sys.executable, "-c", WRITER, str(hits), exit],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(result.stdout)


def test_one_scrape_adds_up_the_samples_of_every_process(tmp_path, monkeypatch):
    clean = _write_from_another_process(tmp_path, 3, "clean")
    killed = _write_from_another_process(tmp_path, 4, "killed")
    text = metrics.render(multiproc_dir=str(tmp_path), database=False)[0].decode()
    assert 'rra_cache_requests_total{cache="search",result="hit"} 7.0' in text
    assert (
        'rra_http_request_duration_seconds_count{method="GET",status="200",view="api:search"} 2.0'
        in text
    )
    # A process that exits cleanly takes its live gauges along; a killed one leaves them
    # until gunicorn's child_exit marks it dead. Counters stay either way.
    assert f'rra_process_resident_memory_bytes{{pid="{clean}"}}' not in text
    assert f'rra_process_resident_memory_bytes{{pid="{killed}"}}' in text
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    # gunicorn.conf.py tells the settings how many web processes there are through
    # os.environ; recorded here so that it does not outlive the test.
    monkeypatch.setenv("RRA_WEB_PROCESSES", "1")
    conf = runpy.run_path(str(ROOT / "deploy" / "gunicorn.conf.py"))
    conf["child_exit"](None, SimpleNamespace(pid=killed))
    text = metrics.render(multiproc_dir=str(tmp_path), database=False)[0].decode()
    assert f'pid="{killed}"' not in text
    assert 'rra_cache_requests_total{cache="search",result="hit"} 7.0' in text


def test_gunicorn_start_removes_only_the_files_of_dead_processes(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    # gunicorn.conf.py tells the settings how many web processes there are through
    # os.environ; recorded here so that it does not outlive the test.
    monkeypatch.setenv("RRA_WEB_PROCESSES", "1")
    conf = runpy.run_path(str(ROOT / "deploy" / "gunicorn.conf.py"))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], **_out())
    dead_pid = int(dead.stdout)
    for name in (f"counter_{dead_pid}.db", f"gauge_liveall_{dead_pid}.db"):
        (tmp_path / name).write_bytes(b"")
    alive = tmp_path / f"counter_{os.getpid()}.db"
    alive.write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not ours")
    log = SimpleNamespace(info=lambda *args: None)
    conf["on_starting"](SimpleNamespace(log=log))
    assert sorted(p.name for p in tmp_path.iterdir()) == [alive.name, "notes.txt"]
    assert conf["accesslog"] is None
    assert conf["logconfig_dict"]["handlers"]["console"]["formatter"] in ("json", "console")
    assert "post_worker_init" in conf  # the embedding warm-up stays


def _out() -> dict:
    return {"capture_output": True, "text": True, "timeout": 30, "check": True}


def test_a_scrape_by_ip_address_is_not_refused_for_its_host_header(client, settings):
    """Prometheus scrapes each replica at its IP; that Host is not in ALLOWED_HOSTS."""
    settings.METRICS_TOKEN = TOKEN
    response = client.get(
        "/metrics",
        REMOTE_ADDR="172.18.0.9",
        HTTP_HOST="172.18.0.5:8000",
        HTTP_AUTHORIZATION=f"Bearer {TOKEN}",
    )
    assert response.status_code == 200
    assert (
        client.get("/metrics", REMOTE_ADDR="172.18.0.9", HTTP_HOST="172.18.0.5:8000").status_code
        == 403
    )
