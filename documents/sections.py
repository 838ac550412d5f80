"""Sections of documents without page images (Markdown, plain text, DOCX) for the
citation viewer: which part of the page text a section is, and that part as safe HTML
with the cited passage in <mark>.

A document without page marks is one long page; its sections are the runs of
consecutive chunks that share a heading path (Chunk.section), numbered from 1 in
reading order. A section runs from the start of the line of its first chunk up to the
next section, so the heading line is part of it.

Rendering is safe by construction: Markdown goes through markdown-it-py with raw HTML
off (the document's tags are shown as text), links become inert text (their address in
a title, never an href) and images become their alt text (nothing is loaded from the
network). DOCX and plain text are built from their stored blocks
(DocumentContent.blocks) with every character escaped. The passage is marked by two
private-use characters put into the source before rendering, which are turned into
<mark> elements around each run of text between them afterwards (so a passage over
several paragraphs or table cells gives one mark per text run, never broken nesting).
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass

from django.core.cache import cache
from django.db import connection
from markdown_it import MarkdownIt

from documents.filetypes import MARKDOWN
from documents.models import Chunk

START, STOP = "\ue000", "\ue001"
_SENTINELS = re.compile(f"[{START}{STOP}]")
_TAG = re.compile(r"(<[^>]*>)")
_FENCE = re.compile(r"^ {0,3}(?:`{3,}|~{3,})")
# What opens a Markdown line and is not text: heading, list, quote and table marks.
_LINE_MARKUP = re.compile(r"[ \t]*(?:(?:#{1,6}|[-*+]|\d{1,9}[.)]|>)[ \t]+|\|[ \t]*)*")
SAFE_LINK_SCHEMES = ("http://", "https://", "mailto:")


@dataclass(frozen=True)
class Section:
    number: int  # 1-based, in reading order
    title: str  # the heading path ("Manual › Setup"), "" before the first heading
    start: int  # offsets in the page text
    end: int


SECTIONS_CACHE_S = 24 * 3600


def page_sections(document_id: int, page_text: str, version: str = "") -> list[Section]:
    """The sections of a one-page document, from its chunks; cached under `version`
    (what changes when the chunks are replaced: the document's ready_at)."""
    key = f"viewer:sections:{document_id}:{version}" if version else None
    cached = cache.get(key) if key else None
    if cached is None:
        cached = _page_sections(document_id, page_text)
        if key:
            cache.set(key, cached, SECTIONS_CACHE_S)
    return [Section(i, title, start, end) for i, (title, start, end) in enumerate(cached, 1)]


def _page_sections(document_id: int, page_text: str) -> list[tuple[str, int, int]]:
    rows = (
        Chunk.objects.filter(document_id=document_id, first_page=1, last_page=1)
        .order_by("index")
        .values_list("index", "section", "start_offset")
    )
    runs: list[tuple[str, int]] = []  # (title, start)
    last_index = None
    for index, title, start in rows:
        if runs and title == runs[-1][0] and index == (last_index or 0) + 1:
            last_index = index
            continue
        line_start = page_text.rfind("\n", 0, min(start, len(page_text))) + 1
        if runs and line_start <= runs[-1][1]:  # never backwards
            line_start = min(max(start, runs[-1][1] + 1), len(page_text))
        runs.append((title, line_start))
        last_index = index
    return [
        (title, start, runs[i][1] if i < len(runs) else len(page_text))
        for i, (title, start) in enumerate(runs, 1)
    ]


def section_at(sections: list[Section], position: int) -> Section | None:
    """The section holding the page text offset `position`."""
    found = None
    for section in sections:
        if section.start > position:
            break
        found = section
    return found or (sections[0] if sections else None)


# ============================================================================ rendering


def render(
    mime_type: str,
    page_text: str,
    start: int,
    end: int,
    passage: tuple[int, int] | None,
    blocks: list | None = None,
) -> str:
    """page_text[start:end] as HTML with passage (offsets in page_text) marked."""
    if passage is not None:
        passage = (max(passage[0], start), min(passage[1], end))
        if passage[0] >= passage[1]:
            passage = None
    if mime_type == MARKDOWN:
        return render_markdown(page_text[start:end], _shift(passage, -start))
    return render_blocks(
        page_text, start, end, blocks or _paragraphs(page_text, start, end), passage
    )


def _shift(passage: tuple[int, int] | None, delta: int) -> tuple[int, int] | None:
    return None if passage is None else (passage[0] + delta, passage[1] + delta)


# --- Markdown ---------------------------------------------------------------------------


def _link_open(self, tokens, idx, options, env) -> str:
    href = tokens[idx].attrGet("href") or ""
    title = f' title="{html.escape(href)}"' if href.lower().startswith(SAFE_LINK_SCHEMES) else ""
    return f'<span class="doc-link"{title}>'


def _link_close(self, tokens, idx, options, env) -> str:
    return "</span>"


def _image(self, tokens, idx, options, env) -> str:
    alt = self.renderInlineAsText(tokens[idx].children or [], options, env)
    return f'<span class="doc-image">[{html.escape(alt) if alt else "image"}]</span>'


_md = (
    MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    .enable(["table", "strikethrough"])
    # Converted manuals have layout markup blanked to spaces (documents.extraction.text):
    # an indented line is not code there.
    .disable("code")
)
_md.add_render_rule("link_open", _link_open)
_md.add_render_rule("link_close", _link_close)
_md.add_render_rule("image", _image)


def render_markdown(text: str, passage: tuple[int, int] | None) -> str:
    text = _SENTINELS.sub("\ufffd", text)
    if passage is not None:
        start, end = _markdown_start(text, passage[0]), _markdown_end(text, passage[1])
        if start < end:
            text = text[:start] + START + text[start:end] + STOP + text[end:]
    tokens = _md.parse(text)
    for token in tokens:
        # Aligned table columns: a class, not a style attribute (the CSP allows no inline
        # styles).
        style = token.attrGet("style") if token.type in ("th_open", "td_open") else None
        if style:
            del token.attrs["style"]
            align = style.removeprefix("text-align:")
            if align in ("left", "center", "right"):
                token.attrSet("class", f"align-{align}")
    return _marks(_md.renderer.render(tokens, _md.options, {}))


def _markdown_start(text: str, start: int) -> int:
    """A passage that starts a line starts after the line's markup ("## ", "- ", "| "),
    or after a code fence, so the mark does not change what the line is."""
    line_start = text.rfind("\n", 0, start) + 1
    if text[line_start:start].strip():
        return start
    line_end = text.find("\n", start)
    line_end = len(text) if line_end < 0 else line_end
    if _FENCE.match(text[line_start:line_end]):
        return min(line_end + 1, len(text))
    return _LINE_MARKUP.match(text, start).end()


def _markdown_end(text: str, end: int) -> int:
    """A passage that ends a table row ends before its closing "|"; one that ends with a
    code fence ends before the fence."""
    line_start = text.rfind("\n", 0, end) + 1
    line = text[line_start:end]
    if _FENCE.match(line) and line_start > 0:
        return line_start - 1
    if line.lstrip().startswith("|"):
        return line_start + len(line.rstrip(" \t|"))
    return end


def _marks(rendered: str) -> str:
    """Every run of text between START and STOP in <mark>; the sentinels removed."""
    out: list[str] = []
    active = False
    for part in _TAG.split(rendered):
        if part.startswith("<"):
            for char in _SENTINELS.findall(part):  # inside an attribute: toggle, drop
                active = char == START
            out.append(_SENTINELS.sub("", part))
            continue
        for piece in re.split(f"([{START}{STOP}])", part):
            if piece in (START, STOP):
                active = piece == START
            elif piece:
                out.append(f"<mark>{piece}</mark>" if active and piece.strip() else piece)
    return "".join(out)


# --- DOCX and plain text ----------------------------------------------------------------


def stored_blocks(document_id: int, start: int, end: int) -> list[list]:
    """The stored blocks (DocumentContent.blocks) that overlap start..end, picked out by
    PostgreSQL: a long manual has tens of thousands."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COALESCE(jsonb_agg(e.block ORDER BY e.n), '[]'::jsonb)"
            " FROM documents_documentcontent c,"
            " jsonb_array_elements(c.blocks) WITH ORDINALITY AS e(block, n)"
            " WHERE c.document_id = %s"
            " AND (e.block->>1)::bigint > %s AND (e.block->>0)::bigint < %s",
            [document_id, start, end],
        )
        row = cursor.fetchone()
    blocks = row[0] if row else []
    return json.loads(blocks) if isinstance(blocks, str) else blocks


def _paragraphs(page_text: str, start: int, end: int) -> list[list]:
    """Blocks of text separated by blank lines (documents stored before blocks were)."""
    return [
        [start + m.start(), start + m.start() + len(m.group().rstrip()), "p", 0]
        for m in re.finditer(r"\S(?:.|\n(?![ \t]*\n))*", page_text[start:end])
    ]


def _marked(text: str, a: int, b: int, passage: tuple[int, int] | None) -> str:
    if passage is None or passage[1] <= a or passage[0] >= b:
        return html.escape(text[a:b])
    p0, p1 = max(a, passage[0]), min(b, passage[1])
    return (
        html.escape(text[a:p0])
        + f"<mark>{html.escape(text[p0:p1])}</mark>"
        + html.escape(text[p1:b])
    )


def render_blocks(
    page_text: str,
    start: int,
    end: int,
    blocks: list,
    passage: tuple[int, int] | None,
) -> str:
    parts: list[str] = []
    in_list = False
    for block_start, block_end, kind, level in blocks:
        a, b = max(block_start, start), min(block_end, end)
        if a >= b:
            continue
        if kind == "l":
            if not in_list:
                parts.append("<ul>")
                in_list = True
            parts.append(f"<li>{_marked(page_text, a, b, passage)}</li>")
            continue
        if in_list:
            parts.append("</ul>")
            in_list = False
        if kind == "h":
            n = min(max(int(level), 1), 6)
            parts.append(f"<h{n}>{_marked(page_text, a, b, passage)}</h{n}>")
        elif kind == "t":
            parts.append(_table(page_text, a, b, passage))
        else:
            parts.append(f"<p>{_marked(page_text, a, b, passage)}</p>")
    if in_list:
        parts.append("</ul>")
    return "\n".join(parts)


def _table(page_text: str, a: int, b: int, passage: tuple[int, int] | None) -> str:
    """Rows are lines, cells are separated by " | " (documents.extraction.docx)."""
    rows = []
    for line in re.finditer(r"[^\n]+", page_text[a:b]):
        line_start, line_end = a + line.start(), a + line.end()
        cells, position = [], line_start
        for separator in re.finditer(r" \| ", page_text[line_start:line_end]):
            cells.append((position, line_start + separator.start()))
            position = line_start + separator.end()
        cells.append((position, line_end))
        rows.append("".join(f"<td>{_marked(page_text, s, e, passage)}</td>" for s, e in cells))
    body = "".join(f"<tr>{row}</tr>" for row in rows)
    return f"<table><tbody>{body}</tbody></table>"
