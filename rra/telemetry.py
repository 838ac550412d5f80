"""Performance log lines and metrics for the hot paths: ingestion, search, answers.

Small calls from the services, each writing one structured line on the "rra.perf"
logger and updating the matching Prometheus metrics:

    @telemetry.track_ingest                  # ingest.done {document_id, outcome, duration_ms}
    def document_ingest(*, document_id): ...
        telemetry.ingest_step("extract", pages=3)   # ingest.step {step, duration_ms, ...}

    @telemetry.track_search                  # search {mode, hits, duration_ms, embed_ms, ...}
    def search(*, user, query, ...): ...

    for item in telemetry.llm_stream(items, provider=llm):   # llm.call {provider, tokens...}
        ...

    telemetry.cache_lookup("search", hit=True)
    telemetry.ratelimit_rejected("search")
    telemetry.response_compressed("br", original=9000, compressed=2100)   # metrics only

    telemetry.slow_query(db_alias=..., sql=..., duration_ms=...)  # on "rra.db.slow"

Search queries and questions are never logged, only their length; nor are SQL
parameters.
"""

from __future__ import annotations

import contextvars
import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog

from rra import metrics

log = structlog.get_logger("rra.perf")
slow_log = structlog.get_logger("rra.db.slow")

F = TypeVar("F", bound=Callable[..., Any])


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


# --- HTTP ------------------------------------------------------------------------------------


@functools.cache
def _labelled(metric, *labels: str):
    """metric.labels(*labels), looked up once per process (for the calls made on every
    request; their label values are few: encodings, caches, views)."""
    return metric.labels(*labels)


def response_compressed(encoding: str, *, original: int, compressed: int) -> None:
    """rra/compression.py compressed a body. Metrics only: a line per response would
    repeat the access line."""
    _labelled(metrics.COMPRESSION_RATIO, encoding).observe(compressed / original)
    _labelled(metrics.COMPRESSION_SAVED_BYTES, encoding).inc(original - compressed)


# --- Cache and rate limits ------------------------------------------------------------------


def cache_lookup(cache: str, *, hit: bool) -> None:
    _labelled(metrics.CACHE_REQUESTS, cache, "hit" if hit else "miss").inc()


def conditional_get(view: str, *, not_modified: bool) -> None:
    _labelled(metrics.CONDITIONAL_GETS, view, "not_modified" if not_modified else "full").inc()


def ratelimit_rejected(group: str) -> None:
    metrics.RATELIMIT_REJECTIONS.labels(group).inc()
    log.info("ratelimit.rejected", group=group)


# --- Database ----------------------------------------------------------------------------


def slow_query(
    *, db_alias: str, sql: str, duration_ms: float, many: bool = False, error: str | None = None
) -> None:
    """A query took SLOW_QUERY_MS or longer (rra/slow_queries.py times them). sql is
    already normalized; parameters never come here."""
    metrics.SLOW_QUERIES.labels(db_alias).inc()
    fields: dict[str, Any] = {"db_alias": db_alias, "duration_ms": round(duration_ms, 2)}
    if many:
        fields["many"] = True
    if error:
        fields["error"] = error
    slow_log.warning("db.slow_query", sql=sql, **fields)


# --- Ingestion ------------------------------------------------------------------------------


@dataclass
class _IngestRun:
    document_id: int
    started: float
    mark: float
    stored: dict[str, int] = field(default_factory=dict)
    reason: str = ""


_ingest_run: contextvars.ContextVar[_IngestRun | None] = contextvars.ContextVar(
    "rra_ingest_run", default=None
)


def ingest_step(step: str, **fields: Any) -> None:
    """One step of the current ingestion run finished: its time since the previous
    step (or the start), and what it produced. "store" marks the document ready."""
    run = _ingest_run.get()
    now = time.perf_counter()
    if run is None:  # called outside track_ingest
        log.info("ingest.step", step=step, **fields)
        return
    seconds = now - run.mark
    run.mark = now
    metrics.INGEST_STEP_SECONDS.labels(step).observe(seconds)
    if step == "store":
        run.stored = {k: v for k, v in fields.items() if k in ("pages", "chunks")}
    log.info(
        "ingest.step", document_id=run.document_id, step=step, duration_ms=_ms(seconds), **fields
    )


def ingest_failed(reason: str) -> None:
    """The current ingestion run fails for this reason (logged with its outcome)."""
    run = _ingest_run.get()
    if run is not None:
        run.reason = reason


