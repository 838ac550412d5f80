"""The whole units an offline answer quotes around a sentence it matched: the table the
sentence belongs to or introduces (its header and the rows that bear on the question,
as a Markdown table), and the commands or code lines after it. They are read from the
passage's own lines, not from the sentences the answerer scores, so a command too short
to be a sentence ("# dmesg -n3", 'APT::Periodic::Unattended-Upgrade "1";') still comes
with the line that introduces it (chats/answering/extractive.py; the line-level reading
both share is chats/answering/lines.py)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from chats.answering.lines import (
    _ELLIPSIS,
    _INTRODUCES,
    _clean_line,
    _code,
    _is_command,
    _is_heading,
    _looks_like_command,
    _quoted,
    plain,
)
from chats.answering.terms import content_terms

MAX_BLOCK_LINES = 8  # code or commands after a line that introduces them
MAX_TABLE_ROWS = 10  # a longer table brings only the rows that share a question term
# A line that introduces prose (not code) brings up to this many of the next lines.
MAX_CONTINUATION = 2
MAX_LIST_ITEMS = 8  # of a list that a line introduces ("... following questions:", bullets)
# A bullet or numbered item of a list: "• Machine number on the type plate,", "- Bogies".
_LIST_ITEM = re.compile(r"^\s*(?:\d{1,2}[.)]|[-*+•▪●◦‣➢])\s+\S")
_BULLET = re.compile(r"^\s*[-*+•▪●◦‣➢]\s+")
# A condition that a step leads to: "If the distance = 35 mm (1⅜”):", "In that case:".
_CONDITION = re.compile(
    r"^(?:if|when|in that case|otherwise|subsequently)\b[^.!?]*:$", re.IGNORECASE
)
_ROW = re.compile(r"\S\s*\|\s*\S")  # "4 | KERN_WARNING | warning conditions"
_CAPTION = re.compile(r"^\*\*Table\s+\d")  # "**Table 3.4. List of kernel error levels**"


@dataclass
class Candidate:
    """A line or sentence of a passage that may be quoted."""

    passage_rank: int
    position: int  # where it starts in its passage's text: reading order
    number: int  # the passage's citation number
    text: str
    terms: set[str]
    context: set[str] = field(default_factory=set)  # terms of the passage's section
    score: float = 0.0
    line: int = -1  # its line of the passage's text (-1: unknown)
    ends_line: bool = False  # the last sentence of its line
    kind: str = "sentence"  # or "command", "row" (of a table), "caption", "item" (of a list)
    table: int = -1  # a row's table: the line its table starts at


PARAGRAPH_WORDS = 120  # a quoted sentence brings its paragraph's others up to this many words


# Paragraphs stop growing once the quoted sentences hold this many words (for each part
# of the question): an answer, not a dump of its passages.
ANSWER_WORDS = 200


def paragraphs(
    chosen: list[Candidate], candidates: list[Candidate], budget: int = ANSWER_WORDS
) -> list[Candidate]:
    """The other sentences of each chosen sentence's paragraph (its line: a paragraph of a
    Markdown manual, or of a PDF page as extracted), nearest first, the best sentence's
    first, while the paragraph stays within PARAGRAPH_WORDS words and all that is quoted
    within `budget`: the context a matched sentence needs ("As a result, ..." after
    "... rounded to 53 binary digits")."""
    taken = {id(c) for c in chosen}
    total = sum(len(c.text.split()) for c in chosen)
    lines: dict[tuple[int, int], list[Candidate]] = {}
    for c in candidates:
        if c.line >= 0:
            lines.setdefault((c.passage_rank, c.line), []).append(c)
    extra = []
    for c in chosen:
        if c.kind != "sentence" or c.line < 0:
            continue
        siblings = sorted(lines.get((c.passage_rank, c.line), []), key=lambda s: s.position)
        words = sum(len(s.text.split()) for s in siblings if id(s) in taken)
        for s in sorted(siblings, key=lambda s: abs(s.position - c.position)):
            if id(s) in taken:
                continue
            size = len(s.text.split())
            if words + size > PARAGRAPH_WORDS or total + size > budget:
                break
            words += size
            total += size
            taken.add(id(s))
            extra.append(s)
    return extra


def lines_of(text: str) -> tuple[list[str], list[int]]:
    """A passage's lines (cleaned) and where each starts in its text."""

    lines, starts, at = [], [], 0
    for raw in text.split("\n"):
        lines.append(_clean_line(raw))
        starts.append(at)
        at += len(raw) + 1
    return lines, starts


