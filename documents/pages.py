"""Page views of documents: where a cited passage is on its page, and page images.

For PDFs a passage is a character range of the stored page text, which has pdfium's
character positions (documents.types.Page), so pdfium gives its rectangles directly:
`PdfTextPage.count_rects()/get_rect()`, one rectangle per text run. They are mapped to
the rendered page (crop box and /Rotate applied, origin top left) with
FPDF_PageToDevice, merged into one box per line, and returned as fractions of the page.

Page images are rendered with pypdfium2 in this process, one page at a time per process
(pdfium is not thread-safe, and this also bounds CPU and memory): every pdfium call
here holds `_PDFIUM_LOCK`. Rendering is progressive with a pause callback, so a page
that takes longer than RENDER_TIMEOUT_S is abandoned (PageUnavailable) instead of
holding the lock; images are capped at MAX_PIXELS. PNGs are cached on disk under
MEDIA_ROOT/page-cache/<document id>/<page>-<width>.png and written atomically; a
document stored in S3 is downloaded once into that folder (stored_files.cached_copy).

Where the chunk is gone (the document was processed again), the passage is found by
its text: `find_quote()` searches the page text ignoring whitespace, soft hyphens and
case, first for the whole quote, then for its longest run of in-order word groups (the
quote starts with the section path, which is not on the page, and a passage that
spans pages has only part of its text on each).
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from django.conf import settings
from django.core.cache import cache

from documents import stored_files
from documents.filetypes import PDF
from documents.models import Chunk, Document
from documents.types import INVISIBLE_MARKS

logger = logging.getLogger(__name__)

MIN_WIDTH = 400
MAX_WIDTH = 2000
DEFAULT_WIDTH = 1000
WIDTH_STEP = 100  # widths are rounded up to a multiple of this: a bounded set of cache files
MAX_PIXELS = 2000 * 3000  # a very tall page is rendered narrower than asked
RENDER_TIMEOUT_S = 15.0
LOCK_TIMEOUT_S = 20.0  # waiting for another request's pdfium work
RENDER_VERSION = 1  # part of the ETag: bump when rendering changes
MAX_HIGHLIGHTS = 400
MAX_TEXT_CHARS = 20_000  # non-PDF: the text around a passage that is returned
MAX_PASSAGE_TEXT = 4_000
HIGHLIGHT_CACHE_S = 24 * 3600
CACHE_DIR = "page-cache"

_PDFIUM_LOCK = threading.Lock()


class PageUnavailable(Exception):
    """The page cannot be read or rendered (damaged file, or too slow to render)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class Busy(Exception):
    """Another request is using pdfium for longer than LOCK_TIMEOUT_S."""


@dataclass(frozen=True)
class Box:
    """A highlight as fractions of the rendered page, origin top left."""

    x: float
    y: float
    w: float
    h: float


@contextlib.contextmanager
def _pdfium():
    if not _PDFIUM_LOCK.acquire(timeout=LOCK_TIMEOUT_S):
        raise Busy
    try:
        yield
    finally:
        _PDFIUM_LOCK.release()


# ================================================================ passage ranges


def chunk_range(chunk: Chunk, page: int, page_text: str) -> tuple[int, int] | None:
    """The chunk's character range on `page`: from start_offset on its first page, up to
    end_offset on its last page, the whole page in between; None off its pages."""
    if not chunk.first_page <= page <= chunk.last_page:
        return None
    start = chunk.start_offset if page == chunk.first_page else 0
    end = chunk.end_offset if page == chunk.last_page else len(page_text)
    return _trim(page_text, min(start, len(page_text)), min(end, len(page_text)))


