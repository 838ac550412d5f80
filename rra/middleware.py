"""Cross-cutting request middleware."""

from __future__ import annotations

import contextvars
import functools
import http.client
import os
import re
import time
from dataclasses import dataclass

import structlog
from csp import middleware as csp_middleware
from csp.constants import HEADER, HEADER_REPORT_ONLY
from csp.utils import build_policy
from django.conf import settings
from django.contrib.messages import middleware as messages_middleware
from django.contrib.messages.storage import default_storage
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponseBase, HttpResponseServerError
from django.middleware.security import SecurityMiddleware
from django.utils.functional import SimpleLazyObject, empty

from rra import logs, metrics, sentry, telemetry

access_log = structlog.get_logger("rra.access")

# What an incoming X-Request-ID may look like to be kept: UUIDs, hex, ULIDs and the
# usual trace-id shapes. Anything else (spaces, quotes, CR/LF, > 128 characters) is
# replaced with a fresh id.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
# Probes and scrapes succeed every few seconds: their access lines are DEBUG.
QUIET_PATHS = ("/api/health", "/metrics")


@dataclass
class _DbStats:
    queries: int = 0
    seconds: float = 0.0


_db_stats: contextvars.ContextVar[_DbStats | None] = contextvars.ContextVar(
    "rra_db_stats", default=None
)


def _count_query(execute, sql, params, many, context):
    """execute_wrapper: time this thread's queries into the current request's stats."""
    stats = _db_stats.get()
    if stats is None:
        return execute(sql, params, many, context)
    started = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        stats.queries += 1
        stats.seconds += time.perf_counter() - started


def install_query_counter(sender=None, connection=None, **kwargs) -> None:
    """connection_created receiver (RraConfig.ready): the request's query counter goes on
    each database connection when it connects, in any thread, instead of being looked for
    on every connection of the thread at every request. It stays on the connection object
    for good (counting only inside a request) and is put first, so that a
    `with connection.execute_wrapper(...)` around a request (which pops the last wrapper
    on exit) still removes its own."""
    if _count_query not in connection.execute_wrappers:
        connection.execute_wrappers.insert(0, _count_query)


def _resolved_user_id(request: HttpRequest) -> int | None:
    """The signed-in user's id when it is already known, without loading it."""
    user = request.__dict__.get("user")
    if isinstance(user, SimpleLazyObject):
        user = user._wrapped
        if user is empty:
            return None
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return user.pk


