"""Every GET endpoint in the URLconf, asked by every kind of reader, across cache bumps,
answers only with the object asked for and only with what that reader may see.

The world: Alice owns a public chat (A) and a private one (A2) and three documents, one
private (DA), one shared (DS); Bob owns a private chat (B), a public one (B2) and a
private document (DB). Chats cite documents of their owners. Carol is a signed-in
stranger holding the public links; the anonymous reader holds them too. Dave is an
admin, who outside Django admin reads what any other signed-in user reads.

Every object has its own marker words in its title/name and in its body (messages,
passages, page text). For each response the test checks:

- no marker of an object the reader may not read (a private chat of someone else, the
  text of a document they cannot open, someone else's tokens);
- a detail answer (an id in the URL) carries the requested object and no other chat's
  or document's body: the body of chat B is never served under chat A's URL;
- an object the reader may not read is answered 404/403/401, a redirect to sign in, or
  405 (no GET), never 200.

The walk runs twice per phase (the second time from the query cache), after a bump that
gives every scope the same generation (as reprocessing a document cited by several
chats does), and after visibilities flip. A new GET endpoint is walked automatically; a
URL argument the walk does not know fails the test until it is taught.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from accounts.models import ApiToken, User
from chats.models import Chat, Citation, Message
from documents.models import Chunk, Document, DocumentContent, Embedding
from documents.vector_index import ensure_index
from rra import metrics, querycache
from rra.testing.fakes import fake_vector
from rra.tests.conftest import DIMS, MODEL_ID

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("redis_url")]

DENIED = {302, 401, 403, 404, 405}


def marker(*parts: str) -> str:
    """A word no other marker contains (the search index keeps it whole)."""
    return "mk" + hashlib.sha256("-".join(parts).encode()).hexdigest()[:10]


@dataclass
class World:
    users: dict[str, User]
    chats: dict[str, Chat]
    documents: dict[str, Document]
    messages: dict[str, list[Message]] = field(default_factory=dict)
    tokens: dict[str, ApiToken] = field(default_factory=dict)

    def reload(self) -> None:
        for chat in self.chats.values():
            chat.refresh_from_db()
        for document in self.documents.values():
            document.refresh_from_db()

    # Who may read what, from the rows as they are now.
    def can_read_chat(self, who: str, chat: Chat) -> bool:
        user = self.users.get(who)
        return chat.visibility == Chat.Visibility.PUBLIC or (
            user is not None and chat.owner_id == user.pk
        )

    def can_read_document(self, who: str, document: Document) -> bool:
        user = self.users.get(who)
        return user is not None and (
            document.visibility == Document.Visibility.SHARED or document.owner_id == user.pk
        )


def _document(owner: User, key: str, visibility: str) -> Document:
    document = Document.objects.create(
        owner=owner,
        name=f"{marker(key, 'name')}.md",
        file=f"documents/{key}.md",
        mime_type="text/markdown",
        size=100,
        sha256=hashlib.sha256(key.encode()).hexdigest(),
        visibility=visibility,
        status=Document.Status.READY,
        embedding_model=MODEL_ID,
    )
    text = f"Calibrate the chuck alignment {marker(key, 'text')} with the dial gauge."
    DocumentContent.objects.create(
        document=document, pages=[text], page_sizes=[[0, 0]], page_count=1
    )
    chunk = Chunk.objects.create(
        document=document,
        index=0,
        first_page=1,
        last_page=1,
        section=marker(key, "section"),
        content=text,
        token_count=12,
        start_offset=0,
        end_offset=len(text),
    )
    Embedding.objects.create(chunk=chunk, model=MODEL_ID, vector=fake_vector(text, DIMS))
    return document


def _chat(owner: User, key: str, visibility: str, cites: list[Document]) -> tuple[Chat, list]:
    chat = Chat.objects.create(owner=owner, title=marker(key, "title"), visibility=visibility)
    question = Message.objects.create(
        chat=chat, role=Message.Role.USER, content=f"How? {marker(key, 'body')}"
    )
    answer = Message.objects.create(
        chat=chat,
        role=Message.Role.ASSISTANT,
        content=f"Like this {marker(key, 'body')} "
        + " ".join(f"[{n}]" for n in range(1, len(cites) + 1)),
    )
    for number, document in enumerate(cites, 1):
        chunk = document.chunks.get()
        Citation.objects.create(
            message=answer,
            chunk=chunk,
            document=document,
            document_name=document.name,
            first_page=1,
            last_page=1,
            section=chunk.section,
            quote=chunk.content,
            number=number,
            rank=number,
            score=0.9,
        )
    return chat, [question, answer]


@pytest.fixture
def world(django_user_model, fake_embeddings) -> World:
    ensure_index(MODEL_ID, DIMS)
    users = {
        name: django_user_model.objects.create_user(
            email=f"{name}@example.com", password="correct horse battery staple 42"
        )
        for name in ("alice", "bob", "carol")
    }
    # An admin reads other people's chats and documents only in Django admin.
    users["dave"] = django_user_model.objects.create_superuser(
        email="dave@example.com", password="correct horse battery staple 42"
    )
    alice, bob = users["alice"], users["bob"]
    documents = {
        "DA": _document(alice, "DA", Document.Visibility.PRIVATE),
        "DS": _document(alice, "DS", Document.Visibility.SHARED),
        "DB": _document(bob, "DB", Document.Visibility.PRIVATE),
    }
    world = World(users=users, chats={}, documents=documents)
    for key, owner, visibility, cites in [
        ("A", alice, Chat.Visibility.PUBLIC, ["DA", "DS"]),
        ("A2", alice, Chat.Visibility.PRIVATE, ["DA"]),
        ("B", bob, Chat.Visibility.PRIVATE, ["DB", "DS"]),
        ("B2", bob, Chat.Visibility.PUBLIC, ["DB"]),
    ]:
        chat, messages = _chat(owner, key, visibility, [documents[k] for k in cites])
        world.chats[key] = chat
        world.messages[key] = messages
    for name, user in users.items():
        token, _raw = ApiToken.issue(user=user, name=marker(name, "token"))
        world.tokens[name] = token
    return world


# --- The URLconf -------------------------------------------------------------------------


def _patterns(resolvers=None, prefix: str = "", namespace: str = ""):
    """(view name, route with <name> placeholders, argument names) of every URL."""
    for entry in resolvers if resolvers is not None else get_resolver().url_patterns:
        if isinstance(entry, URLResolver):
            ns = entry.namespace or ""
            yield from _patterns(
                entry.url_patterns,
                prefix + str(entry.pattern),
                f"{namespace}{ns}:" if ns else namespace,
            )
        elif isinstance(entry, URLPattern):
            route = prefix + str(entry.pattern)
            yield f"{namespace}{entry.name}", route, list(entry.pattern.converters)


def _fill(route: str, values: dict) -> str:
    for name, value in values.items():
        for converter in ("uuid", "int", "str", "slug", "path"):
            route = route.replace(f"<{converter}:{name}>", str(value))
        route = route.replace(f"<{name}>", str(value))
    return "/" + route.lstrip("^").rstrip("$")


# Extra query strings, so that the list endpoints return something worth checking.
QUERIES = {"api:search": "?q=calibrate+chuck+alignment&k=20", "api:documents": "?page_size=50"}


def _targets(world: World):
    """(view name, url, requested object kind and key or None) for every GET URL."""
    kinds = {
        "chat_id": ("chat", world.chats),
        "document_id": ("document", world.documents),
        "message_id": ("message", {k: v[1] for k, v in world.messages.items()}),
        "token_id": ("token", world.tokens),
        # Answers exist (in Redis) only while they stream, and this world has none; who
        # may read one: chats/tests/test_answer_streams.py.
        "answer_id": ("answer", {}),
    }
    for name, route, args in _patterns():
        if route.startswith("admin/") or name in ("metrics",):
            continue  # Django admin and /metrics have their own access rules and tests.
        # Emailed links (sign-up, password reset): asked with a link that is not valid.
        placeholders = {"page": 1, "uidb64": "MQ", "token": "not-a-valid-token"}
        unknown = [a for a in args if a not in kinds and a not in placeholders]
        assert not unknown, f"teach the access matrix the URL argument(s) {unknown} of {name}"
        objects = [a for a in args if a in kinds]
        if not objects:
            yield name, _fill(route, placeholders) + QUERIES.get(name, ""), None
            continue
        assert len(objects) == 1, f"{name}: one object per URL is what the walk knows"
        kind, table = kinds[objects[0]]
        for key, obj in table.items():
            yield name, _fill(route, {objects[0]: obj.pk, "page": 1}), (kind, key)


# --- The checks --------------------------------------------------------------------------


def _forbidden_markers(world: World, who: str, requested) -> dict[str, str]:
    """marker -> why it must not appear in this reader's answer to this request."""
    bad = {}
    own_chats = {k for k, c in world.chats.items() if world.can_read_chat(who, c)}
    for key in world.chats:
        if key not in own_chats:
            bad[marker(key, "title")] = f"title of chat {key}, unreadable"
            bad[marker(key, "body")] = f"messages of chat {key}, unreadable"
        elif requested and requested[0] == "chat" and requested[1] != key:
            bad[marker(key, "body")] = f"messages of chat {key}, not the chat asked for"
    for key, document in world.documents.items():
        if not world.can_read_document(who, document):
            for part in ("name", "text", "section"):
                bad[marker(key, part)] = f"{part} of document {key}, unreadable"
        elif requested and requested[0] == "document" and requested[1] != key:
            bad[marker(key, "text")] = f"text of document {key}, not the document asked for"
    for name in world.tokens:
        if name != who:
            bad[marker(name, "token")] = f"{name}'s API token"
    return bad


