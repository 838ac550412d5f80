"""Answers without a model: the sentences of the best passages that share the most
content words with the question, each followed by its [n] citation, or a decline when
those sentences hold less than MIN_COVERAGE of its (rarity-weighted) terms (of a
follow-up's own terms, or with the question before it). It never writes a fact of its own."""

from __future__ import annotations

import itertools
import logging
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from chats.answering.foreign import LEAD_IN as FOREIGN_LEAD_IN
from chats.answering.foreign import unmatched
from chats.answering.lines import (  # noqa: F401 (re-exported: units, tests)
    _BRACKETED_NUMBERS,
    _ELLIPSIS,
    _GLYPH,
    _GLYPH_IN_BRACKETS,
    _HEADING_MAX_WORDS,
    _INTRODUCES,
    _INTRODUCES_END,
    _LOG_LINE,
    _MD_IMAGE,
    _MD_LINK,
    _NUMBERED_TITLE,
    _PRIVATE_USE,
    _PROSE,
    _STEP,
    _TITLE_END,
    _TITLE_MAX_WORDS,
    MAX_COMMAND_WORDS,
    MAX_SENTENCE_WORDS,
    _clean_line,
    _code,
    _is_command,
    _is_heading,
    _is_title,
    _looks_like_command,
    _quoted,
    plain,
    unwrapped,
)
from chats.answering.terms import content_terms, shared_terms
from chats.answering.types import LLMProvider, Passage, Token, Turn, Usage, count_tokens
from chats.answering.units import ANSWER_WORDS, expand, paragraphs, render
from chats.answering.units import Candidate as _Candidate
from documents.chunking import SECTION_SEPARATOR, sentence_spans

logger = logging.getLogger(__name__)


# --- Extractive: no model ------------------------------------------------------------------

EXTRACTIVE_MODEL = "extractive"
MAX_SENTENCES = 5
MAX_PASSAGES = 4  # only the best passages are read
MIN_SENTENCE_WORDS = 3
# Table-of-contents lines: a run of dot leaders.
_TOC_LINE = re.compile(r"\.{5,}|…{3,}")
# Symbol-font glyphs (Wingdings icons in PDFs: "( Image 5)") mean nothing as text.
RELATIVE_THRESHOLD = 0.4  # a sentence must score at least this share of the best one
EARLIER_WEIGHT = 0.5  # a follow-up's terms from the question before it, against its own

# The quoted sentences together must hold at least this share of the question's content
# terms (weighted by rarity among the candidate sentences), else the answer declines.
MIN_COVERAGE = 0.35  # chosen on the tune splits (bench/README.md)

LEAD_IN = "Here is what the documents say:"
NOT_COVERED = (
    "The documents do not cover this. Try rephrasing the question, or upload a manual "
    "that covers it."
)

_SPLIT_TOKENS = re.compile(r"\S+\s*|\s+")


def _sentences_of(passage: Passage) -> list[tuple[str, int, int, bool]]:
    """The passage's sentences and lines, whitespace collapsed, each with where it starts,
    its line and whether it ends that line; the section line that chunks start with and
    heading-like scraps of one or two words are left out."""
    sentences = []
    section = " ".join(passage.section.split())
    text = passage.text
    for start, end in sentence_spans(text):
        sentence = _GLYPH_IN_BRACKETS.sub("", passage.text[start:end])
        sentence = " ".join(_PRIVATE_USE.sub(" ", sentence).split())
        sentence = sentence.replace("( ", "(").replace(" )", ")")
        # The heading path a chunk starts with, whole or cut at its numbers ("... (SSH) ›
        # 6.3.3."), is no sentence of the text.
        if sentence == section or SECTION_SEPARATOR.strip() in sentence:
            continue
        sentence = re.sub(r"^(?:[-*•▪●]|#+)\s+", "", sentence)  # list marker or heading
        if (
            len(sentence.split()) < MIN_SENTENCE_WORDS and not _LABEL.match(sentence)
        ) or _TOC_LINE.search(sentence):
            continue
        if _is_heading(sentence, passage.section):
            continue
        ends_line = not text[end:].split("\n", 1)[0].strip()
        sentences.append((sentence, start, text.count("\n", 0, start), ends_line))
    return sentences


