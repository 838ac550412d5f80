"""The library page in a real browser: list, upload with progress, live status, filters."""

from datetime import timedelta

import pytest
from django.utils import timezone

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


def test_a_document_being_embedded_shows_a_progress_bar_its_rate_and_eta(
    live_server, context, page, page_errors, owner, media
):
    document = make_document(owner, name="manual.pdf", content=b"x")
    Document.objects.filter(pk=document.pk).update(
        status=Document.Status.EMBEDDING,
        processing_started_at=timezone.now() - timedelta(seconds=50),
        pages_done=10,
        pages_total=10,
        chunks_embedded=20,
        chunks_total=40,
    )
    sign_in(context, live_server, owner)
    page.goto(live_server.url + "/documents/")
    row = page.locator("#doc-list .doc-row", has_text="manual.pdf")
    row.locator("progress").wait_for()
    assert row.locator("progress").get_attribute("value") == "65"  # 0.3 + 0.7 * 20/40
    text = row.locator(".doc-progress").inner_text()
    # 20 passages in 50 s; 35 % left at 65 % in 50 s: about 27 s.
    assert text.startswith("20 of 40 passages · 0.4 per second · about ")
    assert text.endswith(" s left")
    assert not page_errors
