"""The synthetic corpus of the benchmarks: manuals of 50 chunks with 384-dim embeddings,
generated deterministically and written with COPY (binary COPY for the vectors).

The text is either made-up words (`text="zipf"`: a Zipf-distributed 5,000-word vocabulary
plus topic words) or real manual text (`text="manuals"`: the sentences of the Markdown and
plain-text manuals of the evaluation library, MANUALS_DIR, each chunk a run of a manual's
sentences in shuffled order with its numbers changed and a few words swapped for words
of elsewhere in that manual, so 1M chunks do not repeat 10k passages verbatim).

Used by bench/search.py (search latency and recall) and bench/load.py (HTTP load); each
decides who owns which document. Nothing here sets Django up: the callers do.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import numpy as np

MODEL_ID = "local/all-MiniLM-L6-v2"
DIMS = 384
CHUNKS_PER_DOC = 50
CENTROIDS = 300
CLUSTERS_PER_DOC = 4  # a manual covers a few topics
NOISE = 1.0  # norm of the noise added to a (unit) centroid: cos(point, centroid) ~ 0.7
VOCAB = 5000
TOPIC_WORDS = 30  # words typical of each cluster
TOPIC_SHARE = 0.25  # share of a chunk's words drawn from its cluster's topic words
WORDS_PER_CHUNK = (110, 190)
BLOCK_DOCS = 200  # documents generated and copied per block (10k chunks)
# Bump when the generator changes: a stored corpus of another version is reloaded.
CORPUS_VERSION = 2  # 2: with documents_documentterm
TEXTS = ("zipf", "manuals")
MANUALS_DIR = Path(os.environ.get("BENCH_MANUALS_DIR", "/work/eval-library/docs"))
SWAP_SHARE = 0.05  # share of a manual chunk's words replaced by words of the same manual
_NUMBER = re.compile(r"\b\d+(?:\.\d+)?\b")
_SENTENCE_END = re.compile(r"(?<=[.!?:])\s+")


@cache
def manual_sentences() -> tuple[tuple[str, ...], ...]:
    """Per manual (*.md, *.txt of MANUALS_DIR, by name), its sentences of 5+ words, with
    Markdown tables, code fences and link targets left out."""
    files = sorted(p for p in MANUALS_DIR.glob("*") if p.suffix in (".md", ".txt"))
    if not files:
        raise SystemExit(f"no .md or .txt manuals in {MANUALS_DIR} (set BENCH_MANUALS_DIR)")
    manuals = []
    for path in files:
        text = path.read_text(errors="replace")
        text = re.sub(r"```.*?```", " ", text, flags=re.S)
        text = re.sub(r"\]\([^)]*\)", "]", text)
        lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith(("|", "*", "-"))]
        flat = " ".join(" ".join(lines).split())
        sentences = tuple(s for s in _SENTENCE_END.split(flat) if len(s.split()) >= 5)
        if len(sentences) >= 100:
            manuals.append(sentences)
    return tuple(manuals)


def normalize(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


# --- Synthetic corpus -------------------------------------------------------------------


class Corpus:
    """Deterministic for a (size, seed): documents can be generated block by block, and
    queries rebuilt later without reading the stored vectors back."""

    def __init__(self, size: int, seed: int, text: str = "zipf") -> None:
        if text not in TEXTS:
            raise ValueError(f"text must be one of {TEXTS}")
        self.size = size
        self.seed = seed
        self.text = text
        self.n_docs = size // CHUNKS_PER_DOC
        rng = np.random.default_rng([seed, 0])
        self.vocab = self._vocabulary(rng)
        weights = 1.0 / np.arange(1, VOCAB + 1) ** 1.05  # Zipf-like word frequencies
        self.word_cdf = np.cumsum(weights / weights.sum())
        self.centroids = normalize(rng.standard_normal((CENTROIDS, DIMS)))
        self.topics = np.stack(
            [rng.choice(VOCAB, TOPIC_WORDS, replace=False) for _ in range(CENTROIDS)]
        )

    @staticmethod
    def _vocabulary(rng: np.random.Generator) -> np.ndarray:
        onsets = [*"bcdfghklmnprstvz", "br", "tr", "st", "pl", "gr", "ch"]
        vowels = [*"aeiou", "ai", "ou", "ea"]
        codas = ["", "", "n", "r", "s", "l", "x", "t"]
        words: set[str] = set()
        while len(words) < VOCAB:
            n = int(rng.integers(2, 4))
            word = (
                "".join(
                    onsets[rng.integers(len(onsets))] + vowels[rng.integers(len(vowels))]
                    for _ in range(n)
                )
                + codas[rng.integers(len(codas))]
            )
            words.add(word)
        return np.array(sorted(words), dtype=object)

    def doc_clusters(self, doc: int) -> np.ndarray:
        return np.random.default_rng([self.seed, 1, doc]).choice(
            CENTROIDS, CLUSTERS_PER_DOC, replace=False
        )

    def point_near(self, rng: np.random.Generator, clusters: np.ndarray) -> np.ndarray:
        noise = rng.standard_normal((len(clusters), DIMS)) * (NOISE / np.sqrt(DIMS))
        return normalize(self.centroids[clusters] + noise)

    def document(self, doc: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(cluster per chunk, unit vectors (50, 384), texts) of one document."""
        rng = np.random.default_rng([self.seed, 2, doc])
        clusters = self.doc_clusters(doc)[rng.integers(CLUSTERS_PER_DOC, size=CHUNKS_PER_DOC)]
        vectors = self.point_near(rng, clusters)
        lengths = rng.integers(*WORDS_PER_CHUNK, size=CHUNKS_PER_DOC)
        total = int(lengths.sum())
        owner = np.repeat(clusters, lengths)
        topical = rng.random(total) < TOPIC_SHARE
        words = np.searchsorted(self.word_cdf, rng.random(total))
        words = np.minimum(words, VOCAB - 1)
        words[topical] = self.topics[owner[topical], rng.integers(TOPIC_WORDS, size=total)[topical]]
        texts = [" ".join(part) for part in np.split(self.vocab[words], np.cumsum(lengths)[:-1])]
        if self.text == "manuals":
            texts = self._manual_texts(doc, lengths)
        return clusters, vectors, texts

    def manual_of(self, doc: int) -> tuple[str, ...]:
        manuals = manual_sentences()
        return manuals[doc % len(manuals)]

    def _manual_texts(self, doc: int, lengths: np.ndarray) -> list[str]:
        """Chunks of real text for `doc`: from a random place of its manual, runs of
        sentences up to each chunk's word count, shuffled, numbers and a few words
        changed (deterministic per document)."""
        rng = np.random.default_rng([self.seed, 4, doc])
        sentences = self.manual_of(doc)
        words_pool = " ".join(sentences[:: max(1, len(sentences) // 500)]).split()
        position = int(rng.integers(len(sentences)))
        texts = []
        for length in lengths:
            picked, count = [], 0
            while count < length:
                sentence = sentences[position % len(sentences)]
                position += 1
                picked.append(sentence)
                count += len(sentence.split())
            rng.shuffle(picked)
            words = " ".join(picked).split()
            for i in np.flatnonzero(rng.random(len(words)) < SWAP_SHARE):
                words[i] = words_pool[int(rng.integers(len(words_pool)))]
            text = " ".join(words)
            text = _NUMBER.sub(lambda _: str(int(rng.integers(1, 5000))), text)
            texts.append(text)
            position += int(rng.integers(0, 40))  # the next chunk from a bit further on
        return texts

    def queries(self, docs: list[int], n: int, salt: int) -> list[tuple[str, list[float]]]:
        """Queries about what the user can read: a cluster of one of their documents; the
        text is two of that cluster's topic words (zipf) or 2-6 words of a sentence of one
        of the document's chunks (manuals), the vector a point near the centroid."""
        rng = np.random.default_rng([self.seed, 3, salt])
        out = []
        for _ in range(n):
            doc = int(rng.choice(docs))
            cluster = self.doc_clusters(doc)[rng.integers(CLUSTERS_PER_DOC)]
            words = rng.choice(self.topics[cluster], 2, replace=False)
            vector = self.point_near(rng, np.array([cluster]))[0]
            text = " ".join(self.vocab[words])
            if self.text == "manuals":
                text = self._manual_question(rng, doc)
            out.append((text, vector.tolist()))
        return out

    def _manual_question(self, rng: np.random.Generator, doc: int) -> str:
        chunk = self.document(doc)[2][int(rng.integers(CHUNKS_PER_DOC))]
        sentence = rng.choice(_SENTENCE_END.split(chunk))
        words = [w.strip(".,:;()\"'`*") for w in sentence.split()]
        words = [w for w in words if len(w) > 3 and w.isalpha()] or words
        n = min(len(words), int(rng.integers(2, 7)))
        start = int(rng.integers(len(words) - n + 1))
        return " ".join(words[start : start + n])


# --- Loading (COPY) ------------------------------------------------------------------------

_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\0" + b"\0" * 8
_COPY_TRAILER = b"\xff\xff"
_MODEL_BYTES = MODEL_ID.encode()
# One row of COPY ... (FORMAT BINARY) for (id, chunk_id, model, vector, created_at).
_EMBEDDING_ROW = np.dtype(
    [
        ("nfields", ">i2"),
        ("id_len", ">i4"),
        ("id", ">i8"),
        ("chunk_len", ">i4"),
        ("chunk", ">i8"),
        ("model_len", ">i4"),
        ("model", f"S{len(_MODEL_BYTES)}"),
        ("vector_len", ">i4"),
        ("dim", ">i2"),
        ("unused", ">i2"),
        ("vector", ">f4", (DIMS,)),
        ("ts_len", ">i4"),
        ("ts", ">i8"),  # timestamptz: microseconds since 2000-01-01 UTC
    ]
)
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def embedding_copy_data(ids: np.ndarray, vectors: np.ndarray, now: datetime) -> bytes:
    rows = np.zeros(len(ids), dtype=_EMBEDDING_ROW)
    rows["nfields"] = 5
    rows["id_len"] = rows["chunk_len"] = 8
    rows["id"] = rows["chunk"] = ids
    rows["model_len"] = len(_MODEL_BYTES)
    rows["model"] = _MODEL_BYTES
    rows["vector_len"] = 4 + 4 * DIMS
    rows["dim"] = DIMS
    rows["vector"] = vectors
    rows["ts_len"] = 8
    rows["ts"] = _micros(now)
    return _COPY_SIGNATURE + rows.tobytes() + _COPY_TRAILER


def _micros(now: datetime) -> int:
    delta = now - _PG_EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def copy_corpus(
    cursor,
    corpus: Corpus,
    *,
    owner_of: Callable[[int], int],
    visibility_of: Callable[[int], str] = lambda doc: "private",
    now: datetime | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> None:
    """COPY the corpus's documents (ids 1..n_docs, all ready), chunks and embeddings
    through a psycopg cursor into empty tables, then move the id sequences past them.
    owner_of(doc) is the owner's user id of document `doc` (0-based), visibility_of(doc)
    "private" or "shared"."""
    now = now or datetime.now(UTC)
    started = time.perf_counter()
    with cursor.copy(
        "COPY documents_document (id, owner_id, name, file, mime_type, size, sha256,"
        " visibility, status, failure_reason, pages_done, pages_total, chunks_embedded,"
        " chunks_total, attempts, processing_started_at, ready_at, embedding_model,"
        " created_at, updated_at) FROM STDIN"
    ) as copy:
        for doc in range(corpus.n_docs):
            pages = CHUNKS_PER_DOC // 3 + 1
            copy.write_row(
                (
                    doc + 1,
                    owner_of(doc),
                    f"manual-{doc + 1:07d}.pdf",
                    f"documents/bench-{doc + 1:07d}.pdf",
                    "application/pdf",
                    1_000_000,
                    hashlib.sha256(f"bench-{doc}".encode()).hexdigest(),
                    visibility_of(doc),
                    "ready",
                    "",
                    pages,
                    pages,
                    CHUNKS_PER_DOC,
                    CHUNKS_PER_DOC,
                    1,
                    now,
                    now,
                    MODEL_ID,
                    now,
                    now,
                )
            )
    for block in range(0, corpus.n_docs, BLOCK_DOCS):
        docs = range(block, min(block + BLOCK_DOCS, corpus.n_docs))
        generated = [corpus.document(doc) for doc in docs]
        with cursor.copy(
            "COPY documents_chunk (id, document_id, index, first_page, last_page, section,"
            " title, content, token_count, start_offset, end_offset) FROM STDIN"
        ) as copy:
            for doc, (clusters, _, texts) in zip(docs, generated, strict=True):
                for i, text in enumerate(texts):
                    page = i // 3 + 1
                    copy.write_row(
                        (
                            doc * CHUNKS_PER_DOC + i + 1,
                            doc + 1,
                            i,
                            page,
                            page + (i % 3 == 2),
                            f"Topic {clusters[i]}",
                            "",  # no document title (COPY does not fill in Django's default)
                            text,
                            len(text) // 4,
                            0,
                            len(text),
                        )
                    )
        ids = np.arange(docs.start * CHUNKS_PER_DOC, docs.stop * CHUNKS_PER_DOC) + 1
        vectors = np.concatenate([g[1] for g in generated])
        with cursor.copy(
            "COPY documents_embedding (id, chunk_id, model, vector, created_at)"
            " FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.write(embedding_copy_data(ids, vectors, now))
        log(
            f"  loaded {docs.stop * CHUNKS_PER_DOC:,} / {corpus.n_docs * CHUNKS_PER_DOC:,}"
            f" chunks ({time.perf_counter() - started:.1f} s)"
        )
    for table in ("documents_document", "documents_chunk", "documents_embedding"):
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"  # noqa: S608 - fixed names
        )


def index_valid() -> bool:
    """Whether the HNSW index of MODEL_ID exists and is valid."""
    from django.db import connection

    from documents.vector_index import index_name

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass(%s)",
            [index_name(MODEL_ID)],
        )
        row = cursor.fetchone()
    return bool(row and row[0])


def build_index(
    maintenance_work_mem: str | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> tuple[float, str]:
    """(Re)build the HNSW index of MODEL_ID (outside a transaction); returns the seconds
    it took and the maintenance_work_mem it had."""
    from django.db import connection

    from documents import vector_index
    from documents.vector_index import ensure_index, index_name

    vector_index._known.discard((MODEL_ID, DIMS))  # dropped since this process made it
    with connection.cursor() as cursor:
        if maintenance_work_mem:
            cursor.execute(
                "SELECT set_config('maintenance_work_mem', %s, false)", [maintenance_work_mem]
            )
        cursor.execute("SHOW maintenance_work_mem")
        mwm = cursor.fetchone()[0]
        cursor.execute(f'DROP INDEX IF EXISTS "{index_name(MODEL_ID)}"')  # an invalid one
    log(f"building the HNSW index (maintenance_work_mem {mwm})")
    started = time.perf_counter()
    ensure_index(MODEL_ID, DIMS)
    return time.perf_counter() - started, mwm
