"""Search benchmark: SQL latency of documents.search.search() per mode and access case on
synthetic corpora, recall@10 against exact search, the plans PostgreSQL picks, and the
real local model's query-embedding latency.

    .venv/bin/python bench/search.py [--sizes 10000,100000] [--text manuals|zipf]
        [--queries 50] [--reload]

Each size runs in a child process against its own database in the embedded server
(rra_bench_<size> for the zipf text, rra_bench_<size>_manuals for real manual text), so
a rerun reuses the corpus loaded last time; --reload rebuilds it.
With DATABASE_URL / POSTGRES_URL set, that one database is used for every size and the
corpus is replaced whenever the size changes. Production-like settings (DEBUG off);
SEARCH_* environment variables (e.g. SEARCH_EF_SEARCH=200) apply as in the app. Prints
numbers; it is not a test. See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.corpus import (  # noqa: E402 - after the path set-up
    CHUNKS_PER_DOC,
    CORPUS_VERSION,
    DIMS,
    MODEL_ID,
    TEXTS,
    Corpus,
    build_index,
    copy_corpus,
    index_valid,
)

A_EVERY = 50  # every 50th document belongs to user A: 2 % of the rows
SHARED = "shared"
OTHER_USERS = 50
MARKER = "bench_corpus"
WARMUP = 5
EMBED_QUERIES = 20
USING_URL = bool(os.environ.get("POSTGRES_URL") or os.environ.get("DATABASE_URL"))


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def setup_django(db_name: str) -> None:
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "rra.settings",
            "ENV_FILE": "",
            "DEBUG": "false",
            "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_urlsafe(50),
            "LOG_LEVEL": "WARNING",
            "EMBEDDINGS_PROVIDER": "local",
            # The synthetic corpus's vectors are stored as MiniLM's (bench/corpus.py).
            "LOCAL_EMBEDDING_MODEL": "all-MiniLM-L6-v2",
        }
    )
    if not USING_URL:
        os.environ["EMBEDDED_DB_NAME"] = db_name
    import django

    django.setup()


def db_name(size: int, text: str = "zipf") -> str:
    return f"rra_bench_{size}" if text == "zipf" else f"rra_bench_{size}_{text}"


def pct(values: list[float], q: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def bench_users():
    from django.contrib.auth import get_user_model

    User = get_user_model()
    user_a, _ = User.objects.get_or_create(
        email="bench-a@example.invalid", defaults={"password": "!", "type": User.Type.REGULAR}
    )
    staff, _ = User.objects.get_or_create(
        email="bench-staff@example.invalid", defaults={"password": "!", "type": User.Type.ADMIN}
    )
    emails = [f"bench-other-{i}@example.invalid" for i in range(OTHER_USERS)]
    User.objects.bulk_create(
        [User(email=e, password="!") for e in emails],  # noqa: S106 - unusable password
        ignore_conflicts=True,
    )
    by_email = dict(User.objects.filter(email__in=emails).values_list("email", "id"))
    return user_a, staff, [by_email[e] for e in emails]


def owner_slot(doc: int) -> int:
    """-1 for user A, else the index of one of the other users."""
    return -1 if doc % A_EVERY == 0 else doc % OTHER_USERS


def stored_corpus(corpus: Corpus) -> dict | None:
    """The marker row when the database holds this corpus (size, seed, version), else None."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [MARKER])
        if cursor.fetchone()[0] is None:
            return None
        _marker_columns(cursor)
        cursor.execute(
            "SELECT size, seed, version, loaded_at, load_s, analyze_s, index_s, index_mwm,"
            " postings_s, text FROM bench_corpus"
        )
        row = cursor.fetchone()
        if row is None or (*row[:3], row[-1]) != (
            corpus.size,
            corpus.seed,
            CORPUS_VERSION,
            corpus.text,
        ):
            return None
        cursor.execute("SELECT count(*) FROM documents_embedding WHERE model = %s", [MODEL_ID])
        if cursor.fetchone()[0] != corpus.n_docs * CHUNKS_PER_DOC:
            return None
    keys = ("size", "seed", "version", "loaded_at", "load_s", "analyze_s", "index_s", "index_mwm")
    keys += ("postings_s", "text")
    return dict(zip(keys, row, strict=True))


