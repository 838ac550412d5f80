"""Hostile clients against one instance: connections that never finish their headers
and idle readers of answers' event streams, while liveness and the chat list are timed;
with nginx in front (deploy/front.py, as `make run` and the production compose stack
serve), through the production image's command (deploy/entrypoint.sh web: nginx and
gunicorn, run outside Docker) and without a front (gunicorn alone, as before issue 21).

    .venv/bin/python bench/hostile.py clients [--slow 300] [--readers 300] [--users 75]
                                              [--seconds 20] [--modes front,image,direct]

Starts a private Redis, gunicorn with production settings (2 workers x 128 threads) on
the embedded PostgreSQL (database rra_hostile) or POSTGRES_URL, and for `front` nginx.
Seeds --users users with an API token and one answer each that never gets a worker (so
its readers wait, as readers of a slow answer do; ANSWER_START_TIMEOUT_S is raised);
every user reads their answer --readers/--users times (within the per-user and
per-answer caps). Then opens --slow connections that send a request line and one more
header line every 2 s, never the blank line (a dropped one is opened again), and the
readers, and samples GET /api/health/live and GET /api/chats every 100 ms for
--seconds. Prints p50/p95/max and failures of both probes, the readers' statuses, and
how many slow connections the server dropped. Not a test; see bench/README.md.
"""

from __future__ import annotations

import asyncio
import collections
import http.client
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "deploy"))

import front  # noqa: E402

from bench import load  # noqa: E402
from bench.streams import Probe, fmt_ms, log, stop_all, wait_until_up  # noqa: E402
from rra.testing import redis_server  # noqa: E402
from rra.testing.redis_server import free_port  # noqa: E402

DB_NAME = "rra_hostile"

SEED = """
import json, time, uuid
import redis
from accounts.models import ApiToken, User
from chats.models import Chat, Message
from chats.answering import transport
r = redis.Redis.from_url({redis_url!r})
out = []
for n in range({users}):
    email = f"hostile-bench-{{n}}@example.invalid"
    user = User.objects.filter(email=email).first() or User.objects.create_user(email=email)
    user.chats.all().delete()
    chat = Chat.objects.create(owner=user, title="waiting")
    question = Message.objects.create(chat=chat, role="user", content="How?")
    answer = uuid.uuid4().hex
    r.hset(transport.meta_key(answer), mapping={{"user": user.pk, "chat": str(chat.pk), "question": question.pk}})
    r.expire(transport.meta_key(answer), 3600)
    out.append([ApiToken.issue(user=user, name="bench")[1], answer])
print("SEEDED=" + json.dumps(out))
"""


async def slow_client(port: int, stop: asyncio.Event, stats: collections.Counter) -> None:
    n = 0
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            stats["connect failed"] += 1
            await asyncio.sleep(0.5)
            continue
        stats["opened"] += 1
        try:
            writer.write(b"GET /api/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            while not stop.is_set():
                n += 1
                writer.write(f"X-Slow-{n}: x\r\n".encode())
                await writer.drain()
                try:
                    data = await asyncio.wait_for(reader.read(1024), 2)
                except TimeoutError:
                    continue
                # An answer (408) or end of file: the server dropped the connection.
                stats["dropped by the server" if not data else "answered (dropped)"] += 1
                break
        except OSError:
            stats["dropped by the server"] += 1
        finally:
            writer.close()


async def idle_reader(
    port: int, token: str, answer: str, stop: asyncio.Event, statuses: collections.Counter
) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"GET /api/answers/{answer}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 30)
        statuses[int(line.split()[1]) if line else "closed"] += 1
        while not stop.is_set():
            try:
                if not await asyncio.wait_for(reader.read(4096), 1):
                    break
            except TimeoutError:
                continue
        writer.close()
    except (OSError, TimeoutError, ValueError, IndexError) as exc:
        statuses[type(exc).__name__] += 1


class FreshProbe(Probe):
    """Probe's GET every 100 ms, each on a new connection: a new visitor, whom any
    gunicorn worker may accept (a kept-alive connection stays with one worker, which
    the slow connections may have left alone)."""

    def run(self) -> None:
        while not self.stop.wait(0.1):
            started = time.perf_counter()
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                conn.request("GET", self.path, headers=self.headers)
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    self.failures.append(str(response.status))
                    continue
                self.latencies.append(time.perf_counter() - started)
            except (OSError, http.client.HTTPException) as exc:
                # Counted in the percentiles too, at the time the client gave up.
                self.latencies.append(time.perf_counter() - started)
                self.failures.append(type(exc).__name__)
            finally:
                conn.close()


def forget_readers(redis_url: str) -> None:
    """The places of the previous mode's readers (its gunicorn was stopped while they
    waited, so they were never given back; they would expire within a minute)."""
    import redis

    r = redis.Redis.from_url(redis_url)
    for key in r.scan_iter("rra:*:readers"):
        r.delete(key)


def prepare(*, users: int, stops: list):
    """A private Redis, migrated and seeded database: (env, redis, [(token, answer)])."""
    work = ROOT / "var" / "bench-hostile"
    work.mkdir(parents=True, exist_ok=True)
    redis = redis_server.start(prefix="rra-hostile-redis-", new_session=True)
    stops.append(lambda: (load.terminate(redis.process), shutil.rmtree(redis.folder, True)))
    prom_dir = tempfile.mkdtemp(prefix="rra-hostile-prometheus-")
    stops.append(lambda: shutil.rmtree(prom_dir, True))
    env = load.service_env(
        redis_url=redis.url,
        db_name=DB_NAME,
        prom_dir=prom_dir,
        log_level="ERROR",
        work=work,
        ANSWER_START_TIMEOUT_S="3600",
        EMBEDDINGS_PROVIDER="openai",
        EMBEDDINGS_BASE_URL="http://127.0.0.1:9/v1",
        EMBEDDINGS_MODEL="bench-model",
    )

    def manage(*argv: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *argv], cwd=ROOT, env=env, check=True, text=True, **kw
        )

    log("migrate, collectstatic, seed")
    manage("migrate", "--noinput", stdout=subprocess.DEVNULL)
    manage("collectstatic", "--noinput", "--verbosity", "0")
    out = manage(
        "shell", "-c", SEED.format(users=users, redis_url=redis.url), capture_output=True
    ).stdout
    seeded = json.loads(out.split("SEEDED=", 1)[1].splitlines()[0])
    return env, redis, seeded


