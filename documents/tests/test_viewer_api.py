"""The citation viewer's API: passages located on their page, page images, access."""

from __future__ import annotations

import struct
from pathlib import Path

import pypdfium2 as pdfium
import pytest

from documents import pages
from documents.models import Chunk, Document, DocumentContent
from documents.services import document_ingest
from documents.tests import files
from documents.tests.conftest import MANUAL_MD, make_document

PDF = "application/pdf"

PDF_PAGES = [
    [
        "# Maintenance manual",
        "This manual describes the maintenance of the RoboRail cutting machine.",
        "## Safety",
        "Wear personal protective equipment during all procedures. Keep a safe distance "
        "from moving parts.",
    ],
    [
        "## Calibration",
        "Calibrate with the quartz reference gauge after every repair of the chuck.",
        "### Chuck rotation",
        "Put a spirit level on top of the front chuck and turn the violet handwheel "
        "clockwise until the bubble is centred.",
        "## Rail inspection",
        # One passage (few tokens: quick to embed) that runs on to the next page.
        *[f"Check rail bolt {n}." for n in range(1, 36)],
    ],
    ["# Troubleshooting", "If the machine does not respond, check the emergency button first."],
]


def _ingest(owner, content: bytes, name: str, mime: str, **fields) -> Document:
    document = make_document(owner, name=name, content=content, mime_type=mime, **fields)
    assert document_ingest(document_id=document.pk) == "ready"
    document.refresh_from_db()
    return document


@pytest.fixture
def manual(owner, media, tmp_path) -> Document:
    path = files.make_pdf(tmp_path / "manual.pdf", PDF_PAGES)
    return _ingest(owner, path.read_bytes(), "RoboRail manual.pdf", PDF)


def _chunk(document: Document, phrase: str) -> Chunk:
    return document.chunks.get(content__contains=phrase)


def _page(client, document: Document, page: int, **params):
    return client.get(f"/api/documents/{document.pk}/pages/{page}", params)


def _text_under(document: Document, page: int, boxes: list[dict]) -> str:
    """The text pdfium finds inside the boxes (fractions, origin top left)."""
    pdf = pdfium.PdfDocument(document.file.path)
    try:
        pdf_page = pdf[page - 1]
        textpage = pdf_page.get_textpage()
        width, height = pdf_page.get_size()
        parts = [
            textpage.get_text_bounded(
                left=b["x"] * width,
                bottom=height - (b["y"] + b["h"]) * height,
                right=(b["x"] + b["w"]) * width,
                top=height - b["y"] * height,
            )
            for b in boxes
        ]
        textpage.close()
        pdf_page.close()
    finally:
        pdf.close()
    return " ".join(" ".join(parts).split())


def _assert_inside_page(boxes: list[dict]) -> None:
    assert boxes
    for b in boxes:
        assert 0 <= b["x"] < b["x"] + b["w"] <= 1
        assert 0 <= b["y"] < b["y"] + b["h"] <= 1


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


# ============================================================== PDF highlights


def test_chunk_highlights_cover_the_chunk_on_its_page(owner_client, manual):
    chunk = _chunk(manual, "violet handwheel")
    response = _page(owner_client, manual, 2, chunk=chunk.pk)
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["document"] == {"id": manual.pk, "name": manual.name, "mime_type": PDF}
    assert data["page"] == 2
    assert data["page_count"] == 4  # the rail steps run on to a fourth page
    assert data["width"] == pytest.approx(595.28, abs=0.01)
    assert data["height"] == pytest.approx(841.89, abs=0.01)
    assert data["image_url"] == f"/api/documents/{manual.pk}/pages/2/image"
    assert data["match"] == "chunk"
    assert data["text"] is None and data["passage"] is None
    assert "violet handwheel" in data["passage_text"]
    boxes = data["highlights"]
    _assert_inside_page(boxes)
    assert len(boxes) <= 4  # one box per line: heading and two or three lines of text
    assert [b["y"] for b in boxes] == sorted(b["y"] for b in boxes)
    text = _text_under(manual, 2, boxes)
    assert "Chuck rotation" in text
    assert "turn the violet handwheel" in text
    assert "bubble is centred" in text
    assert "quartz reference gauge" not in text  # the chunk before it on the page
    assert "Rail inspection" not in text  # the one after


