"""The service worker, the offline page and the virtual-list demo (django-pwa serves the
manifest).

The worker's source is static/js/sw.js. It cannot know the hashed names of the static
files, so /sw.js prepends its configuration: ``self.RRA_SW = {...};`` with the hashed
URLs of the app shell (settings.PWA_PRECACHE_STATIC and the offline page) and a version,
a hash of that list and of the worker's source. A deploy that changes any shell file or
the worker changes the bytes of /sw.js, which is what makes browsers install the new
worker (and drop the old shell cache).
"""

from __future__ import annotations

import hashlib
import json

from django.conf import settings
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import staticfiles_storage
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.urls import reverse
from django.utils.cache import get_conditional_response
from django.views.decorators.http import require_safe

SW_SOURCE = "js/sw.js"


def _worker_source() -> str:
    """static/js/sw.js as written (the finders), else as collected (STATIC_ROOT)."""
    path = finders.find(SW_SOURCE)
    if path:
        with open(path, encoding="utf-8") as f:
            return f.read()
    with staticfiles_storage.open(SW_SOURCE) as f:
        return f.read().decode()


def worker_config(source: str) -> dict:
    """What the worker needs from the server: shell URLs, version and special paths."""
    offline = reverse("offline")
    precache = [static(name) for name in settings.PWA_PRECACHE_STATIC] + [offline]
    version = hashlib.sha256(json.dumps(precache).encode() + b"\0" + source.encode()).hexdigest()[
        :16
    ]
    return {
        "version": version,
        "precache": precache,
        "offline": offline,
        "staticUrl": settings.STATIC_URL,
        # Never answered by the worker: probes, metrics, the admin, the worker itself.
        "bypass": [reverse("api:health"), "/metrics", reverse("admin:index"), "/sw.js"],
        # A POST here signs someone in or out: cached pages and API answers are dropped.
        "authPaths": [
            reverse("accounts:login"),
            reverse("accounts:logout"),
            reverse("admin:login"),
            reverse("admin:logout"),
        ],
        # Pages and API answers are cached per person: the opaque id in this cookie
        # (accounts/middleware.py); without it (signed out) or unreadable, per "anonymous".
        "viewerCookie": settings.VIEWER_COOKIE,
        # Background Sync sends queued questions with this cookie's CSRF token.
        "csrfCookie": settings.CSRF_COOKIE_NAME,
        # Development: static names are not hashed and pages change all the time, so
        # nothing is served from the cache while the network answers.
        "debug": settings.DEBUG,
    }


@require_safe
def service_worker(request: HttpRequest) -> HttpResponse:
    source = _worker_source()
    config = worker_config(source)
    body = f"self.RRA_SW = {json.dumps(config, sort_keys=True)};\n{source}"
    etag = f'"{hashlib.sha256(body.encode()).hexdigest()[:32]}"'
    not_modified = get_conditional_response(request, etag=etag)
    response = not_modified or HttpResponse(body, content_type="text/javascript; charset=utf-8")
    response["ETag"] = etag
    # The browser checks for a new worker on navigations; no-cache makes it ask us.
    response["Cache-Control"] = "no-cache"
    response["Service-Worker-Allowed"] = "/"
    return response


@require_safe
def offline(request: HttpRequest) -> HttpResponse:
    return render(request, "offline.html")


def vlist_demo(request: HttpRequest) -> HttpResponse:
    """10,000 rows of varying height in a virtual list (mounted only when DEBUG)."""
    return render(request, "dev/vlist.html", {"count": 10_000})
