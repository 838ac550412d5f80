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
from collections.abc import Callable, Iterable, Sequence
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
    header: str | Callable[[int], str] | None = None,
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
    footer="Page {page}/{pages} version 0.0 | 29-3-2024"; a callable `header` gives each
    page's (a page number -> its text, e.g. a chapter's running header). `title`/`author` go into the
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
                page = self.page_no()
                text = header(page) if callable(header) else header
                self.cell(0, 12, text.format(page=page, pages=len(pages)))
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


def _one_page_pdf(
    content: bytes, *, font: bytes = b"", extra: Sequence[bytes] = (), deflate: bool = False
) -> bytes:
    """A one-page PDF drawing `content` (FlateDecode with `deflate`) with font /F1
    (object 5: Helvetica plus `font` entries); `extra` objects are numbered from 6."""
    stream = zlib.compress(content, 9) if deflate else content
    flate = b" /Filter /FlateDecode" if deflate else b""
    return _pdf_from_objects(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
            b"/Resources << /Font << /F1 5 0 R >> >> >>",
            b"<< /Length %d%s >>\nstream\n" % (len(stream), flate) + stream + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica" + font + b" >>",
            *extra,
        ]
    )


def _text_content(text: bytes) -> bytes:
    return b"BT /F1 12 Tf 72 720 Td (" + text + b") Tj ET"


def make_many_pages_pdf(path: Path, pages: int) -> Path:
    """A PDF of `pages` blank pages (each a small object of its own)."""
    kids = b" ".join(b"%d 0 R" % (n + 3) for n in range(pages))
    path.write_bytes(
        _pdf_from_objects(
            [
                b"<< /Type /Catalog /Pages 2 0 R >>",
                b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, pages),
                *[b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 10 10] >>"] * pages,
            ]
        )
    )
    return path


def make_repeated_page_pdf(path: Path, pages: int) -> Path:
    """A PDF whose page tree lists the same page object `pages` times."""
    data = _one_page_pdf(_text_content(b"The same page again"))
    path.write_bytes(
        data.replace(
            b"/Kids [3 0 R] /Count 1", b"/Kids [%s] /Count %d" % (b"3 0 R " * pages, pages)
        )
    )
    return path


def make_lying_page_count_pdf(path: Path, text: bytes, count: int = 10**9) -> Path:
    """One real page under a page tree that claims `count` pages."""
    data = _one_page_pdf(_text_content(text))
    path.write_bytes(data.replace(b"/Count 1 >>", b"/Count %d >>" % count))
    return path


def make_cyclic_page_tree_pdf(path: Path) -> Path:
    """A page tree whose only kid has the root as its kid: a loop, no page."""
    path.write_bytes(
        _pdf_from_objects(
            [
                b"<< /Type /Catalog /Pages 2 0 R >>",
                b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                b"<< /Type /Pages /Parent 2 0 R /Kids [2 0 R] /Count 1 >>",
            ]
        )
    )
    return path


