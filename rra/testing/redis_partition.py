"""A pytest plugin (conftest.py's pytest_plugins): ``private_redis``, a redis-server of
the test's own serving the caches, the rate limits and the answers' streams, which a
test may stop (SIGSTOP: a partition, connections open and nothing answers)."""

from __future__ import annotations

import os
import shutil
import signal

import pytest

from rra import redis_breaker
from rra.testing import redis_server


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
    from chats.answering import transport  # the answers' Redis clients, one per URL

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


def partition(server, breaker, client, **headers) -> None:
    """The private Redis stopped (SIGSTOP: open sockets, no answers) and the breaker
    tripped by one chat-list request with `headers` (it waits one socket timeout);
    liveness answers meanwhile."""
    os.kill(server.process.pid, signal.SIGSTOP)
    assert client.get("/api/health/live").status_code == 200
    client.get("/api/chats", **headers)
    assert breaker.is_open


def refusals_of_dead_tokens(client, token, path: str, **bearer):
    """Requests to `path` with the API token `token` expired, then revoked, then alive
    again (while Redis is partitioned, the token is read from the database each time);
    each answer is asserted (401, 401, 200) and the expired one returned for its
    message."""
    from datetime import timedelta

    from django.utils import timezone

    from accounts.models import ApiToken

    tokens = ApiToken.objects.filter(pk=token.pk)
    tokens.update(expires_at=timezone.now() - timedelta(seconds=1))
    expired = client.get(path, **bearer)
    assert expired.status_code == 401
    tokens.update(expires_at=None, revoked_at=timezone.now())
    assert client.get(path, **bearer).status_code == 401
    tokens.update(revoked_at=None)
    assert client.get(path, **bearer).status_code == 200
    return expired
