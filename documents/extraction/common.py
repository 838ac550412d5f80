"""What every extractor shares: limits, the reasons shown to people, block helpers."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from documents.filetypes import (
    ZIP_MAX_ENTRIES,
)
from documents.types import Block, BlockKind, Extraction, Page

logger = logging.getLogger(__name__)

MB = 1024 * 1024
MAX_BLOCK_CHARS = 2000  # no block is longer: long paragraphs are split (at whitespace)

ProgressCallback = Callable[[int, int], None]

# Reasons shown to people (ExtractionFailed.reason).
PDF_PASSWORD = "The PDF is password protected."  # noqa: S105 - a message, not a password
PDF_UNSUPPORTED_SECURITY = "The PDF is encrypted in a way that is not supported."
PDF_NO_TEXT = "No text found (scanned document?)."
PDF_NO_PAGES = "The PDF has no pages."
PDF_DAMAGED = "The PDF is damaged or incomplete."
PAGE_LIMIT = "The document has {pages} pages; the limit is {limit}."
TIMEOUT = "Extraction took longer than {seconds:g} s and was stopped."
OUT_OF_MEMORY = "Extraction needed more than {mb} MB of memory and was stopped."
CRASHED = "The file crashed the extraction (signal {signal}); it is probably damaged."
TOO_MUCH_TEXT = (
    "The document has more than {limit:,} characters of text, the most that is processed."
)
DOCX_TOO_BIG = "The DOCX file expands to more than {mb} MB (zip bomb?)."
DOCX_RATIO = "The DOCX file contains a part that is compressed suspiciously well (zip bomb?)."
DOCX_ENTITIES = "The DOCX file contains XML entity declarations, which are not allowed."
DOCX_DAMAGED = "The DOCX file is damaged."
DOCX_ENCRYPTED = "The DOCX file is password protected."
DOCX_TOO_MANY_FILES = "The DOCX file contains more than {limit:,} files."
BAD_UTF8 = "The file is not valid UTF-8 text (first bad byte at offset {offset})."
BAD_UTF16 = "The file is not valid UTF-16 text (first bad byte at offset {offset})."
NO_TEXT = "The document contains no text."
UNSUPPORTED = "Files of type {mime} cannot be extracted."
UNEXPECTED = "Extraction failed unexpectedly: {detail}"


@dataclass
class Limits:
    timeout_s: float = 120
    memory_mb: int = 1024  # address space of the child process (RLIMIT_AS)
    max_pages: int = 2000
    max_unpacked_mb: int = 200  # DOCX: total uncompressed size of the zip members
    max_zip_entries: int = ZIP_MAX_ENTRIES  # DOCX: files in the zip
    max_chars: int = 10_000_000  # extracted text (every character is chunked and embedded)


class ExtractionFailed(Exception):
    """Extraction is impossible; `reason` is a sentence for the person who uploaded."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# ===================================================================== shared block helpers

_NON_SPACE = re.compile(r"\S")


def split_long(text: str, start: int, end: int, limit: int = MAX_BLOCK_CHARS) -> Iterator[tuple]:
    """(start, end) pieces of text[start:end] without surrounding whitespace, each at most
    `limit` characters, cut at whitespace when there is some in the second half of the
    window, else hard. Bounded work per piece, so a 50 MB single line is fine."""
    pos = start
    while True:
        match = _NON_SPACE.search(text, pos, end)
        if match is None:
            return
        pos = match.start()
        if end - pos <= limit:
            yield pos, pos + len(text[pos:end].rstrip())
            return
        window_end = pos + limit
        lower = pos + limit // 2
        cut = max(text.rfind(" ", lower, window_end), text.rfind("\n", lower, window_end))
        if cut <= pos:
            cut = max(text.rfind("\t", lower, window_end), text.rfind("\u3000", lower, window_end))
        if cut <= pos:
            cut = window_end
        piece_end = pos + len(text[pos:cut].rstrip())
        if piece_end > pos:
            yield pos, piece_end
        pos = cut


class Outline:
    """The current heading path; `path` is a new list whenever it changes (shared by blocks)."""

    def __init__(self) -> None:
        self._stack: list[tuple[int, str]] = []
        self.path: list[str] = []

    def enter(self, level: int, text: str) -> list[str]:
        """Open a heading; returns its parents (the path it sits in)."""
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        parents = [t for _, t in self._stack]
        self._stack.append((level, text))
        self.path = [*parents, text]
        return parents


class SinglePage:
    """Builds the one page of non-paginated formats from block texts joined by blank lines."""

    SEPARATOR = "\n\n"

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.blocks: list[Block] = []
        self.outline = Outline()

    def heading(self, level: int, text: str) -> None:
        text = " ".join(text.split())
        if not text:
            return
        parents = self.outline.enter(level, text)
        self._append("heading", text, parents, level)

    def add(self, kind: BlockKind, text: str) -> None:
        text = text.strip()
        for s, e in split_long(text, 0, len(text)):
            self._append(kind, text[s:e], self.outline.path, 0)

    def table(self, rows: list[str]) -> None:
        group: list[str] = []
        size = 0
        for row in rows:
            if len(row) > MAX_BLOCK_CHARS:
                if group:
                    self._append("table", "\n".join(group), self.outline.path, 0)
                    group, size = [], 0
                for s, e in split_long(row, 0, len(row)):
                    self._append("table", row[s:e], self.outline.path, 0)
                continue
            if group and size + len(row) + 1 > MAX_BLOCK_CHARS:
                self._append("table", "\n".join(group), self.outline.path, 0)
                group, size = [], 0
            group.append(row)
            size += len(row) + 1
        if group:
            self._append("table", "\n".join(group), self.outline.path, 0)

    def _append(self, kind: BlockKind, text: str, headings: list[str], level: int) -> None:
        if self.parts:
            self.parts.append(self.SEPARATOR)
            self.length += len(self.SEPARATOR)
        start = self.length
        self.parts.append(text)
        self.length += len(text)
        self.blocks.append(Block(1, kind, text, start, self.length, headings, level))

    def extraction(self, mime: str, metadata: dict) -> Extraction:
        text = "".join(self.parts)
        return Extraction(mime, [Page(1, text)], self.blocks, metadata)
