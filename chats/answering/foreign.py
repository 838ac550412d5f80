"""The offline answer when the question's words match no passage's: a question in another
language than the library's, which the guard kept passages for by the embedding model's
cross-lingual similarity, gets the best passage as it is; any other question a decline.

Without a model to translate, words cannot pick sentences across languages the way
chats/answering/extractive.py does: the best passage speaks for itself, its procedure as
numbered steps, else its first sentences, in the library's language and said to be so."""

from __future__ import annotations

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
    from chats.answering.units import Candidate, expand, render

    if not in_another_language(question) or not passages:
        return ex.NOT_COVERED
    best = min(passages, key=lambda p: p.number)
    if ex.is_procedure_question(question):
        procedures = ex._procedures([best], lambda terms: 1.0)
        if procedures:  # said to be the closest passage's too: it may not be the one asked for
            return "\n\n".join([LEAD_IN, ex._procedure_answer(procedures[0])])
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
