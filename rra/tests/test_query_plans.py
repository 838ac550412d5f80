"""The hot queries use indexes.

Each test seeds a few thousand rows (bulk_create), runs ANALYZE so that the planner
knows the sizes, makes the real request and EXPLAINs the SQL that the view ran
(captured, so the plan is that of the view's own queryset, not of a copy of it). The
planner has to pick the index by itself: no `enable_seqscan = off`. Everything runs in
the test's transaction (ANALYZE counts the transaction's own rows), so nothing stays.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import User
from chats.models import Chat, Message, Vote
from documents.models import Chunk, ChunkTerm, Document, DocumentTerm, Embedding
from documents.vector_index import ensure_index, index_name
from rra.testing.fakes import fake_vector
from rra.tests.conftest import DIMS, MODEL_ID

pytestmark = pytest.mark.django_db

USERS = 40
INDEX_SCANS = ("Index Scan", "Index Only Scan", "Bitmap Index Scan")


# --- Plans -------------------------------------------------------------------------------


def _nodes(plan: dict) -> Iterator[dict]:
    """Every node of a plan, CTEs and subplans included."""
    yield plan
    for child in plan.get("Plans", ()):
        yield from _nodes(child)


def _indexes(plan: dict) -> set[str]:
    return {n["Index Name"] for n in _nodes(plan) if n["Node Type"] in INDEX_SCANS}


def _seq_scans(plan: dict) -> set[str]:
    return {n["Relation Name"] for n in _nodes(plan) if n["Node Type"] == "Seq Scan"}


def _cte(plan: dict, name: str) -> dict:
    return next(n for n in _nodes(plan) if n.get("Subplan Name") == f"CTE {name}")


def _text(plan: dict, depth: int = 0) -> str:
    """The plan as an indented outline (for assertion messages)."""
    line = "  " * depth + " ".join(
        str(plan[key])
        for key in ("Node Type", "Subplan Name", "Relation Name", "Index Name")
        if key in plan
    )
    return "\n".join([line, *(_text(child, depth + 1) for child in plan.get("Plans", ()))])


def _explain(sql: str, *, setup: str | None = None) -> dict:
    with connection.cursor() as cursor:
        if setup:
            cursor.execute(setup)
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql)
        raw = cursor.fetchone()[0]
    return (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]


def _queries(client: Client, url: str) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return [q["sql"] for q in captured.captured_queries]


def _query(queries: list[str], start: str) -> str:
    """The one query that starts with `start` (after SELECT and its column list)."""
    found = [q for q in queries if start in q]
    assert len(found) == 1, (start, queries)
    return found[0]


def _plan_of(client: Client, url: str, table: str) -> dict:
    """The plan of the query the view at url runs on table (its FROM)."""
    return _explain(_query(_queries(client, url), f' FROM "{table}"'))


def _uses(plan: dict, index: str, *, no_seq_scan_on: tuple[str, ...]) -> None:
    assert index in _indexes(plan), _text(plan)
    assert not _seq_scans(plan) & set(no_seq_scan_on), _text(plan)


def _analyze(*tables: str) -> None:
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"ANALYZE {table}")


# --- Data ----------------------------------------------------------------------------------


def _users(owner) -> list[User]:
    others = User.objects.bulk_create(
        User(email=f"user{n}@example.com", password="!") for n in range(USERS - 1)
    )
    return [owner, *others]


def _documents(users: list[User], count: int) -> list[Document]:
    """count documents of all users, newest first: 60 % ready, 2 % shared."""
    now = timezone.now()
    statuses = ["ready"] * 6 + ["failed", "queued", "embedding", "extracting"]
    return Document.objects.bulk_create(
        Document(
            owner=users[n % len(users)],
            name=f"manual {n}.pdf",
            file=f"documents/{n}.pdf",
            mime_type="application/pdf",
            size=1000,
            sha256=f"{n:064x}",
            status=statuses[n % len(statuses)],
            visibility="shared" if n % 50 == 0 else "private",
            embedding_model=MODEL_ID,
            created_at=now - timedelta(minutes=n),
        )
        for n in range(count)
    )


# --- Chats ---------------------------------------------------------------------------------


@pytest.fixture
def chats(owner) -> Chat:
    """4,000 chats of 40 users and 8,000 messages with 4,000 votes; every 8th message
    (1,000) is in the owner's newest chat, which is returned.

    Rows are stored in random order. On a busy site one user's chats, or one chat's
    messages, are a sliver of any stretch of time, so walking everything in time order
    (chat_created_at_idx, message_created_at_idx) to find them is slow; in a small
    table stored in time order that walk would be cheap and the planner would rightly
    take it. Shuffling gives the small tables the large ones' costs."""
    rng = random.Random(7)
    users = _users(owner)
    now = timezone.now()
    chats = [
        Chat(owner=users[n % USERS], title=f"chat {n}", created_at=now - timedelta(minutes=n))
        for n in range(4000)
    ]
    mine = chats[0]
    messages = [
        Message(
            chat=mine if n % 8 == 0 else chats[n % 4000],
            role=("user", "assistant")[n // 8 % 2],
            content=f"message {n}",
            created_at=now - timedelta(seconds=8000 - n),
        )
        for n in range(8000)
    ]
    for rows in (chats, messages):
        rng.shuffle(rows)
    Chat.objects.bulk_create(chats)
    Message.objects.bulk_create(messages)
    Vote.objects.bulk_create(
        Vote(message=message, user=users[n % USERS], value=(1, -1)[n % 3 == 0])
        for n, message in enumerate(messages)
        if message.role == "assistant"
    )
    _analyze("accounts_user", "chats_chat", "chats_message", "chats_vote", "chats_citation")
    return mine


def test_it_lists_a_users_chats_newest_first_from_an_index(chats, owner_client):
    api = _plan_of(owner_client, "/api/chats", "chats_chat")
    _uses(api, "chat_owner_created_idx", no_seq_scan_on=("chats_chat",))
    sidebar = _plan_of(owner_client, "/", "chats_chat")
    _uses(sidebar, "chat_owner_created_idx", no_seq_scan_on=("chats_chat",))


def test_it_reads_a_chats_messages_in_time_order_from_an_index(chats, owner_client):
    api = _plan_of(owner_client, f"/api/chats/{chats.pk}", "chats_message")
    _uses(api, "message_chat_created_idx", no_seq_scan_on=("chats_message", "chats_vote"))
    assert "vote_message_user_uniq" in _indexes(api), _text(api)
    page = _plan_of(owner_client, f"/c/{chats.pk}/", "chats_message")
    assert not _seq_scans(page) & {"chats_message"}, _text(page)
    assert _indexes(page) & {"message_chat_created_idx", "message_chat_idx"}, _text(page)


# --- Documents and search ------------------------------------------------------------------


def test_it_lists_documents_by_owner_and_status_from_indexes(owner, owner_client):
    _documents(_users(owner), 3000)
    _analyze("accounts_user", "documents_document")
    mine = _plan_of(owner_client, "/api/documents?status=ready&mine=1", "documents_document")
    _uses(mine, "document_owner_status_idx", no_seq_scan_on=("documents_document",))
    for url in ("/api/documents", "/documents/"):
        readable = _plan_of(owner_client, url, "documents_document")
        assert not _seq_scans(readable) & {"documents_document"}, (url, _text(readable))


def test_it_decides_search_access_through_indexes(owner, owner_client, fake_embeddings):
    _documents(_users(owner), 3000)
    _analyze("accounts_user", "documents_document")
    queries = _queries(owner_client, "/api/search?q=chuck+calibration")
    plan = _explain(_query(queries, "fused AS ("), setup=_query(queries, "set_config"))
    docs = _cte(plan, "docs")
    # Own (ready) documents OR shared ready ones: two index scans, not the table.
    _uses(docs, "document_owner_status_idx", no_seq_scan_on=("documents_document",))
    _uses(docs, "document_visibility_status_idx", no_seq_scan_on=("documents_document",))


WORDS = [f"w{n:04d}" for n in range(3000)]


def test_an_unfiltered_search_uses_the_text_and_vector_indexes(owner, admin_user, fake_embeddings):
    """A reader of every document (here: all shared, as admins read only their own and
    shared ones): the text leg is a GIN scan and the vector leg an HNSW scan. (For a
    user who can read only a few documents the planner may rightly rank their few chunks
    exactly instead; see documents/search.py.)"""
    rng = random.Random(7)
    documents = [d for d in _documents(_users(owner), 300) if d.status == "ready"]
    Document.objects.filter(pk__in=[d.pk for d in documents]).update(
        visibility="shared", chunks_total=25
    )
    chunks = Chunk.objects.bulk_create(
        Chunk(
            document=document,
            index=index,
            first_page=index + 1,
            last_page=index + 1,
            content=" ".join(rng.choices(WORDS, k=30)),
            token_count=30,
            start_offset=0,
            end_offset=200,
        )
        for document in documents
        for index in range(25)
    )
    Embedding.objects.bulk_create(
        Embedding(chunk=chunk, model=MODEL_ID, vector=fake_vector(chunk.content, DIMS))
        for chunk in chunks
    )
    ensure_index(MODEL_ID, DIMS)
    for document in documents:  # the text leg's term counts and postings, as ingestion
        DocumentTerm.rebuild_for(document.pk)
        ChunkTerm.rebuild_for(document.pk)
    _analyze(
        "accounts_user",
        "documents_document",
        "documents_chunk",
        "documents_embedding",
        "documents_documentterm",
        "documents_chunkterm",
    )
    client = Client()
    client.force_login(admin_user)
    queries = _queries(client, f"/api/search?q={WORDS[1]}+{WORDS[2]}&k=10")
    plan = _explain(_query(queries, "fused AS ("), setup=_query(queries, "set_config"))
    big = ("documents_chunk", "documents_embedding", "documents_chunkterm")
    # The text leg reads each term's postings best first from the (term, weight) index.
    _uses(_cte(plan, "txt_read"), "chunkterm_term_weight_idx", no_seq_scan_on=big)
    _uses(_cte(plan, "vec"), index_name(MODEL_ID), no_seq_scan_on=big)
