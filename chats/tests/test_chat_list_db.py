"""While Redis is partitioned away (its process stopped, the circuit breaker open), the
chat list's first page comes from one SQL statement with the API token or the session
and its user (chats/chat_list.py): the same bytes and headers DRF's path gives, never
another user's list, and a token or session that no longer passes is refused as
before. (With Redis up it is one MGET; from two statements and DRF's serializers it
cost 3-4x that, bench/README.md "One statement for the chat list".)"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import ApiToken
from chats.models import Chat
from rra.testing.redis_partition import partition, refusals_of_dead_tokens

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("redis_url")]

ACCEPT = {"HTTP_ACCEPT_ENCODING": "gzip, deflate, br"}
ASKED = (
    "/api/chats",
    "/api/chats?page_size=5",
    "/api/chats?page_size=100",
    "/api/chats?page_size=0",  # DRF's default then
    "/api/chats?q=cal",
    "/api/chats?q=%25_%5C",  # LIKE's own characters, searched for as they are
    "/api/chats?q=+Cal+&page_size=3&other=1",
)


@pytest.fixture
def chats(owner, member):
    now = timezone.now()
    for n in range(36):
        Chat.objects.create(
            owner=owner,
            title=f'Calibration {n} "quoted" é ☃' if n % 3 else f"Alignment {n} %_\\",
            visibility=Chat.Visibility.PUBLIC if n % 4 == 0 else Chat.Visibility.PRIVATE,
            # Some share a creation time: the next link's offset is DRF's then too.
            created_at=now - timedelta(minutes=n // 2),
        )
    Chat.objects.create(owner=member, title="Member's calibration")


def _same(response, expected) -> None:
    assert response.status_code == 200, response.content
    assert response.content == expected.content
    for header in ("Content-Type", "Content-Encoding", "ETag", "Vary"):
        assert response.get(header) == expected.get(header), header
    # No write time known without Redis's generations (none on DRF's path either).
    assert "Last-Modified" not in response or "Last-Modified" in expected


def test_with_the_breaker_open_the_list_is_one_statement_and_the_bytes_drf_gives(
    client, owner, chats, private_redis
):
    server, breaker = private_redis
    _, secret = ApiToken.issue(user=owner, name="partition")
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    browser = Client()
    browser.force_login(owner)
    # With Redis up, every page as DRF computes it (then cached).
    by_token = {path: client.get(path, **bearer, **ACCEPT) for path in ASKED}
    by_session = {path: browser.get(path, **ACCEPT) for path in ASKED}
    for path in ASKED:
        _same(by_session[path], by_token[path])
    assert client.get("/api/chats", **bearer).json()["next"]  # 36 chats: a second page
    partition(server, breaker, client, **bearer)

    for path in ASKED:
        with CaptureQueriesContext(connection) as token_queries:
            _same(client.get(path, **bearer, **ACCEPT), by_token[path])
        with CaptureQueriesContext(connection) as session_queries:
            _same(browser.get(path, **ACCEPT), by_session[path])
        # The token (or the session) with its user and the page: one round trip.
        assert len(token_queries) == 1, [q["sql"] for q in token_queries.captured_queries]
        assert len(session_queries) == 1, [q["sql"] for q in session_queries.captured_queries]

    # Following the next link (a cursor) goes through DRF, as before: the same pages.
    with_redis_down = client.get("/api/chats", **bearer).json()
    second = client.get(with_redis_down["next"], **bearer).json()
    assert [c["title"] for c in with_redis_down["results"] + second["results"]] == [
        c.title for c in Chat.objects.filter(owner=owner).order_by("-created_at", "-id")[:60]
    ]
    # A query string DRF refuses is still refused.
    assert client.get("/api/chats", {"q": "\x00"}, **bearer).status_code == 400
    assert browser.get("/api/chats", {"q": "x" * 501}).status_code == 400
    # An If-None-Match of the body's ETag: 304, as DRF's path answers.
    etag = by_token["/api/chats"]["ETag"]
    assert client.get("/api/chats", HTTP_IF_NONE_MATCH=etag, **bearer, **ACCEPT).status_code == 304


def test_with_the_breaker_open_a_token_or_session_that_no_longer_passes_is_refused(
    client, owner, member, chats, private_redis
):
    server, breaker = private_redis
    token, secret = ApiToken.issue(user=owner, name="partition")
    _, member_secret = ApiToken.issue(user=member, name="member")
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    owners = Client()
    owners.force_login(owner)
    members = Client()
    members.force_login(member)
    for browser in (owners, members):
        assert browser.get("/api/chats").status_code == 200  # the session's user remembered
    partition(server, breaker, client, **bearer)

    # Each sees their own list only.
    member_list = client.get("/api/chats", HTTP_AUTHORIZATION=f"Bearer {member_secret}").json()
    assert [c["title"] for c in member_list["results"]] == ["Member's calibration"]
    assert [c["title"] for c in members.get("/api/chats").json()["results"]] == [
        "Member's calibration"
    ]
    # A session whose remembered user is wrong reads another user's row and page in its
    # statement, but what decides is the session as read: its own user's list.
    from accounts import sessions as session_engine

    key = members.cookies["sessionid"].value
    session_engine._OWNERS[key] = owner.pk
    assert [c["title"] for c in members.get("/api/chats").json()["results"]] == [
        "Member's calibration"
    ]
    assert client.get("/api/chats", HTTP_AUTHORIZATION="Bearer rra_nonsense").status_code == 401

    # An expired token, a revoked one, a deactivated user, a changed password.
    refusals_of_dead_tokens(client, token, "/api/chats", **bearer)
    type(owner).objects.filter(pk=owner.pk).update(is_active=False)
    assert client.get("/api/chats", **bearer).status_code == 401
    assert owners.get("/api/chats").status_code in (401, 403)
    member.set_password("another password 123")
    member.save()
    assert members.get("/api/chats").status_code in (401, 403)
