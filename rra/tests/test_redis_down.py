"""Redis down must never give a 500: the cache misses, sessions fall back to the database."""

import pytest
from django.urls import reverse

from conftest import PASSWORD
from rra.tests.test_health import DEAD_REDIS

pytestmark = pytest.mark.django_db


@pytest.fixture
def dead_redis(settings, redis_url):
    settings.CACHES = {**settings.CACHES, **DEAD_REDIS}


def test_pages_still_answer_200(client, owner, dead_redis):
    assert client.get(reverse("accounts:login")).status_code == 200
    client.force_login(owner)
    assert client.get(reverse("home")).status_code == 200
    assert client.get(reverse("accounts:profile")).status_code == 200
    assert client.get("/api/me").status_code == 200


def test_the_cache_really_is_redis_when_configured(redis_url):
    from django.core.cache import caches

    cache = caches["default"]
    assert type(cache).__module__.startswith("django_redis")
    cache.set("probe", 42)
    import redis

    raw = redis.Redis.from_url(redis_url)
    assert any(b"probe" in key for key in raw.keys("*"))


def test_a_session_written_while_redis_is_down_survives(client, owner, dead_redis):
    import re

    from django.core import mail

    response = client.post(reverse("accounts:signup"), {"email": "late@example.com"})
    assert response.status_code == 200
    link = re.search(r"https?://\S+", mail.outbox[-1].body).group(0)
    form = client.get(link, follow=True).redirect_chain[-1][0]
    response = client.post(form, {"new_password1": PASSWORD, "new_password2": PASSWORD})
    assert response.status_code == 302
    assert client.get(reverse("home")).status_code == 200
