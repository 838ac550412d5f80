"""Hybrid search over the chunks a user may read.

Two legs inside PostgreSQL, fused by reciprocal rank fusion in the same statement:
(a) vector: cosine distance on the active model's partial HNSW index (iterative scans,
    so a selective access filter does not starve the results; the planner may choose an
    exact scan of the filtered rows when that is cheaper);
(b) full text: websearch_to_tsquery against the generated tsvector (GIN).
Access is decided in SQL before ranking. Optional Cohere rerank of the fused top N.
One query embedding call plus one transaction with two statements (the per-transaction
HNSW knobs, then the search).
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Literal

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction

from documents.models import EVERY_DOCUMENT, Document, pages_label
from rra import telemetry

logger = logging.getLogger(__name__)

Mode = Literal["hybrid", "vector", "text"]
MODES: tuple[Mode, ...] = ("hybrid", "vector", "text")
# ts_headline does not escape the text: mark with control characters, escape, then
# turn the marks into <mark> tags (see _snippet_html).
_START, _STOP = "\x02", "\x03"
SNIPPET_OPTIONS = (
    f"StartSel={_START}, StopSel={_STOP}, MaxWords=35, MinWords=15, "
    'MaxFragments=2, FragmentDelimiter=" … "'
)


def _snippet_html(raw: str) -> str:
    return (
        html.escape(
            raw.replace(_START, "").replace(_STOP, "")
            if raw.count(_START) != raw.count(_STOP)
            else raw
        )
        .replace(_START, "<mark>")
        .replace(_STOP, "</mark>")
    )


@dataclass
class Hit:
    chunk_id: int
    document_id: int
    document_name: str
    first_page: int
    last_page: int
    section: str
    snippet: str  # HTML: the chunk text escaped, matching terms in <mark>
    content: str
    score: float  # fused (or reranked) score, higher is better
    vector_rank: int | None = None
    vector_score: float | None = None  # cosine similarity, 1 = same direction
    text_rank: int | None = None
    text_score: float | None = None  # ts_rank_cd
    rerank_score: float | None = None

    @property
    def pages(self) -> str:
        return pages_label(self.first_page, self.last_page)


@dataclass
class SearchResult:
    query: str
    mode: str
    hits: list[Hit]
    timings: dict[str, float] = field(default_factory=dict)  # ms: embed, sql, rerank
    reranked: bool = False


def clean_query(raw: str) -> tuple[str, bool]:
    """Whitespace collapsed; cut to SEARCH_MAX_QUERY_CHARS at the last word boundary.
    Returns the query and whether it was cut."""
    query = " ".join(raw.split())
    limit = settings.SEARCH_MAX_QUERY_CHARS
    if len(query) <= limit:
        return query, False
    cut = query[:limit]
    if " " in cut:
        cut = cut[: cut.rindex(" ")]
    return cut, True


def _access_sql(user, document_ids: list[int] | None) -> tuple[str, list]:
    clauses = ["d.status = 'ready'"]
    params: list = []
    # Everyone, admins included, searches their own and the shared documents.
    if user is not EVERY_DOCUMENT:
        clauses.append("(d.owner_id = %s OR d.visibility = 'shared')")
        params.append(user.pk)
    if document_ids is not None:
        clauses.append("d.id = ANY(%s)")
        params.append(list(document_ids))
    return " AND ".join(clauses), params


def _sql(mode: Mode, dims: int, access: str) -> str:
    # Only fixed SQL and integers are interpolated; every value is a bound parameter.
    vector_leg = f"""
    vec AS MATERIALIZED (
        SELECT e.chunk_id,
               e.vector::vector({dims}) <=> %(qvec)s::vector({dims}) AS distance
        FROM documents_embedding e
        JOIN documents_chunk c ON c.id = e.chunk_id
        -- A semi-join on docs (hashed once) rather than a join on the CTE, which the
        -- planner turns into a re-scan of it for every candidate (bench/search).
        JOIN documents_document d ON d.id = c.document_id AND d.embedding_model = %(model)s
             AND d.id IN (SELECT id FROM docs)
        WHERE e.model = %(model)s
        ORDER BY e.vector::vector({dims}) <=> %(qvec)s::vector({dims})
        LIMIT %(candidates)s
    ),
    vec_ranked AS (
        SELECT chunk_id, distance, row_number() OVER (ORDER BY distance, chunk_id) AS rank
        FROM vec
    ),"""
    text_leg = """
    txt AS MATERIALIZED (
        SELECT c.id AS chunk_id, ts_rank_cd(c.search_vector, q.query) AS rank_score
        FROM documents_chunk c
        JOIN docs d ON d.id = c.document_id,
             q
        WHERE c.search_vector @@ q.query
        ORDER BY rank_score DESC, c.id
        LIMIT %(candidates)s
    ),
    txt_ranked AS (
        SELECT chunk_id, rank_score, row_number() OVER (ORDER BY rank_score DESC, chunk_id) AS rank
        FROM txt
    ),"""
    empty_vec = """
    vec_ranked AS (SELECT NULL::bigint AS chunk_id, NULL::float8 AS distance, NULL::bigint AS rank WHERE false),"""
    empty_txt = """
    txt_ranked AS (SELECT NULL::bigint AS chunk_id, NULL::float4 AS rank_score, NULL::bigint AS rank WHERE false),"""
    return f"""
    WITH
    docs AS MATERIALIZED (
        SELECT d.id, d.name, d.embedding_model FROM documents_document d WHERE {access}
    ),
    q AS (SELECT websearch_to_tsquery(%(config)s::regconfig, %(query)s) AS query),
    {vector_leg if mode in ("hybrid", "vector") else empty_vec}
    {text_leg if mode in ("hybrid", "text") else empty_txt}
    fused AS (
        SELECT COALESCE(v.chunk_id, t.chunk_id) AS chunk_id,
               v.rank AS vector_rank, 1 - v.distance AS vector_score,
               t.rank AS text_rank, t.rank_score AS text_score,
               COALESCE(%(w_vec)s / (%(rrf_k)s + v.rank), 0)
             + COALESCE(%(w_txt)s / (%(rrf_k)s + t.rank), 0) AS score
        FROM vec_ranked v FULL OUTER JOIN txt_ranked t ON t.chunk_id = v.chunk_id
        ORDER BY score DESC, chunk_id
        LIMIT %(limit)s
    )
    SELECT f.chunk_id, c.document_id, d.name, c.first_page, c.last_page, c.section,
           ts_headline(%(config)s::regconfig, c.content, q.query, %(headline)s) AS snippet,
           c.content, f.score, f.vector_rank, f.vector_score, f.text_rank, f.text_score
    FROM fused f
    JOIN documents_chunk c ON c.id = f.chunk_id
    JOIN docs d ON d.id = c.document_id,
         q
    ORDER BY f.score DESC, f.chunk_id
    """


@telemetry.track_search
def search(
    *,
    user,
    query: str,
    k: int = 10,
    document_ids: list[int] | None = None,
    mode: Mode = "hybrid",
    rerank: bool | None = None,
    exact: bool = False,
) -> SearchResult:
    """Ranked passages for a user. `exact` turns the vector index off (benchmarks)."""
    from documents.embeddings import get_provider

    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}")
    query, _ = clean_query(query)
    rerank = bool(settings.COHERE_API_KEY) if rerank is None else rerank
    timings: dict[str, float] = {}
    provider = get_provider()
    qvec = None
    if mode in ("hybrid", "vector"):
        started = time.perf_counter()
        qvec = provider.embed_query(query)
        timings["embed"] = (time.perf_counter() - started) * 1000
    access, access_params = _access_sql(user, document_ids)
    # psycopg named parameters throughout: number the access ones.
    for i in range(len(access_params)):
        access = access.replace("%s", f"%(access_{i})s", 1)
    params = {f"access_{i}": v for i, v in enumerate(access_params)}
    limit = max(k, settings.RERANK_TOP_N) if rerank else k
    params.update(
        {
            "qvec": json.dumps(qvec) if qvec is not None else None,
            "model": provider.model_id,
            "query": query,
            "config": settings.SEARCH_TEXT_CONFIG,
            "candidates": max(settings.SEARCH_CANDIDATES, limit),
            "rrf_k": settings.SEARCH_RRF_K,
            "w_vec": settings.SEARCH_VECTOR_WEIGHT,
            "w_txt": settings.SEARCH_TEXT_WEIGHT,
            "limit": limit,
            "headline": SNIPPET_OPTIONS,
        }
    )
    statement = _sql(mode, provider.dimensions, access)
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('hnsw.ef_search', %s, true),"
            " set_config('hnsw.iterative_scan', %s, true),"
            " set_config('enable_indexscan', %s, true)",
            [
                str(settings.SEARCH_EF_SEARCH),
                settings.SEARCH_ITERATIVE_SCAN,
                "off" if exact else "on",
            ],
        )
        cursor.execute(statement, params)
        rows = cursor.fetchall()
    timings["sql"] = (time.perf_counter() - started) * 1000
    hits = [
        Hit(
            chunk_id=r[0],
            document_id=r[1],
            document_name=r[2],
            first_page=r[3],
            last_page=r[4],
            section=r[5],
            snippet=_snippet_html(r[6]),
            content=r[7],
            score=float(r[8]),
            vector_rank=r[9],
            vector_score=None if r[10] is None else float(r[10]),
            text_rank=r[11],
            text_score=None if r[12] is None else float(r[12]),
        )
        for r in rows
    ]
    reranked = False
    if rerank and hits:
        from documents.rerank import RerankError, rerank_hits

        started = time.perf_counter()
        try:
            hits = rerank_hits(query, hits)
            reranked = True
        except RerankError as exc:  # the fused order stands
            logger.warning("rerank failed, keeping fused order: %s", exc)
        timings["rerank"] = (time.perf_counter() - started) * 1000
    return SearchResult(
        query=query,
        mode=mode,
        hits=hits[:k],
        timings={name: round(ms, 2) for name, ms in timings.items()},
        reranked=reranked,
    )


# --- Result cache -----------------------------------------------------------------
# A user's readable set changes when one of their documents changes, or any shared
# one does (EVERY_DOCUMENT, the operator tools' reader, reads everything). Each is a
# generation counter in the cache; the search cache key includes the generations that
# apply, so a bump invalidates.


def _generation(key: str) -> int:
    value = cache.get(key)
    if value is None:
        cache.add(key, 1, None)
        value = cache.get(key) or 1
    return int(value)


def _bump(key: str) -> None:
    try:
        cache.incr(key)
    except ValueError:
        cache.add(key, 2, None)


def invalidate_for(
    document: Document | None = None, *, owner_id: int | None = None, shared: bool = True
) -> None:
    """Call after any change to what documents are readable (status, visibility, delete)."""
    owner_id = owner_id if owner_id is not None else getattr(document, "owner_id", None)
    if owner_id is not None:
        _bump(f"search:gen:user:{owner_id}")
    if shared:
        _bump("search:gen:shared")
    _bump("search:gen:all")


def cache_key(user, **params) -> str:
    gens = (
        [_generation("search:gen:all")]
        if user is EVERY_DOCUMENT
        else [
            _generation(f"search:gen:user:{user.pk}"),
            _generation("search:gen:shared"),
        ]
    )
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[
        :32
    ]
    return f"search:{user.pk}:{'.'.join(map(str, gens))}:{digest}"


def cached_search(*, user, **params) -> tuple[SearchResult, bool]:
    """search() through the cache; returns the result and whether it was a hit."""
    key = cache_key(user, **params)
    stored = cache.get(key)
    telemetry.cache_lookup("search", hit=stored is not None)
    if stored is not None:
        return SearchResult(**{**stored, "hits": [Hit(**h) for h in stored["hits"]]}), True
    result = search(user=user, **params)
    cache.set(key, asdict(result), settings.SEARCH_CACHE_TTL)
    return result, False
