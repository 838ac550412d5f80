"""The front server of `make run` and of the production compose stack (nginx from
deploy/nginx/rra.conf.template, run by deploy/front.py) in front of gunicorn: connections
that never finish their headers wait in nginx, and gunicorn's threads stay free."""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import time

import pytest

from rra.testing.redis_server import free_port
from rra.tests.test_deploy import ROOT, _database_url, _env, _read

sys.path.insert(0, str(ROOT / "deploy"))
import front

pytestmark = pytest.mark.skipif(
    front.nginx_binary() is None, reason="nginx not installed (make test installs it in CI)"
)
THREADS = 2
SLOW = 12  # more connections than gunicorn has threads


def _live(port: int, timeout: float = 5) -> int | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/api/health/live")
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


def _slow_headers(port: int, count: int) -> list[socket.socket]:
    """Connections that send the start of a request and never the end of its headers."""
    sockets = []
    for n in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(f"GET /api/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow-{n}: ".encode())
        sockets.append(s)
    return sockets


def _until_up(port: int, procs, log) -> None:
    deadline = time.monotonic() + 90
    while _live(port) != 200:
        for proc in procs:
            assert proc.poll() is None, f"exited: {_read(log)}"
        assert time.monotonic() < deadline, f"no answer: {_read(log)}"
        time.sleep(0.2)


@pytest.fixture
def served(tmp_path, settings):
    """gunicorn (1 worker, 2 threads) and nginx in front of it: (web port, front port)."""
    web_port, front_port = free_port(), free_port()
    env = _env(
        DATABASE_URL=_database_url(settings.DATABASES["default"]["NAME"]),
        BIND=f"127.0.0.1:{web_port}",
        WEB_CONCURRENCY="1",
        GUNICORN_THREADS=str(THREADS),
        TRUSTED_PROXY_COUNT="1",
        EMBEDDINGS_PROVIDER="openai",
        EMBEDDINGS_BASE_URL="http://127.0.0.1:9/v1",
        EMBEDDINGS_MODEL="test-model",
    )
    log = (tmp_path / "serve.log").open("w+")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "deploy/gunicorn.conf.py"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        ),
        subprocess.Popen(
            [
                sys.executable,
                "deploy/front.py",
                "--listen",
                f"127.0.0.1:{front_port}",
                "--upstream",
                f"127.0.0.1:{web_port}",
                "--prefix",
                str(tmp_path / "nginx"),
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        ),
    ]
    try:
        _until_up(web_port, procs, log)
        _until_up(front_port, procs, log)
        yield web_port, front_port
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()


def test_slow_header_connections_do_not_block_liveness(served):
    web_port, front_port = served
    # Without the front server: the slow connections take every thread, and liveness
    # gets no answer.
    direct = _slow_headers(web_port, SLOW)
    try:
        assert _live(web_port, timeout=3) is None
    finally:
        for s in direct:
            s.close()
    assert _live(web_port) == 200  # the threads are free again

    # Through the front server: they wait in nginx, and liveness answers at once, both
    # through nginx and on gunicorn's own port.
    held = _slow_headers(front_port, SLOW * 5)
    try:
        for _ in range(3):
            assert _live(front_port, timeout=3) == 200
        assert _live(web_port, timeout=3) == 200
        # nginx still holds them (it has not timed them out or passed them on).
        held[0].setblocking(False)
        with pytest.raises(BlockingIOError):
            held[0].recv(1)
    finally:
        for s in held:
            s.close()


def test_the_images_web_command_serves_through_nginx_and_stops_cleanly(tmp_path, settings):
    """deploy/entrypoint.sh web, as the production image runs it (no compose): nginx on
    BIND, gunicorn on UPSTREAM_BIND; slow clients on BIND wait in nginx; the app is told
    about the one proxy; SIGTERM stops both, and the command exits 0."""
    from rra.tests.test_deploy import ENTRYPOINT

    bind_port, upstream_port = free_port(), free_port()
    env = _env(
        DATABASE_URL=_database_url(settings.DATABASES["default"]["NAME"]),
        SKIP_MIGRATE="1",
        BIND=f"127.0.0.1:{bind_port}",
        UPSTREAM_BIND=f"127.0.0.1:{upstream_port}",
        FRONT_PREFIX=str(tmp_path / "front"),
        WEB_CONCURRENCY="1",
        GUNICORN_THREADS=str(THREADS),
        GUNICORN_GRACEFUL_TIMEOUT="5",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
        EMBEDDINGS_PROVIDER="openai",
        EMBEDDINGS_BASE_URL="http://127.0.0.1:9/v1",
        EMBEDDINGS_MODEL="test-model",
    )
    env.pop("TRUSTED_PROXY_COUNT", None)
    log = (tmp_path / "entrypoint.log").open("w+")
    proc = subprocess.Popen(
        [ENTRYPOINT, "web"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        _until_up(bind_port, [proc], log)
        _until_up(upstream_port, [proc], log)
        held = _slow_headers(bind_port, SLOW * 5)
        try:
            for _ in range(3):
                assert _live(bind_port, timeout=3) == 200, _read(log)
        finally:
            for s in held:
                s.close()
        conn = http.client.HTTPConnection("127.0.0.1", bind_port, timeout=5)
        conn.request("GET", "/api/health/live")
        assert conn.getresponse().getheader("Server") == "nginx"
        conn.close()
        assert "in front of gunicorn" in _read(log)

        proc.send_signal(subprocess.signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, _read(log)
        assert _live(bind_port, timeout=1) is None and _live(upstream_port, timeout=1) is None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()
