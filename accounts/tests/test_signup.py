import pytest
from django.urls import reverse

from accounts.models import User

pytestmark = pytest.mark.django_db

URL = reverse("accounts:signup")
GOOD = {
    "email": "New.Person@Example.com",
    "name": "New Person",
    "password1": "a long enough passphrase 9",
    "password2": "a long enough passphrase 9",
}


def test_it_creates_the_account_signs_in_and_hashes_with_argon2(client):
    response = client.post(URL, GOOD)
    assert response.status_code == 302
    assert response["Location"] == reverse("home")
    user = User.objects.get()
    assert user.email == "new.person@example.com"
    assert user.type == User.Type.REGULAR
    assert not user.is_staff
    assert user.password.startswith("argon2$")
    assert client.get(reverse("home")).status_code == 200


def test_it_refuses_an_email_that_exists_in_another_case(client, owner):
    response = client.post(URL, {**GOOD, "email": "OWNER@example.com"})
    assert response.status_code == 200
    assert "An account with this email already exists" in response.content.decode()
    assert User.objects.count() == 1


def test_it_explains_mismatched_and_weak_passwords(client):
    response = client.post(URL, {**GOOD, "password2": "something else entirely"})
    assert "The two password fields didn’t match." in response.content.decode()
    response = client.post(URL, {**GOOD, "password1": "12345678", "password2": "12345678"})
    body = response.content.decode()
    assert "too short" in body and "entirely numeric" in body
    assert not User.objects.exists()


def test_it_is_closed_when_signup_is_disabled(client, settings):
    settings.SIGNUP_ENABLED = False
    response = client.get(URL)
    assert response.status_code == 404
    assert "Sign-up is closed" in response.content.decode()
    assert client.post(URL, GOOD).status_code == 404
    assert not User.objects.exists()
    assert reverse("accounts:signup") not in client.get(reverse("accounts:login")).content.decode()
