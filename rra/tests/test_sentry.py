"""Error tracking: the real sentry-sdk sends a real envelope to a fake Sentry on loopback."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from rra import sentry
from rra.testing.fakes import FakeServer, RecordedRequest, Response

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "42"
EMAIL = "owner@example.com"
API_TOKEN = "sk-live-0123456789abcdef"

# A real process: settings read the DSN at start-up (as in production), and a signed-in
# user's request goes through Django's WSGI handler (as under gunicorn) to a view that
# fails; the SDK is flushed before the process exits.
SCRIPT = """
import io, os, sys
import django
from django.conf import settings

settings.DATABASES["default"]["NAME"] = os.environ["RRA_TEST_DB_NAME"]
settings.ROOT_URLCONF = "rra.tests.urls_failing"
django.setup()

import sentry_sdk
from django.core.wsgi import get_wsgi_application
from django.test import Client

from accounts.models import User

login = Client()
login.force_login(User.objects.get(email=os.environ["RRA_TEST_EMAIL"]))
session_id = login.cookies["sessionid"].value
environ = {
    "REQUEST_METHOD": "GET",
    "PATH_INFO": "/test/fail",
    "QUERY_STRING": "next=/chats&contact=" + os.environ["RRA_TEST_EMAIL"],
    "SERVER_NAME": "testserver",
    "SERVER_PORT": "80",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "REMOTE_ADDR": "203.0.113.77",
    "HTTP_HOST": "testserver",
    "HTTP_COOKIE": "sessionid=" + session_id + "; csrftoken=abcdefabcdefabcdefabcdefabcdefab",
    "HTTP_AUTHORIZATION": "Bearer " + os.environ["RRA_TEST_API_TOKEN"],
    "HTTP_X_FORWARDED_FOR": "198.51.100.23",
    "HTTP_X_REQUEST_ID": "sentry-test-1",
    "HTTP_ACCEPT": "text/html",
    "wsgi.input": io.BytesIO(b""),
    "wsgi.errors": sys.stderr,
    "wsgi.url_scheme": "http",
    "wsgi.version": (1, 0),
    "wsgi.multithread": True,
    "wsgi.multiprocess": True,
    "wsgi.run_once": False,
}
status = []
body = get_wsgi_application()(environ, lambda s, headers, exc_info=None: status.append(s))
b"".join(body)
body.close()
sentry_sdk.flush(timeout=10)
print(status[0].split()[0], session_id)
"""


class FakeSentry(FakeServer):
    """Sentry's ingestion endpoint: POST /api/<project>/envelope/."""

    def __init__(self, project: str) -> None:
        super().__init__()
        self.route("POST", f"/api/{project}/envelope/", lambda request: Response.json({}))

    def dsn(self, project: str) -> str:
        return f"http://publickey@127.0.0.1:{self.port}/{project}"


def envelope_items(request: RecordedRequest) -> tuple[str, list[tuple[dict, dict]]]:
    """The decompressed envelope text and its (item header, payload) pairs."""
    body = request.body
    encoding = request.headers.get("content-encoding", "")
    if encoding == "gzip":
        body = gzip.decompress(body)
    elif encoding == "br":
        import brotli

        body = brotli.decompress(body)
    text = body.decode()
    lines = text.split("\n")
    items = []
    index = 1  # line 0 is the envelope header
    while index < len(lines) and lines[index]:
        header = json.loads(lines[index])
        payload = lines[index + 1]
        items.append((header, json.loads(payload) if payload.startswith("{") else {}))
        index += 2
    return text, items


@pytest.mark.django_db(transaction=True)
def test_an_error_in_a_view_reaches_sentry_with_user_id_and_no_personal_data(
    django_user_model,
):
    user = django_user_model.objects.create_user(email=EMAIL, password="x" * 12)
    with FakeSentry(PROJECT) as server:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "rra.settings",
            "ERROR_TRACKING_ENDPOINT": server.dsn(PROJECT),
            "RELEASE": "rra@test-release",
            "SENTRY_ENVIRONMENT": "testing",
            "LOG_LEVEL": "INFO",  # INFO lines become breadcrumbs
            "RRA_TEST_DB_NAME": connection.settings_dict["NAME"],
            "RRA_TEST_EMAIL": EMAIL,
            "RRA_TEST_API_TOKEN": API_TOKEN,
        }
        result = subprocess.run(
            [sys.executable, "-c", SCRIPT],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 0, result.stderr
    status, session_id = result.stdout.split()
    assert status == "500"

    envelopes = [envelope_items(r) for r in server.requests]
    events = [
        (text, payload)
        for text, items in envelopes
        for header, payload in items
        if header.get("type") == "event"
    ]
    assert len(events) == 1, [items for _, items in envelopes]
    _, event = events[0]
    [exception] = event["exception"]["values"]
    assert exception["type"] == "RuntimeError"
    assert event["user"] == {"id": str(user.pk)}
    assert event["environment"] == "testing"
    assert event["release"] == "rra@test-release"
    request = event["request"]
    assert request["url"] == "http://testserver/test/fail" and request["method"] == "GET"
    assert request["headers"]["Accept"] == "text/html"
    assert request["query_string"] == "next=/chats&contact=[email]"
    crumbs = [c.get("message") for c in event["breadcrumbs"]["values"]]
    assert "about to fail for [email]" in crumbs

    everything = "\n".join(t for t, _ in envelopes).lower()
    secrets = (EMAIL, API_TOKEN.lower(), session_id.lower(), "198.51.100.23", "203.0.113.77")
    for secret in secrets:
        assert secret not in everything
    for name in ("authorization", "cookie", "x-forwarded-for"):
        assert f'"{name}"' not in everything
    assert "[email]" in exception["value"]


def test_scrubbing_masks_emails_everywhere_and_keeps_only_the_user_id():
    event = {
        "user": {"id": "7", "email": EMAIL, "ip_address": "203.0.113.1", "username": EMAIL},
        "request": {
            "headers": {"Authorization": "Bearer x", "Cookie": "a=b", "Accept": "text/html"},
            "cookies": {"sessionid": "abc"},
            "data": {"username": EMAIL},
            "env": {"REMOTE_ADDR": "203.0.113.1", "SERVER_NAME": "rra"},
            "query_string": f"email={EMAIL}",
        },
        "extra": {"nested": [{"note": f"mail {EMAIL} now"}]},
    }
    cleaned = sentry.before_send(event, {})
    assert cleaned["user"] == {"id": "7"}
    assert cleaned["request"]["headers"] == {"Accept": "text/html"}
    assert "cookies" not in cleaned["request"] and "data" not in cleaned["request"]
    assert cleaned["request"]["env"] == {"SERVER_NAME": "rra"}
    assert cleaned["request"]["query_string"] == "email=[email]"
    assert cleaned["extra"]["nested"][0]["note"] == "mail [email] now"
    assert EMAIL not in json.dumps(cleaned)


def test_structured_log_lines_become_readable_breadcrumbs():
    import logging

    record = logging.LogRecord("rra.perf", logging.INFO, __file__, 1, "", (), None)
    record.msg = {"event": "search", "mode": "text", "user_id": 3, "note": f"by {EMAIL}"}
    crumb = sentry.before_breadcrumb(
        {"message": str(record.msg), "category": "rra.perf", "data": {}}, {"log_record": record}
    )
    assert crumb["message"] == "search"
    assert crumb["data"] == {"mode": "text", "user_id": 3, "note": "by [email]"}
