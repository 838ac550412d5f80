import pytest
from django.urls import reverse

from conftest import PASSWORD

pytestmark = pytest.mark.django_db

URL = reverse("accounts:password_change")
NEW = "a brand new passphrase 77"


def test_it_changes_the_password_and_keeps_the_session(owner_client, owner, client):
    response = owner_client.post(
        URL, {"old_password": PASSWORD, "new_password1": NEW, "new_password2": NEW}
    )
    assert response.status_code == 302
    assert owner_client.get(reverse("accounts:profile")).status_code == 200
    owner.refresh_from_db()
    assert owner.check_password(NEW)
    assert not owner.check_password(PASSWORD)


def test_it_explains_a_wrong_old_password(owner_client, owner):
    response = owner_client.post(
        URL, {"old_password": "not it", "new_password1": NEW, "new_password2": NEW}
    )
    assert response.status_code == 200
    assert "Your old password was entered incorrectly" in response.content.decode()
    owner.refresh_from_db()
    assert owner.check_password(PASSWORD)


def test_it_requires_sign_in(client):
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


def test_wrong_current_passwords_are_limited_per_account(owner_client, owner, settings):
    settings.PASSWORD_CHANGE_RATE = "3/15m"
    wrong = {"old_password": "not it", "new_password1": NEW, "new_password2": NEW}
    for _ in range(3):
        assert owner_client.post(URL, wrong).status_code == 200
    right = {"old_password": PASSWORD, "new_password1": NEW, "new_password2": NEW}
    response = owner_client.post(URL, right)
    assert response.status_code == 429 and int(response["Retry-After"]) > 0
    assert "Too many wrong current passwords" in response.content.decode()
    owner.refresh_from_db()
    assert owner.check_password(PASSWORD)


def test_changing_the_password_revokes_every_api_token(owner_client, owner):
    from django.test import Client

    from accounts.models import ApiToken

    _token, raw = ApiToken.issue(user=owner, name="script")
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    assert Client().get("/api/me", **bearer).status_code == 200  # now cached
    owner_client.post(URL, {"old_password": PASSWORD, "new_password1": NEW, "new_password2": NEW})
    assert Client().get("/api/me", **bearer).status_code == 401
    assert not ApiToken.objects.active().filter(user=owner).exists()


def test_a_hash_upgrade_on_sign_in_is_not_a_password_change(owner, settings):
    from accounts.models import ApiToken

    ApiToken.issue(user=owner, name="script")
    # Sign-in re-hashes with the current parameters through check_password's setter.
    owner.set_password(PASSWORD)
    owner._password = None
    owner.save()
    owner.check_password(PASSWORD)
    assert ApiToken.objects.active().filter(user=owner).count() == 1
