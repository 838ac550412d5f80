"""Answers survive their sources (issue 21 item 4): a document deleted or processed
again while an answer cites it, a document deleted later, and what a public chat goes
on showing; and a duplicate upload never changes or misreports a document's visibility."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse

from chats.answering import llm
from chats.answering.generation import _still_there
from chats.answering.llm import Token, Usage
from chats.models import Chat, Citation, Message
from chats.tests.conftest import MANUAL, events
from documents.models import Chunk, Document
from documents.services import document_delete, document_ingest, document_reprocess

# Committed for real: a foreign key to a row deleted meanwhile fails only at commit.
pytestmark = pytest.mark.django_db(transaction=True)


def _model_that(monkeypatch, meanwhile):
    """An LLM that cites [1], and while it writes, something happens to the source."""

    def stream(self, *, question, passages, history):
        yield Token("Put a spirit level on the chuck [1]. ")
        meanwhile()
        yield Token("Then select Done [1].")
        yield Usage(1, 2, "cites")

    monkeypatch.setattr(llm.ExtractiveLLM, "stream", stream)


def _ask(client, chat):
    return client.post(
        f"/api/chats/{chat.pk}/messages",
        {"question": "How do I level the front chuck?"},
        content_type="application/json",
    )


def test_an_answer_whose_document_is_deleted_mid_answer_is_saved_with_a_removed_source(
    owner_client, owner, manual, monkeypatch
):
    _model_that(monkeypatch, lambda: document_delete(document=Document.objects.get(pk=manual.pk)))
    chat = Chat.objects.create(owner=owner, visibility=Chat.Visibility.PUBLIC)
    stream = events(_ask(owner_client, chat))
    assert stream[-1][0] == "done", stream[-1]
    message = Message.objects.get(pk=stream[-1][1]["message_id"])
    assert message.content == "Put a spirit level on the chuck [1]. Then select Done [1]."
    assert message.status == "complete"
    citation = message.citations.get()
    assert citation.number == 1 and citation.source_removed
    assert citation.document_id is None and citation.chunk_id is None
    assert citation.quote == ""  # the deleted document's text is not kept
    # The chat says so, to its owner and to a public reader; the API too.
    for reader in (owner_client, Client()):
        page = reader.get(f"/c/{chat.pk}/").content.decode()
        assert "Removed document" in page and "spirit level on top" not in page
    cited = owner_client.get(f"/api/chats/{chat.pk}").json()["messages"][-1]["citations"][0]
    assert cited["source_removed"] is True and cited["quote"] == ""


def test_an_answer_whose_document_is_processed_again_mid_answer_keeps_its_document(
    owner_client, owner, manual, monkeypatch
):
    before = set(Chunk.objects.filter(document=manual).values_list("pk", flat=True))

    def reprocess():
        document_reprocess(document=Document.objects.get(pk=manual.pk))
        assert document_ingest(document_id=manual.pk) == "ready"

    _model_that(monkeypatch, reprocess)
    stream = events(_ask(owner_client, Chat.objects.create(owner=owner)))
    assert stream[-1][0] == "done", stream[-1]
    assert not before & set(Chunk.objects.filter(document=manual).values_list("pk", flat=True))
    citation = Message.objects.get(pk=stream[-1][1]["message_id"]).citations.get()
    assert citation.source_removed and citation.chunk_id is None
    assert citation.document_id == manual.pk  # the document is there: it still opens
    assert "spirit level" in citation.quote


def test_answers_citing_one_document_save_without_waiting_for_each_other(manual):
    """The cited rows were locked FOR NO KEY UPDATE, which conflicts with itself: 200
    answers citing one manual saved one after another. FOR KEY SHARE does not conflict
    with itself, and a delete of the document still waits for the answer."""
    chunk = Chunk.objects.filter(document=manual).first()
    hit = SimpleNamespace(document_id=manual.pk, chunk_id=chunk.pk)
    held, release, deleted = threading.Event(), threading.Event(), threading.Event()

    def in_thread(work):
        def run():
            try:
                work()
            finally:
                connection.close()

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    def first_answer():
        with transaction.atomic():
            assert _still_there([hit]) == ({manual.pk}, {chunk.pk})
            held.set()
            release.wait(15)

    def delete():
        document_delete(document=Document.objects.get(pk=manual.pk))
        deleted.set()

    saving = in_thread(first_answer)
    assert held.wait(15)
    deleting = None
    try:
        started = time.monotonic()
        with transaction.atomic():
            assert _still_there([hit]) == ({manual.pk}, {chunk.pk})
        assert time.monotonic() - started < 5  # not until the first answer commits
        deleting = in_thread(delete)
        assert not deleted.wait(1)  # the delete waits for the answer
    finally:
        release.set()
        saving.join(15)
    deleting.join(15)
    assert deleted.is_set()


def test_deleting_a_document_removes_its_text_from_the_citations_that_quote_it(
    owner_client, owner, manual, monkeypatch
):
    _model_that(monkeypatch, lambda: None)
    chat = Chat.objects.create(owner=owner, visibility=Chat.Visibility.PUBLIC)
    events(_ask(owner_client, chat))
    citation = Citation.objects.get(message__chat=chat)
    assert "spirit level" in citation.quote and not citation.source_removed
    assert "spirit level on top" in owner_client.get(f"/c/{chat.pk}/").content.decode()

    owner_client.delete(f"/api/documents/{manual.pk}")
    citation.refresh_from_db()
    assert citation.quote == "" and citation.section == "" and citation.source_removed
    assert citation.document_id is None
    for reader in (owner_client, Client()):
        page = reader.get(f"/c/{chat.pk}/").content.decode()
        assert "spirit level on top" not in page and "Removed document" in page


def test_the_share_dialog_says_what_a_public_chat_goes_on_showing(owner_client, owner):
    chat = Chat.objects.create(owner=owner)
    page = owner_client.get(f"/c/{chat.pk}/").content.decode()
    assert "A document that stops being shared is shown that way from then on" in page
    assert "A cited document that is deleted takes its text out of this chat" in page


def test_a_duplicate_upload_never_changes_or_misreports_visibility(owner_client, owner, media):
    def upload(visibility):
        return owner_client.post(
            "/api/documents",
            {"files": [SimpleUploadedFile("manual.md", MANUAL)], "visibility": visibility},
        )

    first = upload("shared")
    assert first.status_code == 201
    again = upload("private").json()["results"][0]
    assert again["created"] is False and again["visibility"] == "shared"
    assert "shared with everyone; its visibility was not changed" in again["note"]
    assert Document.objects.get(owner=owner).visibility == "shared"
    same = upload("shared").json()["results"][0]
    assert same["created"] is False and "note" not in same

    # The library form says the same.
    response = owner_client.post(
        reverse("documents:upload"),
        {"files": [SimpleUploadedFile("manual.md", MANUAL)], "visibility": "private"},
        follow=True,
    )
    text = response.content.decode()
    assert "is already in your library, shared with everyone; its visibility was not" in text
    assert Document.objects.get(owner=owner).visibility == "shared"