def make_deep_page_tree_pdf(path: Path, depth: int = 5000) -> Path:
    """One page at the bottom of `depth` nested page-tree nodes."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    for level in range(depth):
        number = 2 + level
        parent = b" /Parent %d 0 R" % (number - 1) if level else b""
        objects.append(b"<< /Type /Pages%s /Kids [%d 0 R] /Count 1 >>" % (parent, number + 1))
    page = depth + 2
    content = _text_content(b"The deepest page")
    objects += [
        b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 595 842] /Contents %d 0 R "
        b"/Resources << /Font << /F1 %d 0 R >> >> >>" % (page - 1, page + 1, page + 2),
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    path.write_bytes(_pdf_from_objects(objects))
    return path


def make_deep_nesting_pdf(path: Path, text: bytes, depth: int = 200_000) -> Path:
    """A readable page with an array nested `depth` deep in its page dictionary and
    `depth` nested graphics states (q ... Q) around its text."""
    content = b"q " * depth + _text_content(text) + b" Q" * depth
    data = _one_page_pdf(content)
    junk = b" /Junk " + b"[" * depth + b"]" * depth
    path.write_bytes(data.replace(b"/Contents 4 0 R", b"/Contents 4 0 R" + junk, 1))
    return path


def make_pdf_font_bomb(path: Path, *, inflated_mb: int = 2048) -> Path:
    """A page whose embedded font program (FontFile2, FlateDecode) inflates to
    `inflated_mb` MB of zeros."""
    font = deflate_repeated(b"", 0, inflated_mb * MB)
    path.write_bytes(
        _one_page_pdf(
            _text_content(b"Font bomb"),
            font=b" /FontDescriptor 6 0 R",
            extra=[
                b"<< /Type /FontDescriptor /FontName /Evil /Flags 32 /FontBBox [0 0 1000 1000] "
                b"/ItalicAngle 0 /Ascent 800 /Descent -200 /CapHeight 700 /StemV 80 "
                b"/FontFile2 7 0 R >>",
                b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(font)
                + font
                + b"\nendstream",
            ],
        ).replace(b"/Subtype /Type1 /BaseFont /Helvetica", b"/Subtype /TrueType /BaseFont /Evil")
    )
    return path


def make_text_flood_pdf(path: Path, *, words: int = 1_000_000) -> Path:
    """One page showing `words` words (a 5 MB text layer) from a ~20 KB file."""
    content = b"BT /F1 12 Tf 72 720 Td " + b"(word ) Tj\n" * words + b"ET"
    path.write_bytes(_one_page_pdf(content, deflate=True))
    return path


def make_active_pdf(path: Path, text: bytes) -> Path:
    """A readable page in a PDF that runs JavaScript when opened and carries an
    embedded file (neither is ever run or unpacked by extraction)."""
    script = b"app.alert('opened'); this.exportDataObject({cName: 'payload.exe', nLaunch: 2});"
    payload = b"MZ not really a program"
    data = _one_page_pdf(
        _text_content(text),
        extra=[
            b"<< /S /JavaScript /JS (%s) >>" % script,
            b"<< /Type /EmbeddedFile /Length %d >>\nstream\n" % len(payload)
            + payload
            + b"\nendstream",
            b"<< /Type /Filespec /F (payload.exe) /EF << /F 7 0 R >> >>",
        ],
    )
    catalog = b"<< /Type /Catalog /Pages 2 0 R >>"
    active = (
        b"<< /Type /Catalog /Pages 2 0 R /OpenAction 6 0 R "
        b"/Names << /EmbeddedFiles << /Names [(payload.exe) 8 0 R] >> >> >>"
    )
    path.write_bytes(_pdf_from_objects(_pdf_objects(data, catalog, active)))
    return path


def _pdf_objects(data: bytes, old: bytes, new: bytes) -> list[bytes]:
    """The object bodies of a PDF made by _pdf_from_objects, with `old` replaced by `new`."""
    bodies = re.findall(rb"\d+ 0 obj\n(.*?)\nendobj\n", data, re.DOTALL)
    return [new if body == old else body for body in bodies]


def make_pdf_zip_polyglot(path: Path, pdf: Path) -> Path:
    """The PDF `pdf` followed by a ZIP archive: both readers accept the file."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("payload.txt", "hidden in a PDF")
    path.write_bytes(pdf.read_bytes() + archive.getvalue())
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


