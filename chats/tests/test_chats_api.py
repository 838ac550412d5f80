"""Chats API: list, detail, rename, delete, visibility and public links, votes, stop."""

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from chats.models import Chat, Citation, Message, Vote
from rra.testing import factories

pytestmark = pytest.mark.django_db


def _chat(owner, title="Chat", **fields):
    chat = Chat.objects.create(owner=owner, title=title, **fields)
    Message.objects.create(chat=chat, role="user", content="How do I level the chuck?")
    answer = Message.objects.create(
        chat=chat, role="assistant", content="Use a spirit level [1].", model="extractive"
    )
    Citation.objects.create(
        message=answer,
        document=factories.document(owner, "roborail.md"),
        document_name="roborail.md",
        first_page=1,
        last_page=1,
        quote="Put a spirit level…",
        number=1,
        rank=1,
        score=0.5,
    )
    return chat, answer


def test_the_list_shows_only_my_chats_newest_first_with_cursor_pages(owner_client, owner, outsider):
    now = timezone.now()
    for n in range(3):
        Chat.objects.create(owner=owner, title=f"c{n}", created_at=now - timedelta(minutes=10 - n))
    Chat.objects.create(owner=outsider, title="theirs", visibility="public")
    body = owner_client.get("/api/chats?page_size=2").json()
    assert [c["title"] for c in body["results"]] == ["c2", "c1"]
    rest = owner_client.get(body["next"]).json()
    assert [c["title"] for c in rest["results"]] == ["c0"]
    assert [c["title"] for c in owner_client.get("/api/chats?q=C1").json()["results"]] == ["c1"]


def test_the_detail_has_messages_with_citations_and_votes(owner_client, owner, member):
    chat, answer = _chat(owner)
    Vote.objects.create(message=answer, user=member, value=1)
    Vote.objects.create(message=answer, user=owner, value=-1)
    body = owner_client.get(f"/api/chats/{chat.pk}").json()
    assert body["title"] == "Chat" and body["is_owner"] is True
    assert [m["role"] for m in body["messages"]] == ["user", "assistant"]
    assistant = body["messages"][1]
    assert assistant["citations"][0]["pages"] == "p. 1"
    assert assistant["votes"] == {"up": 1, "down": 1, "mine": -1}


def test_messages_are_paginated_oldest_first(owner_client, owner):
    chat = Chat.objects.create(owner=owner)
    start = timezone.now()
    for n in range(5):
        Message.objects.create(
            chat=chat, role="user", content=f"q{n}", created_at=start + timedelta(seconds=n)
        )
    body = owner_client.get(f"/api/chats/{chat.pk}?page_size=2").json()
    assert [m["content"] for m in body["messages"]] == ["q0", "q1"]
    more = owner_client.get(body["next"]).json()
    assert [m["content"] for m in more["messages"]] == ["q2", "q3"]


def test_rename_share_and_delete(owner_client, owner):
    chat, _ = _chat(owner)
    response = owner_client.patch(
        f"/api/chats/{chat.pk}",
        {"title": " New  name ", "visibility": "public"},
        content_type="application/json",
    )
    assert response.status_code == 200
    chat.refresh_from_db()
    assert chat.title == "New name" and chat.visibility == "public"
    bad = owner_client.patch(
        f"/api/chats/{chat.pk}", {"visibility": "everyone"}, content_type="application/json"
    )
    assert bad.status_code == 400
    assert owner_client.delete(f"/api/chats/{chat.pk}").status_code == 204
    assert not Chat.objects.exists() and not Message.objects.exists()


def test_a_private_chat_is_404_to_everyone_else(owner, outsider):
    chat, answer = _chat(owner)
    client = Client()
    assert client.get(f"/api/chats/{chat.pk}").status_code == 404
    client.force_login(outsider)
    for method, path in [
        ("get", f"/api/chats/{chat.pk}"),
        ("patch", f"/api/chats/{chat.pk}"),
        ("delete", f"/api/chats/{chat.pk}"),
        ("post", f"/api/chats/{chat.pk}/messages"),
        ("post", f"/api/chats/{chat.pk}/stop"),
        ("put", f"/api/messages/{answer.pk}/vote"),
    ]:
        response = getattr(client, method)(
            path, {"question": "x", "value": "up"}, content_type="application/json"
        )
        assert response.status_code == 404, (method, path)
    assert Chat.objects.get().title == "Chat"


def test_a_public_chat_is_read_only_for_anyone_with_the_link(owner, outsider):
    chat, answer = _chat(owner, visibility="public")
    anonymous = Client()
    body = anonymous.get(f"/api/chats/{chat.pk}").json()
    assert body["is_owner"] is False and len(body["messages"]) == 2
    assert anonymous.delete(f"/api/chats/{chat.pk}").status_code == 401
    reader = Client()
    reader.force_login(outsider)
    assert (
        reader.post(
            f"/api/chats/{chat.pk}/messages", {"question": "x"}, content_type="application/json"
        ).status_code
        == 404
    )
    assert (
        reader.patch(
            f"/api/chats/{chat.pk}", {"title": "mine now"}, content_type="application/json"
        ).status_code
        == 404
    )
    # Readers may vote on a public answer.
    assert (
        reader.put(
            f"/api/messages/{answer.pk}/vote", {"value": "up"}, content_type="application/json"
        ).status_code
        == 200
    )


