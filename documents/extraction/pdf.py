"""PDF text, blocks and heading outline (pypdfium2)."""

from __future__ import annotations

import logging
import math
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from documents.extraction.common import (
    MAX_BLOCK_CHARS,
    MB,
    PAGE_LIMIT,
    PDF_DAMAGED,
    PDF_NO_PAGES,
    PDF_NO_TEXT,
    PDF_PASSWORD,
    PDF_UNSUPPORTED_SECURITY,
    TOO_MUCH_TEXT,
    ExtractionFailed,
    Limits,
    Outline,
    ProgressCallback,
    split_long,
)
from documents.filetypes import (
    PDF,
)
from documents.types import INVISIBLE_MARKS, Block, BlockKind, Extraction, Page

logger = logging.getLogger(__name__)

# ==================================================================================== PDF

_PAGE_NUMBER = re.compile(
    r"^(?:(?:page|pagina|seite|p\.)\s*\d+(?:\s*(?:/|of|van|von)\s*\d+)?\b.*|[-–—]?\s*\d{1,4}\s*[-–—]?)$",
    re.IGNORECASE,
)
_NUMBERED = re.compile(r"(\d{1,3}(?:\.\d{1,3}){0,5})\.?\s+(?=\w)")
_TOC_LEADER = re.compile(r"(?:\.\s?){4,}|…{2,}|_{4,}|(?:·\s?){4,}")
_LIST_MARKER = re.compile(
    "^(?:[-–—•●○◦▪▫■□➢➤►▶❖✓✔✗*·\u2022\u2023\u2043\u25aa\uf000-\uf0ff](?:\\s|$)"
    r"|\(?\d{1,3}[.)]\s|\(?[a-zA-Z][.)]\s)"
)
_LINE = re.compile(r"\S(?:[^\n]*\S)?")
_SOFT_HYPHENS = ("\x02", "\xad")
_LINE_GAP = 1.75  # baseline distance (in font sizes) beyond which a new paragraph starts
_HEADING_RATIO = 1.15  # a line this much larger than the body font can be a heading
_FURNITURE_BAND = 0.1  # top and bottom share of the page where headers and footers live


@dataclass(slots=True)
class _Line:
    page: int  # 0-based index
    start: int
    end: int
    text: str
    size: float
    bold: bool
    x: float
    y: float
    band: bool  # in the top or bottom band of the page
    candidate: str = ""  # heading kind this line may start: see _mark_heading_candidates
    depth: int = 0  # numbering depth of a numbered heading ("3.5" -> 2)


def extract_pdf(path: Path, limits: Limits, progress: ProgressCallback) -> Extraction:
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        raise ExtractionFailed(_pdf_load_failure(path, exc)) from None
    try:
        count = len(pdf)
        if count == 0:
            raise ExtractionFailed(PDF_NO_PAGES)
        if count > limits.max_pages:
            raise ExtractionFailed(PAGE_LIMIT.format(pages=count, limit=limits.max_pages))
        metadata = _pdf_metadata(pdf, count)
        progress(0, count)
        pages: list[Page] = []
        lines: list[_Line] = []
        chars = 0
        for index in range(count):
            try:
                page = pdf[index]
            except pdfium.PdfiumError:
                raise ExtractionFailed(PDF_DAMAGED) from None
            try:
                width, height = page.get_size()
                bottom, top = page.get_bbox()[1::2]
                textpage = page.get_textpage()
                try:
                    text = _pdf_page_text(textpage)
                    lines.extend(_pdf_lines(textpage, text, index, bottom, top))
                finally:
                    textpage.close()
            except pdfium.PdfiumError:
                raise ExtractionFailed(PDF_DAMAGED) from None
            finally:
                page.close()
            chars += len(text)
            if chars > limits.max_chars:
                raise ExtractionFailed(TOO_MUCH_TEXT.format(limit=limits.max_chars))
            pages.append(Page(index + 1, text, width, height))
            progress(index + 1, count)
    finally:
        pdf.close()
    if not lines:
        raise ExtractionFailed(PDF_NO_TEXT)
    blocks = _pdf_blocks(pages, lines)
    return Extraction(PDF, pages, blocks, metadata)


