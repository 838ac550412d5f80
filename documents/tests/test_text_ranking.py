"""The full-text leg: any of the question's terms (OR), BM25 with idf from the term counts
of the documents the user may read, kept with the chunks on ingest and delete."""

from __future__ import annotations

from importlib import import_module
from io import StringIO
from types import SimpleNamespace

import pytest
from django.apps import apps as django_apps
from django.core.management import CommandError, call_command
from django.db import connection

from documents.models import (
    BM25_AVG_LEN,
    BM25_B,
    BM25_K1,
    ChunkTerm,
    Document,
    DocumentTerm,
)
from documents.search import search
from documents.services import document_delete, document_ingest, document_reprocess
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


def _postings(document):
    return {
        (p.chunk.section.rsplit(" › ", 1)[-1], p.term): p.weight
        for p in ChunkTerm.objects.filter(chunk__document=document).select_related("chunk")
    }


def _lexemes(document) -> list[tuple[int, str, int]]:
    """(chunk id, lexeme, occurrences) of a document's search vectors."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.id, t.lexeme, COALESCE(array_length(t.positions, 1), 1)"
            " FROM documents_chunk c, unnest(c.search_vector) t WHERE c.document_id = %s",
            [document.pk],
        )
        return cursor.fetchall()


def test_postings_hold_each_chunks_lexemes_with_their_bm25_weight(manual):
    postings = {(p.chunk_id, p.term): p for p in ChunkTerm.objects.filter(chunk__document=manual)}
    lexemes = _lexemes(manual)
    assert len(lexemes) > 10 and set(postings) == {(c, t) for c, t, _ in lexemes}
    lengths = dict(manual.chunks.values_list("pk", "token_count"))
    for chunk_id, term, tf in lexemes:
        posting = postings[(chunk_id, term)]
        norm = 1 - BM25_B + BM25_B * lengths[chunk_id] / BM25_AVG_LEN
        assert posting.weight == pytest.approx(tf * (BM25_K1 + 1) / (tf + BM25_K1 * norm))
        assert posting.document_id == manual.pk
    by_section = _postings(manual)
    # "chuck" five times under Clamping, twice under Wiring.
    assert by_section[("Clamping", "chuck")] > by_section[("Wiring", "chuck")]


def test_postings_follow_reingest_and_delete(manual):
    old_chunks = set(manual.chunks.values_list("pk", flat=True))
    document_reprocess(document=manual)
    assert document_ingest(document_id=manual.pk) == "ready"
    new_chunks = set(manual.chunks.values_list("pk", flat=True))
    assert new_chunks and not new_chunks & old_chunks
    assert (
        set(ChunkTerm.objects.filter(document_id=manual.pk).values_list("chunk_id", flat=True))
        == new_chunks
    )
    assert len(_postings(manual)) == len(_lexemes(manual))

    document_delete(document=manual)
    assert not ChunkTerm.objects.filter(document_id=manual.pk).exists()


def test_rebuild_terms_fills_the_documents_without_postings(manual, owner):
    other = _ready(owner, "distillery.md", PRIVATE)
    expected = _postings(manual)
    ChunkTerm.objects.filter(document_id=manual.pk).delete()
    untouched = ChunkTerm.objects.filter(document_id=other.pk).count()
    # Without postings the text leg does not find the manual (the other one it does).
    hits = search(user=owner, query="oak spirit level", mode="text").hits
    assert hits and all(h.document_id == other.pk for h in hits)

    out = StringIO()
    call_command("rebuild_terms", "--missing", stdout=out)
    assert "1 document(s)" in out.getvalue()
    assert _postings(manual) == pytest.approx(expected)
    assert ChunkTerm.objects.filter(document_id=other.pk).count() == untouched
    hits = search(user=owner, query="oak spirit level", mode="text").hits
    assert {h.document_id for h in hits} == {manual.pk, other.pk}

    call_command("rebuild_terms", "--document", str(other.pk), stdout=out)
    assert ChunkTerm.objects.filter(document_id=other.pk).count() == untouched
    with pytest.raises(CommandError):
        call_command("rebuild_terms", "--document", "999999", stdout=out)


def test_the_migration_fills_postings_as_ingestion_writes_them(manual):
    fill = import_module("documents.migrations.0007_chunk_terms").fill_postings
    expected = _postings(manual)
    ChunkTerm.objects.filter(document_id=manual.pk).delete()

    fill(django_apps, SimpleNamespace(connection=connection))
    fill(django_apps, SimpleNamespace(connection=connection))  # again: nothing doubled
    assert _postings(manual) == pytest.approx(expected)
    assert ChunkTerm.objects.filter(document_id=manual.pk).count() == len(expected)
