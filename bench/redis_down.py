"""Pages and the API while Redis is partitioned away (issue 21 item 3): gunicorn with
production settings on the embedded PostgreSQL (database rra_hostile) or POSTGRES_URL
and a private Redis, probed with Redis up, then with its process stopped (SIGSTOP:
connections open, nothing answers), then resumed.

    .venv/bin/python bench/redis_down.py [--seconds 10]
    .venv/bin/python bench/redis_down.py --in-process [--requests 200] [--rounds 5]
                                         [--profile live|token|session|signin|chat|detail]

GET /api/health/live, GET /api/chats (with an API token, and with a browser's session
cookie) and the sign-in page every 100 ms, each on a new connection, for --seconds per
phase. Prints
p50/p95/max per phase; the first request of the outage waits one socket timeout
(REDIS_SOCKET_TIMEOUT), then the circuit breaker answers without Redis. Not a test.

--in-process: no gunicorn, no sockets but Redis's and PostgreSQL's: the same four pages
plus a chat's page (session) and its API (token), through the WSGI application in this
process (bench/micro_api.py's way), --requests of each per block, alternating blocks with Redis up (every list a cache hit) and with it
stopped and the breaker open (tripped by one request first, not counted), --rounds
times. Prints wall and CPU (this thread's) milliseconds per request of each block, the
medians and the best blocks with their stopped/up ratios: steadier figures than
latencies over the loopback on a busy machine. --profile prints where one page's time
goes with the breaker open (cProfile, cumulative then own time).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import hostile_clients  # noqa: E402
from bench.streams import fmt_ms, log, start_web, stop_all  # noqa: E402

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
    parser.add_argument("--in-process", action="store_true", help="WSGI calls, no server")
    parser.add_argument("--requests", type=int, default=200, help="per page and block")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", choices=PAGES, help="cProfile one page, breaker open")
    args = parser.parse_args()
    if args.in_process:
        in_process(args)
        return
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


# Liveness, the chat list by API token and by session, the sign-in page; a chat's page
# (HTML, session: the sidebar and the messages cached with Redis up) and its API
# (token: the chat with its messages).
PAGES = ("live", "token", "session", "signin", "chat", "detail")


def in_process(args) -> None:
    """--in-process: see the module's docstring."""
    stops: list = []
    try:
        env, redis, seeded = hostile_clients.prepare(users=1, stops=stops)
        os.environ.update(env)
        import django

        django.setup()
        blocks = _in_process_blocks(args, redis, seeded[0][0])
    finally:
        stop_all(stops)
    print()
    print(
        f"in process: {args.requests} requests per page and block, ms per request,"
        " wall (CPU of this thread)"
    )
    for n, (up, down) in enumerate(blocks, 1):
        print(f"  round {n}, {up['load']} / {down['load']}:")
        for page in PAGES:
            print(
                f"    {page:<8} up {up[page][0]:7.3f} ({up[page][1]:7.3f})"
                f"  stopped {down[page][0]:7.3f} ({down[page][1]:7.3f})"
            )
    # The best block is the one other processes disturbed least: on a busy machine the
    # CPU time of the same work grows too (bench/micro_api.py).
    for label, summary in (("median", statistics.median), ("best", min)):
        print(f"  {label} over the rounds (stopped / up):")
        for page in PAGES:
            up = [summary(b[0][page][i] for b in blocks) for i in (0, 1)]
            down = [summary(b[1][page][i] for b in blocks) for i in (0, 1)]
            print(
                f"    {page:<8} up {up[0]:7.3f} ({up[1]:7.3f})  stopped {down[0]:7.3f}"
                f" ({down[1]:7.3f})  {down[0] / up[0]:.2f}x wall, {down[1] / up[1]:.2f}x CPU"
            )


def _in_process_blocks(args, redis, token: str) -> list[tuple[dict, dict]]:
    from django.conf import settings
    from django.test import Client

    from accounts.models import User
    from bench.micro_api import ACCEPT, per_request_ms
    from chats.models import Chat
    from rra import redis_breaker
    from rra.wsgi import application

    browser = Client()
    browser.force_login(User.objects.get(email="hostile-bench-0@example.invalid"))
    cookie = f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}"
    chat = Chat.objects.filter(owner__email="hostile-bench-0@example.invalid").first()
    plans = {
        "live": [("/api/health/live", ACCEPT)],
        "token": [("/api/chats", {**ACCEPT, "HTTP_AUTHORIZATION": f"Bearer {token}"})],
        "session": [("/api/chats", {**ACCEPT, "HTTP_COOKIE": cookie})],
        "signin": [("/accounts/login/", {"HTTP_ACCEPT": "text/html"})],
        "chat": [(f"/c/{chat.pk}/", {"HTTP_ACCEPT": "text/html", "HTTP_COOKIE": cookie})],
        "detail": [(f"/api/chats/{chat.pk}", {**ACCEPT, "HTTP_AUTHORIZATION": f"Bearer {token}"})],
    }

    def block() -> dict:
        for page in PAGES:  # warm: caches filled (Redis up), code paths taken
            per_request_ms(application, plans[page] * 20)
        timed = {page: per_request_ms(application, plans[page] * args.requests) for page in PAGES}
        return {**timed, "load": f"load {os.getloadavg()[0]:.1f}"}

    def stopped() -> None:
        os.kill(redis.process.pid, signal.SIGSTOP)
        per_request_ms(application, plans["token"])  # waits one socket timeout, trips
        assert all(b.refusing for b in redis_breaker.breakers().values()), "breaker not open"

    def resumed() -> None:
        os.kill(redis.process.pid, signal.SIGCONT)
        redis_breaker.reset_all()

    blocks = []
    for n in range(args.rounds):
        log(f"round {n + 1} of {args.rounds}: Redis up")
        up = block()
        log(f"round {n + 1} of {args.rounds}: Redis stopped")
        stopped()
        blocks.append((up, block()))
        resumed()
    if args.profile:
        import cProfile
        import pstats

        stopped()
        profile = cProfile.Profile()
        profile.runcall(per_request_ms, application, plans[args.profile] * args.requests)
        resumed()
        stats = pstats.Stats(profile)
        stats.sort_stats("cumulative").print_stats(60)
        stats.sort_stats("tottime").print_stats(40)
    return blocks


if __name__ == "__main__":
    main()
