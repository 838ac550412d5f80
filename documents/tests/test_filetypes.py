"""documents.filetypes: the type comes from the content, the name only picks Markdown."""

from __future__ import annotations

import contextlib
import io
import struct
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from documents import filetypes
from documents.filetypes import (
    ACCEPTED_DESCRIPTION,
    DOCX,
    MARKDOWN,
    PDF,
    TEXT,
    EmptyFile,
    FileRejected,
    UnsupportedFileType,
    detect,
)
from documents.tests import files

ACCEPTED_SUFFIX = f". Accepted file types: {ACCEPTED_DESCRIPTION}."


def detect_bytes(data: bytes, name: str = "") -> str:
    return detect(io.BytesIO(data), name=name)


def rejection(data: bytes, name: str = "") -> FileRejected:
    with pytest.raises(FileRejected) as info:
        detect_bytes(data, name)
    return info.value


def test_it_detects_a_pdf_from_its_content_whatever_the_name(tmp_path):
    pdf = files.make_pdf(tmp_path / "manual.txt")
    with pdf.open("rb") as f:
        assert detect(f, name="manual.txt") == PDF


def test_it_finds_the_pdf_header_after_leading_junk():
    assert detect_bytes(b"\x00" * 1000 + b"%PDF-1.7\n...") == PDF


def test_it_ignores_a_pdf_header_beyond_the_first_kilobyte():
    assert detect_bytes(b"a" * 1100 + b"%PDF-1.7\n") == TEXT


def test_it_detects_a_docx_by_its_zip_directory():
    assert detect_bytes(files.docx_bytes(), name="report.pdf") == DOCX


def test_it_rejects_a_zip_that_is_not_a_docx(tmp_path):
    data = files.make_zip(tmp_path / "a.zip").read_bytes()
    error = rejection(data, "a.docx")
    assert isinstance(error, UnsupportedFileType)
    assert (
        error.message == "This looks like a ZIP archive, which is not supported" + ACCEPTED_SUFFIX
    )


def test_it_names_other_office_zip_formats(tmp_path):
    data = files.make_zip(
        tmp_path / "book.xlsx", {"[Content_Types].xml": b"<Types/>", "xl/workbook.xml": b"<x/>"}
    ).read_bytes()
    assert rejection(data).found == "an Excel workbook (.xlsx)"


def test_it_rejects_a_broken_zip_as_not_docx():
    error = rejection(b"PK\x03\x04" + b"\x00" * 200, "a.docx")
    assert isinstance(error, UnsupportedFileType)
    assert error.found == "a damaged ZIP archive"


def test_it_rejects_a_png_named_pdf(tmp_path):
    png = files.make_png(tmp_path / "scan.pdf")
    with png.open("rb") as f, pytest.raises(UnsupportedFileType) as info:
        detect(f, name="scan.pdf")
    assert info.value.message == (
        "This looks like a PNG image, which is not supported. Accepted file types: PDF, "
        "Word (.docx), Markdown and plain text (UTF-8 or UTF-16 with BOM)."
    )


@pytest.mark.parametrize(
    ("head", "found"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "a JPEG image"),
        (b"GIF89a\x01\x00\x01\x00\x00\x00", "a GIF image"),
        (
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100,
            "a legacy Office 97-2003 file (.doc, .xls, .ppt) or a password-protected "
            "Office document",
        ),
        (bytes(range(256)) * 4, "a binary file"),
    ],
)
def test_it_names_what_a_rejected_binary_file_looks_like(head, found):
    error = rejection(head, "file.pdf")
    assert isinstance(error, UnsupportedFileType)
    assert error.found == found
    assert error.message == f"This looks like {found}, which is not supported" + ACCEPTED_SUFFIX


def test_it_rejects_an_empty_file():
    with pytest.raises(EmptyFile) as info:
        detect_bytes(b"", "empty.pdf")
    assert info.value.message == "The file is empty."
    assert isinstance(info.value, FileRejected)


def test_it_detects_plain_text():
    assert detect_bytes(b"Calibrate the chuck.\n\nThen restart.\n", "notes.txt") == TEXT


def test_it_detects_markdown_by_name():
    assert detect_bytes(b"Just a line.\n", "README.MD") == MARKDOWN
    assert detect_bytes(b"Just a line.\n", "guide.markdown") == MARKDOWN


def test_it_detects_markdown_by_atx_heading_whatever_the_name():
    assert detect_bytes(b"Intro\n\n## Calibration\n\nText.\n", "notes.txt") == MARKDOWN


def test_it_detects_markdown_by_setext_heading():
    assert detect_bytes(b"Calibration\n===========\n\nText.\n") == MARKDOWN
    assert detect_bytes(b"Calibration\n-----------\nText.\n") == MARKDOWN


