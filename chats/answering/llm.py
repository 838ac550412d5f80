"""Answer generation behind one small interface.

    llm = get_llm()                             # from settings, one instance per process
    for item in llm.stream(question=q, passages=passages, history=turns):
        if isinstance(item, Token):
            ...                                 # a piece of the answer, in order
        else:
            usage = item                        # exactly one Usage, last

Three providers:

- ``xai`` (XAI_API_KEY set): xAI's OpenAI-compatible API at XAI_BASE_URL, model XAI_MODEL.
- ``openai`` (else, LLM_BASE_URL set): any OpenAI-compatible chat-completions server
  (Ollama, vLLM, llama.cpp, OpenAI) with LLM_API_KEY (may be empty) and LLM_MODEL.
- ``extractive`` (neither): no model at all. The answer quotes the sentences of the best
  passages that share the most content words with the question, each followed by its
  [n] citation, or says the documents do not cover the question when those sentences
  hold less than MIN_COVERAGE of its (rarity-weighted) terms. It never writes a fact of
  its own.

Both remote providers use the official ``openai`` client (the request, its errors and
timeouts; the streamed body is parsed here, see ChatCompletionsLLM.stream), without
retries of its own; LLM_CONNECT_TIMEOUT bounds connecting and LLM_READ_TIMEOUT every wait for the
next piece of the answer. History is pruned to HISTORY_TOKEN_BUDGET tokens (the most
recent whole turns) before it is sent.

Errors: ``TransientLLMError`` (timeouts, connection errors, 429, 5xx, a stream cut
short) may pass: the caller retries once, with jitter, while no token has arrived yet.
Any other ``LLMError`` is permanent (bad key, unknown model, refused request). Both
carry ``message``, a sentence to show. An error can come after some tokens: the caller
keeps the partial answer.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from chats.answering.extractive import ExtractiveLLM
from chats.answering.prompts import build_messages, prune_history
from chats.answering.types import (
    LLMError,
    LLMProvider,
    Passage,
    Token,
    TransientLLMError,
    Turn,
    Usage,
    count_tokens,
)
from documents.embeddings import parse_retry_after

logger = logging.getLogger(__name__)


# --- OpenAI-compatible chat completions (xAI, Ollama, vLLM, OpenAI...) -------------------

_TRANSIENT_STATUSES = {408, 409, 425, 429, 499}
SERVICE = "The language model service"


class ChatCompletionsLLM(LLMProvider):
    """A streamed POST /chat/completions through the official openai client."""

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        model: str,
        api_key: str | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        temperature: float = 0.2,
        max_tokens: int = 1024,
        history_token_budget: int = 2000,
        read_interval: float = 0.0,
        reads_per_second: float = 0.0,
        key_setting: str = "LLM_API_KEY",
        url_setting: str = "LLM_BASE_URL",
        model_setting: str = "LLM_MODEL",
    ) -> None:
        import openai

        if not model:
            raise ImproperlyConfigured(f"Environment variable {model_setting} must be set.")
        self.name = name
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.history_token_budget = history_token_budget
        self.read_interval = read_interval
        self.reads_per_second = reads_per_second
        self.key_setting = key_setting
        self.url_setting = url_setting
        self.model_setting = model_setting
        self._client = openai.OpenAI(
            base_url=self.base_url,
            # Local servers (Ollama, llama.cpp, vLLM) take no key, but the client needs one.
            api_key=api_key or "no-key",
            # read: the longest wait for the next bytes, i.e. between streamed chunks.
            timeout=openai.Timeout(read_timeout, connect=connect_timeout),
            max_retries=0,  # the caller decides about retries
        )

    def close(self) -> None:
        self._client.close()

    def messages(
        self, question: str, passages: Sequence[Passage], history: Sequence[Turn]
    ) -> list[dict[str, str]]:
        turns = prune_history(history, self.history_token_budget, count_tokens)
        return build_messages(question, passages, turns)

    def stream(
        self, *, question: str, passages: list[Passage], history: list[Turn]
    ) -> Iterator[Token | Usage]:
        """The request goes through the openai client (its errors, headers and timeouts);
        the streamed body is read as raw SSE lines and json.loads, not through the
        client's typed chunk objects, which cost ~0.3 ms of CPU per token: at 200
        concurrent answers of 20 tokens/s that was most of a core of the worker."""
        import openai

        http = _http_library()
        messages = self.messages(question, passages, history)
        try:
            manager = self._client.chat.completions.with_streaming_response.create(
                model=self.model,
                messages=messages,  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
                temperature=self.temperature,
                max_tokens=self.max_tokens,
            )
            response = manager.__enter__()
        except openai.OpenAIError as exc:
            raise self._error(exc, streaming=False) from exc

        parts: list[str] = []
        usage: dict | None = None
        model = self.model
        finish_reason: str | None = None
        paced = _PacedReads.install(response, self.read_interval, self.reads_per_second)
        try:
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue  # blank separators, comments, "event:" lines
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                try:
                    chunk = json.loads(data)
                except ValueError as exc:
                    raise LLMError(f"{SERVICE} sent an answer that could not be read.") from exc
                if not isinstance(chunk, dict):
                    raise LLMError(f"{SERVICE} sent an answer that could not be read.")
                if chunk.get("error"):  # an error event in the middle of the stream
                    error = chunk["error"]
                    text = error.get("message") if isinstance(error, dict) else str(error)
                    raise TransientLLMError(f"{SERVICE} failed while answering: {text}")
                model = chunk.get("model") or model
                if chunk.get("usage"):
                    usage = chunk["usage"]
                for choice in chunk.get("choices") or ():
                    if choice.get("index", 0) != 0:
                        continue
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        parts.append(text)
                        yield Token(text)
                        if paced is not None:
                            paced.active = True  # the first token went out unpaced
                    if choice.get("finish_reason"):
                        finish_reason = choice["finish_reason"]
        except http.TimeoutException as exc:
            raise self._error(openai.APITimeoutError(request=exc.request), streaming=True) from exc
        except http.TransportError as exc:
            raise TransientLLMError(
                f"The connection to {SERVICE.lower()} was lost while the answer was streaming."
            ) from exc
        finally:
            if paced is not None:
                paced.remove()
            manager.__exit__(None, None, None)

        if finish_reason is None:
            # The server ended the body without saying the answer was finished.
            raise TransientLLMError(
                f"{SERVICE} stopped before the answer was complete.", status=None
            )
        if finish_reason == "length":
            logger.info("The answer of %s was cut at LLM_MAX_TOKENS=%d", model, self.max_tokens)
        if usage is not None and usage.get("prompt_tokens") is not None:
            yield Usage(
                usage["prompt_tokens"], usage.get("completion_tokens") or 0, model, finish_reason
            )
        else:  # the server sends no usage: estimate it
            prompt = sum(4 + count_tokens(m["content"]) for m in messages)
            yield Usage(prompt, count_tokens("".join(parts)), model, finish_reason)

    # -- errors ------------------------------------------------------------------------------

    def _error(self, exc: Exception, *, streaming: bool) -> LLMError:
        """The LLMError for an openai exception (streaming: after some tokens)."""
        import openai

        if isinstance(exc, openai.APITimeoutError):
            if streaming:
                message = (
                    f"{SERVICE} stopped sending the answer "
                    f"(nothing arrived for {self.read_timeout:g} s)."
                )
            else:
                message = (
                    f"{SERVICE} at {self.base_url} did not respond in time "
                    f"(timeouts: {self.connect_timeout:g} s to connect, "
                    f"{self.read_timeout:g} s to answer)."
                )
            return TransientLLMError(message)
        if isinstance(exc, openai.APIConnectionError):
            if streaming:
                return TransientLLMError(
                    f"The connection to {SERVICE.lower()} was lost while the answer was streaming."
                )
            return TransientLLMError(f"Could not reach {SERVICE.lower()} at {self.base_url}.")
        if isinstance(exc, openai.APIStatusError):
            return self._status_error(exc)
        if isinstance(exc, openai.APIResponseValidationError):
            return LLMError(f"{SERVICE} sent an answer that could not be read.")
        if isinstance(exc, openai.APIError):  # an error event in the middle of the stream
            return TransientLLMError(f"{SERVICE} failed while answering: {exc.message}")
        return LLMError(f"{SERVICE} could not be called: {exc}")

    def _status_error(self, exc: Any) -> LLMError:
        status: int = exc.status_code
        detail = _error_detail(exc)
        code = exc.code or exc.type or ""
        logger.warning("%s answered HTTP %s: %s", self.base_url, status, detail)
        if status == 401:
            return LLMError(
                f"{SERVICE} rejected the API key (check {self.key_setting}).", status=status
            )
        if status == 403:
            return LLMError(
                f"{SERVICE} refused access to model '{self.model}' (HTTP 403): check that "
                f"the key in {self.key_setting} may use it.",
                status=status,
            )
        if status == 404:
            return LLMError(
                f"Model '{self.model}' was not found at {self.url_setting} ({self.base_url}): "
                f"check {self.model_setting}, and that the URL ends with /v1.",
                status=status,
            )
        if status == 429 and "insufficient_quota" in code:
            return LLMError(
                f"{SERVICE} account has no credit left (insufficient_quota): check the "
                f"billing of the account of {self.key_setting}.",
                status=status,
            )
        if status == 429:
            return TransientLLMError(
                f"{SERVICE} is rate limiting requests (HTTP 429); try again in a moment.",
                status=status,
                retry_after=parse_retry_after(exc.response.headers.get("Retry-After")),
            )
        if status in _TRANSIENT_STATUSES or status >= 500:
            return TransientLLMError(
                f"{SERVICE} is unavailable (HTTP {status}); try again in a moment.",
                status=status,
                retry_after=parse_retry_after(exc.response.headers.get("Retry-After")),
            )
        if "context_length" in code or "context length" in detail.lower():
            return LLMError(
                f"The question, passages and history are too long for model '{self.model}'.",
                status=status,
            )
        suffix = f": {detail}" if detail else "."
        return LLMError(f"{SERVICE} refused the request (HTTP {status}){suffix}", status=status)


class _PacedReads:
    """Reads of a streamed answer's connection at most once per `interval` once its first
    token is out: each read then takes every chunk that arrived meanwhile (the HTTP
    parser hands them on one by one from its buffer), instead of the answer's thread
    waking, taking the GIL and reading the socket for every chunk. The worker writes an
    answer's text once per ANSWER_TOKEN_FLUSH_MS anyway (chats/answering/publisher.py),
    which is the interval it is given; at 200 answers of 20 tokens/s this cut the
    worker's CPU per token by about a third (bench/stream_cpu.py), more for faster
    models.

    With `reads_per_second` (ANSWER_MODEL_READS_PER_S), the streams this process reads
    at once share that many reads a second: each is read every max(interval, streams /
    reads_per_second). At 200 answers and 100 ms, 2,000 thread wake-ups a second each
    took the GIL in turn, and an answer starting waited seconds for it at every step
    (bench/README.md, answer bursts, 2026-12-08).

    Wraps the `read` of the response's network stream (httpcore's "network_stream"
    extension, the object its HTTP/1.1 connection reads from) for as long as the
    response is read, and gives it back before the connection returns to the pool."""

    _streams = 0  # paced streams being read in this process
    _count_lock = threading.Lock()

    def __init__(self, network: Any, interval: float, reads_per_second: float = 0.0) -> None:
        self.network = network
        self.interval = interval
        self.reads_per_second = reads_per_second
        self.active = False
        self.last = 0.0
        self._read = network.read
        network.read = self.read
        self._counted = True
        with _PacedReads._count_lock:
            _PacedReads._streams += 1

    @classmethod
    def install(
        cls, response: Any, interval: float, reads_per_second: float = 0.0
    ) -> _PacedReads | None:
        network = getattr(response, "http_response", response).extensions.get("network_stream")
        if interval <= 0 or network is None or not hasattr(network, "read"):
            return None
        try:
            return cls(network, interval, reads_per_second)
        except AttributeError:  # a stream whose read cannot be wrapped: read as it comes
            return None

    def pace(self) -> float:
        """Seconds between two reads of this stream now."""
        if self.reads_per_second <= 0:
            return self.interval
        return max(self.interval, _PacedReads._streams / self.reads_per_second)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self.active:
            wait = self.last + self.pace() - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        try:
            return self._read(max_bytes, timeout=timeout)
        finally:
            self.last = time.monotonic()

    def remove(self) -> None:
        if self._counted:
            self._counted = False
            with _PacedReads._count_lock:
                _PacedReads._streams -= 1
        if self.network.__dict__.get("read") == self.read:
            del self.network.read


def _http_library():
    """The HTTP library under the openai client (httpx2 in openai 3, httpx before): its
    read errors surface while the raw body is read."""
    try:
        import httpx2

        return httpx2
    except ImportError:  # pragma: no cover - older openai clients
        import httpx

        return httpx


def _error_detail(exc: Any) -> str:
    body = exc.body
    if isinstance(body, dict):
        message = body.get("message")
        if isinstance(body.get("error"), dict):
            message = body["error"].get("message")
        elif isinstance(body.get("error"), str):
            message = body["error"]
        if isinstance(message, str):
            return message.strip()[:300]
    return str(exc.message).strip()[:300]


# --- One provider per process ----------------------------------------------------------------

_llm: LLMProvider | None = None
_llm_lock = threading.Lock()


def get_llm() -> LLMProvider:
    """The provider the settings choose, built once per process: xAI when XAI_API_KEY is
    set, else the OpenAI-compatible server at LLM_BASE_URL, else extractive."""
    global _llm
    provider = _llm
    if provider is None:
        with _llm_lock:
            if _llm is None:
                _llm = _build_llm()
            provider = _llm
    return provider


def reset_llm() -> None:
    """Forget the built provider (after a settings change, and in tests)."""
    global _llm
    with _llm_lock:
        if _llm is not None:
            _llm.close()
        _llm = None


def _build_llm() -> LLMProvider:
    common = {
        "connect_timeout": settings.LLM_CONNECT_TIMEOUT,
        "read_timeout": settings.LLM_READ_TIMEOUT,
        "temperature": settings.LLM_TEMPERATURE,
        "max_tokens": settings.LLM_MAX_TOKENS,
        "history_token_budget": settings.HISTORY_TOKEN_BUDGET,
        "read_interval": settings.ANSWER_TOKEN_FLUSH_MS / 1000,
        "reads_per_second": settings.ANSWER_MODEL_READS_PER_S,
    }
    if settings.XAI_API_KEY:
        return ChatCompletionsLLM(
            name="xai",
            base_url=settings.XAI_BASE_URL,
            model=settings.XAI_MODEL,
            api_key=settings.XAI_API_KEY,
            key_setting="XAI_API_KEY",
            url_setting="XAI_BASE_URL",
            model_setting="XAI_MODEL",
            **common,
        )
    if settings.LLM_BASE_URL:
        if not settings.LLM_MODEL:
            raise ImproperlyConfigured(
                "Environment variable LLM_MODEL must be set when LLM_BASE_URL is set "
                "(the model name on that server, e.g. llama3.1:8b)."
            )
        return ChatCompletionsLLM(
            name="openai",
            base_url=settings.LLM_BASE_URL,
            model=settings.LLM_MODEL,
            api_key=settings.LLM_API_KEY,
            **common,
        )
    return ExtractiveLLM()


__all__ = [
    "ChatCompletionsLLM",
    "ExtractiveLLM",
    "LLMError",
    "LLMProvider",
    "Passage",
    "Token",
    "TransientLLMError",
    "Turn",
    "Usage",
    "count_tokens",
    "get_llm",
    "reset_llm",
]