def _view_label(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    if match is not None:
        return match.view_name or match.route or "unnamed"
    if settings.STATIC_URL and request.path.startswith(settings.STATIC_URL):
        return "static"
    return "unmatched"  # 404s, and redirects made before URL resolution


class RequestObservabilityMiddleware:
    """Request id, log context, one access line, metrics and the Sentry user.

    - X-Request-ID: the incoming one when it is a sane token, else a new one; echoed in
      the response and bound to every log line of the request (with method and path,
      and user_id once the user is known).
    - One "request" access line per request, written when the response is closed (so
      a streamed answer is timed to its last byte), with status, duration_ms and the
      request's database queries and time.
    - Metrics: latency per view/method/status, 5xx and exceptions, DB queries and time.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        metrics.start_background()

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if request.path == "/metrics":
            # Answered here, before host validation: Prometheus scrapes each replica by
            # its IP address, which is not in ALLOWED_HOSTS. Access is the token or the
            # allowed networks (metrics.scrape_allowed).
            return metrics.metrics_view(request)
        started = time.perf_counter()
        # META, not request.headers: the same value, without building the headers'
        # mapping of every request (nothing else on an API read needs it).
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        # A fresh id: 32 random hex digits (uuid4().hex's shape, without building a UUID).
        request_id = incoming if REQUEST_ID.fullmatch(incoming) else os.urandom(16).hex()
        request.request_id = request_id
        logs.bind_request(request_id=request_id, method=request.method, path=request.path)
        stats = _DbStats()
        _db_stats.set(stats)
        metrics.REQUESTS_IN_PROGRESS.inc()
        try:
            response = self.get_response(request)
        except BaseException as exc:
            # Only when even the error page failed: the server answers 500 itself.
            request._observed_exception = type(exc).__name__
            self._finish(request, HttpResponseServerError(), started, stats)
            raise
        response["X-Request-ID"] = request_id
        # An API token is only known after the view ran (DRF authenticates there).
        self._bind_user(request)

        def finish() -> None:
            self._finish(request, response, started, stats)

        closers = getattr(response, "_resource_closers", None)
        if closers is not None:
            closers.append(finish)  # called by response.close(), after the last byte
        else:
            finish()
        return response

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs):
        # With a session cookie the view will load the user anyway; load it now so that
        # the view's own log lines carry user_id. A view class that reads cache entries
        # with the user names them first (``read_ahead_user(request)``), so that they
        # come in the same round trip as the session and the user (the chat list's).
        if settings.SESSION_COOKIE_NAME in request.COOKIES and hasattr(request, "user"):
            read_ahead = getattr(getattr(view_func, "view_class", None), "read_ahead_user", None)
            if read_ahead is not None:
                read_ahead(request)
            request.user.is_authenticated  # noqa: B018 - evaluates the lazy user
        self._bind_user(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        request._observed_exception = type(exception).__name__

    @staticmethod
    def _bind_user(request: HttpRequest) -> None:
        user_id = _resolved_user_id(request)
        if user_id is not None and getattr(request, "_logged_user_id", None) != user_id:
            request._logged_user_id = user_id  # only this binds user_id (after bind_request)
            logs.bind(user_id=user_id)
            sentry.set_user_id(user_id)

    @staticmethod
    def _finish(request, response, started: float, stats: _DbStats) -> None:
        duration = time.perf_counter() - started
        metrics.REQUESTS_IN_PROGRESS.dec()
        _db_stats.set(None)
        view = _view_label(request)
        method = request.method if request.method in metrics.HTTP_METHODS else "other"
        status = response.status_code
        # The labelled children are looked up once per process (telemetry._labelled):
        # views, methods and statuses are few.
        labelled = telemetry._labelled
        labelled(metrics.REQUESTS, view, method, str(status)).inc()
        if response.streaming and response.get("Content-Type", "").startswith("text/event-stream"):
            # An answer streams for as long as the model writes: kept apart, so that
            # the request-latency percentiles stay those of pages and API calls.
            labelled(metrics.STREAM_SECONDS, view, str(status)).observe(duration)
        else:
            labelled(metrics.REQUEST_SECONDS, view, method, str(status)).observe(duration)
        labelled(metrics.DB_QUERIES, view).observe(stats.queries)
        labelled(metrics.DB_SECONDS, view).observe(stats.seconds)
        exception = getattr(request, "_observed_exception", None)
        if exception:
            metrics.EXCEPTIONS.labels(view, exception).inc()
        if status >= 500:
            metrics.SERVER_ERRORS.labels(view, str(status)).inc()
        fields = {
            "status": status,
            "duration_ms": round(duration * 1000, 2),
            "view": view,
            "db_queries": stats.queries,
            "db_ms": round(stats.seconds * 1000, 2),
        }
        if response.streaming:
            fields["streamed"] = True
        if exception:
            fields["exception"] = exception
        if status >= 500:
            access_log.warning("request", **fields)
        elif status < 400 and request.path.startswith(QUIET_PATHS):
            access_log.debug("request", **fields)
        else:
            access_log.info("request", **fields)
        structlog.contextvars.clear_contextvars()


class SecurityHeadersMiddleware(SecurityMiddleware):
    """The security headers on every response, listed first in MIDDLEWARE.

    Django's SecurityMiddleware and XFrameOptionsMiddleware set them only on responses
    that pass through them, and some are answered before: /metrics by
    RequestObservabilityMiddleware, static files by whitenoise. This one reuses
    SecurityMiddleware's response half (HSTS on HTTPS, nosniff, Referrer-Policy,
    Cross-Origin-Opener-Policy), XFrameOptionsMiddleware's X-Frame-Options (kept off a
    response marked xframe_options_exempt) and adds what Django has no setting for.
    Neither of Django's two is listed as well: each was one more layer per request
    setting the same headers again (rra/checks.py keeps `check --deploy`'s checks of
    their settings). The HTTPS redirect is HTTPSRedirectMiddleware's, further down,
    where it is observed (logged and counted). Headers a view set itself are kept.
    """

    def process_request(self, request: HttpRequest) -> None:
        return None  # no redirect here: see the class docstring

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        response = super().process_response(request, response)
        response.headers.setdefault("Permissions-Policy", settings.PERMISSIONS_POLICY)
        response.headers.setdefault("X-DNS-Prefetch-Control", "off")
        if not getattr(response, "xframe_options_exempt", False):
            # As XFrameOptionsMiddleware writes the setting: upper case.
            response.headers.setdefault("X-Frame-Options", settings.X_FRAME_OPTIONS.upper())
        return response


class HTTPSRedirectMiddleware:
    """SecurityMiddleware's request half alone: a plain-HTTP request is redirected (301)
    to HTTPS when SECURE_SSL_REDIRECT is on, to SECURE_SSL_HOST if set, except paths
    matching SECURE_REDIRECT_EXEMPT (health probes, /metrics), as Django's
    SecurityMiddleware.process_request decides it (it is called for that). Listed below
    RequestObservabilityMiddleware, so a redirect is logged and counted; the response
    headers are SecurityHeadersMiddleware's, on every response. A plain middleware, not
    Django's whole SecurityMiddleware: that one set the same headers again on every
    response, in a layer of its own."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        # Reads its settings when made, as Django's own does.
        self._redirect = SecurityMiddleware(get_response).process_request

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        return self._redirect(request) or self.get_response(request)


