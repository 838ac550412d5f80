from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from documents.models import Document, Embedding
from documents.tests import files
from documents.tests.conftest import MANUAL_MD, make_document

pytestmark = pytest.mark.django_db


def test_ingest_processes_a_folder_for_a_user(owner, media, tmp_path):
    folder = tmp_path / "manuals"
    (folder / "sub").mkdir(parents=True)
    files.make_markdown(folder / "a.md")
    (folder / "sub" / "b.txt").write_bytes(b"Oil the rails weekly with the supplied grease.\n")
    (folder / "photo.png").write_bytes(files.png_bytes())
    out, err = StringIO(), StringIO()
    call_command("ingest", str(folder), "--owner", "OWNER@example.com", stdout=out, stderr=err)
    assert "ready: 2" in out.getvalue() and "skipped: 1" in out.getvalue()
    assert "photo.png" in err.getvalue()
    assert set(Document.objects.filter(owner=owner).values_list("status", flat=True)) == {"ready"}
    call_command("ingest", str(folder), "--owner", owner.email, stdout=out, stderr=err)
    assert "duplicate: 2" in out.getvalue()


def test_ingest_can_leave_the_work_to_the_worker(owner, media, tmp_path):
    path = files.make_markdown(tmp_path / "a.md")
    call_command(
        "ingest", str(path), "--owner", owner.email, "--enqueue", "--shared", stdout=StringIO()
    )
    document = Document.objects.get()
    assert document.status == "queued" and document.visibility == "shared"


def test_ingest_explains_bad_arguments(owner, tmp_path):
    with pytest.raises(CommandError, match=r"No user with email nobody@example\.com"):
        call_command("ingest", str(tmp_path), "--owner", "nobody@example.com")
    with pytest.raises(CommandError, match="does not exist"):
        call_command("ingest", str(tmp_path / "missing"), "--owner", owner.email)


def test_documents_status_counts_and_lists_problems(owner, media):
    make_document(owner, name="ok.md", content=b"1", status="ready")
    make_document(
        owner,
        name="bad.pdf",
        content=b"2",
        status="failed",
        failure_reason="The PDF is password protected.",
    )
    make_document(
        owner,
        name="stuck.md",
        content=b"3",
        status="embedding",
        heartbeat_at=timezone.now() - timedelta(hours=1),
    )
    out = StringIO()
    call_command("documents_status", stdout=out)
    text = out.getvalue()
    assert "ready       1" in text and "failed      1" in text and "embedding   1" in text
    assert "stuck.md [embedding]" in text
    assert "bad.pdf (owner@example.com): The PDF is password protected." in text


def test_reindex_writes_new_vectors_beside_the_old_and_switches(owner, media, settings):
    from documents.embeddings import reset_providers
    from documents.services import document_ingest
    from rra.testing.fakes import FakeOpenAI

    document = make_document(owner, content=MANUAL_MD)
    assert document_ingest(document_id=document.pk) == "ready"
    local = Embedding.objects.filter(chunk__document=document).count()
    with FakeOpenAI(dimensions=32) as server:
        settings.EMBEDDINGS_BASE_URL = server.base_url
        settings.EMBEDDINGS_API_KEY = server.api_key
        settings.EMBEDDINGS_MODEL = "text-embedding-3-small"
        reset_providers()
        out = StringIO()
        call_command("reindex", "--model", "openai", stdout=out)
        reset_providers()
    document.refresh_from_db()
    assert document.embedding_model == "openai/text-embedding-3-small"
    by_model = Embedding.objects.filter(chunk__document=document)
    assert by_model.filter(model="local/multilingual-e5-small-q4").count() == local
    assert by_model.filter(model="openai/text-embedding-3-small").count() == local
    assert "reindexed 1 document(s), 0 failed" in out.getvalue()


def test_reindex_refuses_unknown_documents(owner, media):
    with pytest.raises(CommandError, match="Not found or not ready"):
        call_command("reindex", "--document", "424242", stdout=StringIO())


def test_reindex_gives_chunks_stored_without_a_title_their_documents_title(owner, media, settings):
    """Chunks stored before titles were indexed: reindex (same or another model) fills
    the title, so the text leg finds the manual by its name, and embeds title + content."""
    from documents.embeddings import reset_providers
    from documents.models import Chunk, DocumentTerm
    from documents.search import search
    from documents.services import document_ingest
    from rra.testing.fakes import FakeOpenAI

    document = make_document(owner, name="Pneumatic_clamp_guide.md", content=MANUAL_MD)
    assert document_ingest(document_id=document.pk) == "ready"
    Chunk.objects.update(title="")  # as a library from before the title column is
    DocumentTerm.rebuild_for(document.pk)
    assert search(user=owner, query="pneumatic", mode="text").hits == []
    with FakeOpenAI(dimensions=32) as server:
        settings.EMBEDDINGS_BASE_URL = server.base_url
        settings.EMBEDDINGS_API_KEY = server.api_key
        settings.EMBEDDINGS_MODEL = "text-embedding-3-small"
        reset_providers()
        call_command("reindex", "--model", "openai", stdout=StringIO())
        reset_providers()
        inputs = [i for r in server.requests if r.path == "/v1/embeddings" for i in r.json["input"]]
    chunks = Chunk.objects.filter(document=document)
    assert set(chunks.values_list("title", flat=True)) == {"Pneumatic clamp guide"}
    assert len(inputs) == chunks.count()
    assert all(i.startswith("Pneumatic clamp guide › RoboRail maintenance") for i in inputs)
    hits = search(user=owner, query="pneumatic", mode="text").hits
    assert {h.document_id for h in hits} == {document.pk}
    assert "neumatic" not in hits[0].content  # indexed, never quoted
