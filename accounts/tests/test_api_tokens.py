import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import ApiToken

pytestmark = pytest.mark.django_db


def _bearer(raw):
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def test_it_creates_a_token_shown_once_and_stores_only_its_hash(owner_client, owner):
    response = owner_client.post("/api/tokens", {"name": "laptop"}, content_type="application/json")
    assert response.status_code == 201
    raw = response.json()["token"]
    assert raw.startswith("rra_") and len(raw) > 40
    token = ApiToken.objects.get()
    assert token.user == owner and token.name == "laptop"
    assert raw not in token.key_hash
    listing = owner_client.get("/api/tokens").json()["results"]
    assert [t["name"] for t in listing] == ["laptop"]
    assert "token" not in listing[0]


def test_a_token_authenticates_api_calls_and_records_last_use(client, owner):
    token, raw = ApiToken.issue(user=owner, name="ci")
    response = client.get("/api/me", **_bearer(raw))
    assert response.status_code == 200
    assert response.json()["email"] == owner.email
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_a_revoked_token_no_longer_works(client, owner):
    token, raw = ApiToken.issue(user=owner, name="old")
    assert client.delete(f"/api/tokens/{token.pk}", **_bearer(raw)).status_code == 204
    response = client.get("/api/me", **_bearer(raw))
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "Invalid or revoked API token."
    assert response["WWW-Authenticate"] == "Bearer"


def test_nobody_else_can_revoke_my_token(client, owner, outsider):
    token, _ = ApiToken.issue(user=owner, name="mine")
    client.force_login(outsider)
    response = client.delete(f"/api/tokens/{token.pk}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    token.refresh_from_db()
    assert token.is_active


def test_errors_share_one_json_shape(owner_client):
    anonymous = Client().get("/api/me")
    assert anonymous.status_code in (401, 403)
    assert anonymous.json()["error"]["code"] == "not_authenticated"
    invalid = owner_client.post("/api/tokens", {"name": ""}, content_type="application/json")
    assert invalid.status_code == 400
    assert invalid.json()["error"]["fields"]["name"] == ["This field may not be blank."]
    missing = owner_client.get("/api/nothing-here")
    assert missing.status_code == 404
    assert missing.json() == {
        "error": {"status": 404, "code": "not_found", "message": "Not found."}
    }
    bad_header = Client().get("/api/me", HTTP_AUTHORIZATION="Bearer a b")
    assert bad_header.status_code == 401


def test_the_profile_page_creates_lists_and_revokes_tokens(owner_client, owner):
    response = owner_client.post(reverse("accounts:profile"), {"name": "script"})
    assert response.status_code == 201
    raw = response.context["new_token"]
    assert raw in response.content.decode()
    token = ApiToken.objects.get(user=owner)
    page = owner_client.get(reverse("accounts:profile")).content.decode()
    assert "script" in page and raw not in page
    owner_client.post(reverse("accounts:revoke_token", args=[token.pk]))
    token.refresh_from_db()
    assert not token.is_active
    assert owner_client.get("/api/me", **_bearer(raw)).status_code == 401


def test_the_profile_form_explains_a_missing_name(owner_client):
    response = owner_client.post(reverse("accounts:profile"), {"name": ""})
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()


def test_a_token_cannot_mint_tokens(client, owner):
    _token, raw = ApiToken.issue(user=owner, name="ci")
    response = client.post(
        "/api/tokens", {"name": "heir"}, content_type="application/json", **_bearer(raw)
    )
    assert response.status_code == 403
    assert "API tokens cannot create tokens" in response.json()["error"]["message"]
    assert ApiToken.objects.count() == 1


def test_a_token_can_expire(owner_client, owner):
    from datetime import timedelta

    from django.utils import timezone

    response = owner_client.post(
        "/api/tokens", {"name": "week", "expires_in_days": 7}, content_type="application/json"
    )
    assert response.status_code == 201
    body = response.json()
    assert body["expires_at"] is not None
    raw = body["token"]
    assert Client().get("/api/me", **_bearer(raw)).status_code == 200  # cached now
    ApiToken.objects.filter(name="week").update(expires_at=timezone.now() - timedelta(seconds=1))
    failed = Client().get("/api/me", **_bearer(raw))
    assert failed.status_code == 401
    assert owner_client.get("/api/tokens").json()["results"] == []
    bad = owner_client.post(
        "/api/tokens", {"name": "x", "expires_in_days": 0}, content_type="application/json"
    )
    assert bad.status_code == 400 and "expires_in_days" in bad.json()["error"]["fields"]


def test_an_expired_token_is_refused_even_from_the_cache(client, owner, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    _token, raw = ApiToken.issue(
        user=owner, name="short", expires_at=timezone.now() + timedelta(hours=1)
    )
    assert client.get("/api/me", **_bearer(raw)).status_code == 200  # cached now
    # Two hours pass, with no write that would invalidate the cached token.
    later = timezone.now() + timedelta(hours=2)
    monkeypatch.setattr(timezone, "now", lambda: later)
    assert client.get("/api/me", **_bearer(raw)).status_code == 401


def test_the_token_list_comes_in_pages(owner_client, owner, outsider, settings):
    settings.TOKENS_PER_PAGE = 20
    for n in range(43):
        ApiToken.issue(user=owner, name=f"runner {n}")
    ApiToken.issue(user=outsider, name="not mine")
    first = owner_client.get("/api/tokens")
    assert first.status_code == 200
    body = first.json()
    assert body["count"] == 43 and len(body["results"]) == 20
    assert body["results"][0]["name"] == "runner 42"  # newest first
    second = owner_client.get(body["next"]).json()
    last = owner_client.get(second["next"]).json()
    assert [t["name"] for t in last["results"]] == ["runner 2", "runner 1", "runner 0"]
    assert last["next"] is None
    assert owner_client.get("/api/tokens?page=9").status_code == 404
