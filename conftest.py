"""Shared fixtures: the users owner / member / outsider / admin, Redis, clean caches."""

from __future__ import annotations

import os

import pytest
from django.conf import settings
from django.core.cache import caches

from rra.testing import pytest_plugin

# Browser fixtures (browser, context, page, page_errors, live_server): rra/testing/browser.py;
# a real S3 server (s3_server, s3_storage): rra/testing/s3_server.py; a Redis of the test's
# own to partition away (private_redis): rra/testing/redis_partition.py
pytest_plugins = ["rra.testing.browser", "rra.testing.s3_server", "rra.testing.redis_partition"]

PASSWORD = "correct horse battery staple 42"


@pytest.fixture(scope="session", autouse=True)
def _static_manifest(django_db_blocker):
    """Templates use {% static %} with the manifest storage: collect once per session
    (into the session's own STATIC_ROOT, see rra/testing/pytest_plugin.py)."""
    from django.core.management import call_command

    call_command("collectstatic", "--noinput", verbosity=0)


@pytest.fixture(autouse=True)
def _clean_caches():
    """Each test starts with empty caches and rate-limit counters, and Redis's circuit
    breakers closed (a test of a dead Redis leaves them open)."""
    from rra import redis_breaker

    redis_breaker.reset_all()
    for alias in settings.CACHES:
        caches[alias].clear()
    yield
    redis_breaker.reset_all()


class RateLimitClock:
    """django-ratelimit's clock, stopped at the test's start: its windows are fixed
    (a minute, an hour), so a test that counts hits must not see one end halfway through
    (CI once saw a 20-file upload land on one side of a minute and the 22nd file on the
    other). A test that wants the window to pass says so with advance()."""

    def __init__(self, now: float):
        self.now = now

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def ratelimit_clock(monkeypatch):
    import time

    import django_ratelimit.core

    clock = RateLimitClock(time.time())
    monkeypatch.setattr(django_ratelimit.core, "time", clock)
    return clock


@pytest.fixture
def media(settings, tmp_path):
    """Uploaded files go to a temporary folder."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def redis_url() -> str:
    """The real Redis of this test session; skips (or fails under CI) without one."""
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip(pytest_plugin.REDIS_MISSING_REASON or "no Redis for this session")
    return url


def _make_user(django_user_model, email: str, **extra):
    return django_user_model.objects.create_user(email=email, password=PASSWORD, **extra)


@pytest.fixture
def owner(db, django_user_model):
    return _make_user(django_user_model, "owner@example.com", name="Olive Owner")


@pytest.fixture
def member(db, django_user_model):
    return _make_user(django_user_model, "member@example.com")


@pytest.fixture
def outsider(db, django_user_model):
    return _make_user(django_user_model, "outsider@example.com")


@pytest.fixture
def admin_user(db, django_user_model):
    return django_user_model.objects.create_superuser(email="admin@example.com", password=PASSWORD)


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client