def _may_read(world: World, who: str, requested) -> bool | None:
    """Whether the reader may read the requested object (None: no object or no rule)."""
    if requested is None:
        return None
    kind, key = requested
    if kind == "chat":
        return world.can_read_chat(who, world.chats[key])
    if kind == "message":
        return world.can_read_chat(who, world.chats[key])
    if kind == "document":
        return world.can_read_document(who, world.documents[key])
    if kind == "token":
        return who == key
    return None


def _requested_marker(world: World, requested) -> str | None:
    kind, key = requested
    if kind == "chat":
        return marker(key, "title")
    if kind == "document":
        return marker(key, "name")
    return None


def _cache_lookups() -> float:
    return sum(
        metrics.CACHE_REQUESTS.labels(namespace, result)._value.get()
        for namespace in ("users", "chats", "sidebar", "messages", "chat-page")
        for result in ("hit", "miss")
    )


def _cache_hits() -> float:
    return sum(
        metrics.CACHE_REQUESTS.labels(namespace, "hit")._value.get()
        for namespace in ("chats", "sidebar", "messages", "chat-page")
    )


def walk(world: World, clients: dict[str, Client], used_cache: set[str]) -> list[str]:
    """Every GET as every reader; the list of violations (empty: all good)."""
    world.reload()
    problems = []
    for (name, url, requested), (who, client) in itertools.product(
        list(_targets(world)), clients.items()
    ):
        before = _cache_lookups()
        response = client.get(url)
        if _cache_lookups() > before + (0 if who == "anonymous" else 1):
            used_cache.add(name)
        if response.streaming or response.status_code >= 500:
            problems.append(f"{who} GET {url}: status {response.status_code}")
            continue
        body = response.content.decode("utf-8", "replace")
        may_read = _may_read(world, who, requested)
        if may_read is False and response.status_code not in DENIED:
            problems.append(f"{who} GET {url} ({requested}): {response.status_code}, not denied")
        for word, why in _forbidden_markers(world, who, requested).items():
            if word in body:
                problems.append(f"{who} GET {url}: {why} in the answer")
        if may_read and response.status_code == 200:
            wanted = _requested_marker(world, requested)
            if wanted and wanted not in body:
                problems.append(f"{who} GET {url}: the answer is not {requested}")
    return problems