def _trim(text: str, start: int, end: int) -> tuple[int, int] | None:
    """The range without surrounding whitespace; None when nothing is left."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if end > start else None


# Characters the search ignores: whitespace, soft hyphens (pdfium writes U+0002 for a
# hyphen at a line break, chunk text drops it), the marks of PDF page text that chunk
# text leaves out (documents.types.INVISIBLE_MARKS: U+FFFE inside a word hyphenated at
# a line end, the word joiner after characters outside the BMP), and the Markdown
# heading and table marks that chunk text drops ("## Setup", "| a | b |").
_IGNORED = "\u00ad\u0002" + INVISIBLE_MARKS + "#|"
_TOKEN = re.compile(rf"[^\s{_IGNORED}]+")
ANCHOR_WORDS = 5
_MAX_ANCHORS = 400


class _Normalized:
    """Text without ignored characters (lower case when that keeps the length), with a
    map from its positions back to the original text."""

    def __init__(self, text: str):
        starts: list[int] = []  # position in the normalized text of each token
        origins: list[int] = []  # position of the same token in the original
        parts: list[str] = []
        length = 0
        for match in _TOKEN.finditer(text):
            starts.append(length)
            origins.append(match.start())
            parts.append(match.group())
            length += match.end() - match.start()
        joined = "".join(parts)
        lower = joined.lower()
        self.text = lower if len(lower) == len(joined) else joined
        self.lowered = self.text is lower
        self._starts = starts
        self._origins = origins

    def original(self, position: int) -> int:
        """Original offset of the normalized character at `position`."""
        i = bisect.bisect_right(self._starts, position) - 1
        return self._origins[i] + (position - self._starts[i])

    def normalize(self, fragment: str) -> str:
        joined = "".join(_TOKEN.findall(fragment))
        return joined.lower() if self.lowered else joined


def find_quote(page_text: str, quote: str) -> tuple[int, int] | None:
    """Where `quote` (or the longest in-order part of it) is in page_text, ignoring
    whitespace, soft hyphens and case; None when no part of it is found."""
    words = _TOKEN.findall(quote)
    if not words or not page_text:
        return None
    page = _Normalized(page_text)
    whole = page.normalize(quote)
    found = page.text.find(whole)
    if found >= 0:
        return page.original(found), page.original(found + len(whole) - 1) + 1
    if len(words) < ANCHOR_WORDS:
        return None
    # Word groups in quote order, each searched after the previous match; matches close
    # together form a cluster, and the cluster with the most groups is the passage. It is
    # then extended word by word over the words around it that are there too.
    groups = range(0, min(len(words), _MAX_ANCHORS * ANCHOR_WORDS), ANCHOR_WORDS)
    clusters: list[list[tuple[int, int, int]]] = []  # (start, end, first word index)
    cursor = 0
    gap_limit = 0
    for first_word in groups:
        anchor = page.normalize(" ".join(words[first_word : first_word + ANCHOR_WORDS]))
        gap_limit += len(anchor)
        if len(anchor) < 8:  # too short to be told apart (a trailing word or two)
            continue
        at = page.text.find(anchor, cursor)
        if at < 0:
            continue
        match = (at, at + len(anchor), first_word)
        if clusters and at - clusters[-1][-1][1] <= max(200, gap_limit):
            clusters[-1].append(match)
        else:
            clusters.append([match])
        cursor = match[1]
        gap_limit = 0
    if not clusters:
        return None
    best = max(clusters, key=len)
    start, first_word = best[0][0], best[0][2]
    end, next_word = best[-1][1], min(len(words), best[-1][2] + ANCHOR_WORDS)
    for word in reversed(words[:first_word]):
        piece = page.normalize(word)
        if not piece or start < len(piece) or not page.text.startswith(piece, start - len(piece)):
            break
        start -= len(piece)
    for word in words[next_word:]:
        piece = page.normalize(word)
        if not piece or not page.text.startswith(piece, end):
            break
        end += len(piece)
    return page.original(start), page.original(end - 1) + 1


# ================================================================ PDF highlights


def pdf_highlights(document: Document, page: int, start: int, end: int) -> list[Box]:
    """Boxes (one per line) covering characters start..end of the page, cached."""
    key = f"viewer:hl:{RENDER_VERSION}:{document.pk}:{document.sha256[:16]}:{page}:{start}:{end}"
    cached = cache.get(key)
    if cached is not None:
        return [Box(**b) for b in cached]
    boxes = _pdf_boxes(source_file(document), page, start, end)
    cache.set(key, [asdict(b) for b in boxes], HIGHLIGHT_CACHE_S)
    return boxes


def _pdf_boxes(path: Path, page_number: int, start: int, end: int) -> list[Box]:
    import ctypes

    import pypdfium2 as pdfium
    import pypdfium2.raw as raw

    with _pdfium():
        pdf = page = textpage = None
        try:
            pdf = pdfium.PdfDocument(str(path))
            page = pdf[page_number - 1]
            textpage = page.get_textpage()
            count = min(end, textpage.count_chars()) - start
            if count <= 0:
                return []
            rects = [textpage.get_rect(i) for i in range(textpage.count_rects(start, count))]
            # Device space: the page as rendered (crop box, /Rotate), 100 units per point.
            width, height = page.get_size()
            size_x, size_y = max(1, round(width * 100)), max(1, round(height * 100))
            dx, dy = ctypes.c_int(), ctypes.c_int()

            def device(x: float, y: float) -> tuple[float, float]:
                raw.FPDF_PageToDevice(
                    page.raw, 0, 0, size_x, size_y, 0, x, y, ctypes.byref(dx), ctypes.byref(dy)
                )
                return dx.value / size_x, dy.value / size_y

            boxes = []
            for left, bottom, right, top in rects:
                corners = [device(x, y) for x in (left, right) for y in (bottom, top)]
                xs = [c[0] for c in corners]
                ys = [c[1] for c in corners]
                boxes.append((min(xs), min(ys), max(xs), max(ys)))
        except pdfium.PdfiumError as exc:
            logger.warning("page %s of %s unreadable: %s", page_number, path.name, exc)
            raise PageUnavailable("This page of the document could not be read.") from None
        finally:
            for obj in (textpage, page, pdf):
                if obj is not None:
                    obj.close()
    return merge_lines(boxes)


def merge_lines(rects: list[tuple[float, float, float, float]]) -> list[Box]:
    """One box per line: rectangles (x0, y0, x1, y1; y down) that overlap vertically by
    half the smaller height and are at most about two line heights apart horizontally
    are joined. Boxes are clipped to the page and returned in reading order."""
    clipped = []
    for x0, y0, x1, y1 in rects:
        x0, y0 = max(0.0, min(1.0, x0)), max(0.0, min(1.0, y0))
        x1, y1 = max(0.0, min(1.0, x1)), max(0.0, min(1.0, y1))
        if x1 - x0 > 1e-6 and y1 - y0 > 1e-6:
            clipped.append([x0, y0, x1, y1])
    clipped.sort(key=lambda r: (r[1], r[0]))
    lines: list[list[float]] = []
    for r in clipped:
        for line in reversed(lines[-8:]):  # recent lines only: the list is sorted by top
            overlap = min(line[3], r[3]) - max(line[1], r[1])
            smaller = min(line[3] - line[1], r[3] - r[1])
            height = max(line[3] - line[1], r[3] - r[1])
            gap = max(r[0] - line[2], line[0] - r[2])
            if overlap >= 0.5 * smaller and gap <= 2 * height:
                line[0], line[1] = min(line[0], r[0]), min(line[1], r[1])
                line[2], line[3] = max(line[2], r[2]), max(line[3], r[3])
                break
        else:
            lines.append(r)
    lines.sort(key=lambda r: (r[1], r[0]))
    return [
        Box(round(x0, 5), round(y0, 5), round(x1 - x0, 5), round(y1 - y0, 5))
        for x0, y0, x1, y1 in lines[:MAX_HIGHLIGHTS]
    ]


# ================================================================ non-PDF text


@dataclass
class TextView:
    text: str
    passage: tuple[int, int] | None  # offsets in `text`
    offset: int  # where `text` starts in the page text
    truncated_before: bool
    truncated_after: bool
    section: str


def text_view(
    document: Document,
    page_text: str,
    passage: tuple[int, int] | None,
    chunk: Chunk | None,
    page: int = 1,
) -> TextView:
    """The text to show for a document without page images: the section the passage is
    in (the run of consecutive chunks on this page sharing its section), else the page
    text, limited to MAX_TEXT_CHARS around the passage. (Markdown has pages when the
    file marks them.)"""
    start, end = 0, len(page_text)
    section = ""
    if passage is not None:
        if chunk is None:
            chunk = (
                Chunk.objects.filter(
                    document=document,
                    first_page=page,
                    last_page=page,
                    start_offset__lt=passage[1],
                    end_offset__gt=passage[0],
                )
                .order_by("index")
                .first()
            )
        if chunk is not None:
            section = chunk.section
            start, end = _section_range(chunk, page)
            start, end = min(start, passage[0]), max(end, passage[1])
    if end - start > MAX_TEXT_CHARS:
        start, end = window(page_text, start, end, passage)
    start, end = max(0, start), min(len(page_text), end)
    text = page_text[start:end]
    relative = None
    if passage is not None:
        relative = (max(0, passage[0] - start), min(len(text), passage[1] - start))
    return TextView(text, relative, start, start > 0, end < len(page_text), section)


def _section_range(chunk: Chunk, page: int) -> tuple[int, int]:
    if not chunk.first_page == chunk.last_page == page:  # offsets of other pages
        return (
            chunk.start_offset if chunk.first_page == page else 0,
            chunk.end_offset if chunk.last_page == page else 0,
        )
    rows = list(
        Chunk.objects.filter(
            document_id=chunk.document_id, section=chunk.section, first_page=page, last_page=page
        )
        .order_by("index")
        .values_list("index", "start_offset", "end_offset")
    )
    position = next((i for i, row in enumerate(rows) if row[0] == chunk.index), None)
    if position is None:
        return chunk.start_offset, chunk.end_offset
    first = last = position
    while first > 0 and rows[first - 1][0] == rows[first][0] - 1:
        first -= 1
    while last + 1 < len(rows) and rows[last + 1][0] == rows[last][0] + 1:
        last += 1
    return rows[first][1], rows[last][2]


def window(text: str, start: int, end: int, passage: tuple[int, int] | None) -> tuple[int, int]:
    """At most MAX_TEXT_CHARS of text[start:end] around the passage, cut at paragraph
    (else line, else word) boundaries."""
    if passage is None:
        lo, hi = start, min(end, start + MAX_TEXT_CHARS)
    else:
        p0, p1 = passage
        if p1 - p0 >= MAX_TEXT_CHARS:
            return p0, p1
        room = (MAX_TEXT_CHARS - (p1 - p0)) // 2
        lo, hi = max(start, p0 - room), min(end, p1 + room)
    if lo > start:
        for sep in ("\n\n", "\n", " "):
            cut = text.find(sep, lo, passage[0] if passage else hi)
            if cut >= 0:
                lo = cut + len(sep)
                break
    if hi < end:
        for sep in ("\n\n", "\n", " "):
            cut = text.rfind(sep, passage[1] if passage else lo, hi)
            if cut >= 0:
                hi = cut
                break
    return lo, hi


def passage_text(text: str, passage: tuple[int, int] | None) -> str:
    if passage is None:
        return ""
    snippet = " ".join(text[passage[0] : passage[1]].replace("\u2060", "").split())
    return snippet if len(snippet) <= MAX_PASSAGE_TEXT else snippet[:MAX_PASSAGE_TEXT] + "…"


# ================================================================ page images


def clamp_width(raw: str | None) -> int:
    """The rendered width for a requested one: DEFAULT_WIDTH when absent or not a number,
    else clamped to MIN_WIDTH..MAX_WIDTH and rounded up to a multiple of WIDTH_STEP."""
    try:
        width = int(raw) if raw not in (None, "") else DEFAULT_WIDTH
    except (TypeError, ValueError):
        width = DEFAULT_WIDTH
    width = max(MIN_WIDTH, min(MAX_WIDTH, width))
    return -(-width // WIDTH_STEP) * WIDTH_STEP


def image_etag(document: Document, page: int, width: int) -> str:
    digest = hashlib.sha256(
        f"{document.pk}:{document.sha256}:{page}:{width}:{RENDER_VERSION}".encode()
    ).hexdigest()[:32]
    return f'"{digest}"'


def cache_dir(document_id: int) -> Path:
    return Path(settings.MEDIA_ROOT) / CACHE_DIR / str(int(document_id))


def cache_path(document_id: int, page: int, width: int) -> Path:
    return cache_dir(document_id) / f"{int(page)}-{int(width)}.png"


def source_file(document: Document) -> Path:
    """The document's stored file as a local path for pdfium: the file itself on a local
    disk, a copy kept beside the page images when it is in an object store."""
    try:
        return stored_files.cached_copy(document, cache_dir(document.pk))
    except FileNotFoundError:
        raise PageUnavailable("The document's file is no longer stored.") from None
    except stored_files.StoreUnavailable as exc:
        logger.warning("document=%s: the file store failed: %s", document.pk, exc)
        raise Busy from None


def clear_page_cache(document_id: int) -> None:
    """Delete the cached page images of a document (call when it is deleted)."""
    shutil.rmtree(cache_dir(document_id), ignore_errors=True)


def page_image(document: Document, page: int, width: int) -> tuple[Path, bool]:
    """The cached PNG of the page at `width` pixels, rendered when missing.
    Returns (path, rendered now). Raises PageUnavailable or Busy."""
    path = cache_path(document.pk, page, width)
    if path.is_file():
        return path, False
    source = source_file(document)  # downloaded (from S3) before taking the pdfium lock
    with _pdfium():
        if path.is_file():  # rendered by another request while we waited
            return path, False
        image = _render(source, page, width)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".render-", suffix=".png", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            image.save(out, format="PNG", compress_level=6)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path, True


def _render(path: Path, page_number: int, width: int):
    """Render one page to a PIL image `width` pixels wide (narrower when the page is so
    tall that it would exceed MAX_PIXELS). The caller holds the pdfium lock."""
    import pypdfium2 as pdfium
    import pypdfium2.internal as pdfium_i
    import pypdfium2.raw as raw

    pdf = page = None
    try:
        pdf = pdfium.PdfDocument(str(path))
        page = pdf[page_number - 1]
        page_width, page_height = page.get_size()
        if page_width <= 0 or page_height <= 0:
            raise PageUnavailable("This page has no size and cannot be shown.")
        height = max(1, round(width * page_height / page_width))
        if width * height > MAX_PIXELS:
            factor = (MAX_PIXELS / (width * height)) ** 0.5
            width, height = max(1, int(width * factor)), max(1, int(height * factor))
        bitmap = pdfium.PdfBitmap.new_native(width, height, raw.FPDFBitmap_BGR, rev_byteorder=True)
        bitmap.fill_rect((255, 255, 255, 255), 0, 0, width, height)
        flags = raw.FPDF_ANNOT | raw.FPDF_REVERSE_BYTE_ORDER
        deadline = time.monotonic() + RENDER_TIMEOUT_S
        pause = raw.IFSDK_PAUSE(version=1)
        pdfium_i.set_callback(pause, "NeedToPauseNow", lambda _: time.monotonic() > deadline)
        status = raw.FPDF_RenderPageBitmap_Start(bitmap, page, 0, 0, width, height, 0, flags, pause)
        try:
            while status == raw.FPDF_RENDER_TOBECONTINUED:
                if time.monotonic() > deadline:
                    logger.warning("page %s of %s: rendering timed out", page_number, path.name)
                    raise PageUnavailable("This page is too complex to be shown.")
                status = raw.FPDF_RenderPage_Continue(page, pause)
        finally:
            raw.FPDF_RenderPage_Close(page)
        if status != raw.FPDF_RENDER_DONE:
            raise PageUnavailable("This page of the document could not be rendered.")
        try:
            return bitmap.to_pil().copy()
        finally:
            bitmap.close()
    except pdfium.PdfiumError as exc:
        logger.warning("page %s of %s unreadable: %s", page_number, path.name, exc)
        raise PageUnavailable("This page of the document could not be read.") from None
    finally:
        for obj in (page, pdf):
            if obj is not None:
                obj.close()


def is_pdf(document: Document) -> bool:
    return document.mime_type == PDF
