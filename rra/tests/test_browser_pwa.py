"""The service worker, the update banner and the offline question queue, in Chromium."""

import pytest
from django.templatetags.static import static

from conftest import PASSWORD
from rra.testing.browser import screenshot, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

CACHED_URLS = """async (name) => {
  const cache = await caches.open(name);
  return (await cache.keys()).map((request) => new URL(request.url).pathname);
}"""


# Is path in one of the current person's caches of this kind ("rra-pages-", "rra-data-")?
IN_PERSONAL_CACHE = """async ([kind, path]) => {
  for (const name of await caches.keys()) {
    if (name.startsWith(kind) && await (await caches.open(name)).match(path)) return true;
  }
  return false;
}"""


NOT_IN_PERSONAL_CACHE = f"async (arg) => !(await ({IN_PERSONAL_CACHE})(arg))"


def open_controlled(page, url: str) -> None:
    """Open url and wait until the service worker controls the page."""
    page.goto(url)
    page.evaluate("() => navigator.serviceWorker.ready.then(() => true)")
    wait_until(page, "() => navigator.serviceWorker.controller !== null")


def shell_caches(page) -> list[str]:
    return page.evaluate(
        "() => caches.keys().then((names) => names.filter((n) => n.startsWith('rra-shell-')))"
    )


def uncaught(errors: list[str]) -> list[str]:
    return [error for error in errors if error.startswith("page error")]


def test_the_worker_precaches_the_app_shell(live_server, page, page_errors):
    open_controlled(page, live_server.url + "/accounts/login/")
    (shell,) = shell_caches(page)
    cached = page.evaluate(CACHED_URLS, shell)
    assert static("css/app.css") in cached
    assert static("js/pwa.js") in cached
    assert "/offline/" in cached
    assert not page_errors


def sign_in(page, user) -> None:
    page.fill("input[type=email]", user.email)
    page.fill("input[type=password]", PASSWORD)
    with page.expect_navigation():
        page.locator("main button[type=submit]").click()
    assert "/accounts/login/" not in page.url


def test_a_visited_page_renders_offline_and_others_show_the_offline_page(
    live_server, context, page, owner, page_errors
):
    open_controlled(page, live_server.url + "/accounts/login/")
    sign_in(page, owner)
    page.goto(live_server.url + "/")
    wait_until(page, IN_PERSONAL_CACHE, arg=["rra-pages-", "/"])
    online_title = page.title()
    context.set_offline(True)
    assert page.evaluate("navigator.onLine") is False

    page.reload()
    assert page.title() == online_title != "Offline · RRA"
    # The hashed stylesheet came from the cache too.
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(247, 248, 250)"
    assert page.evaluate("document.documentElement.classList.contains('offline')")

    for never_kept in ("/documents/", "/accounts/login/"):  # not visited; no-store
        page.goto(live_server.url + never_kept)
        assert page.locator("h1").inner_text() == "You are offline"

    # A module imported by its plain name ("./offline-queue.js") gets the hashed copy.
    assert (
        page.evaluate(
            "() => import('/static/js/offline-queue.js').then((m) => typeof m.queueQuestion)"
        )
        == "function"
    )

    status, body = page.evaluate(
        "() => fetch('/api/documents/987654').then(async (r) => [r.status, await r.json()])"
    )
    assert status == 503 and body["error"]["code"] == "offline"
    assert not uncaught(page_errors)


def test_api_answers_are_kept_for_offline_use_until_sign_out(
    live_server, context, page, owner, page_errors
):
    open_controlled(page, live_server.url + "/accounts/login/")
    sign_in(page, owner)
    me = page.evaluate("() => fetch('/api/me').then((r) => r.json())")
    assert me["email"] == owner.email
    wait_until(page, IN_PERSONAL_CACHE, arg=["rra-data-", "/api/me"])

    context.set_offline(True)
    assert page.evaluate("() => fetch('/api/me').then((r) => r.json())") == me
    # Writes are never answered from a cache: offline they fail.
    assert (
        page.evaluate(
            "() => fetch('/api/chats', {method: 'POST', body: '{}'}).then(() => 'sent', () => 'failed')"
        )
        == "failed"
    )
    context.set_offline(False)

    with page.expect_navigation():
        page.locator("form[action='/accounts/logout/'] button").click()
    wait_until(page, NOT_IN_PERSONAL_CACHE, arg=["rra-data-", "/api/me"])
    assert not uncaught(page_errors)


