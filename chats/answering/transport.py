"""How answers travel: slots, Redis streams, the worker's runner, and Server-Sent Events.

A request that asks a question reserves one of the user's answer slots (reserve), saves
the question and queues a job on the Redis stream JOBS (start); it then only reads the
answer's own event stream (read_events). The worker's AnswerRunner threads take the job,
run chats.answering.generation.answer_events and append every event to the answer's
stream (publish):

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
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import redis
from django.conf import settings
from django.db import close_old_connections

from accounts.models import User
from chats.answering.generation import answer_events, release_db_connection
from chats.models import Chat, Message
from rra import redis_breaker

logger = logging.getLogger(__name__)

JOBS = "rra:answers:jobs"
GROUP = "answer-runners"
FINAL_EVENTS = ("done", "error")
# The worker reads an answer's stop flag at most this often (seconds).
STOP_CHECK_S = 0.2
# A reader waits this long (ms) for the next events before a keep-alive comment.
READ_BLOCK_MS = 15_000
# The worker's dispatcher waits this long (ms) for a job per XREADGROUP when idle (a
# job arriving wakes it at once); also how long it may take to notice a stop.
DISPATCH_BLOCK_MS = 5_000
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


# --- The worker side ------------------------------------------------------------------


def generate(answer_id: str) -> None:
    """Run one answer and publish its events (in the worker, or in tests)."""
    info = meta(answer_id)
    if info is None:
        logger.warning("answer %s expired before it started", answer_id)
        return
    try:
        with _prepare_slots():
            chat = Chat.objects.filter(pk=info["chat"]).first()
            user = User.objects.filter(pk=info["user"]).first()
            question = Message.objects.filter(pk=info["question"]).first()
            release_db_connection()
        if chat is None or user is None or question is None:
            publish(answer_id, "error", {"message": "The chat was deleted.", "message_id": None})
            return
        events = answer_events(
            chat=chat,
            user=user,
            question=question.content,
            user_message=question,
            stopped=lambda: stop_requested(chat.pk),
            stop_check_s=STOP_CHECK_S,
        )
        try:
            # The database part (history, retrieval) under a bounded number of slots:
            # many answers starting at once queue here instead of timing out on the
            # connection pool. answer_events gives its connection back before the model.
            with _prepare_slots():
                name, data = next(events)
            publish(answer_id, name, data, first=True)
            _publish_coalesced(answer_id, events)
        finally:
            events.close()
    except Exception:
        logger.exception("answer %s failed", answer_id)
        try:
            message = "Something went wrong while answering. Please try again."
            publish(answer_id, "error", {"message": message, "message_id": None})
        except redis.RedisError:
            pass
    finally:
        _finish(answer_id, info)
        close_old_connections()


def _publish_coalesced(answer_id: str, events) -> None:
    """Publish the rest of the answer's events. The first token goes at once (the
    reader's time to first token); later tokens that arrive within
    ANSWER_TOKEN_FLUSH_MS of the last write are joined into one event, written with the
    next token after the window or before any other event: fewer Redis writes in the
    worker and fewer wake-ups of every reader, the same text."""
    window = settings.ANSWER_TOKEN_FLUSH_MS / 1000
    pending: list[str] = []
    sent_token = False
    last = time.monotonic()

    def flush() -> None:
        nonlocal last
        if pending:
            publish(answer_id, "token", {"text": "".join(pending)})
            pending.clear()
            last = time.monotonic()

    try:
        for name, data in events:
            if name == "token":
                pending.append(data["text"])
                if not sent_token or time.monotonic() - last >= window:
                    flush()
                    sent_token = True
                continue
            flush()
            publish(answer_id, name, data)
    finally:
        flush()  # what arrived before an error is still the reader's


_slots: threading.BoundedSemaphore | None = None


def _prepare_slots() -> threading.BoundedSemaphore:
    """As many slots as the connection pool has connections, less two for the rest."""
    global _slots
    if _slots is None:
        pool = settings.DATABASES["default"]["OPTIONS"].get("pool") or {}
        _slots = threading.BoundedSemaphore(max(1, pool.get("max_size", 10) - 2))
    return _slots


def _finish(answer_id: str, info: dict[str, str]) -> None:
    r = client()
    release(user_id=int(info["user"]), answer_id=answer_id)
    # Compare-and-delete: a newer answer in the same chat keeps its key.
    if r.get(running_key(info["chat"])) == answer_id.encode():
        r.delete(running_key(info["chat"]))


@dataclass
class AnswerRunner:
    """Threads that generate answers, fed by one dispatcher thread that takes jobs from
    JOBS (a consumer group: each job goes to one worker) only while a thread is free.
    Idle, the worker sends Redis one blocking XREADGROUP every DISPATCH_BLOCK_MS (and
    the reclaim sweep's every 30 s), not one per thread; a new job wakes the dispatcher
    at once. A job whose worker died is taken over after ANSWER_MAX_SECONDS and ends
    with an error event (its partial events stay readable)."""

    threads: int
    stop: threading.Event
    running: set[str] = field(default_factory=set)  # answer ids being generated

    def start(self) -> list[threading.Thread]:
        try:
            client().xgroup_create(JOBS, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        name = f"{socket.gethostname()}-{os.getpid()}"
        self._free = threading.Semaphore(self.threads)
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        started = [
            threading.Thread(target=self._loop, name=f"answer-{n}", daemon=True)
            for n in range(self.threads)
        ]
        started.append(
            threading.Thread(
                target=self._dispatch, args=(name,), name="answer-dispatch", daemon=True
            )
        )
        started.append(
            threading.Thread(
                target=self._reclaim_loop, args=(name,), name="answer-reclaim", daemon=True
            )
        )
        for thread in started:
            thread.start()
        return started

    def _dispatch(self, consumer: str) -> None:
        r = client()
        try:
            while not self.stop.is_set():
                if not self._free.acquire(timeout=1):
                    continue  # every thread is busy: take no job it would have to queue
                try:
                    found = r.xreadgroup(
                        GROUP, consumer, {JOBS: ">"}, count=1, block=DISPATCH_BLOCK_MS
                    )
                except redis.RedisError as exc:
                    self._free.release()
                    logger.warning("reading answer jobs failed: %s", exc)
                    self.stop.wait(1)
                    continue
                entries = [entry for _, batch in found or [] for entry in batch]
                if not entries:
                    self._free.release()
                    continue
                entry_id, fields = entries[0]
                answer_id = fields[b"answer"].decode()
                if self.stop.is_set():  # taken as the worker stops: end it now
                    self._free.release()
                    self._end_unstarted(r, entry_id, answer_id)
                    continue
                self._jobs.put((entry_id, answer_id))
        finally:
            for _ in range(self.threads):
                self._jobs.put(None)

    def _end_unstarted(self, r, entry_id, answer_id: str) -> None:
        info = meta(answer_id)
        try:
            message = "The answer was interrupted (the worker stopped). Please ask again."
            publish(answer_id, "error", {"message": message, "message_id": None})
            if info:
                _finish(answer_id, info)
            r.xack(JOBS, GROUP, entry_id)
            r.xdel(JOBS, entry_id)
        except redis.RedisError as exc:  # the sweep ends it
            logger.warning("could not end answer %s: %s", answer_id, exc)

    def _loop(self) -> None:
        r = client()
        while (job := self._jobs.get()) is not None:
            entry_id, answer_id = job
            self.running.add(answer_id)
            try:
                generate(answer_id)
            finally:
                self.running.discard(answer_id)
                self._free.release()
            try:
                r.xack(JOBS, GROUP, entry_id)
                r.xdel(JOBS, entry_id)
            except redis.RedisError as exc:  # the sweep ends it (already ended)
                logger.warning("could not acknowledge answer job %s: %s", entry_id, exc)

    def abandon(self) -> list[str]:
        """The worker is stopping: end each answer still being generated with an error
        event (what was streamed stays readable) and free its slot, so its readers are
        told now rather than after ANSWER_MAX_SECONDS. Returns their ids."""
        ended = []
        for answer_id in list(self.running):
            info = meta(answer_id)
            try:
                message = "The answer was interrupted (the worker stopped). Please ask again."
                publish(answer_id, "error", {"message": message, "message_id": None})
                if info:
                    _finish(answer_id, info)
                ended.append(answer_id)
            except redis.RedisError as exc:
                logger.warning("could not end answer %s: %s", answer_id, exc)
        return ended

    def _reclaim_loop(self, name: str) -> None:
        idle_ms = int(settings.ANSWER_MAX_SECONDS * 1000)
        while not self.stop.wait(30):
            try:
                reclaim_stale(consumer=f"{name}-reclaim", min_idle_ms=idle_ms)
            except Exception:
                logger.exception("reclaiming answer jobs failed")


def reclaim_stale(*, consumer: str, min_idle_ms: int) -> int:
    """End the answers whose worker died: an error event after what was published."""
    r = client()
    _, claimed, *_ = r.xautoclaim(JOBS, GROUP, consumer, min_idle_time=min_idle_ms, count=100)
    for entry_id, fields in claimed:
        if not fields:
            continue
        answer_id = fields[b"answer"].decode()
        info = meta(answer_id)
        last = r.xrevrange(events_key(answer_id), count=1)
        ended = bool(last) and last[0][1][b"event"].decode() in FINAL_EVENTS
        if not ended:
            message = "The answer was interrupted (the worker stopped). Please ask again."
            publish(answer_id, "error", {"message": message, "message_id": None})
        if info:
            _finish(answer_id, info)
        r.xack(JOBS, GROUP, entry_id)
        r.xdel(JOBS, entry_id)
    return len(claimed)
