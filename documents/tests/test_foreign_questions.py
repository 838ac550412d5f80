"""A question in another language than the library's: the words of it that are stop
words of its own language do not rank in the text leg (a Dutch "de" is a rare English
word), while the answer guard's coverage still counts every term of the question."""

from __future__ import annotations

import pytest
from django.test import override_settings

from documents.models import Document
from documents.search import _term_params, search
from documents.services import document_ingest
from documents.tests.conftest import make_document

pytestmark = pytest.mark.django_db

CHUCKS = b"""# RoboRail calibration

## Chuck rotation

Put a spirit level on top of the front chuck and turn it until the chuck is level.
Then select Done on the remote control.

## Network

When the PMAC controller has no communication, check the Ethernet cable to the switch.
"""

# "de" is a Dutch stop word but a rare English one ("de facto").
DE_FACTO = b"""# Formats

## Archives

Tar is the de facto archive format; a compressed tar file ends in .tar.gz.
"""

DUTCH = "Hoe zet ik de klauwplaat waterpas?"


def _ready(owner, name, content):
    document = make_document(owner, name=name, content=content)
    document.visibility = Document.Visibility.SHARED
    document.save(update_fields=["visibility"])
    assert document_ingest(document_id=document.pk) == "ready"
    return document


@pytest.fixture
def corpus(owner, media):
    return [_ready(owner, "chucks.md", CHUCKS), _ready(owner, "formats.md", DE_FACTO)]


def test_a_foreign_questions_own_stop_words_do_not_rank(corpus, outsider):
    with override_settings(SEARCH_FOREIGN_STOP_WORDS=False):
        before = search(user=outsider, query=DUTCH, k=5, mode="text").hits
        hybrid_before = search(user=outsider, query=DUTCH, k=5).hits
    with override_settings(SEARCH_FOREIGN_STOP_WORDS=True):
        after = search(user=outsider, query=DUTCH, k=5, mode="text").hits
        hybrid = search(user=outsider, query=DUTCH, k=5).hits
    # Without: "de" is the only word of the question the library holds, and it ranks
    # the archive passage by it.
    assert [h.document_name for h in before] == ["formats.md"]
    archive_before = next(h for h in hybrid_before if h.document_name == "formats.md")
    assert archive_before.text_score > 0
    # With: no word of the question ranks; the vector leg alone orders the passages.
    assert after == []
    assert hybrid[0].section.endswith("Chuck rotation")
    archive = next(h for h in hybrid if h.document_name == "formats.md")
    assert not archive.text_score
    assert archive.score < archive_before.score
    # The guard's coverage still counts "de" as one of the question's terms.
    assert archive.coverage == archive_before.coverage == before[0].coverage > 0


def test_a_question_in_the_librarys_language_keeps_every_word(corpus, outsider):
    with override_settings(SEARCH_FOREIGN_STOP_WORDS=True):
        hits = search(user=outsider, query="Which de facto archive format?", k=5).hits
        german = search(user=outsider, query="Welches Archivformat ist de facto Standard?", k=5)
    assert hits[0].document_name == "formats.md" and hits[0].text_score > 0
    # "de" is no German stop word: a German question keeps it.
    assert any(h.document_name == "formats.md" and h.text_score for h in german.hits)


def test_term_params_leave_unranked_terms_out_of_the_ranking_not_of_the_coverage():
    rows = [("klauwplaat", 0.0, 10.0, 3.0), ("de", 1.0, 10.0, 2.0), ("chuck", 4.0, 10.0, 1.0)]
    params = _term_params(rows, unranked=frozenset({"de"}))
    assert params["terms"] == ["klauwplaat", "de", "chuck"]
    assert params["idfs"] == [3.0, 0.0, 1.0]
    assert params["selecting"] == ["chuck"] and params["tsquery"] == "'chuck'"
    assert params["covers"] == [3.0, 2.0, 1.0] and params["total_idf"] == 6.0
    assert _term_params(rows)["idfs"] == [3.0, 2.0, 1.0]
