"""Answering a GET outside DRF, decided by the view's own DRF classes.

The chat list (with Redis up: a cache hit; with its circuit breaker open: a first page
from one statement) and a chat's API (with the breaker open: a first page of messages
from one statement) answer their most frequent request before DRF's request wrapper,
negotiation, authentication, permissions and throttles are run for it, which cost as
much as the cached work itself. What decides is still the view's own classes, as
APIView.initial runs them: ``direct`` refuses what only DRF may answer (another method,
a format, versioning, negotiation that could refuse the Accept header), the caller
authenticates by the view's first authenticator's functions (an API token) or the
session as DRF's SessionAuthentication finds it (``session_user``), and ``passes`` runs
every permission and throttle class of the view. Anything that does not pass goes on to
DRF, which asks again and answers its way (a 401, 403, 404 or 406 included).
"""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils.http import http_date
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import AuthenticationFailed, NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.settings import api_settings

from accounts.authentication import ApiTokenAuthentication, bearer_secret, token_user_with
from accounts.sessions import read_session_with
from rra import querycache
from rra.compression import brotli_form, with_compressed


class StreamNegotiation(DefaultContentNegotiation):
    """Answer endpoints stream text/event-stream; anything they answer as a document
    (validation errors, 429) is JSON whatever the Accept header asked for."""

    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except NotAcceptable:
            return renderers[0], renderers[0].media_type


def rendered(data) -> tuple[bytes, str, bytes | None]:
    """A cached API body: the JSON, its ETag and its brotli form, so a hit costs neither
    serialization, hashing nor compression."""
    body = JSONRenderer().render(data)
    return body, f'"{hashlib.sha256(body).hexdigest()[:32]}"', brotli_form(body)


def json_response(found: querycache.Entry) -> HttpResponse:
    """The response of a cached body: the body, its ETag and its brotli form (made once
    when the entry was computed, so a hit is not compressed again)."""
    body, etag, br = found.value
    response = HttpResponse(body, content_type="application/json")
    response["ETag"] = etag
    if found.changed_at is not None:
        response["Last-Modified"] = http_date(found.changed_at.timestamp())
    return with_compressed(response, br)


class DirectGet:
    """For an APIView: what decides a GET answered outside DRF (see the module)."""

    def direct(self, request: HttpRequest, kwargs: dict) -> bool:
        """Whether DRF would get as far as authenticating this request the way ``passes``
        and the caller do: a GET with no format (suffix or ?format=), no versioning, an
        Accept header the view's negotiation accepts (StreamNegotiation accepts any),
        and the view's first authenticator an API token's."""
        negotiation = self.content_negotiation_class
        format_override = negotiation.settings.URL_FORMAT_OVERRIDE
        if (
            request.method != "GET"
            or api_settings.FORMAT_SUFFIX_KWARG in kwargs
            or (format_override and format_override in request.GET)
            or self.versioning_class is not None
            or not self.authentication_classes
            or not issubclass(self.authentication_classes[0], ApiTokenAuthentication)
        ):
            return False
        if issubclass(negotiation, StreamNegotiation):  # never a 406
            return True
        try:  # what DefaultContentNegotiation reads of a request: its Accept header
            shim = SimpleNamespace(query_params=request.GET, META=request.META)
            negotiation().select_renderer(shim, [r() for r in self.renderer_classes])
        except NotAcceptable:
            return False
        return True

    def passes(self, request: HttpRequest, user, token, kwargs: dict) -> bool:
        """The view's permission and throttle classes, with the user and token set on the
        request as DRF's Request sets them (and put back when one refuses)."""
        before = request.user
        request.user, request.auth = user, token
        self.args, self.kwargs, self.request = (), kwargs, request
        if not all(p.has_permission(request, self) for p in self.get_permissions()) or not all(
            t.allow_request(request, self) for t in self.get_throttles()
        ):
            request.user, request.auth = before, None
            return False
        self.headers = self.default_response_headers
        return True

    def session_user(self, request: HttpRequest):
        """The signed-in user of the request's session as DRF's SessionAuthentication
        would find it (Django's request.user: the session checked by
        django.contrib.auth.get_user), or None. The view's ``read_ahead_user`` reads the
        session and its user (and what the view needs with them) in one round trip. A
        GET passes SessionAuthentication's CSRF check by definition (a safe method);
        every other method goes through DRF."""
        classes = self.authentication_classes
        if (
            len(classes) < 2
            or not issubclass(classes[1], SessionAuthentication)
            or settings.SESSION_COOKIE_NAME not in request.COOKIES
        ):
            return None
        self.read_ahead_user(request)  # done already when the middleware called it
        user = getattr(request, "user", None)
        return user if user is not None and user.is_authenticated and user.is_active else None

    def caller_rows(self, request: HttpRequest, query, nobody=None) -> tuple | None:
        """While Redis is unreachable: (user, token, rows) of `query` (a page of the chat
        list or of a chat, with its ``sql()``) for the request's caller as DRF would find
        it: an API token's, in one statement with its user (token_user_with); a
        session's, the rows read ahead with it (rows_read_ahead; rows None when they were
        not); without either and with `nobody`, an anonymous reader and nobody()'s rows.
        None when DRF must answer: a malformed token header, a token or session that
        finds no active user."""
        try:
            secret = bearer_secret(request)
        except AuthenticationFailed:
            return None
        if secret is not None:
            return token_user_with(secret, *query.sql())
        if nobody is not None and settings.SESSION_COOKIE_NAME not in request.COOKIES:
            return AnonymousUser(), None, nobody()
        user = self.session_user(request)
        return (user, None, rows_read_ahead(request, user, query)) if user else None

    def answer(self, request: HttpRequest, found: querycache.Entry) -> HttpResponseBase:
        """The response DRF's path gives for this body (json_response, then the view's
        headers as finalize_response adds them)."""
        return self.finalize_response(request, json_response(found))


def read_with_session(request: HttpRequest, query) -> None:
    """Before the session's user is loaded, while Redis is unreachable: the session, its
    user and `query`'s rows (a page of the chat list or of a chat, with its ``sql()``)
    in one statement (accounts.sessions.read_session_with), kept on the request for
    ``rows_read_ahead``. Nothing when there is no query."""
    if query is None:
        return
    owner, rows = read_session_with(request, *query.sql())
    if owner is not None:
        request._rra_direct_rows = (owner, query, rows)


def rows_read_ahead(request: HttpRequest, user, query) -> list[tuple] | None:
    """The rows read with the session (read_with_session) when they are this user's and
    this query's; else None. Once."""
    read = request.__dict__.pop("_rra_direct_rows", None)
    if read is None or read[0] != user.pk or read[1] != query:
        return None
    return read[2]
