"""The page viewer's API: a page with the cited passage located on it, and page images.

GET /api/documents/{id}/pages/{n}?chunk=<chunk id>&quote=<text>&section=<k>
    The page and where the passage is on it (see PageView). `chunk` wins while the chunk
    exists; `quote` is the fallback for citations whose chunk was replaced. A document
    without pages (Markdown, text, DOCX without page marks) is shown a section at a time:
    the passage's, or section k (1-based) when asked, rendered as HTML
    (documents.sections).
GET /api/documents/{id}/pages/{n}/image?width=<px>
    The page as a PNG (PDF only), cached on disk and by the browser (ETag).

Documents the user may not read, pages out of range and images of non-PDF documents
are 404; a document that is not ready is 409; a page that cannot be rendered is 422.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.http import FileResponse, HttpResponseNotModified
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.http import parse_etags
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from documents import pages, sections
from documents.filetypes import DOCX, TEXT
from documents.models import Chunk, Document, DocumentContent, is_paged
from rra.api import json_error
from rra.ratelimit import limit_request, too_many_requests_json

MAX_QUOTE_CHARS = 20_000
# page - 1 is a jsonb array index in SQL, a PostgreSQL integer: past it, no document has
# the page (and the query would fail).
MAX_PAGE = 2**31
IMAGE_CACHE_CONTROL = "private, max-age=86400"
NOT_READY = "The document is still being processed. Try again when it is ready."
FAILED = "The document could not be processed, so its pages cannot be shown."


class _AnyAccept:
    """Errors are JSON whatever the client accepts (an <img> asks for image/*)."""

    def perform_content_negotiation(self, request, force=False):
        return super().perform_content_negotiation(request, force=True)


def _document(request: Request, document_id: int) -> Document:
    return get_object_or_404(
        Document.objects.readable_by(request.user).only(
            "id",
            "name",
            "mime_type",
            "status",
            "sha256",
            "file",
            "owner_id",
            "visibility",
            "ready_at",
        ),
        pk=document_id,
    )


def _not_ready(document: Document):
    if document.status == Document.Status.FAILED:
        return json_error(409, "not_ready", FAILED)
    return json_error(409, "not_ready", NOT_READY)


def _page_missing(page: int):
    return json_error(404, "not_found", f"The document has no page {page}.")


class PageView(_AnyAccept, APIView):
    """{document: {id, name, mime_type}, page, page_count, width, height (points; 0 for
    non-PDF), image_url (PDF; add ?width=), highlights: [{x, y, w, h}] (fractions of the
    page, origin top left; PDF), match ("chunk" | "quote" | null: how the passage was
    found), passage_text, section, and for non-PDF documents text (the cited section, or
    the page text, at most pages.MAX_TEXT_CHARS), html (that text rendered, the passage
    in <mark>), passage {start, end} (offsets in text, or null), text_offset (where text
    starts in the page), truncated_before/after, and for documents without pages
    section_number and section_count (null otherwise)}."""

    def get(self, request: Request, document_id: int, page: int) -> Response:
        document = _document(request, document_id)
        chunk_id = request.query_params.get("chunk", "").strip()
        section_number = request.query_params.get("section", "").strip()
        if section_number and not (section_number.isdigit() and len(section_number) <= 9):
            return json_error(
                400,
                "invalid",
                "Some fields are not valid.",
                {"section": ["Give a section number (1 for the first)."]},
            )
        quote = request.query_params.get("quote", "")[:MAX_QUOTE_CHARS]
        if chunk_id and not (chunk_id.isascii() and chunk_id.isdigit() and len(chunk_id) <= 18):
            return json_error(
                400, "invalid", "Some fields are not valid.", {"chunk": ["Give a chunk id."]}
            )
        if document.status != Document.Status.READY:
            return _not_ready(document)
        if not 1 <= page <= MAX_PAGE:
            return _page_missing(page)
        row = (
            DocumentContent.objects.filter(document=document)
            .annotate(
                page_text=KeyTextTransform(str(page - 1), "pages"),
                page_size=KeyTransform(str(page - 1), "page_sizes"),
            )
            .values("page_count", "page_text", "page_size")
            .first()
        )
        if row is None:
            return _not_ready(document)
        if page > row["page_count"] or row["page_text"] is None:
            return _page_missing(page)
        text: str = row["page_text"]
        width, height = (row["page_size"] or [0, 0])[:2]

        chunk = (
            Chunk.objects.filter(pk=int(chunk_id), document=document).first() if chunk_id else None
        )
        passage, match = None, None
        if chunk is not None:
            passage = pages.chunk_range(chunk, page, text)
            match = "chunk" if passage else None
        elif quote.strip():
            passage = pages.find_quote(text, quote)
            match = "quote" if passage else None

        body = {
            "document": {"id": document.pk, "name": document.name, "mime_type": document.mime_type},
            "page": page,
            "page_count": row["page_count"],
            "width": width,
            "height": height,
            "image_url": None,
            "highlights": [],
            "match": match,
            "passage_text": pages.passage_text(text, passage),
            "section": chunk.section if chunk is not None else "",
            "text": None,
            "passage": None,
        }
        if pages.is_pdf(document):
            body["image_url"] = reverse(
                "api:document-page-image", kwargs={"document_id": document.pk, "page": page}
            )
            if passage is not None:
                try:
                    boxes = pages.pdf_highlights(document, page, *passage)
                except pages.Busy:
                    return _busy()
                except pages.PageUnavailable as exc:
                    return json_error(422, "page_unavailable", exc.message)
                body["highlights"] = [{"x": b.x, "y": b.y, "w": b.w, "h": b.h} for b in boxes]
        elif not is_paged(document.mime_type, row["page_count"]):
            shown = _section_view(document, text, passage, section_number)
            if shown is None:
                return json_error(
                    404, "not_found", f"The document has no section {section_number}."
                )
            body.update(shown)
        else:
            view = pages.text_view(document, text, passage, chunk, page)
            start = view.offset
            body.update(
                text=view.text,
                passage=(
                    {"start": view.passage[0], "end": view.passage[1]} if view.passage else None
                ),
                text_offset=start,
                truncated_before=view.truncated_before,
                truncated_after=view.truncated_after,
                section=view.section,
                section_number=None,
                section_count=None,
                html=sections.render(
                    document.mime_type,
                    text,
                    start,
                    start + len(view.text),
                    _shift(view.passage, start),
                    _blocks(document, start, start + len(view.text)),
                ),
            )
        return Response(body)


def _shift(passage: tuple[int, int] | None, delta: int) -> tuple[int, int] | None:
    return None if passage is None else (passage[0] + delta, passage[1] + delta)


def _blocks(document: Document, start: int, end: int) -> list:
    """The stored blocks of a DOCX or plain-text document over start..end (empty before
    they were kept)."""
    if document.mime_type not in (DOCX, TEXT):
        return []
    return sections.stored_blocks(document.pk, start, end)


def _section_view(
    document: Document, text: str, passage: tuple[int, int] | None, number: str
) -> dict | None:
    """A document without pages, a section at a time: section `number` when asked, else
    the passage's; None when there is no such section."""
    version = document.ready_at.isoformat() if document.ready_at else ""
    found = sections.page_sections(document.pk, text, version)
    if number:
        if not 1 <= int(number) <= len(found):
            return None
        current = found[int(number) - 1]
    elif passage is not None:
        current = sections.section_at(found, passage[0])
    else:
        current = found[0] if found else None
    start, end = (current.start, current.end) if current else (0, len(text))
    if passage is not None and (passage[1] <= start or passage[0] >= end):
        passage = None  # cited elsewhere: this section is shown without a mark
    if passage is not None:
        passage = (max(passage[0], start), min(passage[1], end))
    if end - start > pages.MAX_TEXT_CHARS:
        start, end = pages.window(text, start, end, passage)
    return {
        "text": text[start:end],
        "passage": ({"start": passage[0] - start, "end": passage[1] - start} if passage else None),
        "text_offset": start,
        "truncated_before": current is not None and start > current.start,
        "truncated_after": end < (current.end if current else len(text)),
        "section": current.title if current else "",
        "section_number": current.number if current else None,
        "section_count": len(found),
        "html": sections.render(
            document.mime_type, text, start, end, passage, _blocks(document, start, end)
        ),
    }


def _busy():
    response = json_error(503, "busy", "The page viewer is busy. Try again in a moment.")
    response["Retry-After"] = "5"
    return response


class PageImageView(_AnyAccept, APIView):
    """The page as a PNG `width` pixels wide (pages.clamp_width), with an ETag."""

    def get(self, request: Request, document_id: int, page: int):
        document = _document(request, document_id)
        if not pages.is_pdf(document):
            return json_error(404, "not_found", "Only PDF documents have page images.")
        if document.status != Document.Status.READY:
            return _not_ready(document)
        page_count = (
            DocumentContent.objects.filter(document=document)
            .values_list("page_count", flat=True)
            .first()
        )
        if page_count is None:
            return _not_ready(document)
        if not 1 <= page <= page_count:
            return _page_missing(page)
        width = pages.clamp_width(request.query_params.get("width"))
        etag = pages.image_etag(document, page, width)
        wanted = request.headers.get("If-None-Match")
        if wanted and any(e.removeprefix("W/") in (etag, "*") for e in parse_etags(wanted)):
            response = HttpResponseNotModified()
            response["ETag"] = etag
            response["Cache-Control"] = IMAGE_CACHE_CONTROL
            return response
        if not pages.cache_path(document.pk, page, width).is_file():
            limited = limit_request(
                request,
                group="page-render",
                rate=getattr(settings, "PAGE_RENDER_RATE", "120/m"),
            )
            if limited:
                return too_many_requests_json(limited, "page images")
        try:
            path, _rendered = pages.page_image(document, page, width)
        except pages.Busy:
            return _busy()
        except pages.PageUnavailable as exc:
            return json_error(422, "page_unavailable", exc.message)
        response = FileResponse(path.open("rb"), content_type="image/png")
        response["ETag"] = etag
        response["Cache-Control"] = IMAGE_CACHE_CONTROL
        response["X-Content-Type-Options"] = "nosniff"
        return response
