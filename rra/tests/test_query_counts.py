"""Every list and detail endpoint runs a constant number of queries.

Each endpoint is measured on a small dataset and again after the data grew tenfold
(more chats, messages with citations and votes, documents, pages, chunks, tokens): the
counts must be equal (no N+1) and within the endpoint's bound. Caches are cleared
before each measurement, so a query cache never hides a query. The counts include the
session and user lookups of the signed-in client, and SAVEPOINTs where a view opens a
transaction (the test runs inside one).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import ApiToken
from chats.models import Chat, Citation, Message, Vote
from documents.models import Chunk, Document, DocumentContent, Embedding
from documents.vector_index import ensure_index
from rra.testing.fakes import fake_vector
from rra.tests.conftest import DIMS, MODEL_ID

pytestmark = pytest.mark.django_db

SMALL = 3
LARGE = 10 * SMALL

# Endpoint -> who asks (owner, member: another signed-in user, anonymous) and the most
# queries it may run, for any amount of data.
CASES = {
    "api-me": ("owner", 2),
    "api-tokens": ("owner", 4),  # the page, and the count of its pages (TOKENS_PER_PAGE)
    "api-chats": ("owner", 3),
    # The viewer's own votes come with the messages (one statement).
    "api-chat-detail": ("owner", 5),
    "api-chat-detail-public": ("member", 5),
    "api-chat-detail-anonymous": ("anonymous", 3),
    "api-chat-messages-page": ("owner", 5),
    "api-documents": ("owner", 3),
    "api-document-detail": ("owner", 3),
    "api-document-page": ("owner", 6),
    # + the question's terms and their idf, before the search (documents.search),
    # + the question's language (documents.languages.question_language; cold here).
    "api-search": ("owner", 8),
    "page-home": ("owner", 3),
    # + the reader's own votes, so a reload shows them pressed (issue 22 item 3).
    "page-chat": ("owner", 7),
    # + the owner's name ("Shared by …"), read through the users cache (cold here).
    "page-chat-public": ("member", 8),
    "page-library": ("owner", 3),
}


@dataclass
class World:
    owner: object
    member: object
    chat: Chat
    document: Document
    content: DocumentContent
    size: int = 0


def _answer(chat: Chat, n: int, voters, at) -> None:
    Message.objects.create(chat=chat, role="user", content=f"Question {n}?", created_at=at)
    answer = Message.objects.create(
        chat=chat, role="assistant", content=f"Answer {n} [1] [2].", created_at=at
    )
    Citation.objects.bulk_create(
        Citation(
            message=answer,
            document_name="manual.md",
            first_page=number,
            last_page=number,
            quote=f"passage {n}.{number}",
            number=number,
            rank=number,
            score=0.5,
        )
        for number in (1, 2)
    )
    Vote.objects.bulk_create(
        Vote(message=answer, user=user, value=1 if i % 2 == 0 else -1)
        for i, user in enumerate(voters)
    )


def _document(owner, n: int, **fields) -> Document:
    return Document.objects.create(
        owner=owner,
        name=f"manual-{owner.pk}-{n}.md",
        file=f"documents/{owner.pk}-{n}.md",
        mime_type="text/markdown",
        size=100,
        sha256=hashlib.sha256(f"{owner.pk}-{n}".encode()).hexdigest(),
        embedding_model=MODEL_ID,
        **fields,
    )


def _chunk(document: Document, index: int) -> None:
    text = f"Calibrate the chuck alignment, step {index}, with the dial gauge."
    chunk = Chunk.objects.create(
        document=document,
        index=index,
        first_page=index + 1,
        last_page=index + 1,
        section="Calibration",
        content=text,
        token_count=12,
        start_offset=0,
        end_offset=len(text),
    )
    Embedding.objects.create(chunk=chunk, model=MODEL_ID, vector=fake_vector(text, DIMS))


def grow(world: World, size: int) -> None:
    """Add rows until the world has `size` of everything that the endpoints list."""
    start = timezone.now() - timedelta(days=1)
    for n in range(world.size, size):
        at = start + timedelta(minutes=n)
        _answer(world.chat, n, [world.owner, world.member], at)
        other = Chat.objects.create(owner=world.owner, title=f"Chat {n}", created_at=at)
        _answer(other, n, [world.owner], at)
        _document(world.owner, n, status=("ready", "failed", "embedding")[n % 3])
        shared = _document(world.member, n, status="ready", visibility="shared")
        _chunk(shared, 0)
        _chunk(world.document, n)
        ApiToken.issue(user=world.owner, name=f"token {n}")
    pages = [f"Page {p + 1}: calibrate the chuck alignment." for p in range(size)]
    world.content.pages = pages
    world.content.page_sizes = [[0, 0]] * size
    world.content.page_count = size
    world.content.save()
    world.size = size


@pytest.fixture
def world(owner, member) -> World:
    chat = Chat.objects.create(owner=owner, title="Calibration", visibility="public")
    document = _document(owner, -1, status="ready", visibility="shared")
    content = DocumentContent.objects.create(document=document)
    return World(owner=owner, member=member, chat=chat, document=document, content=content)


def _url(name: str, world: World, client: Client) -> str:
    """The endpoint's URL; for the second page of messages, found through the first."""
    chat, document = world.chat, world.document
    if name == "api-chat-messages-page":
        return client.get(f"/api/chats/{chat.pk}?page_size=2").json()["next"]
    return {
        "api-me": "/api/me",
        "api-tokens": "/api/tokens",
        "api-chats": "/api/chats",
        "api-chat-detail": f"/api/chats/{chat.pk}",
        "api-chat-detail-public": f"/api/chats/{chat.pk}",
        "api-chat-detail-anonymous": f"/api/chats/{chat.pk}",
        "api-documents": "/api/documents",
        "api-document-detail": f"/api/documents/{document.pk}",
        "api-document-page": f"/api/documents/{document.pk}/pages/2?chunk="
        + str(document.chunks.get(index=1).pk),
        "api-search": "/api/search?q=calibrate+the+chuck&k=20",
        "page-home": "/",
        "page-chat": f"/c/{chat.pk}/",
        "page-chat-public": f"/c/{chat.pk}/",
        "page-library": "/documents/",
    }[name]


def _count(client: Client, url: str) -> tuple[int, list[str]]:
    from documents.languages import _question_language

    cache.clear()
    _question_language.cache_clear()  # remembered per process: each count starts cold
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return len(queries), [q["sql"] for q in queries.captured_queries]


@pytest.mark.parametrize("name", list(CASES))
def test_it_runs_the_same_queries_for_ten_times_the_data(name, world, fake_embeddings):
    ensure_index(MODEL_ID, DIMS)
    who, bound = CASES[name]
    client = Client()
    if who != "anonymous":
        client.force_login(getattr(world, who))
    grow(world, SMALL)
    small, small_sql = _count(client, _url(name, world, client))
    grow(world, LARGE)
    large, large_sql = _count(client, _url(name, world, client))
    assert small == large, "\n".join(["small:", *small_sql, "", "ten times larger:", *large_sql])
    assert large <= bound, "\n".join(large_sql)