def test_a_new_version_waits_until_the_person_reloads(live_server, settings, page, page_errors):
    open_controlled(page, live_server.url + "/offline/")
    (old_shell,) = shell_caches(page)
    assert page.locator(".pwa-update").count() == 0

    # A deploy: the app shell changes, so /sw.js changes and the browser finds a new worker.
    settings.PWA_PRECACHE_STATIC = [*settings.PWA_PRECACHE_STATIC, "icons/icon-maskable-512.png"]
    page.evaluate("() => navigator.serviceWorker.getRegistration().then((r) => r.update())")
    banner = page.locator(".pwa-update")
    banner.wait_for()
    assert banner.get_attribute("role") == "status"
    assert "A new version is available" in banner.inner_text()
    assert page.evaluate("() => navigator.serviceWorker.getRegistration().then((r) => !!r.waiting)")

    with page.expect_navigation():
        banner.get_by_role("button", name="Reload").click()
    wait_until(page, "() => navigator.serviceWorker.controller !== null")
    wait_until(page, "(old) => caches.keys().then((names) => !names.includes(old))", arg=old_shell)
    (new_shell,) = shell_caches(page)
    assert new_shell != old_shell
    assert page.locator(".pwa-update").count() == 0
    assert not page_errors


def with_queue(script: str) -> str:
    """script, with QUEUE_MODULE standing for the import of static/js/offline-queue.js."""
    return script.replace("QUEUE_MODULE", f"import({static('js/offline-queue.js')!r})")


def test_the_offline_queue_keeps_questions_until_sent(live_server, context, page, page_errors):
    page.goto(live_server.url + "/offline/")
    result = page.evaluate(
        with_queue(
            """async () => {
      const q = await QUEUE_MODULE;
      const events = [];
      window.addEventListener(q.QUEUE_EVENT, (e) => events.push(e.detail.pending));
      const first = await q.queueQuestion("chat-a", "  How do I bleed the brakes?  ");
      await q.queueQuestion("chat-b", "What torque for the wheel nuts?");
      await q.queueQuestion("chat-a", "And the pad wear limit?");
      const all = (await q.pendingQuestions()).map((i) => i.question);
      const onlyA = (await q.pendingQuestions("chat-a")).length;
      const sent = [];
      const flushed = await q.flush(async (item) => {
        if (item.chatId !== "chat-a") return false; // another chat's: keep it
        sent.push(item.question);
      });
      const failing = await q.flush(async () => { throw new Error("server down"); });
      const left = await q.pendingQuestions();
      await q.discardQuestion(left[0].id);
      return {
        first, all, onlyA, sent, events,
        flushed: { sent: flushed.sent.length, kept: flushed.kept.length, failed: flushed.failed },
        failing: { kept: failing.kept.length, error: String(failing.failed.error) },
        left: left.map((i) => i.question),
        finally: (await q.pendingQuestions()).length,
      };
    }"""
        )
    )
    assert result["first"]["chatId"] == "chat-a"
    assert result["first"]["question"] == "How do I bleed the brakes?"
    assert isinstance(result["first"]["id"], int) and result["first"]["queuedAt"]
    assert result["all"] == [
        "How do I bleed the brakes?",
        "What torque for the wheel nuts?",
        "And the pad wear limit?",
    ]
    assert result["onlyA"] == 2
    assert result["sent"] == ["How do I bleed the brakes?", "And the pad wear limit?"]
    assert result["flushed"] == {"sent": 2, "kept": 1, "failed": None}
    assert result["failing"] == {"kept": 1, "error": "Error: server down"}
    assert result["left"] == ["What torque for the wheel nuts?"]
    assert result["finally"] == 0
    assert result["events"] == [1, 2, 3, 2, 1, 0]
    assert not page_errors