# A field of its section: a short label, a colon and its value, on this line or the next
# ("Necessary tool: Spirit level", "Necessary tools:" then "Wrench 24"). It names what a
# "which tool ..." question asks for, but not what it is for: that is its section's.
_LABEL = re.compile(r"^[A-Z][\w-]*(?:\s[\w-]+){0,3}:(?:\s+\S+){0,4}$")


# "3.1 Calibration of chuck rotation", "2. Troubleshooting": a numbered title line.
# What announces a procedure's commands: not a line that only breaks off ("... is"),
# which in wrapped text is the middle of a sentence.
_ANNOUNCES = re.compile(r"(?::|\b(?:following|follows|below)\s*[.:]?)$", re.IGNORECASE)


# A question that points back at the conversation ("Which tool do I need for that?",
# "And if I also run apt-cacher-ng?", "Wat kost dat?"): words that refer to something
# said before, in English, Dutch and German, or an opening that continues.
_REFERRING_TEXT = """
    that this it its those these them they there then same also else instead former latter
    above previous
    dat dit deze daar daarvoor daarna ervoor hiervoor ook zelfde
    dies diese dieser dafür dazu danach dort auch gleiche
"""
_REFERRING = frozenset(_REFERRING_TEXT.split())
_CONTINUING = re.compile(
    r"^\s*(?:and|but|or|so|what about|how about|en|maar|of|und|aber|oder)\b", re.IGNORECASE
)
_WORDS = re.compile(r"\w+", re.UNICODE)
FOLLOW_UP_MAX_WORDS = 16  # a longer question is taken to stand on its own


def is_follow_up(question: str) -> bool:
    """Whether a question leans on the conversation: short, and referring back,
    continuing ("And if ...", "What about ...") or without a content word of its own
    ("And then?"). A short question that names its subject ("How do I calibrate the
    chuck?") stands on its own even in a conversation."""
    words = _WORDS.findall(question.lower())
    if not words or len(words) > FOLLOW_UP_MAX_WORDS:
        return False
    return (
        bool(_CONTINUING.match(question))
        or any(w in _REFERRING for w in words)
        or not content_terms(question)
    )


def earlier_turns(history: Sequence[Turn]) -> tuple[str, str]:
    """The last question asked before this one and the answer it got ("" if none)."""
    question = answer = ""
    for turn in reversed(history):
        if turn.role == "assistant" and not question and not answer:
            answer = turn.content
        elif turn.role == "user":
            question = turn.content
            break
    return question, answer


def _earlier_terms(question: str, history: Sequence[Turn]) -> set[str]:
    """The content terms a follow-up takes from the question before it ("Which tool do I
    need for that?" after "How do I calibrate the chuck?": calibrat, chuck)."""
    if not history or not is_follow_up(question):
        return set()
    before, _ = earlier_turns(history)
    return content_terms(before) - content_terms(question)


# "How do I ...?", "What are the steps to ...", "Hoe ...", "Wie kann ich ...", also after a
# sentence that tells the situation ("I lost the root password. How do I ..."): a question
# whose answer is a procedure (not "how often", "how long", "how many", "how much").
_PROCEDURE_QUESTION = re.compile(
    r"(?:^|[.?!;])\s*(?:and\s+|so\s+)?how\s+(?:do|can|could|should|would|must|shall|to|does one|is)\b"
    r"(?!.*\b(?:often|long|many|much)\b)"
    r"|\b(?:steps?|procedure|instructions?)\b"
    r"|(?:^|[.?!;])\s*hoe\s+(?!vaak|lang|veel|groot)"
    r"|(?:^|[.?!;])\s*wie\s+(?!oft|lange|viel|viele|gro)\w+\s+(?:ich|man)\b",
    re.IGNORECASE,
)
MAX_STEPS = 20
MAX_INTRO = 3  # lines before the first step that come with the steps
PROCEDURE_LEAD_IN = "Here are the steps from the documents"
# A multi-part question's parts: after "?" or ";", or at "and"/"also" before a question
# word ("What is X, and how often is Y replaced?").
_PART_BREAK = re.compile(
    r"\?\s+|;\s*|,?\s+(?:and|also|plus|en|und|sowie)\s+(?=(?:what|which|how|when|where|who|"
    r"why|is|are|do|does|can|should|must|wat|welke|hoe|wanneer|waar|was|welche|wie|wann|wo)\b)",
    re.IGNORECASE,
)


def is_procedure_question(question: str) -> bool:
    return bool(_PROCEDURE_QUESTION.search(question))


