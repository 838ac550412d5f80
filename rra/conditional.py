"""HTTP caching of the per-user GETs: ETag, Last-Modified, 304, Cache-Control, Vary.

For the views named in HTTP_CACHE_MAX_AGE (chat list and detail, documents list and
detail, search, page data, and the pages that show them), a 200 answer gets

- an ETag: the view's own, or a hash of the body. In HTML the per-response values
  (masked CSRF tokens, CSP nonces) are left out of the hash and the session's CSRF secret
  and the user are put in, so an unchanged page matches while a page whose forms would
  carry a dead token does not;
- ``Cache-Control: private`` with the view's max-age (0: ``no-cache``, the browser
  revalidates every time), and ``Vary: Cookie, Authorization``;
- a 304 instead when If-None-Match (or, without it, If-Modified-Since against the
  view's Last-Modified) says the client has it.

A 304 carries no Content-Security-Policy: the cached page keeps the policy it came with,
whose nonce matches its scripts (caches merge a 304's headers into the stored answer).

The chat endpoints build their bodies from the query cache, so a 304 there costs no
database query; elsewhere it saves the transfer, not the work.
"""

from __future__ import annotations

import functools
import hashlib
import re

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.cache import get_conditional_response, patch_cache_control, patch_vary_headers
from django.utils.http import parse_http_date_safe

from rra import telemetry

# Values that differ on every response although the page does not.
_VOLATILE = re.compile(
    rb'((?:name="csrfmiddlewaretoken" value|name="csrf-token" content|nonce)=")[^"]*"'
)


def body_etag(request: HttpRequest, response: HttpResponse) -> str:
    content = response.content
    if response.get("Content-Type", "").startswith("text/html"):
        content = _VOLATILE.sub(rb'\1"', content)
    digest = hashlib.sha256(content)
    user = getattr(request, "user", None)
    digest.update(f"|{getattr(user, 'pk', None)}|{request.META.get('CSRF_COOKIE', '')}".encode())
    return f'"{digest.hexdigest()[:32]}"'


# The request headers that can make get_conditional_response() answer other than 200.
CONDITIONS = (
    "HTTP_IF_MATCH",
    "HTTP_IF_UNMODIFIED_SINCE",
    "HTTP_IF_NONE_MATCH",
    "HTTP_IF_MODIFIED_SINCE",
)


@functools.cache
def _cache_control(max_age: int) -> str:
    """The Cache-Control that patch_cache_control() gives a response that has none."""
    response = HttpResponse()
    patch_cache_control(response, private=True, max_age=max_age)
    if not max_age:
        patch_cache_control(response, no_cache=True)
    return response["Cache-Control"]


class ConditionalGetMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        match = request.resolver_match
        view = match.view_name if match is not None else None
        if (
            view not in settings.HTTP_CACHE_MAX_AGE
            or request.method not in ("GET", "HEAD")
            or response.status_code != 200
            or response.streaming
        ):
            return response
        max_age = settings.HTTP_CACHE_MAX_AGE[view]
        if response.has_header("Cache-Control"):
            patch_cache_control(response, private=True, max_age=max_age)
            if not max_age:
                patch_cache_control(response, no_cache=True)
        else:  # the same value, worked out once
            response.headers["Cache-Control"] = _cache_control(max_age)
        patch_vary_headers(response, ("Cookie", "Authorization"))
        if not response.has_header("ETag"):
            response["ETag"] = body_etag(request, response)
        conditional = response
        if any(request.META.get(name) for name in CONDITIONS):
            last_modified = parse_http_date_safe(response.get("Last-Modified", ""))
            conditional = get_conditional_response(
                request, etag=response["ETag"], last_modified=last_modified, response=response
            )
        not_modified = conditional is not response
        telemetry.conditional_get(view, not_modified=not_modified)
        if not_modified:
            conditional._csp_exempt = True  # django-csp: leave the cached policy alone
        return conditional
