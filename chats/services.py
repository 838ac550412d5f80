"""The answer flow: retrieve -> prompt -> LLM stream -> SSE events -> saved message.

Events (Server-Sent Events, one JSON object per `data:` line):
  citations  {"passages": [{number, document, document_id, pages, section, snippet, chunk_id}]}
  token      {"text": "..."}
  done       {"message_id", "status", "usage": {prompt_tokens, completion_tokens, model}}
  error      {"message": "...", "message_id"}  (a partial answer is saved with status partial)
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Iterator

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from chats.answering.extractive import NOT_COVERED
from chats.answering.llm import (
    LLMError,
    Passage,
    Token,
    TransientLLMError,
    Turn,
    Usage,
    get_llm,
)
from chats.answering.prompts import cited_numbers, prune_history
from chats.answering.retrieval import retrieve
from chats.models import Chat, Citation, Message
from chats.rendering import render_answer
from rra import telemetry

logger = logging.getLogger(__name__)


def sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def title_from(question: str, limit: int = 80) -> str:
    title = " ".join(question.split())
    if len(title) <= limit:
        return title or "New chat"
    cut = title[:limit]
    return (cut[: cut.rindex(" ")] if " " in cut else cut) + "…"


def _stop_key(chat_id) -> str:
    return f"chat:stop:{chat_id}"


def chat_request_stop(*, chat: Chat) -> None:
    cache.set(_stop_key(chat.pk), 1, 600)


def _history(chat: Chat, *, before: Message | None) -> list[Turn]:
    messages = chat.messages.exclude(status=Message.Status.ERROR)
    if before is not None:
        messages = messages.filter(created_at__lt=before.created_at)
    turns = [Turn(role=m.role, content=m.content) for m in messages.only("role", "content")]
    from chats.answering.llm import count_tokens

    return prune_history(turns, settings.HISTORY_TOKEN_BUDGET, count_tokens)


def _stream_with_retry(llm, *, question, passages, history) -> Iterator[Token | Usage]:
    """One retry with jitter when the provider fails before the first token."""
    for attempt in (1, 2):
        started = False
        try:
            for item in llm.stream(question=question, passages=passages, history=history):
                started = True
                yield item
            return
        except TransientLLMError as exc:
            if started or attempt == 2:
                raise
            delay = settings.LLM_RETRY_DELAY_S * random.uniform(0.5, 1.5)  # noqa: S311
            logger.warning("LLM failed before the first token (%s); retrying in %.2fs", exc, delay)
            time.sleep(delay)


def question_save(*, chat: Chat, question: str) -> Message:
    """The user's message; a new chat takes its title from its first question."""
    user_message = Message.objects.create(chat=chat, role=Message.Role.USER, content=question)
    if chat.messages.count() == 1 and chat.title in ("", "New chat"):
        Chat.objects.filter(pk=chat.pk).update(title=title_from(question))
    return user_message


def chat_clear_stop(*, chat: Chat) -> None:
    cache.delete(_stop_key(chat.pk))


def release_db_connection() -> None:
    """Give the pooled connection back before waiting on the model: a slow answer must not
    hold one of the pool's few connections (not inside a transaction, e.g. in tests)."""
    if not connection.in_atomic_block:
        connection.close()


def answer_stream(
    *, chat: Chat, user, question: str, user_message: Message | None = None
) -> Iterator[str]:
    """SSE lines for one answer, generated in this request (chats.answers runs it in the
    worker instead). Saves the user's message first (unless given, when regenerating),
    then the assistant's message whatever happens: complete, partial (stopped,
    disconnected or failed mid-stream) or error."""
    if user_message is None:
        user_message = question_save(chat=chat, question=question)
    chat_clear_stop(chat=chat)
    events = answer_events(chat=chat, user=user, question=question, user_message=user_message)
    try:
        for name, data in events:
            yield sse(name, data)
    finally:
        events.close()  # a client gone mid-way: the partial answer is saved