def _pdf_load_failure(path: Path, exc: Exception) -> str:
    """Why pdfium could not open the file. pdfium's last-error code is not reset by every
    failure (an empty page tree sets none), so it is checked against the file itself."""
    import pypdfium2.raw as raw

    code = getattr(exc, "err_code", None)
    try:
        with path.open("rb") as f:
            head = f.read(4 * MB)
            f.seek(max(0, f.seek(0, os.SEEK_END) - MB))
            tail = f.read()
    except OSError:
        return PDF_DAMAGED
    encrypted = b"/Encrypt" in head or b"/Encrypt" in tail
    if encrypted and code == raw.FPDF_ERR_PASSWORD:
        return PDF_PASSWORD
    if encrypted and code == raw.FPDF_ERR_SECURITY:
        return PDF_UNSUPPORTED_SECURITY
    # pdfium refuses to open a document whose page tree is empty.
    if re.search(rb"/Count\s+0\b", head) and not re.search(rb"/Type\s*/Page(?![a-zA-Z])", head):
        return PDF_NO_PAGES
    return PDF_DAMAGED


def _pdf_metadata(pdf, count: int) -> dict:
    metadata: dict = {"page_count": count}
    try:
        info = pdf.get_metadata_dict(skip_empty=True)
    except Exception:  # metadata is optional
        info = {}
    for key in ("Title", "Author", "Subject"):
        value = " ".join(str(info.get(key, "")).split())
        if value:
            metadata[key.lower()] = value
    return metadata


_SURROGATE_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
WORD_JOINER = "\u2060"
_WITHOUT_MARKS = str.maketrans(dict.fromkeys(INVISIBLE_MARKS))


def _pdf_page_text(textpage) -> str:
    """pdfium's text for the page with character index == pdfium char index.

    That is FPDFText_GetText (= get_text_range()) when it lines up with the char list,
    with "\r" -> " " and NUL -> U+FFFD (same length; PostgreSQL text cannot hold NUL).
    pdfium counts a character outside the BMP (e.g. math italic letters from Word
    equations) as two chars, its UTF-16 surrogates; such a pair becomes the character
    followed by U+2060 WORD JOINER, so positions still match count_rects/get_rect.
    When the text does not line up with the char list at all, it is rebuilt char by char.
    """
    import ctypes

    import pypdfium2.raw as raw

    count = raw.FPDFText_CountChars(textpage.raw)
    if count <= 0:
        return ""
    buffer = (ctypes.c_ushort * (count + 1))()
    written = raw.FPDFText_GetText(textpage.raw, 0, count, buffer)
    if written == count + 1:
        text = bytes(buffer)[: 2 * count].decode("utf-16-le", "surrogatepass")
        if len(text) != count:  # surrogate pairs were combined: one char per unit instead
            text = "".join(map(chr, buffer[:count]))
    else:
        codes = (raw.FPDFText_GetUnicode(textpage.raw, i) for i in range(count))
        text = "".join(chr(c) if 0 <= c < 0x110000 else "\ufffd" for c in codes)
    if _SURROGATE.search(text):
        text = _SURROGATE_PAIR.sub(
            lambda m: m.group().encode("utf-16-le", "surrogatepass").decode("utf-16-le")
            + WORD_JOINER,
            text,
        )
        text = _SURROGATE.sub("\ufffd", text)
    return text.replace("\r", " ").replace("\x00", "\ufffd")