def question_parts(question: str) -> list[str]:
    """The parts of a question that asks several things (one part if it asks one)."""
    parts = [p.strip(" ,?") for p in _PART_BREAK.split(question)]
    return [p for p in parts if content_terms(p)] or [question]


@dataclass
class _Procedure:
    intro: list[tuple[int, str]]  # (passage number, line)
    lines: list[tuple[int, bool, str]]  # (passage number, is a step, text), reading order
    section: str
    score: float
    steps_score: float = 0.0  # of the steps and the lines announcing them alone


def _lines(text: str, section: str) -> list[str]:
    """Lines of a passage's text, cleaned; the section path and its headings left out."""
    section = " ".join(section.split())
    headings = {part.strip() for part in section.split(SECTION_SEPARATOR.strip())}
    lines = (_clean_line(line) for line in text.split("\n"))
    return [
        line
        for line in lines
        if line and not _TOC_LINE.search(line) and line != section and line not in headings
    ]


def _section_lines(passages: list[Passage]) -> list[tuple[int, str]]:
    """The lines of passages of one section in reading order, each with the number of
    the first passage that holds it: every chunk once, though neighbouring passages
    may both carry it."""
    pieces: dict[int, tuple[int, str]] = {}
    for passage in sorted(passages, key=lambda p: p.number):
        if not passage.chunks:  # not from retrieval: its text as it is
            return [(passage.number, line) for line in _lines(passage.text, passage.section)]
        for index, text in passage.chunks:
            pieces.setdefault(index, (passage.number, text))
    section = passages[0].section
    return [
        (number, line)
        for _, (number, text) in sorted(pieces.items())
        for line in _lines(text, section)
    ]


_NUMBERED = re.compile(r"^\s*\d{1,2}[.)]\s+\S")
_FIRST_STEP = re.compile(r"^\s*1[.)]\s+\S")


# A line announcing the steps after it: "To go to the calibration menu:", "..., it is
# even easier with following steps."
_ANNOUNCES_STEPS = re.compile(r":$|\bfollowing(?:\s+\w+)?\s*[.:]?$", re.IGNORECASE)


def _procedure_of(passages: list[Passage], weigh) -> _Procedure | None:
    """The best procedure in one section's passages: of the runs of lines between
    title-like lines, the best-matching one with at least two steps (its step lines and
    the lines between them) with up to MAX_INTRO lines just before its first step that
    bear on the question. None when no run has two steps."""
    section = passages[0].section
    lines = _section_lines(passages)
    runs, run = [], []
    for item in lines:
        if _is_title(item[1]):
            runs.append(run)
            run = []
        elif _FIRST_STEP.match(item[1]) and any(_NUMBERED.match(line) for _, line in run):
            # A numbered list starting again at 1 is another procedure, with the lines
            # between the two lists ("If you can edit the GRUB entry, ... following steps.")
            last = max(i for i, (_, line) in enumerate(run) if _NUMBERED.match(line))
            runs.append(run[: last + 1])
            run = [*run[last + 1 :], item]
        else:
            run.append(item)
    runs.append(run)
    found = [p for p in (_run_procedure(r, section, weigh) for r in runs) if p is not None]
    return max(found, key=lambda p: p.score, default=None)


# A line of prose: a capitalised sentence ("Answer all questions."); what follows a line
# introducing commands ("... by the following.") and is not prose is a command.
MAX_COMMAND_LINES = 6


