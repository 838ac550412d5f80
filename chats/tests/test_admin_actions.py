"""Admin actions on chats, posted through the changelist."""

import pytest
from django.contrib.admin import helpers
from django.test import Client

from chats.models import Chat

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("redis_url")]


def test_making_chats_private_closes_their_public_links(client, admin_user, owner):
    shared = Chat.objects.create(owner=owner, title="shared", visibility=Chat.Visibility.PUBLIC)
    other = Chat.objects.create(owner=owner, title="other", visibility=Chat.Visibility.PUBLIC)
    anonymous = Client()
    assert anonymous.get(f"/api/chats/{shared.pk}").status_code == 200  # now cached

    client.force_login(admin_user)
    page = client.post(
        "/admin/chats/chat/",
        {"action": "make_private", helpers.ACTION_CHECKBOX_NAME: [shared.pk]},
        follow=True,
    )
    assert "1 chat made private." in page.content.decode()
    assert Chat.objects.get(pk=shared.pk).visibility == Chat.Visibility.PRIVATE
    assert anonymous.get(f"/api/chats/{shared.pk}").status_code in (401, 404)
    # The owner still has it; the other chat keeps its link.
    owner_browser = Client()
    owner_browser.force_login(owner)
    assert owner_browser.get(f"/api/chats/{shared.pk}").status_code == 200
    assert anonymous.get(f"/api/chats/{other.pk}").status_code == 200
