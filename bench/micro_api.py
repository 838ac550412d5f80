"""In-process cost of one request: the framework's floor, the hello view inside RRA's
stack and the cached chat list, read with an API token and with a browser's session.

    .venv/bin/python bench/micro_api.py [--scale 0.2] [--requests 1000] [--rounds 5]
                                        [--profile token|session] [--only VIEW]

Each request is what gunicorn's worker does with it: the WSGI application called with an
environ like gunicorn's (the headers wrk sends, `Accept-Encoding: gzip, deflate, br`), its
body read and closed (which writes the access line). RRA runs with the settings
bench/load.py serves with (production settings, bench.load_settings, LOG_LEVEL INFO with
the access lines written to var/bench-load/micro.log, Prometheus in multiprocess mode as
under gunicorn, a private Redis). It needs the seed of bench/load.py at the same --scale
(run that first). No server, no wrk, no sockets but Redis and PostgreSQL: a steadier
signal than req/s on a busy machine, and the CPU cost that the load benchmark's ratios
are made of.

(f) the floor is bench/bare (one view, no middleware, no apps) in a child process, driven
the same way, before RRA's rounds. Then per round: --requests GETs of /bench/hello (e),
then as many of /api/chats with an API token (a, as chats.lua sends them) and with the
signed-in browser's cookies (s, as chats_session.lua sends them), each as the next user,
every list already in the query cache. Prints the per-request milliseconds of each round,
wall and CPU of this thread (not Redis's, not PostgreSQL's), the medians over the rounds
and the ratios the load benchmark's targets are about, in CPU: (s)/(a), (a)/(f), (s)/(f).
--profile prints where one list's time goes (cProfile: cumulative, then own time).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ACCEPT = {"HTTP_ACCEPT": "application/json", "HTTP_ACCEPT_ENCODING": "gzip, deflate, br"}
VIEWS = ("hello", "token", "session")


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


def environ(path: str, headers: dict[str, str]) -> dict:
    """What gunicorn hands the application for a GET from wrk on the loopback."""
    return {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "RAW_URI": path,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_SOFTWARE": "gunicorn/23.0.0",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "40000",
        "HTTP_HOST": "127.0.0.1:8000",
        **headers,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.errors": sys.stderr,
        "wsgi.file_wrapper": None,
    }


def per_request_ms(app, requests: list[tuple[str, dict]]) -> tuple[float, float]:
    """(wall, CPU) milliseconds per request through the WSGI application, body read and
    closed as gunicorn does; CPU is this thread's."""
    statuses = []

    def start_response(status, headers, exc_info=None):
        statuses.append(status)

    started, cpu = time.perf_counter(), time.thread_time()
    for path, headers in requests:
        env = environ(path, headers)
        env["wsgi.input"] = io.BytesIO(b"")
        body = app(env, start_response)
        try:
            for _ in body:
                pass
        finally:
            body.close()
        if not statuses[-1].startswith("200"):
            sys.exit(f"GET {path}: {statuses[-1]}")
    wall, cpu = time.perf_counter() - started, time.thread_time() - cpu
    return wall * 1000 / len(requests), cpu * 1000 / len(requests)


