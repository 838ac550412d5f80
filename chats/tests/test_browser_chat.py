"""The chat page in a real browser: ask, watch the answer stream, open a citation."""

import pytest
from django.test import Client
from playwright.sync_api import expect

from chats.models import Vote
from rra.testing.browser import screenshot, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def sign_in(context, live_server, user):
    client = Client()
    client.force_login(user)
    context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )


def test_ask_a_question_and_open_its_citation(
    live_server, context, page, page_errors, owner, manual
):
    sign_in(context, live_server, owner)
    page.goto(live_server.url + "/")
    assert page.title() == "Ask your manuals · RRA"
    page.fill("#question", "How do I level the front chuck?")
    page.keyboard.press("Enter")
    answer = page.locator(".msg.assistant .answer:not(.streaming)")
    try:
        answer.wait_for(timeout=60_000)
    except Exception:
        screenshot(page, "chat-answer-timeout")
        raise AssertionError(
            f"{page_errors} {page.locator('#composer-status').inner_text()} {page.content()[-3000:]}"
        ) from None
    assert "spirit level" in answer.inner_text()
    assert page.url.startswith(live_server.url + "/c/")
    assert page.locator("#conversation").get_attribute("aria-live") == "polite"
    assert (
        page.locator("#chat-list a[aria-current=page]").inner_text()
        == "How do I level the front chuck?"
    )
    chip = page.locator(".msg.assistant button.cite").first
    chip.click()
    popover = page.locator(".cite-popover")
    assert "roborail.md" in popover.inner_text()
    screenshot(page, "chat-answer")
    popover.get_by_role("button", name="Open section").click()
    dialog = page.locator("dialog[open]")
    dialog.locator("mark").first.wait_for()
    # The passage is marked run by run (its heading, its paragraphs).
    assert "spirit level" in " ".join(dialog.locator("mark").all_inner_texts())
    screenshot(page, "citation-viewer")
    page.keyboard.press("Escape")
    assert page.locator("dialog[open]").count() == 0
    # The answer survives a reload: it was saved with its citations.
    page.reload()
    assert "spirit level" in page.locator(".msg.assistant .answer").first.inner_text()
    assert page.locator(".sources li").count() >= 1
    # Voting: text buttons (no emoji font needed), pressed state shown, the vote stored.
    answer_article = page.locator(".msg.assistant").first
    helpful = answer_article.get_by_role("button", name="Helpful", exact=True)
    assert helpful.inner_text() == "Helpful"  # its name is what it shows
    helpful.click()
    expect(helpful).to_have_attribute("aria-pressed", "true")
    assert Vote.objects.get(user=owner).value == Vote.Value.UP
    answer_article.get_by_role("button", name="Not helpful").click()
    expect(answer_article.get_by_role("button", name="Not helpful")).to_have_attribute(
        "aria-pressed", "true"
    )
    expect(helpful).to_have_attribute("aria-pressed", "false")
    assert Vote.objects.get(user=owner).value == Vote.Value.DOWN
    screenshot(page, "chat-voted")
    assert not page_errors


def test_the_chat_page_fits_a_phone(live_server, context, page, owner, manual):
    sign_in(context, live_server, owner)
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto(live_server.url + "/")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.className")
    assert "skip-link" in focused
    screenshot(page, "chat-phone")


def test_the_sidebar_keeps_thousands_of_chats_in_a_virtual_list(
    live_server, context, page, page_errors, owner
):
    from chats.models import Chat

    Chat.objects.bulk_create([Chat(owner=owner, title=f"Chat number {n}") for n in range(2000)])
    sign_in(context, live_server, owner)
    page.goto(live_server.url + "/")
    links = page.locator("#chat-list a")
    wait_until(page, "document.querySelector('#chat-list').getAttribute('role') === 'list'")
    wait_until(
        page,
        "document.querySelector('#chat-list [aria-setsize]')?.getAttribute('aria-setsize') === '2000'",
    )
    assert links.count() < 100
    page.locator("#chat-list").evaluate("el => el.scrollTop = el.scrollHeight")
    page.wait_for_timeout(300)
    texts = page.locator("#chat-list a").all_inner_texts()
    assert len(texts) < 100 and any(t.startswith("Chat number") for t in texts)
    page.fill("#chat-filter", "number 1999")
    page.locator("#chat-list a", has_text="Chat number 1999").wait_for()
    assert page.locator("#chat-list a").count() == 1
    screenshot(page, "chat-sidebar")
    assert not page_errors


def test_a_long_conversation_keeps_only_a_window_of_messages(
    live_server, context, page, page_errors, owner, manual
):
    from chats.models import Chat, Message

    chat = Chat.objects.create(owner=owner, title="Long")
    Message.objects.bulk_create(
        [
            Message(
                chat=chat,
                role="user" if n % 2 == 0 else "assistant",
                content=f"Message {n} " + "text " * (n % 40),
            )
            for n in range(1000)
        ]
    )
    sign_in(context, live_server, owner)
    page.goto(f"{live_server.url}/c/{chat.pk}/")
    wait_until(page, "document.querySelector('#conversation').getAttribute('role') === 'list'")
    rows = page.locator("#conversation .msg-row")
    assert rows.count() < 60
    assert "Message 999" in page.locator("#conversation").inner_text()  # opened at the end
    for _ in range(3):  # heights are estimated until measured: scroll until the top sticks
        page.locator("#conversation").evaluate("el => el.scrollTop = 0")
        page.wait_for_timeout(300)
    info = page.locator("#conversation").evaluate(
        "el => [el.scrollTop, el.scrollHeight, [...el.querySelectorAll('.msg-row')].map(r => r.getAttribute('aria-posinset')).join(',')]"
    )
    assert "Message 0\n" in page.locator("#conversation").inner_text(), info
    assert rows.count() < 60
    # Asking still streams into the list and ends at the bottom.
    page.fill("#question", "How do I level the front chuck?")
    page.keyboard.press("Enter")
    page.locator(".msg.assistant .answer:not(.streaming)", has_text="spirit level").wait_for(
        timeout=60_000
    )
    assert rows.count() < 60
    screenshot(page, "chat-long")
    assert not page_errors


def test_a_question_asked_offline_is_queued_and_sent_when_back_online(
    live_server, context, page, page_errors, owner, manual
):
    sign_in(context, live_server, owner)
    page.goto(live_server.url + "/")
    page.evaluate("navigator.serviceWorker.ready")  # pages and modules are cached
    context.set_offline(True)
    page.fill("#question", "How do I level the front chuck?")
    page.keyboard.press("Enter")
    page.locator(".queued-question .queued").wait_for()
    assert "Queued" in page.locator(".queued-question").inner_text()
    screenshot(page, "chat-queued")
    context.set_offline(False)
    page.locator(".msg.assistant .answer:not(.streaming)", has_text="spirit level").wait_for(
        timeout=60_000
    )
    assert page.locator(".queued-question").count() == 0
    assert page.locator(".msg.user", has_text="How do I level the front chuck?").count() == 1
    errors = [
        e
        for e in page_errors
        if "net::ERR_INTERNET_DISCONNECTED" not in e and "Failed to fetch" not in e
    ]
    assert not errors, errors
