"""The Sources list after a reload shows each cited passage as text (issue 22, seen in
the 390 px screenshot): the saved quote is the chunk's content, which starts with the
section path and the headings, so it read "Maintenance manual Maintenance manual This
manual describes ..." and was cut in the middle of a word."""

from __future__ import annotations

import pytest

from chats.models import Chat, Message
from chats.templatetags.answers import passage_text
from chats.tests.test_browser_chat import sign_in
from chats.tests.test_browser_layout import SIZES, _cite, pdf_manual  # noqa: F401 - fixture
from rra.testing.browser import screenshot

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=list(SIZES), ids=list(SIZES))
def size(request, page) -> str:
    width, height = SIZES[request.param]
    page.set_viewport_size({"width": width, "height": height})
    return request.param


def test_a_saved_source_shows_the_passage_without_its_headings(
    live_server,
    context,
    page,
    page_errors,
    size,
    owner,
    pdf_manual,  # noqa: F811
):
    chat = Chat.objects.create(owner=owner, title="Manual")
    Message.objects.create(chat=chat, role="user", content="What is this manual about?")
    answer = Message.objects.create(chat=chat, role="assistant", content="Maintenance [1].")
    citation = _cite(answer, pdf_manual, 1, "describes the maintenance")
    citation.section = citation.chunk.section  # as answer_save() saves it
    citation.save(update_fields=["section"])
    assert citation.section == "Maintenance manual"
    assert citation.quote.startswith("Maintenance manual\nMaintenance manual\n")  # as saved
    sign_in(context, live_server, owner)
    page.goto(f"{live_server.url}/c/{chat.pk}/")
    sources = page.locator(".msg.assistant .sources")
    sources.locator("summary").click()
    quote = sources.locator(".src-quote").first.inner_text()
    assert quote == "This manual describes the maintenance of the RoboRail.", quote
    screenshot(page, f"chat-sources-saved-{size}")
    assert not page_errors


def test_passage_text_keeps_a_quote_that_is_only_headings_or_has_no_section():
    assert passage_text("A › B\nB\nPut it here.", "A › B") == "Put it here."
    assert passage_text("A › B\nA\nB\nPut it here.", "A › B") == "Put it here."
    assert passage_text("A › B\nContinued text.", "A › B") == "Continued text."
    assert passage_text("Just text.\nMore.", "") == "Just text.\nMore."
    assert passage_text("A\nA", "A") == "A\nA"  # nothing else left: as it was
