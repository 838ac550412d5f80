"""The worker side of answers: AnswerRunner's threads take jobs from the Redis stream
JOBS, generate each answer (chats.answering.generation.answer_events) and publish its
events on the answer's stream (chats/answering/transport.py: keys, publish, slots)."""

from __future__ import annotations

import json
import logging
import os
import queue
import socket
import threading
import time
from dataclasses import dataclass, field

import redis
from django.conf import settings
from django.db import close_old_connections

from accounts.models import User
from chats.answering.generation import answer_events, release_db_connection
from chats.answering.publisher import Text, publisher
from chats.answering.transport import (
    FINAL_EVENTS,
    GROUP,
    JOBS,
    client,
    events_key,
    meta,
    publish,
    publish_text,
    release,
    running_key,
    timing,
)
from chats.models import Chat, Message

logger = logging.getLogger(__name__)

# The worker's dispatcher waits this long (ms) for a job per XREADGROUP when idle (a
# job arriving wakes it at once); also how long it may take to notice a stop.
DISPATCH_BLOCK_MS = 5_000
# The most jobs the dispatcher takes in one read (never more than the free threads).
DISPATCH_BATCH = 32


def generate(answer_id: str, *, read_at: float | None = None) -> None:
    """Run one answer and publish its events (in the worker, or in tests). read_at: when
    the dispatcher read its job (for the phase timings)."""
    phases = {"read": read_at, "taken": time.time()}
    cpu = time.thread_time()
    info = meta(answer_id)
    if info is None:
        logger.warning("answer %s expired before it started", answer_id)
        return
    try:
        with _prepare_slots():
            phases["loading"] = time.time()
            chat = Chat.objects.filter(pk=info["chat"]).first()
            user = User.objects.filter(pk=info["user"]).first()
            question = Message.objects.filter(pk=info["question"]).first()
            release_db_connection()
        if chat is None or user is None or question is None:
            publish(answer_id, "error", {"message": "The chat was deleted.", "message_id": None})
            return
        # The stop flag as the last write of the answer's text read it (publish_text):
        # the generator asks after each token, which costs nothing now.
        stop = _StopSeen()
        events = answer_events(
            chat=chat,
            user=user,
            question=question.content,
            user_message=question,
            stopped=stop.seen,
        )
        try:
            # The database part (history, retrieval) under a bounded number of slots:
            # many answers starting at once queue here instead of timing out on the
            # connection pool. answer_events gives its connection back before the model.
            with _prepare_slots():
                phases["retrieving"] = time.time()
                name, data = next(events)
            publish(answer_id, name, data, first=True)
            phases["cited"] = time.time()
            _publish_coalesced(answer_id, events, chat_id=chat.pk, stop=stop, phases=phases)
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
        if timing.isEnabledFor(logging.DEBUG):
            # This thread's CPU from taking the job to its first token published.
            if "first_token_cpu" in phases:
                phases["cpu_s"] = phases.pop("first_token_cpu") - cpu
            timing.debug(
                "answer ended", extra={"answer": answer_id, **phases, "ended": time.time()}
            )


class _StopSeen:
    """Whether the chat's stop flag was set at the answer's last token write."""

    def __init__(self) -> None:
        self.requested = False

    def seen(self) -> bool:
        return self.requested


def _publish_coalesced(
    answer_id: str, events, *, chat_id, stop: _StopSeen, phases: dict | None = None
) -> None:
    """Publish the rest of the answer's events. The first token goes at once (the
    reader's time to first token); later tokens go to the process's one writer of text
    (chats/answering/publisher.py), which writes every answer's text that gathered
    within ANSWER_TOKEN_FLUSH_MS in one round trip: fewer Redis writes in the worker and
    fewer wake-ups of every reader, the same text. Other events are written at once,
    after the text before them. Each write of text reads the chat's stop flag too (into
    `stop`): a stop is seen within the window after it was asked, with no read of its
    own (at 200 answers, 1,000 reads a second). A window of 0 writes every token at once."""
    window = settings.ANSWER_TOKEN_FLUSH_MS
    writer = publisher()
    text = Text(answer_id, chat_id)
    sent_token = False
    try:
        for name, data in events:
            if name == "token":
                if not sent_token or not window:
                    stop.requested = publish_text(answer_id, data["text"], chat_id=chat_id)
                    if not sent_token and phases is not None:
                        phases["first_token"] = time.time()
                        phases["first_token_cpu"] = time.thread_time()
                    sent_token = True
                else:
                    writer.add(text, data["text"])
                    stop.requested = stop.requested or text.stopped
                continue
            writer.finish(text)
            publish(answer_id, name, data)
    finally:
        writer.finish(text)  # what arrived before an error is still the reader's


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
                # Up to DISPATCH_BATCH jobs per read, one for each free thread: under a
                # burst, a read per job (each waiting for the GIL behind hundreds of
                # streaming threads) kept answers queued for seconds before they started.
                # Idle, a new job wakes the read at once with just that job.
                free = 1
                while free < DISPATCH_BATCH and self._free.acquire(blocking=False):
                    free += 1
                try:
                    found = r.xreadgroup(
                        GROUP, consumer, {JOBS: ">"}, count=free, block=DISPATCH_BLOCK_MS
                    )
                except redis.RedisError as exc:
                    self._release(free)
                    logger.warning("reading answer jobs failed: %s", exc)
                    self.stop.wait(1)
                    continue
                entries = [entry for _, batch in found or [] for entry in batch]
                self._release(free - len(entries))
                for entry_id, fields in entries:
                    answer_id = fields[b"answer"].decode()
                    if self.stop.is_set():  # taken as the worker stops: end it now
                        self._release(1)
                        self._end_unstarted(r, entry_id, answer_id)
                        continue
                    self._jobs.put((entry_id, answer_id, time.time()))
        finally:
            for _ in range(self.threads):
                self._jobs.put(None)

    def _release(self, count: int) -> None:
        for _ in range(count):
            self._free.release()

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
            entry_id, answer_id, read_at = job
            self.running.add(answer_id)
            try:
                generate(answer_id, read_at=read_at)
            except Exception:
                # Outside the answer's own events (its meta read, its slot given back):
                # Redis timed out under load. The thread lives on; the job stays pending
                # and the sweep ends the answer (error event, slot). Before, the thread
                # died and the jobs handed to the dead thread were never started.
                logger.exception("answer %s failed outside its events", answer_id)
                continue
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
            saved = _save_interrupted(answer_id, info, message) if info else None
            publish(answer_id, "error", {"message": message, "message_id": saved})
        if info:
            _finish(answer_id, info)
        r.xack(JOBS, GROUP, entry_id)
        r.xdel(JOBS, entry_id)
    return len(claimed)


def _save_interrupted(answer_id: str, info: dict[str, str], error: str) -> int | None:
    """The text its readers were sent, saved as a partial answer (its worker died
    before it could save it); None when nothing was sent or the chat is gone."""
    parts = [
        json.loads(fields[b"data"])["text"]
        for _, fields in client().xrange(events_key(answer_id))
        if fields[b"event"] == b"token"
    ]
    if not parts:
        return None
    try:
        chat = Chat.objects.filter(pk=info["chat"]).first()
        if chat is None:
            return None
        return Message.objects.create(
            chat=chat,
            role=Message.Role.ASSISTANT,
            content="".join(parts),
            status=Message.Status.PARTIAL,
            error=error,
        ).pk
    finally:
        close_old_connections()
