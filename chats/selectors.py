"""Reads of chats that decide access: every view gets a chat through these.

Access is decided here, from the database, before anything is read from the query
cache: a cached body is only ever asked for once the requester may read its chat.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.http import Http404

from chats.models import Chat, Citation, Message
from documents.models import Document


def readable_chat(user, chat_id) -> Chat:
    """The chat if the user may read it (its owner; anyone, signed in or not, when it is
    public); Http404 otherwise, also for ids that are not chats."""
    chat = Chat.objects.readable_by(user).filter(pk=chat_id).first()
    if chat is None:
        raise Http404("No such chat.")
    return chat


def own_chat(user, chat_id) -> Chat:
    """A chat the user owns; Http404 for everything else (public chats included)."""
    chat = Chat.objects.owned_by(user).filter(pk=chat_id).first()
    if chat is None:
        raise Http404("No such chat.")
    return chat


PRIVATE_SOURCE = "Private document"
REMOVED_SOURCE = "Removed document"


def hide_unreadable_sources(messages: Iterable[Message], viewer) -> None:
    """Citations to documents the viewer cannot read (now) keep their number, but not
    the document's name, pages, section or text: a public chat shows the owner's answer,
    never the passages of their private documents. Works on prefetched citations, in
    place; one query. Changes to a document's visibility or owner, and its deletion,
    invalidate the cached chats that cite it (documents.signals)."""
    citations: list[Citation] = [c for m in messages for c in m.citations.all()]
    cited = {c.document_id for c in citations if c.document_id is not None}
    readable = (
        set(Document.objects.readable_by(viewer).filter(pk__in=cited).values_list("pk", flat=True))
        if cited
        else set()
    )
    for citation in citations:
        citation.removed = False
        if citation.document_id in readable:
            citation.private = False
            continue
        if citation.document_id is None and citation.source_removed:
            # Deleted (its text went with it, documents.signals): said so, to everyone.
            citation.private = False
            citation.removed = True
            citation.chunk_id = None
            citation.document_name = REMOVED_SOURCE
            citation.section = ""
            citation.quote = ""
            citation.first_page = citation.last_page = 0
            citation.start_offset = citation.end_offset = 0
            continue
        citation.private = True
        citation.document_id = None
        citation.chunk_id = None
        citation.document_name = PRIVATE_SOURCE
        citation.section = ""
        citation.quote = ""
        citation.first_page = citation.last_page = 0
        citation.start_offset = citation.end_offset = 0
