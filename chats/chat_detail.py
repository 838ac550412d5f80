"""A chat's API (GET /api/chats/<id>) while Redis is unreachable: the chat and its first
page of messages in one statement with the request's user.

With Redis up a chat's API is the access check (one query) and one MGET. While Redis's
circuit breaker is open nothing is cached, and DRF's path took the token with its user
(or the session with its user), the access check, the page of messages with their vote
counts and the viewer's own vote, their citations and the documents the viewer may read
of them: up to five round trips and the ORM and DRF's serializers around each, 2.5-2.8x
the cached chat's CPU (bench/README.md). For a first page (no cursor; ``page_size``
allowed) the chat, the access rule, the messages with their votes and their citations
with whether the viewer may read each cited document are instead one SELECT
(``DetailQuery.sql``: the messages as a LATERAL join, each one's citations as a JSON
array), read in the same statement as the API token or the session and its user
(accounts.authentication.token_user_with, accounts.sessions.read_session_with), or
alone for a reader without either (a public chat), and built as DRF builds it:
ChatSerializer's and MessageSerializer's fields, OldestFirst's next link, the citations
hidden as chats.selectors.hide_unreadable_sources hides them; the same JSON bytes
(chats/tests/test_chat_detail_db.py compares them). A chat the viewer may not read, or
none, gives no rows: DRF answers it (its 404), as it answers later pages (a cursor).

The access rules are written here in SQL a second time: Chat.objects.readable_by (the
owner's, or public) and Document.objects.readable_by (the reader's own or shared; none
for a reader who is not signed in). The tests compare both paths for the owner, another
user, a reader without a session, public and private chats and documents.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from types import SimpleNamespace

from django.db import connection
from rest_framework import serializers
from rest_framework.pagination import CursorPagination

from chats.chat_list import first_page
from chats.models import Chat, Citation, Message, Vote
from chats.rendering import render_answer
from chats.selectors import PRIVATE_SOURCE, REMOVED_SOURCE
from documents.models import Document, location_label, pages_label


class OldestFirst(CursorPagination):
    ordering = ("created_at", "id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


_DATETIME = serializers.DateTimeField()

# The row's columns: the chat's (ChatSerializer's fields and its owner), then one
# message's (MessageSerializer's model fields), its votes, its citations (JSON).
_CHAT = ("id", "title", "visibility", "owner_id", "created_at", "updated_at")
_MESSAGE = (
    "id",
    "role",
    "content",
    "status",
    "error",
    "prompt_tokens",
    "completion_tokens",
    "model",
    "created_at",
)
# CitationSerializer's model fields and what its computed ones need, then whether the
# viewer may read the cited document.
_CITATION = (
    "number",
    "document_id",
    "document_name",
    "chunk_id",
    "first_page",
    "last_page",
    "paged",
    "section",
    "quote",
    "score",
    "source_removed",
)


def _columns(model, alias: str, names: tuple[str, ...]) -> list[str]:
    return [f'{alias}."{model._meta.get_field(name).column}"' for name in names]


def _statement() -> str:
    """The SELECT of DetailQuery.sql, written once per process from the models' names.
    Parameters: shared, page size + 1, chat id, public."""
    chat = [f"{c} AS chat_{n}" for c, n in zip(_columns(Chat, "c", _CHAT), _CHAT, strict=True)]
    message = _columns(Message, "m", _MESSAGE)
    citation = _columns(Citation, "ct", _CITATION)
    vote = f'"{Vote._meta.db_table}" v WHERE v."message_id" = m."id"'
    # Document.objects.readable_by: the viewer's own documents and shared ones, none
    # for a reader who is not signed in (u."id" NULL).
    readable = (
        f'u."id" IS NOT NULL AND EXISTS (SELECT 1 FROM "{Document._meta.db_table}" d '  # noqa: S608
        'WHERE d."id" = ct."document_id" AND (d."owner_id" = u."id" OR d."visibility" = %s))'
    )
    inner = ", ".join(message)
    # Each output column named once (the statement is read as x.* around it).
    outer = ", ".join(f'm."{Message._meta.get_field(n).column}" AS message_{n}' for n in _MESSAGE)
    # Column and table names from the models; every value is a parameter. The viewer is
    # u."id": the token's or session's user (NULL for nobody signed in).
    return (
        f"SELECT {', '.join(chat)}, {outer}, m.up, m.down, m.mine, m.citations "  # noqa: S608
        f'FROM "{Chat._meta.db_table}" c LEFT JOIN LATERAL ('
        f"SELECT {inner}, "
        f'(SELECT count(*) FROM {vote} AND v."value" = {Vote.Value.UP:d}) AS up, '
        f'(SELECT count(*) FROM {vote} AND v."value" = {Vote.Value.DOWN:d}) AS down, '
        f'(SELECT v."value" FROM {vote} AND v."user_id" = u."id" LIMIT 1) AS mine, '
        f"(SELECT json_agg(json_build_array({', '.join(citation)}, {readable}) "
        f'ORDER BY ct."number") FROM "{Citation._meta.db_table}" ct '
        'WHERE ct."message_id" = m."id") AS citations '
        f'FROM "{Message._meta.db_table}" m WHERE m."chat_id" = c."id" '
        'ORDER BY m."created_at", m."id" LIMIT %s) m ON true '
        # Chat.objects.readable_by: the owner's, or public.
        'WHERE c."id" = %s AND (c."owner_id" = u."id" OR c."visibility" = %s)'
    )


_SQL: list[str] = []


@dataclass(frozen=True)
class DetailQuery:
    """A chat's first page of messages: the chat and the page's size, as DRF reads them."""

    chat_id: uuid.UUID
    page_size: int

    def sql(self) -> tuple[str, list]:
        """A SELECT of one row per message of the page (one more to know whether a next
        page exists), or one row with no message for a chat without any; none when the
        viewer ``u."id"`` may not read the chat."""
        if not _SQL:
            _SQL.append(_statement())
        params = [
            Document.Visibility.SHARED.value,
            self.page_size + 1,
            self.chat_id,
            Chat.Visibility.PUBLIC.value,
        ]
        return _SQL[0], params


def detail_query(request, chat_id) -> DetailQuery | None:
    """The page a GET asks for when it is a first page (no cursor); None otherwise (DRF
    answers it)."""
    params = request.GET
    if OldestFirst.cursor_query_param in params or not isinstance(chat_id, uuid.UUID):
        return None
    page_size = OldestFirst().get_page_size(SimpleNamespace(query_params=params))
    return DetailQuery(chat_id=chat_id, page_size=page_size)


def anonymous_rows(query: DetailQuery) -> list[tuple]:
    """The rows of ``query`` for a reader who is not signed in (public chats only)."""
    sql, params = query.sql()
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT x.* FROM (SELECT NULL::bigint AS "id") u CROSS JOIN LATERAL ({sql}) x',  # noqa: S608
            params,
        )
        return cursor.fetchall()


def detail(request, user, query: DetailQuery, rows: list[tuple]) -> dict:
    """The body DRF's path makes of the chat and this page (ChatDetailView._detail) for
    the viewer ``user``, from the rows of ``query``."""
    chat = dict(zip(_CHAT, rows[0][: len(_CHAT)], strict=True))
    width = len(_CHAT) + len(_MESSAGE)
    messages = sorted(
        (
            {**dict(zip(_MESSAGE, row[len(_CHAT) : width], strict=True)), "_rest": row[width:]}
            for row in rows
            if row[len(_CHAT)] is not None
        ),
        key=lambda message: (message["created_at"], message["id"]),
    )
    paginator = OldestFirst()
    paginator.page_size = query.page_size
    shown, next_link = first_page(paginator, request, messages)
    return {
        "id": str(chat["id"]),
        "title": chat["title"],
        "visibility": chat["visibility"],
        "is_owner": bool(user.is_authenticated and chat["owner_id"] == user.pk),
        "created_at": _DATETIME.to_representation(chat["created_at"]),
        "updated_at": _DATETIME.to_representation(chat["updated_at"]),
        "messages": [_message(message) for message in shown],
        "next": next_link,
        "previous": None,
    }


def _message(message: dict) -> dict:
    """MessageSerializer's fields of one message."""
    up, down, mine, citations = message["_rest"]
    if isinstance(citations, str):  # a json column read as text
        citations = json.loads(citations)
    assistant = message["role"] == Message.Role.ASSISTANT
    return {
        "id": message["id"],
        "role": message["role"],
        "content": message["content"],
        "html": render_answer(message["content"]) if assistant else "",
        "status": message["status"],
        "error": message["error"],
        "prompt_tokens": message["prompt_tokens"],
        "completion_tokens": message["completion_tokens"],
        "model": message["model"],
        "created_at": _DATETIME.to_representation(message["created_at"]),
        "citations": [_citation(*values) for values in citations or ()],
        "votes": {"up": up, "down": down, "mine": mine},
    }


def _citation(
    number,
    document_id,
    document_name,
    chunk_id,
    first,
    last,
    paged,
    section,
    quote,
    score,
    source_removed,
    readable,
) -> dict:
    """CitationSerializer's fields of one citation, hidden as
    chats.selectors.hide_unreadable_sources hides it from this viewer."""
    private = False
    if not readable:
        if document_id is None and source_removed:  # deleted: said so, to everyone
            document_name = REMOVED_SOURCE
        else:
            private, document_id, document_name = True, None, PRIVATE_SOURCE
        chunk_id, section, quote, first, last = None, "", "", 0, 0
    return {
        "number": number,
        "document_id": document_id,
        "document_name": document_name,
        "chunk_id": chunk_id,
        "first_page": first,
        "last_page": last,
        "pages": "" if private else (pages_label(first, last) if paged else ""),
        "location": "" if private else location_label(first, last, section, paged=paged),
        "section": section,
        "quote": quote,
        "score": float(score),
        "private": private,
        "source_removed": bool(source_removed and not private),
    }


def request_query(request) -> DetailQuery | None:
    """The chat's first page the request asks for (its URL's chat), or None."""
    match = getattr(request, "resolver_match", None)
    return detail_query(request, match.kwargs.get("chat_id")) if match else None
