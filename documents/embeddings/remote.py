"""Remote providers: Cohere's v2 embed API and any OpenAI-compatible /embeddings
endpoint, with the mapping of HTTP errors to permanent and transient ones."""

from __future__ import annotations

import email.utils
import time
from typing import Any

import httpx
from django.core.exceptions import ImproperlyConfigured

from documents.embeddings.base import (
    EmbeddingError,
    EmbeddingProvider,
    InputType,
    TransientEmbeddingError,
)
from documents.embeddings.local import approximate_token_count

COHERE_MAX_BATCH = 96
OPENAI_DEFAULT_BATCH_SIZE = 128
OPENAI_MAX_BATCH = 2048


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
