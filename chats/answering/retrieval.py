"""The passages an answer is written from: search, the guard that keeps only passages
addressing the question, and the neighbouring chunks of their section."""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence

from django.conf import settings
from django.db import connection

from chats.answering.extractive import (
    content_terms,
    earlier_turns,
    is_follow_up,
    is_procedure_question,
    question_parts,
)
from chats.answering.types import Passage, Turn
from documents.embeddings import get_provider
from documents.models import Document
from documents.neighbours import neighbourhoods
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
    from documents.languages import foreign_language

    provider = get_provider()
    same = provider.answer_min_score
    if settings.ANSWER_MIN_SCORE is not None:
        same = settings.ANSWER_MIN_SCORE
    cross = provider.cross_lingual_min_score
    if cross is None or not question:
        return same
    return same if foreign_language(question) is None else cross


# --- What the library does not know --------------------------------------------------------

# A word below this on wordfreq's Zipf scale (in the question's language and in the
# library's) that no readable passage holds names something the library never mentions
# ("Patroni", "mokutil", "ufw", "pgBackRest"); ordinary words a manual may not use
# ("budget", "leftover", "colleague") are far above it. Chosen on bench/eval's tune split.
RARE_ZIPF = 2.5
_NAME_SHAPE = re.compile(r"[a-z][A-Z]|\d|_")  # "PgBouncer", "postgres_exporter", "v4l2"


def unknown_names(*, user, question: str) -> list[str]:
    """The words of a question that name something no readable passage mentions: rare in
    the question's language and the library's, and nowhere in the library's text as a
    word ("pg_repack", "aptly", though "apt" is everywhere), nor hyphenated or one letter
    apart ("feed-through", "feedtrough" for "feedthrough"). In a question written in
    another language only name-shaped words count (its ordinary words are not the
    library's anyway). A question mostly of such words is in no language the word lists
    know: none then."""
    from documents.languages import question_language, word_zipf

    own = settings.SEARCH_TEXT_CONFIG
    language = question_language(question)
    words = [w for w in _WORDS_OF.findall(question) if len(w) > 3]
    rare = []
    for match in _WORDS_OF.finditer(question):
        word = match.group()
        if question[match.end() : match.end() + 1] in ("'", "’") or word.isdigit():
            continue  # "shouldn't", "443"
        if language != own and not _NAME_SHAPE.search(word):
            continue
        if max(word_zipf(word, language), word_zipf(word, own)) < RARE_ZIPF:
            rare.append(word)
    if not rare:
        return []
    docs = _readable_ids(user)
    params = {"docs": docs}
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT w FROM unnest(%(words)s::text[]) AS w
            WHERE EXISTS (
                SELECT 1 FROM documents_chunk c
                WHERE c.document_id = ANY(%(docs)s)
                  AND c.content ~* ('\\m' || w || '\\M'))""",
            {**params, "words": sorted({w.lower() for w in rare})},
        )
        mentioned = {w for (w,) in cursor.fetchall()}
    rare = [w for w in rare if w.lower() not in mentioned]
    if not rare or len(rare) * 2 > len(words):
        return []
    joined = _joined_in_library(docs, rare)
    return [word for word in rare if word not in joined]


# Words as a name is written: "pg_repack" whole (its parts are common), "Wi-Fi" in two.
_WORDS_OF = re.compile(r"\w+", re.UNICODE)


# A word this long one letter from a library's word is that word mistyped; a shorter one
# may be another word ("Patroni", "patron").
TYPO_MIN_LETTERS = 9


def _readable_ids(user) -> list[int]:
    """The ids of the ready documents the user may read (the same rule as search)."""
    return list(Document.objects.readable_by(user).ready().values_list("pk", flat=True))


def _joined_in_library(docs: list[int], words: list[str]) -> set[str]:
    """Those of words that the library's documents `docs` write hyphenated
    ("feed-through") or one letter apart ("feedtrough", a manual's typo): the same word,
    not an unknown name."""
    splits = {f"{w[:i]}-{w[i:]}": w for w in words for i in range(2, len(w) - 1)}
    params = {"docs": docs}
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT c FROM unnest(%(candidates)s::text[]) AS c
            WHERE EXISTS (
                SELECT 1 FROM documents_documentterm dt
                WHERE dt.term = ANY(tsvector_to_array(to_tsvector(%(config)s::regconfig, c)))
                  AND dt.term LIKE '%%-%%' AND dt.document_id = ANY(%(docs)s))""",
            {**params, "candidates": list(splits), "config": settings.SEARCH_TEXT_CONFIG},
        )
        found = {splits[c] for (c,) in cursor.fetchall()}
        cursor.execute(
            """SELECT DISTINCT dt.term FROM documents_documentterm dt
            WHERE left(dt.term, 3) = ANY(%(prefixes)s)
              AND dt.document_id = ANY(%(docs)s)""",
            {**params, "prefixes": sorted({w[:3].lower() for w in words})},
        )
        terms = [t for (t,) in cursor.fetchall()]
    for word in words:
        lower = word.lower()
        if len(lower) >= TYPO_MIN_LETTERS and any(
            _one_edit(lower, t) for t in terms if t[:3] == lower[:3]
        ):
            found.add(word)
    return found


