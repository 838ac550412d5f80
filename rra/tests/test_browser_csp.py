"""The Content-Security-Policy in Chromium: the pages work under it, nothing is refused
(and the compressed pages are read as they should be)."""

import pytest
from django.test import Client

from chats.tests.conftest import MANUAL
from documents.services import document_ingest
from documents.tests.conftest import make_document
from rra.testing.browser import screenshot

pytestmark = pytest.mark.django_db(transaction=True)

# Runs before any script of each page (through DevTools, which the policy does not cover).
RECORD_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


def test_it_refuses_nothing_on_the_chat_answer_viewer_and_library(
    live_server, context, page, page_errors, owner, media
):
    document = make_document(owner, name="roborail.md", content=MANUAL)
    assert document_ingest(document_id=document.pk) == "ready"
    client = Client()
    client.force_login(owner)
    context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    context.add_init_script(RECORD_VIOLATIONS)
    violations: list[str] = []

    def visit(url: str) -> None:
        response = page.goto(live_server.url + url)
        assert "'nonce-" in response.headers["content-security-policy"]
        page.wait_for_load_state("networkidle")
        # Module scripts ran: pwa.js registered the service worker.
        page.evaluate("() => navigator.serviceWorker.ready.then(() => true)")

    visit("/")
    # The page came brotli-compressed (rra/compression.py) and Chromium read it.
    assert page.evaluate("performance.getEntriesByType('navigation')[0].encodedBodySize") < (
        page.evaluate("performance.getEntriesByType('navigation')[0].decodedBodySize")
    )
    page.fill("#question", "How do I level the front chuck?")
    page.keyboard.press("Enter")
    answer = page.locator(".msg.assistant .answer:not(.streaming)")
    answer.wait_for(timeout=60_000)  # streamed over fetch (connect-src), Markdown as HTML
    page.locator(".msg.assistant button.cite").first.click()
    page.locator(".cite-popover").get_by_role("button", name="Open section").click()
    page.locator("dialog[open] mark").first.wait_for()  # viewer.css, CSSOM-placed highlight
    violations += page.evaluate("window.cspViolations")
    page.keyboard.press("Escape")

    visit("/documents/")
    page.get_by_text("roborail.md").first.wait_for()
    violations += page.evaluate("window.cspViolations")
    screenshot(page, "csp-library")

    assert violations == []
    assert not [e for e in page_errors if "Content Security Policy" in e or "Permissions" in e]
    assert not page_errors
