"""Cost of the citation viewer on large documents without pages: one section of a big
Markdown, plain-text or DOCX-like manual, rendered with its passage marked.

    nice -n 10 .venv/bin/python bench/viewer_sections.py [--sections 2000] [--requests 50]

Builds the documents with the real extraction and chunking (no embeddings: the viewer
never reads them) in a database of its own (test_<name>, kept between runs, the
documents replaced), then GETs /api/documents/{id}/pages/1?chunk=<a random chunk> with
Django's test client, in this process. Prints the size of each document and the
milliseconds per request (median, p95). Numbers, not a test.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rra.settings")


def markdown(sections: int) -> str:
    parts = ["# Operator's manual\n"]
    for n in range(1, sections + 1):
        parts.append(
            f"## {n} Procedure {n}\n\nBefore step {n}, read **all** of section {n}. "
            f"Set the `valve {n}` to {n % 90} degrees and check the [gauge](https://example.com/{n}).\n\n"
            f"- Open the cover of unit {n}.\n- Turn the knob {n} times.\n\n"
            f"| Part | Torque |\n|---|---|\n| bolt {n} | {n % 50 + 10} Nm |\n\n"
            + " ".join(f"Sentence {k} of the procedure {n} says what to do." for k in range(30))
            + "\n"
        )
    return "\n".join(parts)


def plain_text(sections: int) -> str:
    parts = ["Operator's manual\n=================\n"]
    for n in range(1, sections + 1):
        title = f"{n} Procedure {n}"
        parts.append(
            f"{title}\n{'-' * len(title)}\n\n"
            + "\n".join(f"Line {k} of procedure {n}: turn the knob." for k in range(30))
            + "\n"
        )
    return "\n".join(parts)


def build(owner, name: str, mime: str, text: str):
    from django.core.files.base import ContentFile
    from django.utils import timezone

    from documents.chunking import chunk_extraction
    from documents.embeddings import approximate_token_count
    from documents.extraction.text import extract_markdown, extract_text
    from documents.models import Chunk, Document, DocumentContent
    from documents.services import stored_blocks

    extraction = extract_markdown(text) if mime == "text/markdown" else extract_text(text)
    drafts = chunk_extraction(
        extraction, target_tokens=254, overlap_tokens=0, count_tokens=approximate_token_count
    )
    data = text.encode()
    document = Document(
        owner=owner,
        name=name,
        mime_type=mime,
        size=len(data),
        sha256=f"{name}-{len(data)}",
        status=Document.Status.READY,
        ready_at=timezone.now(),
        pages_total=1,
        chunks_total=len(drafts),
    )
    document.file.save("bench", ContentFile(data), save=False)
    document.save()
    DocumentContent.objects.create(
        document=document,
        pages=[p.text for p in extraction.pages],
        page_count=1,
        char_count=extraction.char_count,
        blocks=stored_blocks(extraction),
    )
    Chunk.objects.bulk_create(
        Chunk(
            document=document,
            index=d.index,
            first_page=1,
            last_page=1,
            section=d.section,
            content=d.content,
            token_count=d.token_count,
            start_offset=d.start,
            end_offset=d.end,
        )
        for d in drafts
    )
    return document


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment

    settings.ALLOWED_HOSTS = ["*"]
    setup_test_environment()
    connection.creation.create_test_db(verbosity=0, keepdb=True)
    user_model = get_user_model()
    owner, _ = user_model.objects.get_or_create(email="bench-viewer@example.com")
    owner.documents.all().delete()
    client = Client()
    client.force_login(owner)
    rng = random.Random(7)  # noqa: S311 - picks chunks to view, not a secret
    print(f"{'document':<12} {'MB':>6} {'chunks':>7} {'median ms':>10} {'p95 ms':>8}")
    for name, mime, text in (
        ("manual.md", "text/markdown", markdown(args.sections)),
        ("manual.txt", "text/plain", plain_text(args.sections)),
    ):
        document = build(owner, name, mime, text)
        chunk_ids = list(document.chunks.values_list("pk", flat=True))
        times = []
        for _ in range(args.requests):
            chunk = rng.choice(chunk_ids)
            started = time.perf_counter()
            response = client.get(f"/api/documents/{document.pk}/pages/1", {"chunk": chunk})
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200 and "<mark>" in response.json()["html"]
        times.sort()
        p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
        print(
            f"{name:<12} {len(text) / 1e6:>6.2f} {len(chunk_ids):>7} "
            f"{statistics.median(times):>10.1f} {p95:>8.1f}"
        )


if __name__ == "__main__":
    main()
