"""Answers through an OpenAI-compatible server (a fake on loopback) and their failures."""

import pytest

from chats.answering.llm import reset_llm
from chats.models import Chat, Message
from chats.tests.conftest import events
from rra.testing.fakes import FakeOpenAI

pytestmark = pytest.mark.django_db

REPLY = "Put a spirit level on the front chuck [1]. Then select Done [1]. Ignore this [9]."


@pytest.fixture
def llm_server(settings):
    server = FakeOpenAI(api_key="llm-key").start()
    server.reply = REPLY
    settings.LLM_BASE_URL = server.base_url
    settings.LLM_API_KEY = "llm-key"
    settings.LLM_MODEL = "fake-model"
    settings.LLM_RETRY_DELAY_S = 0.01
    settings.LLM_READ_TIMEOUT = 1
    reset_llm()
    yield server
    server.stop()
    reset_llm()


def _ask(client, chat, question="How do I level the chuck?"):
    return client.post(
        f"/api/chats/{chat.pk}/messages", {"question": question}, content_type="application/json"
    )


def test_the_model_gets_numbered_passages_and_only_supplied_citations_are_kept(
    owner_client, owner, manual, llm_server
):
    chat = Chat.objects.create(owner=owner)
    stream = events(_ask(owner_client, chat))
    assert stream[-1][0] == "done"
    assert stream[-1][1]["usage"]["model"] == "fake-model"
    request = llm_server.chat_requests[-1]
    system = request["messages"][0]["content"]
    assert "[1] roborail.md" in system and "spirit level" in system
    assert request["messages"][-1] == {"role": "user", "content": "How do I level the chuck?"}
    message = Message.objects.get(pk=stream[-1][1]["message_id"])
    assert message.content == REPLY
    supplied = len(stream[0][1]["passages"])
    assert supplied < 9
    assert list(message.citations.values_list("number", flat=True)) == [1]


def test_an_error_before_the_first_token_is_retried_once(owner_client, owner, manual, llm_server):
    chat = Chat.objects.create(owner=owner)
    llm_server.fail_next(1, status=503)
    stream = events(_ask(owner_client, chat))
    assert stream[-1][0] == "done"
    assert len(llm_server.chat_requests) == 2


def test_a_second_failure_ends_in_an_error_event(owner_client, owner, manual, llm_server):
    chat = Chat.objects.create(owner=owner)
    llm_server.fail_next(2, status=500)
    stream = events(_ask(owner_client, chat))
    name, data = stream[-1]
    assert name == "error"
    assert "token" not in [n for n, _ in stream]
    message = Message.objects.get(pk=data["message_id"])
    assert message.status == "error" and message.content == ""
    assert data["message"] == message.error and message.error


def test_a_rejected_key_is_not_retried_and_says_what_to_check(
    owner_client, owner, manual, llm_server, settings
):
    settings.LLM_API_KEY = "wrong"
    reset_llm()
    chat = Chat.objects.create(owner=owner)
    stream = events(_ask(owner_client, chat))
    assert stream[-1][0] == "error"
    assert "LLM_API_KEY" in stream[-1][1]["message"]
    assert len(llm_server.chat_requests) == 1


def test_a_stream_broken_after_tokens_saves_the_partial_answer(
    owner_client, owner, manual, llm_server
):
    chat = Chat.objects.create(owner=owner)
    llm_server.break_stream_next(after_chunks=3)
    stream = events(_ask(owner_client, chat))
    tokens = "".join(d["text"] for n, d in stream if n == "token")
    assert tokens and stream[-1][0] == "error"
    message = Message.objects.get(pk=stream[-1][1]["message_id"])
    assert message.status == "partial" and message.content == tokens
    assert len(llm_server.chat_requests) == 1  # no retry once tokens were sent


@pytest.mark.django_db(transaction=True)  # closing the response closes the connection
def test_a_client_disconnect_stops_generation_and_keeps_the_partial_answer(
    owner_client, owner, manual, llm_server
):
    chat = Chat.objects.create(owner=owner)
    response = _ask(owner_client, chat)
    chunks = iter(response.streaming_content)
    received = [next(chunks) for _ in range(3)]  # citations + two tokens
    response.close()  # what the WSGI server does when the browser goes away
    assert b"event: token" in received[-1]
    message = chat.messages.get(role="assistant")
    assert message.status == "partial"
    assert message.content and REPLY.startswith(message.content)
    assert "connection closed" in message.error
