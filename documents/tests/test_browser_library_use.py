"""The library as a technician uses it, at 390x844 and 1280x800 (issue 22 item 9 and the
library page): open a document and read it, search the library and one document with the
matching passages shown, share a document or make it private, reprocess, delete, and the
empty states."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from chats.tests.test_browser_chat import sign_in
from chats.tests.test_browser_layout import SIZES, pdf_manual  # noqa: F401 - fixture
from documents.models import Document
from documents.services import document_ingest
from documents.tests.conftest import MANUAL_MD, make_document
from documents.tests.test_search import PRESS_MD
from rra.testing.browser import screenshot, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

NETWORK_MD = b"""# Network guide

## Switch

The managed switch in the control cabinet has eight ports. Port 8 is the uplink.

## Cables

Replace a yellow Ethernet cable whose clip is broken.
"""


@pytest.fixture(params=list(SIZES), ids=list(SIZES))
def size(request, page) -> str:
    width, height = SIZES[request.param]
    page.set_viewport_size({"width": width, "height": height})
    return request.param


@pytest.fixture
def library(owner, media, pdf_manual):  # noqa: F811 - the fixture above
    documents = {"pdf": pdf_manual}
    for key, name, content in (
        ("md", "maintenance.md", MANUAL_MD),
        ("net", "network.md", NETWORK_MD),
    ):
        document = make_document(owner, name=name, content=content)
        assert document_ingest(document_id=document.pk) == "ready"
        documents[key] = document
    return documents


def test_a_search_result_reads_whole_in_its_section(
    live_server, context, page, page_errors, size, owner, media, settings
):
    # A step cut across passages: the result shows its section's text around it, as text.
    settings.CHUNK_TARGET_TOKENS = 40
    document = make_document(owner, name="press.md", content=PRESS_MD)
    assert document_ingest(document_id=document.pk) == "ready"
    sign_in(context, live_server, owner)
    page.goto(live_server.url + "/documents/")
    page.get_by_label("Words to find in your manuals").fill("tachometer port catch tray")
    page.keyboard.press("Enter")
    hit = page.locator("#search-results li").first
    expect(hit.locator(".hit-snippet mark").first).to_be_visible()
    around = hit.locator("details.hit-context")
    expect(around.locator(".hit-around").first).to_be_hidden()  # closed until asked for
    around.get_by_text("Read it in its section").click()
    expect(around.locator(".hit-passage")).to_contain_text("tachometer port into the catch tray")
    texts = around.locator(".hit-around").all_inner_texts()
    assert len(texts) == 2
    assert "bleed screw on the cylinder head" in " ".join(texts[0].split())
    assert "twelve newton metres" in " ".join(texts[1].split())
    assert "grey drawer" not in around.inner_text()
    assert around.locator("mark, a, img").count() == 0
    screenshot(page, f"library-search-context-{size}")


def _row(page, name: str):
    return page.locator("#doc-list .doc-row", has=page.get_by_text(name, exact=True))


def test_open_search_share_reprocess_and_delete(
    live_server, context, page, page_errors, size, owner, library
):
    sign_in(context, live_server, owner)
    page.goto(live_server.url + "/documents/")
    expect(page.locator("#doc-list .doc-row")).to_have_count(3)

    # A row opens its document: a PDF at its first page, as an image.
    _row(page, "RoboRail manual.pdf").get_by_role(
        "button", name="RoboRail manual.pdf", exact=True
    ).click()
    viewer = page.locator("dialog.viewer[open]")
    expect(viewer.locator(".viewer-pageno")).to_have_text("Page 1 of 3")
    expect(viewer.locator(".viewer-sheet img")).to_be_visible()
    # The page's image itself, not the white sheet it is drawn on (the screenshot was
    # blank: taken before the image arrived).
    wait_until(page, "document.querySelector('.viewer-sheet img')?.naturalWidth > 0")
    screenshot(page, f"library-open-pdf-{size}")
    page.keyboard.press("Escape")
    # A Markdown manual is read rendered, a section at a time.
    _row(page, "network.md").get_by_role("button", name="network.md", exact=True).click()
    expect(viewer).to_contain_text("managed switch")
    assert "##" not in viewer.inner_text()
    screenshot(page, f"library-open-md-{size}")
    page.keyboard.press("Escape")
    expect(viewer).to_have_count(0)

    # Full-text search across the library shows the matching passages, words marked.
    page.get_by_label("Words to find in your manuals").fill("yellow Ethernet cable")
    page.get_by_role("button", name="Search", exact=True).click()
    results = page.locator("#search-results li")
    expect(results.first).to_be_visible()
    first = results.first
    expect(first.locator(".doc-open")).to_have_text("network.md")
    expect(first.locator("mark").first).to_be_visible()
    assert "yellow" in first.locator(".hit-snippet").inner_text().lower()
    expect(page.locator("#search-status")).to_contain_text("found")
    screenshot(page, f"library-search-{size}")
    # A result opens its passage.
    first.locator(".doc-open").click()
    expect(viewer.locator("mark", has_text="yellow").first).to_be_visible()
    page.keyboard.press("Escape")
    # Inside one document: only its passages.
    _row(page, "maintenance.md").get_by_role("button", name="Search in maintenance.md").click()
    expect(page.locator("#search-scope")).to_contain_text("maintenance.md")
    expect(page.get_by_label("Words to find in your manuals")).to_be_focused()
    page.get_by_label("Words to find in your manuals").fill("calibrate chuck dial gauge")
    page.keyboard.press("Enter")
    expect(page.locator("#search-status")).to_contain_text("in “maintenance.md”")
    names = set(page.locator("#search-results .doc-open").all_inner_texts())
    assert names == {"maintenance.md"}
    page.get_by_label("Words to find in your manuals").fill("quokka marsupial")
    page.keyboard.press("Enter")
    expect(page.locator("#search-status")).to_contain_text("Nothing found for “quokka marsupial”")
    expect(results).to_have_count(0)

    # Share a document with everyone, then make it private again.
    row = _row(page, "network.md")
    expect(row.locator(".doc-visibility")).to_have_text("Only me")
    row.get_by_role("button", name="Share network.md with everyone on this site").click()
    expect(_row(page, "network.md").locator(".doc-visibility")).to_have_text(
        "Everyone on this site"
    )
    assert Document.objects.get(pk=library["net"].pk).visibility == "shared"
    _row(page, "network.md").get_by_role("button", name="Make network.md private").click()
    expect(_row(page, "network.md").locator(".doc-visibility")).to_have_text("Only me")
    assert Document.objects.get(pk=library["net"].pk).visibility == "private"

    # Reprocess: back in the queue.
    _row(page, "maintenance.md").get_by_role("button", name="Process maintenance.md again").click()
    expect(_row(page, "maintenance.md").locator(".status")).not_to_have_text("Ready")
    assert Document.objects.get(pk=library["md"].pk).status == "queued"

    # Filters that match nothing say so, and offer the way back.
    page.fill("#filter-text", "no such manual")
    expect(page.locator("#library-empty")).to_contain_text("No documents match “no such manual”")
    screenshot(page, f"library-empty-filter-{size}")
    page.get_by_role("button", name="Show all documents").click()
    expect(page.locator("#doc-list .doc-row")).to_have_count(3)

    # Delete.
    page.on("dialog", lambda dialog: dialog.accept())
    _row(page, "network.md").get_by_role("button", name="Delete network.md").click()
    expect(page.locator("#doc-list .doc-row")).to_have_count(2)
    assert not Document.objects.filter(pk=library["net"].pk).exists()
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]
    screenshot(page, f"library-used-{size}")
    assert not page_errors


def test_an_empty_library_says_what_to_do(live_server, context, page, page_errors, size, owner):
    sign_in(context, live_server, owner)
    page.goto(live_server.url + "/documents/")
    expect(page.locator("#library-empty")).to_contain_text("No documents yet")
    expect(page.get_by_role("button", name="Show all documents")).to_be_hidden()
    # Who can read an upload is a visible choice.
    expect(page.get_by_label("Only me")).to_be_checked()
    expect(page.get_by_label("Everyone on this site")).to_be_visible()
    screenshot(page, f"library-empty-{size}")
    assert not page_errors
