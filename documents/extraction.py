"""Text extraction from uploaded documents, in a child process with limits.

`extract_file()` is what the ingestion pipeline calls: the work runs in a child process
(multiprocessing "forkserver": the Django parent is threaded and holds DB connections,
so it must never fork) with an address-space limit (RLIMIT_AS) set in the child and a
wall-time limit enforced by the parent, which kills the child. Progress (pages done,
pages total) flows back through a pipe. Every failure becomes ExtractionFailed with a
`reason` that can be shown to the person who uploaded the file.

`extract_in_process()` does the same extraction without a child (no memory or time
limit); the child calls it, and tests use it for speed.

Formats: PDF (pypdfium2), DOCX (python-docx), Markdown and plain text. The output is
documents.types.Extraction: pages with their text, and blocks (headings, paragraphs,
list items, tables) with offsets into the page text and the heading path.
"""

from __future__ import annotations

import codecs
import contextlib
import logging
import math
import multiprocessing
import os
import re
import signal
import time
import traceback
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path

from documents.filetypes import (
    DOCX,
    MARKDOWN,
    PDF,
    TEXT,
    ZIP_MAX_ENTRIES,
    text_encoding,
    zip_too_many_entries,
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


# ============================================================================ entry points


def extract_in_process(
    path: Path,
    mime: str,
    *,
    limits: Limits | None = None,
    on_progress: ProgressCallback | None = None,
) -> Extraction:
    """Extract in this process (no memory or time limit; the page and zip limits apply)."""
    limits = limits or Limits()
    path = Path(path)
    progress = on_progress or _no_progress
    if mime == PDF:
        return _extract_pdf(path, limits, progress)
    if mime == DOCX:
        return _extract_docx(path, limits, progress)
    if mime in (MARKDOWN, TEXT):
        progress(0, 1)
        text = _read_text(path, limits.max_chars)
        extraction = _extract_markdown(text) if mime == MARKDOWN else _extract_text(text)
        progress(1, 1)
        return extraction
    raise ExtractionFailed(UNSUPPORTED.format(mime=mime))


def extract_file(
    path: Path,
    mime: str,
    *,
    limits: Limits | None = None,
    on_progress: ProgressCallback | None = None,
) -> Extraction:
    """Extract in a child process with the memory and time limits of `limits`.

    `on_progress(pages_done, pages_total)` is called in this (the parent) process.
    Raises ExtractionFailed; the child is always gone when this returns.
    """
    limits = limits or Limits()
    ctx = _context()
    receiver, sender = ctx.Pipe(duplex=False)
    child = ctx.Process(
        target=_child_main,
        args=(sender, str(path), mime, limits),
        name="rra-extraction",
        daemon=True,
    )
    deadline = time.monotonic() + limits.timeout_s
    child.start()
    sender.close()
    try:
        payload = _receive(receiver, child, deadline, limits, on_progress)
    finally:
        if child.is_alive():
            child.kill()
        child.join(10)
        receiver.close()
    return _unpack(payload)


# ===================================================================== child process plumbing

_EXIT_MEMORY = 86  # the child ran out of memory and could not even report it
# pdfium aborts when an allocation fails; the kernel's OOM killer sends SIGKILL.
_MEMORY_SIGNALS = (signal.SIGABRT, signal.SIGKILL)
_PROGRESS_INTERVAL_S = 0.1
_context_cache: multiprocessing.context.BaseContext | None = None


def _context() -> multiprocessing.context.BaseContext:
    """The forkserver context (spawn where forkserver does not exist).

    The fork server is a fresh single-threaded interpreter started once; it preloads
    this module and the parsers, so each extraction child is a cheap fork of it and
    never a fork of the (threaded) caller.
    """
    global _context_cache
    if _context_cache is None:
        if "forkserver" in multiprocessing.get_all_start_methods():
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload([__name__, "pypdfium2", "docx", "lxml.etree"])
        else:  # pragma: no cover - not Linux
            ctx = multiprocessing.get_context("spawn")
        _context_cache = ctx
    return _context_cache


def _receive(receiver, child, deadline: float, limits: Limits, on_progress) -> tuple:
    """Read the child's messages until its result; turn its failures into ExtractionFailed."""
    child_exited = False
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            child.kill()
            raise ExtractionFailed(TIMEOUT.format(seconds=limits.timeout_s))
        ready = wait([receiver, child.sentinel], remaining)
        if not ready:
            continue
        if receiver in ready or receiver.poll():
            try:
                message = receiver.recv()
            except (EOFError, OSError):
                break
            kind = message[0]
            if kind == "progress":
                if on_progress is not None:
                    on_progress(message[1], message[2])
            elif kind == "ok":
                return message[1]
            elif kind == "failed":
                raise ExtractionFailed(message[1])
            elif kind == "memory":
                raise ExtractionFailed(OUT_OF_MEMORY.format(mb=limits.memory_mb))
            elif kind == "crash":
                logger.error("extraction child crashed: %s", message[2])
                raise ExtractionFailed(UNEXPECTED.format(detail=message[1]))
            continue
        if child_exited:
            break
        child_exited = True  # read what it may still have written, then give up
    child.join(10)
    code = child.exitcode
    if code is not None and code < 0 and -code not in _MEMORY_SIGNALS:
        logger.warning("extraction child died with exit code %s", code)
        raise ExtractionFailed(CRASHED.format(signal=_signal_name(-code)))
    if code == _EXIT_MEMORY or (code is not None and code < 0):
        logger.warning("extraction child died with exit code %s", code)
        raise ExtractionFailed(OUT_OF_MEMORY.format(mb=limits.memory_mb))
    raise ExtractionFailed(
        UNEXPECTED.format(detail=f"the extraction process exited with code {code}.")
    )


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _child_main(sender, path: str, mime: str, limits: Limits) -> None:
    """Runs in the child: limit memory, extract, send the result (or the failure)."""
    try:
        _limit_memory(limits.memory_mb)
        last = 0.0

        def progress(done: int, total: int) -> None:
            nonlocal last
            now = time.monotonic()
            if done in (0, total) or now - last >= _PROGRESS_INTERVAL_S:
                last = now
                sender.send(("progress", done, total))

        extraction = extract_in_process(Path(path), mime, limits=limits, on_progress=progress)
        payload = _pack(extraction)
        del extraction
        sender.send(("ok", payload))
    except ExtractionFailed as exc:
        sender.send(("failed", exc.reason))
    except MemoryError:
        try:
            sender.send(("memory",))
        except BaseException:
            os._exit(_EXIT_MEMORY)
    except BaseException as exc:
        detail = f"{type(exc).__name__}: {exc}"[:500]
        try:
            sender.send(("crash", detail, traceback.format_exc()))
        except MemoryError:
            os._exit(_EXIT_MEMORY)
    finally:
        sender.close()


def _limit_memory(memory_mb: int) -> None:
    import resource

    limit = memory_mb * MB
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _pack(extraction: Extraction) -> tuple:
    """A compact picklable form: tuples, and no block text that is just a page-text slice."""
    texts = {page.number: page.text for page in extraction.pages}
    blocks = []
    for b in extraction.blocks:
        text = None if texts[b.page][b.start : b.end] == b.text else b.text
        blocks.append((b.page, b.kind, text, b.start, b.end, b.headings, b.level))
    pages = [(p.number, p.text, p.width, p.height) for p in extraction.pages]
    return extraction.mime, pages, blocks, extraction.metadata


def _unpack(payload: tuple) -> Extraction:
    mime, page_tuples, block_tuples, metadata = payload
    pages = [Page(*t) for t in page_tuples]
    texts = {page.number: page.text for page in pages}
    blocks = [
        Block(
            page=page,
            kind=kind,
            text=texts[page][start:end] if text is None else text,
            start=start,
            end=end,
            headings=list(headings),
            level=level,
        )
        for page, kind, text, start, end, headings, level in block_tuples
    ]
    return Extraction(mime=mime, pages=pages, blocks=blocks, metadata=metadata)


def _no_progress(done: int, total: int) -> None:
    pass


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


class _Outline:
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


class _SinglePage:
    """Builds the one page of non-paginated formats from block texts joined by blank lines."""

    SEPARATOR = "\n\n"

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.blocks: list[Block] = []
        self.outline = _Outline()

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


def _extract_pdf(path: Path, limits: Limits, progress: ProgressCallback) -> Extraction:
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


def _drop_furniture(lines: list[_Line], page_count: int) -> list[_Line]:
    """Lines that are running headers/footers: in the top/bottom band and either a page
    number or the same text (digits aside) on at least half of the pages."""
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
            if len(pages_per_key[_furniture_key(line.text)]) >= threshold:
                continue
        kept.append(line)
    return kept


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
    return " ".join(parts).replace(WORD_JOINER, "")


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
    lines = _drop_furniture(lines, len(pages))
    lines = _split_long_lines(lines, pages)
    weights: Counter[float] = Counter()
    for line in lines:
        weights[_size_key(line.size)] += len(line.text)
    body = weights.most_common(1)[0][0] if weights else 0.0
    _mark_heading_candidates(lines, body)
    runs = _group_lines(lines)
    levels = _heading_levels(runs)
    outline = _Outline()
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


# =================================================================================== DOCX

_MEMBER_RATIO = 200
_MEMBER_RATIO_MIN_BYTES = 10 * MB
_SCAN_CHUNK = 1 * MB
_ENTITY_PATTERNS = tuple(
    marker.encode(codec)
    for marker in ("<!DOCTYPE", "<!ENTITY")
    for codec in ("utf-8", "utf-16-le", "utf-16-be")
)
_OVERLAP = max(len(p) for p in _ENTITY_PATTERNS)


def _check_docx_archive(path: Path, limits: Limits) -> None:
    """Before python-docx parses anything: sizes from the zip directory (zip bombs) and
    no DTDs in any member (entity expansion, external entities).

    zipfile never returns more than a member's declared size, so the directory sizes
    can be trusted. python-docx's lxml parser already has resolve_entities=False; the
    scan makes that independent of library defaults and rejects such files outright.
    """
    try:
        with path.open("rb") as f:
            if zip_too_many_entries(f, limits.max_zip_entries):
                raise ExtractionFailed(DOCX_TOO_MANY_FILES.format(limit=limits.max_zip_entries))
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        raise ExtractionFailed(DOCX_DAMAGED) from None
    with archive:
        members = archive.infolist()
        if sum(m.file_size for m in members) > limits.max_unpacked_mb * MB:
            raise ExtractionFailed(DOCX_TOO_BIG.format(mb=limits.max_unpacked_mb))
        if any(m.flag_bits & 0x1 for m in members):  # traditional or AES zip encryption
            raise ExtractionFailed(DOCX_ENCRYPTED)
        for m in members:
            if m.file_size > _MEMBER_RATIO_MIN_BYTES and m.file_size > _MEMBER_RATIO * max(
                m.compress_size, 1
            ):
                raise ExtractionFailed(DOCX_RATIO)
        try:
            for m in members:
                if not m.is_dir() and _member_declares_entities(archive, m):
                    raise ExtractionFailed(DOCX_ENTITIES)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
            raise ExtractionFailed(DOCX_DAMAGED) from None
        except (NotImplementedError, RuntimeError):  # unknown compression, encrypted member
            raise ExtractionFailed(DOCX_DAMAGED) from None


def _member_declares_entities(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> bool:
    import zlib

    try:
        with archive.open(member) as f:
            tail = b""
            while chunk := f.read(_SCAN_CHUNK):
                window = tail + chunk
                if any(p in window for p in _ENTITY_PATTERNS):
                    return True
                tail = window[-_OVERLAP:]
    except zlib.error:
        raise ExtractionFailed(DOCX_DAMAGED) from None
    return False


def _extract_docx(path: Path, limits: Limits, progress: ProgressCallback) -> Extraction:
    progress(0, 1)
    _check_docx_archive(path, limits)
    import docx

    try:
        document = docx.Document(str(path))
    except MemoryError:
        raise
    except Exception:
        raise ExtractionFailed(DOCX_DAMAGED) from None
    page = _SinglePage()
    try:
        _docx_body(document, page)
    except MemoryError:
        raise
    except (ValueError, KeyError, AttributeError, TypeError):
        raise ExtractionFailed(DOCX_DAMAGED) from None
    if not page.blocks:
        raise ExtractionFailed(NO_TEXT)
    if page.length > limits.max_chars:
        raise ExtractionFailed(TOO_MUCH_TEXT.format(limit=limits.max_chars))
    metadata = {}
    with contextlib.suppress(Exception):
        props = document.core_properties
        for key, value in (("title", props.title), ("author", props.author)):
            if value and value.strip():
                metadata[key] = " ".join(value.split())
    progress(1, 1)
    return page.extraction(DOCX, metadata)


def _w(tag: str) -> str:
    return "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}" + tag


_W_P, _W_TBL, _W_TR, _W_TC, _W_SDT, _W_SDTCONTENT = map(
    _w, ("p", "tbl", "tr", "tc", "sdt", "sdtContent")
)
_W_VAL = _w("val")
_HEADING_STYLE = re.compile(r"heading\s*([1-9])$", re.IGNORECASE)


def _docx_styles(document) -> tuple[dict[str, int], set[str], str | None]:
    """Heading level per paragraph style id (Heading 1-9, Title, outline level, inherited),
    the list style ids (List*, numbering) and the default paragraph style id."""
    names: dict[str, str] = {}
    based_on: dict[str, str] = {}
    outline: dict[str, int] = {}
    numbered: set[str] = set()
    default = None
    for style in document.styles.element.iterchildren(_w("style")):
        if style.get(_w("type")) != "paragraph":
            continue
        sid = style.get(_w("styleId")) or ""
        if style.get(_w("default")) in ("1", "true", "on"):
            default = sid
        name = style.find(_w("name"))
        names[sid] = name.get(_W_VAL, "") if name is not None else ""
        base = style.find(_w("basedOn"))
        if base is not None:
            based_on[sid] = base.get(_W_VAL, "")
        ppr = style.find(_w("pPr"))
        if ppr is not None:
            level = ppr.find(_w("outlineLvl"))
            if level is not None and (level.get(_W_VAL) or "").isdigit():
                outline[sid] = int(level.get(_W_VAL))
            if ppr.find(_w("numPr")) is not None:
                numbered.add(sid)

    def own_level(sid: str) -> int:
        name = names.get(sid, "")
        match = _HEADING_STYLE.match(name.strip())
        if match:
            return int(match.group(1))
        if name.strip().lower() == "title":
            return 1
        if outline.get(sid, 9) < 9:
            return outline[sid] + 1
        return 0

    levels: dict[str, int] = {}
    lists: set[str] = set()
    for sid in names:
        chain, current = [], sid
        while current and current not in chain and len(chain) < 20:
            chain.append(current)
            current = based_on.get(current, "")
        levels[sid] = next((lv for lv in map(own_level, chain) if lv), 0)
        if any(s in numbered or names.get(s, "").lower().startswith("list") for s in chain):
            lists.add(sid)
    return levels, lists, default


def _docx_body(document, page: _SinglePage) -> None:
    levels, lists, default = _docx_styles(document)
    for element in _docx_items(document.element.body):
        if element.tag == _W_TBL:
            rows = [row for tr in element.iterchildren(_W_TR) if (row := _docx_row(tr))]
            if rows:
                page.table(rows)
            continue
        text = _paragraph_text(element)
        if not text.strip():
            continue
        ppr = element.pPr
        sid = (ppr.style if ppr is not None else None) or default or ""
        level = levels.get(sid, 0)
        if ppr is not None and ppr.outlineLvl is not None:
            direct = ppr.outlineLvl.get(_W_VAL) or ""
            if direct.isdigit() and int(direct) < 9:
                level = int(direct) + 1
        if level:
            page.heading(level, text)
            continue
        numbered = ppr is not None and ppr.numPr is not None and _num_id(ppr.numPr) != "0"
        page.add("list" if numbered or sid in lists else "paragraph", text)


def _num_id(num_pr) -> str:
    num_id = num_pr.find(_w("numId"))
    return num_id.get(_W_VAL, "") if num_id is not None else ""


def _docx_items(parent) -> Iterator:
    """Body paragraphs and tables in document order (content controls unwrapped)."""
    for child in parent.iterchildren():
        if child.tag in (_W_P, _W_TBL):
            yield child
        elif child.tag == _W_SDT:
            content = child.find(_W_SDTCONTENT)
            if content is not None:
                yield from _docx_items(content)


_W_TXBX = _w("txbxContent")
_PARAGRAPH_CONTENT = None


def _paragraph_text(p) -> str:
    """The text of a paragraph's runs, wherever they are nested (hyperlinks, tracked
    insertions, fields, content controls, text boxes); not the duplicate fallback copy
    of a drawing; a paragraph inside a text box starts a new line."""
    global _PARAGRAPH_CONTENT
    if _PARAGRAPH_CONTENT is None:
        from lxml import etree

        _PARAGRAPH_CONTENT = etree.XPath(
            ".//w:r[not(ancestor::mc:Fallback)] | .//w:p[not(ancestor::mc:Fallback)]",
            namespaces={
                "w": _W_P[1 : _W_P.index("}")],
                "mc": "http://schemas.openxmlformats.org/markup-compatibility/2006",
            },
        )
    parts = []
    for element in _PARAGRAPH_CONTENT(p):
        if element.tag == _W_P:
            parts.append("\n")
        else:
            parts.append(element.text or "")
    return "".join(parts)


def _docx_row(tr) -> str:
    """A table row as "cell | cell | cell" (a nested table is flattened into its cell)."""
    cells = []
    for tc in tr.iterchildren(_W_TC):
        paragraphs = (p for p in tc.iter(_W_P) if p.getparent().tag != _W_TXBX)
        texts = (" ".join(_paragraph_text(p).split()) for p in paragraphs)
        cells.append(" ".join(t for t in texts if t))
    if not any(cells):
        return ""
    return " | ".join(cells)


# ============================================================================== Markdown

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ATX_OPENING = re.compile(r" {0,3}(#{1,6})(?=[ \t]|$)")
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_THEMATIC_BREAK = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_MD_LIST_ITEM = re.compile(r"^[ \t]*(?:[-*+]|\d{1,9}[.)])(?:[ \t]+|$)")
_TABLE_DELIMITER = re.compile(r"^[ \t]*\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$")


def _read_text(path: Path, max_chars: int) -> str:
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


def _extract_text(text: str) -> Extraction:
    """Paragraphs separated by blank lines, none longer than MAX_BLOCK_CHARS."""
    blocks = []
    position = 0
    for separator in re.finditer(r"\n(?:[ \t\f\v]*\n)+", text):
        for s, e in split_long(text, position, separator.start()):
            blocks.append(Block(1, "paragraph", text[s:e], s, e))
        position = separator.end()
    for s, e in split_long(text, position, len(text)):
        blocks.append(Block(1, "paragraph", text[s:e], s, e))
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
_HTML_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9:-]*(?:\s[^<>]*)?/?>")
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


def _extract_markdown(source: str) -> Extraction:
    """Headings (ATX, setext; not in fenced code), paragraphs, list items, pipe tables and
    fenced code (as a paragraph). Layout markup is blanked out (_strip_markup) and the
    source is cut into pages at its page marks; offsets are into each page's text, the
    source's with its markup blanked."""
    clean = _strip_markup(source)
    outline = _Outline()
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
    outline: _Outline,
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