def _is_row(line: str) -> bool:
    return bool(_ROW.search(line))


def _table(lines: list[str], at: int) -> tuple[int, int] | None:
    """(first, last) line of the table that line `at` is a row of, or that it introduces
    (a caption or a sentence right above the table): two rows at least."""
    start = at if _is_row(lines[at]) else at + 1
    if start >= len(lines) or not _is_row(lines[start]):
        return None
    first = start
    while first > 0 and _is_row(lines[first - 1]):
        first -= 1
    last = start
    while last + 1 < len(lines) and _is_row(lines[last + 1]):
        last += 1
    return (first, last) if last > first else None


def expand(
    chosen: list[Candidate],
    passages: dict[int, tuple[int, str]],
    weigh: Callable[[set[str]], float],
) -> list[Candidate]:
    """The lines that come with the chosen ones, none twice. `passages`: passage rank ->
    (citation number, text). A chosen table row or caption, or a sentence right above a
    table, brings the table's header and rows (only those that share a question term
    when it has more than MAX_TABLE_ROWS); a chosen sentence that ends its line brings the
    code or commands after it, and one ending with ":" (or "as the following.") up to
    MAX_CONTINUATION lines of prose or the list it announces (up to MAX_LIST_ITEMS items,
    nested under it); a matched step followed by a condition ("If the distance = 35 mm:")
    brings the condition and what it introduces (its outcome)."""

    split = {rank: lines_of(text) for rank, (_, text) in passages.items()}
    taken = {(c.passage_rank, c.line) for c in chosen if c.kind != "sentence"}
    quoted = {(c.passage_rank, c.line) for c in chosen if c.kind == "sentence"}
    extra: list[Candidate] = []

    def add(rank: int, index: int, kind: str, table: int = -1) -> None:
        if kind == "command" and (rank, index) in quoted:
            # A command line quoted as a sentence already: quoted once, as the command.
            line = next(c for c in chosen if (c.passage_rank, c.line) == (rank, index))
            line.kind, line.text = "command", split[rank][0][index]
            taken.add((rank, index))
            return
        if (rank, index) in taken or (rank, index) in quoted:
            return  # a line whose sentences are quoted already is not quoted again
        taken.add((rank, index))
        lines, starts = split[rank]
        text = lines[index]
        if kind in ("sentence", "item"):  # its own bullet: the list marker goes
            text = _BULLET.sub("", text)
        extra.append(
            Candidate(
                rank,
                starts[index],
                passages[rank][0],
                text,
                content_terms(text),
                set(),
                line=index,
                kind=kind,
                table=table,
            )
        )

    for c in list(chosen):
        if c.passage_rank not in split or c.line < 0:
            continue
        lines, _ = split[c.passage_rank]
        table = _table(lines, c.line)
        if table and (c.ends_line or _is_row(lines[c.line])):
            first, last = table
            rows = range(first + 1, last + 1)
            if len(rows) > MAX_TABLE_ROWS:
                rows = [r for r in rows if r == c.line or weigh(content_terms(lines[r])) > 0]
            for index in (first, *rows[:MAX_TABLE_ROWS]):
                add(c.passage_rank, index, "row", first)
            if first <= c.line <= last:  # the row is quoted in its table, not as a sentence
                c.kind, c.table = "row", first
                if (c.passage_rank, c.line) in taken:
                    extra = [
                        e for e in extra if (e.passage_rank, e.line) != (c.passage_rank, c.line)
                    ]
                c.text, c.position = lines[c.line], split[c.passage_rank][1][c.line]
            elif _CAPTION.match(lines[c.line]):
                c.kind, c.text = "caption", lines[c.line].strip("*").strip()
            continue
        if not c.ends_line:
            continue
        follows = c.line + 1
        while follows < len(lines) and not lines[follows]:
            follows += 1
        # What a matched step leads to: the condition right after it and its outcome
        # ("Measure the distance again." then "If the distance = 35 mm:" then
        # "Calibration of the trolley was successful.").
        if (
            not _INTRODUCES.search(c.text)
            and follows < len(lines)
            and _CONDITION.match(lines[follows])
            and not _is_heading(lines[follows], "")
        ):
            add(c.passage_rank, follows, "sentence")
            _introduced(lines, follows, c.passage_rank, add)
            continue
        _introduced(lines, c.line, c.passage_rank, add)
    return extra


