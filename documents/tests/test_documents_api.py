from datetime import timedelta

import pytest
from django.utils import timezone

from documents.models import Chunk, Document, Embedding
from documents.tests.conftest import make_document

pytestmark = pytest.mark.django_db


def _with_chunk(document):
    chunk = Chunk.objects.create(
        document=document,
        index=0,
        first_page=1,
        last_page=1,
        content="x",
        token_count=1,
        start_offset=0,
        end_offset=1,
    )
    Embedding.objects.create(chunk=chunk, model="test/model", vector=[0.1, 0.2, 0.3])
    return chunk


def test_the_list_is_newest_first_and_paginated(owner_client, owner, media):
    docs = [make_document(owner, name=f"m{n}.md", content=f"m{n}".encode()) for n in range(3)]
    now = timezone.now()
    for n, doc in enumerate(docs):
        Document.objects.filter(pk=doc.pk).update(created_at=now - timedelta(minutes=10 - n))
    body = owner_client.get("/api/documents?page_size=2").json()
    assert [r["name"] for r in body["results"]] == ["m2.md", "m1.md"]
    assert body["next"]
    rest = owner_client.get(body["next"]).json()
    assert [r["name"] for r in rest["results"]] == ["m0.md"]


def test_the_list_filters_by_status_and_rejects_unknown_ones(owner_client, owner, media):
    make_document(owner, name="a.md", content=b"a", status=Document.Status.READY)
    make_document(owner, name="b.md", content=b"b", status=Document.Status.FAILED)
    body = owner_client.get("/api/documents?status=ready").json()
    assert [r["name"] for r in body["results"]] == ["a.md"]
    bad = owner_client.get("/api/documents?status=nope")
    assert bad.status_code == 400
    assert "status" in bad.json()["error"]["fields"]


def test_others_see_shared_documents_but_never_private_ones(client, owner, outsider, media):
    private = make_document(owner, name="private.md", content=b"p")
    shared = make_document(
        owner, name="shared.md", content=b"s", visibility=Document.Visibility.SHARED
    )
    client.force_login(outsider)
    names = [r["name"] for r in client.get("/api/documents").json()["results"]]
    assert names == ["shared.md"]
    assert client.get(f"/api/documents/{private.pk}").status_code == 404
    assert client.delete(f"/api/documents/{private.pk}").status_code == 404
    assert client.get(f"/api/documents/{shared.pk}").json()["is_owner"] is False
    forbidden = client.delete(f"/api/documents/{shared.pk}")
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["message"] == "Only the owner can change this document."
    assert client.post(f"/api/documents/{shared.pk}/reprocess").status_code == 403
    assert Document.objects.count() == 2


def test_the_detail_shows_progress_and_an_eta_while_processing(owner_client, owner, media):
    document = make_document(owner)
    Document.objects.filter(pk=document.pk).update(
        status=Document.Status.EMBEDDING,
        processing_started_at=timezone.now() - timedelta(seconds=50),
        pages_done=10,
        pages_total=10,
        chunks_embedded=20,
        chunks_total=40,
    )
    body = owner_client.get(f"/api/documents/{document.pk}").json()
    assert body["status"] == "embedding"
    progress = body["progress"]
    assert progress["fraction"] == pytest.approx(0.65)
    assert progress["chunks_embedded"] == 20 and progress["chunks_total"] == 40
    assert progress["eta_seconds"] == pytest.approx(50 * 0.35 / 0.65, abs=1.5)
    # The rate so far: 20 passages in the 50 s since processing started.
    assert progress["rate_unit"] == "passages"
    assert progress["rate_per_second"] == pytest.approx(20 / 50, abs=0.02)


def test_the_rate_counts_pages_while_extracting_and_is_unknown_before_the_first(
    owner_client, owner, media
):
    document = make_document(owner)
    Document.objects.filter(pk=document.pk).update(
        status=Document.Status.EXTRACTING,
        processing_started_at=timezone.now() - timedelta(seconds=10),
        pages_done=0,
        pages_total=40,
    )
    progress = owner_client.get(f"/api/documents/{document.pk}").json()["progress"]
    assert progress["rate_per_second"] is None and progress["rate_unit"] is None
    Document.objects.filter(pk=document.pk).update(pages_done=30)
    progress = owner_client.get(f"/api/documents/{document.pk}").json()["progress"]
    assert progress["rate_unit"] == "pages"
    assert progress["rate_per_second"] == pytest.approx(3.0, abs=0.2)


def test_a_failed_document_shows_its_reason(owner_client, owner, media):
    document = make_document(
        owner, status=Document.Status.FAILED, failure_reason="The PDF is password protected."
    )
    body = owner_client.get(f"/api/documents/{document.pk}").json()
    assert body["failure_reason"] == "The PDF is password protected."
    assert body["progress"]["eta_seconds"] is None
    assert body["progress"]["rate_per_second"] is None


def test_delete_removes_the_file_chunks_and_embeddings(
    owner_client, owner, media, django_capture_on_commit_callbacks
):
    document = make_document(owner, status=Document.Status.READY)
    _with_chunk(document)
    path = document.file.path
    with django_capture_on_commit_callbacks(execute=True):
        assert owner_client.delete(f"/api/documents/{document.pk}").status_code == 204
    assert not Document.objects.exists()
    assert not Chunk.objects.exists() and not Embedding.objects.exists()
    import os

    assert not os.path.exists(path)


def test_reprocess_queues_the_document_again(
    owner_client, owner, media, django_capture_on_commit_callbacks
):
    from django_tasks_db.models import DBTaskResult

    document = make_document(owner, status=Document.Status.FAILED, failure_reason="x", attempts=5)
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(f"/api/documents/{document.pk}/reprocess")
    assert response.status_code == 202
    assert response.json()["status"] == "queued"
    document.refresh_from_db()
    assert document.attempts == 0 and document.failure_reason == ""
    assert DBTaskResult.objects.filter(args_kwargs__kwargs__document_id=document.pk).exists()


def test_owners_can_rename_and_share(owner_client, owner, media):
    document = make_document(owner)
    response = owner_client.patch(
        f"/api/documents/{document.pk}",
        {"name": "../Guide.md", "visibility": "shared", "status": "ready"},
        content_type="application/json",
    )
    assert response.status_code == 200
    document.refresh_from_db()
    assert document.name == "Guide.md"
    assert document.visibility == "shared"
    assert document.status == "queued"  # read-only field ignored
