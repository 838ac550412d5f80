"""In-process cost of one request: the bare hello view against the cached chat list.

    .venv/bin/python bench/micro_api.py [--scale 0.2] [--requests 1000] [--rounds 5]
                                        [--profile]

Django's test client, in this process, through the whole middleware stack and the
settings bench/load.py serves with (production settings, bench.load_settings, LOG_LEVEL
INFO with the access lines written to var/bench-load/micro.log, Prometheus in
multiprocess mode as under gunicorn, a private Redis). It needs the seed of
bench/load.py at the same --scale (run that first). No server, no wrk, no sockets but
Redis and PostgreSQL: a steadier signal than req/s on a busy machine, and the CPU cost
that the load benchmark's ratio is made of.

Per round: --requests GETs of /bench/hello, then as many of /api/chats, each as the next
user (API tokens, as chats.lua sends them; --session: the browser's cookies, as
chats_session.lua sends them), every list already in the query cache.
Prints the per-request milliseconds of each round and the median over the rounds;
--profile prints where the cached list's time goes (cProfile: cumulative, then own time).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import load  # noqa: E402 - after the path set-up

ACCEPT = {"HTTP_ACCEPT": "application/json", "HTTP_ACCEPT_ENCODING": load.ACCEPT_ENCODING}


@contextlib.contextmanager
def stderr_to(path: Path):
    """The access lines (stderr, as under gunicorn) go to a file while timing."""
    sys.stderr.flush()
    saved = os.dup(2)
    with path.open("ab") as out:
        os.dup2(out.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def per_request_ms(client, requests: list[tuple[str, dict]]) -> tuple[float, float]:
    """(wall, CPU) milliseconds per request; CPU is this thread's (not Redis's, not
    PostgreSQL's)."""
    started, cpu = time.perf_counter(), time.thread_time()
    for path, headers in requests:
        response = client.get(path, **headers)
        if response.status_code != 200:
            sys.exit(f"GET {path}: {response.status_code} {response.content[:300]!r}")
    wall, cpu = time.perf_counter() - started, time.thread_time() - cpu
    return wall * 1000 / len(requests), cpu * 1000 / len(requests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.2, help="the seed of bench/load.py")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--requests", type=int, default=1000, help="per view and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="cProfile the cached list")
    parser.add_argument(
        "--session", action="store_true", help="read the list with a session, not a token"
    )
    parser.add_argument(
        "--only", choices=("hello", "chats"), help="time one view (for a sampling profiler)"
    )
    args = parser.parse_args()

    procs = load.Processes()
    prom_dir = Path(tempfile.mkdtemp(prefix="rra-micro-prometheus-"))
    procs.add("prometheus dir", lambda: shutil.rmtree(prom_dir, ignore_errors=True))
    data = Path(tempfile.mkdtemp(prefix="rra-micro-data-"))
    procs.add("data files", lambda: shutil.rmtree(data, ignore_errors=True))
    try:
        env = load.base_env(load.start_redis(procs), "INFO")
        if not load.USING_URL and not load.embedded_pg_running(load.embedded_pg_dir()):
            from rra import embedded_db

            procs.add("embedded PostgreSQL", lambda: embedded_db.stop(load.embedded_pg_dir()))
        os.environ.update(env)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(prom_dir)
        import django

        django.setup()
        run(args, data)
    finally:
        procs.stop()


def run(args, data: Path) -> None:
    from django.test import Client

    plan = load.Plan.at(args.scale, args.seed)
    if load.stored_seed(plan) is None:
        sys.exit(f"no seed at --scale {args.scale:g}: run bench/load.py --seed-only first")
    tokens = load.write_data_files(data, plan)
    lists = [
        ("/api/chats", {**ACCEPT, "HTTP_AUTHORIZATION": f"Bearer {tokens[user]}"})
        for user in range(1, plan.users + 1)
    ]
    if args.session:  # as the PWA reads it: the session's cookies, no token
        lists = [
            ("/api/chats", {**ACCEPT, "HTTP_COOKIE": cookie})
            for cookie in load.signed_in(plan.users)
        ]
    lists = (lists * (args.requests // len(lists) + 1))[: args.requests]
    hellos = [("/bench/hello", ACCEPT)] * args.requests
    client = Client(HTTP_HOST="127.0.0.1")
    load.WORK_DIR.mkdir(parents=True, exist_ok=True)
    log_path = load.WORK_DIR / "micro.log"
    with stderr_to(log_path):
        per_request_ms(client, lists)  # every list and token into the query cache
        per_request_ms(client, hellos)
        skipped = (float("nan"), float("nan"))
        rounds = [
            (
                per_request_ms(client, hellos) if args.only != "chats" else skipped,
                per_request_ms(client, lists) if args.only != "hello" else skipped,
            )
            for _ in range(args.rounds)
        ]
    print(
        f"bench/micro_api.py: {args.requests:,} requests per view and round,"
        f" {plan.users} users, load average {os.getloadavg()[0]:.1f}; ms per request,"
        " wall (CPU of this thread)"
    )
    for n, (hello, chats) in enumerate(rounds, 1):
        print(
            f"  round {n}: hello {hello[0]:.3f} ({hello[1]:.3f}),"
            f" cached list {chats[0]:.3f} ({chats[1]:.3f})"
        )
    hello = [statistics.median(r[0][i] for r in rounds) for i in (0, 1)]
    chats = [statistics.median(r[1][i] for r in rounds) for i in (0, 1)]
    print(
        f"median: hello {hello[0]:.3f} ({hello[1]:.3f}), cached list {chats[0]:.3f}"
        f" ({chats[1]:.3f}); ratio {hello[0] / chats[0]:.2f} ({hello[1] / chats[1]:.2f})"
    )
    if args.profile:
        import cProfile
        import pstats

        profile = cProfile.Profile()
        with stderr_to(log_path):
            profile.runcall(per_request_ms, client, lists)
        stats = pstats.Stats(profile)
        stats.sort_stats("cumulative").print_stats(45)
        stats.sort_stats("tottime").print_stats(40)


if __name__ == "__main__":
    main()
