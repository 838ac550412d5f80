"""Password reset by email: same answer for every address, limited, spends sessions and tokens."""

import re

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from accounts.models import ApiToken

pytestmark = pytest.mark.django_db

URL = reverse("accounts:password_reset")
NEW_PASSWORD = "another long passphrase 7"


def _link(message) -> str:
    return re.search(r"https?://\S+", message.body).group(0)


def test_a_reset_link_sets_a_new_password_and_ends_other_sessions_and_tokens(client, owner):
    other_session = Client()
    other_session.force_login(owner)
    _token, raw = ApiToken.issue(user=owner, name="script")
    assert Client().get("/api/me", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 200

    response = client.post(URL, {"email": "OWNER@example.com"})
    assert response.status_code == 302 and response["Location"] == reverse(
        "accounts:password_reset_done"
    )
    (message,) = mail.outbox
    assert message.to == [owner.email] and "reset the password" in message.body
    page = client.get(_link(message), follow=True)
    done = client.post(
        page.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    )
    assert done.status_code == 302 and done["Location"] == reverse("home")
    owner.refresh_from_db()
    assert owner.check_password(NEW_PASSWORD)
    assert client.get(reverse("home")).status_code == 200
    # Other sessions and every API token end with the old password.
    assert other_session.get(reverse("home")).status_code == 302
    assert Client().get("/api/me", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 401
    # The link is spent.
    assert "not valid any more" in Client().get(_link(message), follow=True).content.decode()


def test_unknown_and_known_addresses_get_the_same_answer(client, owner):
    known = client.post(URL, {"email": owner.email})
    unknown = Client().post(URL, {"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 302
    assert known["Location"] == unknown["Location"]
    assert [m.to for m in mail.outbox] == [[owner.email]]


def test_reset_requests_are_rate_limited(client, owner, settings):
    settings.PASSWORD_RESET_RATE = "2/h"
    for _ in range(2):
        assert client.post(URL, {"email": owner.email}, REMOTE_ADDR="192.0.2.8").status_code == 302
    response = client.post(URL, {"email": "someone@example.com"}, REMOTE_ADDR="192.0.2.8")
    assert response.status_code == 429 and int(response["Retry-After"]) > 0
    # And per address of the account, from anywhere.
    flood = Client().post(URL, {"email": owner.email}, REMOTE_ADDR="198.51.100.1")
    assert flood.status_code == 429
    assert len(mail.outbox) == 2


def test_the_sign_in_page_links_to_the_reset(client):
    assert URL in client.get(reverse("accounts:login")).content.decode()


def test_a_mail_server_outage_does_not_tell_which_addresses_exist(client, owner, settings, caplog):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 1, 1
    known = client.post(URL, {"email": owner.email})
    unknown = Client().post(URL, {"email": "nobody@example.com"})
    # Only the known address needs the mail server; the answers stay the same, and the
    # failure is logged for the operator.
    assert known.status_code == unknown.status_code == 302
    assert known["Location"] == unknown["Location"]
    assert "Failed to send password reset email" in caplog.text
