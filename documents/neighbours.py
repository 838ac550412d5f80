"""The neighbouring passages of a hit: the chunks before and after it in the same
document and section, in reading order. An answer reads them with its passages
(chats.answering.retrieval) and a search result can show them (the API's
include=context): a fact that spans two chunks is whole in the neighbourhood."""

from __future__ import annotations

from django.db.models import Q

from documents.models import Chunk


def section_body(content: str, section: str) -> str:
    """A chunk's text without the section line it starts with."""
    if section and content.startswith(section):
        return content[len(section) :].lstrip("\n")
    return content


def neighbourhoods(hits: list, span: int) -> dict[int, tuple[str, list[tuple[int, str]]]]:
    """chunk id -> (the section line its content starts with, or "", and [(chunk index,
    text without the section line)] of the hit's chunk with up to `span` chunks before
    and after it from the same document and section (its parent), in reading order).
    Chunks that are hits themselves are not repeated in another hit's neighbourhood."""
    return {cid: (head, pieces) for cid, (head, _, pieces) in _around(hits, span).items()}


def _around(hits: list, span: int) -> dict[int, tuple[str, int, list[tuple[int, str]]]]:
    """neighbourhoods(), each with the hit's own chunk index."""
    if not hits:
        return {}
    own = {
        c["id"]: c
        for c in Chunk.objects.filter(id__in=[h.chunk_id for h in hits]).values(
            "id", "document_id", "index", "section"
        )
    }
    around: dict[tuple[int, int], str] = {}
    if span >= 1 and own:
        wanted = Q()
        for c in own.values():
            wanted |= Q(
                document_id=c["document_id"],
                section=c["section"],
                index__range=(c["index"] - span, c["index"] + span),
            )
        around = {
            (n["document_id"], n["index"]): section_body(n["content"], n["section"])
            for n in Chunk.objects.filter(wanted)
            .exclude(id__in=own)
            .values("document_id", "index", "content", "section")
        }
    found = {}
    for hit in hits:
        c = own.get(hit.chunk_id)
        if c is None:
            continue
        key, index = c["document_id"], c["index"]
        pieces = [
            (i, around[(key, i)])
            for i in range(index - span, index + span + 1)
            if i != index and (key, i) in around
        ]
        pieces.append((index, section_body(hit.content, c["section"])))
        head = c["section"] if c["section"] and hit.content.startswith(c["section"]) else ""
        found[hit.chunk_id] = (head, index, sorted(pieces))
    return found


def section_context(hits: list, span: int = 1) -> dict[int, dict[str, str]]:
    """chunk id -> {"before": text, "after": text}: the text of up to `span` chunks of
    the hit's section before and after it (without the section line; "" when the hit
    starts or ends its section, or when the chunk next to it is a hit itself)."""
    return {
        chunk_id: {
            "before": "\n".join(text for i, text in pieces if i < own and text),
            "after": "\n".join(text for i, text in pieces if i > own and text),
        }
        for chunk_id, (_, own, pieces) in _around(hits, span).items()
    }
