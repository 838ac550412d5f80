"""Asking questions: SSE events, saved messages and citations (offline extractive LLM)."""

import pytest

from chats.answering import NOT_COVERED
from chats.models import Chat, Citation, Message
from chats.tests.conftest import events

pytestmark = pytest.mark.django_db


def _ask(client, chat, question):
    return client.post(
        f"/api/chats/{chat.pk}/messages", {"question": question}, content_type="application/json"
    )


def test_it_streams_citations_tokens_then_done_and_saves_the_answer(owner_client, owner, manual):
    chat = Chat.objects.create(owner=owner)
    response = _ask(owner_client, chat, "How do I level the front chuck?")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/event-stream")
    assert response["Cache-Control"].startswith("no-cache")
    stream = events(response)
    names = [name for name, _ in stream]
    assert names[0] == "citations" and names[-1] == "done"
    assert set(names[1:-1]) == {"token"}
    passages = stream[0][1]["passages"]
    assert passages[0]["number"] == 1 and passages[0]["document"] == "roborail.md"
    assert "Chuck rotation" in passages[0]["section"]
    answer = "".join(data["text"] for name, data in stream if name == "token")
    done = stream[-1][1]
    message = Message.objects.get(pk=done["message_id"])
    assert message.role == "assistant" and message.status == "complete"
    assert message.content == answer
    assert "[1]" in answer and "spirit level" in answer
    assert done["usage"]["model"] == "extractive" and done["usage"]["completion_tokens"] > 0
    citations = list(Citation.objects.filter(message=message))
    assert citations and citations[0].document_name == "roborail.md"
    assert {c.number for c in citations} <= {p["number"] for p in passages}
    question = chat.messages.get(role="user")
    assert question.content == "How do I level the front chuck?"
    chat.refresh_from_db()
    assert chat.title == "How do I level the front chuck?"


def test_it_says_plainly_when_the_documents_do_not_cover_the_question(
    owner_client, owner, manual, settings
):
    chat = Chat.objects.create(owner=owner)
    stream = events(_ask(owner_client, chat, "What is the capital of Peru?"))
    assert stream[0] == ("citations", {"passages": []})
    assert "".join(d["text"] for n, d in stream if n == "token") == NOT_COVERED
    message = Message.objects.get(pk=stream[-1][1]["message_id"])
    assert message.content == NOT_COVERED and not message.citations.exists()


def test_creating_a_chat_with_a_question_streams_the_answer(owner_client, manual):
    response = owner_client.post(
        "/api/chats", {"question": "ping address of the PMAC?"}, content_type="application/json"
    )
    assert response.status_code == 201
    stream = events(response)
    assert stream[0][0] == "chat"
    chat = Chat.objects.get(pk=stream[0][1]["id"])
    assert response["Location"] == f"/api/chats/{chat.pk}"
    assert chat.title == "ping address of the PMAC?"
    assert stream[-1][0] == "done"
    assert "192.168.7.10" in Message.objects.get(pk=stream[-1][1]["message_id"]).content


def test_a_chat_without_a_question_is_plain_json(owner_client):
    response = owner_client.post(
        "/api/chats", {"title": "  Calibration   notes "}, content_type="application/json"
    )
    assert response.status_code == 201
    assert response.json()["title"] == "Calibration notes"


def test_bad_questions_are_rejected_before_any_stream(owner_client, owner, settings):
    chat = Chat.objects.create(owner=owner)
    assert _ask(owner_client, chat, "   ").status_code == 400
    settings.MAX_QUESTION_CHARS = 100
    response = _ask(owner_client, chat, "x" * 101)
    assert response.status_code == 400
    assert "under 100 characters" in response.json()["error"]["fields"]["question"][0]
    assert not chat.messages.exists()


def test_the_chat_rate_limit_answers_429_before_streaming(owner_client, owner, manual, settings):
    settings.CHAT_RATE = "2/m"
    chat = Chat.objects.create(owner=owner)
    for _ in range(2):
        response = _ask(owner_client, chat, "chuck level?")
        assert response.status_code == 200
        events(response)
    response = _ask(owner_client, chat, "chuck level?")
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert chat.messages.filter(role="user").count() == 2


def test_regenerate_replaces_the_last_answer(owner_client, owner, manual):
    chat = Chat.objects.create(owner=owner)
    first = events(_ask(owner_client, chat, "How do I level the chuck?"))[-1][1]["message_id"]
    stream = events(owner_client.post(f"/api/chats/{chat.pk}/regenerate"))
    assert stream[-1][0] == "done"
    assert not Message.objects.filter(pk=first).exists()
    assert list(chat.messages.values_list("role", flat=True)) == ["user", "assistant"]


def test_edit_and_resend_the_last_question(owner_client, owner, manual):
    chat = Chat.objects.create(owner=owner)
    events(_ask(owner_client, chat, "How do I level the chuck?"))
    # A question the guard keeps with either local model: this test is about editing.
    # ("Which IP do I ping for the PMAC?" is declined by e5's guard at cosine 0.879 < 0.88
    # with coverage 0.44: e5's wrongly declined English questions, bench/README.)
    question = "Which address do I ping when the PMAC controller has no communication?"
    stream = events(
        owner_client.post(
            f"/api/chats/{chat.pk}/edit-last",
            {"question": question},
            content_type="application/json",
        )
    )
    assert stream[-1][0] == "done"
    messages = list(chat.messages.all())
    assert [m.role for m in messages] == ["user", "assistant"]
    assert messages[0].content == question
    assert "192.168.7.10" in messages[1].content


def test_regenerate_and_edit_need_a_question(owner_client, owner):
    chat = Chat.objects.create(owner=owner)
    assert owner_client.post(f"/api/chats/{chat.pk}/regenerate").status_code == 409
    response = owner_client.post(
        f"/api/chats/{chat.pk}/edit-last", {"question": "x"}, content_type="application/json"
    )
    assert response.status_code == 409


def test_history_goes_into_the_next_prompt(owner_client, owner, manual, monkeypatch):
    from chats.answering import llm

    seen = []
    real = llm.ExtractiveLLM.stream

    def spy(self, *, question, passages, history):
        seen.append(history)
        return real(self, question=question, passages=passages, history=history)

    monkeypatch.setattr(llm.ExtractiveLLM, "stream", spy)
    chat = Chat.objects.create(owner=owner)
    events(_ask(owner_client, chat, "How do I level the chuck?"))
    events(_ask(owner_client, chat, "And the network?"))
    assert seen[0] == []
    assert [t.role for t in seen[1]] == ["user", "assistant"]
    assert seen[1][0].content == "How do I level the chuck?"


def test_an_event_stream_accept_header_is_fine_and_errors_stay_json(owner_client, owner, manual):
    chat = Chat.objects.create(owner=owner)
    response = owner_client.post(
        f"/api/chats/{chat.pk}/messages",
        {"question": "chuck?"},
        content_type="application/json",
        HTTP_ACCEPT="text/event-stream",
    )
    assert response.status_code == 200 and events(response)[-1][0] == "done"
    bad = owner_client.post(
        f"/api/chats/{chat.pk}/messages",
        {"question": ""},
        content_type="application/json",
        HTTP_ACCEPT="text/event-stream",
    )
    assert bad.status_code == 400 and bad["Content-Type"] == "application/json"
