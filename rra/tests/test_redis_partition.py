"""Redis partitioned away (its process stopped: connections open, nothing answers):
after the first timeout the circuit breaker (rra/redis_breaker.py) opens and requests
stop waiting on Redis; pages and the API answer, readiness says "degraded", the rate
limits behave as documented (most fail open, sign-in fails closed); when Redis answers
again, the breaker closes."""

from __future__ import annotations

import os
import shutil
import signal
import time

import pytest
from django.urls import reverse

from chats.answering import transport
from chats.models import Chat
from conftest import PASSWORD
from rra import redis_breaker
from rra.testing import redis_server

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("redis_url")]


def _cache(url: str, *, ignore: bool) -> dict:
    return {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": url,
        "OPTIONS": {
            "SOCKET_CONNECT_TIMEOUT": 0.5,
            "SOCKET_TIMEOUT": 0.5,
            "IGNORE_EXCEPTIONS": ignore,
            "CONNECTION_POOL_KWARGS": {
                "connection_class": redis_breaker.connection_class_for(url),
            },
        },
    }


@pytest.fixture
def private_redis(settings):
    """A redis-server of this test's own, serving the caches, the rate limits and the
    answers' streams."""
    server = redis_server.start(prefix="rra-partition-")
    settings.CACHES = {
        "default": _cache(server.url, ignore=True),
        "ratelimit": _cache(server.url, ignore=False),
    }
    settings.REDIS_URL = server.url
    settings.ANSWERS_IN_WORKER = True
    settings.REDIS_BREAKER_S = 30
    host, port = server.url.split("//", 1)[1].split("/", 1)[0].split(":")
    try:
        yield server, redis_breaker.breaker_for(f"{host}:{port}")
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
        server.process.kill()
        server.process.wait(10)
        shutil.rmtree(server.folder, ignore_errors=True)
        transport._clients.pop(server.url, None)


def test_a_partitioned_redis_opens_the_breaker_and_requests_stop_waiting(
    client, owner, private_redis, settings
):
    server, breaker = private_redis
    client.force_login(owner)
    chat = Chat.objects.create(owner=owner, title="Before the partition")
    assert client.get("/api/chats").status_code == 200
    ready = client.get("/api/health/ready").json()
    assert ready["checks"]["cache"]["status"] == "ok"
    assert not breaker.is_open and breaker.trips == 0

    os.kill(server.process.pid, signal.SIGSTOP)  # open sockets, no answers
    assert client.get("/api/chats").status_code == 200  # waits one timeout, then trips
    assert breaker.is_open and breaker.trips == 1

    # From now on nothing waits on Redis: every command is refused before it is sent.
    attempts, refused = breaker.attempts, breaker.refused
    for path in ("/api/chats", f"/c/{chat.pk}/", reverse("home"), "/api/me", "/api/health/live"):
        assert client.get(path).status_code == 200, path
    assert client.get("/api/search", {"q": "x", "mode": "text"}).status_code == 200
    assert breaker.attempts == attempts and breaker.refused > refused

    # Readiness: up, but degraded, naming the cache.
    ready = client.get("/api/health/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "degraded"
    assert ready.json()["checks"]["cache"]["status"] == "degraded"

    # The rate limits without their store, as documented: searches fail open (above),
    # sign-in fails closed, answers say they are unavailable.
    asked = client.post(
        f"/api/chats/{chat.pk}/messages", {"question": "x"}, content_type="application/json"
    )
    assert asked.status_code == 503 and asked.json()["error"]["code"] == "answers_unavailable"
    assert chat.messages.count() == 0  # nothing half-written
    other = type(client)()
    signin = other.post(reverse("accounts:login"), {"username": owner.email, "password": PASSWORD})
    assert signin.status_code == 503
    assert breaker.attempts == attempts  # none of that waited on Redis either

    # Still stopped when the open period ends: the background PING gets no reply, and
    # the request that started it did not wait for it.
    breaker.open_until = time.monotonic()  # the open period is over
    assert client.get("/api/chats").status_code == 200
    assert breaker.attempts == attempts
    deadline = time.monotonic() + 10
    while breaker._probing and time.monotonic() < deadline:
        time.sleep(0.05)
    assert breaker.is_open and breaker.trips == 1

    # Redis answers again: the next PING closes the breaker, and Redis serves again.
    os.kill(server.process.pid, signal.SIGCONT)
    breaker.open_until = time.monotonic()
    assert client.get("/api/chats").status_code == 200  # refused fast; starts the PING
    deadline = time.monotonic() + 10
    while breaker.is_open and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not breaker.is_open
    assert client.get("/api/health/ready").json()["checks"]["cache"]["status"] == "ok"
    assert breaker.attempts > attempts
    assert client.get("/api/chats").status_code == 200
