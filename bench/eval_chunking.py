"""Sweep chunk size, overlap and fusion weights on a folder of manuals and a question set.

    .venv/bin/python bench/eval_chunking.py ../shared/sample-docs bench/eval/roborail.jsonl

Ingests the folder once per chunking setting (own database: EMBEDDED_DB_NAME=rra_eval)
and prints hit@1 / hit@5 / MRR@10 per mode on the questions of the tune split (the
held-out ones are never looked at while choosing), then the fusion-weight sweep for the
best setting, then the held-out numbers of the chosen setting. Prints numbers; it is
not a test.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.update(
    {
        "DJANGO_SETTINGS_MODULE": "rra.settings",
        "ENV_FILE": "",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "LOG_LEVEL": "WARNING",
        "EMBEDDED_DB_NAME": os.environ.get("EMBEDDED_DB_NAME", "rra_eval"),
    }
)

SETTINGS = [(128, 0), (128, 24), (200, 0), (200, 30), (254, 0), (254, 40)]
WEIGHTS = [(1.0, 0.0), (0.7, 0.3), (0.5, 0.5), (0.3, 0.7), (0.2, 0.8), (0.0, 1.0)]


def main() -> None:
    folder, questions = Path(sys.argv[1]), Path(sys.argv[2])
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.files.base import ContentFile
    from django.core.management import call_command

    from documents.evaluation import evaluate, load_cases
    from documents.models import Document
    from documents.services import (
        document_create,
        document_delete,
        document_ingest,
        document_validate_upload,
    )

    call_command("migrate", verbosity=0)
    every = load_cases(questions)
    cases = [c for c in every if c.split == "tune"]
    held_out = [c for c in every if c.split == "held-out"]
    user, _ = get_user_model().objects.get_or_create(email="eval@example.invalid")
    paths = sorted(p for p in folder.rglob("*") if p.is_file())
    best = None
    print(f"{len(cases)} questions over {len(paths)} files")
    print(
        f"{'target':>6} {'overlap':>7} {'chunks':>6}  {'mode':<7} {'hit@1':>6} {'hit@5':>6} {'MRR':>6}"
    )
    for target, overlap in SETTINGS:
        settings.CHUNK_TARGET_TOKENS, settings.CHUNK_OVERLAP_TOKENS = target, overlap
        for document in Document.objects.all():
            document_delete(document=document)
        for path in paths:
            upload = ContentFile(path.read_bytes(), name=path.name)
            mime = document_validate_upload(upload=upload)
            result = document_create(owner=user, upload=upload, mime_type=mime, enqueue=False)
            document_ingest(document_id=result.document.pk)
        chunks = sum(d.chunks_total for d in Document.objects.all())
        for report in evaluate(cases, k=10, modes=["vector", "text", "hybrid"]):
            print(
                f"{target:>6} {overlap:>7} {chunks:>6}  {report.mode:<7} "
                f"{report.hit_at_1:>6.3f} {report.hit_at_5:>6.3f} {report.mrr:>6.3f}"
            )
            if report.mode == "hybrid" and (best is None or report.mrr > best[0]):
                best = (report.mrr, target, overlap)
    _, target, overlap = best
    print(f"\nbest hybrid MRR at target={target} overlap={overlap}; fusion weights (vector, text):")
    settings.CHUNK_TARGET_TOKENS, settings.CHUNK_OVERLAP_TOKENS = target, overlap
    for document in Document.objects.all():
        document_delete(document=document)
    for path in paths:
        upload = ContentFile(path.read_bytes(), name=path.name)
        result = document_create(
            owner=user,
            upload=upload,
            mime_type=document_validate_upload(upload=upload),
            enqueue=False,
        )
        document_ingest(document_id=result.document.pk)
    chosen = None
    for w_vec, w_txt in WEIGHTS:
        settings.SEARCH_VECTOR_WEIGHT, settings.SEARCH_TEXT_WEIGHT = w_vec, w_txt
        [report] = evaluate(cases, k=10, modes=["hybrid"])
        print(
            f"  {w_vec:.1f} / {w_txt:.1f}: hit@1 {report.hit_at_1:.3f} hit@5 {report.hit_at_5:.3f} MRR {report.mrr:.3f}"
        )
        if chosen is None or report.mrr > chosen[0]:
            chosen = (report.mrr, w_vec, w_txt)
    if any(c.answerable for c in held_out):
        _, w_vec, w_txt = chosen
        settings.SEARCH_VECTOR_WEIGHT, settings.SEARCH_TEXT_WEIGHT = w_vec, w_txt
        print(f"\nheld-out at target={target} overlap={overlap}, weights {w_vec} / {w_txt}:")
        for report in evaluate(held_out, k=10, modes=["vector", "text", "hybrid"]):
            print(
                f"  {report.mode:<7} hit@1 {report.hit_at_1:.3f} hit@5 {report.hit_at_5:.3f} MRR {report.mrr:.3f}"
            )


if __name__ == "__main__":
    main()
