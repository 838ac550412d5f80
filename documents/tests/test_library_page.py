import pytest
from django.urls import reverse

from documents.models import Document
from documents.tests.conftest import MANUAL_MD, make_document, upload_file

pytestmark = pytest.mark.django_db


def test_the_form_uploads_several_files_and_reports_each(owner_client, media):
    response = owner_client.post(
        reverse("documents:upload"),
        {
            "files": [
                upload_file("guide.md", MANUAL_MD),
                upload_file("photo.pdf", b"\x89PNG\r\n\x1a\n" + b"\x00" * 32),
            ],
            "visibility": "shared",
        },
        follow=True,
    )
    page = response.content.decode()
    assert "“guide.md” was uploaded and is being processed." in page
    assert "“photo.pdf” was not uploaded: This looks like a PNG image" in page
    document = Document.objects.get()
    assert document.name == "guide.md" and document.visibility == "shared"
    assert "guide.md" in page and "Queued" in page
    assert "js/library." in page  # statuses stay live through the API


def test_the_library_shows_progress_failures_and_only_readable_documents(
    client, owner, outsider, media
):
    make_document(
        owner,
        name="mine.md",
        content=b"a",
        status=Document.Status.FAILED,
        failure_reason="No text found (scanned document?).",
    )
    make_document(outsider, name="theirs.md", content=b"b")
    client.force_login(owner)
    page = client.get(reverse("documents:library")).content.decode()
    assert "mine.md" in page and "No text found (scanned document?)." in page
    assert "theirs.md" not in page


def test_delete_and_reprocess_buttons_work_for_owners_only(client, owner, outsider, media):
    shared = make_document(
        owner, name="shared.md", content=b"s", visibility="shared", status="ready"
    )
    client.force_login(outsider)
    assert client.post(reverse("documents:delete", args=[shared.pk])).status_code == 404
    client.force_login(owner)
    assert client.post(reverse("documents:reprocess", args=[shared.pk])).status_code == 302
    shared.refresh_from_db()
    assert shared.status == "queued"
    assert client.post(reverse("documents:delete", args=[shared.pk])).status_code == 302
    assert not Document.objects.exists()


def test_the_library_needs_sign_in(client):
    response = client.get(reverse("documents:library"))
    assert response.status_code == 302
