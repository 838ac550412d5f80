"""Plain text and Markdown: blocks, headings, tables; markup stripped."""

from __future__ import annotations

import codecs
import logging
import re
from collections import Counter
from pathlib import Path

from documents.extraction.common import (
    BAD_UTF8,
    BAD_UTF16,
    MAX_BLOCK_CHARS,
    NO_TEXT,
    TOO_MUCH_TEXT,
    ExtractionFailed,
    Outline,
    split_long,
)
from documents.filetypes import (
    MARKDOWN,
    TEXT,
    text_encoding,
)
from documents.types import Block, BlockKind, Extraction, Page

logger = logging.getLogger(__name__)

# ============================================================================== Markdown

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ATX_OPENING = re.compile(r" {0,3}(#{1,6})(?=[ \t]|$)")
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_THEMATIC_BREAK = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_MD_LIST_ITEM = re.compile(r"^[ \t]*(?:[-*+]|\d{1,9}[.)])(?:[ \t]+|$)")
_TABLE_DELIMITER = re.compile(r"^[ \t]*\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$")


def read_text(path: Path, max_chars: int) -> str:
    """UTF-8 (BOM stripped) or UTF-16 with BOM, strictly; newlines normalised to \\n."""
    if path.stat().st_size > 4 * max_chars + 4:  # more characters, whatever the encoding
        raise ExtractionFailed(TOO_MUCH_TEXT.format(limit=max_chars))
    data = path.read_bytes()
    codec, bom = text_encoding(data[:4])
    try:
        text = codecs.decode(memoryview(data)[bom:], codec)
    except UnicodeDecodeError as exc:
        reason = BAD_UTF8 if codec == "utf-8" else BAD_UTF16
        raise ExtractionFailed(reason.format(offset=exc.start + bom)) from None
    del data
    if len(text) > max_chars:
        raise ExtractionFailed(TOO_MUCH_TEXT.format(limit=max_chars))
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    return text


def _single_page_extraction(
    mime: str, text: str, blocks: list[Block], metadata: dict
) -> Extraction:
    if not blocks:
        raise ExtractionFailed(NO_TEXT)
    return Extraction(mime, [Page(1, text)], blocks, metadata)


# A plain-text heading is a line underlined by a row of one character of the same length
# (Info manuals, reStructuredText, many READMEs): "2.6 Size" over "--------".
_UNDERLINE = re.compile(r"([=\-.*~^#+])\1{2,}")
_PARAGRAPH_BREAK = re.compile(r"\n(?:[ \t\f\v]*\n)+")
MAX_HEADING_CHARS = 120


def extract_text(text: str) -> Extraction:
    """Paragraphs separated by blank lines, none longer than MAX_BLOCK_CHARS; a line
    underlined by a row of `=`, `-`, `.`, `*`, `~`, `^`, `#` or `+` of its own length is
    a heading (its level by the order in which the characters first appear, as
    reStructuredText does), so passages of a text manual carry a section path."""
    blocks: list[Block] = []
    outline = Outline()
    levels: dict[str, int] = {}

    def paragraphs(start: int, end: int) -> None:
        for s, e in split_long(text, start, end):
            blocks.append(Block(1, "paragraph", text[s:e], s, e, outline.path))

    def block(start: int, end: int) -> None:
        lines = [(m.start(), m.end()) for m in re.finditer(r"[^\n]+", text[start:end])]
        lines = [(start + s, start + e) for s, e in lines]
        rest = start
        i = 0
        while i < len(lines) - 1:
            (ts, te), (us, ue) = lines[i], lines[i + 1]
            title = text[ts:te].rstrip()
            underline = text[us:ue].rstrip()
            if (
                title.strip()
                and not title[0].isspace()
                and len(title) <= MAX_HEADING_CHARS
                and len(underline) == len(title)
                and _UNDERLINE.fullmatch(underline)
                and not _UNDERLINE.fullmatch(title)
            ):
                paragraphs(rest, ts)
                level = levels.setdefault(underline[0], min(len(levels) + 1, 6))
                parents = outline.enter(level, title)
                blocks.append(Block(1, "heading", title, ts, ts + len(title), parents, level))
                rest = ue
                i += 2
                continue
            i += 1
        paragraphs(rest, end)

    position = 0
    for separator in _PARAGRAPH_BREAK.finditer(text):
        block(position, separator.start())
        position = separator.end()
    block(position, len(text))
    return _single_page_extraction(TEXT, text, blocks, {})