def _one_edit(a: str, b: str) -> bool:
    """Whether b is a with one letter left out, added or changed (or a prefix of it that
    is a stem: "feedtrough" for "feedthroughs")."""
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) <= 1
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


# --- How far the best passage stands out ----------------------------------------------------

# The question's background: its cosines to the passages at vector ranks BACKGROUND_FROM
# to BACKGROUND_DEPTH (what "about the same library" scores); a passage's z is how many
# spreads above their mean it is. Fewer than BACKGROUND_MIN such passages (a small
# library): no background, the absolute thresholds decide.
BACKGROUND_FROM = 10
BACKGROUND_DEPTH = 60
BACKGROUND_MIN = 10
# A question in another language than the library's (no words in common, so coverage
# says nothing) keeps a passage that stands out this far, or reaches the model's
# cross-lingual threshold. Chosen on bench/eval's tune split (bench/README.md).
CROSS_LINGUAL_MIN_Z = 4.0


def background(*, user, query: str) -> tuple[float, float] | None:
    """(mean, spread) of the question's cosines to the library beyond its nearest
    passages, or None when the library is too small to have one."""
    hits = search(user=user, query=query, k=BACKGROUND_DEPTH, mode="vector").hits
    tail = [h.vector_score for h in hits[BACKGROUND_FROM - 1 :] if h.vector_score is not None]
    if len(tail) < BACKGROUND_MIN:
        return None
    return statistics.fmean(tail), statistics.pstdev(tail) or 1e-6


def is_relevant(hit, min_score: float | None = None) -> bool:
    """A passage addresses the question when it holds most of the question's terms (idf
    weighted, so a word every manual uses counts little) or means nearly the same by the
    model's similarity (which is what lets a Dutch question over an English manual in,
    having no words in common with it)."""
    min_score = answer_min_score() if min_score is None else min_score
    return (hit.coverage or 0.0) >= settings.ANSWER_MIN_COVERAGE or (
        hit.vector_score or 0.0
    ) >= min_score


def guard(*, user, question: str, query: str, hits: list) -> list:
    """The hits that address the question. None when it names something the library never
    mentions (unknown_names). Else a hit holding most of its terms (coverage) or as
    similar as the model's threshold (is_relevant); for a question in another language
    than the library's, also one that stands out from the question's background over
    the library by CROSS_LINGUAL_MIN_Z (a cosine means something else for every question
    and model: relative to its own background it does not)."""
    from documents.languages import foreign_language

    if not hits or unknown_names(user=user, question=question):
        return []
    min_score = answer_min_score(question)
    relevant = [h for h in hits if is_relevant(h, min_score) or _answers_a_part(h, question)]
    if foreign_language(question) is None:
        return relevant
    spread = background(user=user, query=query)
    if spread is None:
        return relevant
    mean, sd = spread
    return [
        h
        for h in hits
        if h in relevant or ((h.vector_score or 0.0) - mean) / sd >= CROSS_LINGUAL_MIN_Z
    ]


def _answers_a_part(hit, question: str) -> bool:
    """For a question that asks several things ("What torque do the rail bolts need, and
    how often should the drive belt be replaced?"), a passage that holds every content
    word of one part (at least two): each part's passage holds only half the question's
    words, so neither coverage nor a similarity to the whole question vouches for it."""
    parts = question_parts(question)
    if len(parts) < 2:
        return False
    held = content_terms(hit.content)
    return any(len(terms) >= 2 and terms <= held for terms in map(content_terms, parts))


def retrieve(*, user, question: str, history: Sequence[Turn] = ()) -> tuple[list[Passage], list]:
    """The numbered passages for the prompt, and the search hits behind them. Only hits
    that address the question are kept (is_relevant): none means "not covered", and
    the model is not called. A follow-up is searched with the turn before it
    (search_query), with a model or without."""
    query = search_query(question, history)
    hits = search(user=user, query=query, k=settings.ANSWER_PASSAGES).hits
    relevant = guard(user=user, question=question, query=query, hits=hits)
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
