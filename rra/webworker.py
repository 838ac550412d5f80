"""Gunicorn's gthread worker that accepts a connection only while it has a thread for it
(deploy/gunicorn.conf.py: worker_class).

Every gthread worker waits on the shared listening socket, and the first to wake takes
the connection, free thread or not: it accepts up to ``worker_connections`` (1,000)
and queues the requests beyond its threads. With answer streams each holding a thread
for tens of seconds, one worker could take more streams than it has threads while the
other had threads free, and the extra answers waited for a thread (issue 24 item 5:
18 answers waited 16-19 s). This worker stops listening while every thread has a
connection (the requests in flight plus those accepted and not yet read), so the
kernel gives new connections to a worker that can serve them; it listens again as soon
as a request finishes. Idle keep-alive connections do not count: they hold no thread
(a request arriving on one still waits for a thread of its worker, as before).
"""

from __future__ import annotations

import selectors

from gunicorn.workers import gthread


class ThreadWorker(gthread.ThreadWorker):
    def init_process(self) -> None:
        self._paused: list[tuple] = []  # (listener, its poller data) while full
        super().init_process()

    def _busy(self) -> bool:
        # Connections that hold or are about to need a thread: every accepted one but
        # the idle keep-alive ones.
        return self.nr_conns - len(self._keep) >= self.cfg.threads

    def accept(self, server, listener) -> None:
        super().accept(server, listener)
        with self._lock:
            if self._busy() and not any(paused is listener for paused, _ in self._paused):
                data = self.poller.get_key(listener).data
                self.poller.unregister(listener)
                self._paused.append((listener, data))

    def finish_request(self, fs) -> None:
        super().finish_request(fs)
        self._resume()

    def _resume(self) -> None:
        with self._lock:
            if self._paused and not self._busy():
                for listener, data in self._paused:
                    self.poller.register(listener, selectors.EVENT_READ, data)
                self._paused.clear()
