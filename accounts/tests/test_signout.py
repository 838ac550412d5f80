import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_it_signs_out_on_post(owner_client):
    response = owner_client.post(reverse("accounts:logout"))
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:login")
    home = owner_client.get(reverse("home"))
    assert home.status_code == 302
    assert home["Location"].startswith(reverse("accounts:login"))


def test_it_does_not_sign_out_on_get(owner_client):
    assert owner_client.get(reverse("accounts:logout")).status_code == 405
    assert owner_client.get(reverse("home")).status_code == 200
