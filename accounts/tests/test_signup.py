"""Sign-up by email confirmation: the same answer for every address, one email to it."""

import re

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from accounts.models import ApiToken, User
from conftest import PASSWORD

pytestmark = pytest.mark.django_db

URL = reverse("accounts:signup")
NEW = {"email": "New.Person@Example.com", "name": "New Person"}


def _link(message) -> str:
    return re.search(r"https?://\S+", message.body).group(0)


def test_it_emails_a_link_and_the_link_sets_the_password_and_signs_in(client):
    response = client.post(URL, NEW)
    assert response.status_code == 200
    assert "Check your email" in response.content.decode()
    user = User.objects.get()
    assert user.email == "new.person@example.com" and user.name == "New Person"
    assert not user.is_active and not user.has_usable_password()
    # Nobody can sign in to a pending account.
    assert "_auth_user_id" not in client.session
    (message,) = mail.outbox
    assert message.to == ["new.person@example.com"]
    page = client.get(_link(message), follow=True)
    assert page.status_code == 200 and "Choose your password" in page.content.decode()
    done = client.post(
        page.redirect_chain[-1][0],
        {
            "new_password1": "a long enough passphrase 9",
            "new_password2": "a long enough passphrase 9",
        },
    )
    assert done.status_code == 302 and done["Location"] == reverse("home")
    user.refresh_from_db()
    assert user.is_active and user.password.startswith("argon2$")
    assert user.type == User.Type.REGULAR and not user.is_staff
    assert client.get(reverse("home")).status_code == 200
    # The link is spent.
    again = Client().get(_link(message), follow=True)
    assert "This link is not valid any more" in again.content.decode()


def test_the_answer_does_not_tell_whether_an_address_has_an_account(client, owner):
    new = client.post(URL, NEW)
    existing = Client().post(URL, {"email": "OWNER@example.com", "name": "x"})
    assert new.status_code == existing.status_code == 200

    def page(response, email):
        return response.content.decode().replace(email, "ADDRESS")

    # Per-response secrets (CSRF tokens, CSP nonces) differ; nothing else may.
    strip = re.compile(r'(value|content|nonce)="[A-Za-z0-9+/=]{20,}"')
    assert strip.sub("", page(new, "new.person@example.com")) == strip.sub(
        "", page(existing, "owner@example.com")
    )
    # The owner gets a note, not a link that would change their account.
    note = next(m for m in mail.outbox if m.to == ["owner@example.com"])
    assert "already has an\naccount" in note.body
    assert "/signup/confirm/" not in note.body
    owner.refresh_from_db()
    assert owner.is_active and owner.check_password(PASSWORD)
    assert User.objects.count() == 2


def test_signing_up_again_before_confirming_sends_a_fresh_link(client):
    client.post(URL, NEW)
    client.post(URL, NEW)
    assert User.objects.count() == 1
    assert [m.to for m in mail.outbox] == [["new.person@example.com"]] * 2
    assert "/signup/confirm/" in mail.outbox[1].body


def test_a_password_reset_link_is_not_a_sign_up_link(client, owner):
    from django.contrib.auth.tokens import default_token_generator
    from django.utils.encoding import force_bytes
    from django.utils.http import urlsafe_base64_encode

    uid = urlsafe_base64_encode(force_bytes(owner.pk))
    url = reverse("accounts:signup_confirm", args=[uid, default_token_generator.make_token(owner)])
    assert "This link is not valid any more" in client.get(url, follow=True).content.decode()


def test_it_explains_a_bad_address_and_weak_passwords(client):
    response = client.post(URL, {"email": "not an address"})
    assert response.status_code == 400
    assert "Enter a valid email address." in response.content.decode()
    assert not User.objects.exists() and not mail.outbox
    client.post(URL, NEW)
    page = client.get(_link(mail.outbox[0]), follow=True)
    response = client.post(
        page.redirect_chain[-1][0], {"new_password1": "12345678", "new_password2": "12345678"}
    )
    body = response.content.decode()
    assert "too short" in body and "entirely numeric" in body
    assert not User.objects.get().is_active


def test_it_says_when_the_email_could_not_be_sent(client, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 1, 1
    response = client.post(URL, NEW)
    assert response.status_code == 503
    assert "could not send the email" in response.content.decode()


def test_sign_up_is_rate_limited_per_address_and_per_email(client, settings):
    settings.SIGNUP_RATE = "3/h"
    for n in range(3):
        assert (
            client.post(URL, {"email": f"p{n}@example.com"}, REMOTE_ADDR="192.0.2.5").status_code
            == 200
        )
    response = client.post(URL, {"email": "p9@example.com"}, REMOTE_ADDR="192.0.2.5")
    assert response.status_code == 429 and int(response["Retry-After"]) > 0
    assert "Too many sign-up attempts" in response.content.decode()
    # One inbox cannot be flooded from many addresses either.
    for n in range(3):
        Client().post(URL, {"email": "victim@example.com"}, REMOTE_ADDR=f"198.51.100.{n}")
    flood = Client().post(URL, {"email": "victim@example.com"}, REMOTE_ADDR="198.51.100.9")
    assert flood.status_code == 429
    assert len([m for m in mail.outbox if m.to == ["victim@example.com"]]) == 3


def test_it_is_closed_when_signup_is_disabled(client, settings):
    settings.SIGNUP_ENABLED = False
    response = client.get(URL)
    assert response.status_code == 404
    assert "Sign-up is closed" in response.content.decode()
    assert client.post(URL, NEW).status_code == 404
    assert not User.objects.exists()
    assert reverse("accounts:signup") not in client.get(reverse("accounts:login")).content.decode()


def test_tokens_do_not_survive_the_pending_state(client):
    # A pending account has no way in: no password, no token, no session.
    client.post(URL, NEW)
    user = User.objects.get()
    assert not ApiToken.objects.filter(user=user).exists()
    assert (
        Client()
        .post(reverse("accounts:login"), {"username": user.email, "password": ""})
        .status_code
        == 200
    )