def answer_events(
    *, chat: Chat, user, question: str, user_message: Message, stop_check_s: float = 0.0
) -> Iterator[tuple[str, dict]]:
    """The events of one answer to user_message, as (name, data); the assistant's message
    is saved before the last event whatever happens. Closing the iterator early saves a
    partial answer. The stop flag is read after each token, or at most every
    stop_check_s seconds (the worker: one cache read per token for hundreds of answers
    costs more than the wait)."""
    history = _history(chat, before=user_message)
    llm = get_llm()
    parts: list[str] = []
    usage: Usage | None = None
    outcome = {"status": Message.Status.ERROR, "error": ""}
    passages: list[Passage] = []
    hits: list = []
    next_stop_check = 0.0
    try:
        passages, hits = retrieve(user=user, question=question)
        release_db_connection()
        yield (
            "citations",
            {
                "passages": [
                    {
                        "number": p.number,
                        "document": p.document,
                        "document_id": h.document_id,
                        "chunk_id": h.chunk_id,
                        "pages": p.pages,
                        "first_page": h.first_page,
                        "section": p.section,
                        "snippet": h.snippet,
                    }
                    for p, h in zip(passages, hits, strict=True)
                ]
            },
        )
        if not passages:
            parts.append(NOT_COVERED)
            yield ("token", {"text": NOT_COVERED})
        else:
            for item in telemetry.llm_stream(
                _stream_with_retry(llm, question=question, passages=passages, history=history),
                provider=llm,
            ):
                if isinstance(item, Usage):
                    usage = item
                    continue
                parts.append(item.text)
                yield ("token", {"text": item.text})
                now = time.monotonic()
                if now >= next_stop_check:
                    next_stop_check = now + stop_check_s
                    if cache.get(_stop_key(chat.pk)):
                        outcome["error"] = "Stopped."
                        break
        outcome["status"] = Message.Status.PARTIAL if outcome["error"] else Message.Status.COMPLETE
    except LLMError as exc:
        outcome["status"] = Message.Status.PARTIAL if parts else Message.Status.ERROR
        outcome["error"] = exc.message
    except GeneratorExit:
        # The reader went away: stop generating, keep what was said.
        outcome["status"] = Message.Status.PARTIAL
        outcome["error"] = "The connection closed before the answer was complete."
        _save_answer(chat, parts, outcome, usage, llm, passages, hits)
        raise
    except Exception:
        logger.exception("answer failed for chat %s", chat.pk)
        outcome["status"] = Message.Status.PARTIAL if parts else Message.Status.ERROR
        outcome["error"] = "Something went wrong while answering. Please try again."
    message = _save_answer(chat, parts, outcome, usage, llm, passages, hits)
    if outcome["status"] == Message.Status.ERROR or (
        outcome["status"] == Message.Status.PARTIAL and outcome["error"] != "Stopped."
    ):
        yield ("error", {"message": outcome["error"], "message_id": message.pk})
    else:
        yield (
            "done",
            {
                "message_id": message.pk,
                "status": message.status,
                "html": render_answer(message.content),
                "usage": {
                    "prompt_tokens": message.prompt_tokens,
                    "completion_tokens": message.completion_tokens,
                    "model": message.model,
                },
            },
        )


def _save_answer(chat, parts, outcome, usage, llm, passages, hits) -> Message:
    content = "".join(parts)
    supplied = {p.number: (p, h) for p, h in zip(passages, hits, strict=True)}
    with transaction.atomic():
        message = Message.objects.create(
            chat=chat,
            role=Message.Role.ASSISTANT,
            content=content,
            status=outcome["status"],
            error=outcome["error"],
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            model=(usage.model if usage else getattr(llm, "model", "")) if passages else "",
        )
        # Keep only citations to passages that were actually supplied.
        Citation.objects.bulk_create(
            [
                Citation(
                    message=message,
                    chunk_id=hit.chunk_id,
                    document_id=hit.document_id,
                    document_name=passage.document,
                    first_page=hit.first_page,
                    last_page=hit.last_page,
                    section=passage.section,
                    quote=hit.content,
                    number=number,
                    rank=number,
                    score=hit.score,
                )
                for number in cited_numbers(content)
                if number in supplied
                for passage, hit in [supplied[number]]
            ]
        )
        Chat.objects.filter(pk=chat.pk).update(updated_at=timezone.now())
    return message


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
