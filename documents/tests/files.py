"""Generators for test documents: every fixture is written into a directory at test time.

Nothing binary is committed. Each `make_*` function writes one file and returns its path,
so upload and API tests can reuse them with pytest's `tmp_path`:

    pdf = make_pdf(tmp_path / "manual.pdf", [["# Safety", "Wear gloves."]])

The hostile files (bombs, entity declarations, truncated or mislabelled files) are built
so that generating them stays fast and small in memory: the compressed payloads are made
by repeating one independently-deflated block instead of compressing gigabytes.
"""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

MB = 1024 * 1024

# --------------------------------------------------------------------------- PDF

HEADING_SIZES = {1: 20.0, 2: 16.0, 3: 13.0}
BODY_SIZE = 11.0

DEFAULT_PDF_PAGES: list[list[str]] = [
    [
        "# Maintenance manual",
        "This manual describes the maintenance of the RoboRail cutting machine.",
        "## Safety",
        "Wear personal protective equipment during all procedures. Keep a safe distance "
        "from moving parts of the machine at all times.",
    ],
    [
        "## Calibration",
        "Calibrate the machine after every repair of the chuck or the trolley.",
        "### Chuck rotation",
        "Put a spirit level on top of the front chuck and turn it until it is level.",
        "- Select Home chucks on the remote control.",
        "- Select Done when the chuck is level.",
    ],
    [
        "# Troubleshooting",
        "If the machine does not respond, check the emergency button first.",
    ],
]


def make_pdf(
    path: Path,
    pages: Sequence[Sequence[str]] = DEFAULT_PDF_PAGES,
    *,
    headings: dict[int, float] | None = None,
    header: str | None = None,
    footer: str | None = None,
    title: str | None = None,
    author: str | None = None,
    encrypt_password: str | None = None,
) -> Path:
    """Write a text PDF with fpdf2 (A4, Helvetica, points).

    `pages` is a list of pages, each a list of paragraphs. A paragraph that starts with
    "# ", "## " or "### " is a heading of that level, drawn bold in the larger font size
    `headings[level]` (default HEADING_SIZES); other paragraphs are body text of 11 pt,
    wrapped to the page width. Paragraphs are separated by extra vertical space, lines
    of one paragraph are not.

    `header`/`footer` are drawn on every page (repeated page furniture); "{page}" and
    "{pages}" in them are replaced by the page number and the page count, e.g.
    footer="Page {page}/{pages} version 0.0 | 29-3-2024". `title`/`author` go into the
    document information dictionary. With `encrypt_password` the file is RC4-encrypted
    and needs that password to open. Text must be Latin-1 (core fonts).
    """
    from fpdf import FPDF

    sizes = {**HEADING_SIZES, **(headings or {})}

    class _PDF(FPDF):
        def header(self):
            if header:
                self.set_font("helvetica", size=9)
                self.set_y(30)
                self.cell(0, 12, header.format(page=self.page_no(), pages=len(pages)))
                self.set_y(72)

        def footer(self):
            if footer:
                self.set_font("helvetica", size=9)
                self.set_y(-40)
                self.cell(0, 12, footer.format(page=self.page_no(), pages=len(pages)))

    pdf = _PDF(unit="pt", format="A4")
    pdf.set_auto_page_break(auto=True, margin=60)
    pdf.set_margins(56, 72, 56)
    if title:
        pdf.set_title(title)
    if author:
        pdf.set_author(author)
    for paragraphs in pages:
        pdf.add_page()
        for paragraph in paragraphs:
            level = len(paragraph) - len(paragraph.lstrip("#"))
            if 0 < level <= 6 and paragraph[level : level + 1] == " ":
                size = sizes.get(level, BODY_SIZE + 2)
                pdf.set_font("helvetica", style="B", size=size)
                pdf.multi_cell(0, size * 1.25, paragraph[level + 1 :])
                pdf.ln(size * 0.6)
            else:
                pdf.set_font("helvetica", size=BODY_SIZE)
                pdf.multi_cell(0, BODY_SIZE * 1.3, paragraph)
                pdf.ln(BODY_SIZE * 0.9)
    if encrypt_password is not None:
        pdf.set_encryption(
            owner_password=encrypt_password + "-owner", user_password=encrypt_password
        )
    path.write_bytes(bytes(pdf.output()))
    return path