def _marker_columns(cursor) -> None:
    """Columns added to bench_corpus since it was first written (older markers: zipf)."""
    cursor.execute(
        "ALTER TABLE bench_corpus ADD COLUMN IF NOT EXISTS postings_s float8,"
        " ADD COLUMN IF NOT EXISTS text text NOT NULL DEFAULT 'zipf'"
    )


def fill_postings() -> float:
    """The text leg's postings (documents_chunkterm) of every chunk, as ingestion writes
    them, with the (term, weight) index dropped during the insert and built after."""
    from django.db import connection, transaction

    from documents.models import ChunkTerm, postings_sql

    [index] = ChunkTerm._meta.indexes
    started = time.perf_counter()
    with transaction.atomic(), connection.schema_editor() as editor:
        editor.execute("TRUNCATE documents_chunkterm")
        editor.remove_index(ChunkTerm, index)
        editor.execute(postings_sql("true"))
        editor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the FK checks, before the DDL
        editor.add_index(ChunkTerm, index)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE documents_chunkterm")
    return time.perf_counter() - started


def load_corpus(corpus: Corpus, user_a_id: int, other_ids: list[int]) -> float:
    from django.db import connection, transaction

    from documents.vector_index import index_name

    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [MARKER])
        has_marker = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM documents_document")
        if cursor.fetchone()[0] and not has_marker:
            sys.exit(
                "refusing to load: this database holds documents that the benchmark did not "
                "write (point DATABASE_URL at a scratch database)"
            )

    def owner_of(doc: int) -> int:
        slot = owner_slot(doc)
        return user_a_id if slot < 0 else other_ids[slot]

    started = time.perf_counter()
    now = datetime.now(UTC)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS bench_corpus (size bigint, seed bigint, version int,"
            " loaded_at timestamptz, load_s float8, analyze_s float8, index_s float8,"
            " index_mwm text)"
        )
        _marker_columns(cursor)
        cursor.execute("TRUNCATE bench_corpus")
        cursor.execute(
            "TRUNCATE documents_embedding, documents_chunkterm, documents_chunk,"
            " documents_documentcontent, documents_document RESTART IDENTITY CASCADE"
        )
        cursor.execute(f'DROP INDEX IF EXISTS "{index_name(MODEL_ID)}"')
        copy_corpus(cursor, corpus, owner_of=owner_of, now=now, log=log)
        # The text leg's term statistics, as ingestion keeps them (DocumentTerm).
        cursor.execute(
            "INSERT INTO documents_documentterm (document_id, term, chunks)"
            " SELECT c.document_id, t.lexeme, count(*)"
            " FROM documents_chunk c, unnest(c.search_vector) t GROUP BY 1, 2"
        )
        cursor.execute(
            "INSERT INTO bench_corpus (size, seed, version, loaded_at, text)"
            " VALUES (%s, %s, %s, %s, %s)",
            [corpus.size, corpus.seed, CORPUS_VERSION, now, corpus.text],
        )
    return time.perf_counter() - started  # includes the deferred FK checks at commit


