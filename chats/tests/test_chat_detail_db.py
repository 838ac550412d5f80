"""While Redis is partitioned away (its process stopped, the circuit breaker open), a
chat's API (GET /api/chats/<id>) comes from one SQL statement with the API token or the
session and its user, or alone for a reader without either (chats/chat_detail.py): the
same bytes and headers DRF's path gives for every reader (the owner, another user, a
reader who is not signed in), its citations hidden as DRF's path hides them, and what
DRF's path refuses (a chat one may not read, none, a dead token) refused the same way.
(With Redis up it is the access check and one MGET; from five statements and DRF's
serializers it cost 2.5-2.8x that, bench/README.md "redis_down.py".)"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import ApiToken
from chats.models import Chat, Citation, Message, Vote
from documents.models import Document
from rra.testing.redis_partition import partition, refusals_of_dead_tokens

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("redis_url")]

ACCEPT = {"HTTP_ACCEPT_ENCODING": "gzip, deflate, br"}
QUERIES = ("", "?page_size=3", "?page_size=500", "?page_size=0", "?page_size=3&other=1")


def _document(owner, name: str, **fields) -> Document:
    return Document.objects.create(
        owner=owner,
        name=name,
        file=f"documents/{uuid.uuid4().hex}.md",
        mime_type=fields.pop("mime_type", "text/markdown"),
        size=1,
        sha256=uuid.uuid4().hex * 2,
        status=Document.Status.READY,
        **fields,
    )


def _answer(chat, n: int, at, documents: dict[str, Document | None]) -> Message:
    answer = Message.objects.create(
        chat=chat,
        role=Message.Role.ASSISTANT,
        content=f"**Level** the chuck {n} [1], then [2] and [3] [4] [5].\n\n| a | b |\n|---|---|\n| <x> | é |",
        status=Message.Status.PARTIAL if n == 3 else Message.Status.COMPLETE,
        error="stopped" if n == 3 else "",
        prompt_tokens=100 + n,
        completion_tokens=n,
        model="grok",
        created_at=at,
    )
    cited = [  # (document, paged, section, source_removed, score)
        (documents["own"], True, "Manual › Setup", False, 0.8123456789012345),
        (documents["shared"], False, "Manual › Network › Proxy server", False, 1.0),
        (documents["private"], False, "", False, 0.1),
        (None, True, "Gone", True, 0.5),  # its document deleted
        (documents["own"], True, "Manual › Old", True, 0.25),  # passage gone, document kept
    ]
    for number, (document, paged, section, removed, score) in enumerate(cited, 1):
        Citation.objects.create(
            message=answer,
            document=document,
            document_name=document.name if document else "deleted.md",
            first_page=number,
            last_page=number + (number % 2),
            section=section,
            paged=paged,
            quote=f'Quote {number} "with" <tags> and é',
            source_removed=removed,
            number=number,
            rank=number,
            score=score,
        )
    return answer


@pytest.fixture
def chats(owner, member):
    """A private and a public chat of the owner (20 messages each, pairs sharing a
    creation time, citations of every kind, votes) and an empty one."""
    documents = {
        "own": _document(owner, "own.pdf", mime_type="application/pdf"),
        "shared": _document(member, "shared.md", visibility=Document.Visibility.SHARED),
        "private": _document(member, "member's.md"),
    }
    now = timezone.now()
    made = {}
    for visibility in (Chat.Visibility.PRIVATE, Chat.Visibility.PUBLIC):
        chat = Chat.objects.create(
            owner=owner, title=f'A {visibility} "chat" é ☃', visibility=visibility
        )
        for n in range(10):
            at = now - timedelta(minutes=10 - n // 2)  # two questions and answers a time
            Message.objects.create(
                chat=chat, role=Message.Role.USER, content=f"How {n} <b>?", created_at=at
            )
            answer = _answer(chat, n, at, documents)
            if n % 2 == 0:
                Vote.objects.create(message=answer, user=owner, value=Vote.Value.UP)
                Vote.objects.create(message=answer, user=member, value=Vote.Value.DOWN)
        made[visibility] = chat
    made["empty"] = Chat.objects.create(owner=owner, title="Empty")
    return made


def _same(response, expected) -> None:
    assert response.status_code == expected.status_code, response.content
    assert response.content == expected.content
    for header in ("Content-Type", "Content-Encoding", "ETag", "Vary", "Allow"):
        assert response.get(header) == expected.get(header), header
    # No write time known without Redis's generations (none on DRF's path either).
    assert "Last-Modified" not in response or "Last-Modified" in expected


def test_with_the_breaker_open_a_chat_is_one_statement_and_the_bytes_drf_gives(
    client, owner, member, chats, private_redis
):
    server, breaker = private_redis
    _, owner_secret = ApiToken.issue(user=owner, name="partition")
    _, member_secret = ApiToken.issue(user=member, name="partition")
    sessions = {}
    for user in (owner, member):
        sessions[user.pk] = Client()
        sessions[user.pk].force_login(user)
    readers = {  # (client, headers)
        "owner's token": (client, {"HTTP_AUTHORIZATION": f"Bearer {owner_secret}"}),
        "member's token": (client, {"HTTP_AUTHORIZATION": f"Bearer {member_secret}"}),
        "owner's session": (sessions[owner.pk], {}),
        "member's session": (sessions[member.pk], {}),
        "nobody": (Client(), {}),
    }
    paths = [f"/api/chats/{chat.pk}{query}" for chat in chats.values() for query in QUERIES]
    paths.append(f"/api/chats/{uuid.uuid4()}")
    # With Redis up, every answer as DRF gives it.
    expected = {
        (reader, path): browser.get(path, **headers, **ACCEPT)
        for reader, (browser, headers) in readers.items()
        for path in paths
    }
    public = f"/api/chats/{chats[Chat.Visibility.PUBLIC].pk}"
    seen = {
        reader: browser.get(public, **headers).json()
        for reader, (browser, headers) in readers.items()
    }
    assert not seen["owner's token"]["next"]  # 20 messages, 50 a page
    assert seen["owner's token"]["is_owner"] and not seen["member's token"]["is_owner"]
    # The citations as each reader may see them (own, shared, member's, deleted, gone).
    assert [
        [(c["private"], c["source_removed"]) for c in seen[reader]["messages"][1]["citations"]]
        for reader in ("owner's token", "member's token", "nobody")
    ] == [
        [(False, False), (False, False), (True, False), (False, True), (False, True)],
        [(True, False), (False, False), (False, False), (False, True), (True, False)],
        [(True, False), (True, False), (True, False), (False, True), (True, False)],
    ]
    assert [m["votes"] for m in seen["member's token"]["messages"][:2]] == [
        {"up": 0, "down": 0, "mine": None},
        {"up": 1, "down": 1, "mine": -1},
    ]
    assert expected["member's token", f"/api/chats/{chats['empty'].pk}"].status_code == 404
    assert expected["nobody", f"/api/chats/{chats[Chat.Visibility.PRIVATE].pk}"].status_code == 404
    partition(server, breaker, client, **readers["owner's token"][1])

    for reader, (browser, headers) in readers.items():
        for path in paths:
            with CaptureQueriesContext(connection) as queries:
                response = browser.get(path, **headers, **ACCEPT)
            _same(response, expected[reader, path])
            if response.status_code == 200:  # the reader, the chat, its page: one statement
                assert len(queries) == 1, (reader, path, [q["sql"] for q in queries])

    # Following the next links (a cursor) goes through DRF: the same messages.
    browser, headers = readers["member's session"]
    page = browser.get(f"{public}?page_size=3", **headers).json()
    ids = [m["id"] for m in page["messages"]]
    while page["next"]:
        page = browser.get(page["next"], **headers).json()
        ids += [m["id"] for m in page["messages"]]
    assert ids == list(
        Message.objects.filter(chat=chats[Chat.Visibility.PUBLIC])
        .order_by("created_at", "id")
        .values_list("id", flat=True)
    )
    # An Accept header DRF's negotiation refuses: its 406, as before.
    for browser, headers in readers.values():
        assert browser.get(public, HTTP_ACCEPT="text/html", **headers).status_code == 406
    # An If-None-Match of the body's ETag: 304, as DRF's path answers.
    etag = expected["owner's token", public]["ETag"]
    browser, headers = readers["owner's token"]
    assert browser.get(public, HTTP_IF_NONE_MATCH=etag, **headers).status_code == 304


def test_with_the_breaker_open_a_reader_who_may_not_read_the_chat_is_refused(
    client, owner, member, chats, private_redis
):
    server, breaker = private_redis
    token, secret = ApiToken.issue(user=owner, name="partition")
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    members = Client()
    members.force_login(member)
    private = f"/api/chats/{chats[Chat.Visibility.PRIVATE].pk}"
    gone = ApiToken.issue(user=owner, name="to delete")
    up = {
        "deleted": client.get(private, HTTP_AUTHORIZATION="Bearer rra_nonsense"),
        "member": members.get(private),
    }
    assert members.get("/api/chats").status_code == 200  # the session's user remembered
    partition(server, breaker, client, **bearer)

    # A deleted token: DRF's 401, the same body.
    gone[0].delete()
    deleted = client.get(private, HTTP_AUTHORIZATION=f"Bearer {gone[1]}")
    assert (deleted.status_code, deleted.content) == (401, up["deleted"].content)
    # A session whose remembered user is wrong reads another user's row and chat in its
    # statement, but what decides is the session as read: its own user, refused.
    from accounts import sessions as session_engine

    session_engine._OWNERS[members.cookies["sessionid"].value] = owner.pk
    refused = members.get(private)
    assert (refused.status_code, refused.content) == (404, up["member"].content)
    # An expired token, a revoked one, a deactivated user, a changed password.
    refusals_of_dead_tokens(client, token, private, **bearer)
    type(owner).objects.filter(pk=owner.pk).update(is_active=False)
    assert client.get(private, **bearer).status_code == 401
    # The member's session after a password change: nobody, who may read public chats.
    member.set_password("another password 123")
    member.save()
    assert members.get(private).status_code == 404
    assert members.get(f"/api/chats/{chats[Chat.Visibility.PUBLIC].pk}").json()["is_owner"] is False