def _atx_heading(line: str) -> tuple[int, str, int] | None:
    """(level, text, offset of the text in the line) of an ATX heading line, else None.

    The closing sequence (whitespace, then #s at the end) is dropped. Plain string
    work: a regular expression with a lazy group before optional trailing whitespace
    took quadratic time on a line of spaces (20,000 spaces: 6.6 s).
    """
    opening = _ATX_OPENING.match(line)
    if opening is None:
        return None
    level = len(opening.group(1))
    end = len(line.rstrip(" \t"))
    start = len(line) - len(line[opening.end() :].lstrip(" \t"))
    if start >= end:
        return level, "", len(line)
    text = line[start:end]
    unclosed = text.rstrip("#")
    if unclosed != text and (not unclosed or unclosed[-1] in " \t"):
        text = unclosed.rstrip(" \t")
    return level, text, start


def _is_delimiter_row(line: str) -> bool:
    return "-" in line and bool(_TABLE_DELIMITER.match(line))


def _table_row(line: str) -> str:
    row = line.strip()
    if row.startswith("|"):
        row = row[1:]
    if row.endswith("|") and not row.endswith("\\|"):
        row = row[:-1]
    cells = re.split(r"(?<!\\)\|", row)
    return " | ".join(" ".join(c.split()) for c in cells)


# Markup that is layout, not text: HTML comments (converters' page and position notes,
# e.g. "<!-- text, from page 0 (l=0.1,t=0.2,...) -->"), HTML tags (anchors, divs,
# spans, table cells) and the figure fences of some PDF converters ("<::" ... "::>").
# They are blanked out with spaces (line breaks kept), so offsets stay those of the source.
_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
# A converter's "marginalia" (running headers, footers, page numbers) with its text, up
# to the next blank line or comment: page furniture, as for PDFs.
# (Scans are bounded, so no input makes these expressions take quadratic time.)
_MARGINALIA = re.compile(
    r"<!--[ \t]{0,20}marginalia\b[^\n]{0,500}?-->.*?(?=\n[ \t]*\n|<!--|\Z)", re.DOTALL
)
# Script and style elements go with their content (code, not manual text; unclosed: to
# the end, as a browser reads it).
_SCRIPT = re.compile(r"<(script|style)\b[^>]{0,500}>.*?(?:</\1\s*>|\Z)", re.DOTALL | re.IGNORECASE)
# A tag never spans a blank line (CommonMark's raw HTML cannot either): "cat <<EOF" in a
# shell example is no tag, whatever ">" comes sections later.
_HTML_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9:-]*(?:\s(?:[^<>\n]|\n(?![ \t]*\n))*)?/?>")
_CELL_END = re.compile(r"</t[dh]\s*>", re.IGNORECASE)
_ROW_END = re.compile(r"</tr\s*>", re.IGNORECASE)
_FIGURE_FENCE = re.compile(r"<::|::>")
# Page marks: a form feed, "<!-- PAGE BREAK -->", "<!-- page 7 -->" (that page starts
# here), a line "{6}-----..." (marker's paginated output, 0-based) or a converter's
# position comment "<!-- ..., from page 6 (...) -->" (0-based) that names a later page.
_PAGE_MARK = re.compile(
    r"\f|<!--\s*page[ _-]?break\s*-->|<!--\s*page\s+(?P<page>\d{1,5})\s*-->"
    r"|^\{(?P<marker>\d{1,5})\}-{8,}[ \t]*$|<!--[^\n]{0,200}?\bfrom page (?P<from>\d{1,5})\b",
    re.IGNORECASE | re.MULTILINE,
)
_MARKER_PAGE_LINE = re.compile(r"^\{\d{1,5}\}-{8,}[ \t]*$", re.MULTILINE)
# A heading that is a label ("Analysis :", "**Note:**") is text, not a section title.
_LABEL_HEADING = re.compile(r"[:：][\s*_]*$")
REPEATED_HEADING = 5  # a heading text seen this often (and as 10 % of all) is a label too


