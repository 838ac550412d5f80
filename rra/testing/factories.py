"""Small builders for rows the tests need often (real rows, no mocks)."""

from __future__ import annotations

import hashlib
import uuid

from documents.models import Document


def document(owner, name: str = "manual.md", **fields) -> Document:
    """A processed document row (no file on disk) owned by ``owner``."""
    key = uuid.uuid4().hex
    fields.setdefault("status", Document.Status.READY)
    return Document.objects.create(
        owner=owner,
        name=name,
        file=f"documents/{key}.md",
        mime_type="text/markdown",
        size=100,
        sha256=hashlib.sha256(key.encode()).hexdigest(),
        **fields,
    )