def _pdf_lines(textpage, text: str, page_index: int, bottom: float, top: float) -> list[_Line]:
    """The non-blank lines of a page with font size, boldness and position sampled from a
    few characters per line (not per character)."""
    import ctypes

    import pypdfium2.raw as raw

    tp = textpage.raw
    x, y = ctypes.c_double(), ctypes.c_double()
    name = ctypes.create_string_buffer(128)
    flags = ctypes.c_int()
    height = (top - bottom) or 1.0
    result = []

    def style(index: int) -> tuple[float, bool]:
        size = raw.FPDFText_GetFontSize(tp, index)
        weight = raw.FPDFText_GetFontWeight(tp, index)
        raw.FPDFText_GetFontInfo(tp, index, name, len(name), ctypes.byref(flags))
        font = name.value
        bold = (
            weight >= 600
            or bool(flags.value & (1 << 18))
            or any(w in font for w in (b"Bold", b"Black", b"Heavy", b"Semibold", b"Demi"))
        )
        return size, bold

    for match in _LINE.finditer(text):
        start, end = match.span()
        middle = start + (end - start) // 2
        samples = [start, end - 1]
        if not text[middle].isspace() and middle not in samples:
            samples.append(middle)
        styles = [style(i) for i in samples]
        sizes = [s for s, _ in styles if s > 0]
        raw.FPDFText_GetCharOrigin(tp, start, ctypes.byref(x), ctypes.byref(y))
        relative = (y.value - bottom) / height
        result.append(
            _Line(
                page=page_index,
                start=start,
                end=end,
                text=match.group(),
                size=round(min(sizes), 1) if sizes else 0.0,
                bold=all(b for _, b in styles),
                x=x.value,
                y=y.value,
                band=relative < _FURNITURE_BAND or relative > 1 - _FURNITURE_BAND,
            )
        )
    return result


def _furniture_key(text: str) -> str:
    return " ".join(re.sub(r"\d+", "#", text.casefold()).split())


# A band line that starts or ends with a page number: "Chapter 2: Installing R 16".
_NUMBERED_BAND_LINE = re.compile(r"^\d{1,4}\s+\S.*|.*\S\s+\d{1,4}$")
# ... is a running header when its text (digits aside) is on this many pages (a chapter
# of two or three pages has its header on one or two).
_CHAPTER_HEADER_PAGES = 2


def _drop_furniture(lines: list[_Line], page_count: int) -> list[_Line]:
    """Lines that are running headers/footers: in the top/bottom band and either a page
    number, the same text (digits aside) on at least half of the pages, or a chapter's
    running header: a page number at its start or end and the same text on at least
    two pages (a Texinfo manual's odd pages: "Chapter 2: Installing R under
    Unix-alikes 16", one chapter's pages only; 1,200 of the evaluation library's
    passages carried one in the middle of their text, quoted by offline answers)."""
    pages_per_key: dict[str, set[int]] = {}
    for line in lines:
        if line.band and len(line.text) <= 150:
            pages_per_key.setdefault(_furniture_key(line.text), set()).add(line.page)
    threshold = max(2, math.ceil(page_count / 2)) if page_count >= 2 else math.inf
    kept = []
    for line in lines:
        if line.band and len(line.text) <= 150:
            if _PAGE_NUMBER.match(line.text):
                continue
            pages = len(pages_per_key[_furniture_key(line.text)])
            if pages >= threshold:
                continue
            if pages >= _CHAPTER_HEADER_PAGES and _NUMBERED_BAND_LINE.match(line.text.strip()):
                continue
        kept.append(line)
    return kept


# A line of a table of contents or an index: a title, a leader, a page number
# ("1.2 Simple Examples . . . . . . 7", "Introduction ........ 2", "sort . . . . 420").
_NAVIGATION_LINE = re.compile(
    r"(?:\.\s?){4,}\s*\d{1,4}\b|(?:\s\.){2,}\s*\d{1,4}\s*$"
    # an entry of a LaTeX book's index (makeindex): "fillstyle, 65–68, 125, 177"
    r"|^[^\d\s][^,]{0,60},\s*\d{1,4}(?:\s*[–-]\s*\d{1,4})?(?:,\s*\d{1,4}(?:\s*[–-]\s*\d{1,4})?)*\s*$"
)
_CONTENTS_TITLE = re.compile(r"^(?:\d+\.?\s+)?(?:table of )?contents$", re.IGNORECASE)
# A page is navigation when at least this many of its lines, and this share, are such lines.
_NAVIGATION_MIN_LINES = 5
_NAVIGATION_SHARE = 0.3


