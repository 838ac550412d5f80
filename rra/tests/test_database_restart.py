"""PostgreSQL restarted under load (issue 21 item 7): gunicorn serving two users' chat
lists and chat creations while its database restarts. It recovers on its own, no
response ever carries the other user's data, and every chat is either wholly there
(its creation answered 201) or not there at all."""

from __future__ import annotations

import http.client
import json
import secrets
import shutil
import subprocess
import sys
import threading
import time

from rra import embedded_db
from rra.testing.redis_server import free_port
from rra.tests.test_deploy import ROOT, _env, _read

SEED = """
import json
from accounts.models import ApiToken, User
from chats.models import Chat
out = {}
for name in ("ann", "bob"):
    user = User.objects.create_user(email=f"{name}@example.com")
    for n in range(3):
        Chat.objects.create(owner=user, title=f"{name} chat {n}")
    out[name] = ApiToken.issue(user=user, name="load")[1]
print("TOKENS=" + json.dumps(out))
"""


class Load(threading.Thread):
    """One user: GET /api/chats and POST /api/chats, again and again."""

    def __init__(self, port: int, name: str, token: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.port, self.name, self.token, self.stop = port, name, token, stop
        self.results: list[tuple[float, str, int, str]] = []  # (time, what, status, body)
        self.created: list[str] = []
        self.refused: list[str] = []

    def request(self, method: str, path: str, body: dict | None = None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            conn.request(
                method,
                path,
                body=json.dumps(body) if body else None,
                headers={
                    "Authorization": f"Bearer {self.token}",
                    "Content-Type": "application/json",
                },
            )
            response = conn.getresponse()
            return response.status, response.read().decode(errors="replace")
        except (OSError, http.client.HTTPException) as exc:
            return 0, type(exc).__name__
        finally:
            conn.close()

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            status, body = self.request("GET", "/api/chats")
            self.results.append((time.monotonic(), "list", status, body))
            n += 1
            title = f"{self.name} new {n}"
            status, body = self.request("POST", "/api/chats", {"title": title})
            self.results.append((time.monotonic(), "create", status, body))
            (self.created if status == 201 else self.refused).append(title)
            time.sleep(0.02)


def test_postgresql_restarted_under_load(tmp_path):
    pgdata = tmp_path / "pgdata"
    fields = embedded_db.ensure_running(pgdata, "rra")
    env = {k: v for k, v in _env().items() if k not in ("EMBEDDED_DB_NAME",)}
    env.update(
        EMBEDDED_PG_DIR=str(pgdata),
        EMBEDDED_DB_NAME="rra",
        MEDIA_ROOT=str(tmp_path / "media"),
        RATELIMIT_ENABLE="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        EMBEDDINGS_PROVIDER="openai",
        EMBEDDINGS_BASE_URL="http://127.0.0.1:9/v1",
        EMBEDDINGS_MODEL="test-model",
        DB_POOL_TIMEOUT="2",
    )
    log = (tmp_path / "serve.log").open("w+")
    web = None
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=300,
        )
        seeded = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", SEED],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
        tokens = json.loads(seeded.split("TOKENS=", 1)[1].splitlines()[0])
        port = free_port()
        web = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "deploy/gunicorn.conf.py"],
            cwd=ROOT,
            env={
                **env,
                "BIND": f"127.0.0.1:{port}",
                "WEB_CONCURRENCY": "1",
                "GUNICORN_THREADS": "8",
            },
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        stop = threading.Event()
        loads = [Load(port, name, token, stop) for name, token in tokens.items()]
        deadline = time.monotonic() + 90
        while loads[0].request("GET", "/api/health/live")[0] != 200:
            assert web.poll() is None and time.monotonic() < deadline, _read(log)
            time.sleep(0.2)
        for load in loads:
            load.start()
        time.sleep(2)
        # Stopped (fast: connections cut) and started again on the same data directory.
        # (In a process of its own: pgserver keeps one server object per process.)
        assert embedded_db.stop(pgdata)
        again = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from pathlib import Path; from rra import embedded_db; "
                "print(embedded_db.ensure_running(Path(sys.argv[1]), 'rra')['HOST'])",
                str(pgdata),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert again.stdout.strip() == fields["HOST"], again.stderr  # the same socket
        restarted_at = time.monotonic()
        time.sleep(6)
        stop.set()
        for load in loads:
            load.join(30)
    finally:
        if web is not None:
            web.terminate()
            try:
                web.wait(20)
            except subprocess.TimeoutExpired:
                web.kill()
        log.close()

    import psycopg

    with psycopg.connect(host=fields["HOST"], user=fields["USER"], dbname="rra") as conn:
        titles = {r[0] for r in conn.execute("SELECT title FROM chats_chat").fetchall()}
        owners = dict(
            conn.execute(
                "SELECT c.title, u.email FROM chats_chat c JOIN accounts_user u ON u.id = c.owner_id"
            ).fetchall()
        )
    embedded_db.stop(pgdata)
    shutil.rmtree(pgdata, ignore_errors=True)

    for load in loads:
        other = "bob" if load.name == "ann" else "ann"
        statuses = [status for _, _, status, _ in load.results]
        assert 200 in statuses and 201 in statuses
        # Never the other user's data, in any answer.
        for _, what, status, body in load.results:
            assert f"{other} chat" not in body and f"{other} new" not in body, (what, status)
        # Recovered: the last requests, after the restart, all succeed.
        after = [r for r in load.results if r[0] > restarted_at + 5]
        assert after and all(status in (200, 201) for _, _, status, _ in after), [
            (what, status, body[:200])
            for _, what, status, body in after
            if status not in (200, 201)
        ]
        # Every 201 left its chat, with its owner; nothing else was half-made.
        for title in load.created:
            assert title in titles and owners[title] == f"{load.name}@example.com"
        for title in load.refused:
            assert title not in titles
        # When it recovered (printed; the figure is for the README, not asserted).
        failed = [t for t, _, status, _ in load.results if status not in (200, 201)]
        codes = sorted({status for _, _, status, _ in load.results if status not in (200, 201)})
        # A request that meets the database down gets a 503 with Retry-After (try
        # again), never a 500, a dropped connection or a wrong answer.
        assert set(codes) <= {503}, codes
        for _, _, status, body in load.results:
            if status == 503:
                assert json.loads(body)["error"]["code"] == "database_unavailable"
        if failed:
            print(
                f"{load.name}: {len(failed)} failed requests {codes}, last {max(failed) - restarted_at:+.2f} s after the restart returned"
            )
