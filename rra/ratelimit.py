"""Rate-limit keys and helpers on top of django-ratelimit.

Counters live in the "ratelimit" cache (Redis when REDIS_URL is set). That cache does
not swallow Redis errors, so each limit decides what an outage means: sign-in fails
closed (RateLimitUnavailable -> 503), everything else fails open.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest
from django_ratelimit.core import get_usage

from rra import telemetry

logger = logging.getLogger(__name__)


class RateLimitUnavailable(Exception):
    """The counter store could not be reached for a limit that fails closed."""


def client_ip(request: HttpRequest) -> str:
    """The client address, trusting X-Forwarded-For only as far as TRUSTED_PROXY_COUNT.

    With N trusted proxies each appending the address it saw, the client is the N-th
    address from the right; anything further left was written by the client itself.
    """
    remote = request.META.get("REMOTE_ADDR", "")
    hops = settings.TRUSTED_PROXY_COUNT
    if hops:
        forwarded = [
            part.strip()
            for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
            if part.strip()
        ]
        if len(forwarded) >= hops:
            remote = forwarded[-hops]
    try:
        return str(ipaddress.ip_address(remote))
    except ValueError:
        return "unknown"


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Usage:
    count: int
    limit: int
    retry_after: int  # seconds until the window ends

    @property
    def exhausted(self) -> bool:
        return self.count >= self.limit


def usage(
    request: HttpRequest,
    *,
    group: str,
    value: str,
    rate: str,
    increment: bool,
    fail_open: bool,
) -> Usage | None:
    """Read (and optionally count one more hit on) a fixed-window counter.

    None means "not limited": rate limiting is disabled, or the store is down and this
    limit fails open.
    """
    try:
        result = get_usage(
            request, group=group, key=lambda _g, _r: _digest(value), rate=rate, increment=increment
        )
    except Exception as exc:  # redis.ConnectionError, TimeoutError, ...
        logger.warning("rate-limit store unavailable for %s: %s", group, exc)
        result = {"limit": 0, "time_left": -1}
    if result is None:
        return None
    if result["limit"] == 0 and result["time_left"] == -1:
        # django-ratelimit's sign that the counter could not be read or written.
        if fail_open:
            return None
        raise RateLimitUnavailable(group)
    # django-ratelimit's window still holds at its last second (time_left 0): the counter
    # resets one second after time_left, which is what a client retrying on Retry-After needs.
    found = Usage(count=result["count"], limit=result["limit"], retry_after=result["time_left"] + 1)
    if not increment and found.exhausted:
        # A check before acting (sign-in): the caller turns this request away.
        telemetry.ratelimit_rejected(group)
    return found


def retry_after_text(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} seconds"
    return f"{math.ceil(seconds / 60)} minutes"


def limit_request(request: HttpRequest, *, group: str, rate: str) -> Usage | None:
    """Count one hit for the signed-in user (else the client IP); return the usage when
    the limit is exceeded, None otherwise. Fails open when the store is down."""
    hit = usage(
        request, group=group, value=_subject(request), rate=rate, increment=True, fail_open=True
    )
    if hit is not None and hit.count > hit.limit:
        telemetry.ratelimit_rejected(group)
        return hit
    return None


def _subject(request: HttpRequest) -> str:
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    return f"ip:{client_ip(request)}"


def limit_items(request: HttpRequest, *, group: str, rate: str, count: int) -> Usage | None:
    """Charge `count` items (files of an upload) to the signed-in user (else the client
    IP) when they all fit in what is left of the window; return the usage when they do
    not (unchanged, unless a parallel request took the rest while these were charged).
    `count=0` only checks that something is left, before a body is read. Fails open when
    the store is down."""
    value = _subject(request)
    seen = usage(request, group=group, value=value, rate=rate, increment=False, fail_open=True)
    if seen is None:
        return None
    if seen.exhausted or seen.count + count > seen.limit:
        if not seen.exhausted:  # usage() counted the exhausted case already
            telemetry.ratelimit_rejected(group)
        return seen
    # django-ratelimit adds one per call. Each INCR hands out one number, so however
    # requests interleave, no more than `limit` items ever get a number within it: a
    # request that drew a number past the limit (another charged since the check above)
    # is refused, and what it drew stays spent.
    for _ in range(count):
        charged = usage(
            request, group=group, value=value, rate=rate, increment=True, fail_open=True
        )
        if charged is not None and charged.count > charged.limit:
            telemetry.ratelimit_rejected(group)
            return charged
    return None


def too_many_files(sent: int, hit: Usage) -> str:
    """The `what` of a 429 for an upload whose files do not fit in what is left."""
    if sent > hit.limit:  # would never fit: waiting does not help
        return f"files: {sent} sent, at most {hit.limit} fit in one window; send fewer at a time"
    left = max(0, hit.limit - hit.count)
    return f"files: {sent} sent, {left} of {hit.limit} left in this window"


def too_many_requests_json(hit: Usage, what: str):
    from rra.api import json_error

    response = json_error(
        429,
        "rate_limited",
        f"Too many {what}. Try again in {retry_after_text(hit.retry_after)}.",
    )
    response["Retry-After"] = str(hit.retry_after)
    return response


def too_many_requests_page(
    request: HttpRequest, hit: Usage, what: str, *, back_url: str, back_label: str
):
    """The friendly HTML answer to a form that hit its limit: 429, Retry-After."""
    from django.shortcuts import render

    response = render(
        request,
        "errors/429.html",
        {
            "message": f"Too many {what}. Try again in {retry_after_text(hit.retry_after)}.",
            "back_url": back_url,
            "back_label": back_label,
        },
        status=429,
    )
    response["Retry-After"] = str(hit.retry_after)
    return response
