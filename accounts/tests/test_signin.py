import pytest
from django.test import Client
from django.urls import reverse

from conftest import PASSWORD

pytestmark = pytest.mark.django_db

URL = reverse("accounts:login")


def _attempt(client, email, password, ip="203.0.113.7", **extra):
    return client.post(URL, {"username": email, "password": password}, REMOTE_ADDR=ip, **extra)


def test_it_signs_in_with_email_in_any_case(client, owner):
    response = _attempt(client, "Owner@Example.COM", PASSWORD)
    assert response.status_code == 302
    assert response["Location"] == reverse("home")
    assert client.get(reverse("home")).context["user"] == owner


def test_it_says_what_went_wrong_on_a_wrong_password(client, owner):
    response = _attempt(client, owner.email, "wrong password")
    assert response.status_code == 200
    assert "That email and password do not match an account" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_it_rate_limits_failed_attempts_with_retry_after(client, owner):
    for _ in range(5):
        assert _attempt(client, owner.email, "wrong").status_code == 200
    response = _attempt(client, owner.email, "wrong")
    assert response.status_code == 429
    retry_after = int(response["Retry-After"])
    assert 0 < retry_after <= 15 * 60
    assert "Too many failed sign-in attempts" in response.content.decode()
    # Even the right password waits for the window: the limit cannot be probed.
    assert _attempt(client, owner.email, PASSWORD).status_code == 429


def test_a_stranger_cannot_lock_the_owner_out_from_another_address(client, owner):
    for _ in range(8):
        _attempt(client, owner.email, "wrong", ip="198.51.100.66")
    assert _attempt(client, owner.email, "wrong", ip="198.51.100.66").status_code == 429
    # The owner, from their own address, still signs in.
    assert _attempt(Client(), owner.email, PASSWORD, ip="203.0.113.50").status_code == 302


def test_one_account_has_a_ceiling_across_many_addresses(client, owner, settings):
    settings.LOGIN_ACCOUNT_RATE = "12/h"
    for n in range(12):
        assert _attempt(client, owner.email, "wrong", ip=f"198.51.100.{n}").status_code == 200
    response = _attempt(client, owner.email, PASSWORD, ip="198.51.100.99")
    assert response.status_code == 429
    assert "Too many failed sign-in attempts" in response.content.decode()


def test_it_limits_one_ip_across_many_accounts(client, owner, member, settings):
    settings.LOGIN_IP_RATE = "6/15m"
    for n in range(6):
        _attempt(client, f"nobody{n}@example.com", "wrong", ip="192.0.2.1")
    assert _attempt(client, member.email, PASSWORD, ip="192.0.2.1").status_code == 429
    # The account owner on another address is not locked out by that IP's failures.
    assert _attempt(client, member.email, PASSWORD, ip="192.0.2.2").status_code == 302


def test_django_admin_sign_in_is_limited_like_the_site(client, admin_user):
    url = reverse("admin:login")
    for _ in range(5):
        response = client.post(
            url, {"username": admin_user.email, "password": "wrong"}, REMOTE_ADDR="203.0.113.9"
        )
        assert response.status_code == 200
    right = {"username": admin_user.email, "password": PASSWORD}
    response = client.post(url, right, REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert "_auth_user_id" not in client.session
    # Failures on the admin's sign-in count on the site's too: one limiter.
    assert _attempt(client, admin_user.email, PASSWORD, ip="203.0.113.9").status_code == 429


def test_every_authenticate_call_is_refused_while_limited(rf, owner):
    from django.contrib.auth import authenticate

    request = rf.post("/", REMOTE_ADDR="203.0.113.77")
    for _ in range(5):
        assert authenticate(request, username=owner.email, password="wrong") is None
    assert authenticate(request, username=owner.email, password=PASSWORD) is None
    other = rf.post("/", REMOTE_ADDR="203.0.113.78")
    assert authenticate(other, username=owner.email, password=PASSWORD) == owner


def test_a_forged_forwarded_header_does_not_escape_the_limit(client, owner, settings):
    settings.LOGIN_IP_RATE = "5/15m"
    for n in range(6):
        response = _attempt(
            client, f"x{n}@example.com", "wrong", HTTP_X_FORWARDED_FOR=f"10.9.8.{n}"
        )
    assert response.status_code == 429


def test_successful_sign_ins_do_not_count(client, owner):
    for _ in range(7):
        assert _attempt(client, owner.email, PASSWORD).status_code == 302
        client.post(reverse("accounts:logout"))


def test_it_fails_closed_with_503_when_the_limit_store_is_down(client, owner, settings, redis_url):
    settings.CACHES = {
        **settings.CACHES,
        "ratelimit": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
        },
    }
    response = _attempt(client, owner.email, PASSWORD)
    assert response.status_code == 503
    assert response["Retry-After"] == "60"
    assert "Sign-in is temporarily unavailable" in response.content.decode()