def _blank(match: re.Match, fill: str = "") -> str:
    """Spaces for a match (its line breaks kept), optionally ending in `fill`."""
    text = re.sub(r"[^\n]", " ", match.group(0))
    return text[: len(text) - len(fill)] + fill if len(text) >= len(fill) else text


def _strip_markup(text: str) -> str:
    """The Markdown with layout markup blanked out, the same length as the source."""
    text = _MARGINALIA.sub(_blank, text)
    text = _HTML_COMMENT.sub(_blank, text)
    text = _SCRIPT.sub(_blank, text)
    text = _CELL_END.sub(lambda m: _blank(m, " | "), text)
    text = _ROW_END.sub(lambda m: _blank(m, "\n"), text)
    text = _HTML_TAG.sub(_blank, text)
    text = _FIGURE_FENCE.sub(_blank, text)
    text = _MARKER_PAGE_LINE.sub(_blank, text)
    return text.replace("\f", " ")


def _markdown_pages(source: str, clean: str) -> list[tuple[int, int, int]]:
    """(page number, start, end) of each page of the source, from its page marks; one
    page 1 when it has none. A mark's page never goes backwards."""
    pages: list[tuple[int, int, int]] = []
    number, start = 1, 0
    for mark in _PAGE_MARK.finditer(source):
        named = mark.group("page") or mark.group("marker") or mark.group("from")
        if mark.group("page"):
            following = max(1, int(named))
        elif named is not None:
            following = int(named) + 1
        else:
            following = number + 1
        if named is not None and following <= number:
            continue  # the same page again (position comments), or a step back
        if not pages and not clean[start : mark.start()].strip() and named is not None:
            number, start = following, mark.start()  # the mark opens the document
            continue
        pages.append((number, start, mark.start()))
        number, start = min(following, number + 1000), mark.start()
    pages.append((number, start, len(source)))
    return pages


def extract_markdown(source: str) -> Extraction:
    """Headings (ATX, setext; not in fenced code), paragraphs, list items, pipe tables and
    fenced code (as a paragraph). Layout markup is blanked out (_strip_markup) and the
    source is cut into pages at its page marks; offsets are into each page's text, the
    source's with its markup blanked."""
    clean = _strip_markup(source)
    outline = Outline()
    blocks: list[Block] = []
    metadata: dict = {}
    titles = [" ".join(h[1].split()) for h in map(_atx_heading, clean.split("\n")) if h and h[1]]
    counts = Counter(titles)
    labels = {t for t, n in counts.items() if n >= REPEATED_HEADING and n * 10 >= len(titles)}
    pages: list[Page] = []
    for number, start, end in _markdown_pages(source, clean):
        while len(pages) + 1 < number:  # pages without text between marks
            pages.append(Page(len(pages) + 1, ""))
        text = clean[start:end]
        pages.append(Page(number, text))
        _markdown_blocks(text, number, outline, blocks, metadata, labels)
    if not blocks:
        raise ExtractionFailed(NO_TEXT)
    return Extraction(MARKDOWN, pages, blocks, metadata)