def test_queued_questions_are_sent_when_back_online(live_server, context, page, page_errors):
    page.goto(live_server.url + "/offline/")
    page.evaluate(with_queue("async () => { window.q = await QUEUE_MODULE; }"))
    context.set_offline(True)
    page.evaluate(
        """async () => {
      const q = window.q;
      window.sentQuestions = [];
      q.autoFlush(async (item) => { window.sentQuestions.push(item.question); });
      await q.queueQuestion("chat-a", "Queued while offline");
      const result = await q.flush(() => { throw new Error("must not be called offline"); });
      if (result.kept.length !== 1 || result.failed) throw new Error("flushed offline");
    }"""
    )
    assert page.evaluate("window.sentQuestions") == []
    context.set_offline(False)  # the "online" event flushes
    wait_until(page, "() => window.sentQuestions.length === 1")
    assert page.evaluate("window.sentQuestions") == ["Queued while offline"]
    assert not page_errors


def sync_questions(context, page, origin: str, *, before=None) -> None:
    """Fire the worker's Background Sync for queued questions, as the browser does (the
    DevTools protocol, from page, which need not be a page of the site); before() runs
    between finding the worker and firing."""
    cdp = context.new_cdp_session(page)
    registrations = []
    cdp.on(
        "ServiceWorker.workerRegistrationUpdated",
        lambda event: registrations.extend(event["registrations"]),
    )
    cdp.send("ServiceWorker.enable")
    page.wait_for_timeout(300)
    (registration,) = [r for r in registrations if not r["isDeleted"]]
    if before is not None:
        before()
    cdp.send(
        "ServiceWorker.dispatchSyncEvent",
        {
            "origin": origin,
            "registrationId": registration["registrationId"],
            "tag": "rra-questions",
            "lastChance": False,
        },
    )


def test_background_sync_asks_the_page_to_send_queued_questions(
    live_server, context, page, page_errors
):
    open_controlled(page, live_server.url + "/offline/")

    def queue() -> None:
        page.evaluate(
            with_queue(
                """async () => {
          const q = await QUEUE_MODULE;
          window.sentQuestions = [];
          await q.queueQuestion("chat-a", "Sent by background sync");
          q.autoFlush(async (item) => {
            if (navigator.onLine && window.syncDispatched) window.sentQuestions.push(item.question);
            else return false;
          });
        }"""
            )
        )
        page.evaluate("() => { window.syncDispatched = true; }")

    sync_questions(context, page, live_server.url, before=queue)
    wait_until(page, "() => window.sentQuestions.length === 1")
    assert not page_errors


def test_signing_out_through_django_admin_leaves_nothing_for_the_next_person(
    live_server, context, page, admin_user, owner, page_errors
):
    from chats.models import Chat

    secret = Chat.objects.create(owner=admin_user, title="Quarterly layoffs draft")
    open_controlled(page, live_server.url + "/accounts/login/")
    sign_in(page, admin_user)
    chat_path = f"/c/{secret.pk}/"
    page.goto(live_server.url + chat_path)
    assert "Quarterly layoffs draft" in page.content()
    wait_until(page, IN_PERSONAL_CACHE, arg=["rra-pages-", chat_path])

    # Sign out the other way: Django admin's own log-out button.
    page.goto(live_server.url + "/admin/")
    with page.expect_response(lambda r: r.url.endswith("/admin/logout/")) as logout:
        page.locator("#logout-form button").click()
    assert logout.value.all_headers().get("clear-site-data") == '"cache", "storage"'
    wait_until(page, NOT_IN_PERSONAL_CACHE, arg=["rra-pages-", chat_path])

    # The next person on this browser, online and offline, never sees the first's page.
    open_controlled(page, live_server.url + "/accounts/login/")
    sign_in(page, owner)
    page.goto(live_server.url + chat_path)
    assert "Quarterly layoffs draft" not in page.content()
    context.set_offline(True)
    page.goto(live_server.url + chat_path)
    assert "Quarterly layoffs draft" not in page.content()
    context.set_offline(False)
    screenshot(page, "pwa-next-person-offline")
    assert not uncaught(page_errors)


