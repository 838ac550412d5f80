"""Markdown converted from PDFs: layout markup out of the text, real section titles, and
pages where the Markdown marks them."""

from __future__ import annotations

import pytest

from documents.chunking import chunk_extraction
from documents.extraction import extract_in_process
from documents.filetypes import MARKDOWN

# What a PDF-to-Markdown converter writes: position comments naming the (0-based) page,
# anchors, figure fences with "Summary :" / "Analysis :" labels, an HTML table, page
# breaks.
CONVERTED = """<a id='a1'></a>

# RoboRail calibration

<!-- text, from page 0 (l=0.083,t=0.063,r=0.917,b=0.139), with ID 5f1c -->
Put the calibration tool on the front chuck and tighten the two M6 screws.

<!-- marginalia, from page 0 (l=0.56,t=0.95,r=0.62,b=0.97), with ID 77aa -->
Page 1 of 3

<::figure: the calibration tool on the chuck
## Summary :
A tool clamped on a chuck.
## Analysis :
The tool is aligned with the rail.
::>

<!-- PAGE BREAK -->

## Laser <span class="x">settings</span>

<!-- text, from page 1 (l=0.1,t=0.1,r=0.9,b=0.2), with ID 9b2e -->
Set the laser power to 40 % before the first cut.

<table><tr><th>Axis</th><th>Offset</th></tr><tr><td>X</td><td>0.25 mm</td></tr></table>

<!-- text, from page 2 (l=0.1,t=0.1,r=0.9,b=0.2), with ID 0c3d -->
## Shut-down

Press the red button.
"""


def extract(tmp_path, text: str):
    path = tmp_path / "converted.md"
    path.write_text(text, encoding="utf-8")
    return extract_in_process(path, MARKDOWN)


def body(extraction) -> str:
    return "\n".join(b.text for b in extraction.blocks)


def test_it_leaves_comments_and_layout_markup_out_of_the_text(tmp_path):
    extraction = extract(tmp_path, CONVERTED)

    text = body(extraction)
    for markup in ("<!--", "-->", "marginalia", "l=0.083", "<a ", "<span", "<td>", "<::", "::>"):
        assert markup not in text, markup
    assert "Put the calibration tool on the front chuck" in text
    assert "Page 1 of 3" not in text  # marginalia: page furniture
    assert "Axis | Offset" in " ".join(text.split())
    assert all(markup not in p.text for p in extraction.pages for markup in ("<!--", "<td>"))


def test_a_here_document_in_an_example_is_text_not_a_tag(tmp_path):
    # "<<EOF" in a shell example once opened a "tag" that ran to the next ">", two
    # sections later, and blanked both headings out.
    extraction = extract(
        tmp_path,
        "# Launchers\n\n    # cat /usr/local/bin/kitty <<EOF\n    exec /usr/bin/kitty\n    EOF\n\n"
        "# Killing a process\n\nUse kill(1) to send a signal.\n\n"
        "# Scheduling tasks\n\nRun crontab -l > saved.txt first.\n",
    )

    text = body(extraction)
    assert "Use kill(1) to send a signal." in text
    assert "exec /usr/bin/kitty" in text
    headings = [b.text for b in extraction.blocks if b.kind == "heading"]
    assert headings == ["Launchers", "Killing a process", "Scheduling tasks"]


def test_scripts_and_styles_go_with_their_code(tmp_path):
    extraction = extract(
        tmp_path,
        "# Setup\n\n<style>p { color: red }</style>\n\n<SCRIPT type='x'>alert(1)</script> "
        "Press start.\n\n<script>never closed\n\nstill script\n",
    )

    text = body(extraction)
    assert "Press start." in text
    for code in ("color: red", "alert", "never closed", "still script"):
        assert code not in text, code


def test_labels_are_text_and_sections_are_the_real_headings(tmp_path):
    extraction = extract(tmp_path, CONVERTED)

    titles = [b.text for b in extraction.blocks if b.kind == "heading"]
    assert titles == ["RoboRail calibration", "Laser settings", "Shut-down"]
    analysis = next(b for b in extraction.blocks if "Analysis" in b.text)
    assert analysis.kind == "paragraph" and analysis.headings == ["RoboRail calibration"]


def test_a_heading_repeated_all_over_the_document_is_a_label(tmp_path):
    repeated = "# Manual\n\n" + "".join(
        f"## Procedure {n}\n\nStep {n} text.\n\n### Caution\n\nWear gloves {n}.\n\n"
        for n in range(6)
    )
    extraction = extract(tmp_path, repeated)

    assert "Caution" not in [b.text for b in extraction.blocks if b.kind == "heading"]
    gloves = next(b for b in extraction.blocks if "Wear gloves 3" in b.text)
    assert gloves.headings == ["Manual", "Procedure 3"]


def test_pages_follow_page_breaks_and_position_comments(tmp_path):
    extraction = extract(tmp_path, CONVERTED)

    assert extraction.page_count == 3
    page_of = {b.text.strip(): b.page for b in extraction.blocks}
    assert page_of["RoboRail calibration"] == 1
    assert page_of["Set the laser power to 40 % before the first cut."] == 2
    assert page_of["Press the red button."] == 3
    for block in extraction.blocks:  # offsets are into the block's page
        page = extraction.pages[block.page - 1]
        assert 0 <= block.start < block.end <= len(page.text)
        if block.kind == "paragraph":
            assert page.text[block.start : block.end] == block.text


@pytest.mark.parametrize(
    ("separator", "pages"),
    [
        ("\f", [1, 2, 3]),
        ("\n<!-- page {n} -->\n", [1, 2, 3]),
        ("\n{{{m}}}------------------------------------------------\n", [1, 2, 3]),
    ],
)
def test_it_reads_the_page_marks_of_common_converters(tmp_path, separator, pages):
    parts = ["Alpha text here.", "Bravo text here.", "Charlie text here."]
    text = parts[0]
    for n, part in enumerate(parts[1:], 2):
        text += separator.format(n=n, m=n - 1) + part
    extraction = extract(tmp_path, text)

    assert [b.page for b in extraction.blocks] == pages
    assert [b.text.strip() for b in extraction.blocks] == parts


def test_a_document_that_opens_with_a_page_mark_starts_on_that_page(tmp_path):
    extraction = extract(tmp_path, "<!-- page 1 -->\nFirst.\n<!-- page 2 -->\nSecond.\n")

    assert [(b.page, b.text.strip()) for b in extraction.blocks] == [(1, "First."), (2, "Second.")]
    assert extraction.page_count == 2


def test_chunks_of_converted_markdown_carry_pages_and_clean_sections(tmp_path):
    extraction = extract(tmp_path, CONVERTED)
    chunks = chunk_extraction(
        extraction, target_tokens=40, overlap_tokens=0, count_tokens=lambda t: len(t.split())
    )

    assert {c.first_page for c in chunks} == {1, 2, 3}
    assert all("<!--" not in c.content and "Analysis :" not in c.section for c in chunks)
    laser = next(c for c in chunks if "laser power" in c.content)
    assert laser.section.endswith("Laser settings") and laser.first_page == 2
