"""What goes into and comes out of answer generation, whoever generates."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

from documents.embeddings import approximate_token_count

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
    # Its document and the (chunk index, text) pieces that `text` joins, in reading order:
    # the offline answer puts the passages of one section back together with them (each
    # chunk once). Empty when unknown.
    document_id: int = -1
    chunks: tuple[tuple[int, str], ...] = ()


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
