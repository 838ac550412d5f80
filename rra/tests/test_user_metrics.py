"""User actions and conversions on /metrics, read after doing them through the site; answer
streams kept out of the request-latency histogram."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from prometheus_client.parser import text_string_to_metric_families

from chats.models import Chat, Message
from chats.tests.conftest import events
from rra.tests.test_metrics import fake_openai  # noqa: F401 - the fixture

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("redis_url")]


def scrape() -> dict[tuple[str, tuple], float]:
    """Every sample of a real scrape of /metrics (the test client is loopback)."""
    response = Client().get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


class Scraped:
    """Differences of counters between a scrape now and one later."""

    def __init__(self) -> None:
        self.before = scrape()
        self.after: dict = {}

    def again(self) -> Scraped:
        self.after = scrape()
        return self

    def delta(self, name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return self.after.get(key, 0.0) - self.before.get(key, 0.0)

    def action(self, action: str) -> float:
        return self.delta("rra_user_actions_total", action=action)

    def step(self, step: str) -> float:
        return self.delta("rra_conversions_total", step=step)


def test_sign_ups_are_counted_when_requested_and_when_confirmed(client, owner):
    seen = Scraped()
    client.post(reverse("accounts:signup"), {"email": "new@example.com", "name": "N"})
    # An address that has an account already is no new sign-up.
    Client().post(reverse("accounts:signup"), {"email": owner.email, "name": "x"})
    assert seen.again().step("signup_requested") == 1
    assert seen.step("signup") == 0

    link = re.search(r"https?://\S+", mail.outbox[0].body).group(0)
    page = client.get(link, follow=True)
    password = "a long enough passphrase 9"
    done = client.post(
        page.redirect_chain[-1][0], {"new_password1": password, "new_password2": password}
    )
    assert done.status_code == 302
    assert seen.again().step("signup") == 1


def test_uploads_count_each_new_document_and_the_first_once(owner_client, member, media):
    seen = Scraped()
    files = [SimpleUploadedFile(f"m{i}.txt", f"Manual {i}.\n".encode()) for i in range(2)]
    assert owner_client.post("/api/documents", {"files": files}).status_code == 201
    # The same file again is no new document.
    again = SimpleUploadedFile("m0.txt", b"Manual 0.\n")
    owner_client.post("/api/documents", {"files": [again]})
    shared = SimpleUploadedFile("s.txt", b"Shared manual.\n")
    owner_client.post("/api/documents", {"files": [shared], "visibility": "shared"})
    other = Client()
    other.force_login(member)
    other.post("/api/documents", {"files": [SimpleUploadedFile("x.txt", b"Mine.\n")]})

    seen.again()
    assert seen.action("upload") == 4
    assert seen.step("first_upload") == 2  # owner's and member's
    assert seen.action("share_document") == 1


@pytest.mark.usefixtures("fake_openai")
def test_questions_count_and_the_first_is_found_in_the_database(owner, owner_client):
    seen = Scraped()
    first, second = Chat.objects.create(owner=owner), Chat.objects.create(owner=owner)
    for chat in (first, second, first):
        response = owner_client.post(
            f"/api/chats/{chat.pk}/messages",
            {"question": "How do I level the chuck?"},
            content_type="application/json",
        )
        assert events(response)[-1][0] == "done"
    seen.again()
    assert Message.objects.filter(role=Message.Role.USER).count() == 3
    assert seen.action("question") == 3
    assert seen.step("first_question") == 1

    # The answer streams were timed apart from the request-latency histogram.
    view = {"view": "api:chat-messages"}
    assert seen.delta("rra_http_stream_duration_seconds_count", status="200", **view) == 3
    assert seen.delta("rra_http_requests_total", method="POST", status="200", **view) == 3
    assert (
        seen.delta("rra_http_request_duration_seconds_count", method="POST", status="200", **view)
        == 0
    )


def test_votes_and_shares_are_counted_once_per_change(owner, owner_client, member):
    chat = Chat.objects.create(owner=owner)
    Message.objects.create(chat=chat, role=Message.Role.USER, content="q")
    answer = Message.objects.create(chat=chat, role=Message.Role.ASSISTANT, content="a")
    seen = Scraped()

    vote = f"/api/messages/{answer.pk}/vote"
    for value in ("up", "up", "down"):
        response = owner_client.put(vote, {"value": value}, content_type="application/json")
        assert response.status_code == 200
    for visibility in ("public", "public"):
        owner_client.patch(
            f"/api/chats/{chat.pk}", {"visibility": visibility}, content_type="application/json"
        )

    seen.again()
    assert seen.action("vote_up") == 1  # the same vote twice counts once
    assert seen.action("vote_down") == 1
    assert seen.action("share_chat") == 1
