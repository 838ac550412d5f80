"""Clear-Site-Data whenever the person behind a browser goes or changes."""

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse

from accounts.middleware import VIEWER_COOKIE, viewer_id
from conftest import PASSWORD

pytestmark = pytest.mark.django_db

CLEAR = '"cache", "storage"'


def _signed_in(user) -> Client:
    client = Client()
    assert (
        client.post(
            reverse("accounts:login"), {"username": user.email, "password": PASSWORD}
        ).status_code
        == 302
    )
    return client


def test_a_signed_in_browser_is_marked_with_an_opaque_viewer_id(owner, member):
    client = _signed_in(owner)
    value = client.cookies[VIEWER_COOKIE].value
    assert value == viewer_id(owner) != viewer_id(member)
    assert owner.email not in value and len(value) == 24
    # Readable by the service worker, unlike the session cookie.
    assert not client.cookies[VIEWER_COOKIE]["httponly"]
    assert "Clear-Site-Data" not in client.get(reverse("home"))


def test_the_viewer_id_is_the_hmac_of_the_user_under_the_secret_key(owner, member, settings):
    """Remembered per process (every signed-in request asks for it), by key and user."""
    import hashlib
    import hmac

    def expected() -> str:
        key, message = settings.SECRET_KEY.encode(), f"rra-viewer:{owner.pk}".encode()
        return hmac.new(key, message, hashlib.sha256).hexdigest()[:24]

    assert viewer_id(owner) == viewer_id(owner) == expected() != viewer_id(member)
    before = viewer_id(owner)
    settings.SECRET_KEY = "another-secret-key-of-at-least-fifty-characters-0123456789"
    assert viewer_id(owner) == expected() != before


def test_signing_out_on_the_site_clears_the_browser(owner):
    client = _signed_in(owner)
    response = client.post(reverse("accounts:logout"))
    assert response["Clear-Site-Data"] == CLEAR
    assert client.cookies[VIEWER_COOKIE].value == ""


def test_signing_out_through_django_admin_clears_the_browser(admin_user):
    client = _signed_in(admin_user)
    response = client.post(reverse("admin:logout"))
    assert response.status_code in (200, 302)
    assert "_auth_user_id" not in client.session
    assert response["Clear-Site-Data"] == CLEAR


def test_a_session_ended_on_the_server_clears_the_browser_on_its_next_request(owner):
    client = _signed_in(owner)
    Session.objects.all().delete()
    from django.core.cache import caches

    caches["default"].clear()  # the cached_db session store's copy, as on expiry
    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert response["Clear-Site-Data"] == CLEAR
    # Said once: the marker is gone, the next anonymous request is quiet.
    assert "Clear-Site-Data" not in client.get(reverse("accounts:login"))


def test_another_person_signing_in_on_the_same_browser_clears_it(owner, member):
    client = _signed_in(owner)
    client.cookies.pop("sessionid")
    response = client.post(
        reverse("accounts:login"), {"username": member.email, "password": PASSWORD}
    )
    assert response.status_code == 302
    assert response["Clear-Site-Data"] == CLEAR
    assert client.cookies[VIEWER_COOKIE].value == viewer_id(member)


def test_strangers_without_a_session_get_no_header(client):
    response = client.get(reverse("accounts:login"))
    assert "Clear-Site-Data" not in response
    assert VIEWER_COOKIE not in response.cookies
