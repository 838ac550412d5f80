"""One HNSW cosine index per embedding model.

Embedding.vector holds vectors of any dimension; each model gets a partial expression
index `USING hnsw ((vector::vector(dims)) vector_cosine_ops) WHERE model = '<model>'`.
A search must use the same expression and predicate (see `distance_sql`) for the
planner to pick the index. Creating the index for a model with no rows yet is instant,
so the pipeline ensures it before it writes a model's first embeddings.
"""

from __future__ import annotations

import hashlib
import threading

from django.db import connection
from psycopg import sql

_known: set[tuple[str, int]] = set()
_lock = threading.Lock()


def index_name(model_id: str) -> str:
    return "embedding_hnsw_" + hashlib.sha1(model_id.encode()).hexdigest()[:16]  # noqa: S324


def ensure_index(model_id: str, dimensions: int) -> None:
    key = (model_id, dimensions)
    if key in _known:
        return
    with _lock:
        # Outside a transaction, build without blocking writers to the table.
        concurrently = sql.SQL("" if connection.in_atomic_block else "CONCURRENTLY ")
        statement = sql.SQL(
            "CREATE INDEX {concurrently}IF NOT EXISTS {name} ON documents_embedding "
            "USING hnsw ((vector::vector({dims})) vector_cosine_ops) WHERE model = {model}"
        ).format(
            concurrently=concurrently,
            name=sql.Identifier(index_name(model_id)),
            dims=sql.Literal(int(dimensions)),
            model=sql.Literal(model_id),
        )
        with connection.cursor() as cursor:
            if connection.in_atomic_block:
                # Deferred FK checks of rows written earlier in this transaction would
                # block the DDL ("pending trigger events"): run them now.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(statement.as_string(cursor.connection))
        if not connection.in_atomic_block:
            _known.add(key)  # committed: no need to ask again in this process


def distance_sql(dimensions: int, *, table: str = "e", param: str = "qvec") -> str:
    """SQL for the cosine distance of `table`'s vector (an alias of documents_embedding)
    to the named parameter `param` (the query vector) that matches the index."""
    dims = int(dimensions)
    return f"({table}.vector::vector({dims}) <=> %({param})s::vector({dims}))"
