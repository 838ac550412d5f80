"""Retrieval and answer evaluation on a question set.

One JSON object per line:

    {"question": "...", "doc": "manual.pdf", "pages": [3], "facts": ["35 mm"],
     "kind": "lookup", "split": "tune"}

- ``doc`` and ``pages``: where the answer is; a hit is relevant when it is in ``doc``
  and, with pages, overlaps one of them. ``section`` (optional; documents without pages):
  the title of the heading the answer sits under; a hit is relevant only when its heading
  path holds it (case, whitespace and section numbers ignored; "Size" is in place under
  "2.6 Size"). ``facts`` (optional): strings the passage must all hold (whitespace and
  case ignored): "a passage holding every required fact".
- ``history`` (optional): the earlier turns of a follow-up,
  ``[{"role": "user"|"assistant", "content": "..."}, ...]``. The answer's retrieval and
  the offline answer get them, and the search modes search with
  ``chats.answering.retrieval.search_query(question, history)``, as a chat's answer does.
- ``kind``: free text (lookup, paraphrase, multi, table, dutch, ...); ``unanswerable``
  (no ``doc``) marks a question the documents do not answer.
- ``split``: ``tune`` (default), ``held-out``, ``fresh``, ``fresh2``, ``fresh3``,
  ``fresh4``, ``fresh5`` or ``fresh6`` (each written after the last tuning choice by its own writer); each is
  reported on its own, tune on the first only.

Retrieval: hit@1, hit@5 and MRR@k of each search mode, per split and kind.
Answers (hybrid): which questions the answer guard declines (chats.answering.retrieval.is_relevant
over the answer's passages, then the extractive answerer), so the decline rate of
unanswerable questions and the kept rate of answerable ones, and how many offline
answers quote every fact.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from documents.chunking import SECTION_SEPARATOR
from documents.models import EVERY_DOCUMENT
from documents.search import search

UNANSWERABLE = "unanswerable"
SPLITS = ("tune", "held-out", "fresh", "fresh2", "fresh3", "fresh4", "fresh5", "fresh6")
ROLES = ("user", "assistant")


@dataclass(frozen=True)
class Case:
    line: int
    question: str
    doc: str | None
    pages: tuple[int, ...]
    facts: tuple[str, ...] = ()
    kind: str = "lookup"
    split: str = "tune"
    section: str | None = None
    history: tuple[tuple[str, str], ...] = ()  # (role, content) of the earlier turns

    @property
    def answerable(self) -> bool:
        return self.kind != UNANSWERABLE


class BadEvalFile(ValueError):
    pass


def load_cases(path: Path) -> list[Case]:
    cases = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadEvalFile(f"cannot read {path}: {exc}") from exc
    for number, raw in enumerate(lines, 1):
        if not raw.strip() or raw.lstrip().startswith("//"):
            continue
        try:
            item = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise BadEvalFile(f"{path}:{number}: not JSON ({exc.msg})") from None
        question, doc, pages = item.get("question"), item.get("doc"), item.get("pages", [])
        kind = item.get("kind", "lookup")
        split = item.get("split", "tune")
        facts = item.get("facts", [])
        section, history = item.get("section"), item.get("history", [])
        where = f"{path}:{number}"
        if not isinstance(question, str) or not question.strip():
            raise BadEvalFile(f"{where}: 'question' must be a non-empty string")
        if not isinstance(kind, str) or not kind:
            raise BadEvalFile(f"{where}: 'kind' must be a string")
        if kind == UNANSWERABLE:
            if doc is not None:
                raise BadEvalFile(f"{where}: an unanswerable question has no 'doc'")
        elif not isinstance(doc, str) or not doc:
            raise BadEvalFile(f"{where}: 'doc' must be the document name")
        if not isinstance(pages, list) or not all(isinstance(p, int) and p > 0 for p in pages):
            raise BadEvalFile(f"{where}: 'pages' must be a list of page numbers")
        if not isinstance(facts, list) or not all(isinstance(f, str) and f.strip() for f in facts):
            raise BadEvalFile(f"{where}: 'facts' must be a list of strings")
        if split not in SPLITS:
            raise BadEvalFile(f"{where}: 'split' must be one of {', '.join(SPLITS)}")
        if section is not None and (not isinstance(section, str) or not _words(section)):
            raise BadEvalFile(f"{where}: 'section' must be a heading's title")
        if not isinstance(history, list) or not all(
            isinstance(turn, dict)
            and turn.get("role") in ROLES
            and isinstance(turn.get("content"), str)
            and turn["content"].strip()
            for turn in history
        ):
            raise BadEvalFile(
                f'{where}: \'history\' must be a list of {{"role": user|assistant, "content"}}'
            )
        turns = tuple((turn["role"], turn["content"].strip()) for turn in history)
        cases.append(
            Case(
                number,
                question.strip(),
                doc,
                tuple(pages),
                tuple(facts),
                kind,
                split,
                section.strip() if section else None,
                turns,
            )
        )
    if not cases:
        raise BadEvalFile(f"{path}: no questions")
    return cases


# What the offline answerer escapes so that a quote stays text in Markdown: "\[4\]", a
# leading "1\.", "\#", "\>", "\-" (chats/answering/lines._quoted). A reader sees them plain.
_ESCAPED = re.compile(r"\\([\[\]#>.)+*-])")


def answer_text(answer: str) -> str:
    """An answer's Markdown as its reader sees the text: escapes undone."""
    return _ESCAPED.sub(r"\1", answer)