def test_an_info_manual_or_restructured_text_is_plain_text_whose_headings_keep_their_levels():
    """find.txt (GNU findutils' Info manual) went to the Markdown reader for its "=" and
    "-" headings, which dropped its chapters ("*") and subsubsections ("."): the passage
    of "3.3.2.2 Safe File Name Handling" said "3.3 Run Commands > 3.3.2 Multiple Files"."""
    from documents.extraction.text import extract_text

    info = (
        "GNU Findutils\n*************\n\n3 Actions\n*********\n\n3.3 Run Commands\n"
        "================\n\n3.3.2 Multiple Files\n--------------------\n\nUse xargs.\n\n"
        "3.3.2.2 Safe File Name Handling\n...............................\n\n"
        "Use 'find -print0' with 'xargs --null'.\n\n# not a heading in a plain text\n"
    )
    assert detect_bytes(info.encode(), "find.txt") == TEXT
    last = extract_text(info).blocks[-2]
    assert last.headings == [
        "3 Actions",
        "3.3 Run Commands",
        "3.3.2 Multiple Files",
        "3.3.2.2 Safe File Name Handling",
    ]
    rst = b"Setup\n=====\n\nInstall\n-------\n\nDetails\n~~~~~~~\n\nText.\n"
    assert detect_bytes(rst, "guide.txt") == TEXT
    # Markdown's own: a thematic break, a dotted line that underlines nothing of its length.
    assert detect_bytes(b"Title\n=====\n\nText\n\n***\n\nMore\n...\n", "a.txt") == MARKDOWN
    assert detect_bytes(b"Notes\n.....\n", "notes.md") == MARKDOWN


def test_it_does_not_take_a_hash_without_space_for_a_heading():
    assert detect_bytes(b"#include <stdio.h>\nint main;\n") == TEXT


def test_it_accepts_utf8_with_bom():
    assert detect_bytes(b"\xef\xbb\xbfCaf\xc3\xa9 manual\n") == TEXT


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_it_accepts_utf16_with_bom(tmp_path, encoding):
    path = files.make_text(tmp_path / "a.txt", "# Heading\n\nCafé ☕ text\n", encoding=encoding)
    with path.open("rb") as f:
        assert detect(f) == MARKDOWN


def test_it_rejects_utf16_without_bom():
    error = rejection("Plain text in UTF-16".encode("utf-16-le"))
    assert error.found == "UTF-16 text without a byte order mark (save it as UTF-8)"


def test_it_tolerates_a_multibyte_character_cut_at_the_sample_end():
    data = b"a" * (filetypes.TEXT_SAMPLE_BYTES - 1) + "é more".encode()
    assert data[filetypes.TEXT_SAMPLE_BYTES - 1 : filetypes.TEXT_SAMPLE_BYTES + 1] == b"\xc3\xa9"
    assert detect_bytes(data) == TEXT


def test_it_rejects_text_that_is_not_utf8(tmp_path):
    path = files.make_invalid_utf8(tmp_path / "latin1.txt")
    with path.open("rb") as f, pytest.raises(UnsupportedFileType) as info:
        detect(f, name="latin1.txt")
    assert info.value.found == "text that is not UTF-8 (save it as UTF-8)"


def test_it_rejects_nul_bytes_in_utf8_text():
    assert rejection(b"text\x00with a NUL byte\n").found == "a binary file"


def test_it_rejects_rtf():
    error = rejection(b"{\\rtf1\\ansi Hello}", "letter.txt")
    assert error.found == "an RTF document (save it as .docx or PDF)"


def test_it_restores_the_position_to_zero_also_when_rejecting():
    for data in (files.docx_bytes(), files.png_bytes(), b"plain text", b""):
        stream = io.BytesIO(data)
        stream.seek(min(5, len(data)))
        with contextlib.suppress(FileRejected):
            detect(stream)
        assert stream.tell() == 0


def test_it_works_with_django_uploaded_files():
    upload = SimpleUploadedFile("manual.pdf", files.docx_bytes(), content_type="application/pdf")
    assert detect(upload, name=upload.name) == DOCX
    assert upload.tell() == 0
    assert zipfile.is_zipfile(upload)


def test_it_refuses_a_zip_with_too_many_files_before_reading_its_directory(tmp_path):
    many = files.make_many_files_docx(tmp_path / "many.docx", count=3000)
    with many.open("rb") as f:
        assert detect(f, max_zip_entries=3100) == DOCX
        with pytest.raises(UnsupportedFileType, match="ZIP archive with more than 2,000 files"):
            detect(f, max_zip_entries=2000)
    # The entry count can lie; zipfile reads the directory by its size, and so is it judged.
    data = bytearray(many.read_bytes())
    end = data.rfind(b"PK\x05\x06")
    data[end + 8 : end + 12] = struct.pack("<HH", 1, 1)
    with pytest.raises(UnsupportedFileType, match="more than 100 files"):
        detect(io.BytesIO(bytes(data)), max_zip_entries=100)
