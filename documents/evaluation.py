"""Retrieval evaluation: hit@1, hit@5 and MRR@k of each search mode on a question set."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from documents.models import EVERY_DOCUMENT
from documents.search import search


@dataclass(frozen=True)
class Case:
    line: int
    question: str
    doc: str
    pages: tuple[int, ...]


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
        if not isinstance(question, str) or not question.strip():
            raise BadEvalFile(f"{path}:{number}: 'question' must be a non-empty string")
        if not isinstance(doc, str) or not doc:
            raise BadEvalFile(f"{path}:{number}: 'doc' must be the document name")
        if not isinstance(pages, list) or not all(isinstance(p, int) and p > 0 for p in pages):
            raise BadEvalFile(f"{path}:{number}: 'pages' must be a list of page numbers")
        cases.append(Case(number, question.strip(), doc, tuple(pages)))
    if not cases:
        raise BadEvalFile(f"{path}: no questions")
    return cases


def is_relevant(hit, case: Case) -> bool:
    if hit.document_name != case.doc:
        return False
    return not case.pages or any(hit.first_page <= p <= hit.last_page for p in case.pages)


@dataclass
class ModeReport:
    mode: str
    hit_at_1: float = 0.0
    hit_at_5: float = 0.0
    mrr: float = 0.0
    misses: list[dict] = field(default_factory=list)


def evaluate(cases: list[Case], *, k: int = 10, modes: list[str], user=None) -> list[ModeReport]:
    user = user or EVERY_DOCUMENT
    reports = []
    for mode in modes:
        base, _, extra = mode.partition("+")
        report = ModeReport(mode)
        for case in cases:
            hits = search(
                user=user, query=case.question, k=k, mode=base, rerank=extra == "rerank"
            ).hits
            rank = next((i for i, h in enumerate(hits, 1) if is_relevant(h, case)), None)
            report.hit_at_1 += rank == 1
            report.hit_at_5 += rank is not None and rank <= 5
            report.mrr += 1 / rank if rank else 0.0
            if rank != 1:
                report.misses.append(
                    {
                        "line": case.line,
                        "question": case.question,
                        "expected": f"{case.doc} {list(case.pages) or ''}".strip(),
                        "rank": rank,
                        "got": [f"{h.document_name} {h.pages}" for h in hits[:3]],
                    }
                )
        n = len(cases)
        report.hit_at_1 /= n
        report.hit_at_5 /= n
        report.mrr /= n
        reports.append(report)
    return reports