@pytest.fixture
def clients(world: World) -> dict[str, Client]:
    result = {}
    for name in ("alice", "bob", "carol", "dave"):
        client = Client()
        client.force_login(world.users[name])
        result[name] = client
    result["anonymous"] = Client()
    return result


def test_it_serves_every_reader_only_what_they_may_read_across_bumps(world, clients):
    used_cache: set[str] = set()
    phases = []

    def run(phase: str) -> None:
        for attempt in ("cold", "cached"):
            problems = walk(world, clients, used_cache)
            phases.append((phase, attempt, problems))

    run("start")
    hits = _cache_hits()
    # One bump, one generation for every chat and user scope (as when a reprocessed
    # document invalidates all the chats that cite it).
    querycache.bump(
        *(Chat.cache_scope(c.pk) for c in world.chats.values()),
        *(Chat.list_cache_scope(u.pk) for u in world.users.values()),
        *(User.cache_scope(u.pk) for u in world.users.values()),
    )
    run("after one bump of every scope")
    # Visibilities flip: public chats go private and private ones public; the private
    # document is shared and the shared one made private.
    for chat in world.chats.values():
        chat.visibility = (
            Chat.Visibility.PRIVATE
            if chat.visibility == Chat.Visibility.PUBLIC
            else Chat.Visibility.PUBLIC
        )
        chat.save()
    for document in world.documents.values():
        document.visibility = (
            Document.Visibility.PRIVATE
            if document.visibility == Document.Visibility.SHARED
            else Document.Visibility.SHARED
        )
        document.save()
    run("after visibilities flipped")

    failures = [
        f"[{phase}, {attempt}] {problem}"
        for phase, attempt, problems in phases
        for problem in problems
    ]
    assert not failures, "\n".join(failures)
    # The walk went through the query cache, and read from it.
    assert _cache_hits() > hits
    assert {"api:chats", "api:chat-detail", "home", "chat"} <= used_cache, used_cache


def test_it_shows_a_public_chat_citing_a_private_document_as_a_private_source(world, clients):
    chat = world.chats["A"]
    body = clients["carol"].get(f"/api/chats/{chat.pk}").json()
    citations = {c["number"]: c for c in body["messages"][1]["citations"]}
    # DA is Alice's private document: number only. DS is shared: all of it.
    assert citations[1] == {
        **citations[1],
        "private": True,
        "document_id": None,
        "chunk_id": None,
        "document_name": "Private document",
        "quote": "",
        "section": "",
        "pages": "",
    }
    assert citations[2]["private"] is False
    assert marker("DS", "text") in citations[2]["quote"]
    # The owner sees both sources whole.
    mine = clients["alice"].get(f"/api/chats/{chat.pk}").json()
    assert [c["private"] for c in mine["messages"][1]["citations"]] == [False, False]
    page = clients["anonymous"].get(f"/c/{chat.pk}/").content.decode()
    assert "Private document" in page and marker("DA", "text") not in page
    assert json.dumps(marker("DA", "name")) not in page