def _normalized(text: str) -> str:
    return " ".join(text.split()).lower()


def holds_facts(text: str, facts: tuple[str, ...]) -> bool:
    body = _normalized(text)
    return all(_normalized(f) in body for f in facts)


_NUMBER = re.compile(r"(?<!\w)\d+(?:\.\d+)*\.?(?!\w)")


def _words(title: str) -> str:
    """A heading title compared: case, whitespace and section numbers ignored."""
    return " ".join(_NUMBER.sub(" ", title).split()).lower()


def in_section(path: str, title: str) -> bool:
    """Whether a passage's heading path (titles joined by " › ") holds the title."""
    wanted = _words(title)
    return any(wanted in _words(heading) for heading in path.split(SECTION_SEPARATOR))


def is_relevant(hit, case: Case) -> bool:
    if not case.answerable or hit.document_name != case.doc:
        return False
    if case.pages and not any(hit.first_page <= p <= hit.last_page for p in case.pages):
        return False
    if case.section and not in_section(hit.section or "", case.section):
        return False
    return holds_facts(hit.content, case.facts)


def _turns(case: Case) -> list:
    from chats.answering.types import Turn

    return [Turn(role=role, content=content) for role, content in case.history]


def search_query(case: Case) -> str:
    """What the search modes search for: the answer path's history-aware query (the
    question alone unless it is a follow-up)."""
    from chats.answering.retrieval import search_query as answer_query

    return answer_query(case.question, _turns(case))


def _retrieve(*, user, case: Case):
    from chats.answering.retrieval import retrieve

    return retrieve(user=user, question=case.question, history=_turns(case))


@dataclass
class Score:
    """hit@1, hit@5 and MRR over n questions (sums until finished)."""

    n: int = 0
    hit_at_1: float = 0.0
    hit_at_5: float = 0.0
    mrr: float = 0.0

    def add(self, rank: int | None) -> None:
        self.n += 1
        self.hit_at_1 += rank == 1
        self.hit_at_5 += rank is not None and rank <= 5
        self.mrr += 1 / rank if rank else 0.0

    def finished(self) -> Score:
        n = self.n or 1
        return Score(self.n, self.hit_at_1 / n, self.hit_at_5 / n, self.mrr / n)


@dataclass
class ModeReport:
    mode: str
    hit_at_1: float = 0.0
    hit_at_5: float = 0.0
    mrr: float = 0.0
    # "split" and "split/kind" -> Score of the answerable questions there
    groups: dict[str, Score] = field(default_factory=dict)
    misses: list[dict] = field(default_factory=list)


@dataclass
class AnswerReport:
    """What the answer path does with each question (hybrid search, offline answerer)."""

    # split -> counts
    unanswerable: dict[str, int] = field(default_factory=dict)
    declined: dict[str, int] = field(default_factory=dict)  # unanswerable, no passage kept
    offline_declined: dict[str, int] = field(default_factory=dict)  # ...or extractive declined
    answerable: dict[str, int] = field(default_factory=dict)
    kept: dict[str, int] = field(default_factory=dict)  # answerable, passages kept
    # answerable with a relevant passage among the answer's (before the guard), and of
    # those, the ones whose relevant passage passes the guard (reaches the answer)
    grounded: dict[str, int] = field(default_factory=dict)
    grounded_kept: dict[str, int] = field(default_factory=dict)
    grounded_offline: dict[str, int] = field(default_factory=dict)  # ...offline not declined
    # answerable whose answer's passages (kept by the guard, with their neighbouring
    # chunks) include one in the right place holding every fact: what the answer reads
    grounded_passages: dict[str, int] = field(default_factory=dict)
    offline_answered: dict[str, int] = field(default_factory=dict)  # extractive did not decline
    offline_facts: dict[str, int] = field(default_factory=dict)  # ...and quotes every fact
    wrong: list[dict] = field(default_factory=list)  # answered unanswerable, declined answerable


