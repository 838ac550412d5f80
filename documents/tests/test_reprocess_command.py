"""manage.py reprocess: documents processed before their structure was kept get it."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from documents.models import Document, DocumentContent
from documents.services import document_ingest
from documents.tests.conftest import MANUAL_MD, make_document
from documents.tests.test_viewer_sections import TEXT

pytestmark = pytest.mark.django_db


def _ingest(owner, name, content, mime) -> Document:
    document = make_document(owner, name=name, content=content, mime_type=mime)
    assert document_ingest(document_id=document.pk) == "ready"
    return document


def _as_before(document: Document) -> None:
    """What a text document processed before blocks and text headings looks like."""
    DocumentContent.objects.filter(document=document).update(blocks=[])
    document.chunks.update(section="")


def test_it_gives_old_text_documents_their_sections_and_blocks(owner, media, capsys):
    text = _ingest(owner, "lathe.txt", TEXT, "text/plain")
    markdown = _ingest(owner, "manual.md", MANUAL_MD, "text/markdown")
    _as_before(text)

    call_command("reprocess", "--dry-run")
    out = capsys.readouterr().out
    assert f"#{text.pk} lathe.txt (ready)" in out and "manual.md" not in out
    assert not DocumentContent.objects.get(document=text).blocks  # a dry run changes nothing

    call_command("reprocess", "--now")
    out = capsys.readouterr().out
    assert f"#{text.pk} lathe.txt: ready" in out and "reprocessed 1 document(s), 0 failed" in out
    text.refresh_from_db()
    assert text.status == Document.Status.READY
    assert DocumentContent.objects.get(document=text).blocks[0][2:] == ["h", 1]
    assert set(text.chunks.values_list("section", flat=True)) == {
        "Lathe operator's guide",
        "Lathe operator's guide › Spindle speed",
        "Lathe operator's guide › Coolant",
    }
    call_command("reprocess")  # nothing is left to do
    assert capsys.readouterr().out.strip() == "nothing to reprocess"
    assert markdown.chunks.exists()


def test_it_queues_for_the_worker_by_default(
    owner, media, capsys, django_capture_on_commit_callbacks
):
    text = _ingest(owner, "lathe.txt", TEXT, "text/plain")
    call_command("reprocess", "--document", str(text.pk))
    assert "queued 1 document(s)" in capsys.readouterr().out
    text.refresh_from_db()
    assert text.status == Document.Status.QUEUED


def test_bad_ids_are_refused(owner, media):
    with pytest.raises(CommandError, match=r"No document with id \[999999\]"):
        call_command("reprocess", "--document", "999999")