def _drop_navigation(lines: list[_Line]) -> list[_Line]:
    """Lines of the pages that are a table of contents or an index: on such a page the
    "Contents" title and everything from its first leader line to its last. They list
    every topic's name with a page number, so they matched many questions in both search
    legs and were quoted as answers (bench/README.md: 662 of the evaluation library's
    6,285 passages, octave.pdf's 364 of 2,316). A page with a few leader lines among its
    text (a specification table) keeps them; the page text keeps everything."""
    by_page: dict[int, list[int]] = {}
    for i, line in enumerate(lines):
        by_page.setdefault(line.page, []).append(i)
    dropped: set[int] = set()
    for indexes in by_page.values():
        leaders = [i for i in indexes if _NAVIGATION_LINE.search(lines[i].text)]
        if len(leaders) < _NAVIGATION_MIN_LINES or len(leaders) < _NAVIGATION_SHARE * len(indexes):
            continue
        dropped.update(range(leaders[0], leaders[-1] + 1))
        dropped.update(i for i in indexes if _CONTENTS_TITLE.match(lines[i].text.strip()))
    return [line for i, line in enumerate(lines) if i not in dropped]


def _split_long_lines(lines: list[_Line], pages: list[Page]) -> list[_Line]:
    out = []
    for line in lines:
        if line.end - line.start <= MAX_BLOCK_CHARS:
            out.append(line)
            continue
        text = pages[line.page].text
        for s, e in split_long(text, line.start, line.end):
            out.append(
                _Line(line.page, s, e, text[s:e], line.size, line.bold, line.x, line.y, line.band)
            )
    return out


def _mark_heading_candidates(lines: list[_Line], body: float) -> None:
    """Lines that can start a heading, by kind:

    "numbered"  "3.5 Calibration of the chuck" in bold or a larger font (level = depth);
    "weak"      the same in body text (only used when a document has no "numbered");
    "size"      a larger font: bold and 15 % larger than the body, or 30 % larger;
    "bold"      a short bold line in the body size (only when the body is not bold).
    Table-of-contents lines (dot leaders), list items and lines without letters are not.
    """
    body_bold = sum(len(line.text) for line in lines if line.bold and abs(line.size - body) < 0.3)
    body_all = sum(len(line.text) for line in lines if abs(line.size - body) < 0.3) or 1
    bold_body_headings = body_bold / body_all < 0.5
    for line in lines:
        text = line.text
        if len(text) > 150 or _TOC_LEADER.search(text) or not any(c.isalpha() for c in text):
            continue
        larger = line.size - body >= 1 and (
            (line.size >= body * _HEADING_RATIO and line.bold) or line.size >= body * 1.3
        )
        numbered = _NUMBERED.match(text)
        if numbered and text[numbered.end() :][:1].isalpha():
            rest = text[numbered.end() :]
            depth = numbered.group(1).count(".") + 1
            if larger or (line.bold and line.size >= body - 0.3):
                line.candidate, line.depth = "numbered", depth
            elif (
                depth >= 2
                and len(text) <= 80
                and rest[:1].isupper()
                and not text.endswith((".", ";", ","))
            ):
                line.candidate, line.depth = "weak", depth
        elif _LIST_MARKER.match(text) or numbered:
            continue
        elif larger:
            line.candidate = "size"
        elif (
            bold_body_headings
            and line.bold
            and abs(line.size - body) < body * _HEADING_RATIO - body
            and len(text) <= 80
            and text[:1].isalpha()
            and not text.endswith((".", ";", ","))
        ):
            line.candidate = "bold"


