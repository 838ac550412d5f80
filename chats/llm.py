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
import math
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from chats.prompts import build_messages, prune_history
from documents.chunking import SECTION_SEPARATOR
from documents.chunking import _sentences as sentence_spans
from documents.embeddings import approximate_token_count, parse_retry_after

logger = logging.getLogger(__name__)


# --- Data passed in and out --------------------------------------------------------------


@dataclass(frozen=True)
class Passage:
    """A numbered passage given to the model."""

    number: int  # 1-based, as cited: [1], [2], ...
    text: str
    document: str  # document name
    pages: str  # e.g. "p. 3" or "pp. 3–4", or "" for non-paginated documents
    section: str = ""
    score: float = 0.0  # retrieval score, higher is better


@dataclass(frozen=True)
class Turn:
    """An earlier message of the chat."""

    role: str  # "user" | "assistant"
    content: str


@dataclass(frozen=True)
class Token:
    """A streamed piece of the answer."""

    text: str


@dataclass(frozen=True)
class Usage:
    """The last item of every stream."""

    prompt_tokens: int
    completion_tokens: int
    model: str
    # "stop", or "length" when the answer was cut at LLM_MAX_TOKENS (as the server says).
    finish_reason: str = "stop"


class LLMError(Exception):
    """Answering failed for good (bad key, unknown model, refused request...)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class TransientLLMError(LLMError):
    """A failure that may pass: timeout, connection error, 429, 5xx, a broken stream."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class LLMProvider(ABC):
    name: str  # "xai" | "openai" | "extractive"
    model: str

    @abstractmethod
    def stream(
        self, *, question: str, passages: list[Passage], history: list[Turn]
    ) -> Iterator[Token | Usage]:
        """Token deltas of the answer, then exactly one Usage. Nothing is sent before the
        first next(); errors are raised from the iteration (possibly after tokens)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}/{self.model}>"


def count_tokens(text: str) -> int:
    """An estimate of a chat model's tokens (its own tokenizer is not at hand)."""
    return approximate_token_count(text)


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
                    if choice.get("finish_reason"):
                        finish_reason = choice["finish_reason"]
        except http.TimeoutException as exc:
            raise self._error(openai.APITimeoutError(request=exc.request), streaming=True) from exc
        except http.TransportError as exc:
            raise TransientLLMError(
                f"The connection to {SERVICE.lower()} was lost while the answer was streaming."
            ) from exc
        finally:
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


# --- Extractive: no model ------------------------------------------------------------------

EXTRACTIVE_MODEL = "extractive"
MAX_SENTENCES = 5
MAX_PASSAGES = 4  # only the best passages are read
MAX_SENTENCE_WORDS = 60  # longer sentences are quoted up to here, then "…"
MIN_SENTENCE_WORDS = 3
# A quoted line that ends with ":" ("If the laser value increases:") introduces what
# follows: up to this many of the next lines of its passage come with it.
MAX_CONTINUATION = 2
# Table-of-contents lines: a run of dot leaders.
_TOC_LINE = re.compile(r"\.{5,}|…{3,}")
# Symbol-font glyphs (Wingdings icons in PDFs: "( Image 5)") mean nothing as text.
_GLYPH = "[\ue000-\uf8ff]"
_PRIVATE_USE = re.compile(_GLYPH)
_GLYPH_IN_BRACKETS = re.compile(rf"\s*\(\s*{_GLYPH}+\s*\)")  # "button (<glyph>)"
RELATIVE_THRESHOLD = 0.4  # a sentence must score at least this share of the best one

# The quoted sentences together must hold at least this share of the question's content
# terms (weighted by rarity among the candidate sentences), else the answer declines.
MIN_COVERAGE = 0.4  # chosen on bench/eval's tune split (bench/README.md)

LEAD_IN = "Here is what the documents say:"
NOT_COVERED = (
    "The documents do not cover this. Try rephrasing the question, or upload a manual "
    "that covers it."
)

_STOP_WORDS_TEXT = """
    a about above after again against all also am an and any are as at be because been
    before being below between both but by can cannot could did do does doing done down
    during each either else ever every few for from further get gets got had has have
    having he her here hers herself him himself his how i if in into is it its itself
    just let like may me might more most must my myself need needs no nor not now of off
    often on once one only or other ought our ours ourselves out over own per please
    same shall she should so some such than that the their theirs them themselves then
    there these they this those through thus to too under until up upon us use used
    using very via was we were what when where whether which while who whom whose why
    will with within without would yes yet you your yours yourself yourselves
    anything something tell explain show describe know want way ways thing things
    mean means meaning happen happens find say says called
"""
_STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())
_WORD = re.compile(r"\w+", re.UNICODE)
_SPLIT_TOKENS = re.compile(r"\S+\s*|\s+")
_SUFFIXES = (
    ("ations", "at"),
    ("ation", "at"),
    ("ings", ""),
    ("ing", ""),
    ("ies", "y"),
    ("es", ""),
    ("ed", ""),
    ("s", ""),
)


def _stem(word: str) -> str:
    """A crude, deterministic stem, enough for "calibrate", "calibrated", "calibrating"
    and "calibration" (calibrat), "belt"/"belts" or "battery"/"batteries" to meet."""
    if not word.endswith("ss"):
        for suffix, replacement in _SUFFIXES:
            if word.endswith(suffix) and len(word) - len(suffix) >= 3:
                word = word[: -len(suffix)] + replacement
                break
    if word.endswith("e") and len(word) > 4:
        word = word[:-1]
    return word


