import pytest
from django.conf import settings
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_anonymous_visitors_are_sent_to_sign_in(client):
    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('accounts:login')}?next=/"


def test_the_base_template_has_the_basics(client):
    page = client.get(reverse("accounts:login")).content.decode()
    assert '<html lang="en">' in page
    assert 'name="viewport"' in page
    assert 'name="description"' in page
    assert "<title>Sign in · RRA</title>" in page
    assert 'href="#main"' in page and 'id="main"' in page


def test_the_home_page_is_the_chat_for_a_signed_in_user(owner_client):
    response = owner_client.get(reverse("home"))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Ask your manuals" in page and 'id="composer"' in page


def test_missing_pages_get_a_friendly_404(owner_client):
    response = owner_client.get("/no/such/page")
    assert response.status_code == 404
    assert "Page not found" in response.content.decode()


def test_static_files_are_hashed_and_precompressed(client):
    page = client.get(reverse("accounts:login")).content.decode()
    assert "/static/css/app." in page and ".css" in page
    css = sorted(settings.STATIC_ROOT.glob("css/app.*.css"))
    assert css, "collectstatic wrote no hashed app.css"
    assert css[0].with_name(css[0].name + ".gz").exists()
    assert css[0].with_name(css[0].name + ".br").exists()


def test_hashed_static_files_are_served_compressed_and_immutable(client):
    name = sorted(settings.STATIC_ROOT.glob("css/app.*.css"))[0].name
    response = client.get(f"/static/css/{name}", HTTP_ACCEPT_ENCODING="br, gzip")
    assert response.status_code == 200
    assert "immutable" in response["Cache-Control"]
    assert response["Content-Encoding"] == "br"
    assert "Accept-Encoding" in response["Vary"]
