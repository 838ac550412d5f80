"""The rate limits of the plan, kept in Redis: who is counted, what the client sees, and
what an outage of the counter store means (sign-in fails closed, the rest fails open)."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, RequestFactory
from django.urls import reverse

from chats.models import Chat
from rra.ratelimit import client_ip, limit_request

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("redis_url")]

DEAD_LIMIT_STORE = {
    "ratelimit": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
    }
}


def test_it_ships_the_planned_rates():
    assert settings.CHAT_RATE == "20/m"
    assert settings.LOGIN_RATE == "5/15m"
    assert settings.UPLOAD_RATE == "5/m"
    assert settings.SEARCH_RATE == "30/m"
    assert settings.RATELIMIT_USE_CACHE == "ratelimit"


def test_it_keeps_the_counters_in_redis(owner_client, redis_url):
    import redis

    owner_client.get("/api/search", {"q": "x", "mode": "text"})
    keys = redis.Redis.from_url(redis_url).keys("*")
    assert any(b"rl:" in key for key in keys), keys


def test_it_counts_each_signed_in_user_apart(owner_client, member, settings):
    settings.SEARCH_RATE = "2/m"
    for _ in range(2):
        assert owner_client.get("/api/search", {"q": "x", "mode": "text"}).status_code == 200
    limited = owner_client.get("/api/search", {"q": "x", "mode": "text"})
    assert limited.status_code == 429
    assert limited["Content-Type"] == "application/json"
    assert limited.json()["error"]["code"] == "rate_limited"
    assert "Too many searches" in limited.json()["error"]["message"]
    assert 0 < int(limited["Retry-After"]) <= 60
    # Same address, another account: its own budget.
    other = Client()
    other.force_login(member)
    assert other.get("/api/search", {"q": "x", "mode": "text"}).status_code == 200


def _anonymous(ip: str, forwarded: str | None = None):
    request = RequestFactory().get("/", REMOTE_ADDR=ip)
    if forwarded:
        request.META["HTTP_X_FORWARDED_FOR"] = forwarded
    from django.contrib.auth.models import AnonymousUser

    request.user = AnonymousUser()
    return request


def test_it_counts_anonymous_clients_by_address_and_ignores_forged_headers():
    for n in range(3):
        # A new forged X-Forwarded-For each time: still the same client.
        assert (
            limit_request(_anonymous("203.0.113.7", f"10.0.0.{n}"), group="t", rate="3/m") is None
        )
    assert limit_request(_anonymous("203.0.113.7", "10.0.0.99"), group="t", rate="3/m") is not None
    assert limit_request(_anonymous("198.51.100.1"), group="t", rate="3/m") is None


def test_it_trusts_forwarded_addresses_only_as_far_as_the_proxy_count(settings):
    request = _anonymous("10.0.0.1", "6.6.6.6, 203.0.113.7")
    assert client_ip(request) == "10.0.0.1"
    settings.TRUSTED_PROXY_COUNT = 1
    # The proxy appended the address it saw; what the client wrote further left is not used.
    assert client_ip(request) == "203.0.113.7"
    assert client_ip(_anonymous("10.0.0.1", "not-an-ip")) == "unknown"


def test_an_html_form_gets_a_friendly_429_page(owner_client, media, settings):
    settings.UPLOAD_RATE = "1/m"
    upload = reverse("documents:upload")

    def post(name):
        return owner_client.post(
            upload, {"files": [SimpleUploadedFile(name, b"Some manual text.\n")]}
        )

    assert post("a.txt").status_code in (302, 303)
    page = post("b.txt")
    assert page.status_code == 429
    assert page["Content-Type"].startswith("text/html")
    assert 0 < int(page["Retry-After"]) <= 60
    html = page.content.decode()
    assert "Too many uploads. Try again in" in html
    assert reverse("documents:library") in html


@pytest.mark.parametrize("what", ["search", "upload", "chat"])
def test_the_other_limits_fail_open_when_redis_is_down(owner_client, owner, media, settings, what):
    settings.CACHES = {**settings.CACHES, **DEAD_LIMIT_STORE}
    settings.SEARCH_RATE = settings.UPLOAD_RATE = settings.CHAT_RATE = "1/m"
    for _ in range(3):  # over the limit, but nothing can count: let the user work
        if what == "search":
            response = owner_client.get("/api/search", {"q": "x", "mode": "text"})
            assert response.status_code == 200
        elif what == "upload":
            response = owner_client.post(
                "/api/documents", {"files": [SimpleUploadedFile("a.txt", b"manual text\n")]}
            )
            assert response.status_code in (200, 201), response.content
        else:
            chat = Chat.objects.create(owner=owner)
            response = owner_client.post(
                f"/api/chats/{chat.pk}/messages",
                {"question": "x"},
                content_type="application/json",
            )
            assert response.status_code == 200
            b"".join(response.streaming_content)


def test_sign_in_fails_closed_when_redis_is_down(client, owner, settings):
    from conftest import PASSWORD

    settings.CACHES = {**settings.CACHES, **DEAD_LIMIT_STORE}
    response = client.post(
        reverse("accounts:login"), {"username": owner.email, "password": PASSWORD}
    )
    assert response.status_code == 503
    assert "temporarily unavailable" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_new_chats_per_user_are_rate_limited(owner_client, owner, member, settings):
    """10,000 empty chats in a minute made the sidebar page through 101 requests."""
    settings.CHAT_CREATE_RATE = "2/h"
    for _ in range(2):
        assert owner_client.post("/api/chats", {}, "application/json").status_code == 201
    refused = owner_client.post("/api/chats", {"title": "third"}, "application/json")
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
    assert "Too many new chats" in refused.json()["error"]["message"]
    assert 0 < int(refused["Retry-After"]) <= 3600
    assert Chat.objects.filter(owner=owner).count() == 2  # nothing half-made
    # With a first question too (no answer is queued, no chat is made).
    asked = owner_client.post("/api/chats", {"question": "How?"}, "application/json")
    assert asked.status_code == 429 and Chat.objects.filter(owner=owner).count() == 2
    other = Client()
    other.force_login(member)
    assert other.post("/api/chats", {}, "application/json").status_code == 201


def test_new_api_tokens_per_user_are_rate_limited_by_the_api_and_the_profile(
    owner_client, owner, settings
):
    from accounts.models import ApiToken

    settings.TOKEN_CREATE_RATE = "2/h"
    assert owner_client.post("/api/tokens", {"name": "a"}, "application/json").status_code == 201
    assert owner_client.post(reverse("accounts:profile"), {"name": "b"}).status_code == 201
    refused = owner_client.post("/api/tokens", {"name": "c"}, "application/json")
    assert (
        refused.status_code == 429 and "Too many new tokens" in refused.json()["error"]["message"]
    )
    assert 0 < int(refused["Retry-After"]) <= 3600
    page = owner_client.post(reverse("accounts:profile"), {"name": "d"})
    assert page.status_code == 429 and page["Content-Type"].startswith("text/html")
    assert "Too many new tokens. Try again in" in page.content.decode()
    assert int(page["Retry-After"]) > 0
    assert sorted(ApiToken.objects.filter(user=owner).values_list("name", flat=True)) == ["a", "b"]


def test_the_profile_lists_tokens_a_page_at_a_time(owner_client, owner, settings):
    from accounts.models import ApiToken

    settings.TOKENS_PER_PAGE = 3
    for n in range(7):
        ApiToken.issue(user=owner, name=f"token-{n}")
    first = owner_client.get(reverse("accounts:profile")).content.decode()
    assert [f"token-{n}" in first for n in range(7)] == [False] * 4 + [True] * 3  # newest
    assert "Page 1 of 3 (7 tokens)" in first and 'href="?page=2"' in first
    last = owner_client.get(reverse("accounts:profile"), {"page": 3}).content.decode()
    assert "<td>token-0</td>" in last and "<td>token-1</td>" not in last
    # A page that does not exist shows the last one, not an error.
    assert (
        "<td>token-0</td>"
        in owner_client.get(reverse("accounts:profile"), {"page": 99}).content.decode()
    )