def _introduced(lines: list[str], at: int, rank: int, add: Callable) -> None:
    """Add the lines that line `at` brings: the code or commands after it, and when it
    introduces them (ends with ":", "as the following."), up to MAX_CONTINUATION lines
    of prose or a list of up to MAX_LIST_ITEMS items."""
    introduces = bool(_INTRODUCES.search(lines[at]))
    prose, items, code = 0, 0, False
    for index in range(at + 1, min(len(lines), at + 1 + MAX_BLOCK_LINES + MAX_LIST_ITEMS)):
        line = lines[index]
        if not line:
            continue
        if _is_row(line) or line.startswith("**") or _is_heading(line, ""):
            break  # a table, a caption or the next heading ("2.4.2. Verification ..."): no code
        if introduces and not code and not prose and _LIST_ITEM.match(line):
            if items >= MAX_LIST_ITEMS:
                break
            add(rank, index, "item")  # an item of the list the line announces
            items += 1
        elif items:
            break  # the list has ended
        elif _looks_like_command(line) or (introduces and _is_command(line)):
            if prose or _ELLIPSIS.match(line) or index > at + MAX_BLOCK_LINES:
                break
            add(rank, index, "command")
            code = True
        elif introduces and not code and prose < MAX_CONTINUATION:
            add(rank, index, "sentence")
            prose += 1
            if _INTRODUCES.search(line):
                break
        else:
            break


def render(items: list[Candidate]) -> list[str]:
    """Markdown blocks of the quoted items in the order given: runs of bullets, a table's
    rows as a Markdown table (each row cited in its last cell), commands as inline code."""

    blocks: list[str] = []
    bullets: list[str] = []
    rows: list[Candidate] = []
    last: Candidate | None = None

    def flush() -> None:
        if bullets:
            blocks.append("\n".join(bullets))
            bullets.clear()
        if rows:
            blocks.append(_markdown_table(rows))
            rows.clear()

    for item in items:
        if item.kind == "row":
            last = None
            if bullets or (
                rows and (rows[0].passage_rank, rows[0].table) != (item.passage_rank, item.table)
            ):
                flush()
            rows.append(item)
            continue
        if rows:
            flush()
        if item.kind == "command":
            bullets.append(f"- {_code(plain(item.text))} [{item.number}]")
        elif item.kind == "item" and bullets:  # under the line that announces its list
            bullets.append(f"  - {_quoted(item.text)} [{item.number}]")
        elif (
            item.kind == "sentence"
            and last is not None
            and last.kind == "sentence"
            and (last.passage_rank, last.line) == (item.passage_rank, item.line)
            and item.line >= 0
        ):  # the same paragraph: one bullet, one citation
            bullets[-1] = (
                f"{bullets[-1].removesuffix(f' [{item.number}]')} {_quoted(item.text)} [{item.number}]"
            )
        else:
            bullets.append(f"- {_quoted(item.text)} [{item.number}]")
        last = item
    flush()
    return blocks


def _markdown_table(rows: list[Candidate]) -> str:
    cells = [[_quoted(cell.strip(), block=False) for cell in row.text.split("|")] for row in rows]
    width = max(len(r) for r in cells)
    lines = []
    for i, (row, item) in enumerate(zip(cells, rows, strict=True)):
        row = row + [""] * (width - len(row))
        if i:  # every row but the header is cited
            row[-1] = f"{row[-1]} [{item.number}]".strip()
        lines.append("| " + " | ".join(row) + " |")
        if not i:
            lines.append("|" + "---|" * width)
    return "\n".join(lines)
