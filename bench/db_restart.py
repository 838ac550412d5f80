"""PostgreSQL restarted under load (issue 21 item 7): how long the site takes to serve
again once its database is back.

    .venv/bin/python bench/db_restart.py [--rounds 3] [--down 2] [--threads 8]

gunicorn (2 workers x 128 threads, production settings) on an embedded PostgreSQL with
a data folder of its own (var/bench-db-restart/pgdata: the shared server is never
restarted) and a private Redis, with the query cache off so that every request reads
the database. --threads clients, each on a new connection per request, GET /api/chats
and POST /api/chats (API tokens) back to back. Each round stops the database (fast:
connections cut), keeps it down --down seconds, starts it again on the same folder and
socket, and measures from the moment the server accepts connections again (a client connecting
every 20 ms sees it) to the
first 200 of GET /api/chats, the first 201 of POST /api/chats, and the last failed
request. Prints those and the statuses seen while it was down. Not a test; the fault
test (rra/tests/test_database_restart.py) checks correctness.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import load  # noqa: E402
from bench.streams import log, start_web, stop_all  # noqa: E402
from rra.testing import redis_server  # noqa: E402

WORK = ROOT / "var" / "bench-db-restart"
SEED = """
import json
from accounts.models import ApiToken, User
from chats.models import Chat
out = []
for n in range({threads}):
    user, _ = User.objects.get_or_create(email=f"restart-bench-{{n}}@example.invalid")
    user.chats.all().delete()
    for k in range(5):
        Chat.objects.create(owner=user, title=f"chat {{k}}")
    out.append(ApiToken.issue(user=user, name="bench")[1])
