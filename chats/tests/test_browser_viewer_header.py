"""The page viewer's header stays on screen (issue 22 item 5), reproduced as a person
meets it: a chat with a long answer, scrolled, a citation's popover, "Open page" on an
18-page PDF whose cited passage lies low on its page, at 390x844 and 1280x800. The
viewer scrolled the highlight into view with scrollIntoView(), which scrolls every
scrollable ancestor: when the page inside could not scroll far enough to centre it,
the rest went to the dialog (overflow: hidden is still scrollable by script, and the
hidden "Highlighted passage" text, positioned against the dialog, gave it room), and
the title, "Page 6 of 18" and ‹ › ✕ went above the viewport."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from chats.models import Chat, Citation, Message
from chats.tests.test_browser_chat import sign_in
from chats.tests.test_browser_layout import SIZES
from documents.services import document_ingest
from documents.tests import files
from documents.tests.conftest import make_document
from rra.testing.browser import screenshot, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

FILLER = (
    "The service interval of the drive belt depends on the load of the machine and on "
    "the hours it runs each day; record every inspection in the maintenance log."
)
PHRASE = "Tighten the violet tensioner until the belt gives five millimetres"


def _pages(where: str) -> list[list[str]]:
    pages = [[f"# Chapter {n}", FILLER] for n in range(1, 19)]
    cited = [f"{PHRASE} under a firm press of the thumb, then lock the nut."]
    # Page 6: the cited passage at the bottom of a full page, or at its top.
    pages[5] = (
        ["# Belt tension", *cited, *[FILLER] * 12]
        if where == "top"
        else [
            "# Belt tension",
            *[FILLER] * 12,
            *cited,
        ]
    )
    return pages


@pytest.fixture(params=list(SIZES), ids=list(SIZES))
def size(request, page) -> str:
    width, height = SIZES[request.param]
    page.set_viewport_size({"width": width, "height": height})
    return request.param


@pytest.fixture(params=["bottom", "top"])
def long_chat(request, owner, media, tmp_path) -> Chat:
    path = files.make_pdf(tmp_path / "belt.pdf", _pages(request.param))
    document = make_document(
        owner, name="Belt drive manual.pdf", content=path.read_bytes(), mime_type="application/pdf"
    )
    assert document_ingest(document_id=document.pk) == "ready"
    document.refresh_from_db()
    assert document.content.page_count == 18
    chunk = document.chunks.get(content__contains=PHRASE)
    assert chunk.first_page == 6
    chat = Chat.objects.create(owner=owner, title="Belt tension")
    Message.objects.create(chat=chat, role="user", content="How tight should the belt be?")
    answer = Message.objects.create(
        chat=chat,
        role="assistant",
        content="\n\n".join(
            [f"Step {n}: check the belt and the pulleys for wear and dust." for n in range(1, 25)]
            + ["Finally, tighten the violet tensioner until the belt gives 5 mm [1]."]
        ),
    )
    Citation.objects.create(
        message=answer,
        chunk=chunk,
        document=document,
        document_name=document.name,
        first_page=6,
        last_page=6,
        quote=chunk.content,
        number=1,
        rank=1,
        score=0.9,
    )
    return chat


def _header_on_screen(page, dialog) -> None:
    height = page.viewport_size["height"]
    for part in (".viewer-bar", ".viewer-title", ".viewer-pageno", "[data-close]"):
        box = dialog.locator(part).evaluate("n => n.getBoundingClientRect().toJSON()")
        assert box["top"] >= 0 and box["bottom"] <= height, (part, box)
    assert dialog.evaluate("d => d.scrollTop") == 0  # only the page inside scrolls
    assert dialog.evaluate("d => d.getBoundingClientRect().top") >= 0


def test_the_viewers_header_stays_on_screen(
    live_server, context, page, page_errors, size, owner, long_chat
):
    sign_in(context, live_server, owner)
    page.goto(f"{live_server.url}/c/{long_chat.pk}/")
    cite = page.locator(".msg.assistant button.cite").first
    cite.scroll_into_view_if_needed()  # the chat scrolled down to the citation
    cite.click()
    open_page = page.locator(".cite-popover").get_by_role("button", name="Open page")
    expect(open_page).to_be_visible()  # with the popover open
    open_page.click()
    dialog = page.locator("dialog.viewer[open]")
    dialog.locator(".viewer-hl").first.wait_for()
    wait_until(page, "document.querySelector('.viewer-sheet img')?.naturalWidth > 0")
    expect(dialog.locator(".viewer-pageno")).to_have_text("Page 6 of 18")
    page.wait_for_timeout(600)  # the highlight is scrolled to (smoothly)
    _header_on_screen(page, dialog)
    highlight = dialog.locator(".viewer-hl").first.bounding_box()
    bottom = highlight["y"] + highlight["height"]
    assert highlight["y"] >= 0 and bottom <= page.viewport_size["height"], highlight  # in view
    screenshot(page, f"viewer-18-pages-{size}")

    # Through the pages and back: the header stays.
    dialog.get_by_role("button", name="Next page").click()
    expect(dialog.locator(".viewer-pageno")).to_have_text("Page 7 of 18")
    dialog.get_by_role("button", name="Previous page").click()
    expect(dialog.locator(".viewer-pageno")).to_have_text("Page 6 of 18")
    dialog.locator(".viewer-hl").first.wait_for()
    page.wait_for_timeout(600)
    _header_on_screen(page, dialog)
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_have_count(0)
    assert not page_errors
