"""Plain data passed between extraction, chunking and embedding (no Django here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

BlockKind = Literal["heading", "paragraph", "list", "table"]

# Characters a PDF page's text holds where pdfium has a character position but a reader
# sees nothing: U+2060 after a character outside the BMP (see Page), and U+FFFE, pdfium's
# mark for a word hyphenated at a line end (the hyphen and the line break dropped:
# "instal\ufffelation"). Block text leaves them out, so a word split by TeX's
# hyphenation is one word for both search legs; offsets are mapped past them.
INVISIBLE_MARKS = "\u2060\ufffe"


@dataclass
class Page:
    """One page of extracted text.

    For PDFs `text` has exactly the length of pdfium's text for the page and the same
    character positions, so an offset range in it is a character range for pypdfium2's
    PdfTextPage (get_rect/count_rects) when highlighting. Only same-length substitutions
    are made: "\\r" becomes " ", NUL becomes U+FFFD (PostgreSQL cannot store NUL), and a
    character outside the BMP (two positions in pdfium) is followed by U+2060.
    Non-paginated formats (DOCX, Markdown, text) have a single page 1; width and height
    are 0 there.
    """

    number: int  # 1-based
    text: str
    width: float = 0.0  # PDF points
    height: float = 0.0


@dataclass
class Block:
    """A run of text in reading order: a heading, a paragraph, a list item or a table row group."""

    page: int  # 1-based page the block starts on
    kind: BlockKind
    text: str
    start: int  # offset of the block's first character in Page.text of `page`
    end: int  # offset just past its last character in that page (same page only)
    # Enclosing headings, outermost first (for a heading block: its parents only).
    headings: list[str] = field(default_factory=list)
    level: int = 0  # heading level for kind="heading" (1 = top)


@dataclass
class Extraction:
    mime: str
    pages: list[Page]
    blocks: list[Block]
    metadata: dict = field(default_factory=dict)  # title, author, ... (JSON-serialisable)

    @property
    def page_count(self) -> int:
        return len(self.pages)

    @property
    def char_count(self) -> int:
        return sum(len(p.text) for p in self.pages)


@dataclass
class ChunkDraft:
    """A chunk before it is saved: what documents.models.Chunk stores."""

    index: int
    content: str  # the text that is embedded and searched (heading context included)
    first_page: int
    last_page: int
    section: str  # heading path joined with " › "
    token_count: int
    start: int  # offset in first_page's Page.text
    end: int  # offset in last_page's Page.text
