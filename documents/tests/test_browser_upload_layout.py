"""The upload list as a person sees it at 390 and 1280 px (issue 22, seen in the
screenshots): a file whose status is a long error keeps its name on the line where the
error starts; it was centred against the error's lines, a line below it."""

from __future__ import annotations

import pytest

from chats.tests.test_browser_chat import sign_in
from chats.tests.test_browser_layout import SIZES
from rra.testing.browser import screenshot

pytestmark = pytest.mark.django_db(transaction=True)

# The row library.js builds for a file (enqueue(), uploadLine()).
ROWS = """(texts) => {
  const list = document.getElementById("upload-list");
  for (const [name, state, kind] of texts) {
    const li = document.createElement("li");
    li.dataset.state = kind;
    const n = Object.assign(document.createElement("span"), { className: "doc-name", textContent: name });
    const bar = Object.assign(document.createElement("progress"), { max: 100, value: 0 });
    const s = Object.assign(document.createElement("span"), { className: `upload-state ${kind}`, textContent: state });
    li.append(n, bar, s);
    list.append(li);
  }
}"""


@pytest.fixture(params=list(SIZES), ids=list(SIZES))
def size(request, page) -> str:
    width, height = SIZES[request.param]
    page.set_viewport_size({"width": width, "height": height})
    return request.param


def test_a_files_name_is_on_the_first_line_of_its_status(
    live_server, context, page, page_errors, size, owner
):
    sign_in(context, live_server, owner)
    page.goto(live_server.url + "/documents/")
    error = (
        "“manual-3.md”: This looks like a Windows program, which is not supported. Accepted"
        " file types: PDF, Word (.docx), Markdown and plain text."
    )
    page.evaluate(
        ROWS, [["manual-1.md", "Processing: Queued…", "active"], ["manual-3.md", error, "error"]]
    )
    rows = page.locator("#upload-list li")
    for n in range(2):
        name = rows.nth(n).locator(".doc-name").bounding_box()
        state = rows.nth(n).locator(".upload-state").bounding_box()
        if state["y"] > name["y"] + name["height"]:
            continue  # wrapped under the name (narrow screen): nothing to line up
        assert abs(name["y"] - state["y"]) <= 4, (n, name, state)
    assert rows.nth(1).locator(".upload-state").bounding_box()["height"] > 30  # two lines
    rows.nth(1).scroll_into_view_if_needed()
    screenshot(page, f"upload-error-row-{size}")
    assert not page_errors
