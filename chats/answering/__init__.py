"""Answering questions: everything between a question saved and its answer saved.

Modules, in the order a question meets them:

    service.py     the one path from a request to an answer's event stream (limit,
                   slot, saving the question, queueing it, reading its events), stop,
                   replay; the four API views that answer call answer_response()
    transport.py   how answers travel: per-user slots, readers' caps, Redis streams,
                   the stop flag, the one SSE encoder
    runner.py      the worker's side: AnswerRunner's threads take jobs and publish
                   each answer's events
    generation.py  writing one answer: history, retrieval, the model's stream, events,
                   and answer_save(), the one place an answer is saved
    retrieval.py   the passages: search, the relevance guard, neighbouring chunks
    llm.py         remote models (xAI, OpenAI-compatible) and get_llm()
    extractive.py  the answerer without a model
    foreign.py     its answer to a question in another language than the library's
    units.py       the units it quotes whole: tables, code and commands, paragraphs
    lines.py       the line-level reading both share: headings, commands, plain quotes
    prompts.py     the prompt, history pruning, [n] citations
    types.py       Passage, Turn, Token, Usage, LLMError, LLMProvider

Other code imports from here (this module), not from the modules.
"""

from __future__ import annotations

import threading

from django.conf import settings

from chats.answering import transport
from chats.answering.extractive import NOT_COVERED
from chats.answering.runner import AnswerRunner
from chats.answering.service import (
    answer_response,
    answer_stop,
    edit_last_prepare,
    events_replay,
    last_exchange,
    question_save,
    regenerate_prepare,
    running_answer,
    title_from,
)
from chats.answering.transport import sse

__all__ = [
    "NOT_COVERED",
    "answer_response",
    "answer_stop",
    "edit_last_prepare",
    "events_replay",
    "last_exchange",
    "question_save",
    "regenerate_prepare",
    "runner_start",
    "running_answer",
    "sse",
    "title_from",
]


def runner_start(*, stop: threading.Event) -> AnswerRunner | None:
    """The worker's answer threads (ANSWER_WORKER_THREADS), started, when answers go
    through the worker; None when they do not. runner.abandon() when the worker stops."""
    if not (transport.enabled() and settings.ANSWER_WORKER_THREADS):
        return None
    runner = AnswerRunner(threads=settings.ANSWER_WORKER_THREADS, stop=stop)
    runner.start()
    return runner
