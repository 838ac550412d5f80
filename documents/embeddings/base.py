"""The provider interface and its errors: what ingestion and search need from an
embedding model, whichever it is (see the package docstring)."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from array import array
from collections.abc import Sequence
from typing import Literal

from django.conf import settings
from django.core.cache import cache

from rra import telemetry

InputType = Literal["document", "query"]


class EmbeddingError(Exception):
    """An embedding request failed for good (bad key, bad request, unknown model...)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class TransientEmbeddingError(EmbeddingError):
    """A failure that may pass: timeout, connection error, 429 or 5xx. Retry with backoff."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


def _query_key(model_id: str, text: str) -> str:
    digest = hashlib.sha256(f"{model_id}\0{text}".encode()).hexdigest()[:40]
    return f"qemb:{digest}"


class EmbeddingProvider(ABC):
    """What ingestion and search need from an embedding model."""

    model_id: str  # stored with every vector, e.g. "local/all-MiniLM-L6-v2"
    max_input_tokens: int  # as counted by count_tokens
    batch_size: int  # texts per request (or per forward pass)
    # The cosine similarity from which a passage means what a question asks (the answer
    # guard's threshold when ANSWER_MIN_SCORE is unset): a property of the model. The
    # second is for a question in another language than the library's, which shares no
    # words with its passages (None: as the first).
    answer_min_score: float = 0.50
    cross_lingual_min_score: float | None = None
    _dimensions: int | None = None

    @property
    def dimensions(self) -> int:
        """Vector length. A remote provider that was not told learns it from its first
        answer; asking before any call embeds one short probe text to find out."""
        if self._dimensions is None:
            self.embed_query("dimension probe")  # _checked() records the size
        return self._dimensions or 0

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order; requests are made batch_size texts at a time."""
        texts = list(texts)
        _check_texts(texts)
        vectors: list[list[float]] = []
        for begin in range(0, len(texts), self.batch_size):
            batch = texts[begin : begin + self.batch_size]
            vectors.extend(self._checked(self._embed(batch, "document"), len(batch)))
        return vectors

    def embed_query(self, text: str) -> list[float]:
        """The query's vector, remembered in the cache for QUERY_EMBEDDING_CACHE_TTL: the
        same question (from any user) is embedded once, not on every search or answer."""
        _check_texts([text])
        key = _query_key(self.model_id, text)
        stored = cache.get(key) if settings.QUERY_EMBEDDING_CACHE_TTL else None
        if isinstance(stored, bytes) and len(stored) % 4 == 0:
            vector = array("f")
            vector.frombytes(stored)
            if self._dimensions in (None, len(vector)):
                telemetry.cache_lookup("query_embeddings", hit=True)
                self._dimensions = len(vector)
                return vector.tolist()
        telemetry.cache_lookup("query_embeddings", hit=False)
        vector = self._checked(self._embed([text], "query"), 1)[0]
        if settings.QUERY_EMBEDDING_CACHE_TTL:
            # float32, as pgvector stores vectors: 1.5 KB for 384 dimensions.
            cache.set(key, array("f", vector).tobytes(), settings.QUERY_EMBEDDING_CACHE_TTL)
        return vector

    @abstractmethod
    def count_tokens(self, text: str) -> int: ...

    def warm_up(self) -> None:  # noqa: B027 - optional hook
        """Load whatever is loaded lazily (the local model); a no-op for remote APIs."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections (remote providers)."""

    @abstractmethod
    def _embed(self, texts: list[str], input_type: InputType) -> list[list[float]]:
        """Embed one batch (at most batch_size texts)."""

    def _checked(self, vectors: list[list[float]], expected: int) -> list[list[float]]:
        if len(vectors) != expected:
            raise EmbeddingError(
                f"{self.model_id} returned {len(vectors)} vectors for {expected} texts."
            )
        sizes = {len(vector) for vector in vectors}
        if len(sizes) != 1 or 0 in sizes:
            raise EmbeddingError(f"{self.model_id} returned vectors of unequal or zero length.")
        size = sizes.pop()
        if self._dimensions is None:
            self._dimensions = size
        elif size != self._dimensions:
            raise EmbeddingError(
                f"{self.model_id} returned {size}-dimensional vectors, expected "
                f"{self._dimensions} (check EMBEDDINGS_DIMENSIONS)."
            )
        return vectors

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.model_id}>"


def _check_texts(texts: list[str]) -> None:
    for position, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise EmbeddingError(f"Text {position} is empty: there is nothing to embed.")