def _group_lines(lines: list[_Line]) -> list[list[_Line]]:
    """Lines in runs that form one block: same page, no paragraph gap, same font size,
    no new list item; a heading candidate starts a run, which continues only with lines
    of its own style (a wrapped heading, up to 3 lines)."""
    runs: list[list[_Line]] = []
    run: list[_Line] = []
    length = 0
    for line in lines:
        if run:
            prev = run[-1]
            size = max(line.size, prev.size, 1.0)
            dy = prev.y - line.y
            heading_run = bool(run[0].candidate)
            new = (
                line.page != prev.page
                or bool(line.candidate)
                or bool(_LIST_MARKER.match(line.text))
                or abs(line.size - prev.size) > 0.6
                or dy > _LINE_GAP * size
                or dy < -0.3 * size
                or length + len(line.text) + 1 > MAX_BLOCK_CHARS
                or (heading_run and (line.bold != prev.bold or len(run) >= 3))
            )
            if not new:
                run.append(line)
                length += len(line.text) + 1
                continue
            runs.append(run)
        run, length = [line], len(line.text)
    if run:
        runs.append(run)
    return runs


def _join_lines(run: list[_Line]) -> str:
    parts: list[str] = []
    for line in run:
        text = line.text
        if parts and parts[-1].endswith(_SOFT_HYPHENS):
            parts[-1] = parts[-1][:-1] + text
        else:
            parts.append(text)
    return " ".join(parts).translate(_WITHOUT_MARKS)


def _size_key(size: float) -> float:
    return round(size * 2) / 2


def _heading_levels(runs: list[list[_Line]]) -> dict[int, int]:
    """Which runs are headings (run index -> level).

    A heading is a run of at most 200 characters that starts with a candidate line;
    "weak" and "bold" ones must be a single line. Numbered headings take their depth;
    larger-font headings rank by size (among the numbered headings' sizes when the
    document has those); bold body-size headings go one below the deepest other level.
    """
    kinds: dict[int, str] = {}
    for i, run in enumerate(runs):
        kind = run[0].candidate
        if not kind or sum(len(line.text) for line in run) > 200:
            continue
        if kind in ("weak", "bold") and len(run) > 1:
            continue
        kinds[i] = kind
    if "numbered" in kinds.values():
        kinds = {i: k for i, k in kinds.items() if k != "weak"}
    levels: dict[int, int] = {}
    numbered_sizes = {
        _size_key(runs[i][0].size) for i, k in kinds.items() if k in ("numbered", "weak")
    }
    size_sizes = sorted(
        {_size_key(runs[i][0].size) for i, k in kinds.items() if k == "size"}, reverse=True
    )
    for i, kind in kinds.items():
        first = runs[i][0]
        if kind in ("numbered", "weak"):
            levels[i] = first.depth
        elif kind == "size":
            size = _size_key(first.size)
            if numbered_sizes:
                levels[i] = 1 + sum(1 for s in numbered_sizes if s > size)
            else:
                levels[i] = size_sizes.index(size) + 1
    deepest = max(levels.values(), default=0)
    for i, kind in kinds.items():
        if kind == "bold":
            levels[i] = deepest + 1
    return dict(sorted(levels.items()))


def _pdf_blocks(pages: list[Page], lines: list[_Line]) -> list[Block]:
    lines = _drop_navigation(_drop_furniture(lines, len(pages)))
    lines = _split_long_lines(lines, pages)
    weights: Counter[float] = Counter()
    for line in lines:
        weights[_size_key(line.size)] += len(line.text)
    body = weights.most_common(1)[0][0] if weights else 0.0
    _mark_heading_candidates(lines, body)
    runs = _group_lines(lines)
    levels = _heading_levels(runs)
    outline = Outline()
    blocks: list[Block] = []
    for i, run in enumerate(runs):
        first, last = run[0], run[-1]
        text = _join_lines(run)
        if i in levels:
            parents = outline.enter(levels[i], text)
            blocks.append(
                Block(first.page + 1, "heading", text, first.start, last.end, parents, levels[i])
            )
            continue
        kind: BlockKind = "list" if _LIST_MARKER.match(first.text) else "paragraph"
        blocks.append(Block(first.page + 1, kind, text, first.start, last.end, outline.path))
    return blocks