def _markdown_blocks(
    text: str,
    page: int,
    outline: Outline,
    blocks: list[Block],
    metadata: dict,
    labels: set[str],
) -> None:
    """The blocks of one page of Markdown, appended to blocks."""
    lines = text.split("\n")
    starts = [0] * (len(lines) + 1)
    position = 0
    for i, line in enumerate(lines):
        starts[i] = position
        position += len(line) + 1
    starts[len(lines)] = position

    def add(kind: BlockKind, first: int, last: int) -> None:
        s, e = starts[first], starts[last] + len(lines[last])
        for ps, pe in split_long(text, s, e):
            if text[ps:pe].strip():
                blocks.append(Block(page, kind, text[ps:pe], ps, pe, outline.path))

    def table(first: int, stop: int) -> None:
        """Rows first..stop-1 as table blocks of at most MAX_BLOCK_CHARS (delimiter row dropped)."""
        group: list[str] = []
        size = 0
        group_start = group_end = 0

        def flush() -> None:
            if group:
                blocks.append(
                    Block(page, "table", "\n".join(group), group_start, group_end, outline.path)
                )
                group.clear()

        for k in range(first, stop):
            if _is_delimiter_row(lines[k]):
                continue
            row = _table_row(lines[k])
            s, e = starts[k], starts[k] + len(lines[k])
            if len(row) > MAX_BLOCK_CHARS:
                flush()
                for ps, pe in split_long(text, s, e):
                    blocks.append(Block(page, "table", text[ps:pe], ps, pe, outline.path))
                size = 0
                continue
            if group and size + len(row) + 1 > MAX_BLOCK_CHARS:
                flush()
            if not group:
                size = 0
                group_start = s + len(lines[k]) - len(lines[k].lstrip())
            group.append(row)
            size += len(row) + 1
            group_end = s + len(lines[k].rstrip())
        flush()

    def heading(level: int, content: str, s: int, e: int) -> None:
        content = " ".join(content.split())
        if not content:
            return
        if content in labels or _LABEL_HEADING.search(content):
            blocks.append(Block(page, "paragraph", text[s:e], s, e, outline.path))
            return
        if level == 1 and "title" not in metadata:
            metadata["title"] = content
        parents = outline.enter(level, content)
        blocks.append(Block(page, "heading", content, s, e, parents, level))

    def starts_block(line: str) -> bool:
        return bool(
            _atx_heading(line) is not None
            or _FENCE.match(line)
            or _MD_LIST_ITEM.match(line)
            or _THEMATIC_BREAK.match(line)
        )

    count = len(lines)
    i = 0
    if lines and lines[0].strip() == "---":  # YAML front matter
        for j in range(1, min(count, 200)):
            if lines[j].strip() in ("---", "..."):
                i = j + 1
                break
    while i < count:
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        fence = _FENCE.match(line)
        if fence:
            marker = fence.group(1)
            closing = re.compile(
                r"^ {0,3}" + re.escape(marker[0]) + "{" + str(len(marker)) + r",}[ \t]*$"
            )
            j = i + 1
            while j < count and not closing.match(lines[j]):
                j += 1
            add("paragraph", i, min(j, count - 1))
            i = j + 1
            continue
        atx = _atx_heading(line)
        if atx is not None:
            level, content, offset = atx
            s = starts[i] + offset
            heading(level, content, s, s + len(content))
            i += 1
            continue
        if _THEMATIC_BREAK.match(line):
            i += 1
            continue
        if "|" in line and (
            (i + 1 < count and _is_delimiter_row(lines[i + 1])) or line.lstrip().startswith("|")
        ):
            j = i
            while j < count and "|" in lines[j] and lines[j].strip():
                j += 1
            if j - i >= 2:
                table(i, j)
                i = j
                continue
        if _MD_LIST_ITEM.match(line):
            j = i + 1
            while (
                j < count
                and lines[j].strip()
                and not starts_block(lines[j])
                and not _SETEXT_UNDERLINE.match(lines[j])
            ):
                j += 1
            add("list", i, j - 1)
            i = j
            continue
        # a paragraph, or a setext heading when underlined
        j = i + 1
        underline = None
        while j < count and lines[j].strip():
            if _SETEXT_UNDERLINE.match(lines[j]):
                underline = lines[j].strip()[0]
                break
            if starts_block(lines[j]):
                break
            j += 1
        if underline:
            s, e = next(split_long(text, starts[i], starts[j - 1] + len(lines[j - 1]), len(text)))
            heading(1 if underline == "=" else 2, text[s:e], s, e)
            i = j + 1
            continue
        add("paragraph", i, j - 1)
        i = j
