"""Pages and the API while Redis is partitioned away (issue 21 item 3): gunicorn with
production settings on the embedded PostgreSQL (database rra_hostile) or POSTGRES_URL
and a private Redis, probed with Redis up, then with its process stopped (SIGSTOP:
connections open, nothing answers), then resumed.

    .venv/bin/python bench/redis_down.py [--seconds 10]

GET /api/health/live, GET /api/chats (with an API token, and with a browser's session
cookie) and the sign-in page every 100 ms, each on a new connection, for --seconds per
phase. Prints
p50/p95/max per phase; the first request of the outage waits one socket timeout
(REDIS_SOCKET_TIMEOUT), then the circuit breaker answers without Redis. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import hostile_clients  # noqa: E402
from bench.streams import fmt_ms, log, start_web  # noqa: E402

# A signed-in browser's session for the seeded user (as a sign-in makes it).
SESSION = """
from django.conf import settings
from django.test import Client
from accounts.models import User
client = Client()
client.force_login(User.objects.get(email="hostile-bench-0@example.invalid"))
print("COOKIE=" + settings.SESSION_COOKIE_NAME + "=" + client.cookies[settings.SESSION_COOKIE_NAME].value)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    stops = []
    phases: dict[str, list] = {}
    try:
        env, redis, seeded = hostile_clients.prepare(users=1, stops=stops)
        port = start_web(env, ROOT / "var" / "bench-hostile" / "gunicorn-redis-down.log", stops)
        time.sleep(5)
        token = seeded[0][0]
        cookie = (
            subprocess.run(
                [sys.executable, "manage.py", "shell", "-c", SESSION],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
                text=True,
            )
            .stdout.split("COOKIE=", 1)[1]
            .splitlines()[0]
        )
        for phase in ("Redis up", "Redis stopped", "Redis resumed"):
            if phase == "Redis stopped":
                os.kill(redis.process.pid, signal.SIGSTOP)
            elif phase == "Redis resumed":
                os.kill(redis.process.pid, signal.SIGCONT)
            stop = threading.Event()
            probes = [
                hostile_clients.FreshProbe(port, "/api/health/live", {}, stop),
                hostile_clients.FreshProbe(
                    port, "/api/chats", {"Authorization": f"Bearer {token}"}, stop
                ),
                hostile_clients.FreshProbe(port, "/api/chats?session", {"Cookie": cookie}, stop),
                hostile_clients.FreshProbe(port, "/accounts/login/", {}, stop),
            ]
            log(f"{phase}: {args.seconds:g} s")
            for probe in probes:
                probe.start()
            time.sleep(args.seconds)
            stop.set()
            for probe in probes:
                probe.join()
            phases[phase] = [(p.path, p.latencies, p.failures) for p in probes]
    finally:
        for stop_fn in reversed(stops):
            try:
                stop_fn()
            except Exception as exc:  # keep stopping the others
                log(f"stopping failed: {exc}")
    print()
    print(f"gunicorn 2 workers, probes every 100 ms on new connections, {args.seconds:g} s a phase")
    for phase, rows in phases.items():
        print(f"  {phase}:")
        for path, latencies, failures in rows:
            first = f"first {latencies[0] * 1000:7.1f} ms" if latencies else ""
            print(
                f"    GET {path[:17]:<17} {fmt_ms(latencies)}  {first}  failures {json.dumps(failures[:3])}"
            )


if __name__ == "__main__":
    main()
