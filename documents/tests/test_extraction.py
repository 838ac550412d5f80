"""documents.extraction: PDF, DOCX, Markdown and text, in a child process with limits."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import re
import signal

import pypdfium2 as pdfium
import pytest

from documents.chunking import chunk_extraction
from documents.extraction import (
    MAX_BLOCK_CHARS,
    ExtractionFailed,
    Limits,
    extract_file,
    extract_in_process,
)
from documents.filetypes import DOCX, MARKDOWN, PDF, TEXT
from documents.tests import files

SMALL = Limits(timeout_s=20, memory_mb=512)
BIG_TEXT = 60 * 1024 * 1024  # max_chars for the 50 MB text file
FURNITURE = {
    "header": "ACME RoboRail manual",
    "footer": "Page {page}/{pages} version 0.0 | 29-3-2024",
}


def failure(path, mime, limits=SMALL, **kwargs) -> str:
    with pytest.raises(ExtractionFailed) as info:
        extract_in_process(path, mime, limits=limits, **kwargs)
    return info.value.reason


def child_failure(path, mime, limits=SMALL) -> str:
    with pytest.raises(ExtractionFailed) as info:
        extract_file(path, mime, limits=limits)
    return info.value.reason


def outline(extraction) -> list[tuple]:
    return [(b.page, b.level, b.text, b.headings) for b in extraction.blocks if b.kind == "heading"]


def assert_offsets(extraction) -> None:
    """Every block lies on its page; non-PDF blocks are exact slices of the page text."""
    for block in extraction.blocks:
        page = extraction.pages[block.page - 1]
        assert 0 <= block.start < block.end <= len(page.text)
        assert len(block.text) <= MAX_BLOCK_CHARS
        if extraction.mime != PDF and block.kind not in ("heading", "table"):
            assert page.text[block.start : block.end] == block.text


@pytest.fixture
def closing_pdf():
    """Open PDFs with pypdfium2; all are closed after the test, also when it fails."""
    opened = []

    def open_pdf(path):
        opened.append(pdfium.PdfDocument(str(path)))
        return opened[-1]

    yield open_pdf
    for pdf in opened:
        pdf.close()


@pytest.fixture(scope="session")
def big_text(tmp_path_factory):
    return files.make_single_line_text(tmp_path_factory.mktemp("big") / "one-line.txt", size_mb=50)


@pytest.fixture
def manual_pdf(tmp_path):
    return files.make_pdf(tmp_path / "manual.pdf", **FURNITURE, title="Maintenance", author="HGG")


# ---------------------------------------------------------------------------------- PDF


def test_it_gives_pdf_pages_pdfiums_text_and_size(manual_pdf, closing_pdf):
    extraction = extract_in_process(manual_pdf, PDF)
    pdf = closing_pdf(manual_pdf)
    assert extraction.page_count == 3
    for page, pdf_page in zip(extraction.pages, pdf, strict=True):
        expected = pdf_page.get_textpage().get_text_range()
        assert page.text == expected.replace("\r", " ")
        assert len(page.text) == len(expected)
        assert (page.width, page.height) == pytest.approx(pdf_page.get_size())
    assert [p.number for p in extraction.pages] == [1, 2, 3]


def test_it_maps_pdf_block_offsets_back_to_pdfium_characters(manual_pdf, closing_pdf):
    extraction = extract_in_process(manual_pdf, PDF)
    pdf = closing_pdf(manual_pdf)
    checked = 0
    for block in extraction.blocks:
        textpage = pdf[block.page - 1].get_textpage()
        count = block.end - block.start
        # the same character range in pdfium's own indexing ...
        assert (
            textpage.get_text_range(block.start, count).replace("\r", " ")
            == (extraction.pages[block.page - 1].text[block.start : block.end])
        )
        # ... and the rectangles pdfium gives for it enclose exactly the block's words
        rects = [textpage.get_rect(i) for i in range(textpage.count_rects(block.start, count))]
        bounded = " ".join(textpage.get_text_bounded(*r) for r in rects)
        assert bounded.split() == block.text.split()
        checked += 1
    assert checked == len(extraction.blocks) >= 10


def test_it_keeps_pdfium_char_positions_for_characters_outside_the_bmp(tmp_path, closing_pdf):
    pdf_path = files.make_unicode_pdf(tmp_path / "math.pdf")
    extraction = extract_in_process(pdf_path, PDF)
    page = extraction.pages[0]
    textpage = closing_pdf(pdf_path)[0].get_textpage()
    assert textpage.get_text_range() == "Solve \U0001d465 = 2\r\nfor B now"  # 22 characters
    assert textpage.count_chars() == len(page.text) == 23  # pdfium counts the surrogates
    assert page.text == "Solve \U0001d465\u2060 = 2 \nfor B now"
    for word in ("= 2", "for"):  # after the surrogate pair: same positions in pdfium
        start = page.text.index(word)
        assert textpage.get_text_range(start, len(word)) == word
        assert textpage.count_rects(start, len(word)) == 1
        assert textpage.get_text_bounded(*textpage.get_rect(0)).strip() == word
    assert [b.text for b in extraction.blocks] == ["Solve \U0001d465 = 2 for B now"]


def test_it_detects_pdf_headings_by_font_size_with_levels_and_paths(manual_pdf):
    extraction = extract_in_process(manual_pdf, PDF)
    assert outline(extraction) == [
        (1, 1, "Maintenance manual", []),
        (1, 2, "Safety", ["Maintenance manual"]),
        (2, 2, "Calibration", ["Maintenance manual"]),
        (2, 3, "Chuck rotation", ["Maintenance manual", "Calibration"]),
        (3, 1, "Troubleshooting", []),
    ]


def test_it_carries_the_pdf_heading_path_across_pages(manual_pdf):
    blocks = extract_in_process(manual_pdf, PDF).blocks
    calibrate = next(b for b in blocks if b.text.startswith("Calibrate the machine"))
    assert calibrate.page == 2
    assert calibrate.headings == ["Maintenance manual", "Calibration"]
    spirit = next(b for b in blocks if b.text.startswith("Put a spirit level"))
    assert spirit.headings == ["Maintenance manual", "Calibration", "Chuck rotation"]
    first = next(b for b in blocks if b.text.startswith("If the machine does not respond"))
    assert first.headings == ["Troubleshooting"]


def test_it_joins_the_lines_of_a_pdf_paragraph(manual_pdf):
    extraction = extract_in_process(manual_pdf, PDF)
    wear = next(b for b in extraction.blocks if b.text.startswith("Wear personal"))
    assert wear.kind == "paragraph"
    assert wear.text == (
        "Wear personal protective equipment during all procedures. Keep a safe distance "
        "from moving parts of the machine at all times."
    )
    assert "\n" in extraction.pages[0].text[wear.start : wear.end]  # two lines in the PDF


def test_it_joins_a_word_hyphenated_at_a_line_end(tmp_path, closing_pdf):
    # pdfium drops the hyphen and the line break of "instal-|lation" and leaves U+FFFE
    # between the halves; half the pages of the R, Octave and gnuplot manuals have one.
    # Block text must hold the word whole (both search legs read it), and a passage's
    # offsets still land on pdfium's characters.
    pdf_path = files.make_pdf(
        tmp_path / "hyphen.pdf",
        [["Run the tests as after a Unix-like instal-\nlation of the system, then move on."]],
    )
    extraction = extract_in_process(pdf_path, PDF)
    page = extraction.pages[0]
    assert "instal\ufffelation" in page.text
    assert len(page.text) == closing_pdf(pdf_path)[0].get_textpage().count_chars()
    (block,) = extraction.blocks
    assert (
        block.text == "Run the tests as after a Unix-like installation of the system, then move on."
    )
    (draft,) = chunk_extraction(extraction, target_tokens=200, overlap_tokens=0, count_tokens=len)
    assert draft.content.endswith("Unix-like installation of the system, then move on.")
    assert page.text[draft.start : draft.end].startswith("Run the tests")
    assert page.text[draft.start : draft.end].endswith("then move on.")


def test_it_leaves_out_tables_of_contents_and_indexes(tmp_path):
    # A page of "title . . . . page" lines (a table of contents, an index) gives no
    # blocks: it named every topic and was found, and quoted, for many questions. A
    # content page keeps its own leader lines (a specification list).
    leader = " " + ". " * 30
    contents = ["## Table of contents"] + [
        f"{n}. {topic}{leader}{n + 1}"
        for n, topic in enumerate(
            ["Introduction", "Calibration", "Rails", "Belts", "Chuck", "Laser"], 1
        )
    ]
    index = [
        f"{word}{leader}{n}"
        for n, word in enumerate(["belt", "chuck", "laser", "rail", "torch", "zero"], 2)
    ]
    pdf = files.make_pdf(
        tmp_path / "manual.pdf",
        [
            contents,
            ["# 1. Introduction", "The machine cuts profiles.", f"Cutting speed{leader}35"],
            ["# Index", *index],
            # A LaTeX book's index (makeindex): entries and their pages, no leaders
            # (gnuplot.pdf: 17 passages). Prose that lists numbers keeps its lines.
            [
                "# Index",
                *[
                    f"{w}, {n}, {n + 40}-{n + 42}"
                    for n, w in enumerate(["errorbars", "fit", "FIT LOG", "fill", "fonts"], 3)
                ],
            ],
            ["# 2. Rails", "Set the three gauges to 1, 2", "and 3, then start.", "Use rails 4, 5"],
        ],
    )
    blocks = extract_in_process(pdf, PDF).blocks
    assert [b.page for b in blocks] == [2, 2, 2, 3, 4, 5, 5, 5, 5]
    assert blocks[0].text == "1. Introduction" and blocks[0].kind == "heading"
    assert any(b.text.startswith("Cutting speed") and b.text.endswith("35") for b in blocks)
    assert blocks[3].text == "Index" and blocks[4].text == "Index"  # their entries are gone
    rails = " ".join(b.text for b in blocks[5:])
    assert "Set the three gauges to 1, 2" in rails and "rails 4, 5" in rails


def test_it_marks_pdf_list_items(manual_pdf):
    blocks = extract_in_process(manual_pdf, PDF).blocks
    items = [b.text for b in blocks if b.kind == "list"]
    assert items == [
        "- Select Home chucks on the remote control.",
        "- Select Done when the chuck is level.",
    ]


def test_it_detects_numbered_headings_in_the_body_font(tmp_path):
    pdf = files.make_pdf(
        tmp_path / "numbered.pdf",
        [
            [
                "3 Calibration procedures",
                "Every procedure needs the remote control.",
                "3.5 Calibration of the chuck",
                "Turn the chuck until it is level.",
                "3.5.1 Checking the result",
                "Measure again.",
            ],
            ["4 Troubleshooting", "Check the fuses."],
        ],
    )
    extraction = extract_in_process(pdf, PDF)
    assert outline(extraction) == [
        (1, 2, "3.5 Calibration of the chuck", []),
        (1, 3, "3.5.1 Checking the result", ["3.5 Calibration of the chuck"]),
    ]
    measure = next(b for b in extraction.blocks if b.text == "Measure again.")
    assert measure.headings == ["3.5 Calibration of the chuck", "3.5.1 Checking the result"]


def test_it_takes_numbered_headings_in_a_larger_font_by_depth(tmp_path):
    pdf = files.make_pdf(
        tmp_path / "numbered.pdf",
        [["# 1. Introduction", "Read this first.", "## 1.1 Safety", "Wear gloves."]],
        headings={1: 14, 2: 12.7},
    )
    assert outline(extract_in_process(pdf, PDF)) == [
        (1, 1, "1. Introduction", []),
        (1, 2, "1.1 Safety", ["1. Introduction"]),
    ]


def test_it_ignores_table_of_contents_lines_as_headings(tmp_path):
    pdf = files.make_pdf(
        tmp_path / "toc.pdf",
        [
            [
                "# Contents",
                "1.1 Text indicators ........................ 2",
                "## 1.1 Text indicators",
            ]
        ],
    )
    assert [h[2] for h in outline(extract_in_process(pdf, PDF))] == [
        "Contents",
        "1.1 Text indicators",
    ]


def test_it_drops_repeated_page_furniture_from_blocks_but_not_from_page_text(manual_pdf):
    extraction = extract_in_process(manual_pdf, PDF)
    texts = " ".join(b.text for b in extraction.blocks)
    assert "ACME RoboRail manual" not in texts
    assert "Page " not in texts
    for page in extraction.pages:
        assert "ACME RoboRail manual" in page.text
        assert f"Page {page.number}/3 version 0.0 | 29-3-2024" in page.text


def test_it_drops_a_chapters_running_header_with_its_page_number(tmp_path):
    """Texinfo manuals (R's, Octave's) head odd pages with the chapter and the page
    number: each chapter's header is on its own pages only, far below half of the
    pages, and it stood in the middle of passages ("... run cd tests ## followed by one
    of / Chapter 2: Installing R under Unix-alikes 16 / ../bin/R CMD make check")."""
    chapters = ["Calibration", "Rails", "Belts", "Index"]

    def header(page: int) -> str:
        return f"Chapter {(page - 1) // 3 + 1}: {chapters[(page - 1) // 3]} {page + 10}"

    words = ["level", "chuck", "rail", "belt", "torch", "laser", "gauge", "clamp", "nozzle"]
    pages = [[f"Check the {word} before the next cut."] for word in words]
    pages[0].append("Safety 3")  # body text that ends with a number, once: kept
    pages.append(["Check the rails again."])  # a chapter of one page: its header stays
    pdf = files.make_pdf(tmp_path / "texinfo.pdf", pages, header=header)
    extraction = extract_in_process(pdf, PDF)
    texts = " ".join(b.text for b in extraction.blocks)
    assert "Chapter" not in texts.replace("Chapter 4: Index 20", ""), texts
    assert "Chapter 4: Index 20" in texts
    assert all(f"Check the {word} before" in texts for word in words)
    assert "Safety 3" in texts
    assert "Chapter 2: Rails 14" in extraction.pages[3].text  # the page text keeps it


def test_it_reads_pdf_metadata(manual_pdf):
    extraction = extract_in_process(manual_pdf, PDF)
    assert extraction.metadata == {"page_count": 3, "title": "Maintenance", "author": "HGG"}
    assert extraction.mime == PDF


def test_it_reports_pdf_progress_per_page(manual_pdf):
    calls = []
    extract_in_process(manual_pdf, PDF, on_progress=lambda done, total: calls.append((done, total)))
    assert calls == [(0, 3), (1, 3), (2, 3), (3, 3)]


def test_it_rejects_a_password_protected_pdf(tmp_path):
    pdf = files.make_pdf(tmp_path / "secret.pdf", encrypt_password="s3cret")
    assert failure(pdf, PDF) == "The PDF is password protected."


def test_it_rejects_a_pdf_without_pages(tmp_path):
    assert failure(files.make_empty_pdf(tmp_path / "empty.pdf"), PDF) == "The PDF has no pages."


def test_it_rejects_a_pdf_without_text(tmp_path):
    pdf = files.make_image_pdf(tmp_path / "scan.pdf")
    assert failure(pdf, PDF) == "No text found (scanned document?)."


def test_it_rejects_a_truncated_pdf(tmp_path):
    pdf = files.make_truncated_pdf(tmp_path / "half.pdf")
    assert failure(pdf, PDF) == "The PDF is damaged or incomplete."


def test_it_rejects_a_png_passed_as_pdf(tmp_path):
    png = files.make_png(tmp_path / "scan.pdf")
    assert failure(png, PDF) == "The PDF is damaged or incomplete."


def test_it_checks_the_page_limit_before_extracting(manual_pdf):
    calls = []
    reason = failure(
        manual_pdf, PDF, limits=Limits(max_pages=2), on_progress=lambda *a: calls.append(a)
    )
    assert reason == "The document has 3 pages; the limit is 2."
    assert calls == []


# --------------------------------------------------------------------------------- DOCX


def test_it_extracts_docx_blocks_in_body_order_with_the_table_in_place(tmp_path):
    extraction = extract_in_process(files.make_docx(tmp_path / "a.docx"), DOCX)
    assert [(b.kind, b.text) for b in extraction.blocks] == [
        ("heading", "Service manual"),
        ("paragraph", "This manual is for service engineers."),
        ("heading", "Installation"),
        ("paragraph", "Unpack the machine and place it on a level floor."),
        ("heading", "Electrical connection"),
        ("paragraph", "Connect the machine to a 400 V supply."),
        ("list", "Check the fuses."),
        ("list", "Check the earth connection."),
        ("table", "Part | Voltage | Fuse\nRobot | 400 V | 16 A\nPlasma | 400 V | 32 A"),
        ("paragraph", "Switch the machine on after the checks."),
        ("heading", "Maintenance"),
        ("list", "Clean the rails."),
        ("list", "Grease the bearings."),
    ]


def test_it_takes_docx_heading_levels_and_paths_from_styles(tmp_path):
    extraction = extract_in_process(files.make_docx(tmp_path / "a.docx"), DOCX)
    assert outline(extraction) == [
        (1, 1, "Service manual", []),
        (1, 1, "Installation", []),
        (1, 2, "Electrical connection", ["Installation"]),
        (1, 1, "Maintenance", []),
    ]
    table = next(b for b in extraction.blocks if b.kind == "table")
    assert table.headings == ["Installation", "Electrical connection"]


def test_it_follows_docx_styles_based_on_headings(tmp_path):
    import docx
    from docx.enum.style import WD_STYLE_TYPE

    document = docx.Document()
    custom = document.styles.add_style("Procedure Title", WD_STYLE_TYPE.PARAGRAPH)
    custom.base_style = document.styles["Heading 2"]
    document.add_heading("Calibration", level=1)
    document.add_paragraph("Chuck", style="Procedure Title")
    document.add_paragraph("Level the chuck.")
    path = tmp_path / "custom.docx"
    document.save(path)
    extraction = extract_in_process(path, DOCX)
    assert outline(extraction) == [(1, 1, "Calibration", []), (1, 2, "Chuck", ["Calibration"])]
    assert extraction.blocks[-1].headings == ["Calibration", "Chuck"]


DOCX_NESTED_BODY = """
<w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t>Wiring</w:t></w:r></w:p>
<w:p><w:r><w:t xml:space="preserve">Use </w:t></w:r>
  <w:ins w:id="1" w:author="a"><w:r><w:t xml:space="preserve">only </w:t></w:r></w:ins>
  <w:del w:id="2" w:author="a"><w:r><w:delText>never </w:delText></w:r></w:del>
  <w:hyperlink r:id="rId99"><w:r><w:t>shielded</w:t></w:r></w:hyperlink>
  <w:r><w:t xml:space="preserve"> cable.</w:t></w:r></w:p>
<w:sdt><w:sdtContent><w:p><w:r><w:t>Inside a content control.</w:t></w:r></w:p></w:sdtContent></w:sdt>
<w:p><w:r><w:t xml:space="preserve">See the box:</w:t></w:r><w:r><mc:AlternateContent>
  <mc:Choice Requires="wps"><w:drawing><wps:txbx><w:txbxContent>
    <w:p><w:r><w:t>Box text</w:t></w:r></w:p></w:txbxContent></wps:txbx></w:drawing></mc:Choice>
  <mc:Fallback><w:pict><v:textbox><w:txbxContent>
    <w:p><w:r><w:t>Box text</w:t></w:r></w:p></w:txbxContent></v:textbox></w:pict></mc:Fallback>
</mc:AlternateContent></w:r></w:p>
"""


def test_it_reads_docx_text_in_links_insertions_controls_and_text_boxes_once(tmp_path):
    path = files.make_docx_with_xml(tmp_path / "nested.docx", DOCX_NESTED_BODY)
    extraction = extract_in_process(path, DOCX)
    assert [(b.kind, b.text, b.headings) for b in extraction.blocks] == [
        ("heading", "Wiring", []),
        ("paragraph", "Use only shielded cable.", ["Wiring"]),
        ("paragraph", "Inside a content control.", ["Wiring"]),
        ("paragraph", "See the box:\nBox text", ["Wiring"]),
    ]


def test_it_puts_docx_text_on_one_page_with_block_offsets(tmp_path):
    extraction = extract_in_process(files.make_docx(tmp_path / "a.docx"), DOCX)
    assert extraction.page_count == 1
    page = extraction.pages[0]
    assert (page.number, page.width, page.height) == (1, 0.0, 0.0)
    assert page.text == "\n\n".join(b.text for b in extraction.blocks)
    for block in extraction.blocks:
        assert page.text[block.start : block.end] == block.text
    assert_offsets(extraction)


def test_it_reads_docx_metadata(tmp_path):
    path = files.make_docx(tmp_path / "a.docx", title="Service manual", author="Robin")
    assert extract_in_process(path, DOCX).metadata == {"title": "Service manual", "author": "Robin"}


def test_it_rejects_a_docx_that_expands_beyond_the_limit(tmp_path):
    bomb = files.make_zip_bomb_docx(tmp_path / "bomb.docx", unpacked_mb=1024)
    assert bomb.stat().st_size < 2 * 1024 * 1024
    assert failure(bomb, DOCX) == "The DOCX file expands to more than 200 MB (zip bomb?)."


def test_it_rejects_a_docx_part_with_a_suspicious_compression_ratio(tmp_path):
    bomb = files.make_zip_bomb_docx(tmp_path / "bomb.docx", unpacked_mb=50)
    assert failure(bomb, DOCX) == (
        "The DOCX file contains a part that is compressed suspiciously well (zip bomb?)."
    )


def test_it_rejects_a_docx_with_nested_entities(tmp_path):
    path = files.make_billion_laughs_docx(tmp_path / "laughs.docx")
    reason = child_failure(path, DOCX)
    assert reason == "The DOCX file contains XML entity declarations, which are not allowed."


def test_it_rejects_a_docx_with_an_external_entity(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    path = files.make_xxe_docx(tmp_path / "xxe.docx", target=secret.as_uri())
    reason = failure(path, DOCX)
    assert reason == "The DOCX file contains XML entity declarations, which are not allowed."
    assert "TOP-SECRET" not in reason


def test_it_does_not_resolve_entities_even_without_the_check(tmp_path):
    """Defence in depth: python-docx's own parser neither reads files nor expands entities."""
    import docx
    from lxml import etree

    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    document = docx.Document(str(files.make_xxe_docx(tmp_path / "xxe.docx", secret.as_uri())))
    assert "TOP-SECRET" not in "".join(p.text for p in document.paragraphs)
    with pytest.raises(etree.XMLSyntaxError, match="amplification"):
        docx.Document(str(files.make_billion_laughs_docx(tmp_path / "laughs.docx")))


def test_it_rejects_a_damaged_docx(tmp_path):
    not_docx = files.make_zip(tmp_path / "a.docx")
    assert failure(not_docx, DOCX) == "The DOCX file is damaged."
    garbage = tmp_path / "b.docx"
    garbage.write_bytes(b"PK\x03\x04 this is not a zip")
    assert failure(garbage, DOCX) == "The DOCX file is damaged."


def test_it_rejects_a_docx_without_text(tmp_path):
    path = files.make_docx(tmp_path / "blank.docx", [("p", "   ")])
    assert failure(path, DOCX) == "The document contains no text."


# ----------------------------------------------------------------------------- Markdown


def test_it_extracts_markdown_headings_but_not_from_fenced_code(tmp_path):
    extraction = extract_in_process(files.make_markdown(tmp_path / "a.md"), MARKDOWN)
    assert outline(extraction) == [
        (1, 1, "Operator manual", []),
        (1, 2, "Start-up", ["Operator manual"]),
        (1, 2, "Setext section", ["Operator manual"]),
        (1, 3, "Shut-down", ["Operator manual", "Setext section"]),
    ]
    assert extraction.metadata == {"title": "Operator manual"}


def test_it_reads_atx_closing_sequences_and_long_runs_of_spaces(tmp_path):
    text = (
        "# Title ##\n\n##   Spaced\t#  \n\n### C# is # not closed#\n\n# ###\n\n"
        + "## Wide"
        + " " * 50_000
        + "heading\n"
    )
    path = files.make_markdown(tmp_path / "a.md", text)
    extraction = extract_in_process(path, MARKDOWN)
    headings = [(b.level, b.text) for b in extraction.blocks if b.kind == "heading"]
    assert headings == [
        (1, "Title"),
        (2, "Spaced"),
        (3, "C# is # not closed#"),
        (2, "Wide heading"),
    ]
    wide = extraction.blocks[-1]
    assert text[wide.start : wide.end] == "Wide" + " " * 50_000 + "heading"


def test_it_extracts_markdown_lists_tables_and_code(tmp_path):
    extraction = extract_in_process(files.make_markdown(tmp_path / "a.md"), MARKDOWN)
    kinds = [(b.kind, b.text) for b in extraction.blocks if b.kind != "heading"]
    assert kinds == [
        ("paragraph", "The RoboRail cuts metal profiles with a plasma torch."),
        ("list", "1. Turn the main switch on."),
        ("list", "2. Wait until the lamp is green."),
        ("table", "Part | Voltage\nRobot | 400 V"),
        ("paragraph", "```\n# not a heading\nG01 X10 Y20\n```"),
        ("paragraph", "Press stop and wait."),
    ]


def test_it_offsets_markdown_blocks_into_the_source(tmp_path):
    extraction = extract_in_process(files.make_markdown(tmp_path / "a.md"), MARKDOWN)
    page = extraction.pages[0]
    assert page.text == files.DEFAULT_MARKDOWN
    headings = [b for b in extraction.blocks if b.kind == "heading"]
    assert [page.text[b.start : b.end] for b in headings] == [
        "Operator manual",
        "Start-up",
        "Setext section",
        "Shut-down",
    ]
    table = next(b for b in extraction.blocks if b.kind == "table")
    assert page.text[table.start : table.end] == (
        "| Part | Voltage |\n|------|---------|\n| Robot | 400 V |"
    )
    assert_offsets(extraction)


def test_it_keeps_list_continuation_lines_and_skips_front_matter(tmp_path):
    source = "---\ntitle: x\n---\n- first item\n  continues here\n- second\n\n***\n\nText\n"
    extraction = extract_in_process(files.make_markdown(tmp_path / "a.md", source), MARKDOWN)
    assert [(b.kind, b.text) for b in extraction.blocks] == [
        ("list", "- first item\n  continues here"),
        ("list", "- second"),
        ("paragraph", "Text"),
    ]


# --------------------------------------------------------------------------------- text


def test_it_splits_text_into_paragraphs_at_blank_lines(tmp_path):
    path = files.make_text(
        tmp_path / "a.txt", "First line\nsame paragraph\n \n\n\nSecond.\r\n\r\nThird."
    )
    extraction = extract_in_process(path, TEXT)
    assert [(b.kind, b.text) for b in extraction.blocks] == [
        ("paragraph", "First line\nsame paragraph"),
        ("paragraph", "Second."),
        ("paragraph", "Third."),
    ]
    assert extraction.pages[0].text == "First line\nsame paragraph\n \n\n\nSecond.\n\nThird."
    assert all(b.headings == [] for b in extraction.blocks)
    assert_offsets(extraction)


def test_underlined_lines_of_a_text_manual_are_headings_with_a_path(tmp_path):
    # An Info manual's shape: "*" over the title, "=" chapters, "-" sections, "." below.
    source = (
        "GNU Findutils\n*************\n\nIntro text.\n\n"
        "2 Finding Files\n===============\n\nChapter text.\n\n"
        "2.6 Size\n--------\n\n-size n[cwbkMG]\n     True if the file uses n units.\n\n"
        "2.6.1 Units\n...........\nk for kilobytes\n\n"
        "3 Actions\n=========\n\nA table:\n---------------- not a heading\n"
    )
    path = files.make_text(tmp_path / "find.txt", source)
    extraction = extract_in_process(path, TEXT)
    headings = [(b.text, b.level, b.headings) for b in extraction.blocks if b.kind == "heading"]
    assert headings == [
        ("GNU Findutils", 1, []),
        ("2 Finding Files", 2, ["GNU Findutils"]),
        ("2.6 Size", 3, ["GNU Findutils", "2 Finding Files"]),
        ("2.6.1 Units", 4, ["GNU Findutils", "2 Finding Files", "2.6 Size"]),
        ("3 Actions", 2, ["GNU Findutils"]),
    ]
    size = next(b for b in extraction.blocks if b.text.startswith("-size"))
    assert size.headings == ["GNU Findutils", "2 Finding Files", "2.6 Size"]
    units = next(b for b in extraction.blocks if b.text == "k for kilobytes")
    assert units.headings[-1] == "2.6.1 Units"
    # A row of dashes under a line of another length is text, not an underline.
    last = extraction.blocks[-1]
    assert last.kind == "paragraph" and "not a heading" in last.text
    assert last.headings == ["GNU Findutils", "3 Actions"]
    assert_offsets(extraction)


def test_it_strips_the_utf8_bom(tmp_path):
    path = files.make_text(tmp_path / "a.txt", "Café", bom=True)
    assert extract_in_process(path, TEXT).pages[0].text == "Café"


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_it_reads_utf16_with_bom(tmp_path, encoding):
    path = files.make_text(tmp_path / "a.txt", "Café ☕\n\nZweiter Absatz", encoding=encoding)
    extraction = extract_in_process(path, TEXT)
    assert [b.text for b in extraction.blocks] == ["Café ☕", "Zweiter Absatz"]


def test_it_reports_the_offset_of_the_first_invalid_utf8_byte(tmp_path):
    path = files.make_invalid_utf8(tmp_path / "a.txt")
    offset = len(files.INVALID_UTF8_PREFIX)
    assert failure(path, TEXT) == (
        f"The file is not valid UTF-8 text (first bad byte at offset {offset})."
    )
    with_bom = tmp_path / "bom.txt"
    with_bom.write_bytes(b"\xef\xbb\xbf" + files.INVALID_UTF8)
    assert failure(with_bom, MARKDOWN) == (
        f"The file is not valid UTF-8 text (first bad byte at offset {offset + 3})."
    )


def test_it_hard_splits_text_without_whitespace(tmp_path):
    path = files.make_text(tmp_path / "a.txt", "x" * 4500)
    blocks = extract_in_process(path, TEXT).blocks
    assert [(b.start, b.end) for b in blocks] == [(0, 2000), (2000, 4000), (4000, 4500)]


def test_it_rejects_text_without_content(tmp_path):
    path = files.make_text(tmp_path / "a.txt", " \n\n\t\n")
    assert failure(path, TEXT) == "The document contains no text."


def test_it_refuses_more_text_than_the_limit_in_every_format(tmp_path, big_text):
    limits = Limits(max_chars=100)
    too_much = "The document has more than 100 characters of text, the most that is processed."
    pdf = files.make_pdf(tmp_path / "a.pdf", [["Short first page."], ["word " * 30]])
    assert extract_in_process(pdf, PDF, limits=Limits(max_chars=1000)).page_count == 2
    assert failure(pdf, PDF, limits) == too_much
    docx = files.make_docx(tmp_path / "a.docx", [("p", "word " * 30)])
    assert extract_in_process(docx, DOCX, limits=Limits(max_chars=1000)).char_count == 149
    assert failure(docx, DOCX, limits) == too_much
    text = files.make_text(tmp_path / "a.txt", "é" * 101)  # 202 bytes, 101 characters
    assert extract_in_process(text, TEXT, limits=Limits(max_chars=101)).char_count == 101
    assert failure(text, MARKDOWN, limits) == too_much
    # Far more bytes than characters allowed: refused before the file is read.
    assert failure(big_text, TEXT, Limits(max_chars=1000)) == too_much.replace("100 ", "1,000 ")


def test_it_splits_a_50_mb_single_line_into_bounded_blocks(big_text):
    extraction = extract_file(
        big_text, TEXT, limits=Limits(timeout_s=20, memory_mb=512, max_chars=BIG_TEXT)
    )
    text = extraction.pages[0].text
    assert len(text) == 50 * 1024 * 1024
    blocks = extraction.blocks
    assert max(len(b.text) for b in blocks) <= MAX_BLOCK_CHARS
    assert min(len(b.text) for b in blocks[:-1]) >= MAX_BLOCK_CHARS // 2
    # cut at spaces: the blocks cover every word, in order
    assert blocks[0].start == 0 and blocks[-1].end == len(text.rstrip())
    for before, after in itertools.pairwise(blocks):
        assert text[before.end : after.start].isspace()
    assert blocks[1234].text == text[blocks[1234].start : blocks[1234].end]


# ------------------------------------------------------------------- the child process


def test_it_gives_the_same_result_in_the_child_process(manual_pdf, tmp_path):
    for path, mime in [
        (manual_pdf, PDF),
        (files.make_docx(tmp_path / "a.docx"), DOCX),
        (files.make_markdown(tmp_path / "a.md"), MARKDOWN),
    ]:
        assert extract_file(path, mime, limits=SMALL) == extract_in_process(path, mime)


def test_it_reports_progress_from_the_child_to_the_parent(tmp_path):
    pdf = files.make_pdf(tmp_path / "long.pdf", [["Page text."]] * 5)
    calls = []
    extraction = extract_file(pdf, PDF, limits=SMALL, on_progress=lambda *a: calls.append(a))
    assert extraction.page_count == 5
    assert calls[0] == (0, 5)
    assert calls[-1] == (5, 5)
    assert calls == sorted(calls)


def test_it_passes_failure_reasons_from_the_child(tmp_path):
    pdf = files.make_pdf(tmp_path / "secret.pdf", encrypt_password="pw")
    assert child_failure(pdf, PDF) == "The PDF is password protected."


def test_it_stops_a_pdf_content_bomb_at_the_memory_limit(tmp_path):
    bomb = files.make_pdf_content_bomb(tmp_path / "bomb.pdf", inflated_mb=4096)
    assert bomb.stat().st_size < 8 * 1024 * 1024
    reason = child_failure(bomb, PDF, Limits(timeout_s=20, memory_mb=512))
    assert reason == "Extraction needed more than 512 MB of memory and was stopped."
    assert multiprocessing.active_children() == []
    # the parent is fine and extracts the next file
    ok = files.make_pdf(tmp_path / "ok.pdf")
    assert extract_file(ok, PDF, limits=SMALL).page_count == 3


def test_it_turns_a_memory_error_in_the_child_into_the_memory_reason(big_text):
    reason = child_failure(big_text, TEXT, Limits(timeout_s=20, memory_mb=100, max_chars=BIG_TEXT))
    assert reason == "Extraction needed more than 100 MB of memory and was stopped."


def test_it_stops_extraction_at_the_time_limit(big_text):
    reason = child_failure(
        big_text, TEXT, Limits(timeout_s=0.05, memory_mb=512, max_chars=BIG_TEXT)
    )
    assert reason == "Extraction took longer than 0.05 s and was stopped."
    assert multiprocessing.active_children() == []


@pytest.mark.parametrize(
    ("sent", "reason"),
    [
        (
            signal.SIGSEGV,
            "The file crashed the extraction (signal SIGSEGV); it is probably damaged.",
        ),
        (signal.SIGKILL, "Extraction needed more than 512 MB of memory and was stopped."),
    ],
)
def test_it_names_the_signal_that_killed_the_child(big_text, sent, reason):
    """A crash is not reported as a memory problem; SIGKILL is (the kernel's OOM killer)."""

    def kill_child(done: int, total: int) -> None:
        for child in multiprocessing.active_children():
            if child.name == "rra-extraction":
                os.kill(child.pid, sent)

    limits = Limits(timeout_s=20, memory_mb=512, max_chars=BIG_TEXT)
    with pytest.raises(ExtractionFailed) as info:
        extract_file(big_text, TEXT, limits=limits, on_progress=kill_child)
    assert info.value.reason == reason
    assert multiprocessing.active_children() == []


def test_it_reports_a_crash_in_the_child_as_unexpected(tmp_path):
    reason = child_failure(tmp_path / "missing.pdf", TEXT)
    assert re.fullmatch(
        r"Extraction failed unexpectedly: FileNotFoundError: .*missing\.pdf'", reason
    )


def test_it_refuses_an_unknown_type():
    assert (
        failure("x.bin", "application/zip") == "Files of type application/zip cannot be extracted."
    )
