"""The passages an answer is written from: search, the guard that keeps only passages
addressing the question, and the neighbouring chunks of their section."""

from __future__ import annotations

from django.conf import settings
from django.db.models import Q

from chats.answering.types import Passage


def answer_min_score(question: str = "") -> float:
    """The guard's cosine threshold for this question. ANSWER_MIN_SCORE, or when unset the
    embedding model's own calibrated one (each model spreads its similarities
    differently). A question in another language than the library's shares no words with
    its passages, so coverage cannot vouch for them: it gets the model's cross-lingual
    threshold (documents.languages tells the language)."""
    from documents.embeddings import get_provider
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


def with_neighbours(hits: list, span: int) -> dict[int, str]:
    """chunk id -> the hit's text with up to `span` chunks before and after it from the
    same document and section (its parent), in reading order. Chunks that are hits
    themselves are not repeated in another hit's text."""
    texts = {h.chunk_id: h.content for h in hits}
    if span < 1 or not hits:
        return texts
    from documents.models import Chunk

    own = {
        c["id"]: c
        for c in Chunk.objects.filter(id__in=texts).values("id", "document_id", "index", "section")
    }
    wanted = Q()
    for c in own.values():
        wanted |= Q(
            document_id=c["document_id"],
            section=c["section"],
            index__range=(c["index"] - span, c["index"] + span),
        )
    around: dict[tuple[int, int], str] = {
        (n["document_id"], n["index"]): _body(n["content"], n["section"])
        for n in Chunk.objects.filter(wanted)
        .exclude(id__in=texts)
        .values("document_id", "index", "content", "section")
    }
    for hit in hits:
        c = own.get(hit.chunk_id)
        if c is None:
            continue
        key = c["document_id"]
        before = [around.get((key, c["index"] - d)) for d in range(span, 0, -1)]
        after = [around.get((key, c["index"] + d)) for d in range(1, span + 1)]
        body = _body(hit.content, c["section"])
        parts = [p for p in (*before, body, *after) if p]
        head = f"{c['section']}\n" if c["section"] and hit.content.startswith(c["section"]) else ""
        texts[hit.chunk_id] = head + "\n".join(parts)
    return texts


def retrieve(*, user, question: str) -> tuple[list[Passage], list]:
    """The numbered passages for the prompt, and the search hits behind them. Only hits
    that address the question are kept (is_relevant): none means "not covered", and
    the model is not called."""
    from documents.search import search

    hits = search(user=user, query=question, k=settings.ANSWER_PASSAGES).hits
    min_score = answer_min_score(question)
    relevant = [h for h in hits if is_relevant(h, min_score)]
    texts = with_neighbours(relevant, settings.ANSWER_CONTEXT_CHUNKS)
    passages = [
        Passage(
            number=i,
            text=texts[h.chunk_id],
            document=h.document_name,
            pages=h.pages,
            section=h.section,
            score=h.vector_score or 0.0,
        )
        for i, h in enumerate(relevant, 1)
    ]
    return passages, relevant