def test_votes_are_one_per_user_and_can_change_or_go(owner_client, owner):
    _, answer = _chat(owner)
    url = f"/api/messages/{answer.pk}/vote"
    assert (
        owner_client.put(url, {"value": "up"}, content_type="application/json").json()["value"]
        == "up"
    )
    owner_client.put(url, {"value": "down"}, content_type="application/json")
    assert list(Vote.objects.values_list("value", flat=True)) == [-1]
    assert (
        owner_client.put(url, {"value": "meh"}, content_type="application/json").status_code == 400
    )
    assert owner_client.delete(url).status_code == 204
    assert not Vote.objects.exists()


def test_only_answers_can_be_voted_on(owner_client, owner):
    chat, _ = _chat(owner)
    question = chat.messages.get(role="user")
    assert (
        owner_client.put(
            f"/api/messages/{question.pk}/vote", {"value": "up"}, content_type="application/json"
        ).status_code
        == 404
    )


def test_stop_stops_a_running_answer(owner_client, owner, monkeypatch):
    """The stop flag is checked between tokens; what was said is kept as partial."""
    from chats.answering import llm
    from chats.answering.llm import Token, Usage
    from chats.tests.conftest import events

    chat = Chat.objects.create(owner=owner)

    def endless(self, *, question, passages, history):
        for n in range(1000):
            if n == 3:
                assert owner_client.post(f"/api/chats/{chat.pk}/stop").status_code == 202
            yield Token(f"word{n} ")
        yield Usage(1, 1000, "extractive")

    monkeypatch.setattr(llm.ExtractiveLLM, "stream", endless)
    monkeypatch.setattr(
        "chats.answering.generation.retrieve",
        lambda **kw: ([llm.Passage(1, "text", "d.md", "p. 1")], [_FakeHit()]),
    )
    stream = events(
        owner_client.post(
            f"/api/chats/{chat.pk}/messages", {"question": "go"}, content_type="application/json"
        )
    )
    assert stream[-1][0] == "done" and stream[-1][1]["status"] == "partial"
    message = Message.objects.get(pk=stream[-1][1]["message_id"])
    assert message.content == "word0 word1 word2 word3 "
    assert message.error == "Stopped."


class _FakeHit:
    document_id = None
    chunk_id = None
    first_page = last_page = 1
    paged = True
    location = "p. 1"
    snippet = "text"
    score = 0.5


def test_admins_can_browse_chats_messages_and_votes(client, admin_user, owner):
    chat, answer = _chat(owner)
    Vote.objects.create(message=answer, user=owner, value=1)
    client.force_login(admin_user)
    assert "Chat" in client.get("/admin/chats/chat/").content.decode()
    assert client.get(f"/admin/chats/chat/{chat.pk}/change/").status_code == 200
    assert client.get(f"/admin/chats/message/{answer.pk}/change/").status_code == 200
    assert client.get("/admin/chats/vote/").status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([1, 2, 3], None),
        ("a string", None),
        ({"question": {"a": 1}}, "question"),
        ({"question": ["How do I level the chuck?"]}, "question"),
        ({"title": ["x"]}, "title"),
        ({"question": "x" * 5000}, "question"),
    ],
)
def test_a_new_chat_with_a_body_that_is_not_title_and_question_is_400(
    owner_client, owner, body, field
):
    response = owner_client.post("/api/chats", json.dumps(body), content_type="application/json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    if field:
        assert field in error["fields"]
    assert not Chat.objects.filter(owner=owner).exists()  # nothing half-made


@pytest.mark.usefixtures("redis_url")
def test_the_chat_list_refuses_a_search_the_database_cannot_take(owner_client, owner):
    from accounts.models import ApiToken

    Chat.objects.create(owner=owner, title="Chuck alignment")
    _, raw = ApiToken.issue(user=owner, name="tests")
    token = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    for client in (owner_client, token, owner_client):  # the token's read is cached
        assert client.get("/api/chats", {"q": "chuck"}).json()["results"][0]["title"] == (
            "Chuck alignment"
        )
        for q in ("a\x00b", "x" * 501):
            response = client.get("/api/chats", {"q": q})
            assert response.status_code == 400
            assert "q" in response.json()["error"]["fields"]


def test_the_first_chat_event_of_a_new_chat_carries_the_stream_start_as_its_id(
    owner_client, manual
):
    """A client reconnecting with it as Last-Event-ID reads the answer from its start."""
    response = owner_client.post(
        "/api/chats",
        json.dumps({"question": "How do I level the front chuck?"}),
        content_type="application/json",
        HTTP_ACCEPT="text/event-stream",
    )
    assert response.status_code == 201
    body = b"".join(response.streaming_content).decode()
    first = body.split("\n\n")[0].splitlines()
    assert first[:2] == ["id: 0-0", "event: chat"]