print("TOKENS=" + json.dumps(out))
"""
START = (
    "import json, sys; from pathlib import Path; from rra import embedded_db; "
    "print('FIELDS=' + json.dumps(embedded_db.ensure_running(Path(sys.argv[1]), 'rra')))"
)


def start_database(pgdata: Path) -> dict:
    """Start (or find) the server in a process of its own (pgserver keeps one server
    object per process); its connection fields."""
    done = subprocess.run(
        [sys.executable, "-c", START, str(pgdata)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(done.stdout.split("FIELDS=", 1)[1].splitlines()[0])


class Watch(threading.Thread):
    """Connects to the server every 20 ms: when it went down and came back up (wall
    clock), as a client sees it."""

    def __init__(self, fields: dict, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.fields, self.stop = fields, stop
        self.changes: list[tuple[float, bool]] = []  # (time, accepting)

    def accepting(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(
                host=self.fields["HOST"],
                user=self.fields["USER"],
                dbname=self.fields["NAME"],
                connect_timeout=2,
            ) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def run(self) -> None:
        last = None
        while not self.stop.is_set():
            now = self.accepting()
            if now != last:
                self.changes.append((time.time(), now))
                last = now
            time.sleep(0.02)

    def wait_for(self, accepting: bool, after: float, timeout: float = 120) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [t for t, a in self.changes if a == accepting and t >= after]
            if found:
                return found[0]
            time.sleep(0.02)
        raise SystemExit(f"the database was not {'up' if accepting else 'down'} in time")


class Client(threading.Thread):
    """GET /api/chats and POST /api/chats, again and again: (time answered, what,
    status, seconds taken)."""

    def __init__(self, port: int, token: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.port, self.token, self.stop = port, token, stop
        self.results: list[tuple[float, str, int, float]] = []

    def request(self, method: str, body: dict | None = None) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            conn.request(
                method,
                "/api/chats",
                body=json.dumps(body) if body else None,
                headers={
                    "Authorization": f"Bearer {self.token}",
                    "Content-Type": "application/json",
                },
            )
            response = conn.getresponse()
            response.read()
            return response.status
        except (OSError, http.client.HTTPException):
            return 0
        finally:
            conn.close()

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            for what, method, body in (
                ("list", "GET", None),
                ("create", "POST", {"title": f"{n}"}),
            ):
                started = time.time()
                status = self.request(method, body)
                self.results.append((time.time(), what, status, time.time() - started))
            n += 1


def since(t: float | None, origin: float) -> str:
    return "never" if t is None else f"{(t - origin) * 1000:+7.0f} ms"


def first(results, what: str, status: int, after: float) -> float | None:
    return min(
        (t for t, w, s, _ in results if w == what and s == status and t > after), default=None
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--down", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    for name in ("POSTGRES_URL", "DATABASE_URL"):
        os.environ.pop(name, None)  # the bench's own embedded server, always
    WORK.mkdir(parents=True, exist_ok=True)
    pgdata = WORK / "pgdata"
    stops: list = []
    rounds = []
    try:
        from rra import embedded_db

        fields = start_database(pgdata)
        stops.append(lambda: embedded_db.stop(pgdata))
        redis = redis_server.start(prefix="rra-restart-redis-", new_session=True)
        stops.append(lambda: (load.terminate(redis.process), shutil.rmtree(redis.folder, True)))
        prom_dir = tempfile.mkdtemp(prefix="rra-restart-prometheus-")
        stops.append(lambda: shutil.rmtree(prom_dir, True))
        env = load.service_env(
            redis_url=redis.url,
            db_name="rra",
            prom_dir=prom_dir,
            log_level="ERROR",
            work=WORK,
            EMBEDDED_PG_DIR=str(pgdata),
            QUERY_CACHE_ENABLED="false",
            RATELIMIT_ENABLE="false",
            EMBEDDINGS_PROVIDER="openai",
            EMBEDDINGS_BASE_URL="http://127.0.0.1:9/v1",
            EMBEDDINGS_MODEL="bench-model",
        )

        def manage(*argv: str, **kw) -> subprocess.CompletedProcess:
            return subprocess.run(
                [sys.executable, "manage.py", *argv], cwd=ROOT, env=env, check=True, text=True, **kw
            )

        log("migrate, seed")
        manage("migrate", "--noinput", stdout=subprocess.DEVNULL)
        out = manage("shell", "-c", SEED.format(threads=args.threads), capture_output=True).stdout
        tokens = json.loads(out.split("TOKENS=", 1)[1].splitlines()[0])
        port = start_web(env, WORK / "gunicorn.log", stops)
        stop = threading.Event()
        watch = Watch(fields, stop)
        watch.start()
        clients = [Client(port, token, stop) for token in tokens]
        for client in clients:
            client.start()
        time.sleep(5)
        for n in range(args.rounds):
            log(f"round {n + 1}: database stopped for {args.down:g} s")
            asked = time.time()
            embedded_db.stop(pgdata)
            stopped_at = watch.wait_for(False, asked)
            time.sleep(args.down)
            starting = time.time()
            start_database(pgdata)
            up_at = watch.wait_for(True, starting)
            time.sleep(8)
            rounds.append((stopped_at, up_at))
        stop.set()
        for client in clients:
            client.join(30)
    finally:
        stop_all(stops)

    results = sorted(r for client in clients for r in client.results)
    print()
    print(
        f"{args.threads} clients (GET + POST /api/chats, query cache off), gunicorn 2 workers,"
        f" database down about {args.down:g} s a round; times from the server accepting"
        " connections again"
    )
    for n, (stopped_at, up_at) in enumerate(rounds, 1):
        down = collections.Counter(f"{w} {s}" for t, w, s, _ in results if stopped_at <= t <= up_at)
        get = first(results, "list", 200, up_at)
        post = first(results, "create", 201, up_at)
        window = [r for r in results if stopped_at <= r[0] <= up_at + 8]
        failed = [t for t, w, s, _ in window if s not in (200, 201)]
        last = max(failed, default=None)
        slowest = max((took for *_, took in window), default=0.0)
        print(
            f"  round {n}: down {up_at - stopped_at:5.2f} s; first GET 200 {since(get, up_at)},"
            f" first POST 201 {since(post, up_at)}, last failure {since(last, up_at)},"
            f" slowest request {slowest:.2f} s; answered while down {dict(down)}"
        )


if __name__ == "__main__":
    main()