def test_each_person_has_their_own_caches(live_server, context, page, owner, member, page_errors):
    """Even without a sign-out (a session that simply ended), the worker never reads one
    person's cache for another: caches are named after the viewer cookie."""
    open_controlled(page, live_server.url + "/accounts/login/")
    sign_in(page, owner)
    page.goto(live_server.url + "/")
    wait_until(page, IN_PERSONAL_CACHE, arg=["rra-pages-", "/"])
    owner_caches = page.evaluate(
        "() => caches.keys().then((n) => n.filter((x) => x.startsWith('rra-pages-')))"
    )
    assert len(owner_caches) == 1
    # The session cookie goes (as when it expires in the browser); the next person
    # signs in on the same page.
    context.clear_cookies()
    page.goto(live_server.url + "/accounts/login/")
    sign_in(page, member)
    page.goto(live_server.url + "/")
    wait_until(page, IN_PERSONAL_CACHE, arg=["rra-pages-", "/"])
    names = page.evaluate("() => caches.keys()")
    assert owner_caches[0] not in names
    assert not uncaught(page_errors)


def test_background_sync_sends_queued_questions_with_the_app_closed(
    live_server, context, page, owner, member, page_errors
):
    import time

    from chats.models import Chat, Message

    chat = Chat.objects.create(owner=owner, title="Brakes")
    open_controlled(page, live_server.url + "/accounts/login/")
    sign_in(page, owner)
    page.goto(live_server.url + f"/c/{chat.pk}/")
    page.evaluate(
        with_queue(
            """async (chatId) => {
      const q = await QUEUE_MODULE;
      await q.queueQuestion(chatId, "How often are the brake pads replaced?");
    }"""
        ),
        str(chat.pk),
    )
    # Every page of the site closes; only a blank tab is left to drive the browser.
    blank = context.new_page()
    page.close()
    sync_questions(context, blank, live_server.url)
    deadline = time.monotonic() + 20
    question = Message.objects.filter(
        chat=chat, role="user", content="How often are the brake pads replaced?"
    )
    while not question.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert question.count() == 1
    # Sent as its author, into their chat, and gone from the queue.
    again = context.new_page()
    again.goto(live_server.url + f"/c/{chat.pk}/")
    wait_until(
        again,
        with_queue("async () => (await (await QUEUE_MODULE).pendingQuestions()).length === 0"),
    )
    assert not uncaught(page_errors)


def test_a_queued_question_is_never_sent_as_someone_else(
    live_server, context, page, owner, member, page_errors
):
    from chats.models import Message

    open_controlled(page, live_server.url + "/accounts/login/")
    sign_in(page, owner)
    page.goto(live_server.url + "/")
    # Queued while offline, so it is still waiting (online, Background Sync would send it
    # at once, rightly as its author) when the owner's session ends.
    context.set_offline(True)
    page.evaluate(
        with_queue(
            """async () => {
      const q = await QUEUE_MODULE;
      await q.queueQuestion(null, "Owner's private question");
    }"""
        )
    )
    assert (
        page.evaluate(
            with_queue("async () => (await (await QUEUE_MODULE).pendingQuestions()).length")
        )
        == 1
    )
    # The owner's session ends without a sign-out; someone else signs in and opens a chat.
    context.clear_cookies()
    context.set_offline(False)
    page.goto(live_server.url + "/accounts/login/")
    sign_in(page, member)
    page.goto(live_server.url + "/")
    wait_until(
        page,
        with_queue("async () => (await (await QUEUE_MODULE).pendingQuestions()).length === 0"),
    )
    assert not Message.objects.filter(content="Owner's private question").exists()
    assert not uncaught(page_errors)
