"""The passages an answer is written from: search, the guard that keeps only passages
addressing the question, and the neighbouring chunks of their section."""

from __future__ import annotations

import re
from collections.abc import Sequence

from django.conf import settings
from django.db.models import Q

from chats.answering.extractive import earlier_turns, is_follow_up, is_procedure_question
from chats.answering.types import Passage, Turn
from documents.embeddings import get_provider
from documents.models import Chunk
from documents.search import search

_CITATIONS = re.compile(r"\[\d{1,3}(?:\s*,\s*\d{1,3})*\]")
EARLIER_ANSWER_WORDS = 30  # of the previous answer, what the search also reads


def search_query(question: str, history: Sequence[Turn] = ()) -> str:
    """What retrieval searches for. A follow-up is searched together with the question
    before it and the start of its answer (the question first, so a length cut takes
    the conversation's words, not the user's); any other question as it is."""
    if not history or not is_follow_up(question):
        return question
    before, answer = earlier_turns(history)
    if not before:
        return question
    answer = " ".join(_CITATIONS.sub(" ", answer).split()[:EARLIER_ANSWER_WORDS])
    return " ".join(part for part in (question, before, answer) if part)


def answer_min_score(question: str = "") -> float:
    """The guard's cosine threshold for this question. ANSWER_MIN_SCORE, or when unset the
    embedding model's own calibrated one (each model spreads its similarities
    differently). A question in another language than the library's shares no words with
    its passages, so coverage cannot vouch for them: it gets the model's cross-lingual
    threshold (documents.languages tells the language)."""
    from documents.languages import question_language

    provider = get_provider()
    same = provider.answer_min_score
    if settings.ANSWER_MIN_SCORE is not None:
        same = settings.ANSWER_MIN_SCORE
    cross = provider.cross_lingual_min_score
    if cross is None or not question:
        return same
    if question_language(question) == settings.SEARCH_TEXT_CONFIG:
        return same
    return cross


def is_relevant(hit, min_score: float | None = None) -> bool:
    """A passage addresses the question when it holds most of the question's terms (idf
    weighted, so a word every manual uses counts little) or means nearly the same by the
    model's similarity (which is what lets a Dutch question over an English manual in,
    having no words in common with it)."""
    min_score = answer_min_score() if min_score is None else min_score
    return (hit.coverage or 0.0) >= settings.ANSWER_MIN_COVERAGE or (
        hit.vector_score or 0.0
    ) >= min_score


def _body(content: str, section: str) -> str:
    """A chunk's text without the section line it starts with."""
    if section and content.startswith(section):
        return content[len(section) :].lstrip("\n")
    return content


def neighbourhoods(hits: list, span: int) -> dict[int, tuple[str, list[tuple[int, str]]]]:
    """chunk id -> (the section line its content starts with, or "", and [(chunk index,
    text without the section line)] of the hit's chunk with up to `span` chunks before
    and after it from the same document and section (its parent), in reading order).
    Chunks that are hits themselves are not repeated in another hit's neighbourhood."""
    if not hits:
        return {}
    own = {
        c["id"]: c
        for c in Chunk.objects.filter(id__in=[h.chunk_id for h in hits]).values(
            "id", "document_id", "index", "section"
        )
    }
    around: dict[tuple[int, int], str] = {}
    if span >= 1 and own:
        wanted = Q()
        for c in own.values():
            wanted |= Q(
                document_id=c["document_id"],
                section=c["section"],
                index__range=(c["index"] - span, c["index"] + span),
            )
        around = {
            (n["document_id"], n["index"]): _body(n["content"], n["section"])
            for n in Chunk.objects.filter(wanted)
            .exclude(id__in=own)
            .values("document_id", "index", "content", "section")
        }
    found = {}
    for hit in hits:
        c = own.get(hit.chunk_id)
        if c is None:
            continue
        key, index = c["document_id"], c["index"]
        pieces = [
            (i, around[(key, i)])
            for i in range(index - span, index + span + 1)
            if i != index and (key, i) in around
        ]
        pieces.append((index, _body(hit.content, c["section"])))
        head = c["section"] if c["section"] and hit.content.startswith(c["section"]) else ""
        found[hit.chunk_id] = (head, sorted(pieces))
    return found


def with_neighbours(hits: list, span: int) -> dict[int, str]:
    """chunk id -> the hit's text with its neighbourhood (neighbourhoods()), the section
    line first as in a chunk's content."""
    texts = {h.chunk_id: h.content for h in hits}
    if span < 1:
        return texts
    for chunk_id, (head, pieces) in neighbourhoods(hits, span).items():
        body = "\n".join(text for _, text in pieces if text)
        texts[chunk_id] = f"{head}\n{body}" if head else body
    return texts


def retrieve(*, user, question: str, history: Sequence[Turn] = ()) -> tuple[list[Passage], list]:
    """The numbered passages for the prompt, and the search hits behind them. Only hits
    that address the question are kept (is_relevant): none means "not covered", and
    the model is not called. A follow-up is searched with the turn before it
    (search_query), with a model or without."""
    query = search_query(question, history)
    hits = search(user=user, query=query, k=settings.ANSWER_PASSAGES).hits
    min_score = answer_min_score(question)
    relevant = [h for h in hits if is_relevant(h, min_score)]
    span = (
        max(settings.ANSWER_PROCEDURE_CHUNKS, settings.ANSWER_CONTEXT_CHUNKS)
        if is_procedure_question(question)
        else settings.ANSWER_CONTEXT_CHUNKS
    )
    around = neighbourhoods(relevant, span)
    passages = []
    for i, h in enumerate(relevant, 1):
        head, pieces = around.get(h.chunk_id, ("", []))
        body = "\n".join(text for _, text in pieces if text)
        passages.append(
            Passage(
                number=i,
                text=(f"{head}\n{body}" if head else body) if pieces else h.content,
                document=h.document_name,
                pages=h.pages,
                section=h.section,
                score=h.vector_score or 0.0,
                document_id=h.document_id,
                chunks=tuple(pieces),
            )
        )
    return passages, relevant
