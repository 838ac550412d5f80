"""The chat list read with a browser session (what the PWA does) is as cheap as with an
API token: a cached list is answered outside DRF, its session, user and entry read in
one Redis round trip (accounts/sessions.py, ChatListView.read_ahead_user); and it is
never less safe: a session ended on the server (sign-out, password change, a user
deactivated) is refused at once, another user's list is never served, CSRF still guards
unsafe methods, and with Redis down the database answers."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.urls import reverse

from accounts import sessions
from chats.models import Chat
from rra.tests.test_query_cache import RedisCalls, titles

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("redis_url")]


@pytest.fixture
def browser(client, owner):
    """A signed-in browser, signed in through the sign-in page as a person would."""
    from conftest import PASSWORD

    response = client.post(
        reverse("accounts:login"), {"username": owner.email, "password": PASSWORD}
    )
    assert response.status_code == 302, response.content
    assert settings.SESSION_COOKIE_NAME in client.cookies
    return client


def test_a_cached_list_with_a_session_is_one_redis_round_trip(browser, owner, redis_url):
    Chat.objects.create(owner=owner, title="Calibration")
    assert titles(browser.get("/api/chats")) == ["Calibration"]  # computed, then cached
    calls = RedisCalls(redis_url)
    assert titles(browser.get("/api/chats")) == ["Calibration"]
    # The session, its user and the list: one MGET.
    assert calls.since_last() == 1
    # Not a stale read: a new chat shows at once.
    Chat.objects.create(owner=owner, title="Alignment")
    assert titles(browser.get("/api/chats")) == ["Alignment", "Calibration"]


def test_a_cached_list_with_a_session_is_answered_without_drf(browser, owner, monkeypatch):
    from rest_framework.views import APIView

    Chat.objects.create(owner=owner, title="Calibration")
    through_drf = []
    initial = APIView.initial
    monkeypatch.setattr(
        APIView, "initial", lambda view, *a, **k: through_drf.append(1) or initial(view, *a, **k)
    )
    accept = {"HTTP_ACCEPT_ENCODING": "gzip, deflate, br"}
    computed = browser.get("/api/chats", **accept)  # a miss: DRF
    cached = browser.get("/api/chats", **accept)  # a hit: no DRF
    assert through_drf == [1]
    assert cached.content == computed.content
    same = {k: v for k, v in cached.headers.items() if k != "X-Request-ID"}
    assert same == {k: v for k, v in computed.headers.items() if k != "X-Request-ID"}
    # A browser's cache keeps one list per person: the answer varies by the cookie.
    assert "Cookie" in [v.strip() for v in cached["Vary"].split(",")]
    # Anything but a GET goes through DRF.
    assert browser.head("/api/chats").status_code == 200
    assert through_drf == [1, 1]


def test_a_signed_out_session_gets_no_list(browser, owner, client):
    Chat.objects.create(owner=owner, title="Calibration")
    assert titles(browser.get("/api/chats")) == ["Calibration"]
    assert titles(browser.get("/api/chats")) == ["Calibration"]  # a hit
    old = browser.cookies[settings.SESSION_COOKIE_NAME].value
    assert browser.post(reverse("accounts:logout")).status_code == 302
    # The old cookie, replayed (a copy kept by another tab or an attacker), is nobody's.
    browser.cookies[settings.SESSION_COOKIE_NAME] = old
    refused = browser.get("/api/chats")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "not_authenticated"


@pytest.mark.parametrize(
    "end",
    [
        pytest.param(lambda user: (user.set_password("a new one 42!"), user.save()), id="password"),
        pytest.param(
            lambda user: type(user).objects.filter(pk=user.pk).update(is_active=False),
            id="deactivated",
        ),
        pytest.param(lambda user: user.delete(), id="deleted"),
    ],
)
def test_a_session_ended_on_the_server_gets_no_cached_list(browser, owner, end):
    Chat.objects.create(owner=owner, title="Calibration")
    assert titles(browser.get("/api/chats")) == ["Calibration"]
    assert titles(browser.get("/api/chats")) == ["Calibration"]  # session, user, list cached
    end(owner)
    refused = browser.get("/api/chats")
    assert refused.status_code == 401
    assert "Calibration" not in refused.content.decode()


def test_a_wrong_memo_of_the_sessions_user_never_serves_another_list(
    browser, owner, outsider, monkeypatch
):
    Chat.objects.create(owner=owner, title="Mine")
    Chat.objects.create(owner=outsider, title="Theirs")
    other = type(browser)()
    other.force_login(outsider)
    assert titles(other.get("/api/chats")) == ["Theirs"]  # the outsider's list cached
    assert titles(browser.get("/api/chats")) == ["Mine"]
    # The process's memo of a session's user goes wrong (it cannot: a session key
    # never changes hands; nothing may rest on that): the entries read ahead are the
    # outsider's. The session decides, and the owner gets their own list.
    key = browser.cookies[settings.SESSION_COOKIE_NAME].value
    monkeypatch.setitem(sessions._OWNERS, key, outsider.pk)
    assert titles(browser.get("/api/chats")) == ["Mine"]


def test_csrf_still_guards_a_sessions_unsafe_requests(owner):
    from django.test import Client

    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(owner)
    Chat.objects.create(owner=owner, title="Calibration")
    assert titles(csrf_client.get("/api/chats")) == ["Calibration"]
    assert titles(csrf_client.get("/api/chats")) == ["Calibration"]  # a hit
    refused = csrf_client.post("/api/chats", {"title": "New"}, content_type="application/json")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["error"]["message"]
    assert list(Chat.objects.filter(owner=owner).values_list("title", flat=True)) == ["Calibration"]


def test_with_redis_down_the_session_and_list_come_from_the_database(browser, owner, settings):
    from rra.tests.test_health import DEAD_REDIS

    Chat.objects.create(owner=owner, title="Calibration")
    assert titles(browser.get("/api/chats")) == ["Calibration"]
    settings.CACHES = {**settings.CACHES, **DEAD_REDIS}
    assert titles(browser.get("/api/chats")) == ["Calibration"]
    Chat.objects.filter(owner=owner).update(title="Renamed")
    assert titles(browser.get("/api/chats")) == ["Renamed"]
    assert browser.post(reverse("accounts:logout")).status_code == 302
    assert browser.get("/api/chats").status_code == 401


def test_a_session_hit_names_the_list_and_the_user_once(browser, owner, monkeypatch):
    """The list's lookup named when the session was read is the one the view reads (its
    key, a hash, is derived once per request), and the user's lookup is named once per
    process."""
    from accounts.backends import user_lookup
    from chats import api

    Chat.objects.create(owner=owner, title="Calibration")
    assert titles(browser.get("/api/chats")) == ["Calibration"]  # computed, then cached
    named = []
    real = api._chat_list_lookup
    monkeypatch.setattr(
        api,
        "_chat_list_lookup",
        lambda request, user_id: named.append(user_id) or real(request, user_id),
    )
    assert titles(browser.get("/api/chats")) == ["Calibration"]
    assert named == [owner.pk]
    assert user_lookup(owner.pk) is user_lookup(owner.pk)
    # Still a read of what is current: a new chat shows at once.
    Chat.objects.create(owner=owner, title="Alignment")
    assert titles(browser.get("/api/chats")) == ["Alignment", "Calibration"]
