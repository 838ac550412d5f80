"""What kind of file an upload is, decided from its content (magic bytes), never its name.

`detect()` returns one of the accepted MIME types or raises FileRejected with a sentence
for the person who uploaded the file. The file name only decides between Markdown and
plain text, which have no magic bytes of their own.
"""

from __future__ import annotations

import codecs
import os
import re
import struct
import zipfile
from typing import BinaryIO

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
MARKDOWN = "text/markdown"
TEXT = "text/plain"

ACCEPTED_MIME_TYPES = (PDF, DOCX, MARKDOWN, TEXT)
ACCEPTED_DESCRIPTION = "PDF, Word (.docx), Markdown and plain text (UTF-8 or UTF-16 with BOM)"

PDF_SEARCH_BYTES = 1024  # "%PDF-" may follow some junk, as in what readers accept
TEXT_SAMPLE_BYTES = 64 * 1024
# A ZIP with more files than this is refused before its directory is parsed (zipfile
# builds one object per entry: 500,000 entries took 2.4 s and 230 MB here).
ZIP_MAX_ENTRIES = 10_000
# zipfile reads the directory by its size, whatever the entry count says: a directory
# is refused above this many bytes per allowed entry (46 fixed + name + extra fields).
_ZIP_DIRECTORY_BYTES_PER_ENTRY = 512
MARKDOWN_SUFFIXES = (".md", ".markdown")

UTF8_BOM = codecs.BOM_UTF8
UTF16_BOMS = {codecs.BOM_UTF16_LE: "utf-16-le", codecs.BOM_UTF16_BE: "utf-16-be"}

_ATX_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+\S", re.MULTILINE)
_SETEXT_HEADING = re.compile(r"^ {0,3}\S[^\n]*\n {0,3}(?:={2,}|-{2,})[ \t]*$", re.MULTILINE)
# A title underlined, to its own length, by a character Markdown never underlines a
# heading with: an Info manual ("3.3.2.2 Safe File Name Handling" over dots, chapters
# over "*") or reStructuredText ("~", "^", "+"). Markdown would keep only its "=" and "-"
# headings, two levels of four (find.txt's passages lost their subsections).
_PLAIN_UNDERLINE = re.compile(r"^(\S[^\n]*?)[ \t]*\n([.*~^+])\2{2,}[ \t]*$", re.MULTILINE)
# C0 controls other than tab, newline, vertical tab, form feed, carriage return and escape.
_BINARY_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f]")


