"""The worker writes the text of all its answers in one Redis round trip per
ANSWER_TOKEN_FLUSH_MS (chats/answering/publisher.py), not one per answer: at 200
answers each writing its own, the round trips were about 40 % of the worker's CPU per
token; and text that waits is written within the window even when the model pauses."""

from __future__ import annotations

import json
import threading
import time

import pytest

from chats.answering import llm
from chats.answering import runner as answer_runner
from chats.answering import transport as answers
from chats.answering.llm import Token, Usage
from chats.models import Chat, Message
from chats.tests.conftest import events
from chats.tests.test_answer_streams import SlowModel, _ask, _tokens

pytestmark = pytest.mark.django_db(transaction=True)  # the worker threads see the rows


def _reads() -> int:
    """Reads Redis processed from its clients' sockets: one per round trip."""
    return int(answers.client().info("stats")["total_reads_processed"])


def test_many_answers_write_their_text_in_one_round_trip_per_window(
    owner_client, owner, in_worker, monkeypatch, settings
):
    settings.ANSWER_MAX_CONCURRENT_PER_USER = 100
    settings.CHAT_RATE = "100/m"
    settings.ANSWER_TOKEN_FLUSH_MS = 50
    SlowModel(words=200, delay=0.01).install(monkeypatch)  # 2 s each, about 40 windows
    count = 20
    asked = [_ask(owner_client, Chat.objects.create(owner=owner)) for _ in range(count)]
    r = answers.client()
    before = _reads()
    stop = threading.Event()
    threads = answer_runner.AnswerRunner(threads=count, stop=stop).start()
    try:
        deadline = time.monotonic() + 60
        while r.zcard(answers.user_key(owner.pk)) and time.monotonic() < deadline:
            time.sleep(0.2)
        reads = _reads() - before  # the worker's, and this test's few polls
        streams = [events(response) for response in asked]
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    words = "".join(f"word{n} " for n in range(200))
    assert all(s[-1][0] == "done" and _tokens(s) == words for s in streams)
    assert all(Message.objects.get(pk=s[-1][1]["message_id"]).content == words for s in streams)
    # Each write of text was a round trip of its own: more round trips than token
    # events (1,130 against 800 here), besides each answer's few others (its job, meta,
    # citations, done, its slot: about 16). Now the text of all answers goes in one
    # round trip per window (about 40).
    token_events = sum(name == "token" for s in streams for name, _ in s)
    assert token_events > count * 20, token_events
    assert reads < token_events, (reads, token_events)


def test_text_that_waits_is_written_within_the_window_while_the_model_pauses(
    owner_client, owner, runner, monkeypatch, settings
):
    """Before, a token that came within the window of the last write waited for the
    next token after the window: with a model that paused, for as long as it paused."""
    settings.ANSWER_TOKEN_FLUSH_MS = 100

    def stream(self, *, question, passages, history):
        yield Token("word0 ")
        yield Token("word1 ")
        time.sleep(3)
        yield Token("word2 ")
        yield Usage(1, 3, "slow")

    SlowModel().install(monkeypatch)
    monkeypatch.setattr(llm.ExtractiveLLM, "stream", stream)
    chat = Chat.objects.create(owner=owner)
    response = _ask(owner_client, chat)
    chunks = iter(response.streaming_content)
    received = _read_some_from(chunks, 1)
    first = time.monotonic()
    received += _read_some_from(chunks, 1)
    assert time.monotonic() - first < 1.5  # not the model's 3 s pause
    received += list(chunks)
    texts = [
        json.loads(block.split("data: ", 1)[1])["text"]
        for block in b"".join(received).decode().split("\n\n")
        if "event: token" in block
    ]
    assert texts == ["word0 ", "word1 ", "word2 "]
    assert Message.objects.get(chat=chat, role="assistant").content == "word0 word1 word2 "


def _read_some_from(chunks, count: int) -> list[bytes]:
    received: list[bytes] = []
    while sum(c.count(b"event: token") for c in received) < count:
        received.append(next(chunks))
    return received
