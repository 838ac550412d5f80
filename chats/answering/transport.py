"""How answers travel: slots, Redis streams, the worker's runner, and Server-Sent Events.

A request that asks a question reserves one of the user's answer slots (reserve), saves
the question and queues a job on the Redis stream JOBS (start); it then only reads the
answer's own event stream (read_events). The worker's AnswerRunner threads
(chats/answering/runner.py) take the job, run chats.answering.generation.answer_events
and append every event to the answer's stream (publish):

    rra:answer:<id>:events   XADD event=<name> data=<json>, MAXLEN ~ ANSWER_STREAM_MAXLEN,
                             EXPIRE ANSWER_STREAM_TTL_S; ends with a done or error event
    rra:answer:<id>:meta     user, chat and question ids (who may read the stream)
    rra:chat:<id>:answer     the answer running in a chat (the page resumes it)
    rra:chat:<id>:stop       the chat's stop flag (request_stop), read between tokens
    rra:user:<id>:answers    the user's running answers (ZSET, score = slot expiry)

Any web process reads an answer from the start or from a Last-Event-ID (the stream
entry id is the SSE id), so a reload, a second tab, another replica or a restarted one
continues the same answer. Stop is a flag beside the other keys, checked by the
generator between tokens, so it works from any process. Readers hold no database
connection while they wait. Every SSE text this package sends is made by sse().
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator

import redis
from django.conf import settings

from rra import redis_breaker

logger = logging.getLogger(__name__)
# One line per answer, at DEBUG, with the time (Unix seconds) of each of its phases: the
# request's (entered the view, slot reserved, question saved, job queued) and the
# worker's (job read, a thread has it, citations and first token published). Off unless
# LOG_DEBUG names it (bench/streams.py does): then it costs one isEnabledFor per answer.
timing = logging.getLogger("chats.answering.timing")

JOBS = "rra:answers:jobs"
GROUP = "answer-runners"
FINAL_EVENTS = ("done", "error")
# A reader waits this long (ms) for the next events before a keep-alive comment.
READ_BLOCK_MS = 15_000
# A stop flag outlives any answer it could stop (seconds).
STOP_TTL_S = 600


def enabled() -> bool:
    """Answers go through the worker when Redis is there (else: in the request)."""
    return bool(settings.REDIS_URL) and settings.ANSWERS_IN_WORKER


def events_key(answer_id: str) -> str:
    return f"rra:answer:{answer_id}:events"


def meta_key(answer_id: str) -> str:
    return f"rra:answer:{answer_id}:meta"


def running_key(chat_id) -> str:
    return f"rra:chat:{chat_id}:answer"


def user_key(user_id) -> str:
    return f"rra:user:{user_id}:answers"


def stop_key(chat_id) -> str:
    return f"rra:chat:{chat_id}:stop"


def sse(event: str, data: dict | str, *, event_id: str | None = None) -> str:
    """One Server-Sent Event: data is a dict, or JSON text already (a stream entry's)."""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: {text}\n\n"


KEEP_ALIVE = ": waiting\n\n"


_clients: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()


def client() -> redis.Redis:
    """One client (connection pool) per process and URL. Its reads may block for
    READ_BLOCK_MS, longer than the cache's socket timeout allows."""
    url = settings.REDIS_URL
    with _clients_lock:
        if url not in _clients:
            _clients[url] = redis.Redis.from_url(
                url,
                socket_connect_timeout=settings.REDIS_SOCKET_TIMEOUT,
                socket_timeout=READ_BLOCK_MS / 1000 + 10,
                health_check_interval=30,
                # Each waiting reader and each idle answer thread holds one connection
                # while it blocks (redis-py's default pool stops at 100).
                max_connections=settings.REDIS_MAX_CONNECTIONS,
                connection_class=redis_breaker.connection_class_for(url),
            )
        return _clients[url]


# --- The per-user cap --------------------------------------------------------------

# Drop expired slots; refuse when the user already has ARGV[2]; else take one.
_RESERVE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, oldest[2]}
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return {1, ARGV[3]}
"""


class TooManyAnswers(Exception):
    def __init__(self, limit: int, retry_after: int) -> None:
        self.limit = limit
        self.retry_after = retry_after
        plural = "answer" if limit == 1 else "answers"
        super().__init__(
            f"You already have {limit} {plural} being written. Wait for one to finish "
            "(or stop it), then ask again."
        )


def reserve(*, user_id: int) -> str:
    """A new answer id, holding one of the user's ANSWER_MAX_CONCURRENT_PER_USER slots
    until the answer ends (or ANSWER_MAX_SECONDS pass); TooManyAnswers when all are
    taken."""
    answer_id = uuid.uuid4().hex
    now = time.time()
    limit = settings.ANSWER_MAX_CONCURRENT_PER_USER
    took, until = client().eval(
        _RESERVE,
        1,
        user_key(user_id),
        now,
        limit,
        now + settings.ANSWER_MAX_SECONDS,
        answer_id,
        int(settings.ANSWER_MAX_SECONDS) + 60,
    )
    if not int(took):
        raise TooManyAnswers(limit, max(1, int(float(until) - now)))
    return answer_id


def release(*, user_id: int, answer_id: str) -> None:
    client().zrem(user_key(user_id), answer_id)


# --- The readers' caps ------------------------------------------------------------------

# Drop readers gone without a goodbye; refuse past ARGV[2] readers of the user or ARGV[3]
# of the answer; else hold a place in both until ARGV[4] (refreshed while reading).
_ENTER = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 'user' end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then return 'answer' end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('EXPIRE', KEYS[2], ARGV[6])
return 'ok'
"""
# A reader's place lasts this long past its last refresh (each keep-alive refreshes it),
# so the places of a process that died free themselves.
READER_HOLD_S = READ_BLOCK_MS / 1000 * 2 + 30