# The policies' headers of a response that changes nothing of them (no nonce used, no
# @csp_update/@csp_replace/@csp decorator): the same string on every such response.
_PER_RESPONSE_POLICY = (
    "_csp_config",
    "_csp_update",
    "_csp_replace",
    "_csp_config_ro",
    "_csp_update_ro",
    "_csp_replace_ro",
)


@functools.cache
def _fixed_policy(report_only: bool) -> str:
    return build_policy(report_only=report_only)


@receiver(setting_changed, dispatch_uid="rra-csp-policy-changed")
def _policy_setting_changed(setting: str, **kwargs) -> None:
    if setting.startswith("CONTENT_SECURITY_POLICY"):
        _fixed_policy.cache_clear()


class CSPMiddleware(csp_middleware.CSPMiddleware):
    """django-csp's middleware, which builds both policies (enforced and report-only)
    from the settings on every response: a response that uses no nonce and no per-view
    policy gets the same headers, built once per process (pages with scripts use the
    nonce and are built by django-csp as before). Same headers, same exemptions."""

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        if getattr(request, "_csp_nonce", None) is not None or any(
            getattr(response, name, None) is not None for name in _PER_RESPONSE_POLICY
        ):
            return super().process_response(request, response)
        debug_codes = (http.client.INTERNAL_SERVER_ERROR, http.client.NOT_FOUND)
        if response.status_code in debug_codes and settings.DEBUG:
            return response
        for header, report_only, exempt, setting in (
            (HEADER, False, "_csp_exempt", "CONTENT_SECURITY_POLICY"),
            (HEADER_REPORT_ONLY, True, "_csp_exempt_ro", "CONTENT_SECURITY_POLICY_REPORT_ONLY"),
        ):
            policy = _fixed_policy(report_only)
            if not policy or header in response or getattr(response, exempt, False):
                continue
            prefixes = (getattr(settings, setting, None) or {}).get("EXCLUDE_URL_PREFIXES")
            if not request.path_info.startswith(tuple(prefixes or ())):
                response[header] = policy
        # As django-csp: a nonce asked for after the header was written is an error.
        request.csp_nonce = csp_middleware.CheckableLazyObject(self._csp_nonce_post_response)
        return response


class MessageMiddleware(messages_middleware.MessageMiddleware):
    """Django's messages middleware, with the request's message storage made when the
    request first uses it (adds, reads or iterates its messages) instead of on every
    request: an API call or a page without messages never does, and making it (the
    cookie and session backends, a cookie signer) was most of what the middleware cost.
    A storage never made holds nothing to store, as Django's update() of an unused
    storage stores nothing; one that was made is updated as Django updates it."""

    def process_request(self, request: HttpRequest) -> None:
        request._messages = SimpleLazyObject(lambda: default_storage(request))

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        storage = request.__dict__.get("_messages")
        if isinstance(storage, SimpleLazyObject) and storage._wrapped is empty:
            return response
        return super().process_response(request, response)