def content_terms(text: str) -> set[str]:
    """Stems of the content words of text (lower case, stop words left out)."""
    terms = set()
    for word in _WORD.findall(text.lower()):
        if word in _STOP_WORDS or (len(word) < 2 and not word.isdigit()):
            continue
        terms.add(_stem(word))
    return terms


@dataclass
class _Candidate:
    passage_rank: int
    position: int
    number: int
    text: str
    terms: set[str]
    context: set[str] = field(default_factory=set)  # terms of the passage's section
    score: float = 0.0


def _sentences_of(passage: Passage) -> list[str]:
    """The passage's sentences and lines, whitespace collapsed; the section line that
    chunks start with and heading-like scraps of one or two words are left out."""
    sentences = []
    section = " ".join(passage.section.split())
    for start, end in sentence_spans(passage.text):
        sentence = _GLYPH_IN_BRACKETS.sub("", passage.text[start:end])
        sentence = " ".join(_PRIVATE_USE.sub(" ", sentence).split())
        sentence = sentence.replace("( ", "(").replace(" )", ")")
        if sentence == section or (SECTION_SEPARATOR.strip() in sentence and start == 0):
            continue
        sentence = re.sub(r"^(?:[-*•▪●]|#+)\s+", "", sentence)  # list marker or heading
        if len(sentence.split()) < MIN_SENTENCE_WORDS or _TOC_LINE.search(sentence):
            continue
        sentences.append(sentence)
    return sentences


_BRACKETED_NUMBERS = re.compile(r"\[([\d,\s]*\d[\d,\s]*)\]")


def _quoted(sentence: str) -> str:
    words = sentence.split(" ")
    if len(words) > MAX_SENTENCE_WORDS:
        sentence = " ".join(words[:MAX_SENTENCE_WORDS]) + " …"
    # A "[4]" of the document itself must not read as a citation: escaped for Markdown,
    # it still shows as [4].
    return _BRACKETED_NUMBERS.sub(r"\\[\1\\]", sentence)


def _continuations(chosen: list[_Candidate], candidates: list[_Candidate]) -> list[_Candidate]:
    """The lines that chosen lines ending with ":" introduce (the next ones of the same
    passage, up to MAX_CONTINUATION each, stopping after one that introduces again)."""
    at = {(c.passage_rank, c.position): c for c in candidates}
    taken = {id(c) for c in chosen}
    extra = []
    for line in chosen:
        if not line.text.endswith(":"):
            continue
        for step in range(1, MAX_CONTINUATION + 1):
            following = at.get((line.passage_rank, line.position + step))
            if following is None or id(following) in taken:
                break
            extra.append(following)
            taken.add(id(following))
            if following.text.endswith(":"):
                break
    return extra


def extractive_answer(question: str, passages: Sequence[Passage]) -> str:
    """The Markdown answer: a one-line lead-in, then up to MAX_SENTENCES sentences quoted
    from the best passages (and the lines that those ending with ":" introduce), each
    followed by [n] of its passage."""
    if not passages:
        return NOT_COVERED
    ranked = sorted(enumerate(passages), key=lambda item: (-item[1].score, item[0]))
    candidates: list[_Candidate] = []
    seen: set[str] = set()
    for rank, (_, passage) in enumerate(ranked[:MAX_PASSAGES]):
        context = content_terms(passage.section)
        for position, sentence in enumerate(_sentences_of(passage)):
            key = sentence.lower()
            if key in seen:  # overlapping chunks repeat sentences
                continue
            seen.add(key)
            candidates.append(
                _Candidate(
                    rank, position, passage.number, sentence, content_terms(sentence), context
                )
            )
    if not candidates:
        return NOT_COVERED

    question_terms = content_terms(question)
    if not question_terms:
        return NOT_COVERED
    # Rarer terms weigh more (inverse frequency over the candidate sentences; a term no
    # sentence holds weighs most, so missing it counts against the answer).
    total = len(candidates)
    weight = {
        term: math.log(1 + total / (sum(term in c.terms for c in candidates) + 0.5))
        for term in question_terms
    }
    for candidate in candidates:
        candidate.score = sum(weight[term] for term in question_terms & candidate.terms)
    best = max(c.score for c in candidates)
    if best <= 0:
        return NOT_COVERED
    chosen = sorted(
        (c for c in candidates if c.score >= best * RELATIVE_THRESHOLD),
        key=lambda c: (-c.score, c.passage_rank, c.position),
    )[:MAX_SENTENCES]
    # Decline unless the quoted sentences (with their sections' headings) address the
    # question: together they must hold most of its weight, not a word or two that every
    # passage shares.
    covered = set().union(*(c.terms | c.context for c in chosen)) & question_terms
    if sum(weight[t] for t in covered) < MIN_COVERAGE * sum(weight.values()):
        return NOT_COVERED
    chosen += _continuations(chosen, candidates)
    chosen.sort(key=lambda c: (c.passage_rank, c.position))  # reading order
    lines = [f"- {_quoted(c.text)} [{c.number}]" for c in chosen]
    return LEAD_IN + "\n\n" + "\n".join(lines)


class ExtractiveLLM(LLMProvider):
    """Answers without a model: quotes the passages' most relevant sentences, cited."""

    name = "extractive"
    model = EXTRACTIVE_MODEL

    def stream(
        self, *, question: str, passages: list[Passage], history: list[Turn]
    ) -> Iterator[Token | Usage]:
        answer = extractive_answer(question, passages)
        for piece in _SPLIT_TOKENS.findall(answer):  # word by word, like a model
            yield Token(piece)
        read = count_tokens(question) + sum(count_tokens(p.text) for p in passages)
        yield Usage(read, count_tokens(answer), EXTRACTIVE_MODEL)


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
    "extractive_answer",
    "get_llm",
    "reset_llm",
]