def user_readers_key(user_id) -> str:
    return f"rra:user:{user_id}:readers"


def answer_readers_key(answer_id: str) -> str:
    return f"rra:answer:{answer_id}:readers"


class TooManyReaders(Exception):
    """A reader refused: status 429 (the user's or the answer's cap) or 503 (this
    process's), with a Retry-After."""

    def __init__(self, status: int, message: str, retry_after: int) -> None:
        self.status = status
        self.retry_after = retry_after
        super().__init__(message)


_process_readers = 0
_process_lock = threading.Lock()


class Reader:
    """One place among an answer's readers, taken by enter() and given back by close()
    (the response's close, whether or not the stream was ever read)."""

    def __init__(self, *, user_id, answer_id: str, counted: bool) -> None:
        self.user_id = user_id
        self.answer_id = answer_id
        self.token = uuid.uuid4().hex
        self.counted = counted  # holds places in Redis (a GET of the events)
        self.refreshed = time.monotonic()
        self.closed = False

    def refresh(self) -> None:
        """Keep the places while the reader waits (at most once per READ_BLOCK_MS)."""
        if not self.counted or time.monotonic() - self.refreshed < READ_BLOCK_MS / 1000:
            return
        self.refreshed = time.monotonic()
        until = time.time() + READER_HOLD_S
        try:
            pipe = client().pipeline(transaction=False)
            pipe.zadd(user_readers_key(self.user_id), {self.token: until})
            pipe.zadd(answer_readers_key(self.answer_id), {self.token: until})
            pipe.execute()
        except redis.RedisError as exc:
            logger.warning("could not refresh a reader of answer %s: %s", self.answer_id, exc)

    def close(self) -> None:
        global _process_readers
        if self.closed:
            return
        self.closed = True
        with _process_lock:
            _process_readers -= 1
        if self.counted:
            try:
                pipe = client().pipeline(transaction=False)
                pipe.zrem(user_readers_key(self.user_id), self.token)
                pipe.zrem(answer_readers_key(self.answer_id), self.token)
                pipe.execute()
            except redis.RedisError as exc:  # the places expire on their own
                logger.warning("could not release a reader of %s: %s", self.answer_id, exc)