def ensure_corpus(corpus: Corpus, *, reload: bool, maintenance_work_mem: str | None) -> dict:
    from django.db import connection

    user_a, staff, other_ids = bench_users()
    info = None if reload else stored_corpus(corpus)
    if info is None:
        log(f"loading {corpus.n_docs * CHUNKS_PER_DOC:,} chunks ({corpus.n_docs:,} documents)")
        load_s = load_corpus(corpus, user_a.pk, other_ids)
        log(f"  VACUUM ANALYZE (load took {load_s:.1f} s)")
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(
                "VACUUM ANALYZE documents_document, documents_chunk, documents_embedding,"
                " documents_documentterm"
            )
        analyze_s = time.perf_counter() - started
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE bench_corpus SET load_s = %s, analyze_s = %s",
                [load_s, analyze_s],
            )
        info = stored_corpus(corpus)
        info["reused"] = False
    else:
        info["reused"] = True
    with connection.cursor() as cursor:
        cursor.execute("SELECT EXISTS (SELECT 1 FROM documents_chunkterm)")
        has_postings = cursor.fetchone()[0]
    if not has_postings:  # loaded now, or by a version without postings
        log("  writing the postings (documents_chunkterm)")
        postings_s = fill_postings()
        with connection.cursor() as cursor:
            cursor.execute("UPDATE bench_corpus SET postings_s = %s", [postings_s])
        info["postings_s"] = postings_s
    if not index_valid():
        index_s, mwm = build_index(maintenance_work_mem, log=log)
        with connection.cursor() as cursor:
            cursor.execute("UPDATE bench_corpus SET index_s = %s, index_mwm = %s", [index_s, mwm])
            cursor.execute("ANALYZE documents_embedding")
        info.update(index_s=index_s, index_mwm=mwm, index_built_now=True)
    info.update(user_a=user_a, staff=staff)
    return info


# --- Measuring ------------------------------------------------------------------------------


class FixedQueryVectors:
    """Stands in for provider.embed_query: returns the vector set for the next call, so
    the measured time is the SQL alone."""

    def __init__(self) -> None:
        self.vector: list[float] | None = None

    def __call__(self, text: str) -> list[float]:
        assert self.vector is not None
        return self.vector


def _force_hnsw(execute, sql, params, many, context):
    """execute_wrapper: inside search()'s transaction, make the exact top-N path look
    expensive (it needs a Sort) so the planner takes the HNSW index."""
    if "vec AS MATERIALIZED" in sql:
        execute("SET LOCAL enable_sort = off", None, False, context)
    return execute(sql, params, many, context)


def run_queries(
    search, fixed, user, queries, mode, exact, force_hnsw=False
) -> tuple[list[float], list[list[int]]]:
    from django.db import connection
    from django.test import override_settings

    latencies, ids = [], []
    # "exact": the vector leg without its index (index scans off), the text leg with
    # every posting of the question's terms (SEARCH_TEXT_POSTINGS=0: every chunk holding
    # one is scored); hybrid exact is both.
    all_postings = exact and mode != "vector"
    for text, vector in queries:
        fixed.vector = vector
        with (
            connection.execute_wrapper(_force_hnsw) if force_hnsw else nullcontext(),
            override_settings(SEARCH_TEXT_POSTINGS=0) if all_postings else nullcontext(),
        ):
            result = search(
                user=user, query=text, k=10, mode=mode, rerank=False, exact=exact and mode != "text"
            )
        latencies.append(result.timings["sql"])
        ids.append([h.chunk_id for h in result.hits])
    return latencies, ids


def explain_vector(search, fixed, user, query) -> list[str]:
    """EXPLAIN ANALYZE of the search statement, run inside search()'s own transaction
    (after its SET of the HNSW knobs), then the statement itself."""
    from django.db import connection

    plan: list[str] = []

    def wrapper(execute, sql, params, many, context):
        if "vec AS MATERIALIZED" in sql and not plan:
            execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params, many, context)
            plan.extend(row[0] for row in context["cursor"].fetchall())
        return execute(sql, params, many, context)

    fixed.vector = query[1]
    with connection.execute_wrapper(wrapper):
        search(user=user, query=query[0], k=10, mode="vector", rerank=False)
    return plan


def vector_cte(plan: list[str]) -> list[str]:
    """The plan lines of the vector leg (the `CTE vec` subtree)."""
    out: list[str] = []
    indent = None
    for line in plan:
        stripped = line.lstrip()
        if indent is None:
            if stripped.startswith("CTE vec"):
                indent = len(line) - len(stripped)
                out.append(line)
            continue
        if stripped.startswith("CTE ") and len(line) - len(stripped) <= indent:
            break
        if line.strip() and len(line) - len(stripped) <= indent:
            break
        out.append(line)
    return out