def _command_steps(lines: list[tuple[int, str]]) -> tuple[list[tuple[int, bool, str]], list]:
    """(passage number, is a step, text) of lines in reading order, where a line
    introducing commands ("You can change it by the following.") together with the
    commands after it ("$ sudo update-alternatives --config editor") is one step:
    "You can change it by the following: `$ sudo update-alternatives --config editor`".
    Also returns each item's kind: "list" (a numbered or bulleted line), "command" or
    None (not a step)."""
    items: list[tuple[int, bool, str]] = []
    kinds: list[str | None] = []
    i = 0
    while i < len(lines):
        number, line = lines[i]
        if _STEP.match(line):
            items.append((number, True, _STEP.sub("", line, count=1)))
            kinds.append("list")
            i += 1
            continue
        commands, j = [], i + 1
        if _ANNOUNCES.search(line):
            while j < len(lines) and len(commands) < MAX_COMMAND_LINES and _is_command(lines[j][1]):
                if not _ELLIPSIS.match(lines[j][1]):
                    commands.append(lines[j][1])
                j += 1
        if commands:
            intro = _INTRODUCES_END.sub(
                ":", _last_sentences(line, MAX_SENTENCE_WORDS // 2), count=1
            )
            items.append((number, True, f"{intro} " + "; ".join(_code(c) for c in commands)))
            kinds.append("command")
            i = j
        else:
            items.append((number, False, line))
            kinds.append(None)
            i += 1
    return items, kinds


def _last_sentences(line: str, words: int) -> str:
    """The end of a long line: its last sentences within `words` words (at least one)."""
    if len(line.split()) <= words:
        return line
    sentences = [line[a:b] for a, b in sentence_spans(line)] or [line]
    kept = [sentences.pop()]
    while sentences and len(" ".join([sentences[-1], *kept]).split()) <= words:
        kept.insert(0, sentences.pop())
    return " ".join(" ".join(kept).split())


# A labelled paragraph: a label of a few words, then a sentence of its own ("Header line
# We recommend that you specify the header argument explicitly, ..."), as a manual's
# numbered list of issues or options reads once its label lines are joined to their text.
_LABELLED = re.compile(r"^[A-Z][\w-]*(?:\s+[a-z][\w./-]*){0,4}\s+[A-Z][a-z]*\s+[a-z]")
LABELLED_MIN_WORDS = 25  # a step is a sentence or two; a labelled paragraph is longer


def _labelled(steps: list[str]) -> bool:
    """Whether most (two thirds) of a list's items are labelled paragraphs: a list of
    things to consider ("Encoding", "Header line", "Separator"), not steps to follow."""
    labelled = sum(
        bool(_LABELLED.match(step)) and len(step.split()) >= LABELLED_MIN_WORDS for step in steps
    )
    return labelled * 3 >= len(steps) * 2


def _run_procedure(lines: list[tuple[int, str]], section: str, weigh) -> _Procedure | None:
    items, kinds = _command_steps(lines)
    steps = [i for i, (_, step, _) in enumerate(items) if step]
    # Steps of another kind after the first ones (a list of options after a command) end
    # the procedure, unless they (or the line announcing them) bear on the question.
    for at in steps[1:]:
        if kinds[at] == kinds[steps[0]]:
            continue
        start = at - 1 if not items[at - 1][1] else at
        end = next((i for i in steps if i > at and kinds[i] != kinds[at]), len(items))
        if not weigh(set().union(*(content_terms(t) for _, _, t in items[start:end]))):
            steps = [i for i in steps if i < start]
        break
    # Two steps make a procedure; one command is one too ("You can change it by the
    # following: `update-alternatives --config editor`").
    if not steps or len(steps) < (1 if kinds[steps[0]] == "command" else 2):
        return None
    if kinds[steps[0]] == "list" and _labelled([items[i][2] for i in steps]):
        return None
    first, last = steps[0], steps[-1]
    body = items[first : last + 1]
    lines = [(number, text) for number, _, text in items]
    intro = [
        (number, line)
        for number, line in lines[max(0, first - 4) : first]
        if len(line.split()) <= MAX_SENTENCE_WORDS // 2
        and (weigh(content_terms(line)) > 0 or ":" in line)  # "Necessary tool: ..."
    ][-MAX_INTRO:]
    # What the procedure is about: its heading and the lines that introduce it ("To go to
    # the calibration menu:") count twice.
    about = content_terms(section).union(*(content_terms(line) for _, line in intro))
    # The steps' own words: their lines and the lines that announce them ("To go to the
    # calibration menu:"), not the prose before them.
    own = (
        set()
        .union(*(content_terms(text) for _, step, text in body if step))
        .union(*(content_terms(line) for _, line in intro if _ANNOUNCES_STEPS.search(line)))
    )
    terms = about | own
    return _Procedure(intro, body, section, weigh(terms) + weigh(about), weigh(own))


def _procedures(passages: list[Passage], weigh) -> list[_Procedure]:
    """One candidate procedure per section among passages (in their order)."""
    sections: dict[tuple, list[Passage]] = {}
    for passage in passages:
        sections.setdefault((passage.document_id, passage.document, passage.section), []).append(
            passage
        )
    found = (_procedure_of(group, weigh) for group in sections.values())
    return [procedure for procedure in found if procedure is not None]


def _procedure_answer(procedure: _Procedure, lead_in: str = PROCEDURE_LEAD_IN) -> str:
    """Numbered steps, each cited; the lines between steps (conditions such as "If the
    chuck is level:", results) as their own paragraphs, so numbering goes on after them.
    One lead-in: `lead_in` (another language's says the steps are the closest passage's)
    with the procedure's section."""
    section = procedure.section.split(SECTION_SEPARATOR)[-1].strip()
    lead_in = lead_in.removesuffix(":")
    head = f"{lead_in} ({_quoted(section, block=False)}):" if section else f"{lead_in}:"
    blocks = [head] + [f"{_quoted(line)} [{n}]" for n, line in procedure.intro]
    count, items = 0, []
    for n, step, text in procedure.lines:
        if step:
            count += 1
            if count > MAX_STEPS:
                items.append("…")
                break
            # A step with its commands (a line of prose, then code) may be longer.
            items.append(f"{count}. {_quoted(text, 2 * MAX_SENTENCE_WORDS)} [{n}]")
        else:
            if items:
                blocks.append("\n".join(items))
                items = []
            blocks.append(f"{_quoted(text)} [{n}]")
    if items:
        blocks.append("\n".join(items))
    return "\n\n".join(blocks)


def extractive_answer(
    question: str, passages: Sequence[Passage], *, history: Sequence[Turn] = ()
) -> str:
    """The Markdown answer. For "how do I ..." the steps of the best procedure among the
    passages (one section), numbered and cited. Otherwise a one-line lead-in, then up to
    MAX_SENTENCES sentences quoted from the best passages (and the lines that those
    ending with ":" introduce), each followed by [n] of its passage, with the best
    sentence of each part of a multi-part question. A follow-up's earlier question
    counts too, at EARLIER_WEIGHT."""
    if not passages:
        return NOT_COVERED
    passages = [_unwrapped_passage(p) for p in passages]
    ranked = sorted(enumerate(passages), key=lambda item: (-item[1].score, item[0]))
    earlier = _earlier_terms(question, history)
    question_terms = content_terms(question) | earlier
    candidates: list[_Candidate] = []
    seen: set[str] = set()
    for rank, (_, passage) in enumerate(ranked[:MAX_PASSAGES]):
        context = content_terms(passage.section)
        for sentence, start, line, ends_line in _sentences_of(passage):
            key = sentence.lower()
            if key in seen:  # overlapping chunks repeat sentences
                continue
            seen.add(key)
            terms = content_terms(sentence)
            if _LABEL.match(sentence):  # a field: about what its section is about
                label = content_terms(sentence.split(":", 1)[0])
                terms |= context if label & question_terms else set()
            candidates.append(
                _Candidate(
                    rank,
                    start,
                    passage.number,
                    sentence,
                    terms,
                    context,
                    line=line,
                    ends_line=ends_line,
                )
            )
    if not candidates:
        return NOT_COVERED

    best_first = [passage for _, passage in ranked]
    if not question_terms:
        return unmatched(question, best_first, candidates)
    # Rarer terms weigh more (inverse frequency over the candidate sentences; a term no
    # sentence holds weighs most, so missing it counts against the answer).
    total = len(candidates)
    across: set[str] = set()
    weight: dict[str, float] = {}

    def weigh(terms: set[str]) -> float:
        return sum(weight[t] for t in question_terms & terms)

    while True:
        weight = {
            term: math.log(1 + total / (sum(term in c.terms for c in candidates) + 0.5))
            * (EARLIER_WEIGHT if term in earlier else 1.0)
            for term in question_terms
        }
        for candidate in candidates:
            candidate.score = weigh(candidate.terms)
        best = max(c.score for c in candidates)
        chosen = sorted(
            (c for c in candidates if best > 0 and c.score >= best * RELATIVE_THRESHOLD),
            key=lambda c: (-c.score, c.passage_rank, c.position),
        )[:MAX_SENTENCES]
        # Decline unless the quoted sentences (with their sections' headings) address the
        # question: together they must hold most of its weight, not a word or two that
        # every passage shares. A follow-up is answered when they address its own words,
        # though not the question before it ("What key do I press to detach from it?"
        # after a question about jobs dying on a remote box): that one's words are
        # context, not what is asked.
        covered = set().union(*(c.terms | c.context for c in chosen)) & question_terms
        own = question_terms - earlier
        if chosen and (
            _coverage(covered, question_terms, weight) >= MIN_COVERAGE
            or (earlier and own and _coverage(covered, own, weight) >= MIN_COVERAGE)
        ):
            break
        # A question in another language is matched again by the words it shares with
        # the passages when one of them is a name ("ifconfig", "dpkg"): its other words
        # are no evidence either way.
        held = set().union(*(c.terms | c.context for c in candidates))
        if across or not (across := shared_terms(question, held)):
            return unmatched(question, best_first, candidates)
        question_terms = across | earlier
    if is_procedure_question(question):
        # Every passage: a procedure's chunks may be several hits of its section.
        procedures = _procedures([passage for _, passage in ranked], weigh)
        if procedures:
            # The best-matching one (max keeps the better-ranked passage on a tie), if
            # it matches about as well as the best sentences do...
            top = max(procedures, key=lambda p: p.score)
            # ...and its own lines, not only its heading, say as much as the best
            # sentence: a list of options under a fitting heading is no procedure.
            if top.score >= best and top.steps_score >= best:
                return _procedure_answer(top)
    parts = question_parts(question)
    for top in _part_answers(parts, candidates, question_terms, weigh) if len(parts) > 1 else ():
        if not any(top is c for c in chosen):
            chosen.append(top)
    read = {rank: (p.number, p.text) for rank, (_, p) in enumerate(ranked[:MAX_PASSAGES])}
    chosen += paragraphs(chosen, candidates, ANSWER_WORDS * len(parts))
    chosen += expand(chosen, read, weigh)
    chosen.sort(key=lambda c: (c.passage_rank, c.position))  # reading order
    return "\n\n".join([FOREIGN_LEAD_IN if across else LEAD_IN, *render(chosen)])


PART_CHOICES = 5  # each part's best sentences among which the parts' answers are chosen


def _part_answers(parts: list[str], candidates: list, question_terms: set[str], weigh) -> list:
    """A sentence for every part, a different one for each: of each part's PART_CHOICES
    best (by the part's terms, then overall), the combination whose weights for their
    parts add up most ("Which directories under /var can I leave out ..., and where do
    user crontabs live?": the crontab line, holding "var" and "directory" too, was the
    best of both parts, so the first part had no sentence of its own)."""
    options = []
    for part in parts:
        terms = content_terms(part) & question_terms
        order = sorted(
            (c for c in candidates if weigh(c.terms & terms) > 0),
            key=lambda c: (-weigh(c.terms & terms), -c.score, c.passage_rank),
        )[:PART_CHOICES]
        # None: the part goes without (it shares its only sentences with other parts).
        options.append([(c, weigh(c.terms & terms)) for c in order] + [(None, 0.0)])
    best, best_total = [], -1.0
    for combo in itertools.product(*options):
        chosen = [c for c, _ in combo if c is not None]
        # One paragraph answers one part: its sentences are quoted together anyway.
        if len({(c.passage_rank, c.line) if c.line >= 0 else id(c) for c in chosen}) < len(chosen):
            continue
        total = sum(w for _, w in combo)
        if total > best_total:  # the first of equals: each part's better-ranked sentences
            best, best_total = chosen, total
    return best


def _unwrapped_passage(passage: Passage) -> Passage:
    """The passage with a hard-wrapped text's paragraphs on one line each (lines.unwrapped)."""
    return replace(
        passage,
        text=unwrapped(passage.text),
        chunks=tuple((index, unwrapped(text)) for index, text in passage.chunks),
    )


def _coverage(covered: set[str], terms: set[str], weight: dict[str, float]) -> float:
    """The share of the terms' weight that the covered terms hold."""
    return sum(weight[t] for t in covered & terms) / (sum(weight[t] for t in terms) or 1.0)


class ExtractiveLLM(LLMProvider):
    """Answers without a model: quotes the passages' most relevant sentences, cited."""

    name = "extractive"
    model = EXTRACTIVE_MODEL

    def stream(
        self, *, question: str, passages: list[Passage], history: list[Turn]
    ) -> Iterator[Token | Usage]:
        answer = extractive_answer(question, passages, history=history)
        for piece in _SPLIT_TOKENS.findall(answer):  # word by word, like a model
            yield Token(piece)
        read = count_tokens(question) + sum(count_tokens(p.text) for p in passages)
        yield Usage(read, count_tokens(answer), EXTRACTIVE_MODEL)