def track_ingest(func: F) -> F:
    """Decorate document_ingest(*, document_id) -> outcome: time the run, count it by
    outcome, count the pages and chunks of documents that became ready."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        document_id = kwargs.get("document_id", args[0] if args else None)
        now = time.perf_counter()
        token = _ingest_run.set(_IngestRun(document_id, now, now))
        outcome = "error"
        try:
            outcome = func(*args, **kwargs)
            return outcome
        finally:
            run = _ingest_run.get()
            _ingest_run.reset(token)
            seconds = time.perf_counter() - run.started
            metrics.INGEST_DOCUMENTS.labels(outcome).inc()
            if outcome != "skipped":
                metrics.INGEST_SECONDS.labels(outcome).observe(seconds)
            fields: dict[str, Any] = {"document_id": document_id, "outcome": outcome}
            if outcome == "ready":
                metrics.INGEST_PAGES.inc(run.stored.get("pages", 0))
                metrics.INGEST_CHUNKS.inc(run.stored.get("chunks", 0))
                fields.update(run.stored)
            if outcome == "failed":
                fields["reason"] = run.reason
            level = "warning" if outcome in ("failed", "error") else "info"
            getattr(log, level)("ingest.done", duration_ms=_ms(seconds), **fields)

    return wrapper  # type: ignore[return-value]


# --- Search ------------------------------------------------------------------------------------


def track_search(func: F) -> F:
    """Decorate search(*, user, query, mode, ...) -> SearchResult."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        mode = kwargs.get("mode", "hybrid")
        user = kwargs.get("user")
        started = time.perf_counter()
        try:
            result = func(*args, **kwargs)
        except Exception as exc:
            metrics.SEARCH_ERRORS.labels(str(mode)).inc()
            log.warning(
                "search.failed",
                mode=mode,
                error=type(exc).__name__,
                duration_ms=_ms(time.perf_counter() - started),
            )
            raise
        seconds = time.perf_counter() - started
        metrics.SEARCH_SECONDS.labels(result.mode).observe(seconds)
        log.info(
            "search",
            user_id=getattr(user, "pk", None),
            mode=result.mode,
            k=kwargs.get("k"),
            query_chars=len(result.query),
            hits=len(result.hits),
            reranked=result.reranked,
            duration_ms=_ms(seconds),
            **{f"{name}_ms": value for name, value in result.timings.items()},
        )
        return result

    return wrapper  # type: ignore[return-value]


# --- LLM ------------------------------------------------------------------------------------------


def llm_stream(items: Iterator[Any], *, provider: Any) -> Iterator[Any]:
    """Pass an LLM stream through (tokens, then one usage item), timing it: time to
    the first token, total time, tokens and outcome (ok, error, cancelled)."""
    name = getattr(provider, "name", type(provider).__name__)
    started = time.perf_counter()
    first: float | None = None
    usage: Any = None
    outcome, error = "cancelled", None
    try:
        for item in items:
            if hasattr(item, "completion_tokens"):
                usage = item
            elif first is None:
                first = time.perf_counter() - started
            yield item
        outcome = "ok"
    except Exception as exc:
        outcome, error = "error", type(exc).__name__
        raise
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()
        seconds = time.perf_counter() - started
        metrics.LLM_SECONDS.labels(name, outcome).observe(seconds)
        if first is not None:
            metrics.LLM_FIRST_TOKEN_SECONDS.labels(name).observe(first)
        fields: dict[str, Any] = {
            "provider": name,
            "model": getattr(usage, "model", None) or getattr(provider, "model", ""),
            "outcome": outcome,
            "duration_ms": _ms(seconds),
            "first_token_ms": None if first is None else _ms(first),
        }
        if usage is not None:
            metrics.LLM_TOKENS.labels(name, "prompt").inc(usage.prompt_tokens)
            metrics.LLM_TOKENS.labels(name, "completion").inc(usage.completion_tokens)
            fields.update(
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                finish_reason=getattr(usage, "finish_reason", None),
            )
        if error:
            fields["error"] = error
        (log.warning if error else log.info)("llm.call", **fields)


# --- Users: actions and conversions -----------------------------------------------------------
#
#     telemetry.signup_requested(user)      # a new address asked for an account
#     telemetry.signup_confirmed(user)      # ...and confirmed it
#     telemetry.document_uploaded(...)      # a new document (documents says if it is the first)
#     telemetry.question_asked(...)         # a question saved (chats says if it is the first)
#     telemetry.voted(value)                # "up" or "down", when a vote is cast or changed
#     telemetry.shared("chat" | "document") # made public / shared


def user_action(action: str, count: int = 1) -> None:
    metrics.USER_ACTIONS.labels(action).inc(count)


def conversion(step: str, *, user_id: Any) -> None:
    metrics.CONVERSIONS.labels(step).inc()
    log.info("conversion", step=step, user_id=user_id)


def signup_requested(user: Any) -> None:
    conversion("signup_requested", user_id=user.pk)


def signup_confirmed(user: Any) -> None:
    conversion("signup", user_id=user.pk)


def document_uploaded(*, owner_id: int, shared_with_all: bool, first: bool) -> None:
    """A new document (not a duplicate of one the owner has); `first`: the owner has no
    other document."""
    user_action("upload")
    if shared_with_all:
        shared("document")
    if first:
        conversion("first_upload", user_id=owner_id)


def question_asked(*, owner_id: int, first: bool) -> None:
    """A question was saved; `first`: none of the asker's chats holds another."""
    user_action("question")
    if first:
        conversion("first_question", user_id=owner_id)


def voted(value: str) -> None:
    user_action(f"vote_{value}")


def shared(kind: str) -> None:
    user_action(f"share_{kind}")
