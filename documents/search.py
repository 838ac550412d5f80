"""Hybrid search over the chunks a user may read.

Two legs inside PostgreSQL, fused in the same statement by a weighted sum of their
normalised scores (each candidate of either leg is scored by both):
(a) vector: cosine distance on the active model's partial HNSW index (iterative scans,
    so a selective access filter does not starve the results; the planner may choose an
    exact scan of the filtered rows when that is cheaper);
(b) full text: BM25 with idf from per-document term counts summed over the documents
    the user may read; candidates are the readable chunks of each of the question's
    terms with the highest stored term weights (ChunkTerm, a (term, weight desc) index),
    scored over all of the question's terms. A question in another language than the
    library's (documents.languages) ranks without the words that are stop words of its
    own language (SEARCH_FOREIGN_STOP_WORDS; one more statement for it).
Access is decided in SQL before ranking. Optional Cohere rerank of the fused top N.
One query embedding call plus one transaction with three statements (the
per-transaction HNSW knobs, the question's terms with their idf, then the search).
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Literal

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import connection, transaction

from documents.embeddings import get_provider
from documents.languages import foreign_language, stop_lexemes
from documents.models import Document, location_label, pages_label
from documents.rerank import RerankError, rerank_hits
from documents.snippets import SNIPPET_OPTIONS, SNIPPET_TEXT, snippet_html, without_headings
from documents.vector_index import distance_sql
from rra import telemetry
from rra.querycache import Namespace, bump, cached

logger = logging.getLogger(__name__)

Mode = Literal["hybrid", "vector", "text"]
MODES: tuple[Mode, ...] = ("hybrid", "vector", "text")


# Words of how a question is asked, not of what it is about (lexemes of the english
# config): left out of the ranking and of the coverage that the answer guard reads.
_QUESTION_WORDS_TEXT = """
    use need make get want mean tell may must shall can could would find know happen say
    call way thing anyth someth explain describ show help pleas look like