def test_a_chunk_over_two_pages_is_highlighted_on_both(owner_client, manual):
    chunk = manual.chunks.get(first_page=2, last_page=3)
    assert "Check rail bolt 1." in chunk.content and "Check rail bolt 35." in chunk.content
    first = _page(owner_client, manual, 2, chunk=chunk.pk).json()
    second = _page(owner_client, manual, 3, chunk=chunk.pk).json()
    on_first = _text_under(manual, 2, first["highlights"])
    on_second = _text_under(manual, 3, second["highlights"])
    assert on_first.startswith("Rail inspection Check rail bolt 1.")
    assert "bubble is centred" not in on_first
    bolts_first = {n for n in range(1, 36) if f"Check rail bolt {n}." in on_first}
    bolts_second = {n for n in range(1, 36) if f"Check rail bolt {n}." in on_second}
    assert bolts_first and bolts_second
    assert bolts_first | bolts_second == set(range(1, 36))
    assert max(bolts_first) < min(bolts_second)
    # Page 3 starts with the chunk's continuation: highlighted from the top of the text.
    assert second["highlights"][0]["y"] < 0.15
    assert "Troubleshooting" not in on_second
    # Off the chunk's pages there is nothing to highlight.
    assert _page(owner_client, manual, 4, chunk=chunk.pk).json()["highlights"] == []


def test_the_quote_finds_the_same_area_when_the_chunk_is_gone(owner_client, manual):
    chunk = _chunk(manual, "violet handwheel")
    by_chunk = _page(owner_client, manual, 2, chunk=chunk.pk).json()["highlights"]
    quote = chunk.content
    by_quote = _page(owner_client, manual, 2, quote=quote).json()
    assert by_quote["match"] == "quote"
    assert by_quote["highlights"] == by_chunk
    # A citation whose chunk was replaced: the chunk id is unknown, the quote is used.
    gone = _page(owner_client, manual, 2, chunk=chunk.pk + 10_000, quote=quote).json()
    assert gone["match"] == "quote"
    assert gone["highlights"] == by_chunk
    # The chat shows quotes cut at 400 characters, with re-wrapped whitespace.
    rail = _chunk(manual, "Check rail bolt 1.")
    cut = " ".join(rail.content.split())[:399] + "…"
    found = _page(owner_client, manual, 2, quote=cut).json()
    assert found["match"] == "quote"
    text = _text_under(manual, 2, found["highlights"])
    assert text.startswith("Rail inspection Check rail bolt 1. Check rail bolt 2.")
    assert "bubble is centred" not in text
    # Text that is not on the page: no highlight, but the page is still shown.
    missing = _page(owner_client, manual, 2, quote="nothing like this is in the manual").json()
    assert missing["match"] is None and missing["highlights"] == []


def test_no_highlights_without_chunk_or_quote_and_a_bad_chunk_is_400(owner_client, manual):
    data = _page(owner_client, manual, 1).json()
    assert data["highlights"] == [] and data["match"] is None and data["passage_text"] == ""
    for bad in ("abc", "²", "9" * 30):
        response = _page(owner_client, manual, 1, chunk=bad)
        assert response.status_code == 400, bad
        assert response.json()["error"]["fields"] == {"chunk": ["Give a chunk id."]}


# ============================================================== page images


