"""Answers without a model: the sentences of the best passages that share the most
content words with the question, each followed by its [n] citation, or a decline when
those sentences hold less than MIN_COVERAGE of its (rarity-weighted) terms. It never
writes a fact of its own."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from chats.answering.types import LLMProvider, Passage, Token, Turn, Usage, count_tokens
from documents.chunking import SECTION_SEPARATOR, sentence_spans

logger = logging.getLogger(__name__)


# --- Extractive: no model ------------------------------------------------------------------

EXTRACTIVE_MODEL = "extractive"
MAX_SENTENCES = 5
MAX_PASSAGES = 4  # only the best passages are read
MAX_SENTENCE_WORDS = 60  # longer sentences are quoted up to here, then "…"
MIN_SENTENCE_WORDS = 3
# A quoted line that ends with ":" ("If the laser value increases:") introduces what
# follows: up to this many of the next lines of its passage come with it.
MAX_CONTINUATION = 2
# Table-of-contents lines: a run of dot leaders.
_TOC_LINE = re.compile(r"\.{5,}|…{3,}")
# Symbol-font glyphs (Wingdings icons in PDFs: "( Image 5)") mean nothing as text.
_GLYPH = "[\ue000-\uf8ff]"
_PRIVATE_USE = re.compile(_GLYPH)
_GLYPH_IN_BRACKETS = re.compile(rf"\s*\(\s*{_GLYPH}+\s*\)")  # "button (<glyph>)"
RELATIVE_THRESHOLD = 0.4  # a sentence must score at least this share of the best one

# The quoted sentences together must hold at least this share of the question's content
# terms (weighted by rarity among the candidate sentences), else the answer declines.
MIN_COVERAGE = 0.4  # chosen on bench/eval's tune split (bench/README.md)

LEAD_IN = "Here is what the documents say:"
NOT_COVERED = (
    "The documents do not cover this. Try rephrasing the question, or upload a manual "
    "that covers it."
)

_STOP_WORDS_TEXT = """
    a about above after again against all also am an and any are as at be because been
    before being below between both but by can cannot could did do does doing done down
    during each either else ever every few for from further get gets got had has have
    having he her here hers herself him himself his how i if in into is it its itself
    just let like may me might more most must my myself need needs no nor not now of off
    often on once one only or other ought our ours ourselves out over own per please
    same shall she should so some such than that the their theirs them themselves then
    there these they this those through thus to too under until up upon us use used
    using very via was we were what when where whether which while who whom whose why
    will with within without would yes yet you your yours yourself yourselves
    anything something tell explain show describe know want way ways thing things
    mean means meaning happen happens find say says called
