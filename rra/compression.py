"""Response compression: brotli, else gzip, for text bodies of COMPRESSION_MIN_BYTES and up.

What is compressed: complete (non-streaming) responses whose type is text-like
(COMPRESSIBLE_TYPES), whose body is at least settings.COMPRESSION_MIN_BYTES (1 KB), to a
client whose Accept-Encoding allows br or gzip (the higher q-value wins, br on a tie,
q=0 means no). The compressed body is kept only when it is smaller; Content-Length is
fixed and a strong ETag becomes weak (the bytes differ from the identity body's).
Every response of a compressible type gets Vary: Accept-Encoding, compressed or not, so
that a shared cache never hands a brotli body to a client that did not ask for one.

What is left alone:
- streaming responses, untouched (not even Vary): an SSE answer must reach the browser
  token by token, and a compressor holds bytes back until its block fills; whitenoise's
  static files stream too, and it serves their pre-compressed .br/.gz copies itself;
- responses that already have a Content-Encoding;
- images, PDFs, archives and any other type not listed (already compressed);
- HEAD requests, 204, 206 (a range of the identity body) and 304 (no body).

Why not a subclass of django.middleware.gzip.GZipMiddleware: it speaks only gzip, starts
at 200 bytes, takes any content type and wraps streaming responses, so nothing of its
process_response would survive; its gzip (compress_string with random padding),
patch_vary_headers and its weak-ETag rule are reused here.

BREACH: an attacker who can make a victim's browser send requests that reflect text he
chooses, and who can watch the encrypted response sizes, can guess a secret that sits in
the same compressed body byte by byte. What keeps that out of reach:
- no fixed secret in bodies: Django masks the CSRF token afresh in every response, the
  session id lives only in an HttpOnly cookie, an API token's secret is shown once, in
  the answer to a POST that needs the CSRF token;
- the session cookie is SameSite=Lax: requests another site's page makes (fetch, img,
  form POST) carry no session, so the attacker cannot get signed-in bodies that reflect
  his input;
- gzip bodies carry Django's random-length padding (GZipMiddleware.max_random_bytes).
  Brotli has no field for such padding and is sent without it: padding only adds noise
  that more requests average away, so the two points above are what RRA relies on.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import brotli
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from django.middleware.gzip import GZipMiddleware
from django.utils.cache import patch_vary_headers
from django.utils.text import compress_string

from rra import telemetry

COMPRESSIBLE_TYPES = frozenset(
    {
        "text/html",
        "text/plain",
        "text/css",
        "text/javascript",
        "application/javascript",
        "application/json",
        "application/manifest+json",
        "application/xml",
        "text/xml",
        "image/svg+xml",
    }
)
# Measured on chat.js, app.css and README.md: quality 5 takes about as long as gzip -6
# (0.2-0.3 ms for 12 KB) and is 6-8% smaller; quality 11 is 40x slower for 10% more.
BROTLI_QUALITY = 5
NO_BODY_STATUSES = frozenset({204, 206, 304})
_ALIASES = {"x-gzip": "gzip"}


@functools.lru_cache(maxsize=64)  # a few header values are most of the requests
def preferred_encoding(accept_encoding: str) -> str | None:
    """The coding to send: br or gzip, whichever Accept-Encoding weights highest (br on a
    tie); None when neither is acceptable. "*" stands for codings not named; q=0 is no."""
    weights: dict[str, float] = {}
    for item in accept_encoding.split(","):
        coding, *params = item.split(";")
        coding = _ALIASES.get(coding.strip().lower(), coding.strip().lower())
        if not coding:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    q = 0.0  # a q-value we cannot read is no permission
        weights[coding] = q
    best, best_q = None, 0.0
    for coding in ("br", "gzip"):
        q = weights.get(coding, weights.get("*", 0.0))
        if q > best_q:
            best, best_q = coding, q
    return best


def compress(body: bytes, encoding: str) -> bytes:
    if len(body) <= MEMO_MAX_BYTES:
        return _compress_memo(body, encoding)
    return _compress(body, encoding)


def _compress(body: bytes, encoding: str) -> bytes:
    if encoding == "br":
        return brotli.compress(body, quality=BROTLI_QUALITY, mode=brotli.MODE_TEXT)
    return compress_string(body, max_random_bytes=GZipMiddleware.max_random_bytes)


# The same body is often sent again (a cached chat list, a JSON page): each process
# remembers the compressed form of its last MEMO_SIZE small bodies (at most
# MEMO_SIZE x MEMO_MAX_BYTES x 2 = 16 MB). Keyed by the whole body, so a body that
# differs in one byte (reflected input, a CSRF token) is compressed afresh, with fresh
# gzip padding.
MEMO_SIZE = 512
MEMO_MAX_BYTES = 16 * 1024
_compress_memo = functools.lru_cache(maxsize=MEMO_SIZE)(_compress)


# A body kept in a cache (a query-cache entry) can keep its brotli form beside it, made
# once when the entry is computed: brotli_form() makes it, with_compressed() hands it to
# the middleware with the response. The per-process memo above cannot hold every user's
# list once there are more users than MEMO_SIZE; this can. Only brotli: gzip bodies get
# fresh padding. The middleware uses the form only for the very body it was made of.
_PRECOMPRESSED = "_rra_precompressed"


def brotli_form(body: bytes) -> bytes | None:
    """The brotli form of a body the middleware would compress (by size), or None when
    it would not (too small, or not made smaller)."""
    if len(body) < settings.COMPRESSION_MIN_BYTES:
        return None
    compressed = _compress(body, "br")
    return compressed if len(compressed) < len(body) else None


def with_compressed(response: HttpResponseBase, br: bytes | None) -> HttpResponseBase:
    """`response`, with `br` (brotli_form() of its body) for the middleware to send
    instead of compressing the body again; ignored if the body changes meanwhile."""
    if br is not None:
        setattr(response, _PRECOMPRESSED, (response.content, br))
    return response


def _compressed(response: HttpResponseBase, body: bytes, encoding: str) -> bytes:
    offered = getattr(response, _PRECOMPRESSED, None)
    if encoding == "br" and offered is not None and offered[0] == body:
        return offered[1]
    return compress(body, encoding)


def _media_type(response: HttpResponseBase) -> str:
    return response.get("Content-Type", "").partition(";")[0].strip().lower()


class CompressionMiddleware:
    """Compress what is worth it (see the module docstring); listed below the request
    metrics, so the time it takes is part of each request's duration."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if response.streaming or response.has_header("Content-Encoding"):
            return response
        if _media_type(response) not in COMPRESSIBLE_TYPES:
            return response
        patch_vary_headers(response, ("Accept-Encoding",))
        if request.method == "HEAD" or response.status_code in NO_BODY_STATUSES:
            return response
        body = response.content
        if len(body) < settings.COMPRESSION_MIN_BYTES:
            return response
        encoding = preferred_encoding(request.META.get("HTTP_ACCEPT_ENCODING", ""))
        if encoding is None:
            return response
        compressed = _compressed(response, body, encoding)
        if len(compressed) >= len(body):
            return response
        response.content = compressed
        response.headers["Content-Length"] = str(len(compressed))
        response.headers["Content-Encoding"] = encoding
        etag = response.get("ETag")
        if etag and etag.startswith('"'):
            response.headers["ETag"] = "W/" + etag  # RFC 9110 8.8.1, as GZipMiddleware does
        telemetry.response_compressed(encoding, original=len(body), compressed=len(compressed))
        return response