def bare_child(requests: int, rounds: int) -> None:
    """--bare-child: the floor's rounds, printed as JSON for the parent."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.bare.settings"
    from bench.bare.wsgi import application

    hellos = [("/bench/hello", ACCEPT)] * requests
    per_request_ms(application, hellos)
    print(json.dumps([per_request_ms(application, hellos) for _ in range(rounds)]))


def floor_rounds(requests: int, rounds: int) -> list[tuple[float, float]]:
    out = subprocess.run(
        [sys.executable, __file__, "--bare-child", str(requests), str(rounds)],
        capture_output=True,
        text=True,
        check=True,
    )
    return [tuple(r) for r in json.loads(out.stdout)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.2, help="the seed of bench/load.py")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--requests", type=int, default=1000, help="per view and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--profile", choices=("token", "session"), help="cProfile the cached list read so"
    )
    parser.add_argument("--only", choices=VIEWS, help="time one view (for a sampling profiler)")
    parser.add_argument("--bare-child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_child:
        bare_child(*args.bare_child)
        return

    from bench import load

    floor = floor_rounds(args.requests, args.rounds) if args.only is None else []
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
        run(args, data, floor)
    finally:
        procs.stop()


def run(args, data: Path, floor: list[tuple[float, float]]) -> None:
    from bench import load
    from rra.wsgi import application

    plan = load.Plan.at(args.scale, args.seed)
    if load.stored_seed(plan) is None:
        sys.exit(f"no seed at --scale {args.scale:g}: run bench/load.py --seed-only first")
    tokens = load.write_data_files(data, plan)
    users = range(1, plan.users + 1)
    plans = {
        "hello": [("/bench/hello", ACCEPT)],
        "token": [
            ("/api/chats", {**ACCEPT, "HTTP_AUTHORIZATION": f"Bearer {tokens[user]}"})
            for user in users
        ],
        # as the PWA reads it: the session's, CSRF and viewer cookies, no token
        "session": [
            ("/api/chats", {**ACCEPT, "HTTP_COOKIE": cookie})
            for cookie in load.signed_in(plan.users)
        ],
    }
    plans = {
        view: (reqs * (args.requests // len(reqs) + 1))[: args.requests]
        for view, reqs in plans.items()
    }
    load.WORK_DIR.mkdir(parents=True, exist_ok=True)
    log_path = load.WORK_DIR / "micro.log"
    timed = [v for v in VIEWS if args.only in (None, v)]
    with stderr_to(log_path):
        for view in VIEWS:  # every list, token and session into the caches; warm code
            per_request_ms(application, plans[view])
        rounds = [
            {view: per_request_ms(application, plans[view]) for view in timed}
            for _ in range(args.rounds)
        ]
    print(
        f"bench/micro_api.py: {args.requests:,} requests per view and round,"
        f" {plan.users} users, load average {os.getloadavg()[0]:.1f}; ms per request,"
        " wall (CPU of this thread)"
    )
    if floor:
        rounds = [{"floor": f, **r} for f, r in zip(floor, rounds, strict=True)]
    names = {
        "floor": "(f) floor",
        "hello": "(e) hello",
        "token": "(a) token",
        "session": "(s) session",
    }
    for n, measured in enumerate(rounds, 1):
        print(
            f"  round {n}: "
            + ", ".join(f"{names[v]} {w:.3f} ({c:.3f})" for v, (w, c) in measured.items())
        )
    median = {
        view: [statistics.median(r[view][i] for r in rounds) for i in (0, 1)] for view in rounds[0]
    }
    # The best round is the one other processes disturbed least: on a busy machine the
    # CPU time of the same work grows too (shared caches and cores).
    best = {view: [min(r[view][i] for r in rounds) for i in (0, 1)] for view in rounds[0]}
    for label, summary in (("median", median), ("best", best)):
        print(
            f"{label}: "
            + ", ".join(f"{names[v]} {w:.3f} ({c:.3f})" for v, (w, c) in summary.items())
        )
        if {"token", "session"} <= summary.keys():
            ratios = [("(s)/(a)", "token", "session")]
            if "floor" in summary:
                ratios += [
                    ("(e)/(f)", "floor", "hello"),
                    ("(a)/(f)", "floor", "token"),
                    ("(s)/(f)", "floor", "session"),
                ]
            print(
                f"  {label} ratios of req/s, CPU (wall): "
                + ", ".join(
                    f"{name} {summary[base][1] / summary[view][1]:.2f}"
                    f" ({summary[base][0] / summary[view][0]:.2f})"
                    for name, base, view in ratios
                )
            )
    if args.profile:
        import cProfile
        import pstats

        profile = cProfile.Profile()
        with stderr_to(log_path):
            profile.runcall(per_request_ms, application, plans[args.profile])
        stats = pstats.Stats(profile)
        stats.sort_stats("cumulative").print_stats(60)
        stats.sort_stats("tottime").print_stats(50)


if __name__ == "__main__":
    main()
