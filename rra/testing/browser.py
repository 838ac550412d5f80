"""Browser tests: Playwright for Python driving the system Chromium (/usr/bin/chromium).

Registered for the whole suite in the root conftest.py (``pytest_plugins``). Fixtures:

- ``browser`` (session): one headless Chromium. Without /usr/bin/chromium (or without
  the playwright package) the test is skipped with the reason; under CI=true it fails.
  ``playwright install`` is never needed: Playwright's own browser builds are not used.
- ``context`` (function): a fresh BrowserContext, so cookies, storage, caches and
  service workers never leak from one test into the next.
- ``page`` (function): a page in that context, 10 s default timeout. Uncaught page
  errors and console errors are collected in ``page_errors`` (a list of strings).
- ``live_server`` (session): pytest-django's live server, except that static files are
  served the way production serves them, by whitenoise from STATIC_ROOT (hashed names,
  compressed, immutable; the root conftest collects them once per session, before any
  other session fixture). pytest-django's StaticFilesHandler serves only the source
  names, so every hashed ``{% static %}`` URL would be a 404.

``screenshot(page, name)`` saves var/screenshots/<name>.png and returns its path.

    def test_sign_in_page(live_server, page, page_errors):
        page.goto(live_server.url + "/accounts/login/")
        assert page.title() == "Sign in · RRA"
        screenshot(page, "sign-in")
        assert not page_errors
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = Path(__file__).resolve().parent.parent.parent / "var" / "screenshots"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


def _through_whitenoise(handler):
    return handler  # no StaticFilesHandler: WhiteNoiseMiddleware answers /static/


@pytest.fixture(scope="session")
def live_server(request):
    from pytest_django.live_server_helper import LiveServer

    addr = (
        request.config.getvalue("liveserver")
        or os.getenv("DJANGO_LIVE_TEST_SERVER_ADDRESS")
        or "localhost"
    )
    server = LiveServer(addr, start=False)
    server.thread.static_handler = _through_whitenoise
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        _unavailable(f"{CHROMIUM} is missing: install Debian's chromium to run browser tests")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -r requirements.txt)")
    # Playwright's sync API keeps an asyncio loop on this thread, so Django would refuse
    # database calls from the tests ("You cannot call this from an async context"): no
    # Django code runs in that loop, so the check is off while the browser lives.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def context(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    yield context
    context.close()


@pytest.fixture
def page_errors() -> list[str]:
    return []


@pytest.fixture
def page(context, page_errors):
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.on("pageerror", lambda error: page_errors.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: (
            page_errors.append(f"console: {message.text}") if message.type == "error" else None
        ),
    )
    yield page
    page.close()


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def wait_until(page, expression: str, *, arg=None, timeout_ms: int = 10_000) -> None:
    """page.wait_for_function() for pages under our CSP: Playwright compiles a string
    predicate with eval in the page, which script-src without 'unsafe-eval' refuses;
    page.evaluate() is not subject to the page's CSP. Polls every 50 ms."""
    import time

    deadline = time.monotonic() + timeout_ms / 1000
    while not page.evaluate(expression, arg):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_ms} ms waiting for: {expression}")
        page.wait_for_timeout(50)
