import pytest

from documents.models import Chunk, Document
from documents.tests.conftest import make_document

pytestmark = pytest.mark.django_db


def test_admins_filter_search_and_see_counts(client, admin_user, owner, media):
    ready = make_document(owner, name="ready-guide.md", content=b"r", status="ready")
    make_document(owner, name="broken.md", content=b"b", status="failed")
    for i in range(3):
        Chunk.objects.create(
            document=ready,
            index=i,
            first_page=1,
            last_page=1,
            content="c",
            token_count=1,
            start_offset=0,
            end_offset=1,
        )
    client.force_login(admin_user)
    listing = client.get("/admin/documents/document/?status__exact=ready").content.decode()
    assert "ready-guide.md" in listing and "broken.md" not in listing
    assert (
        client.get("/admin/documents/document/?q=broken").content.decode().count("broken.md") >= 1
    )
    detail = client.get(f"/admin/documents/document/{ready.pk}/change/")
    assert detail.status_code == 200
    assert detail.content.decode().count('class="field-content"') >= 3  # read-only chunk inline


def test_admin_actions_reprocess_and_delete(
    client, admin_user, owner, media, django_capture_on_commit_callbacks
):
    a = make_document(owner, name="a.md", content=b"a", status="failed")
    b = make_document(owner, name="b.md", content=b"b", status="ready")
    client.force_login(admin_user)
    client.post("/admin/documents/document/", {"action": "reprocess", "_selected_action": [a.pk]})
    a.refresh_from_db()
    assert a.status == "queued"
    path = b.file.path
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            "/admin/documents/document/",
            {"action": "delete_with_files", "_selected_action": [b.pk]},
        )
    assert list(Document.objects.values_list("name", flat=True)) == ["a.md"]
    import os

    assert not os.path.exists(path)


def test_regular_users_cannot_open_document_admin(client, owner):
    client.force_login(owner)
    assert client.get("/admin/documents/document/").status_code == 302
