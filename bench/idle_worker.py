"""The idle worker: Redis commands per second and CPU with no work, and how soon a new
answer job is taken (issue 21 item 5).

    .venv/bin/python bench/idle_worker.py [--seconds 30] [--jobs 20]

Starts a private Redis and `manage.py worker` (production settings, the default
ANSWER_WORKER_THREADS, remote embeddings so no model loads) on the embedded PostgreSQL
(database rra_idle) or POSTGRES_URL; waits until the worker is quiet, then counts the
commands Redis processed (INFO commandstats after CONFIG RESETSTAT) and the
worker's CPU time over --seconds. Then queues --jobs answer jobs, one a second, for a
chat that does not exist: the worker answers each with an error event at once, so the
time from the job's XADD to that first event is the time to take a job (plus three
primary-key lookups). Prints numbers; not a test.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
import redis as redis_lib  # noqa: E402

from bench import load  # noqa: E402
from bench.streams import fmt_ms, log, stop_all  # noqa: E402
from rra.testing import redis_server  # noqa: E402

JOBS = "rra:answers:jobs"  # chats.answering.transport.JOBS


def commands(r) -> dict[str, int]:
    stats = r.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def cpu(pid: int) -> float:
    proc = psutil.Process(pid)
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        t = p.cpu_times()
        total += t.user + t.system
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--jobs", type=int, default=20)
    args = parser.parse_args()
    stops = []
    try:
        server = redis_server.start(prefix="rra-idle-redis-", new_session=True)
        stops.append(lambda: (load.terminate(server.process), shutil.rmtree(server.folder, True)))
        prom_dir = tempfile.mkdtemp(prefix="rra-idle-prometheus-")
        stops.append(lambda: shutil.rmtree(prom_dir, True))
        env = load.service_env(
            redis_url=server.url,
            db_name="rra_idle",
            prom_dir=prom_dir,
            METRICS_ENDPOINT="",
            EMBEDDINGS_PROVIDER="openai",
            EMBEDDINGS_BASE_URL="http://127.0.0.1:9/v1",
            EMBEDDINGS_MODEL="bench-model",
        )
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        work = ROOT / "var" / "bench-idle"
        work.mkdir(parents=True, exist_ok=True)
        with (work / "worker.log").open("wb") as out:
            worker = subprocess.Popen(
                [sys.executable, "manage.py", "worker"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        stops.append(lambda: load.terminate(worker, group=True, grace=20))
        r = redis_lib.Redis.from_url(server.url)
        deadline = time.monotonic() + 120
        while not r.exists(JOBS) and time.monotonic() < deadline:
            time.sleep(0.2)
        while time.monotonic() < deadline:  # quiet: under 0.05 s of CPU in 2 s
            before = cpu(worker.pid)
            time.sleep(2)
            if cpu(worker.pid) - before < 0.05:
                break
        log(f"worker {worker.pid} idle; measuring {args.seconds:g} s")
        r.config_resetstat()
        cpu_before, started = cpu(worker.pid), time.monotonic()
        time.sleep(args.seconds)
        elapsed = time.monotonic() - started
        used = cpu(worker.pid) - cpu_before
        seen = commands(r)
        # INFO counts itself only after it answers: this one is not in its own numbers.
        seen.pop("config|resetstat", None)
        total = sum(seen.values())
        log(f"queueing {args.jobs} jobs")
        waits = []
        for _ in range(args.jobs):
            answer = uuid.uuid4().hex
            r.hset(f"rra:answer:{answer}:meta", mapping={"user": 0, "chat": "0", "question": 0})
            queued = time.perf_counter()
            r.xadd(JOBS, {"answer": answer, "queued_at": time.time()})
            found = r.xread({f"rra:answer:{answer}:events": "0-0"}, block=10_000)
            if found:
                waits.append(time.perf_counter() - queued)
            time.sleep(1)
    finally:
        stop_all(stops)
    print()
    print(f"idle worker, {elapsed:.0f} s (ANSWER_WORKER_THREADS default):")
    print(f"  Redis commands {total} = {total / elapsed:.2f}/s: {dict(sorted(seen.items()))}")
    print(f"  CPU {used:.2f} s = {100 * used / elapsed:.2f} % of a core")
    print(f"  job queued -> first event ({len(waits)}/{args.jobs}): {fmt_ms(waits)}")


if __name__ == "__main__":
    main()
