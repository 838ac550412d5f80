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
