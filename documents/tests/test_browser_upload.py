"""Uploading many files in a real browser at 390x844 and 1280x800 (issue 22 item 7): the
files that fit in the upload limit are sent, the rest wait in the page and go when the
limit allows (Retry-After), each file with its own status and error, and each line
follows its document to "Ready"."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from chats.tests.test_browser_chat import sign_in
from chats.tests.test_browser_layout import SIZES
from documents.models import Document
from documents.services import document_ingest
from documents.tests.conftest import MANUAL_MD
from rra.testing.browser import screenshot

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=list(SIZES), ids=list(SIZES))
def size(request, page) -> str:
    width, height = SIZES[request.param]
    page.set_viewport_size({"width": width, "height": height})
    return request.param


def test_seven_files_the_limit_lets_five_through_the_rest_wait_and_follow(
    live_server, context, page, page_errors, size, owner, media, tmp_path, settings, ratelimit_clock
):
    settings.UPLOAD_RATE = "5/m"
    paths = []
    for n in range(1, 8):
        path = tmp_path / f"manual-{n}.md"
        path.write_bytes(MANUAL_MD + f"\nManual number {n}.\n".encode())
        paths.append(path)
    bad = tmp_path / "manual-3.md"  # the third is not a manual at all
    bad.write_bytes(b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + bytes(range(256)) * 8)
    page.clock.install()
    sign_in(context, live_server, owner)
    page.goto(live_server.url + "/documents/")
    page.clock.resume()
    # The choice of who reads them is in view, and kept for the files of this upload.
    page.get_by_label("Everyone on this site").check()
    page.set_input_files("#id_files", [str(p) for p in paths])
    page.get_by_role("button", name="Upload", exact=True).click()

    lines = page.locator("#upload-list li")
    expect(lines).to_have_count(7)
    expect(lines.nth(6)).to_contain_text("upload limit", timeout=30_000)
    expect(lines.nth(5)).to_contain_text("upload limit")
    # Four manuals are in, the bad file says why on its own line (and only there).
    assert Document.objects.count() == 4
    bad_line = lines.nth(2)
    expect(bad_line.locator(".upload-state.error")).to_have_count(1)
    error = bad_line.locator(".upload-state").inner_text()
    assert "manual-3.md" in error and "upload limit" not in error
    # Sending the same file again would not help: no "Try again" for it.
    expect(bad_line.get_by_role("button")).to_have_count(0)
    assert page.locator("#upload-list .upload-state.error").count() == 1
    for n in (0, 1, 3, 4):
        expect(lines.nth(n).locator(".upload-state")).not_to_have_class("upload-state error")
    assert set(Document.objects.values_list("visibility", flat=True)) == {"shared"}
    screenshot(page, f"upload-waiting-{size}")

    # The window passes (the server's clock and the page's): the two waiting files go.
    ratelimit_clock.advance(61)
    page.clock.fast_forward(61_000)
    expect(lines.nth(6)).not_to_contain_text("upload limit", timeout=30_000)
    expect(lines.nth(6).locator(".upload-state")).not_to_have_text("Sending…", timeout=30_000)
    assert Document.objects.count() == 6
    assert sorted(Document.objects.values_list("name", flat=True)) == [
        f"manual-{n}.md" for n in (1, 2, 4, 5, 6, 7)
    ]
    # Each line follows its document: processed by the worker, it says ready.
    for document in Document.objects.all():
        assert document_ingest(document_id=document.pk) == "ready"
    page.clock.fast_forward(3_000)
    ready = page.locator("#upload-list li[data-state=ready]")
    expect(ready).to_have_count(6, timeout=15_000)
    expect(ready.first).to_contain_text("Ready")
    # Nothing was lost or said twice; the page does not scroll sideways.
    assert page.locator("#upload-list .upload-state.error").count() == 1
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]
    screenshot(page, f"upload-{size}")
    assert not [e for e in page_errors if "429" not in e and "415" not in e], page_errors
