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


def unmatched(question: str, passages: list[Passage], candidates: list) -> str:
    """`passages` best first; `candidates` the sentences extractive_answer cut of them."""
    from chats.answering import extractive as ex

    if not in_another_language(question):
        return ex.NOT_COVERED
    procedures = ex._procedures(passages[:1], lambda terms: 1.0)
    if procedures:
        return ex._procedure_answer(procedures[0])
    best = [c for c in candidates if c.passage_rank == 0][: ex.MAX_SENTENCES]
    return LEAD_IN + "\n\n" + "\n".join(f"- {ex._quoted(c.text)} [{c.number}]" for c in best)
