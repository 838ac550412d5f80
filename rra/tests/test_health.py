import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
DEAD_REDIS = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {
            "SOCKET_CONNECT_TIMEOUT": 0.2,
            "SOCKET_TIMEOUT": 0.2,
            "IGNORE_EXCEPTIONS": True,
        },
    },
}


def test_live_has_no_dependencies(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/api/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.parametrize("path", ["/api/health/ready", "/api/health"])
def test_ready_reports_each_check_with_its_time(client, path):
    from rra.health import heartbeat_beat

    heartbeat_beat(worker="test-worker")
    response = client.get(path)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok", body
    assert set(body["checks"]) == {
        "database",
        "migrations",
        "worker",
        "cache",
        "disk",
        "memory",
        "embeddings",
        "llm",
    }
    for check in body["checks"].values():
        assert check["status"] == "ok"
        assert isinstance(check["ms"], float)


def test_a_redis_outage_is_degraded_not_a_failure(client, settings, redis_url):
    # The site survives without Redis, and an outage hits every replica at once: taking
    # them all out of the load balancer would turn it into a full outage.
    from rra.health import heartbeat_beat

    heartbeat_beat(worker="test-worker")
    settings.CACHES = {**settings.CACHES, **DEAD_REDIS}
    response = client.get("/api/health/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["cache"]["status"] == "degraded"
    assert "ConnectionError" in body["checks"]["cache"]["error"]
    assert body["checks"]["database"]["status"] == "ok"


def test_strangers_get_the_status_without_the_details(settings):
    from django.test import Client

    from rra.health import heartbeat_beat

    heartbeat_beat(worker="test-worker")
    settings.CACHES = {**settings.CACHES, **DEAD_REDIS}
    stranger = Client(REMOTE_ADDR="203.0.113.20").get("/api/health/ready")
    assert stranger.status_code == 200
    body = stranger.json()
    assert body == {
        "status": "degraded",
        "checks": {name: {"status": check["status"]} for name, check in body["checks"].items()},
    }
    assert body["checks"]["cache"] == {"status": "degraded"}
    text = stranger.content.decode()
    import socket

    for secret in (socket.gethostname(), "available_mb", "ConnectionError", "127.0.0.1"):
        assert secret not in text
    # The metrics token opens the details from anywhere.
    settings.METRICS_TOKEN = "t" * 32
    insider = Client(REMOTE_ADDR="203.0.113.20").get(
        "/api/health/ready", HTTP_AUTHORIZATION="Bearer " + "t" * 32
    )
    assert insider.json()["host"] == socket.gethostname()
    assert "available_mb" in insider.json()["checks"]["memory"]


def test_ready_answers_503_quickly_when_the_database_is_unreachable():
    """A real process whose database URL points at a closed port."""
    code = (
        "import django, json; django.setup();"
        "from django.test import Client;"
        "r = Client().get('/api/health/ready');"
        "print(r.status_code, json.dumps(r.json()))"
    )
    env = {
        **os.environ,
        "ENV_FILE": "",
        "DJANGO_SETTINGS_MODULE": "rra.settings",
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/nothing",
        "DB_CONNECT_TIMEOUT": "2",
    }
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    status, _, body = result.stdout.strip().partition(" ")
    assert status == "503"
    assert '"database": {"status": "fail"' in body
    assert '"status": "fail"' in body
