"""Chunking follows the document's structure and pages and stays within the token target."""

from __future__ import annotations

import re
import time
from itertools import pairwise

import pytest

from documents.chunking import SECTION_SEPARATOR, chunk_extraction
from documents.embeddings import approximate_token_count
from documents.types import Block, ChunkDraft, Extraction, Page

_TOKEN = re.compile(r"\w+|[^\w\s]")


def count_words(text: str) -> int:
    """Words and punctuation marks: splits like a WordPiece pre-tokenizer, so sums add up."""
    return len(_TOKEN.findall(text))


def make_extraction(*pages: list[tuple[str, str]]) -> Extraction:
    """Pages of ("h1".."h3" | "p" | "list", text) items; page text is the items joined by
    line breaks, and each block's headings follow the heading levels."""
    stack: list[tuple[int, str]] = []
    out_pages: list[Page] = []
    blocks: list[Block] = []
    for number, items in enumerate(pages, start=1):
        text = ""
        for kind, body in items:
            if text:
                text += "\n"
            start = len(text)
            text += body
            if kind.startswith("h"):
                level = int(kind[1:])
                stack = [entry for entry in stack if entry[0] < level]
                blocks.append(
                    Block(
                        page=number,
                        kind="heading",
                        text=body,
                        start=start,
                        end=len(text),
                        headings=[title for _, title in stack],
                        level=level,
                    )
                )
                stack.append((level, body))
            else:
                blocks.append(
                    Block(
                        page=number,
                        kind="paragraph" if kind == "p" else kind,
                        text=body,
                        start=start,
                        end=len(text),
                        headings=[title for _, title in stack],
                    )
                )
        out_pages.append(Page(number=number, text=text))
    return Extraction(mime="text/markdown", pages=out_pages, blocks=blocks)


def sentences(count: int, *, topic: str = "rail", start: int = 0) -> list[str]:
    return [
        f"Step {n} checks the {topic} carriage number {n} and writes the measured value "
        f"{n}.{n % 10} mm into the service log."
        for n in range(start, start + count)
    ]


def chunk(extraction: Extraction, target: int = 60, overlap: int = 0) -> list[ChunkDraft]:
    return chunk_extraction(
        extraction, target_tokens=target, overlap_tokens=overlap, count_tokens=count_words
    )


def body(draft: ChunkDraft) -> str:
    return draft.content.split("\n", 1)[1] if draft.section else draft.content


def page_slice(extraction: Extraction, draft: ChunkDraft) -> str:
    texts = {page.number: page.text for page in extraction.pages}
    if draft.first_page == draft.last_page:
        return texts[draft.first_page][draft.start : draft.end]
    parts = [texts[draft.first_page][draft.start :]]
    parts += [texts[n] for n in range(draft.first_page + 1, draft.last_page)]
    parts.append(texts[draft.last_page][: draft.end])
    return "\n".join(parts)


def norm(text: str) -> str:
    return " ".join(text.split())


def assert_well_formed(extraction: Extraction, drafts: list[ChunkDraft], target: int) -> None:
    assert [d.index for d in drafts] == list(range(len(drafts)))
    for draft in drafts:
        assert body(draft).strip()
        assert draft.token_count == count_words(draft.content)
        assert draft.token_count <= target
        assert norm(page_slice(extraction, draft)) == norm(body(draft))


def test_it_makes_no_chunks_from_an_empty_extraction():
    assert chunk(Extraction(mime="text/plain", pages=[], blocks=[])) == []
    blank = make_extraction([("p", "   "), ("h1", "\n")])
    assert chunk(blank) == []


def test_it_starts_a_chunk_at_each_heading_and_names_the_section():
    extraction = make_extraction(
        [
            ("h1", "Safety"),
            ("p", "Wear gloves near the rail."),
            ("h1", "Calibration"),
            ("h2", "Chuck alignment"),
            ("p", "Align the chuck with the dial gauge."),
            ("h2", "Measurement"),
            ("p", "Measure the runout twice."),
        ]
    )
    drafts = chunk(extraction, target=500)

    assert [d.section for d in drafts] == [
        "Safety",
        f"Calibration{SECTION_SEPARATOR}Chuck alignment",
        f"Calibration{SECTION_SEPARATOR}Measurement",
    ]
    assert drafts[0].content == "Safety\nSafety\nWear gloves near the rail."
    # Consecutive headings travel together, with the text under them.
    assert drafts[1].content == (
        "Calibration › Chuck alignment\nCalibration\nChuck alignment\n"
        "Align the chuck with the dial gauge."
    )
    assert drafts[2].content.startswith("Calibration › Measurement\nMeasurement\n")
    assert_well_formed(extraction, drafts, 500)


