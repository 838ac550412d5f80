"""The offline answer when the question's words match no passage's: a question in another
language than the library's, which the guard kept passages for by the embedding model's
cross-lingual similarity, gets the best passage as it is; any other question a decline.

Without a model to translate, words cannot pick sentences across languages the way
chats/answering/extractive.py does: the best passage speaks for itself, its procedure as
numbered steps, else its first sentences, in the library's language and said to be so."""

from __future__ import annotations

import math

from chats.answering.terms import in_another_language
from chats.answering.types import Passage

LEAD_IN = "The passage closest to your question, in the manual's language:"


FOREIGN_WORDS = 120  # of the closest passage, quoted from its start


def unmatched(question: str, passages: list[Passage], candidates: list) -> str:
    """The closest passage is the search's best (the first numbered: both legs agree
    more often than the model's cosine alone does): its procedure as numbered steps for
    a "how do I" question, else its sentences from the start up to FOREIGN_WORDS words
    with the tables and commands they introduce. `candidates` is unused (kept for the
    callers)."""
    from chats.answering import extractive as ex
    from chats.answering.units import Candidate, expand, paragraphs, render

    if not in_another_language(question) or not passages:
        return ex.NOT_COVERED
    best = min(passages, key=lambda p: p.number)
    if ex.is_procedure_question(question):
        procedures = ex._procedures([best], lambda terms: 1.0)
        if procedures:  # said to be the closest passage's too: it may not be the one asked for
            return "\n\n".join([LEAD_IN, ex._procedure_answer(procedures[0])])
    chosen, candidates = _closest_sentences(question, passages)
    if chosen:
        read = {p.number: (p.number, p.text) for p in passages}
        chosen += paragraphs(chosen, candidates)  # a sentence's paragraph comes with it
        chosen += expand(chosen, read, lambda terms: 1.0)
        chosen.sort(key=lambda c: (c.passage_rank, c.position))
        return "\n\n".join([LEAD_IN, *render(chosen)])
    chosen, words = [], 0
    for sentence, start, line, ends_line in ex._sentences_of(best):
        if words and words + len(sentence.split()) > FOREIGN_WORDS:
            break
        words += len(sentence.split())
        chosen.append(
            Candidate(0, start, best.number, sentence, set(), line=line, ends_line=ends_line)
        )
    if not chosen:
        return ex.NOT_COVERED
    chosen += expand(chosen, {0: (best.number, best.text)}, lambda terms: 1.0)
    chosen.sort(key=lambda c: c.position)
    return "\n\n".join([LEAD_IN, *render(chosen)])


FOREIGN_SENTENCES = 4  # the sentences closest in meaning, of the best passages
FOREIGN_PASSAGES = 4


def _closest_sentences(question: str, passages: list[Passage]) -> tuple[list, list]:
    """With a multilingual embedding model (one whose cross-lingual threshold is set: e5),
    the FOREIGN_SENTENCES sentences of the search's best FOREIGN_PASSAGES passages that
    the model finds closest to the question, across languages: the fact a Dutch question
    asks for is often not in the first 120 words of the best passage, or in another one.
    Returns them and every sentence read; none without such a model (or when it fails):
    the caller quotes the best passage."""
    from chats.answering import extractive as ex
    from chats.answering.units import Candidate
    from documents.embeddings import EmbeddingError, get_provider

    provider = get_provider()
    if provider.cross_lingual_min_score is None:
        return [], []
    candidates = []
    seen = set()
    for passage in sorted(passages, key=lambda p: p.number)[:FOREIGN_PASSAGES]:
        for sentence, start, line, ends_line in ex._sentences_of(passage):
            if sentence.lower() in seen:
                continue
            seen.add(sentence.lower())
            candidates.append(
                Candidate(
                    passage.number,
                    start,
                    passage.number,
                    sentence,
                    set(),
                    line=line,
                    ends_line=ends_line,
                )
            )
    if not candidates:
        return [], []
    try:
        query = provider.embed_query(question)
        vectors = provider.embed_documents([c.text for c in candidates])
    except EmbeddingError:
        return [], []
    q = math.sqrt(sum(a * a for a in query)) or 1.0
    for candidate, vector in zip(candidates, vectors, strict=True):
        dot = sum(a * b for a, b in zip(query, vector, strict=True))
        candidate.score = dot / (q * (math.sqrt(sum(b * b for b in vector)) or 1.0))
    return sorted(candidates, key=lambda c: -c.score)[:FOREIGN_SENTENCES], candidates