"""
_STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())
_WORD = re.compile(r"\w+", re.UNICODE)
_SPLIT_TOKENS = re.compile(r"\S+\s*|\s+")
_SUFFIXES = (
    ("ations", "at"),
    ("ation", "at"),
    ("ings", ""),
    ("ing", ""),
    ("ies", "y"),
    ("es", ""),
    ("ed", ""),
    ("s", ""),
)


def _stem(word: str) -> str:
    """A crude, deterministic stem, enough for "calibrate", "calibrated", "calibrating"
    and "calibration" (calibrat), "belt"/"belts" or "battery"/"batteries" to meet."""
    if not word.endswith("ss"):
        for suffix, replacement in _SUFFIXES:
            if word.endswith(suffix) and len(word) - len(suffix) >= 3:
                word = word[: -len(suffix)] + replacement
                break
    if word.endswith("e") and len(word) > 4:
        word = word[:-1]
    return word


def content_terms(text: str) -> set[str]:
    """Stems of the content words of text (lower case, stop words left out)."""
    terms = set()
    for word in _WORD.findall(text.lower()):
        if word in _STOP_WORDS or (len(word) < 2 and not word.isdigit()):
            continue
        terms.add(_stem(word))
    return terms


@dataclass
class _Candidate:
    passage_rank: int
    position: int
    number: int
    text: str
    terms: set[str]
    context: set[str] = field(default_factory=set)  # terms of the passage's section
    score: float = 0.0


def _sentences_of(passage: Passage) -> list[str]:
    """The passage's sentences and lines, whitespace collapsed; the section line that
    chunks start with and heading-like scraps of one or two words are left out."""
    sentences = []
    section = " ".join(passage.section.split())
    for start, end in sentence_spans(passage.text):
        sentence = _GLYPH_IN_BRACKETS.sub("", passage.text[start:end])
        sentence = " ".join(_PRIVATE_USE.sub(" ", sentence).split())
        sentence = sentence.replace("( ", "(").replace(" )", ")")
        if sentence == section or (SECTION_SEPARATOR.strip() in sentence and start == 0):
            continue
        sentence = re.sub(r"^(?:[-*•▪●]|#+)\s+", "", sentence)  # list marker or heading
        if len(sentence.split()) < MIN_SENTENCE_WORDS or _TOC_LINE.search(sentence):
            continue
        sentences.append(sentence)
    return sentences


_BRACKETED_NUMBERS = re.compile(r"\[([\d,\s]*\d[\d,\s]*)\]")


def _quoted(sentence: str) -> str:
    words = sentence.split(" ")
    if len(words) > MAX_SENTENCE_WORDS:
        sentence = " ".join(words[:MAX_SENTENCE_WORDS]) + " …"
    # A "[4]" of the document itself must not read as a citation: escaped for Markdown,
    # it still shows as [4].
    return _BRACKETED_NUMBERS.sub(r"\\[\1\\]", sentence)


def _continuations(chosen: list[_Candidate], candidates: list[_Candidate]) -> list[_Candidate]:
    """The lines that chosen lines ending with ":" introduce (the next ones of the same
    passage, up to MAX_CONTINUATION each, stopping after one that introduces again)."""
    at = {(c.passage_rank, c.position): c for c in candidates}
    taken = {id(c) for c in chosen}
    extra = []
    for line in chosen:
        if not line.text.endswith(":"):
            continue
        for step in range(1, MAX_CONTINUATION + 1):
            following = at.get((line.passage_rank, line.position + step))
            if following is None or id(following) in taken:
                break
            extra.append(following)
            taken.add(id(following))
            if following.text.endswith(":"):
                break
    return extra


def extractive_answer(question: str, passages: Sequence[Passage]) -> str:
    """The Markdown answer: a one-line lead-in, then up to MAX_SENTENCES sentences quoted
    from the best passages (and the lines that those ending with ":" introduce), each
    followed by [n] of its passage."""
    if not passages:
        return NOT_COVERED
    ranked = sorted(enumerate(passages), key=lambda item: (-item[1].score, item[0]))
    candidates: list[_Candidate] = []
    seen: set[str] = set()
    for rank, (_, passage) in enumerate(ranked[:MAX_PASSAGES]):
        context = content_terms(passage.section)
        for position, sentence in enumerate(_sentences_of(passage)):
            key = sentence.lower()
            if key in seen:  # overlapping chunks repeat sentences
                continue
            seen.add(key)
            candidates.append(
                _Candidate(
                    rank, position, passage.number, sentence, content_terms(sentence), context
                )
            )
    if not candidates:
        return NOT_COVERED

    question_terms = content_terms(question)
    if not question_terms:
        return NOT_COVERED
    # Rarer terms weigh more (inverse frequency over the candidate sentences; a term no
    # sentence holds weighs most, so missing it counts against the answer).
    total = len(candidates)
    weight = {
        term: math.log(1 + total / (sum(term in c.terms for c in candidates) + 0.5))
        for term in question_terms
    }
    for candidate in candidates:
        candidate.score = sum(weight[term] for term in question_terms & candidate.terms)
    best = max(c.score for c in candidates)
    if best <= 0:
        return NOT_COVERED
    chosen = sorted(
        (c for c in candidates if c.score >= best * RELATIVE_THRESHOLD),
        key=lambda c: (-c.score, c.passage_rank, c.position),
    )[:MAX_SENTENCES]
    # Decline unless the quoted sentences (with their sections' headings) address the
    # question: together they must hold most of its weight, not a word or two that every
    # passage shares.
    covered = set().union(*(c.terms | c.context for c in chosen)) & question_terms
    if sum(weight[t] for t in covered) < MIN_COVERAGE * sum(weight.values()):
        return NOT_COVERED
    chosen += _continuations(chosen, candidates)
    chosen.sort(key=lambda c: (c.passage_rank, c.position))  # reading order
    lines = [f"- {_quoted(c.text)} [{c.number}]" for c in chosen]
    return LEAD_IN + "\n\n" + "\n".join(lines)


class ExtractiveLLM(LLMProvider):
    """Answers without a model: quotes the passages' most relevant sentences, cited."""

    name = "extractive"
    model = EXTRACTIVE_MODEL

    def stream(
        self, *, question: str, passages: list[Passage], history: list[Turn]
    ) -> Iterator[Token | Usage]:
        answer = extractive_answer(question, passages)
        for piece in _SPLIT_TOKENS.findall(answer):  # word by word, like a model
            yield Token(piece)
        read = count_tokens(question) + sum(count_tokens(p.text) for p in passages)
        yield Usage(read, count_tokens(answer), EXTRACTIVE_MODEL)
