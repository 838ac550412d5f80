"""The messages middleware (rra.middleware.MessageMiddleware) makes a request's message
storage only when the request uses it, and stores and shows messages as Django's does."""

from __future__ import annotations

from importlib import import_module

from django.conf import settings
from django.contrib import messages
from django.contrib.messages.storage.cookie import CookieStorage
from django.contrib.messages.storage.fallback import FallbackStorage
from django.http import HttpResponse
from django.utils.functional import empty

from rra.middleware import MessageMiddleware

COOKIE = CookieStorage.cookie_name


def _request(rf, cookies: dict[str, str] | None = None):
    request = rf.get("/")
    request.session = import_module(settings.SESSION_ENGINE).SessionStore()
    request.COOKIES.update(cookies or {})
    return request


def test_it_is_the_messages_middleware_of_the_settings():
    assert "rra.middleware.MessageMiddleware" in settings.MIDDLEWARE
    assert "django.contrib.messages.middleware.MessageMiddleware" not in settings.MIDDLEWARE


def test_a_request_that_uses_no_messages_makes_no_storage(rf):
    request = _request(rf)
    response = MessageMiddleware(lambda r: HttpResponse("ok"))(request)
    assert request._messages._wrapped is empty  # never made
    assert COOKIE not in response.cookies
    assert not request.session.modified


def test_messages_are_stored_and_shown_as_django_does(rf):
    def add(request):
        messages.success(request, "Saved.")
        return HttpResponse()

    first = _request(rf)
    response = MessageMiddleware(add)(first)
    assert isinstance(first._messages, FallbackStorage)  # made by the first use
    cookie = response.cookies[COOKIE]
    assert cookie.value

    shown = []

    def show(request):
        shown.extend(str(m) for m in messages.get_messages(request))
        return HttpResponse()

    second = _request(rf, {cookie.key: cookie.value})
    response = MessageMiddleware(show)(second)
    assert shown == ["Saved."]
    # Shown once: Django's storage deletes the cookie it read.
    assert response.cookies[COOKIE].value == ""
    assert response.cookies[COOKIE]["max-age"] == 0


def test_a_storage_looked_at_but_empty_stores_nothing(rf):
    def look(request):
        assert list(messages.get_messages(request)) == []
        return HttpResponse()

    request = _request(rf)
    response = MessageMiddleware(look)(request)
    assert request._messages._wrapped is not empty
    assert COOKIE not in response.cookies
