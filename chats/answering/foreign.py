"""The offline answer when the question's words match no passage's: a question in another
language than the library's, which the guard kept passages for by the embedding model's
cross-lingual similarity, gets the best passage as it is; any other question a decline.

Without a model to translate, words cannot pick sentences across languages the way
chats/answering/extractive.py does: the best passage speaks for itself, its procedure as
numbered steps, else its first sentences, in the library's language and said to be so."""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict

from chats.answering.terms import in_another_language
from chats.answering.types import Passage

LEAD_IN = "The passage closest to your question, in the manual's language:"
STEPS_LEAD_IN = "The steps closest to your question, in the manual's language"


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
        if procedures:  # said to be the closest passage's: it may not be the one asked for
            return ex._procedure_answer(procedures[0], STEPS_LEAD_IN)
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
# At most this many sentences are embedded for one question (the passages in the search's
# order, each's in reading order): a sentence costs the model about as much as a short
# passage, on the answering worker's CPU. The library's Dutch/German tune questions read
# 85 sentences (median; p90 144, max 229), the fact's at most the 79th: 40 taken in turn
# lost one ("/etc/hosts.allow", the 4th passage's 11th).
FOREIGN_MAX_SENTENCES = 96
FRAGMENT_MAX_WORDS = 8
# A PDF's footnote at a line's start ("1 This is normally fast as ..."): its number, a
# space and a capitalised word (a step is "1." or "1)").
_FOOTNOTE = re.compile(r"^\d{1,2}\s+[A-Z][a-z]")
_CACHE_SIZE = 4096  # sentence vectors kept per process (model, text): popular sections


def _quotable(text: str, sentence: str, start: int) -> bool:
    """Whether a sentence may open a quote: not a footnote at its line's start, and not
    the short end of a sentence cut by a page break ("missing and cannot be converted.1":
    a line of its own, in lower case, of fewer than FRAGMENT_MAX_WORDS words)."""
    at_line_start = start == 0 or text[:start].rstrip(" \t").endswith("\n")
    if not at_line_start:
        return True
    if _FOOTNOTE.match(sentence):
        return False
    if not (sentence[:1].islower() and len(sentence.split()) < FRAGMENT_MAX_WORDS):
        return True
    line_end = text.find("\n", start)
    whole_line = " ".join(text[start : len(text) if line_end < 0 else line_end].split())
    return not (whole_line == sentence and _SENTENCE_END.search(sentence))


_SENTENCE_END = re.compile(r"[.!?]\d?$")  # "converted.1": a footnote's mark after it


_vectors: OrderedDict[tuple[str, str], list[float]] = OrderedDict()
_vectors_lock = threading.Lock()


def _sentence_vectors(provider, texts: list[str]) -> list[list[float]]:
    """The model's vectors of the sentences, those embedded before (by this process, for
    an earlier question over the same passages) taken from a bounded cache."""
    keys = [(provider.model_id, t) for t in texts]
    with _vectors_lock:
        known = {k: _vectors[k] for k in keys if k in _vectors}
        for k in known:
            _vectors.move_to_end(k)
    missing = list(dict.fromkeys(k for k in keys if k not in known))
    if missing:
        fresh = provider.embed_documents([t for _, t in missing])
        with _vectors_lock:
            for k, vector in zip(missing, fresh, strict=True):
                known[k] = _vectors[k] = vector
            while len(_vectors) > _CACHE_SIZE:
                _vectors.popitem(last=False)
    return [known[k] for k in keys]


def _closest_sentences(question: str, passages: list[Passage]) -> tuple[list, list]:
    """With a multilingual embedding model (one whose cross-lingual threshold is set: e5),
    the FOREIGN_SENTENCES sentences of the search's best FOREIGN_PASSAGES passages that
    the model finds closest to the question, across languages: the fact a Dutch question
    asks for is often not in the first 120 words of the best passage, or in another one.
    Footnotes and page-break fragments are not candidates; at most FOREIGN_MAX_SENTENCES
    are embedded. Returns them and every sentence read; none without such a model (or
    when it fails): the caller quotes the best passage."""
    from chats.answering import extractive as ex
    from chats.answering.units import Candidate
    from documents.embeddings import EmbeddingError, get_provider

    provider = get_provider()
    if provider.cross_lingual_min_score is None:
        return [], []
    every, per_passage = [], []
    seen = set()
    for passage in sorted(passages, key=lambda p: p.number)[:FOREIGN_PASSAGES]:
        own = []
        for sentence, start, line, ends_line in ex._sentences_of(passage):
            if sentence.lower() in seen:
                continue
            seen.add(sentence.lower())
            candidate = Candidate(
                passage.number,
                start,
                passage.number,
                sentence,
                set(),
                line=line,
                ends_line=ends_line,
            )
            every.append(candidate)
            if _quotable(passage.text, sentence, start):
                own.append(candidate)
        per_passage.append(own)
    candidates = [c for own in per_passage for c in own][:FOREIGN_MAX_SENTENCES]
    if not candidates:
        return [], []
    try:
        query = provider.embed_query(question)
        vectors = _sentence_vectors(provider, [c.text for c in candidates])
    except EmbeddingError:
        return [], []
    q = math.sqrt(sum(a * a for a in query)) or 1.0
    for candidate, vector in zip(candidates, vectors, strict=True):
        dot = sum(a * b for a, b in zip(query, vector, strict=True))
        candidate.score = dot / (q * (math.sqrt(sum(b * b for b in vector)) or 1.0))
    return sorted(candidates, key=lambda c: -c.score)[:FOREIGN_SENTENCES], every
