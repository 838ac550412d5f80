"""The full-text leg: any of the question's terms (OR), BM25 with idf from the term counts
of the documents the user may read, kept with the chunks on ingest and delete."""

from __future__ import annotations

import pytest

from documents.models import Document, DocumentTerm
from documents.search import search
from documents.services import document_delete, document_ingest
from documents.tests.conftest import make_document

pytestmark = pytest.mark.django_db

# "chuck" is in every section; "spirit" and "encoder" in one each.
MANUAL = b"""# Chuck manual

## Levelling

Put a spirit level on the front chuck and turn the chuck until it is level.

## Clamping

Clamp the chuck jaws with the chuck key and check the chuck pressure.

## Wiring

The chuck encoder cable plugs into port X12 of the chuck drive.
"""

# Private to another user: "spirit" everywhere, which must not make it common for others.
PRIVATE = b"""# Distillery notes

## Spirit

The spirit is stored in oak casks. Spirit strength is measured weekly.

## Casks

Each spirit cask is labelled with the spirit batch.
"""


def _ready(owner, name, content, **fields):
    document = make_document(owner, name=name, content=content, **fields)
    assert document_ingest(document_id=document.pk) == "ready"
    return document


@pytest.fixture
def manual(owner, media):
    return _ready(owner, "chuck.md", MANUAL)


def test_a_question_with_words_no_chunk_holds_still_finds_the_chunk_with_the_others(manual, owner):
    # websearch syntax ANDs every word: "bubble" and "tool" are in no chunk.
    hits = search(
        user=owner, query="which bubble tool levels the front chuck with spirit", mode="text"
    ).hits
    assert hits and hits[0].section.endswith("Levelling")


def test_a_term_in_most_chunks_ranks_but_does_not_pick_the_candidates(manual, owner):
    # "chuck" is in every chunk (and five times under Clamping); "encoder" in one.
    alone = search(user=owner, query="chuck", mode="text").hits
    assert len(alone) == 3 and alone[0].section.endswith("Clamping")
    assert alone[0].text_score > alone[-1].text_score > 0

    hits = search(user=owner, query="chuck encoder", mode="text").hits
    assert [h.section.rsplit(" › ", 1)[-1] for h in hits] == ["Wiring"]


def test_term_counts_follow_ingest_and_delete(manual, owner):
    counts = dict(DocumentTerm.objects.filter(document=manual).values_list("term", "chunks"))
    assert counts["chuck"] == 3 and counts["spirit"] == 1 and counts["encod"] == 1

    document_delete(document=manual)
    assert not DocumentTerm.objects.filter(document_id=manual.pk).exists()


def test_a_private_document_does_not_change_another_users_weights(manual, owner, outsider):
    query = "spirit level chuck"
    before = search(user=owner, query=query, mode="text").hits
    _ready(outsider, "distillery.md", PRIVATE)
    after = search(user=owner, query=query, mode="text").hits

    assert [(h.chunk_id, h.text_score) for h in after] == [
        (h.chunk_id, h.text_score) for h in before
    ]
    theirs = search(user=outsider, query="spirit cask", mode="text").hits
    assert theirs and all(h.document_name == "distillery.md" for h in theirs)


def test_coverage_is_the_share_of_the_questions_weight_a_chunk_holds(manual, owner):
    [hit] = [
        h
        for h in search(user=owner, query="spirit level chuck", mode="text").hits
        if h.section.endswith("Levelling")
    ]
    assert hit.coverage == pytest.approx(1.0)
    partial = search(user=owner, query="spirit level of the turbine", mode="text").hits[0]
    # "turbine" is in no chunk and weighs most: under half of the question is covered.
    assert 0 < partial.coverage < 0.5
    assert search(user=owner, query="the of and", mode="text").hits == []


def test_shared_documents_count_for_everyone(manual, owner, outsider):
    shared = _ready(outsider, "shared.md", PRIVATE, visibility=Document.Visibility.SHARED)
    hits = search(user=owner, query="spirit", mode="text").hits
    assert {h.document_id for h in hits} == {manual.pk, shared.pk}
