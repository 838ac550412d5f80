"""Error tracking with sentry-sdk (ERROR_TRACKING_ENDPOINT, alias SENTRY_DSN).

What leaves the process: the exception with its stack (local variables scrubbed), the
request's method, URL and harmless headers, breadcrumbs from log lines (INFO and up),
the release and the environment, and the user's id, nothing else about the user.
send_default_pii=False keeps the SDK from collecting personal data itself;
before_send and before_breadcrumb then remove what could still slip through: cookies,
Authorization and other credential headers, request bodies, client addresses, and any
e-mail address or session key anywhere in the event (replaced with "[email]" and
"[session]": Redis breadcrumbs name the session's cache key).
"""

from __future__ import annotations

import logging
import re
from typing import Any

EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
EMAIL_MASK = "[email]"
# Session keys inside cache keys (Redis breadcrumbs): "...sessions.cached_db<32 chars>".
SESSION_KEY = re.compile(r"(django\.contrib\.sessions\.cache(?:d_db)?)[a-z0-9]{32}")
SENSITIVE_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "x-csrftoken",
        "x-forwarded-for",
        "x-real-ip",
        "forwarded",
    }
)
_RECORD_KEYS = ("_record", "_from_structlog", "_logger", "_name")


def init(*, dsn: str, environment: str, release: str, traces_sample_rate: float = 0.0) -> None:
    import sentry_sdk
    from sentry_sdk.integrations.django import DjangoIntegration
    from sentry_sdk.integrations.logging import LoggingIntegration
    from sentry_sdk.scrubber import EventScrubber

    sentry_sdk.init(
        dsn=dsn,
        integrations=[
            DjangoIntegration(),
            LoggingIntegration(level=logging.INFO, event_level=logging.ERROR),
        ],
        environment=environment,
        release=release,
        traces_sample_rate=traces_sample_rate,
        send_default_pii=False,
        max_request_body_size="never",
        event_scrubber=EventScrubber(recursive=True),
        before_send=before_send,
        before_send_transaction=before_send,
        before_breadcrumb=before_breadcrumb,
    )


def set_user_id(user_id: Any) -> None:
    """The user of the current request, by id only (a no-op without a DSN)."""
    import sentry_sdk

    if sentry_sdk.get_client().is_active():
        sentry_sdk.set_user({"id": str(user_id)})


def scrub(value: Any) -> Any:
    """value with every e-mail address and session key in every string masked (dicts,
    lists, tuples)."""
    if isinstance(value, str):
        return SESSION_KEY.sub(r"\1[session]", EMAIL.sub(EMAIL_MASK, value))
    if isinstance(value, dict):
        return {scrub(k): scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(scrub(v) for v in value)
    return value


def _structured(record: logging.LogRecord | None) -> tuple[str, dict[str, Any]] | None:
    """The event name and fields of a structlog line (its record's msg is a dict)."""
    if record is None or not isinstance(record.msg, dict):
        return None
    fields = {
        key: value if isinstance(value, str | int | float | bool | type(None)) else repr(value)
        for key, value in record.msg.items()
        if key not in _RECORD_KEYS and key != "event"
    }
    return str(record.msg.get("event", "")), fields


def before_send(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    user_id = (event.get("user") or {}).get("id")
    if user_id is None:
        event.pop("user", None)
    else:
        event["user"] = {"id": user_id}
    request = event.get("request")
    if isinstance(request, dict):
        request.pop("cookies", None)
        request.pop("data", None)
        headers = request.get("headers")
        if isinstance(headers, dict):
            request["headers"] = {
                name: value
                for name, value in headers.items()
                if name.lower() not in SENSITIVE_HEADERS
            }
        env = request.get("env")
        if isinstance(env, dict):
            env.pop("REMOTE_ADDR", None)
    meta = event.get("_meta")
    if isinstance(meta, dict):
        # Notes on what the SDK filtered out of the request; they name the headers.
        meta.pop("request", None)
    structured = _structured(hint.get("log_record"))
    if structured is not None:
        name, fields = structured
        event["logentry"] = {"message": name, "params": []}
        event.setdefault("extra", {}).update(fields)
    return scrub(event)


def before_breadcrumb(crumb: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    structured = _structured((hint or {}).get("log_record"))
    if structured is not None:
        name, fields = structured
        crumb["message"] = name
        crumb["data"] = {**(crumb.get("data") or {}), **fields}
    data = crumb.get("data")
    if isinstance(data, dict):
        for key in list(data):
            if key.lower() in SENSITIVE_HEADERS:
                del data[key]
    return scrub(crumb)