def _pdf_from_objects(objects: Sequence[bytes], *, root: int = 1) -> bytes:
    """Assemble a PDF from numbered object bodies (object i+1 = objects[i]) with a valid xref."""
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root %d 0 R >>\n" % (len(objects) + 1, root))
    out.write(b"startxref\n%d\n%%%%EOF\n" % xref)
    return out.getvalue()


def make_empty_pdf(path: Path) -> Path:
    """A well-formed PDF whose page tree is empty (/Kids [] /Count 0): zero pages."""
    path.write_bytes(
        _pdf_from_objects(
            [
                b"<< /Type /Catalog /Pages 2 0 R >>",
                b"<< /Type /Pages /Kids [] /Count 0 >>",
            ]
        )
    )
    return path


def _adler32_after_repeat(adler: int, byte: int, count: int) -> int:
    """Adler-32 of (data with checksum `adler`) followed by `count` copies of `byte`."""
    mod = 65521
    a, b = adler & 0xFFFF, adler >> 16
    b = (b + count * a + byte * (count * (count + 1) // 2)) % mod
    a = (a + byte * count) % mod
    return (b << 16) | a


def deflate_repeated(
    prefix: bytes, byte: int, count: int, *, unit: int = 4 * MB, zlib_wrapper: bool = True
) -> bytes:
    """Deflate data `prefix + bytes([byte]) * count` without compressing `count` bytes.

    One unit of the filler is deflated once and closed with a full flush (byte aligned,
    no references to earlier data), so the compressed stream is that block repeated.
    With `zlib_wrapper` the result is a zlib stream (FlateDecode, correct Adler-32),
    otherwise raw deflate (ZIP).
    """

    def block(data: bytes) -> bytes:
        co = zlib.compressobj(9, zlib.DEFLATED, -15)
        return co.compress(data) + co.flush(zlib.Z_FULL_FLUSH)

    parts = [block(prefix)] if prefix else []
    if count >= unit:
        parts.append(block(bytes([byte]) * unit) * (count // unit))
    if count % unit:
        parts.append(block(bytes([byte]) * (count % unit)))
    parts.append(zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH))
    raw = b"".join(parts)
    if not zlib_wrapper:
        return raw
    adler = _adler32_after_repeat(zlib.adler32(prefix), byte, count)
    return b"\x78\xda" + raw + struct.pack(">I", adler)


def make_pdf_content_bomb(path: Path, *, inflated_mb: int = 4096) -> Path:
    """A one-page PDF whose content stream (FlateDecode) inflates to `inflated_mb` MB.

    The stream is a real text operator followed by gigabytes of spaces (valid PDF
    whitespace); the file itself is about inflated_mb / 1000 MB.
    """
    prefix = b"BT /F1 12 Tf 72 720 Td (Content bomb) Tj ET\n"
    stream = deflate_repeated(prefix, ord(" "), inflated_mb * MB)
    path.write_bytes(
        _pdf_from_objects(
            [
                b"<< /Type /Catalog /Pages 2 0 R >>",
                b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
                b"/Resources << /Font << /F1 5 0 R >> >> >>",
                b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream)
                + stream
                + b"\nendstream",
                b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
            ]
        )
    )
    return path


def make_unicode_pdf(path: Path, mapping: dict[str, str] | None = None) -> Path:
    """A one-page Helvetica PDF whose ToUnicode map turns "A" into U+1D465 (math italic x,
    outside the BMP) and "B" into "B": pdfium reports the first as two chars.

    Page text: "Solve A = 2" / "for B now" on two lines.
    """
    mapping = mapping or {"A": "\U0001d465", "B": "B"}
    entries = b" ".join(
        b"<%02X> <%s>" % (ord(code), target.encode("utf-16-be").hex().upper().encode())
        for code, target in mapping.items()
    )
    cmap = (
        b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap /CMapName /U def\n"
        b"1 begincodespacerange <00> <FF> endcodespacerange\n"
        b"%d beginbfchar %s endbfchar\n"
        % (len(mapping), entries)
        + b"endcmap CMapName currentdict /CMap defineresource pop end end"
    )
    content = b"BT /F1 12 Tf 72 720 Td (Solve A = 2) Tj 0 -16 Td (for B now) Tj ET"
    path.write_bytes(
        _pdf_from_objects(
            [
                b"<< /Type /Catalog /Pages 2 0 R >>",
                b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
                b"/Resources << /Font << /F1 5 0 R >> >> >>",
                b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
                b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /ToUnicode 6 0 R >>",
                b"<< /Length %d >>\nstream\n" % len(cmap) + cmap + b"\nendstream",
            ]
        )
    )
    return path


def make_truncated_pdf(path: Path, *, keep: float = 0.5) -> Path:
    """A valid multi-page PDF cut after `keep` of its bytes (no xref, no trailer)."""
    make_pdf(path, DEFAULT_PDF_PAGES * 2)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def make_image_pdf(path: Path) -> Path:
    """A one-page PDF that only draws a rectangle: no extractable text (like a scan)."""
    content = b"0.5 g 100 100 300 400 re f\n"
    path.write_bytes(
        _pdf_from_objects(
            [
                b"<< /Type /Catalog /Pages 2 0 R >>",
                b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R >>",
                b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
            ]
        )
    )
    return path


# -------------------------------------------------------------------------- images


def png_bytes(width: int = 2, height: int = 2) -> bytes:
    """A valid grey PNG image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def make_png(path: Path) -> Path:
    """A PNG image; give it a .pdf name to test that the extension is ignored."""
    path.write_bytes(png_bytes())
    return path


# -------------------------------------------------------------------------- DOCX

DocxItem = tuple
DEFAULT_DOCX_CONTENT: list[DocxItem] = [
    ("title", "Service manual"),
    ("p", "This manual is for service engineers."),
    ("heading", 1, "Installation"),
    ("p", "Unpack the machine and place it on a level floor."),
    ("heading", 2, "Electrical connection"),
    ("p", "Connect the machine to a 400 V supply."),
    ("bullet", "Check the fuses."),
    ("bullet", "Check the earth connection."),
    (
        "table",
        [["Part", "Voltage", "Fuse"], ["Robot", "400 V", "16 A"], ["Plasma", "400 V", "32 A"]],
    ),
    ("p", "Switch the machine on after the checks."),
    ("heading", 1, "Maintenance"),
    ("number", "Clean the rails."),
    ("number", "Grease the bearings."),
]


def docx_bytes(
    content: Iterable[DocxItem] = DEFAULT_DOCX_CONTENT,
    *,
    title: str | None = None,
    author: str | None = None,
) -> bytes:
    """A DOCX made with python-docx from `content` items, in order:

    ("title", text) Title style; ("heading", level, text) Heading <level>; ("p", text)
    a Normal paragraph; ("bullet", text) List Bullet; ("number", text) List Number;
    ("table", rows) a table, rows a list of lists of cell texts.
    `title`/`author` set the core properties.
    """
    import docx

    document = docx.Document()
    for item in content:
        kind = item[0]
        if kind == "title":
            document.add_heading(item[1], level=0)
        elif kind == "heading":
            document.add_heading(item[2], level=item[1])
        elif kind == "p":
            document.add_paragraph(item[1])
        elif kind == "bullet":
            document.add_paragraph(item[1], style="List Bullet")
        elif kind == "number":
            document.add_paragraph(item[1], style="List Number")
        elif kind == "table":
            rows = item[1]
            table = document.add_table(rows=len(rows), cols=len(rows[0]))
            for r, row in enumerate(rows):
                for c, text in enumerate(row):
                    table.cell(r, c).text = text
        else:
            raise ValueError(f"unknown DOCX item {kind!r}")
    if title is not None:
        document.core_properties.title = title
    if author is not None:
        document.core_properties.author = author
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def make_docx(
    path: Path,
    content: Iterable[DocxItem] = DEFAULT_DOCX_CONTENT,
    *,
    title: str | None = None,
    author: str | None = None,
) -> Path:
    """Write a DOCX (see docx_bytes for the content items)."""
    path.write_bytes(docx_bytes(content, title=title, author=author))
    return path


def _rewrite_zip(source: bytes, replace: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(source)) as zin,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout,
    ):
        for info in zin.infolist():
            zout.writestr(info.filename, replace.get(info.filename, zin.read(info.filename)))
    return out.getvalue()


def _with_doctype(document_xml: bytes, doctype: bytes, entity_ref: bytes) -> bytes:
    """Insert a DOCTYPE after the XML declaration and reference an entity in the first text."""
    declaration_end = document_xml.index(b"?>") + 2
    xml = document_xml[:declaration_end] + b"\n" + doctype + document_xml[declaration_end:]
    return xml.replace(b"<w:t>", b"<w:t>" + entity_ref, 1)


def make_docx_with_xml(path: Path, body_xml: str) -> Path:
    """A DOCX whose body is `body_xml` (WordprocessingML with the prefixes w, mc, wps, v
    and r declared), for constructs python-docx cannot write: tracked changes, text
    boxes, content controls."""
    source = docx_bytes([("p", "placeholder")])
    with zipfile.ZipFile(io.BytesIO(source)) as z:
        xml = z.read("word/document.xml").decode()
    start = xml.index("<w:body>") + len("<w:body>")
    end = xml.index("<w:sectPr")
    xml = xml[:start] + body_xml + xml[end:]
    declarations = (
        'xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" '
        'xmlns:wps="http://schemas.microsoft.com/office/word/2010/wordprocessingShape" '
        'xmlns:v="urn:schemas-microsoft-com:vml" '
    )
    for prefix in ("mc", "wps", "v"):
        if f"xmlns:{prefix}=" in xml:
            declarations = re.sub(rf'xmlns:{prefix}="[^"]*" ', "", declarations)
    xml = xml.replace("<w:document ", "<w:document " + declarations, 1)
    path.write_bytes(_rewrite_zip(source, {"word/document.xml": xml.encode()}))
    return path


BILLION_LAUGHS_DOCTYPE = (
    b'<!DOCTYPE w:document [\n <!ENTITY lol "lol">\n'
    + b"".join(
        b' <!ENTITY lol%d "%s">\n' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
        for i in range(1, 10)
    )
    + b"]>\n"
)


def make_billion_laughs_docx(path: Path) -> Path:
    """A python-docx DOCX whose word/document.xml declares nested entities (10^9 "lol")."""
    source = docx_bytes()
    with zipfile.ZipFile(io.BytesIO(source)) as z:
        xml = z.read("word/document.xml")
    xml = _with_doctype(xml, BILLION_LAUGHS_DOCTYPE, b"&lol9;")
    path.write_bytes(_rewrite_zip(source, {"word/document.xml": xml}))
    return path


def make_xxe_docx(path: Path, target: str = "file:///etc/passwd") -> Path:
    """A DOCX whose word/document.xml declares an external entity (XXE) and uses it."""
    source = docx_bytes()
    with zipfile.ZipFile(io.BytesIO(source)) as z:
        xml = z.read("word/document.xml")
    doctype = b'<!DOCTYPE w:document [<!ENTITY xxe SYSTEM "%s">]>\n' % target.encode()
    xml = _with_doctype(xml, doctype, b"&xxe;")
    path.write_bytes(_rewrite_zip(source, {"word/document.xml": xml}))
    return path


def _zip_member_bytes(name: str, raw_deflate: bytes, size: int, crc: int, offset: int) -> tuple:
    """Local header + data and the matching central directory entry (deflate, no zip64)."""
    encoded = name.encode()
    local = (
        struct.pack(
            "<IHHHHHIIIHH",
            0x04034B50,
            20,
            0,
            8,
            0,
            0x21,
            crc,
            len(raw_deflate),
            size,
            len(encoded),
            0,
        )
        + encoded
        + raw_deflate
    )
    central = (
        struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            20,
            20,
            0,
            8,
            0,
            0x21,
            crc,
            len(raw_deflate),
            size,
            len(encoded),
            0,
            0,
            0,
            0,
            0,
            offset,
        )
        + encoded
    )
    return local, central


def _gf2_times(matrix: list[int], vector: int) -> int:
    total, i = 0, 0
    while vector:
        if vector & 1:
            total ^= matrix[i]
        vector >>= 1
        i += 1
    return total


def _crc32_combine(crc1: int, crc2: int, length2: int) -> int:
    """CRC-32 of A+B from crc32(A), crc32(B) and len(B) (zlib's crc32_combine)."""
    odd = [0xEDB88320] + [1 << n for n in range(31)]  # one zero bit
    even = [_gf2_times(odd, odd[n]) for n in range(32)]  # two zero bits
    odd = [_gf2_times(even, even[n]) for n in range(32)]  # four zero bits
    while length2:
        even = [_gf2_times(odd, odd[n]) for n in range(32)]
        if length2 & 1:
            crc1 = _gf2_times(even, crc1)
        length2 >>= 1
        if not length2:
            break
        odd = [_gf2_times(even, even[n]) for n in range(32)]
        if length2 & 1:
            crc1 = _gf2_times(odd, crc1)
        length2 >>= 1
    return crc1 ^ crc2


def crc32_of_zeros(count: int) -> int:
    """zlib.crc32(bytes(count)) without allocating or hashing `count` bytes."""
    crc = zlib.crc32(bytes(count % MB))
    block, block_len = zlib.crc32(bytes(MB)), MB
    blocks = count // MB
    while blocks:
        if blocks & 1:
            crc = _crc32_combine(crc, block, block_len)
        block = _crc32_combine(block, block, block_len)
        block_len *= 2
        blocks >>= 1
    return crc


def make_zip_bomb_docx(
    path: Path, *, unpacked_mb: int = 1024, member: str = "word/media/zeros.bin"
) -> Path:
    """A valid DOCX plus one member of `unpacked_mb` MB of zeros (deflated ~1000:1).

    Written by hand (local headers, central directory) so the zeros are never
    compressed here; the file is about unpacked_mb KB. `unpacked_mb` must stay below
    4096 (no zip64).
    """
    if unpacked_mb >= 4096:
        raise ValueError("unpacked_mb must be below 4096")
    size = unpacked_mb * MB
    members: list[tuple[str, bytes, int, int]] = []
    with zipfile.ZipFile(io.BytesIO(docx_bytes())) as z:
        for info in z.infolist():
            data = z.read(info.filename)
            co = zlib.compressobj(6, zlib.DEFLATED, -15)
            members.append(
                (info.filename, co.compress(data) + co.flush(), len(data), zlib.crc32(data))
            )
    members.append(
        (member, deflate_repeated(b"", 0, size, zlib_wrapper=False), size, crc32_of_zeros(size))
    )
    out = io.BytesIO()
    centrals = []
    for name, raw, length, crc in members:
        local, central = _zip_member_bytes(name, raw, length, crc & 0xFFFFFFFF, out.tell())
        out.write(local)
        centrals.append(central)
    directory = out.tell()
    out.write(b"".join(centrals))
    out.write(
        struct.pack(
            "<IHHHHIIH",
            0x06054B50,
            0,
            0,
            len(centrals),
            len(centrals),
            out.tell() - directory,
            directory,
            0,
        )
    )
    path.write_bytes(out.getvalue())
    return path


def make_zip(path: Path, members: dict[str, bytes] | None = None) -> Path:
    """An ordinary ZIP archive (not a DOCX)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in (members or {"readme.txt": b"hello"}).items():
            z.writestr(name, data)
    return path


# ------------------------------------------------------------------ Markdown / text

DEFAULT_MARKDOWN = """\
# Operator manual

The RoboRail cuts metal profiles with a plasma torch.

## Start-up

1. Turn the main switch on.
2. Wait until the lamp is green.

Setext section
--------------

| Part | Voltage |
|------|---------|
| Robot | 400 V |

```
# not a heading
G01 X10 Y20
```

### Shut-down

Press stop and wait.
"""


def make_markdown(path: Path, text: str = DEFAULT_MARKDOWN, *, encoding: str = "utf-8") -> Path:
    """Write Markdown source (default: headings, a list, a setext heading, a table, code)."""
    path.write_bytes(text.encode(encoding))
    return path


def make_text(path: Path, text: str, *, encoding: str = "utf-8", bom: bool = False) -> Path:
    """Write text; encoding "utf-8" (optionally with BOM), "utf-16-le" or "utf-16-be"
    (a BOM is always written for UTF-16)."""
    data = text.encode(encoding)
    if encoding == "utf-8" and bom:
        data = b"\xef\xbb\xbf" + data
    elif encoding == "utf-16-le":
        data = b"\xff\xfe" + data
    elif encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    path.write_bytes(data)
    return path


INVALID_UTF8_PREFIX = b"Calibration of the chuck\n\nThe caf"
INVALID_UTF8 = INVALID_UTF8_PREFIX + b"\xe9 is closed.\n"  # Latin-1 e-acute at offset 35


def make_invalid_utf8(path: Path) -> Path:
    """Text with a Latin-1 byte; the first bad byte is at len(INVALID_UTF8_PREFIX)."""
    path.write_bytes(INVALID_UTF8)
    return path


def make_single_line_text(path: Path, *, size_mb: int = 50, word: bytes = b"rail ") -> Path:
    """A text file of `size_mb` MB that is one single line of words (written in chunks)."""
    chunk = word * (MB // len(word))
    chunk += b"x" * (MB - len(chunk))
    with path.open("wb") as f:
        for _ in range(size_mb):
            f.write(chunk)
    return path
