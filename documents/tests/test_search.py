"""Hybrid search: access in SQL, both legs, fusion, snippets, API rules and caching."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client

from documents.models import Chunk, Document
from documents.search import search
from documents.services import document_ingest
from documents.tests.conftest import make_document

pytestmark = pytest.mark.django_db

SECRET = b"""# Private maintenance notes

## Hydraulic press

The hydraulic press of line seven must be bled with ISO VG 46 oil every quarter,
using the blue valve behind the left guard.
"""

CHUCKS = b"""# RoboRail calibration

## Chuck rotation

Put a spirit level on top of the front chuck and turn it until the chuck is level.
Then select Done on the remote control.

## Network

When the PMAC controller has no communication, check the Ethernet cable to the switch.
"""

# One section long enough for several passages at CHUNK_TARGET_TOKENS = 40, then another.
PRESS_MD = (
    "# Press manual\n\n## Bleeding the press\n\n"
    + "\n\n".join(
        f"Step {n}: {text}"
        for n, text in enumerate(
            [
                "close the blue valve behind the left guard and wait until the gauge "
                "reads zero before touching any hose of the press.",
                "open the bleed screw on the cylinder head by half a turn with the "
                "seventeen millimetre spanner from the tool board.",
                "pump the hand lever slowly until the oil runs clear of bubbles from "
                "the tachometer port into the catch tray.",
                "tighten the bleed screw to twelve newton metres and wipe the cylinder "
                "head dry with a lint free cloth.",
            ],
            1,
        )
    )
    + "\n\n## Storage\n\nKeep the spare seals in the grey drawer away from sunlight.\n"
).encode()


def _ready(owner, name, content, **fields):
    document = make_document(owner, name=name, content=content, **fields)
    assert document_ingest(document_id=document.pk) == "ready"
    return document


@pytest.fixture
def corpus(owner, outsider, media):
    return {
        "secret": _ready(owner, "secret.md", SECRET),
        "chucks": _ready(outsider, "chucks.md", CHUCKS, visibility=Document.Visibility.SHARED),
    }


def test_another_user_never_sees_private_chunks_even_with_the_exact_sentence(corpus, outsider):
    sentence = "The hydraulic press of line seven must be bled with ISO VG 46 oil every quarter"
    for mode in ("hybrid", "vector", "text"):
        hits = search(user=outsider, query=sentence, k=20, mode=mode).hits
        assert all(h.document_name != "secret.md" for h in hits), mode
    client = Client()
    client.force_login(outsider)
    body = client.get("/api/search", {"q": sentence, "k": 50}).json()
    assert "hydraulic" not in str(body).lower().replace(sentence.lower(), "")
    assert all(r["document"]["name"] != "secret.md" for r in body["results"])


def test_owners_find_their_own_and_shared_documents(corpus, owner):
    names = {h.document_name for h in search(user=owner, query="hydraulic press oil", k=10).hits}
    assert "secret.md" in names
    shared = search(user=owner, query="spirit level on the chuck", k=3).hits
    assert shared[0].document_name == "chucks.md"


def test_the_vector_leg_finds_paraphrases_and_the_text_leg_finds_keywords(corpus, owner):
    paraphrase = search(
        user=owner, query="the controller lost its network connection", k=1, mode="vector"
    )
    assert paraphrase.hits[0].section.endswith("Network")
    assert paraphrase.hits[0].vector_score > 0.3 and paraphrase.hits[0].text_rank is None
    keyword = search(user=owner, query="PMAC", k=5, mode="text").hits
    assert keyword and all("PMAC" in h.content for h in keyword)
    assert keyword[0].vector_rank is None and keyword[0].text_score > 0


def test_hybrid_fuses_both_scores(corpus, owner, settings):
    hit = search(user=owner, query="PMAC communication Ethernet", k=1).hits[0]
    assert hit.vector_rank == 1 and hit.text_rank == 1
    # The best of both legs: both normalised scores are 1.
    assert hit.score == pytest.approx(1.0)


def test_every_hybrid_candidate_is_scored_by_both_legs(corpus, owner):
    hits = search(user=owner, query="spirit level on the chuck", k=10).hits
    assert len(hits) > 2
    # A passage only one leg proposed still carries the other leg's score: its cosine
    # from its stored vector, its BM25 (0 without a matching term).
    assert all(h.vector_score is not None and h.text_score is not None for h in hits)
    assert any(h.text_rank is None for h in hits) or any(h.vector_rank is None for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


@pytest.mark.parametrize(
    "weights, leg",
    [((1.0, 0.0), "vector_score"), ((0.0, 1.0), "text_score")],
)
def test_the_fusion_weights_choose_between_the_legs(corpus, owner, settings, weights, leg):
    settings.SEARCH_VECTOR_WEIGHT, settings.SEARCH_TEXT_WEIGHT = weights
    hits = search(user=owner, query="chuck spirit level network cable", k=10).hits
    scores = [getattr(h, leg) for h in hits]
    assert len(hits) > 2 and scores == sorted(scores, reverse=True)


def test_a_document_filter_limits_the_search(corpus, owner):
    only = corpus["secret"].pk
    hits = search(user=owner, query="chuck spirit level", k=10, document_ids=[only]).hits
    assert hits and {h.document_id for h in hits} == {only}


def test_search_reads_what_readable_by_allows_and_nothing_for_no_one(corpus, owner):
    from django.contrib.auth.models import AnonymousUser

    from documents.models import EVERY_DOCUMENT

    query = "hydraulic press spirit level chuck"
    for mode in ("hybrid", "vector", "text"):
        assert search(user=owner, query=query, k=10, document_ids=[], mode=mode).hits == []
        assert search(user=AnonymousUser(), query=query, k=10, mode=mode).hits == []
        everything = {h.document_name for h in search(user=EVERY_DOCUMENT, query=query, k=10).hits}
        assert everything == {"secret.md", "chucks.md"}
    corpus["secret"].status = Document.Status.FAILED
    corpus["secret"].save()
    names = {h.document_name for h in search(user=owner, query=query, k=10).hits}
    assert names == {"chucks.md"}


def test_snippets_mark_terms_and_escape_html(owner, media):
    _ready(
        owner,
        "html.md",
        b"# Wiring\n\nConnect <script>alert(1)</script> the encoder cable when pressure < 5 & temperature > 40.\n",
    )
    hit = search(user=owner, query="encoder cable pressure", k=1, mode="text").hits[0]
    assert "<script>" not in hit.snippet
    assert "<mark>pressure</mark> &lt; 5 &amp;" in hit.snippet
    assert "<mark>encoder</mark> <mark>cable</mark>" in hit.snippet


def test_a_snippet_does_not_repeat_the_heading(owner, media):
    """A chunk's content starts with its section path on a line of its own (for the
    embedding and the text leg), and the heading is also the first line of its text:
    the snippet showed "RoboRail calibration › Chuck rotation RoboRail calibration Chuck
    rotation Put a ...". The hit names its section apart (location), so the snippet is
    the text under the headings."""
    _ready(owner, "chucks.md", CHUCKS)
    hit = search(user=owner, query="chuck rotation spirit level", k=1, mode="text").hits[0]
    assert hit.section == "RoboRail calibration › Chuck rotation"
    plain = hit.snippet.replace("<mark>", "").replace("</mark>", "")
    assert "›" not in plain and "RoboRail calibration" not in plain
    assert "rotation" not in plain.lower(), hit.snippet
    assert plain.startswith("Put a spirit level"), hit.snippet
    assert "<mark>spirit</mark> <mark>level</mark>" in hit.snippet
    # A chunk without a section (text before any heading) keeps its whole text.
    _ready(
        owner, "plain.txt", b"Bleed the brake line until no bubbles appear.", mime_type="text/plain"
    )
    plain_hit = search(user=owner, query="bleed brake bubbles", k=1, mode="text").hits[0]
    assert plain_hit.section == ""
    assert plain_hit.snippet.replace("<mark>", "").replace("</mark>", "").startswith("Bleed the")


def test_the_vector_leg_uses_the_models_hnsw_index(corpus, owner):
    from documents.embeddings import get_provider
    from documents.search import _readable_sql, _sql
    from documents.vector_index import index_name

    provider = get_provider()
    docs, params = _readable_sql(owner, None)
    statement = _sql("vector", provider.dimensions, docs)
    with connection.cursor() as cursor:
        # Tiny tables favour a sort; rule the alternatives out to see that the index
        # expression and predicate match the query.
        for knob in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
            cursor.execute(f"SET LOCAL {knob} = off")
        cursor.execute(
            "EXPLAIN " + statement,
            {
                **params,
                "qvec": str(provider.embed_query("chuck")),
                "model": provider.model_id,
                "query": "chuck",
                "config": "english",
                "candidates": 10,
                "w_vec": 1.0,
                "w_txt": 1.0,
                "w_sum": 2.0,
                "limit": 5,
                "headline": "",
                "terms": ["chuck"],
                "dfs": [1.0],
                "idfs": [1.0],
                "covers": [1.0],
                "tsquery": "'chuck'",
                "match": "'chuck'",
                "total_idf": 1.0,
            },
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert index_name(provider.model_id) in plan


class TestApi:
    def test_it_answers_with_scores_pages_and_snippets(self, corpus, owner_client):
        response = owner_client.get("/api/search", {"q": "spirit level", "k": 2})
        assert response.status_code == 200
        body = response.json()
        assert body["query"] == "spirit level" and body["mode"] == "hybrid"
        top = body["results"][0]
        assert top["document"]["name"] == "chucks.md"
        # A Markdown file has no pages: its section names the place.
        assert top["pages"] == {"first": 1, "last": 1, "label": ""}
        assert top["location"].startswith("§ ")
        assert top["section"].split(" › ")[-1] in top["location"]
        assert "<mark>spirit</mark>" in top["snippet"]
        assert set(top["scores"]) == {
            "vector",
            "vector_rank",
            "text",
            "text_rank",
            "rerank",
            "coverage",
        }
        assert "embed" in body["timings_ms"] and "sql" in body["timings_ms"]
        assert "content" not in top

    def test_include_content_returns_whole_passages(self, corpus, owner_client, owner):
        response = owner_client.get("/api/search", {"q": "spirit level", "include": "content"})
        assert response.status_code == 200
        results = response.json()["results"]
        assert results
        for result in results:
            chunk = Chunk.objects.get(pk=result["chunk_id"])
            assert result["content"] == chunk.content
        assert "select Done on the remote control" in " ".join(results[0]["content"].split())
        plain = owner_client.get("/api/search", {"q": "spirit level"})
        assert plain["ETag"] != response["ETag"]
        bad = owner_client.get("/api/search", {"q": "spirit level", "include": "content,secrets"})
        assert bad.status_code == 400 and "include" in bad.json()["error"]["fields"]

    def test_include_context_brings_the_section_around_each_passage(
        self, owner, owner_client, media, settings
    ):
        # One section cut into several passages: a fact that spans two of them reads whole
        # in the result's context; another section's text never comes in.
        settings.CHUNK_TARGET_TOKENS = 40
        document = _ready(owner, "press.md", PRESS_MD)
        chunks = list(document.chunks.order_by("index").values_list("section", "content"))
        bleeding = [c for section, c in chunks if section.endswith("Bleeding the press")]
        assert len(bleeding) >= 3, chunks  # the test needs a passage with one on each side

        response = owner_client.get(
            "/api/search", {"q": "tachometer port catch tray", "include": "context", "k": 1}
        )
        assert response.status_code == 200
        (hit,) = response.json()["results"]
        assert "tachometer" in hit["snippet"] and "content" not in hit
        before, after = hit["context"]["before"], hit["context"]["after"]
        assert "bleed screw on the cylinder head" in " ".join(before.split())
        assert "twelve newton metres" in " ".join(after.split())
        assert "tachometer" not in before + after  # the passage itself is not repeated
        assert "grey drawer" not in before + after  # the next section is not its context
        assert not before.startswith("Press manual")  # no section line in the text

        # The first passage of the section has nothing before it.
        first = owner_client.get(
            "/api/search", {"q": "blue valve gauge reads zero", "include": "context", "k": 1}
        ).json()["results"][0]
        assert "<mark>gauge</mark>" in first["snippet"] and first["context"]["before"] == ""
        assert "bleed screw" in first["context"]["after"]
        # Without include=context the results do not carry it.
        plain = owner_client.get("/api/search", {"q": "tachometer port", "k": 1}).json()
        assert "context" not in plain["results"][0]
        bad = owner_client.get("/api/search", {"q": "tachometer", "include": "neighbours"})
        assert bad.status_code == 400
        assert "content, context" in str(bad.json()["error"]["fields"]["include"])

    @pytest.mark.parametrize(
        ("params", "field"),
        [
            ({"q": "   "}, "q"),
            ({}, "q"),
            ({"q": "x", "k": "0"}, "k"),
            ({"q": "x", "k": "51"}, "k"),
            ({"q": "x", "k": "ten"}, "k"),
            ({"q": "x", "documents": "1,two"}, "documents"),
            ({"q": "x", "mode": "magic"}, "mode"),
        ],
    )
    def test_it_validates_parameters(self, owner_client, params, field):
        response = owner_client.get("/api/search", params)
        assert response.status_code == 400
        assert field in response.json()["error"]["fields"]

    def test_a_long_query_is_cut_at_a_word_boundary(self, corpus, owner_client, settings):
        settings.SEARCH_MAX_QUERY_CHARS = 30
        body = owner_client.get("/api/search", {"q": "spirit level " * 10}).json()
        assert body["truncated"] is True
        assert body["query"] == "spirit level spirit level"

    def test_it_is_rate_limited(self, owner_client, media):
        for _ in range(30):
            assert owner_client.get("/api/search", {"q": "x", "mode": "text"}).status_code == 200
        response = owner_client.get("/api/search", {"q": "x", "mode": "text"})
        assert response.status_code == 429
        assert int(response["Retry-After"]) > 0

    def test_results_are_cached_until_the_readable_set_changes(
        self, corpus, owner, outsider, django_capture_on_commit_callbacks
    ):
        client = Client()
        client.force_login(outsider)
        query = {"q": "hydraulic press oil", "mode": "text"}
        assert client.get("/api/search", query).json()["cached"] is False
        assert client.get("/api/search", query).json()["cached"] is True
        secret = Document.objects.get(pk=corpus["secret"].pk)
        with django_capture_on_commit_callbacks(execute=True):
            secret.visibility = Document.Visibility.SHARED
            secret.save()
        body = client.get("/api/search", query).json()
        assert body["cached"] is False
        assert body["results"][0]["document"]["name"] == "secret.md"
        with django_capture_on_commit_callbacks(execute=True):
            secret.delete()
        body = client.get("/api/search", query).json()
        assert body["cached"] is False and body["results"] == []

    def test_it_needs_sign_in(self, client):
        assert client.get("/api/search", {"q": "x"}).status_code == 401


def test_cohere_rerank_reorders_the_top_hits(corpus, owner, settings):
    from rra.testing.fakes import FakeCohere, Response

    with FakeCohere(api_key="k") as server:
        seen = []

        def rerank(request):
            body = request.json
            seen.append(body)
            # Put the last candidate first: proves the order comes from the reranker.
            n = len(body["documents"])
            return Response.json(
                {
                    "id": "r",
                    "results": [
                        {"index": i, "relevance_score": 1 - (n - 1 - i) / n}
                        for i in reversed(range(n))
                    ],
                    "meta": {},
                }
            )

        server.route("POST", "/v2/rerank", rerank)
        settings.COHERE_API_KEY = "k"
        settings.COHERE_BASE_URL = server.url
        plain = search(user=owner, query="chuck level", k=50, rerank=False).hits
        reranked = search(user=owner, query="chuck level", k=50)
    assert reranked.reranked is True
    assert seen[0]["model"] == settings.COHERE_RERANK_MODEL and seen[0]["query"] == "chuck level"
    assert [h.chunk_id for h in reranked.hits] == [h.chunk_id for h in reversed(plain)]
    assert reranked.hits[0].rerank_score == pytest.approx(1.0)


def test_a_failing_reranker_keeps_the_fused_order(corpus, owner, settings):
    settings.COHERE_API_KEY = "k"
    settings.COHERE_BASE_URL = "http://127.0.0.1:1"
    result = search(user=owner, query="chuck level", k=3)
    assert result.reranked is False and result.hits


def _sections(*bodies: str) -> bytes:
    return "\n\n".join(f"## Step {n}\n\n{body}" for n, body in enumerate(bodies)).encode()


def test_a_passage_in_no_terms_top_postings_still_ranks_first(owner, media, settings):
    """The passage holding both terms once each scores highest over the whole library,
    but with one posting per term (SEARCH_TEXT_POSTINGS=1) it is in neither term's top:
    the passages repeating one of them are. The second round (every posting of the
    terms whose bound can still reach the k-th score) finds it: the same top as reading
    every posting (0)."""
    both = "Fit the flange, then apply the torque."
    flange = "Flange flange flange: each flange is a flange of the rail flange."
    torque = "Torque torque: the torque given in the torque table is the torque."
    fillers = [f"Clean the {w} with a dry cloth." for w in ("rail", "carriage", "sensor", "cable")]
    _ready(owner, "steps.md", _sections(both, flange, torque, *fillers))
    found = {}
    for postings in (0, 1, 2):
        settings.SEARCH_TEXT_POSTINGS = postings
        found[postings] = search(user=owner, query="flange torque", k=2, mode="text").hits
    assert both in found[0][0].content
    for postings in (1, 2):
        assert [(h.chunk_id, h.text_score) for h in found[postings]] == [
            (h.chunk_id, pytest.approx(h.text_score)) for h in found[0]
        ]
    assert found[0][0].text_score > found[0][1].text_score > 0


def test_a_vector_candidate_is_scored_by_its_stored_term_weights(owner, media, settings):
    """In hybrid mode a passage that the vector leg brings is scored by its BM25 even
    when it is in no term's top postings."""
    settings.SEARCH_TEXT_POSTINGS = 1
    _ready(
        owner,
        "steps.md",
        _sections(
            "Torque torque torque torque torque.", "Apply the torque once.", "Clean the rail."
        ),
    )
    hits = search(user=owner, query="torque", k=10, mode="hybrid").hits
    assert len(hits) == 3

    def score(text):
        [hit] = [h for h in hits if text in h.content]
        return hit.text_score

    assert score("Apply the torque once.") > 0
    assert score("Torque torque torque torque torque.") > score("Apply the torque once.")
    assert score("Clean the rail.") == 0


def test_terms_in_over_half_the_chunks_select_only_when_nothing_rarer_does():
    from documents.search import _selecting_terms

    n = 100.0
    assert _selecting_terms([("bolt", 80, n), ("flange", 3, n), ("torque", 40, n)]) == [
        "flange",
        "torque",
    ]
    assert _selecting_terms([("bolt", 80, n), ("rail", 60, n)]) == ["bolt", "rail"]
    assert _selecting_terms([]) == []