def share_all(shared: bool) -> None:
    """Every document shared (the shared case) or private again (the corpus as loaded)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE documents_document SET visibility = %s WHERE visibility <> %s",
            ["shared" if shared else "private"] * 2,
        )
        if cursor.rowcount:
            cursor.execute("ANALYZE documents_document")


def child(size: int, args: argparse.Namespace) -> None:
    run_started = time.perf_counter()
    setup_django(db_name(size, args.text))
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from documents.embeddings import get_provider
    from documents.models import EVERY_DOCUMENT
    from documents.search import search
    from documents.vector_index import index_name

    log(f"== {size:,} chunks ({args.text}): database {connection.settings_dict['NAME']}")
    call_command("migrate", verbosity=0, interactive=False)
    corpus = Corpus(size, args.seed, args.text)
    info = ensure_corpus(corpus, reload=args.reload, maintenance_work_mem=args.maintenance_work_mem)
    user_a = info["user_a"]
    a_docs = [d for d in range(corpus.n_docs) if owner_slot(d) < 0]

    provider = get_provider()
    assert provider.model_id == MODEL_ID and provider.dimensions == DIMS
    fixed = FixedQueryVectors()
    provider.embed_query = fixed  # instance attribute: shadows the real model
    cases = [
        ("filtered", user_a, len(a_docs) * CHUNKS_PER_DOC, a_docs, 1),
        (
            "unfiltered",
            EVERY_DOCUMENT,
            corpus.n_docs * CHUNKS_PER_DOC,
            list(range(corpus.n_docs)),
            2,
        ),
        # A shared library: every document shared, read by user A (a regular user).
        (SHARED, user_a, corpus.n_docs * CHUNKS_PER_DOC, list(range(corpus.n_docs)), 3),
    ]
    cases = [c for c in cases if c[0] in args.cases.split(",")]
    rows = []
    plans = {}
    load_start = os.getloadavg()[0]
    try:
        for case, user, readable, docs, salt in cases:
            share_all(case == SHARED)
            queries = corpus.queries(docs, args.warmup + args.queries, salt)
            warm, measured = queries[: args.warmup], queries[args.warmup :]
            exact_ids: list[list[int]] = []
            passes = [("vector", True, False), ("vector", False, False)]
            if case == "filtered":
                passes.append(("vector", False, True))
            passes += [("text", True, False), ("text", False, False)]
            passes += [("hybrid", True, False), ("hybrid", False, False)]
            for mode, exact, forced in passes:
                label = (
                    f"{case} {mode}{' exact' if exact else ''}{' HNSW forced' if forced else ''}"
                )
                log(f"  {label}: {args.warmup} warm-up + {len(measured)} queries")
                run_queries(search, fixed, user, warm, mode, exact, forced)
                latencies, ids = run_queries(search, fixed, user, measured, mode, exact, forced)
                if exact:
                    exact_ids, exact_lat = ids, latencies
                    continue
                row = {
                    "case": case,
                    "readable": readable,
                    "mode": "vector*" if forced else mode,
                    "p50": pct(latencies, 50),
                    "p95": pct(latencies, 95),
                    "hits": statistics.mean(len(i) for i in ids),
                }
                if exact_ids:  # against the exact pass of its mode, run just before
                    row["recall"] = statistics.mean(
                        len(set(h) & set(e)) / len(e) if e else 1.0
                        for h, e in zip(ids, exact_ids, strict=True)
                    )
                    row["exact_p50"] = pct(exact_lat, 50)
                    row["exact_p95"] = pct(exact_lat, 95)
                rows.append(row)
            plans[case] = explain_vector(search, fixed, user, measured[0])
    finally:
        del provider.embed_query
        share_all(False)

    # --- Report ---
    print()
    print(
        f"=== {corpus.n_docs * CHUNKS_PER_DOC:,} chunks, {corpus.n_docs:,} documents,"
        f" {DIMS}-dim {MODEL_ID}, {corpus.text} text  (database"
        f" {connection.settings_dict['NAME']})"
    )
    load = (
        f"COPY {info['load_s']:.1f} s (generation, tsvector, indexes and FK checks included),"
        f" VACUUM ANALYZE {info['analyze_s']:.1f} s"
    )
    build = f"HNSW build {info['index_s']:.1f} s (maintenance_work_mem {info['index_mwm']})"
    if info.get("postings_s") is not None:
        build += f", postings {info['postings_s']:.1f} s"
    if not info["reused"]:
        print(f"corpus: loaded now: {load}; {build}")
    elif info.get("index_built_now"):
        print(f"corpus: reused (loaded {info['loaded_at']:%Y-%m-%d %H:%M}: {load}); {build} now")
    else:
        print(f"corpus: reused, loaded {info['loaded_at']:%Y-%m-%d %H:%M}: {load}; {build}")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_size_pretty(pg_total_relation_size('documents_embedding')),"
            " pg_size_pretty(pg_relation_size(to_regclass(%s))),"
            " pg_size_pretty(pg_total_relation_size('documents_chunk')),"
            " pg_size_pretty(pg_total_relation_size('documents_chunkterm')),"
            " (SELECT reltuples::bigint FROM pg_class WHERE relname = 'documents_chunkterm'),"
            " current_setting('shared_buffers')",
            [index_name(MODEL_ID)],
        )
        emb_size, hnsw_size, chunk_size, post_size, post_rows, shared_buffers = cursor.fetchone()
    print(
        f"sizes: embeddings {emb_size} (HNSW index {hnsw_size}), chunks {chunk_size},"
        f" postings {post_size} (~{post_rows:,} rows); shared_buffers {shared_buffers}"
    )
    print(
        f"settings: SEARCH_EF_SEARCH={settings.SEARCH_EF_SEARCH}"
        f" SEARCH_ITERATIVE_SCAN={settings.SEARCH_ITERATIVE_SCAN}"
        f" SEARCH_CANDIDATES={settings.SEARCH_CANDIDATES}"
        f" SEARCH_TEXT_POSTINGS={settings.SEARCH_TEXT_POSTINGS}; k=10, rerank off;"
        f" {args.queries} queries per row after {args.warmup} warm-up"
    )
    print(
        f"machine: {os.cpu_count()} CPUs, load average (1 min) {load_start:.1f} at the start of"
        f" the queries, {os.getloadavg()[0]:.1f} at the end"
    )
    print(
        "latency: search()'s timings['sql'] (the transaction: SET of the HNSW knobs, the"
        " statement, fetch), query embedding excluded"
    )
    print()
    header = f"{'case':<11}{'readable':>10}  {'mode':<7}{'p50_ms':>8}{'p95_ms':>8}{'hits':>6}{'recall@10':>11}{'exact_p50':>11}{'exact_p95':>11}"
    print(header)
    print("-" * len(header))
    for r in rows:
        extra = (
            f"{r['recall']:>11.3f}{r['exact_p50']:>11.1f}{r['exact_p95']:>11.1f}"
            if "recall" in r
            else ""
        )
        print(
            f"{r['case']:<11}{r['readable']:>10,}  {r['mode']:<7}{r['p50']:>8.1f}{r['p95']:>8.1f}{r['hits']:>6.1f}{extra}"
        )
    print(
        "hits: mean results returned (k=10); recall@10: overlap of the top 10 with exact=True"
        " (index scans off), whose latency is exact_p50/p95;\nvector*: HNSW forced (SET LOCAL"
        " enable_sort = off inside search()'s transaction) where the planner picks on its own;"
        f"\ntext: recall@10 and exact_* against SEARCH_TEXT_POSTINGS=0 (every posting of the"
        f" question's terms; the rows use {settings.SEARCH_TEXT_POSTINGS});"
        "\nhybrid: against both legs exact (index scans off and every posting)"
    )
    for case, plan in plans.items():
        vec = vector_cte(plan)
        used = any(index_name(MODEL_ID) in line for line in vec)
        totals = "; ".join(
            line.strip() for line in plan if line.startswith(("Planning Time", "Execution Time"))
        )
        print()
        print(
            f"EXPLAIN (ANALYZE, BUFFERS) of one {case} vector query: HNSW index used:"
            f" {'yes' if used else 'NO'} ({totals}); the vector leg:"
        )
        for line in vec:
            if not line.strip().startswith(("Storage:", "Index Searches:")):
                print("  " + re.sub(r"'\[[^\]]*\]'", "'[…]'", line))
    print()
    print(f"({size:,}: {time.perf_counter() - run_started:.0f} s in all)")
    sys.stdout.flush()


def embedding_latency(first_db: str) -> None:
    setup_django(first_db)
    from documents.embeddings import get_provider

    provider = get_provider()
    log(f"query embedding latency: loading {provider.model_id}")
    started = time.perf_counter()
    provider.warm_up()
    load_s = time.perf_counter() - started
    texts = [
        "how do I calibrate the spindle encoder",
        "torque specification for the main drive bolts",
        "replace the hydraulic filter",
        "error E42 on startup",
        "what is the maximum feed rate in millimetres per minute for aluminium",
        "coolant pump does not start after maintenance",
        "reset the tool changer after a power failure",
        "lubrication interval",
        "how to level the machine bed and check the alignment of the guide rails",
        "safety interlock bypass procedure",
    ]
    for text in texts[:3]:
        provider.embed_query(text)
    latencies = []
    for i in range(EMBED_QUERIES):
        started = time.perf_counter()
        provider.embed_query(texts[i % len(texts)] + (f" {i}" if i >= len(texts) else ""))
        latencies.append((time.perf_counter() - started) * 1000)
    import torch

    print(
        f"query embedding ({provider.model_id}, load average {os.getloadavg()[0]:.1f}, real model, {torch.get_num_threads()} torch"
        f" threads, model load {load_s:.1f} s): p50 {pct(latencies, 50):.1f} ms,"
        f" p95 {pct(latencies, 95):.1f} ms over {EMBED_QUERIES} queries"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", default="10000,100000", help="chunks per corpus, comma-separated"
    )
    parser.add_argument("--queries", type=int, default=50, help="measured queries per row")
    parser.add_argument("--warmup", type=int, default=WARMUP, help="warm-up queries per row")
    parser.add_argument("--reload", action="store_true", help="rebuild the corpora")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--text", choices=TEXTS, default="manuals", help="real manual text or made-up words"
    )
    parser.add_argument(
        "--cases", default=f"filtered,unfiltered,{SHARED}", help="access cases, comma-separated"
    )
    parser.add_argument(
        "--maintenance-work-mem",
        help="for the HNSW build (default: the server's setting), e.g. 1GB",
    )
    parser.add_argument("--no-embed", action="store_true", help="skip the real-model latency")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args)
        return
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    for size in sizes:
        if size < A_EVERY * CHUNKS_PER_DOC or size % CHUNKS_PER_DOC:
            parser.error(
                f"each size must be a multiple of {CHUNKS_PER_DOC} and at least"
                f" {A_EVERY * CHUNKS_PER_DOC} (user A owns every {A_EVERY}th document)"
            )
    started = time.perf_counter()
    passthrough = ["--queries", str(args.queries), "--warmup", str(args.warmup)]
    passthrough += ["--seed", str(args.seed), "--text", args.text, "--cases", args.cases]
    if args.reload:
        passthrough.append("--reload")
    if args.maintenance_work_mem:
        passthrough += ["--maintenance-work-mem", args.maintenance_work_mem]
    for size in sizes:
        done = subprocess.run(
            [sys.executable, __file__, "--child", str(size), *passthrough], check=False
        )
        if done.returncode:
            sys.exit(f"size {size} failed (exit status {done.returncode})")
    if not args.no_embed:
        print()
        embedding_latency(db_name(sizes[0], args.text))
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
