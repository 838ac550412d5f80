"""The local embedding models: LOCAL_EMBEDDING_MODEL selects one (both are real models
from their wheels), its vectors get an index of their own size, and `reindex --model`
moves a library to another model while searches keep answering."""

from __future__ import annotations

import math
from io import StringIO

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection

from documents.embeddings import E5Provider, LocalProvider, get_provider, reset_providers
from documents.models import Embedding
from documents.search import search
from documents.services import document_ingest
from documents.tests.conftest import make_document
from documents.vector_index import index_name

pytestmark = pytest.mark.django_db

MINILM = "local/all-MiniLM-L6-v2"
E5 = "local/multilingual-e5-small-q4"

BELT = b"""# Drive belt

Replace the drive belt of the RoboRail when it shows cracks. Order part RB-2231.
"""
NETWORK = b"""# Network

When the PMAC controller has no communication, check the yellow Ethernet cable in the
control cabinet and ping 192.168.7.10 from the control PC.
"""


@pytest.fixture(autouse=True)
def _fresh_providers():
    reset_providers()
    yield
    reset_providers()


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_the_setting_selects_the_local_model(settings):
    settings.LOCAL_EMBEDDING_MODEL = "multilingual-e5-small-q4"
    provider = get_provider()
    assert isinstance(provider, E5Provider) and provider.model_id == E5
    assert provider.dimensions == 384 and provider.answer_min_score > 0.5
    passage, other = provider.embed_documents(
        [BELT.decode(), "Clean the camera lens with a dry cloth once a week."]
    )
    assert math.isclose(math.sqrt(sum(x * x for x in passage)), 1.0, abs_tol=1e-3)
    # The model reads Dutch into the same space as English: the Dutch question is
    # nearer to the passage that answers it than to an unrelated one.
    question = provider.embed_query("Welk onderdeel bestel ik als de aandrijfriem scheurt?")
    assert cosine(question, passage) > cosine(question, other)
    assert provider.count_tokens("Replace the drive belt") < provider.max_input_tokens

    settings.LOCAL_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
    reset_providers()
    assert isinstance(get_provider(), LocalProvider) and get_provider().model_id == MINILM
    # A local model by its id, whatever the setting says.
    assert isinstance(get_provider(E5), E5Provider)


def test_an_unknown_local_model_is_refused_clearly():
    with pytest.raises(ImproperlyConfigured, match="Unknown local embedding model 'nope'"):
        get_provider("local/nope")


def test_a_document_ingested_with_e5_is_searchable_through_its_own_index(owner, media, settings):
    settings.LOCAL_EMBEDDING_MODEL = "multilingual-e5-small-q4"
    document = make_document(owner, name="belt.md", content=BELT)
    assert document_ingest(document_id=document.pk) == "ready"
    document.refresh_from_db()
    assert document.embedding_model == E5
    assert set(Embedding.objects.values_list("model", flat=True)) == {E5}
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [index_name(E5)])
        [(definition,)] = cursor.fetchall()
    assert "vector(384)" in definition and E5 in definition
    hits = search(user=owner, query="aandrijfriem vervangen", k=3, mode="vector").hits
    assert hits and hits[0].document_name == "belt.md" and hits[0].vector_score is not None


def test_reindex_moves_a_library_to_another_model_while_searches_answer(owner, media, settings):
    settings.LOCAL_EMBEDDING_MODEL = "all-MiniLM-L6-v2"  # the site runs MiniLM
    documents = []
    for name, content in (("belt.md", BELT), ("network.md", NETWORK)):
        document = make_document(owner, name=name, content=content)
        assert document_ingest(document_id=document.pk) == "ready"
        documents.append(document)
    minilm = Embedding.objects.filter(model=MINILM).count()
    assert minilm >= 2

    # Searches made while the command embeds each document (the slow part), with the
    # model the site still runs on.
    during = []
    provider = get_provider(E5)
    embed = provider.embed_documents

    def embed_and_search(texts):
        result = search(user=owner, query="Which part for a cracked drive belt?", k=5)
        during.append({(h.document_name, h.vector_score is not None) for h in result.hits})
        return embed(texts)

    provider.embed_documents = embed_and_search
    out = StringIO()
    call_command("reindex", "--model", E5, stdout=out)
    assert "reindexed 2 document(s), 0 failed" in out.getvalue()
    # Both searches found the belt passage by its vector, also the second one, made
    # after the first document had been switched to the new model.
    assert len(during) == 2
    assert all(("belt.md", True) in seen for seen in during)

    # The old vectors stay until the switch: the site keeps searching with them.
    assert Embedding.objects.filter(model=MINILM).count() == minilm
    assert Embedding.objects.filter(model=E5).count() == minilm
    hits = search(user=owner, query="Which part for a cracked drive belt?", k=5, mode="vector")
    assert hits.hits[0].document_name == "belt.md"

    # Switched: every document answers through the new model, in Dutch too.
    settings.LOCAL_EMBEDDING_MODEL = "multilingual-e5-small-q4"
    reset_providers()
    hits = search(user=owner, query="Welk IP-adres moet ik pingen?", k=5, mode="vector").hits
    assert {h.document_name for h in hits} == {"belt.md", "network.md"}
    assert hits[0].document_name == "network.md"

    # A document uploaded meanwhile with the old model is caught up by --missing, then
    # the old vectors go.
    settings.LOCAL_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
    reset_providers()
    late = make_document(owner, name="late.md", content=b"# Oil\n\nOil the rails weekly.\n")
    assert document_ingest(document_id=late.pk) == "ready"
    out = StringIO()
    call_command("reindex", "--model", E5, "--missing", "--prune", stdout=out)
    assert "late.md" in out.getvalue() and "reindexed 1 document(s), 0 failed" in out.getvalue()
    assert "belt.md" not in out.getvalue()
    # --document with --missing: a document that has the model's vectors is skipped,
    # not embedded again (the unknown-ids check once overwrote the flag).
    out = StringIO()
    call_command("reindex", "--model", E5, "--document", str(late.pk), "--missing", stdout=out)
    assert "reindexed 0 document(s), 0 failed" in out.getvalue()
    assert set(Embedding.objects.values_list("model", flat=True)) == {E5}
    for document in (*documents, late):
        document.refresh_from_db()
        assert document.embedding_model == E5


@pytest.mark.parametrize(
    ("question", "language"),
    [
        ("Welk IP-adres moet ik pingen als de PMAC geen verbinding heeft?", "dutch"),
        ("Wie oft muss ich die Ausrichtung des Spannfutters kalibrieren?", "german"),
        ("Which IP do I ping for the PMAC?", "english"),
        ("PMAC 192.168.7.10", "english"),  # no function words: the library's language
        ("", "english"),
    ],
)
def test_the_question_language_comes_from_the_stop_word_lists(question, language):
    from documents.languages import question_language

    assert question_language(question) == language


def test_a_question_s_language_is_asked_of_the_database_once_per_library_language(settings):
    from django.test.utils import CaptureQueriesContext

    from documents.languages import _question_language, question_language

    _question_language.cache_clear()
    question = "Wie oft muss ich die Ausrichtung des Spannfutters kalibrieren?"
    with CaptureQueriesContext(connection) as queries:
        assert question_language(question) == "german"
        assert question_language(question) == "german"  # an answer asks up to five times
    assert len(queries) == 1
    settings.SEARCH_TEXT_CONFIG = "german"  # a German library: the same words are its own
    with CaptureQueriesContext(connection) as queries:
        assert question_language(question) == "german"
    assert len(queries) == 1
