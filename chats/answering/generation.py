"""Writing one answer: history -> retrieval -> model stream -> events -> the saved message.

answer_events() is the whole of it, as a generator of (event name, data) pairs; whoever
runs it (the worker's runner, or the request when answers do not go through the
worker) turns the pairs into Server-Sent Events. It never looks at how the events
travel: the runner hands it the stop check.

Events (one JSON object each):
  citations  {"passages": [{number, document, document_id, chunk_id, pages, location,
              first_page, section, snippet}]}  (location: "p. 3", or "§ Setup" for a
              document without pages)
  token      {"text": "..."}
  done       {"message_id", "status", "html", "usage": {prompt_tokens, completion_tokens,
              model}}
  error      {"message": "...", "message_id"}  (a partial answer is saved with status partial)

The assistant's message is saved in one place, answer_save(), whatever happens:
complete, partial (stopped, disconnected or failed mid-stream) or error.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from chats.answering.extractive import NOT_COVERED
from chats.answering.llm import get_llm
from chats.answering.prompts import cited_numbers, prune_history
from chats.answering.retrieval import retrieve
from chats.answering.types import (
    LLMError,
    LLMProvider,
    Passage,
    Token,
    TransientLLMError,
    Turn,
    Usage,
    count_tokens,
)
from chats.models import Chat, Citation, Message
from chats.rendering import render_answer
from documents.models import Chunk, Document
from rra import telemetry

logger = logging.getLogger(__name__)

STOPPED = "Stopped."


def release_db_connection() -> None:
    """Give the pooled connection back before waiting on the model: a slow answer must not
    hold one of the pool's few connections (not inside a transaction, e.g. in tests)."""
    if not connection.in_atomic_block:
        connection.close()


def _history(chat: Chat, *, before: Message | None) -> list[Turn]:
    messages = chat.messages.exclude(status=Message.Status.ERROR)
    if before is not None:
        messages = messages.filter(created_at__lt=before.created_at)
    turns = [Turn(role=m.role, content=m.content) for m in messages.only("role", "content")]
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


def _never() -> bool:
    return False


def answer_events(
    *,
    chat: Chat,
    user,
    question: str,
    user_message: Message,
    stopped: Callable[[], bool] = _never,
) -> Iterator[tuple[str, dict]]:
    """The events of one answer to user_message, as (name, data); the assistant's message
    is saved before the last event whatever happens. Closing the iterator early saves a
    partial answer. stopped() (the chat's stop flag) is asked after each token (the
    worker's answers it from the flag read with their last write of text)."""
    history = _history(chat, before=user_message)
    llm = get_llm()
    parts: list[str] = []
    usage: Usage | None = None
    outcome = {"status": Message.Status.ERROR, "error": ""}
    passages: list[Passage] = []
    hits: list = []
    try:
        passages, hits = retrieve(user=user, question=question, history=history)
        release_db_connection()
        yield ("citations", {"passages": _citation_list(passages, hits)})
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
                if stopped():
                    outcome["error"] = STOPPED
                    break
        outcome["status"] = Message.Status.PARTIAL if outcome["error"] else Message.Status.COMPLETE
    except LLMError as exc:
        outcome["status"] = Message.Status.PARTIAL if parts else Message.Status.ERROR
        outcome["error"] = exc.message
    except GeneratorExit:
        # The reader went away: stop generating, keep what was said.
        outcome["status"] = Message.Status.PARTIAL
        outcome["error"] = "The connection closed before the answer was complete."
        answer_save(
            chat=chat, parts=parts, outcome=outcome, usage=usage, llm=llm, cited=(passages, hits)
        )
        raise
    except Exception:
        logger.exception("answer failed for chat %s", chat.pk)
        outcome["status"] = Message.Status.PARTIAL if parts else Message.Status.ERROR
        outcome["error"] = "Something went wrong while answering. Please try again."
    message = answer_save(
        chat=chat, parts=parts, outcome=outcome, usage=usage, llm=llm, cited=(passages, hits)
    )
    if outcome["status"] == Message.Status.ERROR or (
        outcome["status"] == Message.Status.PARTIAL and outcome["error"] != STOPPED
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


def _citation_list(passages: list[Passage], hits: list) -> list[dict]:
    return [
        {
            "number": p.number,
            "document": p.document,
            "document_id": h.document_id,
            "chunk_id": h.chunk_id,
            "pages": p.pages,
            "location": h.location,
            "first_page": h.first_page,
            "section": p.section,
            "snippet": h.snippet,
        }
        for p, h in zip(passages, hits, strict=True)
    ]


def _still_there(hits) -> tuple[set[int], set[int]]:
    """The cited documents and chunks that still exist, locked until the answer commits:
    a document deleted or processed again while the answer was being written waits for
    it, or is already gone and cited as a removed source, instead of failing the
    answer's commit on a foreign key. FOR KEY SHARE, the lock a foreign key's check
    takes: a delete or a reprocess (FOR UPDATE) waits for it, another answer citing the
    same rows does not (FOR NO KEY UPDATE conflicted with itself: 200 answers citing one
    manual saved one after another, 200-255 ms each at the end of a burst)."""
    hits = list(hits)
    documents = _key_share(Document, {h.document_id for h in hits if h.document_id})
    chunks = _key_share(Chunk, {h.chunk_id for h in hits if h.chunk_id})
    return documents, chunks


def _key_share(model, ids: set[int]) -> set[int]:
    """Which of the rows `ids` of `model` exist, locked FOR KEY SHARE (in id order)."""
    if not ids:
        return set()
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {table} WHERE id = ANY(%s) ORDER BY id FOR KEY SHARE",  # noqa: S608
            [sorted(ids)],
        )
        return {row[0] for row in cursor.fetchall()}


def _citation(message, passage, hit, *, documents: set[int], chunks: set[int]) -> Citation:
    """A citation of the passage; one whose document is gone keeps its number and name
    but not its text, one whose passage was replaced keeps its document and text; both
    are marked source_removed."""
    document_id = hit.document_id if hit.document_id in documents else None
    chunk_id = hit.chunk_id if hit.chunk_id in chunks else None
    removed = (hit.document_id is not None and document_id is None) or (
        hit.chunk_id is not None and chunk_id is None
    )
    return Citation(
        message=message,
        chunk_id=chunk_id,
        document_id=document_id,
        document_name=passage.document,
        first_page=hit.first_page,
        last_page=hit.last_page,
        section=passage.section,
        paged=hit.paged,
        quote=hit.content if document_id is not None or hit.document_id is None else "",
        source_removed=removed,
        number=passage.number,
        rank=passage.number,
        score=hit.score,
    )


def answer_save(
    *,
    chat: Chat,
    parts: list[str],
    outcome: dict,
    usage: Usage | None,
    llm: LLMProvider,
    cited: tuple[list[Passage], list],
) -> Message:
    """The assistant's message with the citations of the passages it cites (only those
    that were supplied), and the chat's updated_at: the one place an answer is saved."""
    passages, hits = cited
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
        chosen = [supplied[n] for n in cited_numbers(content) if n in supplied]
        documents, chunks = _still_there(hit for _, hit in chosen)
        Citation.objects.bulk_create(
            [
                _citation(message, passage, hit, documents=documents, chunks=chunks)
                for passage, hit in chosen
            ]
        )
        Chat.objects.filter(pk=chat.pk).update(updated_at=timezone.now())
    return message
