"""DOCX text, blocks and headings (python-docx), with zip-bomb and entity checks."""

from __future__ import annotations

import contextlib
import logging
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

from documents.extraction.common import (
    DOCX_DAMAGED,
    DOCX_ENCRYPTED,
    DOCX_ENTITIES,
    DOCX_RATIO,
    DOCX_TOO_BIG,
    DOCX_TOO_MANY_FILES,
    MB,
    NO_TEXT,
    TOO_MUCH_TEXT,
    ExtractionFailed,
    Limits,
    ProgressCallback,
    SinglePage,
)
from documents.filetypes import (
    DOCX,
    zip_too_many_entries,
)
from documents.types import Extraction

logger = logging.getLogger(__name__)

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


def extract_docx(path: Path, limits: Limits, progress: ProgressCallback) -> Extraction:
    progress(0, 1)
    _check_docx_archive(path, limits)
    import docx

    try:
        document = docx.Document(str(path))
    except MemoryError:
        raise
    except Exception:
        raise ExtractionFailed(DOCX_DAMAGED) from None
    page = SinglePage()
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


def _docx_body(document, page: SinglePage) -> None:
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