def test_the_page_image_is_a_cached_png_of_the_requested_width(
    owner_client, manual, media, monkeypatch
):
    url = f"/api/documents/{manual.pk}/pages/2/image"
    response = owner_client.get(url, {"width": 600}, HTTP_ACCEPT="image/avif,image/*,*/*")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["Cache-Control"] == "private, max-age=86400"
    etag = response["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    data = b"".join(response.streaming_content)
    width, height = _png_size(data)
    assert width == 600 and height == round(600 * 841.89 / 595.28)
    cached = Path(media) / "page-cache" / str(manual.pk) / "2-600.png"
    assert cached.read_bytes() == data
    mtime = cached.stat().st_mtime_ns

    # The second request is served from the disk cache: nothing is rendered.
    def no_render(*args, **kwargs):
        raise AssertionError("rendered again")

    monkeypatch.setattr(pages, "_render", no_render)
    again = owner_client.get(url, {"width": 600})
    assert again.status_code == 200 and again["ETag"] == etag
    assert b"".join(again.streaming_content) == data
    assert cached.stat().st_mtime_ns == mtime

    not_modified = owner_client.get(url, {"width": 600}, HTTP_IF_NONE_MATCH=etag)
    assert not_modified.status_code == 304
    assert not_modified["ETag"] == etag
    assert not_modified["Cache-Control"] == "private, max-age=86400"
    assert owner_client.get(url, {"width": 600}, HTTP_IF_NONE_MATCH=f"W/{etag}").status_code == 304
    monkeypatch.undo()
    # Another width is another image (and another ETag).
    assert owner_client.get(url, {"width": 800}, HTTP_IF_NONE_MATCH=etag).status_code != 304


def test_image_widths_are_clamped_to_a_few_sizes(owner_client, manual):
    url = f"/api/documents/{manual.pk}/pages/1/image"
    for asked, rendered in [("50", 400), ("1050", 1100), ("99999", 2000), ("wide", 1000)]:
        response = owner_client.get(url, {"width": asked})
        assert response.status_code == 200
        assert _png_size(b"".join(response.streaming_content))[0] == rendered, asked
    assert _png_size(b"".join(owner_client.get(url).streaming_content))[0] == 1000


def test_a_damaged_file_is_422(owner_client, manual):
    Path(manual.file.path).write_bytes(b"%PDF-1.7\nthis is not a PDF any more\n%%EOF\n")
    image = owner_client.get(f"/api/documents/{manual.pk}/pages/1/image")
    assert image.status_code == 422
    assert image.json()["error"]["code"] == "page_unavailable"
    chunk = manual.chunks.filter(first_page=1).first()
    assert _page(owner_client, manual, 1, chunk=chunk.pk).status_code == 422


def test_a_busy_renderer_answers_503(owner_client, manual, monkeypatch):
    monkeypatch.setattr(pages, "LOCK_TIMEOUT_S", 0.01)
    with pages._PDFIUM_LOCK:
        response = owner_client.get(f"/api/documents/{manual.pk}/pages/1/image")
    assert response.status_code == 503
    assert response["Retry-After"]
    assert owner_client.get(f"/api/documents/{manual.pk}/pages/1/image").status_code == 200


# ============================================================== access and states


def test_pages_out_of_range_are_404(owner_client, manual):
    # 2**31 and past: no jsonb array index (a PostgreSQL integer) can reach them.
    for page in (0, 5, 999, 2**31, 2**31 + 1, 99999999999, 10**30):
        for url in (
            f"/api/documents/{manual.pk}/pages/{page}",
            f"/api/documents/{manual.pk}/pages/{page}/image",
        ):
            response = owner_client.get(url)
            assert response.status_code == 404, url
            assert response.json()["error"]["code"] == "not_found"


def test_other_users_private_documents_are_404(client, manual, outsider):
    for url in (f"/api/documents/{manual.pk}/pages/1", f"/api/documents/{manual.pk}/pages/1/image"):
        assert client.get(url).status_code in (401, 403), url  # signed out
    client.force_login(outsider)
    for url in (
        f"/api/documents/{manual.pk}/pages/1",
        f"/api/documents/{manual.pk}/pages/1/image",
        "/api/documents/987654/pages/1",
    ):
        response = client.get(url)
        assert response.status_code == 404, url
        assert response.json()["error"] == {
            "status": 404,
            "code": "not_found",
            "message": "Not found.",
        }
    Document.objects.filter(pk=manual.pk).update(visibility=Document.Visibility.SHARED)
    assert client.get(f"/api/documents/{manual.pk}/pages/1").status_code == 200
    assert client.get(f"/api/documents/{manual.pk}/pages/1/image").status_code == 200


def test_a_document_that_is_not_ready_is_409(owner_client, owner, media, tmp_path):
    pdf = files.make_pdf(tmp_path / "queued.pdf").read_bytes()
    document = make_document(owner, name="queued.pdf", content=pdf, mime_type=PDF)
    for url in (
        f"/api/documents/{document.pk}/pages/1",
        f"/api/documents/{document.pk}/pages/1/image",
    ):
        response = owner_client.get(url)
        assert response.status_code == 409, url
        assert response.json()["error"]["message"].startswith(
            "The document is still being processed."
        )
    Document.objects.filter(pk=document.pk).update(status=Document.Status.FAILED)
    failed = owner_client.get(f"/api/documents/{document.pk}/pages/1")
    assert failed.status_code == 409
    assert "could not be processed" in failed.json()["error"]["message"]


# ============================================================== non-PDF documents


def test_markdown_returns_the_section_text_with_the_passage(owner_client, owner, media):
    document = _ingest(owner, MANUAL_MD, "manual.md", "text/markdown")
    chunk = _chunk(document, "dial gauge")
    page_text = DocumentContent.objects.get(document=document).pages[0]
    response = _page(owner_client, document, 1, chunk=chunk.pk)
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["image_url"] is None and data["highlights"] == []
    assert data["page_count"] == 1 and data["match"] == "chunk"
    assert data["section"] == chunk.section and "Calibration" in data["section"]
    text, passage = data["text"], data["passage"]
    chunk_text = page_text[chunk.start_offset : chunk.end_offset].strip()
    assert text[passage["start"] : passage["end"]] == chunk_text
    assert "dial gauge" in chunk_text
    # The chunk's own text, without its section line, is what is marked.
    body = chunk.content.split("\n", 1)[1]
    assert " ".join(chunk_text.replace("#", " ").split()) == " ".join(body.split())
    assert data["text_offset"] + passage["start"] == page_text.index(chunk_text)
    # The shown text is the section, not the whole document: the first of two.
    assert "PMAC" not in text
    assert (data["section_number"], data["section_count"]) == (1, 2)
    assert data["truncated_after"] is False

    by_quote = _page(owner_client, document, 1, quote=chunk.content).json()
    assert by_quote["match"] == "quote"
    assert by_quote["text"] == text and by_quote["passage"] == passage
    # Markdown documents have no page images.
    image = owner_client.get(f"/api/documents/{document.pk}/pages/1/image")
    assert image.status_code == 404
    assert _page(owner_client, document, 2).status_code == 404


# ============================================================== helpers


def test_find_quote_ignores_whitespace_hyphenation_and_case():
    text = "Intro line. \nCalibrate the main\x02 \ntenance tool\u2060 every 500 HOURS. \nNext."
    start, end = pages.find_quote(text, "calibrate the maintenance tool every 500 hours.")
    assert text[start:end] == "Calibrate the main\x02 \ntenance tool\u2060 every 500 HOURS."
    assert pages.find_quote(text, "not on this page at all") is None
    assert pages.find_quote("", "anything") is None
    # pdfium's mark inside a word hyphenated at a line end (chunk text: the word whole)
    hyphenated = "Run it after a Unix-like instal\ufffelation of R. Then more."
    start, end = pages.find_quote(hyphenated, "after a Unix-like installation of R.")
    assert hyphenated[start:end] == "after a Unix-like instal\ufffelation of R."


def test_find_quote_finds_the_part_of_a_passage_that_is_on_the_page():
    page = "Previous section ends here. \nFilters \nReplace the oil filter every 250 hours of use."
    quote = (
        "Manual › Maintenance › Filters\nFilters\nReplace the oil filter every 250 hours of use. "
        "The next page continues with the air filter, which is replaced yearly."
    )
    start, end = pages.find_quote(page, quote)
    assert page[start:end] == "Filters \nReplace the oil filter every 250 hours of use."


def test_merge_lines_joins_runs_of_one_line_only():
    boxes = pages.merge_lines(
        [
            (0.1, 0.10, 0.3, 0.12),
            (0.31, 0.101, 0.5, 0.121),  # same line, next text run
            (0.1, 0.13, 0.45, 0.15),  # next line
            (0.8, 0.10, 0.9, 0.12),  # same height, far to the right: another column
            (0.2, 0.5, 0.2, 0.6),  # empty
        ]
    )
    assert [(b.x, b.y) for b in boxes] == [(0.1, 0.1), (0.8, 0.1), (0.1, 0.13)]
    assert boxes[0].w == pytest.approx(0.4) and boxes[0].h == pytest.approx(0.021)


def test_clamp_width():
    assert [pages.clamp_width(w) for w in (None, "", "x", "1", "401", "1000", "5000")] == [
        1000,
        1000,
        1000,
        400,
        500,
        1000,
        2000,
    ]


def test_highlights_follow_the_page_rotation(tmp_path):
    path = files.make_pdf(tmp_path / "turned.pdf", [["Turn the violet handwheel clockwise."]])
    pdf = pdfium.PdfDocument(path)
    pdf[0].set_rotation(90)
    pdf.save(tmp_path / "rotated.pdf")
    pdf.close()
    text = "Turn the violet handwheel clockwise."
    upright = pages._pdf_boxes(path, 1, 0, len(text))
    turned = pages._pdf_boxes(tmp_path / "rotated.pdf", 1, 0, len(text))
    assert len(upright) == len(turned) == 1
    (a,), (b,) = upright, turned
    assert a.w > a.h and b.h > b.w  # the line now runs down the (landscape) page
    assert b.h == pytest.approx(a.w, abs=0.005)  # same length: both are fractions of 595 pt
    assert b.x > 0.5  # turned clockwise: the top of the page is on the right


def test_markdown_with_page_marks_shows_the_passage_on_its_own_page(owner_client, owner, media):
    source = (
        b"# Manual\n\n## Calibration\n\nUse the dial gauge on the reference bar.\n\n"
        b"<!-- PAGE BREAK -->\n\n## Calibration log\n\nRecord the runout in the machine log.\n"
    )
    document = _ingest(owner, source, "converted.md", "text/markdown")
    chunk = _chunk(document, "runout")
    assert chunk.first_page == chunk.last_page == 2

    data = _page(owner_client, document, 2, chunk=chunk.pk).json()
    assert data["page_count"] == 2 and data["match"] == "chunk"
    assert "Record the runout" in data["text"][data["passage"]["start"] : data["passage"]["end"]]
    assert "dial gauge" not in data["text"] and "<!--" not in data["text"]
    first = _page(owner_client, document, 1).json()
    assert "dial gauge" in first["text"] and "runout" not in first["text"]
