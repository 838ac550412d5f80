"""HTTP caching (rra/conditional.py): ETag and Last-Modified on the cacheable GETs,
304 on revalidation, a fresh 200 after a change, Cache-Control private, Vary."""

from __future__ import annotations

import time

import pytest
from django.urls import reverse
from django.utils.http import http_date

from chats.models import Chat, Message
from documents.models import Document
from documents.services import document_ingest
from documents.tests.conftest import make_document
from rra import metrics

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("redis_url")]

MANUAL = b"""# RoboRail calibration

## Chuck rotation

Put a spirit level on top of the front chuck and turn it until the chuck is level.
Then select Done on the remote control to save the home position.
"""


@pytest.fixture
def data(owner, media):
    chat = Chat.objects.create(owner=owner, title="Calibration")
    Message.objects.create(chat=chat, role=Message.Role.USER, content="How do I level it?")
    document = make_document(owner, name="roborail.md", content=MANUAL)
    assert document_ingest(document_id=document.pk) == "ready"
    return {"chat": chat, "document": Document.objects.get(pk=document.pk)}


def _rename_chat(data):
    Chat.objects.filter(pk=data["chat"].pk).update(title="Renamed")


def _rename_document(data):
    document = data["document"]
    document.name = "renamed.md"
    document.save()


def _add_message(data):
    Message.objects.create(chat=data["chat"], role=Message.Role.USER, content="And then?")


# (url, a change that must give a new representation)
ENDPOINTS = {
    "api:chats": (lambda d: "/api/chats", _rename_chat),
    "api:chat-detail": (lambda d: f"/api/chats/{d['chat'].pk}", _add_message),
    "api:documents": (lambda d: "/api/documents", _rename_document),
    "api:document-detail": (lambda d: f"/api/documents/{d['document'].pk}", _rename_document),
    "api:search": (lambda d: "/api/search?q=chuck%20level", _rename_document),
    "api:document-page": (lambda d: f"/api/documents/{d['document'].pk}/pages/1", _rename_document),
    "home": (lambda d: "/", _rename_chat),
    "chat": (lambda d: f"/c/{d['chat'].pk}/", _add_message),
    "documents:library": (lambda d: "/documents/", _rename_document),
}


@pytest.mark.parametrize("view", list(ENDPOINTS))
def test_it_answers_304_until_the_data_changes(client, owner, data, view):
    url_of, change = ENDPOINTS[view]
    url = url_of(data)
    client.force_login(owner)

    first = client.get(url)
    assert first.status_code == 200
    etag = first["ETag"]
    assert etag.strip('W/"')
    cache_control = {part.strip() for part in first["Cache-Control"].split(",")}
    assert {"private", "no-cache", "max-age=0"} <= cache_control
    vary = {part.strip().lower() for part in first["Vary"].split(",")}
    assert {"cookie", "authorization"} <= vary
    # The same representation again: the same ETag (CSRF tokens and nonces left out).
    assert client.get(url)["ETag"] == etag

    before = metrics.CONDITIONAL_GETS.labels(view, "not_modified")._value.get()
    again = client.get(url, HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304
    assert again.content == b""
    assert again["ETag"] == etag
    assert "Content-Security-Policy" not in again  # the cached page keeps its own policy
    assert metrics.CONDITIONAL_GETS.labels(view, "not_modified")._value.get() == before + 1

    change(data)
    fresh = client.get(url, HTTP_IF_NONE_MATCH=etag)
    assert fresh.status_code == 200
    assert fresh["ETag"] != etag


def test_it_keys_the_etag_to_the_user_and_session(client, owner, member, data):
    Chat.objects.create(owner=member, title="Calibration")
    client.force_login(owner)
    etag = client.get("/api/chats")["ETag"]
    client.force_login(member)
    # The member's list has the same titles but is not the owner's representation.
    assert client.get("/api/chats", HTTP_IF_NONE_MATCH=etag).status_code == 200


def test_it_sends_last_modified_and_honours_if_modified_since(client, owner, data):
    client.force_login(owner)
    first = client.get("/api/chats")
    last_modified = first["Last-Modified"]
    assert client.get("/api/chats", HTTP_IF_MODIFIED_SINCE=last_modified).status_code == 304
    time.sleep(1.1)  # HTTP dates have a one-second resolution
    Chat.objects.create(owner=owner, title="Newer")
    changed = client.get("/api/chats", HTTP_IF_MODIFIED_SINCE=last_modified)
    assert changed.status_code == 200
    assert changed["Last-Modified"] != last_modified

    document = data["document"]
    detail = client.get(f"/api/documents/{document.pk}")
    assert detail["Last-Modified"] == http_date(document.updated_at.timestamp())


def test_it_takes_max_ages_from_settings(client, owner, data, settings):
    settings.HTTP_CACHE_MAX_AGE = {**settings.HTTP_CACHE_MAX_AGE, "api:chats": 30}
    client.force_login(owner)
    cache_control = {p.strip() for p in client.get("/api/chats")["Cache-Control"].split(",")}
    assert cache_control == {"private", "max-age=30"}


def test_it_leaves_writes_errors_and_streams_alone(client, owner, data):
    client.force_login(owner)
    created = client.post("/api/chats", {"title": "New"}, content_type="application/json")
    assert created.status_code == 201
    assert "ETag" not in created
    missing = client.get("/api/chats/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404
    assert "ETag" not in missing
    # An unknown If-None-Match on a cacheable view is a normal 200.
    assert client.get("/api/chats", HTTP_IF_NONE_MATCH='"nope"').status_code == 200


def test_it_gives_api_token_clients_the_same_304(client, owner, data):
    from accounts.models import ApiToken

    _, raw = ApiToken.issue(user=owner, name="cli")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    etag = client.get(reverse("api:chats"), **auth)["ETag"]
    assert client.get(reverse("api:chats"), HTTP_IF_NONE_MATCH=etag, **auth).status_code == 304
