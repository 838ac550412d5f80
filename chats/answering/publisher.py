"""The worker's one writer of answers' text: every answer thread hands its tokens here,
and one thread per process writes the text that gathered for all answers in one Redis
round trip per ANSWER_TOKEN_FLUSH_MS (each answer's token event and its chat's stop
flag), instead of each answer writing its own every window.

At 200 answers streaming at once that was about 1,400 round trips a second, each
taking the GIL several times (connection checkout, pack, send, wait, parse) behind
every other streaming thread: about 40 % of the worker's CPU per token
(bench/stream_cpu.py). An answer's first token and its other events (citations, done,
error) are still written by its own thread at once; `finish()` writes what it still has
here first, so a reader sees them in order.
"""

from __future__ import annotations

import logging
import threading
import time

import redis
from django.conf import settings

from chats.answering.transport import publish_text, publish_texts

logger = logging.getLogger(__name__)

# The longest the writer sleeps at once while text waits (a window of minutes, as in
# tests, is re-read this often).
LONGEST_NAP_S = 0.25


class Text:
    """One answer's text not yet written, and what the last write saw of its chat."""

    __slots__ = ("answer_id", "chat_id", "error", "parts", "stopped")

    def __init__(self, answer_id: str, chat_id) -> None:
        self.answer_id = answer_id
        self.chat_id = chat_id
        self.parts: list[str] = []
        self.stopped = False  # the chat's stop flag, as the last write of its text read it
        self.error: redis.RedisError | None = None  # the writer's failure, raised in add()


class Publisher:
    """Gathers answers' text (add) and writes it all every ANSWER_TOKEN_FLUSH_MS, once the
    oldest text waiting is that old. With nothing waiting its thread sleeps on a
    condition: no Redis command, no wake-up."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._waiting: dict[Text, None] = {}  # texts with parts to write, in arrival order
        self._since = 0.0  # when the oldest of them arrived
        self._writing = threading.Lock()  # held while a batch is on its way
        self._thread: threading.Thread | None = None

    def add(self, text: Text, part: str) -> None:
        """Queue part of an answer's text; raises the writer's RedisError if its last
        write of this answer failed."""
        if text.error is not None:
            raise text.error
        with self._cond:
            text.parts.append(part)
            if text not in self._waiting:
                if not self._waiting:
                    self._since = time.monotonic()
                    self._cond.notify()
                self._waiting[text] = None
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="answer-text", daemon=True)
                self._thread.start()

    def finish(self, text: Text) -> None:
        """Write what this answer still has waiting, now and in its own round trip (before
        its next event; after any batch already on its way). Raises the writer's
        RedisError if a write of its text failed."""
        with self._writing:
            with self._cond:
                self._waiting.pop(text, None)
                part = "".join(text.parts)
                text.parts.clear()
            if text.error is not None:  # some of its text was lost: the answer fails
                raise text.error
            if part:
                text.stopped = publish_text(text.answer_id, part, chat_id=text.chat_id)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._waiting:
                    self._cond.wait()
                wait = self._since + settings.ANSWER_TOKEN_FLUSH_MS / 1000 - time.monotonic()
            if wait > 0:
                time.sleep(min(wait, LONGEST_NAP_S))
                continue
            try:
                self._write()
            except Exception:  # the thread must live on; the answers were told (error)
                logger.exception("writing answers' text failed")

    def _write(self) -> None:
        with self._writing:
            with self._cond:
                batch = [(text, "".join(text.parts)) for text in self._waiting]
                for text, _ in batch:
                    text.parts.clear()
                self._waiting.clear()
            try:
                stops = publish_texts([(t.answer_id, t.chat_id, part) for t, part in batch])
            except redis.RedisError as exc:
                logger.warning("could not write the text of %d answers: %s", len(batch), exc)
                for text, _ in batch:
                    text.error = exc
                return
            for (text, _), stopped in zip(batch, stops, strict=True):
                text.stopped = stopped


_publisher = Publisher()


def publisher() -> Publisher:
    """The process's one writer (its thread starts with the first text it is given)."""
    return _publisher