def enter(*, user_id, answer_id: str, check: bool = True) -> Reader:
    """A place for one more reader of the answer, or TooManyReaders: past
    STREAM_READERS_PER_PROCESS readers in this process (503: each holds a thread), past
    STREAM_READERS_PER_USER of the user or STREAM_READERS_PER_ANSWER of the answer (429).
    check=False (the request that asked the question, already held to the user's answer
    slots) counts the reader in this process without refusing it."""
    global _process_readers
    with _process_lock:
        if check and _process_readers >= settings.STREAM_READERS_PER_PROCESS:
            raise TooManyReaders(
                503, "The server is reading too many answers right now. Try again soon.", 5
            )
        _process_readers += 1
    reader = Reader(user_id=user_id, answer_id=answer_id, counted=check)
    if not check:
        return reader
    try:
        verdict = client().eval(
            _ENTER,
            2,
            user_readers_key(user_id),
            answer_readers_key(answer_id),
            time.time(),
            settings.STREAM_READERS_PER_USER,
            settings.STREAM_READERS_PER_ANSWER,
            time.time() + READER_HOLD_S,
            reader.token,
            int(READER_HOLD_S) + 60,
        )
    except BaseException:
        reader.counted = False
        reader.close()
        raise
    verdict = verdict.decode() if isinstance(verdict, bytes) else verdict
    if verdict != "ok":
        reader.counted = False
        reader.close()
        if verdict == "user":
            limit = settings.STREAM_READERS_PER_USER
            message = f"You are already reading {limit} answer streams. Close one and retry."
        else:
            limit = settings.STREAM_READERS_PER_ANSWER
            message = f"This answer already has {limit} readers. Close one and retry."
        raise TooManyReaders(429, message, int(READ_BLOCK_MS / 1000))
    return reader


def readers_in_process() -> int:
    return _process_readers


# --- Starting, publishing and reading ----------------------------------------------


# --- The stop flag -----------------------------------------------------------------

# Without Redis, answers are written in the request, by the one process that serves the
# site (EMBEDDED_REDIS=false refuses more): the flag lives in that process.
_local_stops: dict[str, float] = {}


def request_stop(*, chat_id) -> None:
    """Ask the answer being written in this chat to stop after its next token (from any
    process). A store that does not answer loses the request (logged), as a stop sent
    just after the answer ended would be."""
    if not settings.REDIS_URL:
        _local_stops[str(chat_id)] = time.monotonic() + STOP_TTL_S
        return
    try:
        client().set(stop_key(chat_id), 1, ex=STOP_TTL_S)
    except redis.RedisError as exc:
        logger.warning("could not ask the answer of chat %s to stop: %s", chat_id, exc)


def stop_requested(chat_id) -> bool:
    """Whether the chat's stop flag is set (False when the store does not answer)."""
    if not settings.REDIS_URL:
        return _local_stops.get(str(chat_id), 0.0) > time.monotonic()
    try:
        return bool(client().exists(stop_key(chat_id)))
    except redis.RedisError as exc:
        logger.warning("could not read the stop flag of chat %s: %s", chat_id, exc)
        return False


def clear_stop(*, chat_id) -> None:
    """A new answer starts unstopped."""
    if not settings.REDIS_URL:
        _local_stops.pop(str(chat_id), None)
        return
    try:
        client().delete(stop_key(chat_id))
    except redis.RedisError as exc:
        logger.warning("could not clear the stop flag of chat %s: %s", chat_id, exc)


def start(*, answer_id: str, chat, user, user_message) -> None:
    """Queue the answer to user_message (after the question's transaction commits), with
    the chat's stop flag cleared."""
    ttl = settings.ANSWER_STREAM_TTL_S
    r = client()
    pipe = r.pipeline(transaction=False)
    pipe.delete(stop_key(chat.pk))
    pipe.hset(
        meta_key(answer_id),
        mapping={"user": user.pk, "chat": str(chat.pk), "question": user_message.pk},
    )
    pipe.expire(meta_key(answer_id), ttl)
    pipe.set(running_key(chat.pk), answer_id, ex=ttl)
    pipe.xadd(
        JOBS,
        {"answer": answer_id, "queued_at": time.time()},
        maxlen=100_000,
        approximate=True,
    )
    pipe.execute()