def run_mode(mode: str, args, env: dict, seeded: list, procs: list) -> dict:
    forget_readers(env["REDIS_URL"])
    web_port = free_port()
    work = ROOT / "var" / "bench-hostile"
    web_env = {**env, "BIND": f"127.0.0.1:{web_port}", "WEB_CONCURRENCY": "2"}
    argv = [str(Path(sys.executable).parent / "gunicorn"), "--config", "deploy/gunicorn.conf.py"]
    if mode == "front":
        web_env["TRUSTED_PROXY_COUNT"] = "1"
    elif mode == "image":
        # The production image's command: its entry point runs nginx on BIND in front of
        # gunicorn on UPSTREAM_BIND, and tells the app about that proxy itself.
        argv = ["deploy/entrypoint.sh", "web"]
        web_env.update(
            PYTHON=sys.executable,
            SKIP_MIGRATE="1",
            UPSTREAM_BIND=f"127.0.0.1:{free_port()}",
            FRONT_PREFIX=str(work / "nginx-image"),
            TRUSTED_PROXY_COUNT="0",
        )
        web_env.pop("WEB_FRONT", None)
    with (work / f"gunicorn-{mode}.log").open("wb") as out:
        web = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=web_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    stoppers = [lambda: load.terminate(web, group=True, grace=20)]
    port = web_port
    try:
        if mode == "front":
            port = free_port()
            with (work / "nginx.log").open("wb") as out:
                nginx = subprocess.Popen(
                    [
                        sys.executable,
                        "deploy/front.py",
                        "--listen",
                        f"127.0.0.1:{port}",
                        "--upstream",
                        f"127.0.0.1:{web_port}",
                        "--prefix",
                        str(work / "nginx"),
                    ],
                    cwd=ROOT,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            stoppers.insert(0, lambda: load.terminate(nginx))
        wait_until_up(port, web, "the server did not start; see var/bench-hostile/")
        time.sleep(5)  # the workers' warm-up
        stop = threading.Event()
        token = seeded[0][0]
        probes = [
            FreshProbe(port, "/api/health/live", {}, stop),
            FreshProbe(port, "/api/chats", {"Authorization": f"Bearer {token}"}, stop),
        ]
        for probe in probes:
            probe.start()
        time.sleep(3)
        idle = [list(p.latencies) for p in probes]
        slow_stats: collections.Counter = collections.Counter()
        statuses: collections.Counter = collections.Counter()

        async def attack() -> None:
            done = asyncio.Event()
            per_user = max(1, args.readers // len(seeded))
            tasks = [
                asyncio.create_task(slow_client(port, done, slow_stats)) for _ in range(args.slow)
            ]
            tasks += [
                asyncio.create_task(idle_reader(port, tok, answer, done, statuses))
                for tok, answer in seeded
                for _ in range(per_user)
            ]
            await asyncio.sleep(args.seconds)
            done.set()
            await asyncio.gather(*tasks, return_exceptions=True)

        marks = [len(p.latencies) for p in probes]
        log(
            f"{mode}: {args.slow} slow-header connections, {args.readers} readers, {args.seconds} s"
        )
        asyncio.run(attack())
        stop.set()
        for probe in probes:
            probe.join()
        return {
            "probes": [
                (p.path, before, p.latencies[mark:], len(p.failures), p.failures[:3])
                for p, before, mark in zip(probes, idle, marks, strict=True)
            ],
            "slow": dict(slow_stats),
            "readers": dict(statuses),
        }
    finally:
        for stopper in stoppers:
            stopper()


def main(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slow", type=int, default=300)
    parser.add_argument("--readers", type=int, default=300)
    parser.add_argument("--users", type=int, default=75)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--modes", default="front,image,direct")
    args = parser.parse_args(argv)
    modes = args.modes.split(",")
    if {"front", "image"} & set(modes) and front.nginx_binary() is None:
        sys.exit("nginx not found (apt-get install nginx-light)")
    stops = []
    try:
        env, _redis, seeded = prepare(users=args.users, stops=stops)
        results = {mode: run_mode(mode, args, env, seeded, stops) for mode in modes}
    finally:
        stop_all(stops)
    print()
    print(
        f"{args.slow} slow-header connections + {args.readers} idle stream readers "
        f"({args.users} users), {args.seconds:g} s; gunicorn 2 workers x 128 threads"
    )
    for mode, result in results.items():
        label = {
            "front": "nginx in front (make run, compose)",
            "image": "the image's entry point (nginx + gunicorn)",
        }.get(mode, "gunicorn alone")
        print(f"  {label}:")
        for path, before, during, failures, examples in result["probes"]:
            print(f"    GET {path:<17} idle {fmt_ms(before)}")
            print(f"    GET {path:<17} load {fmt_ms(during)}  failures {failures} {examples}")
        print(f"    readers' statuses {result['readers']}; slow connections {result['slow']}")
