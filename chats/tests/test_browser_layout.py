"""The chat pages as a person finds them, at a phone's 390x844 and a laptop's 1280x800
(issue 22): layout, stacking, state after a reload, the keyboard path. Each test runs at
both sizes and saves a screenshot of what it checked under var/screenshots/."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from chats.models import Chat, Citation, Message, Vote
from chats.tests.test_browser_chat import sign_in
from documents.services import document_ingest
from documents.tests import files
from documents.tests.conftest import make_document
from rra.testing.browser import screenshot, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

SIZES = {"phone": (390, 844), "laptop": (1280, 800)}

PDF_PAGES = [
    ["# Maintenance manual", "This manual describes the maintenance of the RoboRail."],
    [
        "## Calibration",
        "Put a spirit level on top of the front chuck and turn the violet handwheel "
        "clockwise until the bubble is centred.",
    ],
    ["# Troubleshooting", "If the machine does not respond, check the emergency button first."],
]


@pytest.fixture(params=list(SIZES), ids=list(SIZES))
def size(request, page) -> str:
    width, height = SIZES[request.param]
    page.set_viewport_size({"width": width, "height": height})
    return request.param


def _width(page) -> int:
    return page.viewport_size["width"]


@pytest.fixture
def pdf_manual(owner, media, tmp_path):
    path = files.make_pdf(tmp_path / "manual.pdf", PDF_PAGES)
    document = make_document(
        owner, name="RoboRail manual.pdf", content=path.read_bytes(), mime_type="application/pdf"
    )
    assert document_ingest(document_id=document.pk) == "ready"
    return document


def _cite(message: Message, document, number: int, phrase: str) -> Citation:
    chunk = document.chunks.get(content__contains=phrase)
    return Citation.objects.create(
        message=message,
        chunk=chunk,
        document=document,
        document_name=document.name,
        first_page=chunk.first_page,
        last_page=chunk.last_page,
        quote=chunk.content,
        number=number,
        rank=number,
        score=0.9,
    )


@pytest.fixture
def two_exchanges(owner, pdf_manual) -> Chat:
    """A chat with two questions; the first answer cites [1] and [4] (the numbers of the
    passages it was given), the second [1]."""
    chat = Chat.objects.create(owner=owner, title="Chuck calibration")
    Message.objects.create(chat=chat, role="user", content="How do I level the chuck?")
    first = Message.objects.create(
        chat=chat,
        role="assistant",
        content="Put a spirit level on the chuck [1]. Check the emergency button [4].",
    )
    _cite(first, pdf_manual, 1, "spirit level")
    _cite(first, pdf_manual, 4, "emergency button")
    Message.objects.create(chat=chat, role="user", content="And then?")
    second = Message.objects.create(chat=chat, role="assistant", content="Turn the handwheel [1].")
    _cite(second, pdf_manual, 1, "spirit level")
    return chat


def test_a_shared_chat_signed_out_uses_the_whole_width(
    live_server, page, page_errors, size, two_exchanges
):
    """Item 1: no sidebar, so no sidebar column."""
    Chat.objects.filter(pk=two_exchanges.pk).update(visibility=Chat.Visibility.PUBLIC)
    page.goto(f"{live_server.url}/c/{two_exchanges.pk}/")
    assert page.locator(".chat-sidebar").count() == 0
    main = page.locator(".chat-main").bounding_box()
    # The column is the reading width (52rem = 832 px) or the whole screen, centred.
    assert main["width"] >= min(832, _width(page)) - 1, main
    assert abs(main["x"] - (_width(page) - main["width"]) / 2) <= 1, main
    assert page.evaluate("document.documentElement.scrollWidth") <= _width(page)
    screenshot(page, f"shared-chat-{size}")
    assert not page_errors


def test_the_citation_popover_lies_above_the_next_message_and_opens_a_readable_page(
    live_server, context, page, page_errors, size, owner, two_exchanges
):
    """Items 2, 4 (the cited PDF page) and 5 (the viewer's header)."""
    sign_in(context, live_server, owner)
    page.goto(f"{live_server.url}/c/{two_exchanges.pk}/")
    first_answer = page.locator(".msg.assistant").first
    first_answer.locator("button.cite").first.click()
    open_page = page.locator(".cite-popover").get_by_role("button", name="Open page")
    expect(open_page).to_be_visible()
    # What a mouse would hit at the button's centre is the button, not the next message.
    box = open_page.bounding_box()
    hit = page.evaluate(
        "([x, y]) => document.elementFromPoint(x, y)?.textContent",
        [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2],
    )
    assert hit == "Open page"
    assert box["y"] + box["height"] <= page.viewport_size["height"]
    screenshot(page, f"chat-popover-{size}")
    open_page.click()  # a real mouse click at that point
    dialog = page.locator("dialog.viewer[open]")
    dialog.locator(".viewer-hl").first.wait_for()
    image = dialog.locator(".viewer-sheet img")
    expect(image).to_have_js_property("complete", True)
    wait_until(page, "document.querySelector('.viewer-sheet img').naturalWidth > 0")
    page.wait_for_timeout(400)  # the highlight is scrolled to (smoothly)
    # The header (title, page number, ‹ › ✕) is inside the viewport.
    for part in (".viewer-title", ".viewer-pageno", "[data-close]"):
        part_box = dialog.locator(part).bounding_box()
        assert part_box["y"] >= 0, (part, part_box)
        assert part_box["y"] + part_box["height"] <= page.viewport_size["height"], part
    assert dialog.evaluate("d => d.scrollTop") == 0  # only the page scrolls, not the dialog
    assert dialog.locator(".viewer-pageno").inner_text() == "Page 2 of 3"
    # The page is shown at a readable size: an A4 page at least 700 CSS px wide (body
    # text of 11 pt at about 1.2x), the phone scrolling sideways inside the viewer, and
    # the highlighted passage in view.
    assert image.bounding_box()["width"] >= min(700, _width(page) - 32)
    if size == "phone":
        assert image.bounding_box()["width"] >= 700
    highlight = dialog.locator(".viewer-hl").first.bounding_box()
    assert highlight["x"] >= 0 and highlight["x"] + min(highlight["width"], 300) <= _width(page)
    assert 0 <= highlight["y"] <= page.viewport_size["height"]
    assert page.evaluate("document.documentElement.scrollWidth") <= _width(page)
    screenshot(page, f"viewer-pdf-{size}")
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    assert not page_errors


def test_a_vote_is_shown_pressed_after_a_reload(
    live_server, context, page, page_errors, size, owner, two_exchanges
):
    """Item 3."""
    sign_in(context, live_server, owner)
    page.goto(f"{live_server.url}/c/{two_exchanges.pk}/")
    answer = page.locator(".msg.assistant").first
    helpful = answer.get_by_role("button", name="Helpful", exact=True)
    not_helpful = answer.get_by_role("button", name="Not helpful")
    helpful.click()
    expect(helpful).to_have_attribute("aria-pressed", "true")
    wait_until(page, "true")
    assert Vote.objects.get(user=owner).value == Vote.Value.UP
    page.reload()
    answer = page.locator(".msg.assistant").first
    helpful = answer.get_by_role("button", name="Helpful", exact=True)
    not_helpful = answer.get_by_role("button", name="Not helpful")
    expect(helpful).to_have_attribute("aria-pressed", "true")
    expect(not_helpful).to_have_attribute("aria-pressed", "false")
    # Pressed is plain to see: filled with the accent colour, ticked.
    style = "el => [getComputedStyle(el).backgroundColor, getComputedStyle(el, '::before').content]"
    pressed, plain = helpful.evaluate(style), not_helpful.evaluate(style)
    assert pressed[0] != plain[0] and "✓" in pressed[1] and "✓" not in plain[1]
    accent = page.evaluate(
        "getComputedStyle(document.querySelector('.button.primary, button.primary')).backgroundColor"
    )
    assert pressed[0] == accent
    screenshot(page, f"chat-voted-{size}")
    # Taking the vote back shows it taken back after a reload too.
    helpful.click()
    expect(helpful).to_have_attribute("aria-pressed", "false")
    page.reload()
    expect(
        page.locator(".msg.assistant").first.get_by_role("button", name="Helpful", exact=True)
    ).to_have_attribute("aria-pressed", "false")
    assert not Vote.objects.exists()
    assert not page_errors


def test_sources_are_the_cited_passages_numbered_as_cited_live_and_after_a_reload(
    live_server, context, page, page_errors, size, owner, pdf_manual, monkeypatch
):
    """Item 6: the model is given four passages and cites [1] and [3]."""
    from chats.answering import extractive
    from chats.answering.types import Passage, Token, Usage

    chunks = list(pdf_manual.chunks.order_by("index")) * 2

    class Hit:
        def __init__(self, chunk):
            self.document_id, self.chunk_id = pdf_manual.pk, chunk.pk
            self.first_page, self.last_page = chunk.first_page, chunk.last_page
            self.content, self.snippet, self.score = chunk.content, chunk.content[:80], 0.9
            self.paged, self.location = True, f"p. {chunk.first_page}"

    hits = [Hit(c) for c in chunks[:4]]
    passages = [
        Passage(n, h.content, pdf_manual.name, f"p. {h.first_page}") for n, h in enumerate(hits, 1)
    ]
    monkeypatch.setattr("chats.answering.generation.retrieve", lambda **kw: (passages, hits))

    def stream(self, *, question, passages, history):
        yield Token("Level the chuck [1]. ")
        yield Token("Then check the button [3].")
        yield Usage(1, 2, "fake")

    monkeypatch.setattr(extractive.ExtractiveLLM, "stream", stream)
    sign_in(context, live_server, owner)
    page.goto(live_server.url + "/")
    page.fill("#question", "How do I level the chuck?")
    page.keyboard.press("Enter")
    page.locator(".msg.assistant .answer:not(.streaming)").wait_for(timeout=30_000)

    def check() -> None:
        sources = page.locator(".msg.assistant .sources")
        assert sources.locator("summary").inner_text() == "Sources (2)"
        sources.locator("summary").click()
        numbers = sources.locator("li").evaluate_all("items => items.map((li) => li.value)")
        assert numbers == [1, 3]
        chips = page.locator(".msg.assistant .cite").all_inner_texts()
        assert chips == ["1", "3"]

    check()
    screenshot(page, f"chat-sources-{size}")
    page.reload()
    check()
    assert not page_errors


def test_on_a_phone_the_chat_list_folds_away_and_the_message_box_is_on_screen(
    live_server, context, page, page_errors, size, owner, two_exchanges
):
    """Item 4: the chat list and the message box."""
    Chat.objects.bulk_create([Chat(owner=owner, title=f"Old chat {n}") for n in range(30)])
    sign_in(context, live_server, owner)
    for url in ("/", f"/c/{two_exchanges.pk}/"):
        page.goto(live_server.url + url)
        box = page.locator("#question").bounding_box()
        assert box["y"] >= 0 and box["y"] + box["height"] <= page.viewport_size["height"], box
        send = page.locator("#send").bounding_box()
        assert send["y"] + send["height"] <= page.viewport_size["height"]
        assert page.evaluate("document.documentElement.scrollWidth") <= _width(page)
    toggle = page.get_by_role("button", name="Chats")
    if size == "phone":
        expect(page.locator(".chat-sidebar")).to_be_hidden()
        expect(toggle).to_have_attribute("aria-expanded", "false")
        toggle.click()
        expect(toggle).to_have_attribute("aria-expanded", "true")
        expect(page.locator("#chat-list a", has_text="Old chat").first).to_be_visible()
        screenshot(page, f"chat-list-open-{size}")
        toggle.click()
        expect(page.locator(".chat-sidebar")).to_be_hidden()
    else:
        expect(toggle).to_be_hidden()
        expect(page.locator(".chat-sidebar")).to_be_visible()
        expect(page.locator("#chat-list a", has_text="Old chat").first).to_be_visible()
    screenshot(page, f"chat-{size}")
    assert not page_errors


def test_a_long_chat_title_and_its_actions_leave_the_answer_the_screen(
    live_server, context, page, page_errors, size, owner, two_exchanges
):
    """Seen by hand at 390 px: a chat's title wrapped over three lines and its three
    buttons over two, a third of the phone's height above the conversation. The title
    keeps one line (the whole of it in its tooltip) and the header stays within a
    sixth of the screen at both sizes, actions still reachable and 36 px tall."""
    title = "How do I calibrate the chuck rotation after replacing the front jaw assembly?"
    # Shared: the share button's longest label ("Shared: anyone with the link").
    Chat.objects.filter(pk=two_exchanges.pk).update(title=title, visibility=Chat.Visibility.PUBLIC)
    sign_in(context, live_server, owner)
    page.goto(f"{live_server.url}/c/{two_exchanges.pk}/")
    heading = page.locator("#chat-title")
    expect(heading).to_have_text(title)
    expect(heading).to_have_attribute("title", title)
    header = page.locator(".chat-header").bounding_box()
    viewport = page.viewport_size["height"]
    assert header["height"] <= viewport / 6, (header, viewport)
    line = page.evaluate(
        "parseFloat(getComputedStyle(document.querySelector('#chat-title')).lineHeight)"
    )
    assert heading.bounding_box()["height"] <= line * 1.5, heading.bounding_box()
    # On a phone the share button says "Shared"; its detail is the laptop's.
    shared = "Shared" if size == "phone" else "Shared: anyone with the link"
    for name in ("Rename", shared, "Delete"):
        button = page.get_by_role("button", name=name, exact=True)
        expect(button).to_be_visible()
        box = button.bounding_box()
        assert box["x"] + box["width"] <= _width(page) and box["height"] >= 36, (name, box)
    assert page.evaluate("document.documentElement.scrollWidth") <= _width(page)
    screenshot(page, f"chat-long-title-{size}")
    # The label follows the state when sharing stops and starts again in the page.
    page.get_by_role("button", name=shared, exact=True).click()
    page.get_by_role("button", name="Stop sharing").click()
    expect(page.get_by_role("button", name="Share", exact=True)).to_be_visible()
    page.get_by_role("button", name="Share", exact=True).click()
    page.get_by_role("button", name="Share with anyone who has the link").click()
    page.get_by_role("button", name="Close").click()
    expect(page.get_by_role("button", name=shared, exact=True)).to_be_visible()
    assert page.locator(".chat-header").bounding_box()["height"] <= viewport / 6
    assert not page_errors


def test_the_documents_page_does_not_scroll_sideways(
    live_server, context, page, page_errors, size, owner, pdf_manual
):
    """Item 4: the file picker."""
    sign_in(context, live_server, owner)
    page.goto(live_server.url + "/documents/")
    page.locator("#doc-list .doc-row").first.wait_for()
    assert page.evaluate("document.documentElement.scrollWidth") <= _width(page)
    picker = page.locator("#id_files").bounding_box()
    assert picker["x"] + picker["width"] <= _width(page)
    screenshot(page, f"library-{size}")
    assert not page_errors


def test_after_a_chat_is_deleted_the_address_and_back_do_not_lead_to_it(
    live_server, context, page, page_errors, size, owner, two_exchanges
):
    """Item 8."""
    sign_in(context, live_server, owner)
    page.goto(live_server.url + "/documents/")
    page.goto(f"{live_server.url}/c/{two_exchanges.pk}/")
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete").click()
    page.wait_for_url(live_server.url + "/")
    assert not Chat.objects.filter(pk=two_exchanges.pk).exists()
    response = page.reload()
    assert response.status == 200
    page.go_back()
    assert str(two_exchanges.pk) not in page.url
    assert page.url == live_server.url + "/documents/"
    errors = [e for e in page_errors if "404" not in e]
    assert not errors, errors


def test_the_keyboard_reaches_the_message_box_without_tabbing_past_citations(
    live_server, context, page, page_errors, size, owner, two_exchanges
):
    """Item 10: the first Tab shows a skip link to the message box."""
    sign_in(context, live_server, owner)
    page.goto(f"{live_server.url}/c/{two_exchanges.pk}/")
    page.keyboard.press("Tab")
    focused = page.evaluate("[document.activeElement.textContent, document.activeElement.tagName]")
    assert focused == ["Skip to the message box", "A"]
    assert page.locator(".skip-link:focus").bounding_box()["y"] >= 0
    screenshot(page, f"chat-skip-link-{size}")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "question"
    page.keyboard.type("Typed from the keyboard")
    assert page.locator("#question").input_value() == "Typed from the keyboard"
    assert not page_errors


def test_a_chat_is_renamed_in_place_without_a_browser_prompt(
    live_server, context, page, page_errors, size, owner, two_exchanges
):
    """Item 9: rename without prompt()."""
    prompts: list[str] = []
    page.on("dialog", lambda dialog: (prompts.append(dialog.type), dialog.dismiss()))
    sign_in(context, live_server, owner)
    page.goto(f"{live_server.url}/c/{two_exchanges.pk}/")
    page.get_by_role("button", name="Rename").click()
    field = page.get_by_label("New name for this chat")
    expect(field).to_be_focused()
    expect(field).to_have_value("Chuck calibration")
    field.fill("   ")
    field.press("Enter")
    expect(page.locator("#rename-error")).to_have_text("A chat needs a title.")
    field.fill("Levelling the chuck")
    screenshot(page, f"chat-rename-{size}")
    field.press("Enter")
    expect(page.locator("#chat-title")).to_have_text("Levelling the chuck")
    expect(field).to_be_hidden()
    two_exchanges.refresh_from_db()
    assert two_exchanges.title == "Levelling the chuck"
    if size == "laptop":
        expect(page.locator("#chat-list a[aria-current=page]")).to_have_text("Levelling the chuck")
    assert prompts == []
    assert not page_errors


def test_without_a_model_the_page_says_answers_quote_the_manuals(
    live_server, context, page, page_errors, size, owner, admin_user, settings
):
    """Item 9: the notice, one line for users and in full for admins, naming the setting;
    gone once a model is configured."""
    settings.XAI_API_KEY = ""
    settings.LLM_BASE_URL = ""
    sign_in(context, live_server, owner)
    page.goto(live_server.url + "/")
    notice = page.locator("#model-notice")
    expect(notice).to_contain_text(
        "Answers quote your manuals; connect a model for written answers"
    )
    expect(notice).to_contain_text("XAI_API_KEY")
    assert notice.bounding_box()["height"] < 80  # one line (two on a phone)
    assert page.locator("#question").bounding_box()["y"] < page.viewport_size["height"] - 40
    screenshot(page, f"chat-no-model-{size}")
    context.clear_cookies()
    sign_in(context, live_server, admin_user)
    page.goto(live_server.url + "/")
    expect(notice).to_contain_text("No language model is connected")
    expect(notice).to_contain_text("LLM_BASE_URL and LLM_MODEL")
    screenshot(page, f"chat-no-model-admin-{size}")
    settings.LLM_BASE_URL = "http://127.0.0.1:9/v1"
    page.goto(live_server.url + "/")
    expect(page.locator("#question")).to_be_visible()
    expect(notice).to_have_count(0)
    assert not page_errors


def test_an_install_button_appears_when_the_browser_offers_the_app(
    live_server, context, page, page_errors, size, owner
):
    """Item 9: beforeinstallprompt shows "Install app", which shows the browser's dialog.
    (Headless Chromium never fires the event itself: it is dispatched as Chromium would.)"""
    sign_in(context, live_server, owner)
    page.goto(live_server.url + "/")
    button = page.get_by_role("button", name="Install app")
    expect(button).to_be_hidden()
    page.wait_for_load_state("networkidle")
    page.evaluate(
        """() => {
          const offer = new Event("beforeinstallprompt", { cancelable: true });
          offer.prompt = () => { window.installPrompted = (window.installPrompted || 0) + 1; return Promise.resolve(); };
          offer.userChoice = Promise.resolve({ outcome: "accepted" });
          window.dispatchEvent(offer);
          window.offerPrevented = offer.defaultPrevented;
        }"""
    )
    expect(button).to_be_visible()
    assert page.evaluate("window.offerPrevented") is True
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]
    screenshot(page, f"install-button-{size}")
    button.click()
    expect(button).to_be_hidden()
    assert page.evaluate("window.installPrompted") == 1
    assert not page_errors
