"""The text leg's two rounds (documents.search: round 1's first postings per term, then
MaxScore's second round) on a real database: for every number of postings read in
round 1 and every k, the same top k as reading every posting."""

from __future__ import annotations

import json
import random

import pytest
from django.db import connection

from documents.search import search
from documents.services import document_ingest
from documents.tests.conftest import make_document

pytestmark = pytest.mark.django_db

# Passages of one manual (one chunk each): the two terms at many frequencies and
# lengths, so that a term's first postings (by weight) are not the passages holding both.
BODIES = [
    "Fit the flange, then apply the torque.",
    "Flange flange flange: each flange is a flange of the rail flange.",
    "Torque torque: the torque given in the torque table is the torque.",
    "Torque torque torque torque: torque the torque bolts.",
    "The flange sits on the rail; check the flange before the torque wrench is used on it.",
    "A long note on the carriage, the sensor, the cable and the cover, with one flange.",
    "Torque once, then clean the carriage, the sensor, the cable, the cover and the rail.",
    "Flange flange and torque.",
    "Torque torque and a flange.",
    "Clean the rail with a dry cloth.",
    "Clean the sensor with a dry cloth.",
    "The flange of the carriage.",
    "The torque of the motor is given on the plate, with the flange size beside it.",
]
# Three terms that never meet in a passage: the k-th score stays under the sum of two
# terms' tails, so no one term must hold a passage that can still reach it (MaxScore's
# fallback, txt_more_all).
APART = [
    f"{verb} {word}{rest}"
    for word in ("grease", "gasket", "valve")
    for verb, rest in (
        ("Check the", "."),
        ("Renew the", f" and then the {word} again."),
        ("Inspect the", " of the slide once a week when the machine is stopped."),
        ("Note the", f" before the {word} and after the {word}."),
    )
]
WORDS = [
    "flange",
    "torque",
    "rail",
    "carriage",
    "sensor",
    "cable",
    "cover",
    "bolt",
    "motor",
    "plate",
]


def _generated(n: int = 48) -> list[str]:
    """More passages than round 1's shortlist (SEARCH_CANDIDATES=5: 20 chunks), the
    terms repeated 0-4 times in 4-30 words, so that chunks read in round 1 but left
    out of its shortlist can still reach the top (txt_more_seen)."""
    rng = random.Random(7)
    bodies = []
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(4, 30))]
        bodies.append(" ".join(["Note:", *words]) + ".")
    return bodies


def _ready(owner, name, content):
    document = make_document(owner, name=name, content=content)
    assert document_ingest(document_id=document.pk) == "ready"
    return document


def _rows_by_cte(plan: dict) -> dict[str, float]:
    found: dict[str, float] = {}

    def walk(node):
        name = node.get("Subplan Name", "")
        if name.startswith("CTE "):
            found[name[4:]] = node["Actual Rows"] * node["Actual Loops"]
        for child in node.get("Plans", []):
            walk(child)

    walk(plan["Plan"])
    return found


def _search_with_plan(owner, query, k, mode):
    plans = []

    def explain(execute, sql, params, many, context):
        if "candidates AS" in sql:
            execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params, many, context)
            raw = context["cursor"].fetchone()[0]
            plans.append(raw if isinstance(raw, list) else json.loads(raw))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(explain):
        hits = search(user=owner, query=query, k=k, mode=mode, rerank=False).hits
    return hits, _rows_by_cte(plans[0][0])


@pytest.mark.parametrize("mode", ["text", "hybrid"])
def test_every_round_one_depth_gives_the_exhaustive_top_k(owner, media, settings, mode):
    body = "\n\n".join(
        f"## Step {n}\n\n{text}" for n, text in enumerate(BODIES + APART + _generated())
    )
    _ready(owner, "steps.md", body.encode())
    settings.SEARCH_CANDIDATES = 5
    queries = ("flange torque", "flange torque rail", "torque carriage flange sensor")
    for query in (*queries, "grease gasket valve"):
        for k in (1, 2, 3, 5, 10):
            settings.SEARCH_TEXT_POSTINGS = 0
            exhaustive, _ = _search_with_plan(owner, query, k, "text")
            for postings in (1, 2, 3, 4, 8, 20):
                settings.SEARCH_TEXT_POSTINGS = postings
                hits, _ = _search_with_plan(owner, query, k, mode)
                if mode == "text":
                    assert [(h.chunk_id, h.text_score) for h in hits] == [
                        (h.chunk_id, pytest.approx(h.text_score)) for h in exhaustive
                    ], (query, k, postings)
                else:  # every passage of the exhaustive text top k keeps its BM25
                    scores = {h.chunk_id: h.text_score for h in hits}
                    assert all(
                        scores.get(h.chunk_id, h.text_score) == pytest.approx(h.text_score)
                        for h in exhaustive
                    ), (query, k, postings)
