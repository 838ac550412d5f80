"""Admin actions on users and API tokens, posted through the changelist like a person would."""

import pytest
from django.contrib.admin import helpers
from django.test import Client

from accounts.models import ApiToken, User

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("redis_url")]

USERS = "/admin/accounts/user/"


def _act(client, url, action, objects):
    return client.post(
        url,
        {"action": action, helpers.ACTION_CHECKBOX_NAME: [o.pk for o in objects]},
        follow=True,
    )


@pytest.fixture
def admin_client_(client, admin_user):
    client.force_login(admin_user)
    return client


def _signed_in(user) -> Client:
    browser = Client()
    browser.force_login(user)
    assert browser.get("/api/me").status_code == 200
    return browser


def test_deactivating_signs_users_out_and_revokes_their_tokens(admin_client_, owner, member):
    owner_browser = _signed_in(owner)  # its user is now in the query cache
    _, raw = ApiToken.issue(user=owner, name="script")
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    assert Client().get("/api/me", **bearer).status_code == 200
    member_browser = _signed_in(member)

    page = _act(admin_client_, USERS, "deactivate", [owner])
    assert page.status_code == 200
    assert "1 user deactivated, 1 API token(s) revoked." in page.content.decode()

    owner.refresh_from_db()
    assert not owner.is_active
    assert not ApiToken.objects.active().filter(user=owner).exists()
    assert owner_browser.get("/api/me").status_code in (401, 403)
    assert Client().get("/api/me", **bearer).status_code == 401
    # Nobody else was touched.
    assert member_browser.get("/api/me").status_code == 200

    _act(admin_client_, USERS, "reactivate", [owner])
    owner.refresh_from_db()
    assert owner.is_active


def test_an_admin_cannot_deactivate_themselves(admin_client_, admin_user, owner):
    page = _act(admin_client_, USERS, "deactivate", [admin_user, owner])
    assert "You cannot deactivate yourself." in page.content.decode()
    assert User.objects.get(pk=admin_user.pk).is_active
    assert not User.objects.get(pk=owner.pk).is_active


def test_revoking_tokens_leaves_the_account_active(admin_client_, owner, member):
    _, raw = ApiToken.issue(user=owner, name="a")
    ApiToken.issue(user=owner, name="b")
    _, kept = ApiToken.issue(user=member, name="c")
    page = _act(admin_client_, USERS, "revoke_api_tokens", [owner])
    assert "2 API token(s) revoked." in page.content.decode()
    assert Client().get("/api/me", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 401
    assert Client().get("/api/me", HTTP_AUTHORIZATION=f"Bearer {kept}").status_code == 200
    assert User.objects.get(pk=owner.pk).is_active


def test_tokens_can_be_revoked_from_their_own_changelist(admin_client_, owner):
    token, raw = ApiToken.issue(user=owner, name="a")
    _act(admin_client_, "/admin/accounts/apitoken/", "revoke", [token])
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert Client().get("/api/me", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 401
