import pytest

from accounts.models import User
from conftest import PASSWORD

pytestmark = pytest.mark.django_db


def test_admins_can_use_django_admin(client, admin_user, owner):
    assert admin_user.is_staff and admin_user.type == User.Type.ADMIN
    client.force_login(admin_user)
    assert client.get("/admin/").status_code == 200
    listing = client.get("/admin/accounts/user/")
    assert listing.status_code == 200
    assert owner.email in listing.content.decode()
    assert client.get(f"/admin/accounts/user/{owner.pk}/change/").status_code == 200


def test_admins_can_add_a_user_in_admin(client, admin_user):
    client.force_login(admin_user)
    response = client.post(
        "/admin/accounts/user/add/",
        {
            "email": "Added@Example.com",
            "type": "regular",
            "password1": PASSWORD,
            "password2": PASSWORD,
            "usable_password": "true",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    user = User.objects.get(email="added@example.com")
    assert user.check_password(PASSWORD)


def test_regular_users_are_sent_to_the_admin_login(client, owner):
    client.force_login(owner)
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    assert client.get("/admin/accounts/user/").status_code == 302