def evaluate(cases: list[Case], *, k: int = 10, modes: list[str], user=None) -> list[ModeReport]:
    user = user or EVERY_DOCUMENT
    answerable = [c for c in cases if c.answerable]
    reports = []
    for mode in modes:
        base, _, extra = mode.partition("+")
        report = ModeReport(mode)
        total = Score()
        groups: dict[str, Score] = defaultdict(Score)
        for case in answerable:
            hits = search(
                user=user, query=search_query(case), k=k, mode=base, rerank=extra == "rerank"
            ).hits
            rank = next((i for i, h in enumerate(hits, 1) if is_relevant(h, case)), None)
            total.add(rank)
            groups[case.split].add(rank)
            groups[f"{case.split}/{case.kind}"].add(rank)
            groups[f"all/{case.kind}"].add(rank)
            if rank != 1:
                report.misses.append(
                    {
                        "line": case.line,
                        "question": case.question,
                        "expected": f"{case.doc} {list(case.pages) or case.section or ''}".strip(),
                        "rank": rank,
                        "got": [f"{h.document_name} {h.location}".strip() for h in hits[:3]],
                    }
                )
        done = total.finished()
        report.hit_at_1, report.hit_at_5, report.mrr = done.hit_at_1, done.hit_at_5, done.mrr
        report.groups = {name: score.finished() for name, score in sorted(groups.items())}
        reports.append(report)
    return reports


def _passage_holds(passage, case: Case) -> bool:
    """Whether an answer's passage (with its neighbouring chunks) is in the case's place
    and holds every fact."""
    if passage.document != case.doc:
        return False
    if case.section and not in_section(passage.section or "", case.section):
        return False
    if case.pages and not any(str(p) in re.findall(r"\d+", passage.pages) for p in case.pages):
        pages = [int(n) for n in re.findall(r"\d+", passage.pages)]
        if not pages or not any(min(pages) <= p <= max(pages) for p in case.pages):
            return False
    return holds_facts(passage.text, case.facts)


def evaluate_answers(cases: list[Case], *, user=None) -> AnswerReport:
    """Run each question through the answer's retrieval and guard, and the offline
    (extractive) answerer; no model is called."""
    from django.conf import settings

    from chats.answering.extractive import NOT_COVERED, extractive_answer

    user = user or EVERY_DOCUMENT
    report = AnswerReport()
    for case in cases:
        split = case.split
        # The answer's own retrieval (guard and neighbouring chunks), and the hits before
        # the guard to tell whether a relevant passage was there to keep.
        hits = search(user=user, query=search_query(case), k=settings.ANSWER_PASSAGES).hits
        passages, kept = _retrieve(user=user, case=case)
        answer = (
            extractive_answer(case.question, passages, history=_turns(case))
            if passages
            else NOT_COVERED
        )
        offline = answer != NOT_COVERED
        if not case.answerable:
            report.unanswerable[split] = report.unanswerable.get(split, 0) + 1
            if not offline:
                report.offline_declined[split] = report.offline_declined.get(split, 0) + 1
            if not kept:
                report.declined[split] = report.declined.get(split, 0) + 1
            else:
                report.wrong.append({"line": case.line, "question": case.question, "as": "kept"})
            continue
        report.answerable[split] = report.answerable.get(split, 0) + 1
        if kept:
            report.kept[split] = report.kept.get(split, 0) + 1
        if any(_passage_holds(p, case) for p in passages):
            report.grounded_passages[split] = report.grounded_passages.get(split, 0) + 1
        if any(is_relevant(h, case) for h in hits):
            report.grounded[split] = report.grounded.get(split, 0) + 1
            if any(is_relevant(h, case) for h in kept):
                report.grounded_kept[split] = report.grounded_kept.get(split, 0) + 1
            if offline:
                report.grounded_offline[split] = report.grounded_offline.get(split, 0) + 1
        else:
            report.wrong.append({"line": case.line, "question": case.question, "as": "declined"})
        if offline:
            report.offline_answered[split] = report.offline_answered.get(split, 0) + 1
            if holds_facts(answer_text(answer), case.facts):
                report.offline_facts[split] = report.offline_facts.get(split, 0) + 1
    return report
