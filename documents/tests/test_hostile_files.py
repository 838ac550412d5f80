"""A corpus of hostile files through the real upload API and the real worker.

Every file is generated here (documents/tests/files.py), posted to POST /api/documents
as raw multipart (so hostile file names reach the server as sent), and every queued
document is then processed by `manage.py worker --batch`, the worker that runs in
production. Each case ends in exactly one expected way:

- rejected: the upload answers 4xx with a sentence saying why; no row, no file;
- failed:   the document is `failed` with a reason for a person, and has no content,
            chunks or embeddings;
- ready:    the file is legitimately readable and is processed.

And for all of them: the worker never crashes (every task finishes SUCCESSFUL), stored
files have UUID names inside MEDIA_ROOT and nothing is written anywhere else, no file is
left without its row, display names are clean, and hostile names are escaped in pages.
Run with -v to see the outcome table.
"""

from __future__ import annotations

import multiprocessing
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse

from documents.models import Chunk, Document, DocumentContent, Embedding
from documents.tests import files

pytestmark = pytest.mark.django_db(transaction=True)

MAX_CHARS = 500_000  # EXTRACTION_MAX_CHARS for this corpus
STORED_NAME = re.compile(r"documents/[0-9a-f]{32}\.(pdf|docx|md|txt)")
PDF, DOCX = (
    "application/pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
)
MD, TXT = "text/markdown", "text/plain"
# Where a zip-slip member would land if anything unpacked DOCX files to disk.
ZIP_SLIP_TARGET = Path("/tmp") / f"rra-zip-slip-{uuid.uuid4().hex}.txt"


@dataclass
class Case:
    filename: str  # as sent in the multipart header
    build: Callable[[Path], bytes]
    outcome: str  # "rejected", "failed" or "ready"
    says: str = ""  # in the rejection message or the failure reason
    status: int = 0  # HTTP status of a rejection
    mime: str = ""  # of a ready document
    name: str | None = None  # the display name the document must get
    check: Callable[[Document], None] | None = None  # more checks for a ready document


def written(make, *args, **kwargs) -> Callable[[Path], bytes]:
    """A case builder from a files.make_* function (which writes to a path)."""
    return lambda path: make(path, *args, **kwargs).read_bytes()


def markdown(tag: str) -> Callable[[Path], bytes]:
    """A small readable manual, different for each case (same bytes would deduplicate)."""
    return lambda path: (
        f"# Manual {tag}\n\nCalibrate the chuck every 500 hours ({tag}).\n".encode()
    )


def content_of(document: Document) -> str:
    return "\n".join(document.chunks.values_list("content", flat=True))


def markdown_without_markup(document: Document) -> None:
    content = content_of(document)
    assert "Press start." in content, content[:200]
    assert "alert(" not in content and "<iframe" not in content, content[:200]


def contains(text: str) -> Callable[[Document], None]:
    def check(document: Document) -> None:
        assert text in content_of(document), (document.name, content_of(document)[:200])

    return check


def no_nul(document: Document) -> None:
    assert "\x00" not in content_of(document)
    assert "\x00" not in "".join(document.content.pages)
    assert "\ufffd" in document.content.pages[0]  # NUL became U+FFFD, same length


def bounded_pieces(document: Document) -> None:
    chunks = list(document.chunks.all())
    assert len(chunks) > 20
    assert max(len(c.content) for c in chunks) <= 2 * 2000


def entity_not_resolved(document: Document) -> None:
    text = content_of(document)
    assert "&x; Lubricate the rails." in text and "root:" not in text


def no_zip_slip(document: Document) -> None:
    assert "Service manual" in content_of(document)
    assert not ZIP_SLIP_TARGET.exists()


LATE = 70_000  # past the 64 KB sample the upload check reads


