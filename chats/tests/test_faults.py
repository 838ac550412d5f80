"""Faults in the middle of an answer (issue 21 item 7): the model stalls mid-stream, and
the worker writing the answer is killed (SIGKILL). Either way the reader gets the text
written so far and then an error event, and that text is saved as a partial answer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest
from django.conf import settings as django_settings

from chats.answering import runner as answer_runner
from chats.answering import transport
from chats.answering.llm import reset_llm
from chats.models import Chat, Message
from chats.tests.conftest import events
from rra.testing.fakes import FakeOpenAI
from rra.tests.test_deploy import ROOT, _database_url, _env

pytestmark = pytest.mark.django_db(transaction=True)  # the worker sees the rows


@pytest.fixture
def llm_server(settings):
    server = FakeOpenAI(api_key="llm-key").start()
    server.reply = "Put a spirit level on the front chuck and turn it until it is level [1]."
    settings.LLM_BASE_URL = server.base_url
    settings.LLM_API_KEY = "llm-key"
    settings.LLM_MODEL = "fake-model"
    settings.LLM_RETRY_DELAY_S = 0.01
    reset_llm()
    yield server
    server.stop()
    reset_llm()


def _ask(client, chat):
    return client.post(
        f"/api/chats/{chat.pk}/messages",
        {"question": "How do I level the front chuck?"},
        content_type="application/json",
    )


def _parse(chunks: list[bytes]) -> list[tuple[str, dict]]:
    class _Response:
        # Without the keep-alive comments sent while the worker loaded its model.
        streaming_content = [c.replace(transport.KEEP_ALIVE.encode(), b"") for c in chunks]

    return events(_Response())


def test_a_model_that_stalls_mid_stream_ends_the_answer_with_its_partial_text(
    owner_client, owner, manual, llm_server, runner, settings
):
    settings.LLM_READ_TIMEOUT = 1
    llm_server.stall_stream_next(after_chunks=3, seconds=30)
    chat = Chat.objects.create(owner=owner)
    stream = events(_ask(owner_client, chat))
    tokens = "".join(d["text"] for n, d in stream if n == "token")
    assert tokens and stream[-1][0] == "error"
    assert "nothing arrived for 1" in stream[-1][1]["message"]
    message = Message.objects.get(pk=stream[-1][1]["message_id"])
    assert message.status == "partial" and message.content == tokens
    assert transport.client().zcard(transport.user_key(owner.pk)) == 0  # slot freed


def test_a_worker_killed_mid_answer_leaves_an_error_event_and_the_partial_text(
    owner_client, owner, manual, llm_server, in_worker, settings, tmp_path
):
    settings.ANSWER_START_TIMEOUT_S = 180  # the worker loads the embedding model first
    llm_server.stall_stream_next(after_chunks=3, seconds=120)  # mid-answer, for good
    env = _env(
        DATABASE_URL=_database_url(django_settings.DATABASES["default"]["NAME"]),
        ANSWERS_IN_WORKER="true",
        ANSWER_WORKER_THREADS="2",
        LLM_BASE_URL=llm_server.base_url,
        LLM_API_KEY="llm-key",
        LLM_MODEL="fake-model",
        METRICS_ENDPOINT="",
        MEDIA_ROOT=str(django_settings.MEDIA_ROOT),
    )
    log = (tmp_path / "worker.log").open("w+")
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "worker"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        chat = Chat.objects.create(owner=owner)
        response = _ask(owner_client, chat)
        answer_id = response["X-Answer-Id"]
        chunks = iter(response.streaming_content)
        received: list[bytes] = []
        while b"event: token" not in b"".join(received):
            received.append(next(chunks))
        assert worker.poll() is None
        os.killpg(worker.pid, signal.SIGKILL)  # no goodbye: no error event, no save
        worker.wait(10)
        assert Message.objects.filter(chat=chat, role="assistant").count() == 0

        # A surviving worker's sweep (after ANSWER_MAX_SECONDS; here at once) ends it.
        done = threading.Event()

        def survivor():
            answer_runner.reclaim_stale(consumer="survivor", min_idle_ms=0)
            done.set()

        thread = threading.Thread(target=survivor)
        thread.start()
        received.extend(chunks)  # the rest, to the error event
        thread.join(30)
        assert done.is_set()
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)
        log.close()
    stream = _parse(received)
    tokens = "".join(d["text"] for n, d in stream if n == "token")
    assert tokens and stream[-1][0] == "error"
    assert "worker stopped" in stream[-1][1]["message"]
    message = Message.objects.get(pk=stream[-1][1]["message_id"])
    assert message.status == "partial" and message.content == tokens
    assert transport.client().zcard(transport.user_key(owner.pk)) == 0
    assert transport.running_in(chat.pk) is None
    assert answer_id
