"""Readiness: worker heartbeat, providers checked in the background, disk and memory."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from rra import health
from rra.management.commands.worker import heartbeat_forever
from rra.models import WorkerHeartbeat
from rra.testing.fakes import FakeOpenAI, Response

pytestmark = pytest.mark.django_db


def _ready(client) -> tuple[int, dict]:
    response = client.get("/api/health/ready")
    return response.status_code, response.json()


def test_it_is_ok_with_a_fresh_worker_heartbeat(client):
    health.heartbeat_beat(worker="host-a:1")
    status, body = _ready(client)
    assert status == 200 and body["status"] == "ok"
    worker = body["checks"]["worker"]
    assert worker["status"] == "ok" and worker["alive"] == 1 and worker["last_heartbeat_s"] < 5
    assert isinstance(body["ms"], float) and body["release"]


def test_a_stale_heartbeat_degrades_but_still_answers_200(client, settings):
    settings.WORKER_HEARTBEAT_STALE_S = 60
    seen = timezone.now() - timedelta(seconds=95)
    WorkerHeartbeat.objects.create(
        worker_id="host-a:1", hostname="host-a", pid=1, started_at=seen, seen_at=seen
    )
    status, body = _ready(client)
    assert status == 200 and body["status"] == "degraded"
    worker = body["checks"]["worker"]
    assert worker["status"] == "degraded" and worker["alive"] == 0
    assert "stale after 60 s" in worker["error"] and worker["last_heartbeat_s"] >= 95
    assert body["checks"]["database"]["status"] == "ok"


def test_no_worker_at_all_is_degraded(client):
    status, body = _ready(client)
    assert status == 200 and body["status"] == "degraded"
    assert "no worker has reported" in body["checks"]["worker"]["error"]


def test_too_little_disk_fails_and_too_little_memory_degrades(client, settings, media):
    health.heartbeat_beat(worker="host-a:1")
    settings.HEALTH_MIN_FREE_MEMORY_MB = 10**9
    status, body = _ready(client)
    assert status == 200 and body["status"] == "degraded"
    memory = body["checks"]["memory"]
    assert memory["status"] == "degraded" and memory["available_mb"] > 0 and memory["rss_mb"] > 0
    settings.HEALTH_MIN_FREE_DISK_MB = 10**9
    status, body = _ready(client)
    assert status == 503 and body["status"] == "fail"
    assert body["checks"]["disk"]["status"] == "fail"
    assert "free on the disk of MEDIA_ROOT" in body["checks"]["disk"]["error"]


def test_local_providers_are_always_ok(client):
    _, body = _ready(client)
    assert body["checks"]["embeddings"] == {
        "status": "ok",
        "provider": "local",
        "detail": "local",
        "ms": body["checks"]["embeddings"]["ms"],
    }
    assert body["checks"]["llm"]["provider"] == "extractive"
    assert body["checks"]["llm"]["status"] == "ok"


def test_remote_providers_are_checked_in_the_background_never_on_the_probe(
    client, settings, monkeypatch
):
    health.heartbeat_beat(worker="host-a:1")
    calls = []
    real_probe = health.probe_provider

    def probe(target, *, timeout):
        calls.append(threading.current_thread().name)
        return real_probe(target, timeout=timeout)

    monkeypatch.setattr(health, "probe_provider", probe)
    monkeypatch.setattr(health, "providers", health.ProviderMonitor())
    with FakeOpenAI() as server:
        server.route("GET", "/v1/models", lambda request: Response.json({"data": []}))
        settings.LLM_BASE_URL = server.base_url
        settings.LLM_API_KEY = server.api_key
        settings.LLM_MODEL = "gpt-test"
        settings.HEALTH_PROVIDER_INTERVAL_S = 3600  # the thread checks once, then sleeps

        # The first probe starts the background check and does not wait for it.
        status, body = _ready(client)
        assert status == 200 and body["checks"]["llm"]["status"] in ("unknown", "ok")
        assert "MainThread" not in calls
        deadline = time.monotonic() + 10
        while not server.requests and time.monotonic() < deadline:
            time.sleep(0.01)
        deadline = time.monotonic() + 5
        while _ready(client)[1]["checks"]["llm"]["status"] != "ok":
            assert time.monotonic() < deadline, "the background check never reported"
            time.sleep(0.02)

        seen = len(server.requests)
        for _ in range(5):
            status, body = _ready(client)
        assert len(server.requests) == seen  # probes read the cached result
        assert calls == ["provider-health"] * len(calls)
        llm = body["checks"]["llm"]
        assert llm["status"] == "ok" and llm["provider"] == "openai"
        assert server.requests[0].headers["authorization"] == f"Bearer {server.api_key}"

        # A failed background check degrades readiness (200), it does not fail it.
        server.fail_next(status=503)
        health.providers.refresh()
        status, body = _ready(client)
        assert status == 200 and body["status"] == "degraded"
        assert body["checks"]["llm"]["status"] == "degraded"
        assert "HTTP 503" in body["checks"]["llm"]["error"]


def test_an_unreachable_provider_is_reported_by_the_background_check(settings):
    from rra.testing.redis_server import free_port

    settings.EMBEDDINGS_PROVIDER = "openai"
    settings.EMBEDDINGS_BASE_URL = f"http://127.0.0.1:{free_port()}/v1"
    settings.EMBEDDINGS_MODEL = "m"
    monitor = health.ProviderMonitor()
    monitor.refresh()
    result = monitor.snapshot("embeddings")
    assert result["status"] == "degraded" and "could not reach openai" in result["error"]


@pytest.mark.django_db(transaction=True)
def test_the_worker_heartbeat_thread_beats_and_removes_its_row_on_stop():
    stop = threading.Event()
    thread = threading.Thread(target=heartbeat_forever, args=(stop, 0.05), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not WorkerHeartbeat.objects.exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    first = WorkerHeartbeat.objects.get().seen_at
    while WorkerHeartbeat.objects.get().seen_at == first:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    row = WorkerHeartbeat.objects.get()
    assert row.worker_id == health.worker_id() and row.started_at <= row.seen_at
    stop.set()
    thread.join(5)
    assert not WorkerHeartbeat.objects.exists()