CORPUS: dict[str, Case] = {
    # --- DOCX bombs --------------------------------------------------------------
    "deflate ratio bomb (1 GB part)": Case(
        "bomb.docx", written(files.make_zip_bomb_docx), "failed", "expands to more than"
    ),
    "deflate ratio bomb under the size limit (150 MB)": Case(
        "bomb150.docx",
        written(files.make_zip_bomb_docx, unpacked_mb=150),
        "failed",
        "compressed suspiciously well (zip bomb?)",
    ),
    "huge XML (1.2 GB document.xml)": Case(
        "xml-bomb.docx", written(files.make_xml_bomb_docx), "failed", "expands to more than"
    ),
    "30 parts of 9 MB zeros": Case(
        "zeros.docx", written(files.make_many_zeros_docx), "failed", "expands to more than"
    ),
    "billion laughs": Case(
        "laughs.docx", written(files.make_billion_laughs_docx), "failed", "entity declarations"
    ),
    "external entity (XXE)": Case(
        "xxe.docx", written(files.make_xxe_docx), "failed", "entity declarations"
    ),
    "XML nested 100,000 deep": Case(
        "deep.docx", written(files.make_deep_xml_docx), "failed", "The DOCX file is damaged."
    ),
    "20,000 files in the ZIP": Case(
        "many.docx",
        written(files.make_many_files_docx),
        "rejected",
        "more than 10,000 files",
        415,
    ),
    # --- PDF bombs ---------------------------------------------------------------
    "100,000 pages": Case(
        "pages.pdf",
        written(files.make_many_pages_pdf, 100_000),
        "failed",
        "has 100000 pages; the limit is 2000",
    ),
    "one page listed 5,000 times": Case(
        "repeat.pdf",
        written(files.make_repeated_page_pdf, 5000),
        "failed",
        "has 5000 pages; the limit is 2000",
    ),
    "page count of a billion, one page": Case(
        "liar.pdf",
        written(files.make_lying_page_count_pdf, b"Only one page is real"),
        "ready",
        mime=PDF,
        check=contains("Only one page is real"),
    ),
    "page tree loop": Case(
        "loop.pdf", written(files.make_cyclic_page_tree_pdf), "failed", "damaged or incomplete"
    ),
    "page tree 5,000 deep": Case(
        "tree.pdf", written(files.make_deep_page_tree_pdf), "failed", "damaged or incomplete"
    ),
    "arrays and q/Q nested 200,000 deep": Case(
        "nested.pdf",
        written(files.make_deep_nesting_pdf, b"Nesting does not hurt"),
        "ready",
        mime=PDF,
        check=contains("Nesting does not hurt"),
    ),
    "content stream inflating to 4 GB": Case(
        "content-bomb.pdf",
        written(files.make_pdf_content_bomb),
        "failed",
        "more than 512 MB of memory",
    ),
    "font program inflating to 2 GB": Case(
        "font-bomb.pdf", written(files.make_pdf_font_bomb), "failed", "more than 512 MB of memory"
    ),
    "one page of 1,000,000 words": Case(
        "flood.pdf", written(files.make_text_flood_pdf), "failed", "more than 512 MB of memory"
    ),
    "text past EXTRACTION_MAX_CHARS": Case(
        "long.pdf",
        written(files.make_text_flood_pdf, words=150_000),
        "failed",
        f"more than {MAX_CHARS:,} characters",
    ),
    # --- encrypted ---------------------------------------------------------------
    "PDF with a password": Case(
        "locked.pdf",
        written(files.make_pdf, encrypt_password="secret"),
        "failed",
        "The PDF is password protected.",
    ),
    "PDF encrypted with an empty user password": Case(
        "owner-only.pdf",
        written(files.make_pdf, [["Readable without a password."]], encrypt_password=""),
        "ready",
        mime=PDF,
        check=contains("Readable without a password."),
    ),
    "DOCX saved with a password (OLE)": Case(
        "locked.docx",
        written(files.make_encrypted_office_file),
        "rejected",
        "password-protected Office document",
        415,
    ),
    "DOCX with zip-encrypted parts": Case(
        "zipcrypto.docx",
        written(files.make_zip_encrypted_docx, "secret"),
        "failed",
        "The DOCX file is password protected.",
    ),
    # --- truncated and damaged -----------------------------------------------------
    "PDF cut in half": Case(
        "half.pdf",
        written(lambda p: files.make_truncated_pdf(files.make_pdf(p))),
        "failed",
        "damaged or incomplete",
    ),
    "PDF header only": Case(
        "header.pdf", lambda p: b"%PDF-1.7\n", "failed", "damaged or incomplete"
    ),
    "DOCX cut in half": Case(
        "half.docx", written(files.make_truncated_docx), "rejected", "damaged ZIP archive", 415
    ),
    "DOCX with garbage document.xml": Case(
        "garbage.docx", written(files.make_corrupt_docx), "failed", "The DOCX file is damaged."
    ),
    "PDF without pages": Case(
        "zero.pdf", written(files.make_empty_pdf), "failed", "The PDF has no pages."
    ),
    "PDF without text (a scan)": Case(
        "scan.pdf", written(files.make_image_pdf), "failed", "No text found"
    ),
    "DOCX without text": Case(
        "blank.docx",
        written(files.make_docx, [("p", " "), ("p", "")]),
        "failed",
        "contains no text",
    ),
    # --- polyglots and mislabelled files --------------------------------------------
    "PDF followed by a ZIP": Case(
        "polyglot.pdf",
        lambda p: files.make_pdf_zip_polyglot(
            p, files.make_pdf(p.with_suffix(".base"))
        ).read_bytes(),
        "ready",
        mime=PDF,
        check=contains("emergency button"),
    ),
    "DOCX with %PDF- in its first kilobyte": Case(
        "marker.docx",
        written(files.make_docx_with_part, "%PDF-1.7.txt", first=True),
        "ready",
        mime=DOCX,
        check=contains("Service manual"),
    ),
    "PDF named .docx": Case(
        "manual.docx",
        written(files.make_pdf, [["A PDF in disguise."]]),
        "ready",
        mime=PDF,
        name="manual.docx",
        check=contains("A PDF in disguise."),
    ),
    "DOCX named .pdf": Case(
        "word.pdf",
        written(files.make_docx, [("p", "A Word file in disguise.")]),
        "ready",
        mime=DOCX,
        check=contains("A Word file in disguise."),
    ),
    "PNG named .pdf": Case(
        "image.pdf", written(files.make_png), "rejected", "looks like a PNG image", 415
    ),
    "ZIP named .docx": Case(
        "archive.docx", written(files.make_zip), "rejected", "looks like a ZIP archive", 415
    ),
    "Markdown headings padded with 100,000 spaces": Case(
        "wide.md",
        lambda p: b"".join(
            b"## Wide%sheading %d\n\nText.\n\n" % (b" " * 100_000, n) for n in range(3)
        ),
        "ready",
        mime=MD,
        check=contains("Wide heading 2"),
    ),
    "PDF with JavaScript and an embedded program": Case(
        "active.pdf",
        written(files.make_active_pdf, b"Scripts are never run"),
        "ready",
        mime=PDF,
        check=contains("Scripts are never run"),
    ),
    "XML with an external entity in .md": Case(
        "entity.md",
        lambda p: b'<?xml version="1.0"?>\n<!DOCTYPE m [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
        b"<m>&x; Lubricate the rails.</m>\n",
        "ready",
        mime=MD,
        check=entity_not_resolved,
    ),
    "HTML with scripts in .md": Case(
        "page.md",
        lambda p: b"# Setup\n\n<script>alert('md')</script>\n\n<iframe src='x'></iframe> Press start.\n",
        "ready",
        mime=MD,
        # Markdown loses its HTML markup (issue 13): scripts with their code, tags.
        check=markdown_without_markup,
    ),
    "HTML named .pdf": Case(
        "page.pdf",
        lambda p: b"<html><body><script>alert(1)</script>Manual</body></html>\n",
        "ready",
        mime=TXT,
        check=contains("<script>alert(1)</script>"),
    ),
    "DOCX with a ../../ member (zip slip)": Case(
        "slip.docx",
        written(files.make_docx_with_part, "../" * 12 + str(ZIP_SLIP_TARGET).lstrip("/")),
        "ready",
        mime=DOCX,
        check=no_zip_slip,
    ),
    # --- encodings -----------------------------------------------------------------
    "UTF-16 LE without BOM": Case(
        "utf16le.txt",
        lambda p: "Manual text, line one.\n".encode("utf-16-le") * 20,
        "rejected",
        "UTF-16 text without a byte order mark",
        415,
    ),
    "UTF-16 BE without BOM": Case(
        "utf16be.txt",
        lambda p: "Manual text, line one.\n".encode("utf-16-be") * 20,
        "rejected",
        "UTF-16 text without a byte order mark",
        415,
    ),
    "UTF-16 with BOM": Case(
        "utf16.txt",
        written(files.make_text, "Kalibrierung der Spannfutter.\n", encoding="utf-16-le"),
        "ready",
        mime=TXT,
        check=contains("Kalibrierung der Spannfutter."),
    ),
    "UTF-16 with a lone surrogate past 64 KB": Case(
        "surrogate16.txt",
        lambda p: b"\xff\xfe" + "manual ".encode("utf-16-le") * 10_000 + b"\x00\xd8a\x00",
        "failed",
        "not valid UTF-16 text (first bad byte at offset 140002)",
    ),
    "UTF-32": Case(
        "utf32.txt", lambda p: "Manual text.\n".encode("utf-32"), "rejected", "UTF-32 text", 415
    ),
    "Latin-1": Case(
        "latin1.txt",
        lambda p: "Café crème: à côté de la pièce.\n".encode("latin-1") * 5,
        "rejected",
        "text that is not UTF-8",
        415,
    ),
    "Latin-1 byte past 64 KB": Case(
        "latin1-late.txt",
        lambda p: b"manual " * (LATE // 7) + b"caf\xe9\n",
        "failed",
        f"not valid UTF-8 text (first bad byte at offset {LATE // 7 * 7 + 3})",
    ),
    "overlong UTF-8 (/ as C0 AF)": Case(
        "overlong.txt",
        lambda p: b"Path: \xc0\xaf\xc0\xafetc\xc0\xafpasswd\n",
        "rejected",
        "not UTF-8",
        415,
    ),
    "NUL bytes": Case(
        "nul.txt", lambda p: b"manual\x00text\x00\x00\n", "rejected", "a binary file", 415
    ),
    "NUL bytes past 64 KB": Case(
        "nul-late.md",
        lambda p: b"# Late NULs\n\n" + b"manual " * (LATE // 7) + b"\x00\x00 tail\n",
        "ready",
        mime=MD,
        check=no_nul,
    ),
    "control characters": Case(
        "controls.txt", lambda p: bytes(range(1, 9)) * 50, "rejected", "not supported", 415
    ),
    "old Mac newlines (CR only)": Case(
        "mac.txt",
        lambda p: b"First line\rsecond line\r\rSecond paragraph",
        "ready",
        mime=TXT,
        check=contains("Second paragraph"),
    ),
    # --- empty and huge --------------------------------------------------------------
    "empty file": Case("empty.pdf", lambda p: b"", "rejected", "The file is empty.", 400),
    "UTF-8 BOM only": Case(
        "bom.txt", lambda p: b"\xef\xbb\xbf", "failed", "The document contains no text."
    ),
    "whitespace only": Case(
        "blank.md", lambda p: b" \n\t\n  \r\n\n", "failed", "The document contains no text."
    ),
    "2 MB single line": Case(
        "line.txt",
        lambda p: b"rail " * (2 * files.MB // 5),
        "failed",
        f"more than {MAX_CHARS:,} characters",
    ),
    "200 KB single line": Case(
        "short-line.txt",
        lambda p: b"chuck " * (200 * 1024 // 6),
        "ready",
        mime=TXT,
        check=bounded_pieces,
    ),
    # --- file names ------------------------------------------------------------------
    "../../etc/passwd.pdf": Case(
        "../../etc/passwd.pdf",
        written(files.make_pdf, [["Traversal by name."]]),
        "ready",
        mime=PDF,
        name="passwd.pdf",
    ),
    "absolute path": Case("/etc/cron.d/evil.md", markdown("abs"), "ready", mime=MD, name="evil.md"),
    "Windows path": Case(
        "C:\\Windows\\System32\\evil.md", markdown("win"), "ready", mime=MD, name="evil.md"
    ),
    "RFC 5987 filename* with ../": Case(
        "*=UTF-8''..%2F..%2Fstar%20evil.md", markdown("star"), "ready", mime=MD, name="star evil.md"
    ),
    "HTML-escaped ../": Case(
        "&#46;&#46;&#47;&#46;&#46;&#47;escaped.md",
        markdown("escaped"),
        "ready",
        mime=MD,
        name="escaped.md",
    ),
    "NUL in the name": Case(
        "report\x00.exe.md", markdown("nul"), "ready", mime=MD, name="report.exe.md"
    ),
    "RTL override": Case(
        "invoice\u202egpj.md", markdown("rtl"), "ready", mime=MD, name="invoicegpj.md"
    ),
    "600-character name": Case(
        "n" * 600 + ".md",
        markdown("long"),
        "ready",
        mime=MD,
        name="n" * 252 + ".md",  # Django keeps 255 characters
    ),
    "1,000-character name": Case(
        "n" * 1000 + ".md", markdown("longer"), "rejected", "header size exceeded", 400
    ),
    "Windows reserved CON": Case("CON.md", markdown("con"), "ready", mime=MD, name="CON.md"),
    "Windows reserved com1.txt": Case(
        "com1.txt", markdown("com1"), "ready", mime=MD, name="com1.txt"
    ),
    "dot file": Case(".htaccess.md", markdown("dot"), "ready", mime=MD, name="htaccess.md"),
    "HTML in the name": Case(
        "<img src=x onerror=alert(1)>.md",
        markdown("xss"),
        "ready",
        mime=MD,
        name="<img src=x onerror=alert(1)>.md",
    ),
    "filename* in an unknown charset": Case(
        "*=x-evil''name.md", markdown("charset"), "rejected", "Attach one or more files", 400
    ),
    "filename* with invalid UTF-8": Case(
        "*=UTF-8''%ED%A0%80%FF.md", markdown("badutf8"), "ready", mime=MD, name="\ufffd" * 4 + ".md"
    ),
    "CR LF and headers in the name": Case(
        "a\r\nContent-Type: text/html\r\n\r\n<b>.md",
        markdown("crlf"),
        "ready",
        mime=MD,
        name='"a',  # the part's header ends at the CR LF; the rest is file content
    ),
    "a PNG named ../../.env.png": Case(
        "../../.env.png",
        written(files.make_png),
        "rejected",
        "“env.png”: This looks like a PNG",
        415,
    ),
    "only ..": Case("..", markdown("dotdot"), "rejected", "Attach one or more files", 400),
}


def _quote(filename: str) -> bytes:
    if filename.startswith("*="):  # sent as filename*=UTF-8''... (RFC 5987)
        return b"filename*=" + filename[2:].encode()
    escaped = filename.replace("\\", "\\\\").replace('"', '\\"')
    return b'filename="' + escaped.encode() + b'"'


def _print_table(rows: list[tuple[str, str, str]]) -> None:
    print(f"\nhostile corpus: {len(rows)} files")
    for outcome in ("rejected", "failed", "ready"):
        print(f"  {outcome}: {sum(1 for r in rows if r[1] == outcome)}")
    for label, outcome, detail in rows:
        print(f"  {label[:44]:44} {outcome:8} {detail[:90]}")


def _post_raw(client, filename: str, data: bytes):
    """POST one file with the file name exactly as given (the test client's own encoder
    would strip any path from it first)."""
    boundary = uuid.uuid4().hex
    body = (
        b'--%s\r\nContent-Disposition: form-data; name="files"; %s\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n"
        % (boundary.encode(), _quote(filename))
        + data
        + b"\r\n--%s--\r\n" % boundary.encode()
    )
    return client.post(
        "/api/documents", data=body, content_type=f"multipart/form-data; boundary={boundary}"
    )


def _clean_name(name: str) -> bool:
    return (
        0 < len(name) <= 255
        and all(ch.isprintable() for ch in name)
        and not {"/", "\\"} & set(name)
        and not name.startswith(".")
    )


def _stored_inside(document: Document, media: Path) -> bool:
    path = Path(document.file.path).resolve()
    return bool(STORED_NAME.fullmatch(document.file.name)) and path.is_relative_to(
        media.resolve() / "documents"
    )


def test_the_hostile_corpus_ends_cleanly(owner_client, media, tmp_path, settings, capsys, request):
    from django_tasks_db.models import DBTaskResult

    assert len(CORPUS) >= 30
    settings.UPLOAD_RATE = "1000/m"
    settings.EXTRACTION_MEMORY_MB = 512
    settings.EXTRACTION_TIMEOUT_S = 60
    settings.EXTRACTION_MAX_CHARS = MAX_CHARS
    work = tmp_path / "corpus"
    work.mkdir()
    problems: list[str] = []
    uploaded: dict[str, int] = {}
    answers: dict[str, str] = {}
    for label, case in CORPUS.items():
        data = case.build(work / f"{len(answers)}.bin")
        response = _post_raw(owner_client, case.filename, data)
        body = response.json()
        if response.status_code in (200, 201):
            [result] = body["results"]
            assert result["created"], f"{label}: the same bytes as another case"
            uploaded[label] = result["id"]
            answers[label] = f"{response.status_code} {result['mime_type']}"
        else:
            answers[label] = f"{response.status_code} {body['error']['message']}"
            if case.outcome != "rejected":
                problems.append(f"{label}: upload refused: {answers[label]}")
            elif response.status_code != case.status or case.says not in answers[label]:
                problems.append(
                    f"{label}: expected {case.status} saying {case.says!r}, got {answers[label]}"
                )
            continue
        if case.outcome == "rejected":
            problems.append(f"{label}: expected a {case.status}, got {answers[label]}")

    call_command("worker", "--batch", "--no-startup-delay", "--no-reload", verbosity=0)
    assert multiprocessing.active_children() == []  # no extraction child left running

    # The worker ran every task to the end: none raised, each one's outcome is final.
    tasks = DBTaskResult.objects.filter(task_path="documents.tasks.ingest_document")
    assert tasks.count() == len(uploaded)
    crashed = [(t.args_kwargs, t.exception_class_path) for t in tasks if t.status != "SUCCESSFUL"]
    assert crashed == []
    assert {t.return_value for t in tasks} <= {"ready", "failed"}

    rows = []
    for label, case in CORPUS.items():
        if label not in uploaded:
            rows.append((label, "rejected", answers[label]))
            continue
        document = Document.objects.get(pk=uploaded[label])
        rows.append((label, document.status, document.failure_reason or document.mime_type))
        if not _clean_name(document.name):
            problems.append(f"{label}: display name {document.name!r}")
        if case.name is not None and document.name != case.name:
            problems.append(f"{label}: named {document.name!r}, expected {case.name!r}")
        if not _stored_inside(document, media):
            problems.append(f"{label}: stored as {document.file.name!r}")
        if document.status != case.outcome:
            problems.append(
                f"{label}: {document.status} ({document.failure_reason}), expected {case.outcome}"
            )
            continue
        if case.outcome == "failed":
            if case.says not in document.failure_reason:
                problems.append(
                    f"{label}: reason {document.failure_reason!r}, expected {case.says!r}"
                )
            reason = document.failure_reason
            if any(
                leak in reason for leak in ("Traceback", "unexpectedly", "Errno", str(tmp_path))
            ):
                problems.append(f"{label}: not a reason for a person: {document.failure_reason!r}")
            leftovers = (
                document.chunks.exists()
                or DocumentContent.objects.filter(document=document).exists()
                or Embedding.objects.filter(chunk__document=document).exists()
            )
            if leftovers or document.claim is not None:
                problems.append(f"{label}: failed but left data or its claim behind")
        else:
            if document.mime_type != case.mime:
                problems.append(f"{label}: processed as {document.mime_type}, expected {case.mime}")
            if not document.chunks.exists() or document.chunks.count() != document.chunks_total:
                problems.append(f"{label}: ready without all its chunks")
            if case.check is not None:
                try:
                    case.check(document)
                except AssertionError as exc:
                    problems.append(f"{label}: {exc}")

    if request.config.getoption("verbose") > 0:  # the outcome table with -v
        with capsys.disabled():
            _print_table(rows)

    assert problems == []

    # Files: exactly one per document, each under MEDIA_ROOT/documents; nothing else
    # was written anywhere in this test's folder.
    stored = {p.relative_to(media).as_posix() for p in media.rglob("*") if p.is_file()}
    assert stored == set(Document.objects.values_list("file", flat=True))
    assert {p.name for p in tmp_path.iterdir()} == {"corpus", "media"}

    # Hostile names are escaped in pages.
    page = owner_client.get(reverse("documents:library")).content.decode()
    assert "<img src=x onerror" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;.md" in page

    # Deleting every document leaves no file and no row behind.
    for document_id in uploaded.values():
        assert owner_client.delete(f"/api/documents/{document_id}").status_code == 204
    assert not [p for p in media.rglob("*") if p.is_file()]
    assert not Chunk.objects.exists() and not DocumentContent.objects.exists()
