"""Answering a question, as the API's views ask for it: the one path from a request to
an answer's event stream.

    limit (CHAT_RATE) -> reserve a slot -> save the question -> queue it -> read its events

answer_response() is that sequence, written once; the four views that answer (a new
chat's first question, a question, regenerate, edit-last) differ only in how they save
the question (the prepare functions below). Answers are written by the worker and read
from Redis (transport); without Redis, or with ANSWERS_IN_WORKER off, in the request.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterable, Iterator

import redis
from django.conf import settings
from django.db import transaction
from django.http import HttpResponse, StreamingHttpResponse

from chats.answering import transport
from chats.answering.generation import answer_events, release_db_connection
from chats.models import Chat, Message
from rra.api import json_error
from rra.ratelimit import limit_request, too_many_requests_json


def title_from(question: str, limit: int = 80) -> str:
    title = " ".join(question.split())
    if len(title) <= limit:
        return title or "New chat"
    cut = title[:limit]
    return (cut[: cut.rindex(" ")] if " " in cut else cut) + "…"


# --- Saving the question ---------------------------------------------------------------


def question_save(*, chat: Chat, question: str) -> Message:
    """The user's message; a new chat takes its title from its first question."""
    user_message = Message.objects.create(chat=chat, role=Message.Role.USER, content=question)
    if chat.messages.count() == 1 and chat.title in ("", "New chat"):
        Chat.objects.filter(pk=chat.pk).update(title=title_from(question))
    return user_message


def last_exchange(chat: Chat) -> tuple[Message | None, Message | None]:
    """The last user question and the answer after it (either may be missing)."""
    last_user = chat.messages.filter(role=Message.Role.USER).order_by("-created_at", "-id").first()
    if last_user is None:
        return None, None
    answer = (
        chat.messages.filter(role=Message.Role.ASSISTANT, created_at__gte=last_user.created_at)
        .exclude(pk=last_user.pk)
        .order_by("created_at", "id")
        .first()
    )
    return last_user, answer


def regenerate_prepare(*, chat: Chat) -> Message:
    """Remove the last answer; return the question to answer again (it must exist)."""
    question, answer = last_exchange(chat)
    if answer is not None:
        answer.delete()
    return question


def edit_last_prepare(*, chat: Chat, question: str) -> Message:
    """Replace the last question (and remove its answer); return it."""
    last, answer = last_exchange(chat)
    with transaction.atomic():
        if answer is not None:
            answer.delete()
        last.content = question
        last.save(update_fields=["content"])
    return last


# --- The response -------------------------------------------------------------------------


def answers_unavailable() -> HttpResponse:
    return json_error(
        503, "answers_unavailable", "Answers are unavailable right now. Try again soon."
    )


def answer_response(
    *,
    request,
    prepare: Callable[[], Message],
    head: Callable[[Message], Iterable[str]] | None = None,
) -> HttpResponse:
    """The answer to the question prepare() saves (and returns), as an event stream
    (after head(question)'s events, if any); or the refusal: 429 past CHAT_RATE or
    ANSWER_MAX_CONCURRENT_PER_USER, 503 when Redis does not answer. A slot taken is
    given back if prepare() fails."""
    entered, cpu = time.time(), time.thread_time()
    limited = limit_request(request, group="chat", rate=settings.CHAT_RATE)
    if limited:
        return too_many_requests_json(limited, "messages")
    user = request.user
    answer_id = None
    if transport.enabled():
        try:
            answer_id = transport.reserve(user_id=user.pk)
        except transport.TooManyAnswers as exc:
            response = json_error(429, "too_many_answers", str(exc))
            response["Retry-After"] = str(exc.retry_after)
            return response
        except redis.RedisError:
            return answers_unavailable()
    reserved = time.time()
    try:
        question = prepare()
    except BaseException:
        if answer_id:
            transport.release(user_id=user.pk, answer_id=answer_id)
        raise
    first = list(head(question)) if head else []
    chat = question.chat
    if answer_id is None:
        return event_stream(itertools.chain(first, _written_here(chat, user, question)))
    prepared = time.time()
    try:
        transport.start(answer_id=answer_id, chat=chat, user=user, user_message=question)
    except redis.RedisError:
        return answers_unavailable()
    if transport.timing.isEnabledFor(logging.DEBUG):
        phases = {"entered": entered, "reserved": reserved, "prepared": prepared}
        phases |= {"queued": time.time(), "cpu_s": time.thread_time() - cpu}
        transport.timing.debug("answer queued", extra={"answer": answer_id, **phases})
    reader = transport.enter(user_id=user.pk, answer_id=answer_id, check=False)
    response = event_stream(
        itertools.chain(first, transport.read_events(answer_id, reader=reader)),
        on_close=reader.close,
    )
    response["X-Answer-Id"] = answer_id
    response["Content-Location"] = f"/api/answers/{answer_id}/events"
    return response