def _zip_member_bytes(
    name: str, raw_deflate: bytes, size: int, crc: int, offset: int, *, flags: int = 0
) -> tuple:
    """Local header + data and the matching central directory entry (deflate, no zip64)."""
    encoded = name.encode()
    local = (
        struct.pack(
            "<IHHHHHIIIHH",
            0x04034B50,
            20,
            flags,
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
            flags,
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


ZipMember = tuple  # (name, raw deflate data, uncompressed size, crc32[, flags])


def _deflated_members(source: bytes) -> list[ZipMember]:
    """The members of a ZIP as ZipMember tuples (each deflated again here)."""
    members = []
    with zipfile.ZipFile(io.BytesIO(source)) as z:
        for info in z.infolist():
            data = z.read(info.filename)
            co = zlib.compressobj(6, zlib.DEFLATED, -15)
            members.append(
                (info.filename, co.compress(data) + co.flush(), len(data), zlib.crc32(data))
            )
    return members


def _zip_bytes(members: Iterable[ZipMember]) -> bytes:
    """A ZIP written by hand from already-deflated members (no zip64)."""
    out = io.BytesIO()
    centrals = []
    for name, raw, length, crc, *flags in members:
        local, central = _zip_member_bytes(
            name, raw, length, crc & 0xFFFFFFFF, out.tell(), flags=flags[0] if flags else 0
        )
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
    return out.getvalue()


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
    return _crc32_combine(
        crc32_of_repeat(bytes(MB), count // MB), zlib.crc32(bytes(count % MB)), count % MB
    )


def crc32_of_repeat(unit: bytes, count: int) -> int:
    """zlib.crc32(unit * count) without building or hashing the repeated data."""
    crc, block, block_len = 0, zlib.crc32(unit), len(unit)
    while count:
        if count & 1:
            crc = _crc32_combine(crc, block, block_len)
        block = _crc32_combine(block, block, block_len)
        block_len *= 2
        count >>= 1
    return crc


def deflate_repeated_unit(prefix: bytes, unit: bytes, count: int, suffix: bytes) -> bytes:
    """Raw deflate of `prefix + unit * count + suffix`, compressing `unit` once: each
    piece ends with a full flush (no references across pieces), so pieces concatenate."""

    def piece(data: bytes) -> bytes:
        co = zlib.compressobj(9, zlib.DEFLATED, -15)
        return co.compress(data) + co.flush(zlib.Z_FULL_FLUSH)

    end = zlib.compressobj(9, zlib.DEFLATED, -15)
    return piece(prefix) + piece(unit) * count + end.compress(suffix) + end.flush(zlib.Z_FINISH)


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
    members = _deflated_members(docx_bytes())
    members.append(
        (member, deflate_repeated(b"", 0, size, zlib_wrapper=False), size, crc32_of_zeros(size))
    )
    path.write_bytes(_zip_bytes(members))
    return path


def make_many_zeros_docx(path: Path, *, members: int = 30, member_mb: int = 9) -> Path:
    """A valid DOCX plus `members` parts of `member_mb` MB of zeros each: every part is
    below the size where the compression ratio is checked, the total is not."""
    size = member_mb * MB
    raw, crc = deflate_repeated(b"", 0, size, zlib_wrapper=False), crc32_of_zeros(size)
    extra = [(f"word/media/zeros{n}.bin", raw, size, crc) for n in range(members)]
    path.write_bytes(_zip_bytes(_deflated_members(docx_bytes()) + extra))
    return path


def make_xml_bomb_docx(path: Path, *, paragraphs: int = 20_000_000) -> Path:
    """A DOCX whose word/document.xml is well-formed XML of `paragraphs` paragraphs
    (about 60 bytes each: 20 million is 1.2 GB) in a file of about a megabyte."""
    source = docx_bytes([("p", "placeholder")])
    with zipfile.ZipFile(io.BytesIO(source)) as z:
        xml = z.read("word/document.xml")
    start = xml.index(b"<w:body>") + len(b"<w:body>")
    end = xml.index(b"<w:sectPr")
    # Units of 10,000 paragraphs: deflate reaches ~1000:1 on them.
    unit = b"<w:p><w:r><w:t>Calibrate the chuck.</w:t></w:r></w:p>" * 10_000
    count = paragraphs // 10_000
    size = start + len(unit) * count + len(xml) - end
    crc = _crc32_combine(
        _crc32_combine(zlib.crc32(xml[:start]), crc32_of_repeat(unit, count), len(unit) * count),
        zlib.crc32(xml[end:]),
        len(xml) - end,
    )
    raw = deflate_repeated_unit(xml[:start], unit, count, xml[end:])
    members = [m for m in _deflated_members(source) if m[0] != "word/document.xml"]
    members.append(("word/document.xml", raw, size, crc))
    path.write_bytes(_zip_bytes(members))
    return path


def make_deep_xml_docx(path: Path, *, depth: int = 100_000) -> Path:
    """A DOCX whose body nests `depth` elements (lxml refuses more than 256 levels)."""
    body = "<w:sdt><w:sdtContent>" * depth + "<w:p/>" + "</w:sdtContent></w:sdt>" * depth
    return make_docx_with_xml(path, "<w:p><w:r><w:t>Deep.</w:t></w:r></w:p>" + body)


def make_many_files_docx(path: Path, *, count: int = 20_000) -> Path:
    """A valid DOCX plus `count` empty parts."""
    empty = zlib.compressobj(6, zlib.DEFLATED, -15).flush()
    extra = [(f"customXml/item{n}.xml", empty, 0, 0) for n in range(count)]
    path.write_bytes(_zip_bytes(_deflated_members(docx_bytes()) + extra))
    return path


def make_docx_with_part(
    path: Path, member: str, data: bytes = b"extra part", *, first: bool = False
) -> Path:
    """A valid DOCX with one more part `member` (last, or `first` in the archive): a
    name that climbs out of any folder ("../../x", zip slip), or one that puts
    "%PDF-" into the file's first kilobyte."""
    co = zlib.compressobj(6, zlib.DEFLATED, -15)
    extra = (member, co.compress(data) + co.flush(), len(data), zlib.crc32(data))
    members = _deflated_members(docx_bytes())
    path.write_bytes(_zip_bytes([extra, *members] if first else [*members, extra]))
    return path


def _zipcrypto(data: bytes, password: bytes, check: int) -> bytes:
    """Traditional PKWARE encryption (APPNOTE 6.1) of one member's data, with its
    12-byte header ending in `check` (the high byte of the CRC)."""

    def crc_step(crc: int, byte: int) -> int:
        return zlib.crc32(bytes([byte]), crc ^ 0xFFFFFFFF) ^ 0xFFFFFFFF

    keys = [0x12345678, 0x23456789, 0x34567890]

    def update(byte: int) -> None:
        keys[0] = crc_step(keys[0], byte)
        keys[1] = ((keys[1] + (keys[0] & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        keys[2] = crc_step(keys[2], keys[1] >> 24)

    for byte in password:
        update(byte)
    out = bytearray()
    for byte in bytes(range(11)) + bytes([check]) + data:
        temp = (keys[2] | 2) & 0xFFFF
        out.append(byte ^ (((temp * (temp ^ 1)) >> 8) & 0xFF))
        update(byte)
    return bytes(out)


def make_zip_encrypted_docx(path: Path, password: str) -> Path:
    """A DOCX whose parts are zip-encrypted (ZipCrypto) with `password`: the directory
    lists a Word document, no part can be read without the password."""
    members = [
        (name, _zipcrypto(raw, password.encode(), (crc >> 24) & 0xFF), size, crc, 0x1)
        for name, raw, size, crc in _deflated_members(docx_bytes())
    ]
    path.write_bytes(_zip_bytes(members))
    return path


def make_truncated_docx(path: Path, *, keep: float = 0.5) -> Path:
    """A DOCX cut after `keep` of its bytes (its ZIP directory is gone)."""
    data = docx_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def make_corrupt_docx(path: Path) -> Path:
    """A DOCX whose directory is intact but whose word/document.xml data is garbage."""
    members = []
    for name, raw, size, crc in _deflated_members(docx_bytes()):
        if name == "word/document.xml":
            raw = bytes(b ^ 0x5A for b in raw)
        members.append((name, raw, size, crc))
    path.write_bytes(_zip_bytes(members))
    return path


def make_encrypted_office_file(path: Path) -> Path:
    """What Word writes for a password-protected .docx: an OLE compound file whose
    directory holds the EncryptionInfo and EncryptedPackage streams (header and
    directory sector only; no cipher text)."""
    header = bytearray(512)
    header[:8] = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
    struct.pack_into("<HHHH", header, 24, 0x3E, 3, 0xFFFE, 9)  # version, byte order, 512 B
    struct.pack_into("<I", header, 48, 0)  # first directory sector

    def entry(name: str, kind: int) -> bytes:
        raw = bytearray(128)
        encoded = (name + "\0").encode("utf-16-le")
        raw[: len(encoded)] = encoded
        struct.pack_into("<HB", raw, 64, len(encoded), kind)
        return bytes(raw)

    directory = (
        entry("Root Entry", 5) + entry("EncryptionInfo", 2) + entry("EncryptedPackage", 2)
    ).ljust(512, b"\0")
    path.write_bytes(bytes(header) + directory)
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