class FileRejected(Exception):
    """The upload cannot be used; `message` says why, in a sentence for a person."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class EmptyFile(FileRejected):
    def __init__(self) -> None:
        super().__init__("The file is empty.")


class UnsupportedFileType(FileRejected):
    """Not one of the accepted types; `found` names what it looks like, when recognisable."""

    def __init__(self, found: str | None = None):
        self.found = found
        lead = (
            f"This looks like {found}, which is not supported"
            if found
            else "This file type is not supported"
        )
        super().__init__(f"{lead}. Accepted file types: {ACCEPTED_DESCRIPTION}.")


def detect(fileobj: BinaryIO, *, name: str = "", max_zip_entries: int = ZIP_MAX_ENTRIES) -> str:
    """The MIME type of a seekable binary file, from its content.

    Works with Django's UploadedFile and ordinary open files; the position is set back
    to 0 afterwards. Raises EmptyFile or UnsupportedFileType.
    A ZIP is looked at first: a DOCX stays a DOCX even when "%PDF-" is in its first
    kilobyte (a stored member can hold anything); any other ZIP with that marker is a
    PDF polyglot, which PDF readers open.
    """
    try:
        fileobj.seek(0)
        head = fileobj.read(TEXT_SAMPLE_BYTES)
        if not head:
            raise EmptyFile()
        if head.startswith(b"PK\x03\x04"):
            kind = _zip_kind(fileobj, max_zip_entries)
            if kind == "docx":
                return DOCX
            if b"%PDF-" in head[:PDF_SEARCH_BYTES]:
                return PDF
            raise UnsupportedFileType(kind)
        if b"%PDF-" in head[:PDF_SEARCH_BYTES]:
            return PDF
        text = _decode_text_sample(head, truncated=len(head) == TEXT_SAMPLE_BYTES)
        if text is None:
            raise UnsupportedFileType(_describe_binary(head))
        if text.lstrip("\ufeff").startswith("{\\rtf"):
            raise UnsupportedFileType("an RTF document (save it as .docx or PDF)")
        if is_markdown(text, name=name):
            return MARKDOWN
        return TEXT
    finally:
        fileobj.seek(0)


def is_markdown(text: str, *, name: str = "") -> bool:
    """Markdown when the name says so or the text has ATX or setext headings, unless it
    underlines headings as plain text does (Info, reStructuredText: `_PLAIN_UNDERLINE`),
    which the plain-text reader turns into every level of headings."""
    if name.lower().endswith(MARKDOWN_SUFFIXES):
        return True
    if any(
        len(m.group(0).split("\n")[1].rstrip()) == len(m.group(1))
        for m in _PLAIN_UNDERLINE.finditer(text)
    ):
        return False
    return bool(_ATX_HEADING.search(text) or _SETEXT_HEADING.search(text))


def text_encoding(head: bytes) -> tuple[str, int]:
    """(Python codec, BOM length) for text that starts with `head`: UTF-16 with a BOM,
    else UTF-8 (with or without its BOM)."""
    for bom, codec in UTF16_BOMS.items():
        if head.startswith(bom):
            return codec, len(bom)
    if head.startswith(UTF8_BOM):
        return "utf-8", len(UTF8_BOM)
    return "utf-8", 0


def _decode_text_sample(sample: bytes, *, truncated: bool) -> str | None:
    """The sample as text, or None when it is not UTF-8 / UTF-16-with-BOM text.

    A multibyte sequence cut by the end of a truncated sample is tolerated.
    """
    codec, bom = text_encoding(sample)
    if codec == "utf-8" and b"\x00" in sample:
        return None
    decoder = codecs.getincrementaldecoder(codec)(errors="strict")
    try:
        text = decoder.decode(sample[bom:], final=not truncated)
    except UnicodeDecodeError:
        return None
    if "\x00" in text:  # UTF-16 BOM in front of something else, e.g. UTF-32
        return None
    if len(_BINARY_CONTROLS.findall(text)) > max(2, len(text) // 100):
        return None
    return text


def zip_directory(fileobj: BinaryIO) -> tuple[int, int] | None:
    """(entries, directory bytes) from a ZIP's end-of-central-directory record, read
    without parsing the directory; None when there is no such record. ZIP64 archives
    carry 0xFFFF / 0xFFFFFFFF there, which is more than any limit here."""
    end = fileobj.seek(0, os.SEEK_END)
    tail_size = min(end, 22 + 65535)  # the record, then a comment of at most 64 KB
    fileobj.seek(end - tail_size)
    tail = fileobj.read(tail_size)
    at = tail.rfind(b"PK\x05\x06", 0, len(tail) - 18)  # the last one that fits: zipfile's
    if at < 0:
        return None
    entries, directory_bytes = struct.unpack_from("<HI", tail, at + 10)
    return entries, directory_bytes


def zip_too_many_entries(fileobj: BinaryIO, max_entries: int) -> bool:
    directory = zip_directory(fileobj)
    if directory is None:
        return False  # zipfile will call it damaged
    entries, directory_bytes = directory
    return entries > max_entries or directory_bytes > max_entries * _ZIP_DIRECTORY_BYTES_PER_ENTRY


def _zip_kind(fileobj: BinaryIO, max_entries: int = ZIP_MAX_ENTRIES) -> str:
    """ "docx" for a Word document, else a description of the ZIP archive."""
    try:
        if zip_too_many_entries(fileobj, max_entries):
            return f"a ZIP archive with more than {max_entries:,} files"
        fileobj.seek(0)
        with zipfile.ZipFile(fileobj) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        return "a damaged ZIP archive"
    if "[Content_Types].xml" in names:
        if "word/document.xml" in names:
            return "docx"
        if "xl/workbook.xml" in names:
            return "an Excel workbook (.xlsx)"
        if "ppt/presentation.xml" in names:
            return "a PowerPoint presentation (.pptx)"
    if "mimetype" in names and "content.xml" in names:
        return "an OpenDocument file (.odt, .ods or .odp; save it as .docx or PDF)"
    if "META-INF/container.xml" in names:
        return "an EPUB e-book"
    return "a ZIP archive"


_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
        "a legacy Office 97-2003 file (.doc, .xls, .ppt) or a password-protected Office document",
    ),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"\x7fELF", "a program"),
    (b"MZ", "a Windows program"),
    (b"SQLite format 3\x00", "an SQLite database"),
)


_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# Office encrypts a .docx into an OLE compound file with these streams.
_ENCRYPTED_OFFICE_STREAM = "EncryptedPackage".encode("utf-16-le")


def _describe_binary(head: bytes) -> str:
    if head.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return "UTF-32 text (save it as UTF-8)"
    if head.startswith(_OLE) and _ENCRYPTED_OFFICE_STREAM in head:
        return "a password-protected Office document (remove the password and upload it again)"
    for magic, found in _MAGIC:
        if head.startswith(magic):
            return found
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WebP image"
    if head[4:8] == b"ftyp":
        return "a video or HEIC image"
    sample = head[:4096]
    if len(sample) >= 8:
        even, odd = sample[0::2], sample[1::2]
        for zeros, chars in ((even, odd), (odd, even)):
            if zeros.count(0) >= 0.9 * len(zeros) and chars.count(0) <= 0.1 * len(chars):
                return "UTF-16 text without a byte order mark (save it as UTF-8)"
    if b"\x00" not in sample:
        text = sample.decode("latin-1")
        if len(_BINARY_CONTROLS.findall(text)) <= len(text) // 100:
            return "text that is not UTF-8 (save it as UTF-8)"
    return "a binary file"
