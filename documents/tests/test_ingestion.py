"""The ingestion pipeline end to end: real worker, real local model, real PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from documents.models import Chunk, Document, DocumentContent, Embedding
from documents.services import document_ingest, document_reprocess, documents_requeue_stale
from documents.tests import files
from documents.tests.conftest import MANUAL_MD, make_document, upload_file

LOCAL_MODEL = "local/multilingual-e5-small-q4"  # the default LOCAL_EMBEDDING_MODEL


def _upload(client, path: Path, capture):
    with capture(execute=True):
        response = client.post(
            "/api/documents", {"files": [upload_file(path.name, path.read_bytes())]}
        )
    assert response.status_code == 201, response.content
    return Document.objects.get(pk=response.json()["results"][0]["id"])


def _run_worker():
    call_command("worker", "--batch", "--no-startup-delay", "--no-reload", verbosity=0)


@pytest.mark.django_db(transaction=True)
def test_it_ingests_a_pdf_through_the_worker_with_page_numbers(
    owner_client, media, tmp_path, django_capture_on_commit_callbacks
):
    pdf = files.make_pdf(tmp_path / "RoboRail guide.pdf")
    document = _upload(owner_client, pdf, django_capture_on_commit_callbacks)
    _run_worker()
    document.refresh_from_db()
    assert document.status == Document.Status.READY, document.failure_reason
    assert document.pages_total == document.pages_done == len(files.DEFAULT_PDF_PAGES)
    assert document.chunks_total == document.chunks_embedded == document.chunks.count() > 0
    assert document.embedding_model == LOCAL_MODEL
    content = DocumentContent.objects.get(document=document)
    assert content.page_count == len(content.pages) == document.pages_total
    chunks = list(document.chunks.order_by("index"))
    assert [c.index for c in chunks] == list(range(len(chunks)))
    last = chunks[-1]
    assert last.first_page == last.last_page == len(files.DEFAULT_PDF_PAGES)
    assert "emergency button" in last.content
    assert "Troubleshooting" in last.section
    # Offsets point into the stored page text.
    page_text = content.pages[last.first_page - 1]
    assert "emergency button" in page_text[last.start_offset : last.end_offset]
    vectors = Embedding.objects.filter(chunk__document=document, model=LOCAL_MODEL)
    assert vectors.count() == len(chunks)
    assert len(vectors.first().vector) == 384


@pytest.mark.django_db(transaction=True)
def test_it_ingests_markdown_and_docx(
    owner_client, media, tmp_path, django_capture_on_commit_callbacks
):
    md = _upload(
        owner_client, files.make_markdown(tmp_path / "guide.md"), django_capture_on_commit_callbacks
    )
    docx = _upload(
        owner_client, files.make_docx(tmp_path / "guide.docx"), django_capture_on_commit_callbacks
    )
    _run_worker()
    for document in (md, docx):
        document.refresh_from_db()
        assert document.status == Document.Status.READY, document.failure_reason
        assert document.chunks.exists()
        assert all(c.first_page == 1 for c in document.chunks.all())
        assert any(c.section for c in document.chunks.all())


@pytest.mark.django_db
def test_a_rerun_replaces_chunks_and_embeddings(owner, media):
    document = make_document(owner, content=MANUAL_MD)
    assert document_ingest(document_id=document.pk) == "ready"
    first_ids = set(document.chunks.values_list("pk", flat=True))
    count = len(first_ids)
    document_reprocess(document=document)
    assert document_ingest(document_id=document.pk) == "ready"
    assert document.chunks.count() == count
    assert Embedding.objects.filter(chunk__document=document).count() == count
    assert first_ids.isdisjoint(document.chunks.values_list("pk", flat=True))
    assert DocumentContent.objects.filter(document=document).count() == 1


@pytest.mark.django_db
def test_a_document_is_claimed_once(owner, media):
    document = make_document(owner, content=MANUAL_MD)
    assert document_ingest(document_id=document.pk) == "ready"
    assert document_ingest(document_id=document.pk) == "skipped"  # a duplicate task
    assert document_ingest(document_id=987654321) == "skipped"  # deleted meanwhile


BAD_INPUTS = [
    (
        "truncated.pdf",
        lambda p: files.make_truncated_pdf(files.make_pdf(p)),
        "damaged or incomplete",
    ),
    ("locked.pdf", lambda p: files.make_pdf(p, encrypt_password="secret"), "password protected"),
    ("scan.pdf", files.make_image_pdf, "No text found (scanned document?)"),
    ("empty.pdf", files.make_empty_pdf, "has no pages"),
    ("bomb.pdf", files.make_pdf_content_bomb, "was stopped"),
    ("bomb.docx", files.make_zip_bomb_docx, "zip bomb"),
    ("laughs.docx", files.make_billion_laughs_docx, "entity declarations"),
    ("xxe.docx", files.make_xxe_docx, "entity declarations"),
]


@pytest.mark.django_db(transaction=True)
def test_bad_files_fail_with_a_reason_and_the_worker_keeps_going(
    owner_client, media, tmp_path, settings, django_capture_on_commit_callbacks
):
    settings.EXTRACTION_MEMORY_MB = 512
    settings.EXTRACTION_TIMEOUT_S = 20
    settings.UPLOAD_RATE = "100/m"
    bad = {}
    for name, make, reason in BAD_INPUTS:
        path = tmp_path / name
        make(path)
        bad[_upload(owner_client, path, django_capture_on_commit_callbacks).pk] = reason
    good = _upload(
        owner_client, files.make_markdown(tmp_path / "good.md"), django_capture_on_commit_callbacks
    )
    _run_worker()
    for document in Document.objects.filter(pk__in=bad):
        assert document.status == Document.Status.FAILED, document.name
        assert bad[document.pk] in document.failure_reason, (document.name, document.failure_reason)
        assert not document.chunks.exists()
        assert not DocumentContent.objects.filter(document=document).exists()
    good.refresh_from_db()
    assert good.status == Document.Status.READY


@pytest.mark.django_db
def test_a_50_mb_single_line_text_file_is_ingested_in_bounded_pieces(
    owner, media, tmp_path, settings
):
    settings.MAX_UPLOAD_SIZE_MB = 60
    path = files.make_single_line_text(tmp_path / "line.txt", size_mb=50)
    from documents.extraction import Limits, extract_file

    extraction = extract_file(
        path, "text/plain", limits=Limits(memory_mb=1024, timeout_s=120, max_chars=60 * 1024**2)
    )
    assert extraction.char_count == path.stat().st_size
    assert max(len(b.text) for b in extraction.blocks) <= 2000


@pytest.mark.django_db
def test_invalid_utf8_fails_with_the_byte_offset(owner, media, tmp_path):
    path = files.make_invalid_utf8(tmp_path / "bad.txt")
    document = make_document(
        owner, name="bad.txt", content=path.read_bytes(), mime_type="text/plain"
    )
    assert document_ingest(document_id=document.pk) == "failed"
    document.refresh_from_db()
    assert "not valid UTF-8" in document.failure_reason and "offset" in document.failure_reason


@pytest.fixture
def fake_openai(settings):
    from documents.embeddings import reset_providers
    from rra.testing.fakes import FakeOpenAI

    server = FakeOpenAI(dimensions=64).start()
    settings.EMBEDDINGS_PROVIDER = "openai"
    settings.EMBEDDINGS_BASE_URL = server.base_url
    settings.EMBEDDINGS_API_KEY = server.api_key
    settings.EMBEDDINGS_MODEL = "text-embedding-3-small"
    settings.EMBEDDINGS_TIMEOUT = 2
    settings.INGEST_RETRY_BASE_S = 30
    reset_providers()
    yield server
    server.stop()
    reset_providers()


@pytest.mark.django_db
def test_a_transient_embedding_error_retries_later_with_backoff(
    owner, media, fake_openai, django_capture_on_commit_callbacks
):
    from django_tasks_db.models import DBTaskResult

    document = make_document(owner, content=MANUAL_MD)
    fake_openai.fail_next(5, status=500)
    with django_capture_on_commit_callbacks(execute=True):
        assert document_ingest(document_id=document.pk) == "retrying"
    document.refresh_from_db()
    assert document.status == Document.Status.QUEUED
    assert document.attempts == 1
    assert "Retrying in" in document.failure_reason
    assert not document.chunks.exists()
    retry = DBTaskResult.objects.get(args_kwargs__kwargs__document_id=document.pk)
    assert retry.run_after > timezone.now() + timedelta(seconds=20)
    fake_openai.reset()
    assert document_ingest(document_id=document.pk) == "ready"
    document.refresh_from_db()
    assert document.embedding_model == "openai/text-embedding-3-small"
    assert len(Embedding.objects.filter(chunk__document=document).first().vector) == 64


@pytest.mark.django_db
def test_it_gives_up_after_the_last_attempt(owner, media, fake_openai, settings):
    settings.INGEST_MAX_ATTEMPTS = 1
    document = make_document(owner, content=MANUAL_MD)
    fake_openai.fail_next(5, status=503)
    assert document_ingest(document_id=document.pk) == "failed"
    document.refresh_from_db()
    assert "gave up after 1 attempts" in document.failure_reason


@pytest.mark.django_db
def test_a_rejected_key_fails_at_once(owner, media, fake_openai, settings):
    settings.EMBEDDINGS_API_KEY = "wrong"
    from documents.embeddings import reset_providers

    reset_providers()
    document = make_document(owner, content=MANUAL_MD)
    assert document_ingest(document_id=document.pk) == "failed"
    document.refresh_from_db()
    assert document.failure_reason.startswith("The embedding service refused the document")
    assert document.attempts == 1


@pytest.mark.django_db
def test_stale_work_is_requeued_and_a_poison_document_does_not_loop(
    owner, media, settings, django_capture_on_commit_callbacks
):
    from django_tasks_db.models import DBTaskResult

    settings.INGEST_MAX_ATTEMPTS = 3
    old = timezone.now() - timedelta(seconds=settings.INGEST_STALE_AFTER_S + 5)
    stuck = make_document(
        owner, name="stuck.md", content=b"stuck", status="embedding", heartbeat_at=old, attempts=1
    )
    poison = make_document(
        owner,
        name="poison.md",
        content=b"poison",
        status="extracting",
        heartbeat_at=old,
        attempts=3,
    )
    fresh = make_document(
        owner,
        name="fresh.md",
        content=b"fresh",
        status="embedding",
        heartbeat_at=timezone.now(),
        attempts=1,
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert documents_requeue_stale() == {"requeued": 1, "failed": 1}
    stuck.refresh_from_db(), poison.refresh_from_db(), fresh.refresh_from_db()
    assert stuck.status == "queued"
    assert DBTaskResult.objects.filter(args_kwargs__kwargs__document_id=stuck.pk).exists()
    assert poison.status == "failed" and "stopped 3 times" in poison.failure_reason
    assert fresh.status == "embedding"
    # The re-queued document then completes normally.
    Document.objects.filter(pk=stuck.pk).update(sha256="x")
    assert document_ingest(document_id=stuck.pk) == "ready"


@pytest.mark.django_db
def test_a_document_deleted_while_processing_stops_cleanly(owner, media, monkeypatch):
    from documents import services

    document = make_document(owner, content=MANUAL_MD)
    real_update = services._Run.update
    calls = {"n": 0}

    def update_then_vanish(self, **fields):
        calls["n"] += 1
        if fields.get("status") == Document.Status.EMBEDDING:
            Document.objects.filter(pk=self.document_id).delete()
        return real_update(self, **fields)

    monkeypatch.setattr(services._Run, "update", update_then_vanish)
    assert document_ingest(document_id=document.pk) == "superseded"
    assert not Chunk.objects.exists()


@pytest.mark.django_db
def test_a_document_whose_file_is_gone_fails_without_showing_paths(owner, media):
    document = make_document(owner, content=MANUAL_MD)
    Path(document.file.path).unlink()
    assert document_ingest(document_id=document.pk) == "failed"
    document.refresh_from_db()
    assert document.failure_reason == "The uploaded file is no longer stored; upload it again."
    assert document.claim is None and not document.chunks.exists()


@pytest.mark.django_db
def test_both_legs_index_the_documents_title_and_section_path_but_never_quote_it(
    owner, media, fake_openai
):
    from documents.search import search

    document = make_document(owner, name="Pneumatic_clamp_guide.md", content=MANUAL_MD)
    assert document_ingest(document_id=document.pk) == "ready"
    inputs = [
        i for r in fake_openai.requests if r.path == "/v1/embeddings" for i in r.json["input"]
    ]
    chunks = list(Chunk.objects.filter(document=document).order_by("index"))
    assert [c.title for c in chunks] == ["Pneumatic clamp guide"] * len(chunks)
    # The vector leg reads "Title › Section › Subsection" then the passage...
    assert inputs == [f"Pneumatic clamp guide › {c.content}" for c in chunks]
    assert inputs[0].startswith("Pneumatic clamp guide › RoboRail maintenance › Calibration\n")
    # ...the text leg finds the manual's name in every passage, which never quotes it.
    hits = search(user=owner, query="pneumatic", mode="text").hits
    assert {h.chunk_id for h in hits} == {c.pk for c in chunks}
    assert all("neumatic" not in h.content for h in hits)