def _written_here(chat: Chat, user, question: Message) -> Iterator[str]:
    """SSE text of an answer written in this request (answers not in the worker). A
    client gone mid-way closes the generator: the partial answer is saved."""
    transport.clear_stop(chat_id=chat.pk)
    events = answer_events(
        chat=chat,
        user=user,
        question=question.content,
        user_message=question,
        stopped=lambda: transport.stop_requested(chat.pk),
    )
    try:
        for name, data in events:
            yield transport.sse(name, data)
    finally:
        events.close()


def events_replay(*, user, answer_id: str, last_event_id: str | None) -> HttpResponse | None:
    """An answer's events again, for the user who asked it, after last_event_id (from
    the start when missing or malformed); None when there is no such answer of theirs
    (or answers do not go through the worker); 503 when Redis does not answer."""
    if not transport.enabled():
        return None
    try:
        info = transport.meta(answer_id)
    except redis.RedisError:
        return answers_unavailable()
    if info is None or info["user"] != str(user.pk):
        return None
    after = transport.valid_event_id(last_event_id)
    try:
        reader = transport.enter(user_id=user.pk, answer_id=answer_id)
    except transport.TooManyReaders as exc:
        code = "too_many_readers" if exc.status == 429 else "server_busy"
        response = json_error(exc.status, code, str(exc))
        response["Retry-After"] = str(exc.retry_after)
        return response
    except redis.RedisError:
        return answers_unavailable()
    return event_stream(
        transport.read_events(answer_id, after=after, reader=reader), on_close=reader.close
    )


def answer_stop(*, chat: Chat) -> None:
    """Stop the answer being written in this chat (from any process)."""
    transport.request_stop(chat_id=chat.pk)


def running_answer(chat: Chat) -> str | None:
    """The id of the answer being written in this chat, when answers go through the
    worker and one is (the chat page resumes it)."""
    return transport.running_in(chat.pk) if transport.enabled() else None


class _Released:
    """The events, read without a database connection: the first read (by the server,
    after every middleware is done with the response) gives it back to the pool. The
    response's close() (a finished stream, a client gone, or one never read) closes the
    events and calls on_close."""

    def __init__(self, events: Iterable[str], on_close: Callable[[], None] | None) -> None:
        self._events = iter(events)
        self._on_close = on_close
        self._started = False

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if not self._started:
            self._started = True
            release_db_connection()
        return next(self._events)

    def close(self) -> None:
        try:
            close = getattr(self._events, "close", None)
            if close is not None:
                close()
        finally:
            # Dropped at once: a generator inside a chain (which has no close()) is
            # closed as it goes, saving what an answer written here had streamed.
            self._events = iter(())
            if self._on_close is not None:
                on_close, self._on_close = self._on_close, None
                on_close()


def event_stream(
    events: Iterable[str], *, on_close: Callable[[], None] | None = None
) -> StreamingHttpResponse:
    response = StreamingHttpResponse(
        _Released(events, on_close), content_type="text/event-stream; charset=utf-8"
    )
    response["Cache-Control"] = "no-cache, no-transform"
    response["X-Accel-Buffering"] = "no"  # no proxy buffering: tokens arrive as they come
    return response
