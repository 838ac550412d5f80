"""The virtual list (static/js/vlist.js) in Chromium: 10,000 rows of varying height."""

import statistics

import pytest

from rra.testing.browser import screenshot, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

ROWS = "#vlist-demo [data-vlist-index]"

# The rows in the DOM, and whether they cover the visible part of the list without gaps
# or overlaps (consecutive rows touch; the first starts above the top, the last ends
# below the bottom, or the list ends).
WINDOW = """() => {
  const box = document.getElementById("vlist-demo");
  const outer = box.getBoundingClientRect(); // the scrollport: inside the border
  const view = { top: outer.top + box.clientTop, bottom: outer.top + box.clientTop + box.clientHeight };
  const rows = [...box.querySelectorAll("[data-vlist-index]")]
    .map((el) => ({ index: Number(el.dataset.vlistIndex), rect: el.getBoundingClientRect() }))
    .sort((a, b) => a.index - b.index);
  const seen = rows.filter((r) => r.rect.bottom > view.top && r.rect.top < view.bottom);
  let covered = seen.length > 0 && (seen[0].rect.top <= view.top + 1 || seen[0].index === 0);
  for (let k = 1; k < seen.length; k++) {
    if (seen[k].index !== seen[k - 1].index + 1) covered = false;
    if (Math.abs(seen[k].rect.top - seen[k - 1].rect.bottom) > 1) covered = false;
  }
  const last = seen[seen.length - 1];
  if (last && last.rect.bottom < view.bottom - 1 && last.index !== 9999) covered = false;
  return {
    count: rows.length,
    first: seen.length ? seen[0].index : -1,
    last: last ? last.index : -1,
    covered,
    heights: new Set(rows.map((r) => Math.round(r.rect.height))).size,
  };
}"""

SETTLE = "() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(r, 50))))"


@pytest.fixture
def demo(live_server, settings, page):
    settings.ROOT_URLCONF = "rra.tests.dev_urls"
    page.goto(live_server.url + "/dev/vlist/")
    wait_until(page, "() => window.rraVlistDemo && document.querySelector('[data-vlist-index]')")
    page.evaluate(SETTLE)
    return page


def scroll(page, where: str) -> dict:
    page.evaluate(
        f"() => {{ const b = document.getElementById('vlist-demo'); b.scrollTop = {where}; }}"
    )
    page.evaluate(SETTLE)
    page.evaluate(SETTLE)
    return page.evaluate(WINDOW)


def test_only_a_window_of_10000_rows_is_in_the_page(demo, page_errors):
    page = demo
    top = page.evaluate(WINDOW)
    assert 0 < top["count"] < 100 and top["first"] == 0 and top["covered"], top
    assert top["heights"] > 1  # rows of several heights
    box = page.locator("#vlist-demo")
    assert box.get_attribute("role") == "list"
    first = page.locator('[data-vlist-index="0"]')
    assert first.get_attribute("role") == "listitem"
    assert first.get_attribute("aria-setsize") == "10000"
    assert first.get_attribute("aria-posinset") == "1"

    middle = scroll(page, "b.scrollHeight / 2 - b.clientHeight / 2")
    assert middle["count"] < 100 and middle["covered"], middle
    assert 2500 < middle["first"] < 7500, middle

    end = scroll(page, "b.scrollHeight")
    assert end["count"] < 100 and end["covered"], end
    assert end["last"] == 9999, end
    assert page.locator('[data-vlist-index="9999"]').inner_text().startswith("Row 10000")
    assert not page_errors


def test_scroll_to_index_shows_the_last_row(demo, page_errors):
    page = demo
    page.evaluate("() => window.rraVlistDemo.scrollToIndex(9999)")
    page.evaluate(SETTLE)
    page.evaluate(SETTLE)
    inside = page.evaluate("""() => {
      const box = document.getElementById("vlist-demo");
      const top = box.getBoundingClientRect().top + box.clientTop;
      const view = { top, bottom: top + box.clientHeight };
      const row = document.querySelector('[data-vlist-index="9999"]').getBoundingClientRect();
      return row.top >= view.top - 1 && row.bottom <= view.bottom + 1;
    }""")
    assert inside
    state = page.evaluate(WINDOW)
    assert state["count"] < 100 and state["covered"] and state["last"] == 9999, state
    screenshot(page, "vlist")

    page.evaluate("() => window.rraVlistDemo.scrollToIndex(4321, {align: 'start'})")
    page.evaluate(SETTLE)
    page.evaluate(SETTLE)
    state = page.evaluate(WINDOW)
    assert state["first"] == 4321 and state["covered"], state
    assert not page_errors


def test_the_keyboard_moves_between_rows(demo, page_errors):
    page = demo
    page.locator('[data-vlist-index="0"]').focus()
    page.keyboard.press("ArrowDown")
    assert page.evaluate("document.activeElement.dataset.vlistIndex") == "1"
    page.keyboard.press("End")
    page.evaluate(SETTLE)
    assert page.evaluate("document.activeElement.dataset.vlistIndex") == "9999"
    page.keyboard.press("ArrowUp")
    assert page.evaluate("document.activeElement.dataset.vlistIndex") == "9998"
    page.keyboard.press("Home")
    assert page.evaluate("document.activeElement.dataset.vlistIndex") == "0"
    page.keyboard.press("PageDown")
    assert int(page.evaluate("document.activeElement.dataset.vlistIndex")) > 1
    assert not page_errors


def test_the_count_can_change(demo, page_errors):
    page = demo
    page.evaluate("() => window.rraVlistDemo.setCount(3)")
    state = page.evaluate(WINDOW)
    assert state["count"] == 3 and state["last"] == 2
    assert page.locator('[data-vlist-index="0"]').get_attribute("aria-setsize") == "3"
    page.evaluate("() => window.rraVlistDemo.setCount(10000)")
    page.evaluate(SETTLE)
    assert page.evaluate(WINDOW)["count"] > 3
    assert not page_errors


def test_scrolling_through_10000_rows_stays_smooth(demo, page_errors):
    """120 jumps across the list: each must render within a frame budget."""
    page = demo
    times = page.evaluate("""async () => {
      const box = document.getElementById("vlist-demo");
      const frame = () => new Promise((r) => requestAnimationFrame(r));
      const times = [];
      for (let k = 0; k <= 120; k++) {
        const start = performance.now();
        box.scrollTop = (box.scrollHeight - box.clientHeight) * ((k * 37) % 121) / 120;
        await frame();
        await frame();
        times.push(performance.now() - start);
      }
      return times;
    }""")
    state = page.evaluate(WINDOW)
    assert state["count"] < 100 and state["covered"], state
    print(f"vlist jump+2 frames: median {statistics.median(times):.1f} ms, max {max(times):.1f} ms")
    # Two frames are ~33 ms at 60 Hz; generous limits for a loaded CI machine.
    assert statistics.median(times) < 100, times
    assert max(times) < 1000, times
    assert not page_errors
