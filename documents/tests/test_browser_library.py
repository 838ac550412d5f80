"""The library page in a real browser: list, upload with progress, live status, filters."""

import pytest

from chats.tests.test_browser_chat import sign_in
from documents.models import Document
from documents.services import document_ingest
from documents.tests.conftest import MANUAL_MD, make_document
from rra.testing.browser import screenshot

pytestmark = pytest.mark.django_db(transaction=True)


def test_upload_watch_processing_and_filter(
    live_server, context, page, page_errors, owner, media, tmp_path
):
    make_document(owner, name="ready.md", content=b"ready", status="ready")
    make_document(
        owner,
        name="broken.pdf",
        content=b"x",
        status="failed",
        failure_reason="The PDF is password protected.",
    )
    sign_in(context, live_server, owner)
    page.goto(live_server.url + "/documents/")
    rows = page.locator("#doc-list .doc-row")
    rows.nth(1).wait_for()
    assert rows.count() == 2
    assert "The PDF is password protected." in page.locator("#doc-list").inner_text()
    # Upload through the form (the same code path as a drop).
    upload = tmp_path / "guide.md"
    upload.write_bytes(MANUAL_MD)
    page.set_input_files("#id_files", str(upload))
    page.click("#upload-form button[type=submit]")
    page.locator("#upload-list li", has_text="guide.md").locator(
        ".upload-state", has_text="Processing"
    ).wait_for()
    page.locator("#doc-list .doc-row", has_text="guide.md").wait_for()
    document = Document.objects.get(name="guide.md")
    assert document.owner == owner and document.status == "queued"
    # The worker finishes it; the page's polling shows the new status.
    assert document_ingest(document_id=document.pk) == "ready"
    page.locator("#doc-list .doc-row", has_text="guide.md").locator(".status-ready").wait_for(
        timeout=15_000
    )
    page.select_option("#filter-status", "failed")
    assert page.locator("#doc-list .doc-row").count() == 1
    page.select_option("#filter-status", "")
    page.fill("#filter-text", "guide")
    assert page.locator("#doc-list .doc-row").count() == 1
    screenshot(page, "library")
    assert not page_errors