def test_it_never_leaves_a_heading_alone_at_the_end_of_a_chunk():
    extraction = make_extraction(
        [("h1", "Setup"), *[("p", s) for s in sentences(3)]],
        [("h1", "Maintenance"), ("p", " ".join(sentences(2, topic="belt")))],
    )
    drafts = chunk(extraction, target=70)

    headings = {"Setup", "Maintenance"}
    for draft in drafts:
        lines = body(draft).split("\n")
        assert lines[-1] not in headings
        # A heading only ever opens a chunk.
        assert not any(line in headings for line in lines[1:])
    maintenance = [d for d in drafts if d.section == "Maintenance"]
    assert body(maintenance[0]).startswith("Maintenance\nStep 0 checks the belt")
    assert_well_formed(extraction, drafts, 70)


def test_it_keeps_a_trailing_heading_without_text():
    extraction = make_extraction([("p", "Intro text."), ("h1", "Appendix")])
    drafts = chunk(extraction)
    assert [d.content for d in drafts] == ["Intro text.", "Appendix\nAppendix"]


def test_it_records_page_spans_and_offsets():
    extraction = make_extraction(
        [("h1", "Rail"), *[("p", s) for s in sentences(3)]],
        [("p", s) for s in sentences(4, start=3)],
        [("p", " ".join(sentences(6, start=7))), ("h1", "Belt"), ("p", "Tension the belt.")],
    )
    drafts = chunk(extraction, target=80)

    assert any(d.first_page < d.last_page for d in drafts)
    assert_well_formed(extraction, drafts, 80)
    for draft in drafts:
        first = extraction.pages[draft.first_page - 1].text
        last = extraction.pages[draft.last_page - 1].text
        assert first[draft.start :].split()[0] == body(draft).split()[0]
        assert last[: draft.end].split()[-1] == body(draft).split()[-1]
    # A chunk that starts inside a split paragraph points at its first sentence.
    inside = [d for d in drafts if d.first_page == 3 and d.start > 0 and d.section == "Rail"]
    assert inside
    assert extraction.pages[2].text[inside[0].start :].startswith(body(inside[0]).split("\n")[0])
    belt = drafts[-1]
    assert (belt.section, belt.first_page, belt.last_page) == ("Belt", 3, 3)
    assert extraction.pages[2].text[belt.start : belt.end] == "Belt\nTension the belt."


def test_it_repeats_the_last_sentences_within_a_section_only():
    extraction = make_extraction(
        [("h1", "Rail"), *[("p", s) for s in sentences(12)]],
        [("h1", "Belt"), *[("p", s) for s in sentences(6, topic="belt")]],
    )
    drafts = chunk(extraction, target=80, overlap=25)

    rail = [d for d in drafts if d.section == "Rail"]
    assert len(rail) >= 3
    for before, after in pairwise(rail):
        last_sentence = body(before).split("\n")[-1]
        assert count_words(last_sentence) <= 25
        assert body(after).startswith(last_sentence)
    first_belt = next(d for d in drafts if d.section == "Belt")
    assert "rail" not in first_belt.content
    assert_well_formed(extraction, drafts, 80)


def test_it_repeats_no_more_than_the_overlap():
    extraction = make_extraction([("p", s) for s in sentences(20)])
    drafts = chunk(extraction, target=60, overlap=5)  # every sentence is longer than 5
    texts = [body(d) for d in drafts]
    assert sum(len(t.split("\n")) for t in texts) == 20  # nothing repeated
    assert_well_formed(extraction, drafts, 60)


def test_it_splits_a_huge_block_at_sentence_boundaries():
    paragraph = " ".join(sentences(30))
    extraction = make_extraction([("h1", "Log"), ("p", paragraph)])
    drafts = chunk(extraction, target=70)

    assert len(drafts) > 5
    for draft in drafts:
        assert body(draft).rstrip().endswith(".")
        assert body(draft).split("\n")[-1].split()[0] == "Step"  # whole sentences
    assert norm(" ".join(body(d).removeprefix("Log\n") for d in drafts)) == norm(paragraph)
    assert_well_formed(extraction, drafts, 70)


def test_it_splits_a_sentence_longer_than_the_target_at_whitespace():
    words = [f"w{n}" for n in range(500)]
    extraction = make_extraction([("h1", "Table"), ("p", " ".join(words))])
    drafts = chunk(extraction, target=64, overlap=10)

    assert len(drafts) >= 8  # 500 words, 63 per chunk after the section line
    assert body(drafts[0]).startswith("Table\nw0 w1")
    parts = [body(d).removeprefix("Table\n") for d in drafts]
    assert " ".join(parts).split() == words  # in order, nothing lost or repeated
    assert_well_formed(extraction, drafts, 64)


