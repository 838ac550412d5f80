"""Ingestion benchmark: end-to-end pages/s and chunks/s through the real worker, next to
the raw rates of extraction alone and embedding alone, measured in the same run.

    .venv/bin/python bench/ingest.py [FOLDER ...] [--repeat N]

Defaults to ../shared/sample-docs when it exists. Uses production-like settings
(DEBUG off) on the configured database (embedded by default), as user
bench@example.invalid whose documents are replaced on every run. Prints numbers; it is
not a test.
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.update(
    {
        "DJANGO_SETTINGS_MODULE": "rra.settings",
        "ENV_FILE": "",
        "DEBUG": "false",
        "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_urlsafe(50),
        "LOG_LEVEL": "WARNING",
    }
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folders", nargs="*", type=Path)
    parser.add_argument(
        "--repeat", type=int, default=1, help="ingest the folder N times (as distinct files)"
    )
    args = parser.parse_args()
    folders = args.folders or [ROOT.parent / "shared" / "sample-docs"]

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model
    from django.core.files import File

    from documents.chunking import chunk_extraction
    from documents.embeddings import get_provider
    from documents.extraction import extract_file
    from documents.models import Document
    from documents.services import (
        document_create,
        document_delete,
        document_validate_upload,
        extraction_limits,
    )

    files = sorted(
        p for f in folders for p in f.rglob("*") if p.is_file() and not p.name.startswith(".")
    )
    if not files:
        sys.exit(f"no files under {', '.join(map(str, folders))}")
    limits = extraction_limits()
    mimes = {}
    for path in files:
        with path.open("rb") as fh:
            mimes[path] = document_validate_upload(upload=File(fh, name=path.name))

    # 1. Extraction alone (same child-process path as the pipeline).
    started = time.perf_counter()
    extractions = [
        extract_file(p, mimes[p], limits=limits) for p in files for _ in range(args.repeat)
    ]
    extract_s = time.perf_counter() - started
    pages = sum(e.page_count for e in extractions)

    # 2. Embedding alone (model loaded first, as a running worker has it).
    provider = get_provider()
    provider.embed_documents(["warm-up"])
    drafts = [
        d
        for e in extractions
        for d in chunk_extraction(
            e,
            target_tokens=settings.CHUNK_TARGET_TOKENS,
            overlap_tokens=settings.CHUNK_OVERLAP_TOKENS,
            count_tokens=provider.count_tokens,
        )
    ]
    started = time.perf_counter()
    texts = [d.content for d in drafts]
    for i in range(0, len(texts), provider.batch_size):
        provider.embed_documents(texts[i : i + provider.batch_size])
    embed_s = time.perf_counter() - started
    chunks = len(drafts)

    # 3. End to end: upload, then a real worker process drains the queue.
    user, _ = get_user_model().objects.get_or_create(email="bench@example.invalid")
    for document in Document.objects.filter(owner=user):
        document_delete(document=document)
    for n in range(args.repeat):
        for path in files:
            with path.open("rb") as fh:
                content = fh.read() + (f"\n%bench-copy-{n}\n".encode() if n else b"")
            from django.core.files.base import ContentFile

            upload = ContentFile(content, name=path.name)
            document_create(owner=user, upload=upload, mime_type=mimes[path])
    started = time.perf_counter()
    worker = subprocess.run(
        [sys.executable, "manage.py", "worker", "--batch", "--no-startup-delay", "--no-reload"],
        cwd=ROOT,
        env=os.environ,
        capture_output=True,
        text=True,
    )
    e2e_s = time.perf_counter() - started
    if worker.returncode != 0:
        sys.exit(worker.stderr[-3000:])
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    documents = Document.objects.filter(owner=user)
    statuses = {s: documents.filter(status=s).count() for s in Document.Status.values}
    span_s = (
        max(d.ready_at or d.updated_at for d in documents)
        - min(d.processing_started_at or d.created_at for d in documents)
    ).total_seconds()
    e2e_pages = sum(d.pages_total for d in documents)
    e2e_chunks = sum(d.chunks_total for d in documents)

    print(
        f"files: {len(files)} x {args.repeat}  pages: {pages}  chunks: {chunks}  model: {provider.model_id}"
    )
    print(f"extraction alone : {extract_s:7.2f} s  {pages / extract_s:8.1f} pages/s")
    print(f"embedding alone  : {embed_s:7.2f} s  {chunks / embed_s:8.1f} chunks/s")
    raw_s = extract_s + embed_s
    print(f"raw sum          : {raw_s:7.2f} s")
    print(
        f"end to end       : {span_s:7.2f} s  {e2e_pages / span_s:8.1f} pages/s  {e2e_chunks / span_s:8.1f} chunks/s"
        "  (first claim to last ready)"
    )
    print(f"worker process   : {e2e_s:7.2f} s  (with start-up and model load)")
    print(f"pipeline overhead: {100 * (span_s - raw_s) / raw_s:6.1f} % over the raw sum")
    print(f"worker peak RSS  : {peak_mb:7.1f} MB (largest child process)")
    print(f"statuses         : {statuses}")


if __name__ == "__main__":
    main()