"""
QUESTION_WORDS = _QUESTION_WORDS_TEXT.split()

# The most terms of a question that are ranked.
MAX_QUERY_TERMS = 32
# The text leg scores fully this many times its candidates (by their partial scores).
SHORTLIST = 4
# A user who may read at least this share of the stored vectors has the vector leg's
# access check as a hashed lookup per candidate instead of a join (_sql's `broad`).
BROAD_SHARE = 0.25


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
    text_score: float | None = None  # BM25
    rerank_score: float | None = None
    # Share of the question's terms (idf-weighted) that the chunk holds, 0..1; None for a
    # question without any term. What the answer's relevance guard reads.
    coverage: float | None = None
    # Whether the document has pages (documents.models.is_paged); else the section
    # names the place of the passage.
    paged: bool = True

    @property
    def pages(self) -> str:
        """The page label ("p. 3", "pp. 3–4"); "" for a document without pages."""
        return pages_label(self.first_page, self.last_page) if self.paged else ""

    @property
    def location(self) -> str:
        """The page label, or "§ Networking › Proxy" for a document without pages."""
        return location_label(self.first_page, self.last_page, self.section, paged=self.paged)


@dataclass
class SearchResult:
    query: str
    mode: str
    hits: list[Hit]
    timings: dict[str, float] = field(default_factory=dict)  # ms: embed, language, sql, rerank
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


def _readable_sql(user, document_ids: list[int] | None) -> tuple[str, dict]:
    """The ready documents `user` may read (optionally only `document_ids`) as a SELECT
    of id, name, embedding_model, chunks_total, mime_type, pages_total with named parameters. Compiled from
    Document.objects.readable_by(): the access rule is written once, there."""
    documents = Document.objects.readable_by(user).ready()
    if document_ids is not None:
        documents = documents.filter(pk__in=document_ids)
    columns = ("id", "name", "embedding_model", "chunks_total", "mime_type", "pages_total")
    try:
        sql, params = documents.order_by().values(*columns).query.sql_with_params()
    except EmptyResultSet:  # none() or an empty document_ids: nothing to read
        return f"SELECT {', '.join(columns)} FROM documents_document WHERE false", {}
    # psycopg named parameters throughout: name Django's positional ones.
    numbers = iter(range(len(params)))
    sql = re.sub(r"(?<!%)%s", lambda _: f"%(access_{next(numbers)})s", sql)
    return sql, {f"access_{i}": value for i, value in enumerate(params)}


def _terms_sql(docs: str) -> str:
    """The question's terms (its lexemes under the text config: stop words and question
    words out, stemmed) with their BM25 idf over the chunks of the readable documents
    (`docs`, from _readable_sql); a term no readable chunk holds has df 0."""
    return f"""
    WITH
    docs AS MATERIALIZED ({docs}),
    qterms AS MATERIALIZED (
        SELECT t.lexeme AS term
        FROM unnest(to_tsvector(%(config)s::regconfig, %(query)s)) t
        WHERE t.lexeme <> ALL(%(question_words)s)
        LIMIT {MAX_QUERY_TERMS}
    )
    SELECT qt.term, s.df, n.n, ln(1 + (n.n - s.df + 0.5) / (s.df + 0.5)) AS idf
    FROM qterms qt
    CROSS JOIN (SELECT GREATEST(COALESCE(sum(chunks_total), 0), 1)::float8 AS n FROM docs) n
    CROSS JOIN LATERAL (
        SELECT COALESCE(sum(dt.chunks), 0)::float8 AS df
        FROM documents_documentterm dt
        WHERE dt.term = qt.term AND dt.document_id IN (SELECT id FROM docs)
    ) s
    ORDER BY qt.term
    """


def _tsquery(terms: list[str]) -> str:
    """An OR tsquery of lexemes, each quoted (so it is taken as is, not parsed again)."""
    return " | ".join("'" + t.replace("\\", "\\\\").replace("'", "''") + "'" for t in terms)


def _selecting_terms(known: list[tuple[str, float, float]]) -> list[str]:
    """The terms whose postings are the text leg's candidates, of (term, df, n): terms in
    over half the readable chunks only when the question has no rarer one. They still
    score every candidate; a passage holding none of the rarer terms is left to the
    vector leg."""
    rare = [t for t, df, n in known if df <= n / 2]
    return sorted(rare or [t for t, _, _ in known])


def _term_params(rows: list[tuple], unranked: frozenset[str] = frozenset()) -> dict:
    """The main statement's term parameters from _terms_sql's rows (term, df, n, idf);
    `tsquery` marks the snippets. An `unranked` term (a stop word of the language of a
    question in another language than the library's, languages.stop_lexemes) does not
    rank; the coverage (what the answer guard reads) counts every term as before."""
    ranked = [r for r in rows if r[0] not in unranked]
    known = [(t, df, n) for t, df, n, _ in ranked if df > 0]
    return {
        "terms": [r[0] for r in rows],
        "selecting": _selecting_terms(known),
        "dfs": [float(r[1]) for r in rows],
        "idfs": [0.0 if r[0] in unranked else float(r[3]) for r in rows],
        "covers": [float(r[3]) for r in rows],
        "tsquery": _tsquery([t for t, _, _ in known]),
        "total_idf": float(sum(r[3] for r in rows)) or None,
    }


def _sql(mode: Mode, dims: int, docs: str, *, broad: bool = False) -> str:
    # Only fixed SQL and integers are interpolated; every value is a bound parameter.
    distance = distance_sql(dims)
    # The access check of the vector leg. A user who may read a large share of the
    # library (`broad`, BROAD_SHARE): a hashed lookup of each candidate's document in
    # docs (IS TRUE keeps the planner from turning it into a join), so the index scan
    # runs in distance order and stops at the candidates; the join below was planned
    # as a semi-join of documents_document with docs, materialised and re-scanned for
    # every candidate (2,000 documents x 50 candidates at 100k chunks: most of the vector
    # leg's time, bench/README). Otherwise a semi-join on docs (hashed once), which
    # lets the planner start from the user's few documents and scan their vectors
    # exactly when that is cheaper than the index (3x faster for a user reading 2 %).
    if broad:
        access = "WHERE e.model = %(model)s AND (c.document_id IN (SELECT id FROM docs)) IS TRUE"
    else:
        access = """JOIN documents_document d ON d.id = c.document_id
             AND d.id IN (SELECT id FROM docs)
        WHERE e.model = %(model)s"""
    vector_leg = f"""
    vec AS MATERIALIZED (
        SELECT e.chunk_id, {distance} AS distance
        FROM documents_embedding e
        JOIN documents_chunk c ON c.id = e.chunk_id
        -- Every document with vectors of this model takes part: they are written all at
        -- once per document (ingest, reindex), so a document's set is always complete,
        -- and one still being reindexed to another model keeps answering with these.
        {access}
        ORDER BY {distance}
        LIMIT %(candidates)s
    ),
    vec_ranked AS (
        SELECT chunk_id, distance, row_number() OVER (ORDER BY distance, chunk_id) AS rank
        FROM vec
    ),"""
    # BM25 from the stored postings (ChunkTerm: a term's weight in a chunk without its
    # idf; per term, weight order is score order), in two rounds (MaxScore):
    # 1. each selecting term (_selecting_terms) brings its SEARCH_TEXT_POSTINGS readable
    #    postings of highest weight (the top of the (term, weight desc) index), summed per
    #    chunk; the SHORTLIST chunks of highest sum (in hybrid mode with the vector leg's
    #    candidates) are scored over all the question's terms. Theta: the k-th score.
    # 2. A chunk of round 2 scores at most the sum, over the terms, of idf times the
    #    term's highest weight (its bound). Selecting terms are taken by bound, lowest
    #    first, while the bounds taken plus those of the other terms stay under theta: a
    #    chunk holding only those cannot reach the top k. Every posting of the remaining
    #    ("essential") selecting terms is read; the chunks whose sum plus the bounds of
    #    the terms not read can still reach theta are scored too.
    # So the top k is exact (a chunk holding no selecting term is left to the vector
    # leg, as are ties at theta); round 2 reads nothing when round 1 settles it.
    # SEARCH_TEXT_POSTINGS=0 reads every posting in round 1 (bench/README, search.py).
    also_vec = "UNION SELECT chunk_id FROM vec" if mode == "hybrid" else ""
    # Round 1's access check. For a `broad` reader a hashed lookup per posting (IS TRUE
    # keeps it from becoming a join), so the index is read in weight order and stops
    # at the postings wanted: as a semi-join the planner, estimating a term's postings
    # at ~1,200, hashed and sorted all of them (16k a term on average for a slow 100k
    # question, bench/README). Otherwise the semi-join, which skips the postings of the
    # documents the user may not read.
    readable = (
        "(ct.document_id IN (SELECT id FROM docs)) IS TRUE"
        if broad
        else "ct.document_id IN (SELECT id FROM docs)"
    )
    # The first round's candidates (a few hundred) are scored from their own postings:
    # per candidate, the primary key's (chunk, term) entries of the question's terms (a
    # LATERAL, so the planner cannot turn it into a read of every posting of every term,
    # which it did when it estimated a term's postings at a few rows: 96k postings
    # hashed to score 250 candidates, bench/README). Round 2's candidates (up to tens of
    # thousands) by one read of the terms' postings, hashed: cheaper than a primary-key
    # probe each. A candidate holding none of the terms has no row.
    score_all = """
        SELECT ct.chunk_id, sum(i.idf * ct.weight) AS rank_score
        FROM documents_chunkterm ct
        JOIN idf i ON i.term = ct.term
        WHERE ct.chunk_id IN (SELECT chunk_id FROM {chunks}) AND ct.term = ANY(%(terms)s)
        GROUP BY ct.chunk_id"""
    score = """
        SELECT c.chunk_id, s.rank_score
        FROM {chunks} c
        CROSS JOIN LATERAL (
            SELECT sum(i.idf * ct.weight) AS rank_score
            FROM documents_chunkterm ct
            JOIN idf i ON i.term = ct.term
            WHERE ct.chunk_id = c.chunk_id AND ct.term = ANY(%(terms)s)
        ) s
        WHERE s.rank_score IS NOT NULL"""
    text_leg = f"""
    txt_read AS MATERIALIZED (
        SELECT p.chunk_id, sum(i.idf * p.weight) AS partial
        FROM idf i
        CROSS JOIN LATERAL (
            SELECT ct.chunk_id, ct.weight
            FROM documents_chunkterm ct
            WHERE ct.term = i.term AND {readable}
            ORDER BY ct.weight DESC
            LIMIT NULLIF(%(postings)s, 0)
        ) p
        WHERE i.term = ANY(%(selecting)s)
        GROUP BY p.chunk_id
    ),
    txt_cand AS MATERIALIZED (
        (SELECT chunk_id FROM txt_read ORDER BY partial DESC, chunk_id
         LIMIT NULLIF(%(shortlist)s, 0))
        {also_vec}
    ),
    txt_first AS MATERIALIZED ({score.format(chunks="txt_cand")}
    ),
    txt_bound AS MATERIALIZED (
        SELECT i.term, i.term = ANY(%(selecting)s) AS selecting,
               i.idf * COALESCE((
                   SELECT ct.weight FROM documents_chunkterm ct
                   WHERE ct.term = i.term AND ct.document_id IN (SELECT id FROM docs)
                   ORDER BY ct.weight DESC LIMIT 1), 0) AS bound
        FROM idf i
        WHERE i.df > 0 AND %(postings)s > 0
    ),
    txt_theta AS MATERIALIZED (
        SELECT (SELECT rank_score FROM txt_first ORDER BY rank_score DESC
                OFFSET %(limit)s - 1 LIMIT 1) AS theta,
               (SELECT COALESCE(sum(bound), 0) FROM txt_bound WHERE NOT selecting) AS others
    ),
    txt_essential AS MATERIALIZED (
        SELECT b.term, b.bound
        FROM (SELECT term, bound, sum(bound) OVER (ORDER BY bound, term) AS running
              FROM txt_bound WHERE selecting) b, txt_theta t
        WHERE t.others + b.running >= t.theta
    ),
    txt_more AS MATERIALIZED (
        SELECT ct.chunk_id
        FROM txt_essential e
        JOIN idf i ON i.term = e.term
        JOIN documents_chunkterm ct ON ct.term = e.term AND ct.document_id IN (SELECT id FROM docs)
        GROUP BY ct.chunk_id
        HAVING sum(i.idf * ct.weight)
               + (SELECT sum(bound) FROM txt_bound) - sum(e.bound) >= (SELECT theta FROM txt_theta)
        EXCEPT SELECT chunk_id FROM txt_first
    ),
    txt_all AS MATERIALIZED (
        SELECT * FROM txt_first
        UNION ALL{score_all.format(chunks="txt_more")}
    ),
    txt_ranked AS (
        SELECT chunk_id, rank_score, row_number() OVER (ORDER BY rank_score DESC, chunk_id) AS rank
        FROM txt_all
        ORDER BY rank_score DESC, chunk_id
        LIMIT %(candidates)s
    ),"""
    empty_vec = """
    vec_ranked AS (SELECT NULL::bigint AS chunk_id, NULL::float8 AS distance, NULL::bigint AS rank WHERE false),"""
    empty_txt = """
    txt_ranked AS (SELECT NULL::bigint AS chunk_id, NULL::float8 AS rank_score, NULL::bigint AS rank WHERE false),"""
    # Each candidate's score from both legs (a candidate of one leg is scored by the
    # other too: its cosine from its stored vector, its BM25 from txt_first, where every
    # vector candidate was scored as a first-round candidate; a join on txt_all, which
    # round 2 can fill with 10k+ chunks, was planned as a nested loop over it: 250 ms),
    # so the fusion weighs how well a passage matches, not only its rank in each list.
    if mode == "hybrid":
        joins = """
        LEFT JOIN txt_first a ON c.text_rank IS NULL AND a.chunk_id = c.chunk_id
        LEFT JOIN documents_embedding e
             ON c.vector_rank IS NULL AND e.chunk_id = c.chunk_id AND e.model = %(model)s"""
        cosine = f"1 - COALESCE(c.distance, {distance})"
        bm25 = "COALESCE(c.rank_score, a.rank_score, 0)"
        # Convex combination of the min-max normalised cosine and BM25 over the maximum,
        # both over this question's candidates (bench/README: it beats reciprocal rank
        # fusion on the eval's tune and held-out questions).
        score = """(%(w_vec)s * COALESCE((s.vector_score - min(s.vector_score) OVER ())
                      / NULLIF(max(s.vector_score) OVER () - min(s.vector_score) OVER (), 0), 0)
                  + %(w_txt)s * COALESCE(s.text_score / NULLIF(max(s.text_score) OVER (), 0), 0))
                 / %(w_sum)s"""
    elif mode == "vector":
        joins, cosine, bm25, score = "", "1 - c.distance", "NULL::float8", "s.vector_score"
    else:
        joins, cosine, bm25, score = "", "NULL::float8", "c.rank_score", "s.text_score"
    return f"""
    WITH
    docs AS MATERIALIZED ({docs}),
    -- The question's terms and their idf (_TERMS_SQL, run first): constants here, so
    -- the planner estimates the text match from the GIN statistics.
    idf AS (
        SELECT * FROM unnest(%(terms)s::text[], %(dfs)s::float8[], %(idfs)s::float8[],
                             %(covers)s::float8[])
            AS t(term, df, idf, cover)
    ),
    q AS (
        SELECT %(tsquery)s::tsquery AS query, %(total_idf)s::float8 AS total_idf
    ),
    {vector_leg if mode in ("hybrid", "vector") else empty_vec}
    {text_leg if mode in ("hybrid", "text") else empty_txt}
    candidates AS (
        SELECT COALESCE(v.chunk_id, t.chunk_id) AS chunk_id,
               v.rank AS vector_rank, v.distance, t.rank AS text_rank, t.rank_score
        FROM vec_ranked v FULL OUTER JOIN txt_ranked t ON t.chunk_id = v.chunk_id
    ),
    scored AS (
        SELECT c.chunk_id, c.vector_rank, c.text_rank,
               {cosine} AS vector_score, {bm25} AS text_score
        FROM candidates c{joins}
    ),
    fused AS (
        SELECT s.*, {score} AS score
        FROM scored s
        ORDER BY score DESC NULLS LAST, chunk_id
        LIMIT %(limit)s
    )
    SELECT f.chunk_id, c.document_id, d.name, c.first_page, c.last_page, c.section,
           ts_headline(%(config)s::regconfig, {SNIPPET_TEXT}, q.query, %(headline)s) AS snippet,
           c.content, f.score, f.vector_rank, f.vector_score, f.text_rank, f.text_score,
           (SELECT COALESCE(sum(i.cover), 0) FROM idf i
            WHERE i.df > 0 AND i.term = ANY(tsvector_to_array(c.search_vector)))
             / NULLIF(q.total_idf, 0) AS coverage,
           (d.mime_type = 'application/pdf' OR d.pages_total > 1) AS paged
    FROM fused f
    JOIN documents_chunk c ON c.id = f.chunk_id
    JOIN docs d ON d.id = c.document_id,
         q
    ORDER BY f.score DESC NULLS LAST, f.chunk_id
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
    docs, params = _readable_sql(user, document_ids)
    limit = max(k, settings.RERANK_TOP_N) if rerank else k
    # A question in another language than the library's (documents.languages): its stop
    # words out of the text leg's ranking (languages.stop_lexemes).
    foreign = None
    if mode != "vector" and settings.SEARCH_FOREIGN_STOP_WORDS:
        started = time.perf_counter()
        foreign = foreign_language(query)
        timings["language"] = (time.perf_counter() - started) * 1000
    params.update(
        {
            "qvec": json.dumps(qvec) if qvec is not None else None,
            "model": provider.model_id,
            "query": query,
            "config": settings.SEARCH_TEXT_CONFIG,
            "candidates": max(settings.SEARCH_CANDIDATES, limit),
            "postings": settings.SEARCH_TEXT_POSTINGS and max(settings.SEARCH_TEXT_POSTINGS, limit),
            # 0 with every posting read: every chunk holding a selecting term is scored.
            "shortlist": settings.SEARCH_TEXT_POSTINGS
            and SHORTLIST * max(settings.SEARCH_CANDIDATES, limit),
            "w_vec": settings.SEARCH_VECTOR_WEIGHT,
            "w_txt": settings.SEARCH_TEXT_WEIGHT,
            "w_sum": (settings.SEARCH_VECTOR_WEIGHT + settings.SEARCH_TEXT_WEIGHT) or 1.0,
            "limit": limit,
            "headline": SNIPPET_OPTIONS,
            "question_words": QUESTION_WORDS,
        }
    )
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('hnsw.ef_search', %s, true),"
            " set_config('hnsw.iterative_scan', %s, true),"
            " set_config('enable_indexscan', %s, true),"
            " (SELECT reltuples FROM pg_class WHERE oid = 'documents_embedding'::regclass)",
            [
                str(settings.SEARCH_EF_SEARCH),
                settings.SEARCH_ITERATIVE_SCAN,
                "off" if exact else "on",
            ],
        )
        stored = cursor.fetchone()[3] or 0
        unranked = stop_lexemes(cursor, query, foreign) if foreign else frozenset()
        cursor.execute(_terms_sql(docs), params)
        term_rows = cursor.fetchall()
        params.update(_term_params(term_rows, unranked))
        # The share of the stored vectors the user may read (the readable chunks, n of
        # the terms statement, against the planner's row estimate of the embeddings).
        broad = bool(term_rows) and stored > 0 and term_rows[0][2] >= BROAD_SHARE * stored
        cursor.execute(_sql(mode, provider.dimensions, docs, broad=broad), params)
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
            snippet=snippet_html(without_headings(r[6], r[5])),
            content=r[7],
            score=float(r[8]),
            vector_rank=r[9],
            vector_score=None if r[10] is None else float(r[10]),
            text_rank=r[11],
            text_score=None if r[12] is None else float(r[12]),
            coverage=None if r[13] is None else float(r[13]),
            paged=r[14],
        )
        for r in rows
    ]
    reranked = False
    if rerank and hits:
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
# Through the query cache (rra/querycache.py). A user's readable set changes when one of
# their documents changes, or any shared one does: the scopes documents:user:<id> and
# documents:shared, bumped by invalidate_for().

SEARCH_CACHE = Namespace(
    "search",
    version=1,
    value=dict,  # a SearchResult as asdict()
    ttl=lambda: settings.SEARCH_CACHE_TTL,
    access="own:documents",
)


def invalidate_for(
    document: Document | None = None, *, owner_id: int | None = None, shared: bool = True
) -> None:
    """Call after any change to what documents are readable (status, visibility, delete)."""
    owner_id = owner_id if owner_id is not None else getattr(document, "owner_id", None)
    bump(
        f"documents:user:{owner_id}" if owner_id is not None else "",
        "documents:shared" if shared else "",
    )


def cached_search(*, user, **params) -> tuple[SearchResult, bool]:
    """search() through the cache; returns the result and whether it was a hit."""
    entry = cached(
        SEARCH_CACHE,
        scopes=[f"documents:user:{user.pk}", "documents:shared"],
        viewer=user,
        params=[params],
        compute=lambda: asdict(search(user=user, **params)),
    )
    stored = entry.value
    return SearchResult(**{**stored, "hits": [Hit(**h) for h in stored["hits"]]}), entry.hit