def meta(answer_id: str) -> dict[str, str] | None:
    found = client().hgetall(meta_key(answer_id))
    return {k.decode(): v.decode() for k, v in found.items()} if found else None


def running_in(chat_id) -> str | None:
    """The answer being written in this chat, if any (its stream has not ended). None
    when Redis does not answer: the page still renders."""
    try:
        value = client().get(running_key(chat_id))
    except redis.RedisError as exc:
        logger.warning("could not look up the running answer of chat %s: %s", chat_id, exc)
        return None
    return value.decode() if value else None


def publish(answer_id: str, name: str, data: dict, *, first: bool = False) -> str:
    key = events_key(answer_id)
    r = client()
    fields = {"event": name, "data": json.dumps(data, ensure_ascii=False)}
    if first or name in FINAL_EVENTS:
        pipe = r.pipeline(transaction=False)
        pipe.xadd(key, fields, maxlen=settings.ANSWER_STREAM_MAXLEN, approximate=True)
        pipe.expire(key, settings.ANSWER_STREAM_TTL_S)
        entry_id = pipe.execute()[0]
    else:
        entry_id = r.xadd(key, fields, maxlen=settings.ANSWER_STREAM_MAXLEN, approximate=True)
    return entry_id.decode() if isinstance(entry_id, bytes) else entry_id


def publish_text(answer_id: str, text: str, *, chat_id) -> bool:
    """Publish a token event and read the chat's stop flag in the same round trip (the
    worker writes an answer's tokens at most every ANSWER_TOKEN_FLUSH_MS: its stop
    check rides along instead of costing a read of its own). Whether stop was asked."""
    return publish_texts([(answer_id, chat_id, text)])[0]


def publish_texts(texts: list[tuple[str, object, str]]) -> list[bool]:
    """Token events of many answers, (answer id, chat id, text) each, in one round trip,
    each with its chat's stop flag read (chats/answering/publisher.py): whether stop was
    asked, in the same order."""
    pipe = client().pipeline(transaction=False)
    for answer_id, chat_id, text in texts:
        pipe.xadd(
            events_key(answer_id),
            {"event": "token", "data": json.dumps({"text": text}, ensure_ascii=False)},
            maxlen=settings.ANSWER_STREAM_MAXLEN,
            approximate=True,
        )
        pipe.exists(stop_key(chat_id))
    return [bool(found) for found in pipe.execute()[1::2]]


def valid_event_id(value: str | None) -> str:
    """A Last-Event-ID as a stream id ("0-0", the start, when missing or malformed)."""
    if value:
        ms, _, seq = value.strip().partition("-")
        if ms.isdigit() and seq.isdigit():
            return f"{ms}-{seq}"
    return "0-0"


def read_events(
    answer_id: str, *, after: str = "0-0", reader: Reader | None = None
) -> Iterator[str]:
    """SSE text for the answer's events after `after`, as they come, until its done or
    error event. Keep-alive comments while waiting; an error event when no worker takes
    the answer within ANSWER_START_TIMEOUT_S. The reader's place is kept while it reads."""
    key = events_key(answer_id)
    r = client()
    last = after
    waited_since = time.monotonic()
    start_timeout_ms = int(settings.ANSWER_START_TIMEOUT_S * 1000)
    while True:
        block = READ_BLOCK_MS if last != "0-0" else min(READ_BLOCK_MS, start_timeout_ms)
        found = r.xread({key: last}, count=500, block=block)
        if reader is not None:
            reader.refresh()
        if not found:
            if last == "0-0" and time.monotonic() - waited_since >= settings.ANSWER_START_TIMEOUT_S:
                message = "No worker took the answer. Is the background worker running?"
                yield sse("error", {"message": message})
                return
            yield KEEP_ALIVE
            continue
        chunk = []
        finished = False
        for entry_id, fields in found[0][1]:
            last = entry_id.decode()
            name = fields[b"event"].decode()
            chunk.append(sse(name, fields[b"data"].decode(), event_id=last))
            finished = finished or name in FINAL_EVENTS
        yield "".join(chunk)
        if finished:
            return