def test_it_stays_within_the_target_with_mixed_blocks():
    items: list[tuple[str, str]] = []
    for n in range(40):
        if n % 9 == 0:
            items.append(("h2", f"Part {n}"))
        length = 1 + (n * 7) % 13
        items.append(("list" if n % 4 == 0 else "p", " ".join(sentences(length, start=n))))
    extraction = make_extraction(items[:30], items[30:])
    longest_sentence = max(count_words(s) for s in sentences(60))
    for target in (40, 90, 200):
        drafts = chunk(extraction, target=target, overlap=target // 5)
        assert drafts
        assert max(d.token_count for d in drafts) <= target + longest_sentence
        assert_well_formed(extraction, drafts, target)


def _two_sentences(page_text: str, block_text: str) -> list:
    """The drafts of a page whose one block (from "Check" to "value.") the extractor
    wrote as block_text, in chunks of two sentences' size."""
    start = page_text.index("Check")
    end = page_text.index("value.") + len("value.")
    block = Block(page=1, kind="paragraph", text=block_text, start=start, end=end)
    extraction = Extraction(mime="application/pdf", pages=[Page(1, page_text)], blocks=[block])
    return chunk(extraction, target=8)


def test_it_maps_offsets_when_the_extractor_normalised_whitespace():
    page_text = "Intro\nCheck  the\nrail   carriage. Then   log\nthe value.\nEnd"
    drafts = _two_sentences(page_text, "Check the rail carriage. Then log the value.")

    assert [d.content for d in drafts] == ["Check the rail carriage.", "Then log the value."]
    assert page_text[drafts[0].start : drafts[0].end] == "Check  the\nrail   carriage."
    assert page_text[drafts[1].start : drafts[1].end] == "Then   log\nthe value."


def test_it_maps_offsets_past_the_marks_block_text_leaves_out():
    # pdfium's hyphenation mark (U+FFFE) and the joiner after a non-BMP character are in
    # the page text, not in the block's: a sentence after them keeps its exact offsets
    # instead of a proportional estimate.
    page_text = "Intro\nCheck the instal\ufffelation of disks\u2060. Then log the value.\nEnd"
    drafts = _two_sentences(page_text, "Check the installation of disks. Then log the value.")

    assert [d.content for d in drafts] == [
        "Check the installation of disks.",
        "Then log the value.",
    ]
    assert (
        page_text[drafts[0].start : drafts[0].end] == "Check the instal\ufffelation of disks\u2060."
    )
    assert page_text[drafts[1].start : drafts[1].end] == "Then log the value."


def test_it_counts_each_sentence_once_and_is_fast():
    calls = 0

    def counting(text: str) -> int:
        nonlocal calls
        calls += 1
        return count_words(text)

    pages = []
    for number in range(300):
        pages.append(
            [
                ("h2", f"Section {number}"),
                ("p", " ".join(sentences(6, start=number * 10))),
                ("p", " ".join(sentences(3, topic="belt", start=number * 10))),
            ]
        )
    extraction = make_extraction(*pages)
    started = time.perf_counter()
    drafts = chunk_extraction(
        extraction, target_tokens=120, overlap_tokens=20, count_tokens=counting
    )
    elapsed = time.perf_counter() - started

    sentence_count = 300 * 9
    # One count per sentence and heading (at most), per section line, and per chunk.
    assert calls <= sentence_count + 300 + 300 + len(drafts)
    assert elapsed < 2.0


@pytest.mark.parametrize("target", [128, 254])
def test_it_fits_the_local_model_with_its_own_tokenizer(target):
    extraction = make_extraction(
        [("h1", "Chuck alignment calibration"), ("p", " ".join(sentences(40)))],
        [("h2", "Result"), ("p", "Runout ≤ 0.02 mm — record it in the log (see Fig. 4).")],
    )
    drafts = chunk_extraction(
        extraction,
        target_tokens=target,
        overlap_tokens=20,
        count_tokens=approximate_token_count,
    )
    assert len(drafts) > 1
    assert all(d.token_count <= target for d in drafts)
    assert drafts[-1].section == "Chuck alignment calibration › Result"


def test_a_documents_title_is_its_file_name_and_what_its_metadata_adds():
    from documents.chunking import document_title, index_text

    assert document_title("FAQ_RoboRail_Calibration_v0.0_290324.pdf") == (
        "FAQ RoboRail Calibration v0.0 290324"
    )
    # A metadata title that only repeats the name's words adds nothing...
    assert document_title("Confirm the calibration.pdf", {"title": "Confirm the calibration"}) == (
        "Confirm the calibration"
    )
    # ...one that says more is added; a file name without extension stays whole.
    assert document_title("ch02.md", {"title": "Debian package management"}) == (
        "ch02 — Debian package management"
    )
    assert document_title("README") == "README"
    assert len(document_title("x" * 300 + ".pdf")) <= 121
    assert (
        index_text("Guide", "Setup › Wiring\nConnect X1.") == "Guide › Setup › Wiring\nConnect X1."
    )
    assert index_text("", "body") == "body"
    # A Markdown file's first heading is its metadata title and already every chunk's path.
    assert document_title("a.md", {"title": "Care guide"}, heading="Care guide") == "a"
