"""rra/webworker.py: a gunicorn worker whose threads are all busy leaves new connections
to the other workers (issue 24 item 5: answer streams waited for a thread in one worker
while another had threads free)."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from rra.testing.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]

APP = textwrap.dedent(
    """
    import os, time

    def application(environ, start_response):
        if environ["PATH_INFO"] == "/slow":
            time.sleep(float(environ["QUERY_STRING"] or 3))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(os.getpid()).encode()]
    """
)


def _get(port: int, path: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path, headers={"Connection": "close"})
    return conn.getresponse().read().decode()


@pytest.fixture
def server(tmp_path):
    """gunicorn with rra.webworker.ThreadWorker, 2 workers x 1 thread, on a tiny app."""
    (tmp_path / "slowapp.py").write_text(APP)
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--worker-class",
            "rra.webworker.ThreadWorker",
            "--workers",
            "2",
            "--threads",
            "1",
            "--bind",
            f"127.0.0.1:{port}",
            "--chdir",
            str(tmp_path),
            "slowapp:application",
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    pids: set[str] = set()
    while len(pids) < 2:  # both workers up and answering
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "gunicorn did not start two workers"
        try:
            pids.add(_get(port, "/"))
        except OSError:
            time.sleep(0.2)
    yield port
    process.terminate()
    process.wait(timeout=30)


def test_a_worker_with_no_free_thread_leaves_new_connections_to_the_other(server):
    for _ in range(4):
        held: dict[str, str] = {}
        slow = threading.Thread(target=lambda held=held: held.update(pid=_get(server, "/slow?2")))
        slow.start()
        time.sleep(0.5)  # the slow request holds its worker's only thread
        # Each of these goes to the worker with a free thread; with stock gthread the
        # busy worker takes about half of them and they wait for its thread.
        quick = {_get(server, "/") for _ in range(3)}
        slow.join()
        assert held["pid"] not in quick, "a busy worker accepted a connection"
        assert len(quick) == 1
