"""Response compression (rra/compression.py): what is compressed, how, and what is not."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import brotli
import pytest
from django.conf import settings
from django.contrib.staticfiles.storage import staticfiles_storage
from django.http import HttpResponse, StreamingHttpResponse
from django.templatetags.static import static
from django.test import RequestFactory

from accounts.models import ApiToken
from chats.models import Chat
from rra import compression, metrics
from rra.compression import (
    CompressionMiddleware,
    brotli_form,
    preferred_encoding,
    with_compressed,
)

pytestmark = pytest.mark.django_db

TEXT = ("The spirit level goes on top of the front chuck. " * 60).encode()  # ~3 KB


def value(name: str, **labels: str) -> float:
    return metrics.samples(name).get(tuple(sorted(labels.items())), 0.0)


def through_middleware(
    response: HttpResponse, accept: str = "br, gzip", method: str = "GET"
) -> HttpResponse:
    request = RequestFactory().generic(method, "/", HTTP_ACCEPT_ENCODING=accept)
    return CompressionMiddleware(lambda _: response)(request)


def decoded(response) -> bytes:
    body = response.content
    encoding = response.get("Content-Encoding")
    if encoding == "br":
        return brotli.decompress(body)
    if encoding == "gzip":
        return gzip.decompress(body)
    assert encoding is None
    return body


def vary(response) -> set[str]:
    return {v.strip().lower() for v in response.get("Vary", "").split(",") if v.strip()}


# --- choosing the encoding ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("gzip, deflate, br, zstd", "br"),
        ("br;q=1.0, gzip;q=0.8", "br"),
        ("gzip", "gzip"),
        ("x-gzip", "gzip"),
        ("gzip;q=1, br;q=0.5", "gzip"),
        ("br;q=0, gzip", "gzip"),
        ("br;q=0, gzip;q=0", None),
        ("*", "br"),
        ("gzip;q=0.9, *;q=0.1", "gzip"),
        ("*;q=0", None),
        ("identity", None),
        ("deflate", None),
        ("", None),
        ("br;q=oops, gzip", "gzip"),
    ],
)
def test_it_honours_the_q_values_of_accept_encoding(accept, expected):
    assert preferred_encoding(accept) == expected


# --- what is compressed, and how ---------------------------------------------------------------


def test_it_prefers_brotli_over_gzip_and_the_body_decodes_to_the_original(client):
    plain = client.get("/sw.js")  # deterministic text/javascript, a few KB
    assert "Content-Encoding" not in plain
    response = client.get("/sw.js", HTTP_ACCEPT_ENCODING="gzip, deflate, br")
    assert response["Content-Encoding"] == "br"
    assert int(response["Content-Length"]) == len(response.content) < len(plain.content)
    assert brotli.decompress(response.content) == plain.content
    assert "accept-encoding" in vary(response) and "accept-encoding" in vary(plain)


def test_it_falls_back_to_gzip(client):
    plain = client.get("/sw.js").content
    response = client.get("/sw.js", HTTP_ACCEPT_ENCODING="gzip")
    assert response["Content-Encoding"] == "gzip"
    assert int(response["Content-Length"]) == len(response.content)
    assert gzip.decompress(response.content) == plain


@pytest.mark.parametrize("accept", [None, "identity", "br;q=0, gzip;q=0", "*;q=0", "deflate"])
def test_it_sends_identity_when_neither_is_accepted(client, accept):
    headers = {} if accept is None else {"HTTP_ACCEPT_ENCODING": accept}
    response = client.get("/sw.js", **headers)
    assert "Content-Encoding" not in response
    assert "accept-encoding" in vary(response)  # a cache must still tell them apart
    assert b'addEventListener("fetch"' in response.content


def test_it_compresses_an_html_page_and_keeps_its_other_vary(owner_client):
    response = owner_client.get("/", HTTP_ACCEPT_ENCODING="br")
    assert response["Content-Encoding"] == "br"
    assert b"Ask your manuals" in brotli.decompress(response.content)
    assert {"accept-encoding", "cookie"} <= vary(response)


def test_it_compresses_a_json_api_response(owner_client, owner):
    for n in range(30):
        Chat.objects.create(owner=owner, title=f"Calibration of the front chuck, part {n}")
    plain = owner_client.get("/api/chats")
    assert len(plain.content) >= settings.COMPRESSION_MIN_BYTES
    response = owner_client.get("/api/chats", HTTP_ACCEPT_ENCODING="gzip, br")
    assert response["Content-Type"] == "application/json"
    assert response["Content-Encoding"] == "br"
    assert json.loads(brotli.decompress(response.content)) == plain.json()


@pytest.mark.usefixtures("redis_url")
@pytest.mark.parametrize("signed_in", ["token", "session"])
def test_a_cached_chat_list_is_sent_in_the_brotli_form_made_when_it_was_cached(
    client, owner, monkeypatch, signed_in
):
    """With more users than the per-process memo holds, each list would be compressed on
    every read: its query-cache entry keeps the brotli form, made once with the entry."""
    for n in range(30):
        Chat.objects.create(owner=owner, title=f"Calibration of the front chuck, part {n}")
    if signed_in == "token":
        _, raw = ApiToken.issue(user=owner, name="tests")
        client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {raw}"
    else:
        client.force_login(owner)
    calls = []

    def spy(body, encoding):
        calls.append(encoding)
        return compression._compress(body, encoding)

    monkeypatch.setattr(compression, "compress", spy)
    plain = client.get("/api/chats", HTTP_ACCEPT_ENCODING="identity")
    assert "Content-Encoding" not in plain and len(plain.content) >= 1024
    for _ in range(2):  # the entry is cached now: a hit through _hit (token) or DRF
        response = client.get("/api/chats", HTTP_ACCEPT_ENCODING="gzip, deflate, br")
        assert response["Content-Encoding"] == "br"
        assert brotli.decompress(response.content) == plain.content
        assert response["Content-Length"] == str(len(response.content))
        assert response["ETag"] == "W/" + plain["ETag"]
        assert "accept-encoding" in vary(response)
    assert calls == []  # never compressed in the request
    # gzip is compressed per response (fresh padding), from the same cached body.
    response = client.get("/api/chats", HTTP_ACCEPT_ENCODING="gzip")
    assert gzip.decompress(response.content) == plain.content and calls == ["gzip"]
    # A change makes a new entry, with its own brotli form.
    Chat.objects.create(owner=owner, title="Alignment of the rail")
    changed = client.get("/api/chats", HTTP_ACCEPT_ENCODING="br")
    assert json.loads(brotli.decompress(changed.content))["results"][0]["title"] == (
        "Alignment of the rail"
    )
    assert calls == ["gzip"]


def test_a_brotli_form_is_used_only_for_the_body_it_was_made_of():
    response = with_compressed(HttpResponse(TEXT, content_type="text/plain"), brotli_form(TEXT))
    response.content = TEXT.upper()  # changed after the form was made
    assert decoded(through_middleware(response)) == TEXT.upper()
    kept = with_compressed(HttpResponse(TEXT, content_type="text/plain"), brotli_form(TEXT))
    assert decoded(through_middleware(kept)) == TEXT
    assert brotli_form(TEXT[:100]) is None  # below COMPRESSION_MIN_BYTES: never compressed


def test_it_leaves_bodies_below_the_threshold_alone(settings):
    settings.COMPRESSION_MIN_BYTES = 1024
    small = through_middleware(HttpResponse(TEXT[:1023], content_type="text/plain"))
    assert "Content-Encoding" not in small and small.content == TEXT[:1023]
    assert "accept-encoding" in vary(small)
    at = through_middleware(HttpResponse(TEXT[:1024], content_type="text/plain"))
    assert at["Content-Encoding"] == "br"
    settings.COMPRESSION_MIN_BYTES = 4096
    raised = through_middleware(HttpResponse(TEXT, content_type="text/plain"))
    assert "Content-Encoding" not in raised


def test_it_keeps_the_original_when_compression_does_not_make_it_smaller():
    noise = os.urandom(4096)
    response = through_middleware(HttpResponse(noise, content_type="text/plain"))
    assert "Content-Encoding" not in response and response.content == noise


def test_it_weakens_a_strong_etag_and_still_answers_304(client):
    response = client.get("/sw.js", HTTP_ACCEPT_ENCODING="br")
    assert response["ETag"].startswith('W/"')
    again = client.get("/sw.js", HTTP_ACCEPT_ENCODING="br", HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304
    assert "Content-Encoding" not in again and again.content == b""


@pytest.mark.parametrize(
    "content_type", ["text/html; charset=utf-8", "text/css", "image/svg+xml", "application/xml"]
)
def test_it_compresses_each_text_type(content_type):
    response = through_middleware(HttpResponse(TEXT, content_type=content_type))
    assert response["Content-Encoding"] == "br"
    assert decoded(response) == TEXT


# --- what is left alone ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type", ["image/png", "image/jpeg", "application/pdf", "application/zip", "font/woff2"]
)
def test_it_never_compresses_binary_types(content_type):
    response = through_middleware(HttpResponse(TEXT, content_type=content_type))
    assert "Content-Encoding" not in response and response.content == TEXT
    assert "Vary" not in response


@pytest.mark.parametrize("status", [206, 304])
def test_it_never_compresses_partial_or_not_modified_responses(status):
    response = through_middleware(HttpResponse(TEXT, content_type="text/plain", status=status))
    assert "Content-Encoding" not in response and response.content == TEXT


def test_it_never_compresses_a_head_response():
    response = through_middleware(HttpResponse(TEXT, content_type="text/plain"), method="HEAD")
    assert "Content-Encoding" not in response
    assert "accept-encoding" in vary(response)


def test_it_never_compresses_twice():
    already = HttpResponse(gzip.compress(TEXT), content_type="text/plain")
    already["Content-Encoding"] = "gzip"
    response = through_middleware(already, accept="br")
    assert response["Content-Encoding"] == "gzip"
    assert gzip.decompress(response.content) == TEXT


def test_it_does_not_touch_streaming_responses():
    stream = StreamingHttpResponse(iter([TEXT, TEXT]), content_type="text/plain")
    response = through_middleware(stream)
    assert response is stream and "Content-Encoding" not in response and "Vary" not in response
    assert b"".join(response.streaming_content) == TEXT + TEXT


def test_the_sse_answer_stream_is_not_compressed_and_still_streams(owner_client, owner):
    chat = Chat.objects.create(owner=owner)
    response = owner_client.post(
        f"/api/chats/{chat.pk}/messages",
        {"question": "How do I level the front chuck?"},
        content_type="application/json",
        HTTP_ACCEPT_ENCODING="gzip, br",
    )
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"].startswith("text/event-stream")
    assert "Content-Encoding" not in response
    chunks = iter(response.streaming_content)
    first = next(chunks)  # the first event comes on its own, readable as it is
    assert first.startswith(b"event: citations\n")
    rest = b"".join(chunks)
    assert rest.rstrip().endswith(b"}") and b"event: done\n" in rest


def test_whitenoise_serves_its_own_brotli_file_without_compressing_it_again(client):
    url = static("js/chat.js")
    path = Path(staticfiles_storage.path(url.removeprefix(settings.STATIC_URL)))
    response = client.get(url, HTTP_ACCEPT_ENCODING="gzip, br")
    body = b"".join(response.streaming_content)
    response.close()
    assert response["Content-Encoding"] == "br"
    assert body == path.with_name(path.name + ".br").read_bytes()  # the file, as collected
    assert brotli.decompress(body) == path.read_bytes()
    assert "accept-encoding" in vary(response)


# --- metrics ----------------------------------------------------------------------------------------


def test_it_records_the_ratio_and_the_bytes_saved(client):
    ratios = value("rra_http_compression_ratio_count", encoding="br")
    saved = value("rra_http_compression_saved_bytes_total", encoding="br")
    gzip_ratios = value("rra_http_compression_ratio_count", encoding="gzip")
    plain = client.get("/sw.js").content
    response = client.get("/sw.js", HTTP_ACCEPT_ENCODING="br")
    assert value("rra_http_compression_ratio_count", encoding="br") == ratios + 1
    assert value("rra_http_compression_saved_bytes_total", encoding="br") == saved + (
        len(plain) - len(response.content)
    )
    client.get("/sw.js", HTTP_ACCEPT_ENCODING="gzip")
    assert value("rra_http_compression_ratio_count", encoding="gzip") == gzip_ratios + 1


def test_it_records_nothing_for_what_it_did_not_compress(client):
    before = value("rra_http_compression_ratio_count", encoding="br")
    client.get("/sw.js")  # not accepted
    client.get("/api/health/live", HTTP_ACCEPT_ENCODING="br")  # small
    assert value("rra_http_compression_ratio_count", encoding="br") == before
