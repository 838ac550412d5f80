"""Redis partitioned away (its process stopped: connections open, nothing answers):
after the first timeout the circuit breaker (rra/redis_breaker.py) opens and requests
stop waiting on Redis; pages and the API answer, readiness says "degraded", the rate
limits behave as documented (most fail open, sign-in fails closed); when Redis answers
again, the breaker closes."""

from __future__ import annotations

import logging
import os
import signal
import time

import pytest
from django.urls import reverse

from accounts.models import ApiToken
from chats.models import Chat
from conftest import PASSWORD
from rra import redis_breaker
from rra.testing.redis_partition import refusals_of_dead_tokens

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("redis_url")]


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
    # New chats and API tokens (CHAT_CREATE_RATE, TOKEN_CREATE_RATE) fail open too.
    created = client.post("/api/chats", {"title": "During"}, content_type="application/json")
    assert created.status_code == 201, created.content
    issued = client.post("/api/tokens", {"name": "during"}, content_type="application/json")
    assert issued.status_code == 201, issued.content
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


def test_with_the_breaker_open_the_chat_list_comes_from_the_database_without_touching_redis(
    client, owner, private_redis, caplog
):
    """While the breaker refuses, the chat list (API token or session) does not try Redis
    at all: no cache read, read-ahead, store, generation bump or session lookup is even
    refused, and nothing is logged per request (the trip was logged once)."""
    server, breaker = private_redis
    _, secret = ApiToken.issue(user=owner, name="partition")
    Chat.objects.create(owner=owner, title="Listed from the database")
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    assert client.get("/api/chats", **bearer).status_code == 200  # cached while Redis is up
    session = type(client)()
    session.force_login(owner)

    os.kill(server.process.pid, signal.SIGSTOP)
    assert client.get("/api/health/live").status_code == 200
    assert client.get("/api/chats", **bearer).status_code == 200  # waits one timeout, trips
    assert breaker.is_open

    attempts, refused = breaker.attempts, breaker.refused
    caplog.clear()
    for _ in range(3):
        by_token = client.get("/api/chats", **bearer)
        assert by_token.status_code == 200
        assert [c["title"] for c in by_token.json()["results"]] == ["Listed from the database"]
        by_session = session.get("/api/chats")
        assert by_session.status_code == 200
        assert by_session.json()["results"] == by_token.json()["results"]
    assert (breaker.attempts, breaker.refused) == (attempts, refused)
    assert not [r for r in caplog.records if r.name == "rra.cache"]

    # A new chat while Redis is down is listed at once (no stale entry is kept, since
    # none was read or stored), and a bad query string is still a 400.
    Chat.objects.create(owner=owner, title="Made during the outage")
    titles = [c["title"] for c in client.get("/api/chats", **bearer).json()["results"]]
    assert titles == ["Made during the outage", "Listed from the database"]
    assert client.get("/api/chats", {"q": "\x00"}, **bearer).status_code == 400


def test_a_command_the_open_breaker_refused_is_not_logged_but_other_cache_errors_are(caplog):
    from django_redis.exceptions import ConnectionInterrupted

    log = logging.getLogger("rra.cache")  # DJANGO_REDIS_LOGGER, with the settings' filter
    for cause in (redis_breaker.CircuitOpen("open"), ConnectionError("reset by peer")):
        try:
            raise ConnectionInterrupted(connection=None) from cause
        except ConnectionInterrupted:
            log.exception("Exception ignored")
    logged = [r for r in caplog.records if r.name == "rra.cache"]
    assert [type(r.exc_info[1].__cause__) for r in logged] == [ConnectionError]


def test_with_the_breaker_open_a_session_and_its_user_come_in_one_query(
    owner, member, private_redis
):
    """While the breaker refuses, a browser's request reads its session row and its
    user's row in one query (accounts/sessions.py; the chat list reads its page in the
    same statement too: chats/tests/test_chat_list_db.py). What decides is the session
    as read: a wrong remembered owner gets no user handed over, and a password change
    still ends the session."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from accounts import sessions as session_engine

    server, breaker = private_redis
    Chat.objects.create(owner=owner, title="Owner's chat")
    Chat.objects.create(owner=member, title="Member's chat")
    browser = Client()
    browser.force_login(owner)
    assert browser.get("/api/chats").status_code == 200  # its owner remembered
    os.kill(server.process.pid, signal.SIGSTOP)
    assert browser.get("/api/chats").status_code == 200  # waits one timeout, trips
    assert breaker.is_open

    with CaptureQueriesContext(connection) as queries:
        me = browser.get("/api/me")
    assert me.status_code == 200 and me.json()["email"] == owner.email
    tables = [q["sql"].split(" FROM ", 1)[1].split()[0] for q in queries.captured_queries]
    assert tables == ['"django_session"'], tables

    # A remembered owner that is not the session's: the other user's row is read but
    # not used; the session's own user is looked up.
    key = browser.cookies["sessionid"].value
    session_engine._OWNERS[key] = member.pk
    assert browser.get("/api/me").json()["email"] == owner.email
    session_engine._OWNERS[key] = member.pk
    listed = browser.get("/api/chats")
    assert [c["title"] for c in listed.json()["results"]] == ["Owner's chat"]
    session_engine._OWNERS[key] = owner.pk

    # The password changes (elsewhere): the session's hash no longer matches.
    owner.set_password("another password 123")
    owner.save()
    assert browser.get("/api/me").status_code in (401, 403)
    assert browser.get("/api/chats").status_code in (401, 403)


def test_with_the_breaker_open_an_api_token_is_read_by_one_written_statement(
    client, owner, private_redis
):
    """While the breaker refuses there is no cached token to read: every request by API
    token reads the token and its user in accounts.authentication's one statement,
    written once, instead of a query the ORM builds on each request (the chat's API cost
    2.6-2.8x its cached CPU, bench/README.md). A token that no longer passes is refused
    as before."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    server, breaker = private_redis
    token, secret = ApiToken.issue(user=owner, name="partition")
    chat = Chat.objects.create(owner=owner, title="Read by token")
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    assert client.get("/api/me", **bearer).status_code == 200
    os.kill(server.process.pid, signal.SIGSTOP)
    assert client.get("/api/me", **bearer).status_code == 200  # waits one timeout, trips
    assert breaker.is_open

    for path in ("/api/me", f"/api/chats/{chat.pk}"):
        with CaptureQueriesContext(connection) as queries:
            assert client.get(path, **bearer).status_code == 200, path
        first = queries.captured_queries[0]["sql"]
        assert 'FROM "accounts_apitoken" t JOIN "accounts_user" u' in first, first
    assert client.get(f"/api/chats/{chat.pk}", **bearer).json()["title"] == "Read by token"

    refused = "Invalid or revoked API token."
    answer = refusals_of_dead_tokens(client, token, "/api/me", **bearer)
    assert refused in answer.content.decode()
    type(owner).objects.filter(pk=owner.pk).update(is_active=False)
    assert client.get("/api/me", **bearer).status_code == 401
    assert client.get("/api/me", HTTP_AUTHORIZATION="Bearer rra_nonsense").status_code == 401
    assert breaker.is_open and breaker.trips == 1
