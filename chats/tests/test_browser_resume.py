"""In a real browser: a reload in the middle of an answer picks it up where it is (the
worker writes it to Redis), and Stop still works after the reload."""

import pytest

from chats.models import Message
from chats.tests.test_answer_streams import SlowModel
from chats.tests.test_browser_chat import sign_in
from rra.testing.browser import screenshot

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_reload_resumes_the_answer_being_written_and_stop_still_works(
    live_server, context, page, page_errors, owner, runner, monkeypatch
):
    SlowModel(words=400, delay=0.05).install(monkeypatch)
    sign_in(context, live_server, owner)
    page.goto(live_server.url + "/")
    page.fill("#question", "Tell me everything")
    page.keyboard.press("Enter")
    streaming = page.locator(".msg.assistant .answer.streaming")
    page.locator(".msg.assistant .answer", has_text="word5 ").wait_for()
    assert page.url.startswith(live_server.url + "/c/")

    page.reload()
    # The question is on the page (saved); the answer resumes from its first word and
    # goes on past where it was.
    assert page.locator(".msg.user").inner_text().strip() == "Tell me everything"
    streaming.wait_for()
    page.locator(".msg.assistant .answer", has_text="word20 ").wait_for()
    assert streaming.inner_text().startswith("word0 word1 word2")
    assert page.locator("#stop").is_visible()
    screenshot(page, "chat-resumed-answer")

    page.locator("#stop").click()
    page.locator(".msg.assistant.partial .answer:not(.streaming)").wait_for(timeout=30_000)
    message = Message.objects.get(role="assistant")
    assert message.error == "Stopped." and message.status == "partial"
    shown = page.locator(".msg.assistant .answer").inner_text()
    assert shown.split() == message.content.split()
    assert page.locator(".msg.assistant").count() == 1
    assert not page_errors
