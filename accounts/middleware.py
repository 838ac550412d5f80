"""What a browser keeps of one person goes when that person's session ends.

The site marks a signed-in browser with a ``rra_viewer`` cookie: an opaque id of the
user (an HMAC, nothing to guess from), readable by the service worker (Cookie Store
API), which keys its caches of pages and API answers by it (static/js/sw.js). When the
browser was known as one person and no longer is — a sign-out through the site,
Django admin or anything else that calls ``logout()``, a session that expired or was
ended on the server (password change elsewhere, admin), or another person signing in —
the response carries ``Clear-Site-Data: "cache", "storage"``: the browser drops its
HTTP cache, the service worker's caches, IndexedDB (queued questions) and the worker
itself, so nothing of the previous person is shown to the next on a shared browser.
"""

from __future__ import annotations

import functools
import hashlib
import hmac

from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.dispatch import receiver

VIEWER_COOKIE = settings.VIEWER_COOKIE
CLEAR_SITE_DATA = '"cache", "storage"'


def viewer_id(user) -> str:
    return _viewer_id(settings.SECRET_KEY, user.pk)


@functools.lru_cache(maxsize=4096)  # a signed-in browser's every request asks again
def _viewer_id(secret_key: str, user_id) -> str:
    return hmac.new(
        secret_key.encode(), f"rra-viewer:{user_id}".encode(), hashlib.sha256
    ).hexdigest()[:24]


@receiver(user_logged_out, dispatch_uid="accounts-session-ended")
def _session_ended(sender, request=None, **kwargs) -> None:
    if request is not None:
        request.rra_session_ended = True


@receiver(user_logged_in, dispatch_uid="accounts-session-started")
def _session_started(sender, request=None, **kwargs) -> None:
    if request is not None:
        request.rra_signed_in = True


class SessionEndMiddleware:
    """After AuthenticationMiddleware: sets the viewer cookie and sends Clear-Site-Data
    when the person behind the browser changes or goes."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        known_as = request.COOKIES.get(VIEWER_COOKIE) or None
        ended = getattr(request, "rra_session_ended", False)
        quiet = not ended and not getattr(request, "rra_signed_in", False)
        if quiet and known_as is None and settings.SESSION_COOKIE_NAME not in request.COOKIES:
            return response  # a stranger without a session: nothing to look at
        user = getattr(request, "user", None)
        now_as = viewer_id(user) if user is not None and user.is_authenticated else None
        if ended or (known_as is not None and known_as != now_as):
            response["Clear-Site-Data"] = CLEAR_SITE_DATA
        if now_as is None:
            if known_as is not None:
                response.delete_cookie(VIEWER_COOKIE, samesite="Lax")
        elif now_as != known_as:
            response.set_cookie(
                VIEWER_COOKIE,
                now_as,
                max_age=settings.SESSION_COOKIE_AGE,
                secure=settings.SESSION_COOKIE_SECURE,
                httponly=False,  # the service worker reads it
                samesite="Lax",
            )
        return response
