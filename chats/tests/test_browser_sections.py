"""A citation of a Markdown manual in a real browser, on a phone and on a desktop: the
sources list names the section, and the viewer shows that section rendered with the
passage highlighted and prev/next going through the sections."""

import pytest

from chats.tests.test_browser_chat import sign_in
from chats.tests.test_citation_sections import APT_MD
from documents.services import document_ingest
from documents.tests.conftest import make_document
from rra.testing.browser import screenshot, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def debian(owner, media):
    document = make_document(owner, name="debian-reference.md", content=APT_MD)
    assert document_ingest(document_id=document.pk) == "ready"
    return document


@pytest.mark.parametrize(("width", "height"), [(390, 844), (1280, 800)])
def test_a_markdown_citation_opens_its_section_highlighted(
    live_server, context, page, page_errors, owner, debian, width, height
):
    sign_in(context, live_server, owner)
    page.set_viewport_size({"width": width, "height": height})
    page.goto(live_server.url + "/")
    page.fill("#question", "How do I make apt use a proxy server?")
    page.keyboard.press("Enter")
    page.locator(".msg.assistant .answer:not(.streaming)").wait_for(timeout=60_000)

    source = page.locator(".sources li").first
    assert source.locator(".src-pages").text_content() == (
        "§ Package management › Proxy server for APT"
    )
    page.locator(".msg.assistant button.cite").first.click()
    popover = page.locator(".cite-popover")
    assert "§ Package management › Proxy server for APT" in popover.inner_text()
    assert "p. 1" not in popover.inner_text()
    popover.get_by_role("button", name="Open section").click()

    dialog = page.locator("dialog[open]")
    mark = dialog.locator(".viewer-doc mark").first
    mark.wait_for()
    assert "proxy" in " ".join(dialog.locator(".viewer-doc mark").all_inner_texts()).lower()
    # Rendered: a heading, bold text, no Markdown syntax, no links.
    doc = dialog.locator(".viewer-doc")
    assert doc.locator("h3").first.inner_text() == "Proxy server for APT"
    assert doc.locator("strong").first.inner_text() == "proxy"
    assert "**" not in doc.inner_text() and doc.locator("a").count() == 0
    assert dialog.locator(".viewer-pageno").inner_text() == "Section 2 of 3"
    # The highlight is in view and the text fits the width: no sideways scrolling.
    box, viewport = mark.bounding_box(), page.viewport_size
    assert box and 0 <= box["y"] < viewport["height"] and box["x"] + 1 >= 0
    assert box["x"] + box["width"] <= viewport["width"] + 1
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    # Prose reads left-aligned like the manual, not centred like a caption.
    assert dialog.locator(".viewer-doc p").first.evaluate("p => getComputedStyle(p).textAlign") in (
        "start",
        "left",
    )
    screenshot(page, f"viewer-section-{width}")

    next_button = dialog.get_by_role("button", name="Next section")
    next_button.click()
    wait_until(
        page,
        "() => document.querySelector('dialog[open] .viewer-pageno').textContent"
        " === 'Section 3 of 3' && !document.querySelector('dialog[open] .viewer-doc mark')",
    )
    assert "hostname" in doc.inner_text() and doc.locator("mark").count() == 0
    assert next_button.is_disabled()
    dialog.get_by_role("button", name="Previous section").click()
    dialog.locator(".viewer-doc mark").first.wait_for()
    assert dialog.locator(".viewer-pageno").inner_text() == "Section 2 of 3"
    page.keyboard.press("Escape")
    assert page.locator("dialog[open]").count() == 0
    assert not page_errors
