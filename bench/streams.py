"""Streamed answers at scale: many concurrent answers through one instance (gunicorn, 2
workers) and one task worker, with a slow fake LLM, while the chat list and the liveness
probe are timed.

    .venv/bin/python bench/streams.py [--streams 200 | --streams 30,200] [--rate 20]
                                      [--seconds 30] [--threads 128] [--answer-threads 256]

Starts a private Redis, the fake OpenAI-compatible server (its own process; --rate words
per second for --seconds per answer), gunicorn with production settings and
`manage.py worker`, on the embedded PostgreSQL (database rra_streams) or POSTGRES_URL.
Seeds a few users with API tokens and one small manual (local embeddings), then opens
--streams answers (POST /api/chats with a question, read to the done event) spread over
the first seconds, and samples GET /api/chats and GET /api/health/live every 100 ms
meanwhile. Prints: answers completed, tokens per answer, time to first token, and
p50/p95/max of both probes, plus CPU used by the web workers and the task worker, and
the most connections each web worker held at once (a worker holding more than its
threads makes answers wait for a thread), and where the time to first token went: the
servers log each answer's phases (LOG_DEBUG=chats.answering.timing: the request entered
the view, its slot reserved, the question saved, the job queued; the worker read the
job, a thread took it, a database slot, retrieval, citations and first token
published), joined here by the answer's id with the client's start and first token. A
list of --streams runs the bursts one after another on the same servers.
Not a test; see bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import load  # noqa: E402
from rra.testing import redis_server  # noqa: E402
from rra.testing.redis_server import free_port  # noqa: E402

DB_NAME = "rra_streams"
USERS = 4
MANUAL = """# RoboRail calibration

## Chuck rotation

Put a spirit level on top of the front chuck and turn it until the chuck is level.
Then select Done on the remote control to save the home position.
"""
QUESTION = "How do I level the front chuck?"

SEED = """
import json
from accounts.models import ApiToken, User
from documents.models import Document
from documents.services import document_ingest
from documents.tests.conftest import make_document
tokens = []
for n in range({users}):
    email = f"stream-bench-{{n}}@example.invalid"
    user = User.objects.filter(email=email).first() or User.objects.create_user(email=email)
    user.chats.all().delete()
    tokens.append(ApiToken.issue(user=user, name="bench")[1])
    if not Document.objects.filter(owner=user, status="ready").exists():
        document = make_document(user, name="roborail.md", content={manual!r}.encode())
        assert document_ingest(document_id=document.pk) == "ready"
print("TOKENS=" + json.dumps(tokens))
"""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def stop_all(stops: list) -> None:
    """Run a bench's stop callbacks, last started first; one failing does not keep the
    others from running."""
    for stop in reversed(stops):
        try:
            stop()
        except Exception as exc:  # keep stopping the others
            log(f"stopping failed: {exc}")


def wait_until_up(
    port: int, web: subprocess.Popen, failure: str = "the server did not start"
) -> None:
    """Until /api/health/live on 127.0.0.1:port answers 200; exits with `failure` when the
    server process ends first or 180 s pass."""
    deadline = time.monotonic() + 180
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/api/health/live")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        if web.poll() is not None or time.monotonic() > deadline:
            sys.exit(failure)
        time.sleep(0.5)


def start_web(env: dict, log_path: Path, stops: list, *, workers: int = 2) -> int:
    """RRA's gunicorn (deploy/gunicorn.conf.py) with `env` on a free 127.0.0.1 port, its
    output in log_path; registers its stop in `stops`, waits until it is up, returns the
    port."""
    from bench import load
    from rra.testing.redis_server import free_port

    port = free_port()
    with log_path.open("wb") as out_log:
        web = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "--config", "deploy/gunicorn.conf.py"],
            cwd=ROOT,
            env={**env, "BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": str(workers)},
            stdout=out_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    stops.append(lambda: load.terminate(web, group=True, grace=20))
    wait_until_up(port, web, f"the server did not start; see {log_path}")
    return port


def fake_llm_main(rate: float, seconds: float) -> None:
    """The fake LLM in its own process: --rate words/s for --seconds, citing [1]."""
    from rra.testing.fakes import FakeOpenAI

    server = FakeOpenAI(api_key="bench-key")
    words = max(1, int(rate * seconds))
    server.reply = " ".join(["Level", "the", "chuck", "[1]."] + ["word"] * (words - 4))
    server.token_delay = 1 / rate
    server.start()
    print(server.base_url, flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    server.stop()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def fmt_ms(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (
        f"n={len(ms):4d}  p50 {percentile(ms, 50):7.1f} ms  p95 {percentile(ms, 95):7.1f} ms"
        f"  max {max(ms) if ms else float('nan'):7.1f} ms"
    )


# The phases of an answer's time to first token, as (label, from, to): "start" and
# "first" are the client's, the others the servers' phase timings (chats.answering.timing).
PHASES = [
    ("request reaches the view", "start", "entered"),
    ("rate limit + slot reserved", "entered", "reserved"),
    ("question saved", "reserved", "prepared"),
    ("job queued (XADD)", "prepared", "queued"),
    ("queued -> dispatcher read it", "queued", "read"),
    ("read -> a thread has it", "read", "taken"),
    ("thread -> DB slot (meta, rows)", "taken", "loading"),
    ("rows loaded + 2nd DB slot", "loading", "retrieving"),
    ("history + retrieval -> citations", "retrieving", "cited"),
    ("citations -> first token published", "cited", "first_token"),
    ("published -> client has it", "first_token", "first"),
]


def phase_times(results: list[dict], logs: list[Path]) -> dict[str, dict]:
    """Each answer's phase times (Unix seconds) by answer id: the client's start and
    first token, joined with the servers' timing lines for it in `logs`."""
    found = {
        r["answer"]: {"start": r["start"], "first": r["first"]} for r in results if r["answer"]
    }
    for path in logs:
        if not path.exists():
            continue
        with path.open(errors="replace") as lines:
            for line in lines:
                if "chats.answering.timing" not in line:
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                times = found.get(record.get("answer"))
                if times is not None:
                    times.update(
                        (k, v) for k, v in record.items() if isinstance(v, float) and v > 1e9
                    )
                    if "cpu_s" in record:  # the thread's CPU in the web or the worker
                        side = "cpu_web" if "queued" in record else "cpu_worker"
                        times[side] = record["cpu_s"]
    return found


def print_phases(found: dict[str, dict]) -> None:
    """p50/p95 of each phase over all answers, and the mean of each over the slowest
    tenth by time to first token (where the tail waits)."""
    complete = [t for t in found.values() if t.get("first") and t.get("start")]
    if not complete:
        print("  phases: no timings (LOG_DEBUG=chats.answering.timing not in the logs?)")
        return
    complete.sort(key=lambda t: t["first"] - t["start"])
    tail = complete[-max(1, len(complete) // 10) :]
    print(f"  where the first token waited ({len(complete)} answers; tail = slowest {len(tail)}):")
    print(f"    {'phase':<38} {'p50':>8} {'p95':>8} {'max':>8} {'tail mean':>10}")
    for label, a, b in PHASES:
        spans = [t[b] - t[a] for t in complete if t.get(a) and t.get(b)]
        tails = [t[b] - t[a] for t in tail if t.get(a) and t.get(b)]
        if not spans:
            continue
        mean = sum(tails) / len(tails) if tails else float("nan")
        print(
            f"    {label:<38} {percentile(spans, 50) * 1000:6.0f}ms {percentile(spans, 95) * 1000:6.0f}ms"
            f" {max(spans) * 1000:6.0f}ms {mean * 1000:8.0f}ms"
        )
    for label, key in [
        ("CPU of the request's view (thread)", "cpu_web"),
        ("CPU of the worker thread to 1st token", "cpu_worker"),
    ]:
        spans = [t[key] for t in complete if key in t]
        tails = [t[key] for t in tail if key in t]
        if spans:
            mean = sum(tails) / len(tails) if tails else float("nan")
            print(
                f"    {label:<38} {percentile(spans, 50) * 1000:6.0f}ms"
                f" {percentile(spans, 95) * 1000:6.0f}ms {max(spans) * 1000:6.0f}ms"
                f" {mean * 1000:8.0f}ms  (sum {sum(spans):.1f} s)"
            )


class Probe(threading.Thread):
    """GET a path every interval on one keep-alive connection; records each latency."""

    def __init__(self, port: int, path: str, headers: dict, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.port, self.path, self.headers, self.stop = port, path, headers, stop
        self.latencies: list[float] = []
        self.failures: list[str] = []

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        while not self.stop.wait(0.1):
            started = time.perf_counter()
            try:
                conn.request("GET", self.path, headers=self.headers)
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    self.failures.append(str(response.status))
                    continue
                self.latencies.append(time.perf_counter() - started)
            except (OSError, http.client.HTTPException) as exc:
                self.failures.append(type(exc).__name__)
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)


async def one_stream(port: int, token: str, delay: float, timeout: float) -> dict:
    await asyncio.sleep(delay)
    started = time.perf_counter()
    result = {"ok": False, "tokens": 0, "events": 0, "ttft": None, "status": None, "error": ""}
    result |= {"answer": None, "start": time.time(), "first": None}
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        body = json.dumps({"question": QUESTION}).encode()
        writer.write(
            b"POST /api/chats HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + f"Authorization: Bearer {token}\r\n".encode()
            + b"Content-Type: application/json\r\nAccept: text/event-stream\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout)
        result["status"] = int(status_line.split()[1])
        buffer = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = await asyncio.wait_for(reader.read(65536), deadline - time.monotonic())
            if not chunk:
                break
            buffer += chunk
            if result["ttft"] is None and b"event: token" in buffer:
                result["ttft"] = time.perf_counter() - started
                result["first"] = time.time()
            if b"event: done" in buffer or b"event: error" in buffer:
                break
        # Words of the answer as the reader got them (the worker joins tokens that come
        # within ANSWER_TOKEN_FLUSH_MS into one event), and the events that carried them.
        result["events"] = buffer.count(b"event: token")
        result["tokens"] = sum(
            len(json.loads(block.split(b"data: ", 1)[1])["text"].split())
            for block in buffer.split(b"\n\n")
            if b"event: token" in block and b"data: " in block
        )
        result["ok"] = b"event: done" in buffer
        head = buffer.split(b"\r\n\r\n", 1)[0].decode(errors="replace")
        for line in head.split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "x-answer-id":
                result["answer"] = value.strip()
        if b"event: error" in buffer:
            result["error"] = buffer[buffer.index(b"event: error") :][:200].decode(errors="replace")
        writer.close()
    except (OSError, TimeoutError, ValueError, IndexError) as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    result["seconds"] = time.perf_counter() - started
    return result


async def all_streams(port: int, tokens: list[str], count: int, ramp: float, timeout: float):
    tasks = [
        one_stream(port, tokens[i % len(tokens)], ramp * i / max(1, count), timeout)
        for i in range(count)
    ]
    return await asyncio.gather(*tasks)


def cpu_seconds(pids: list[int]) -> float:
    import psutil

    total = 0.0
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            for p in [proc, *proc.children(recursive=True)]:
                t = p.cpu_times()
                total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


class Spread(threading.Thread):
    """How the open connections are spread over gunicorn's worker processes: sampled
    every 0.5 s (established TCP connections on the server's port, per worker); the
    largest count each worker held at once."""

    def __init__(self, master_pid: int, port: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.master_pid, self.port, self.stop = master_pid, port, stop
        self.peak: dict[int, int] = {}

    def run(self) -> None:
        import psutil

        while not self.stop.wait(0.5):
            try:
                workers = psutil.Process(self.master_pid).children()
            except psutil.NoSuchProcess:
                return
            for worker in workers:
                try:
                    held = sum(
                        1
                        for c in worker.net_connections(kind="tcp")
                        if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == self.port
                    )
                except psutil.NoSuchProcess:
                    continue
                self.peak[worker.pid] = max(self.peak.get(worker.pid, 0), held)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--streams",
        type=lambda v: [int(n) for n in v.split(",")],
        default=[200],
        help="answers opened together; a list (30,200) runs one burst after another",
    )
    parser.add_argument("--pause", type=float, default=5.0, help="seconds between bursts")
    parser.add_argument("--rate", type=float, default=20.0, help="fake LLM words per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each answer")
    parser.add_argument("--threads", type=int, default=None, help="GUNICORN_THREADS")
    parser.add_argument("--answer-threads", type=int, default=256)
    parser.add_argument("--task-workers", type=int, default=1, help="manage.py worker processes")
    parser.add_argument("--ramp", type=float, default=5.0, help="seconds to open all streams")
    parser.add_argument(
        "--pin",
        action="store_true",
        help="gunicorn on CPU 0, everything else (task workers, fake LLM, this client) on "
        "CPU 1: the web instance's latency without the load generators beside it",
    )
    parser.add_argument(
        "--gate",
        type=Path,
        default=None,
        help="before its k-th burst (from 1), wait until this file holds a number >= k: a "
        "script holding the bench lock alternates the bursts of two versions, each set "
        "up beforehand (setting up takes minutes on a loaded machine)",
    )
    parser.add_argument("--fake-llm", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fake_llm:
        return fake_llm_main(args.rate, args.seconds)

    stops: list = []
    try:
        run(args, stops)
    finally:
        stop_all(stops)


def terminate(process: subprocess.Popen, *, group: bool = False) -> None:
    """bench/load.py's, with time for 200 open answers to end."""
    load.terminate(process, group=group, grace=40)


def run(args, stops: list) -> None:
    if args.pin:
        os.sched_setaffinity(0, {1})  # inherited by every child but gunicorn
    work = ROOT / "var" / "bench-streams"
    work.mkdir(parents=True, exist_ok=True)
    redis = redis_server.start(prefix="rra-streams-redis-", new_session=True)
    stops.append(lambda: (terminate(redis.process), shutil.rmtree(redis.folder, True)))
    log(f"redis {redis.url}")

    llm = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--fake-llm",
            "--rate",
            str(args.rate),
            "--seconds",
            str(args.seconds),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    stops.append(lambda: terminate(llm))
    llm_url = llm.stdout.readline().strip()
    log(f"fake LLM {llm_url}: {args.rate:g} words/s for {args.seconds:g} s")

    prom_dir = tempfile.mkdtemp(prefix="rra-streams-prometheus-")
    stops.append(lambda: shutil.rmtree(prom_dir, True))
    env = load.service_env(
        redis_url=redis.url,
        db_name=DB_NAME,
        prom_dir=prom_dir,
        work=work,
        LLM_BASE_URL=llm_url,
        LLM_API_KEY="bench-key",
        LLM_MODEL="fake",
        LLM_MAX_TOKENS="100000",
        RATELIMIT_ENABLE="false",
        ANSWER_MAX_CONCURRENT_PER_USER="100000",
        ANSWER_WORKER_THREADS=str(args.answer_threads),
        LOG_DEBUG="chats.answering.timing",
    )
    py = sys.executable

    def manage(*argv: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(
            [py, "manage.py", *argv], cwd=ROOT, env=env, check=True, text=True, **kw
        )

    log("migrate, collectstatic, seed")
    manage("migrate", "--noinput", stdout=subprocess.DEVNULL)
    manage("collectstatic", "--noinput", "--verbosity", "0")
    seeded = manage(
        "shell", "-c", SEED.format(users=USERS, manual=MANUAL), capture_output=True
    ).stdout
    tokens = json.loads(seeded.split("TOKENS=", 1)[1].splitlines()[0])

    workers = []
    for n in range(args.task_workers):
        with (work / f"worker-{n}.log").open("wb") as out:
            worker = subprocess.Popen(
                [py, "manage.py", "worker"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        workers.append(worker)
        stops.append(lambda worker=worker: terminate(worker, group=True))
    worker_pids = [w.pid for w in workers]
    port = free_port()
    web_env = {**env, "BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "2"}
    if args.threads:
        web_env["GUNICORN_THREADS"] = str(args.threads)
    with (work / "gunicorn.log").open("wb") as out:
        web = subprocess.Popen(
            [str(Path(py).parent / "gunicorn"), "--config", "deploy/gunicorn.conf.py"],
            cwd=ROOT,
            env=web_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    stops.append(lambda: terminate(web, group=True))
    if args.pin:
        os.sched_setaffinity(web.pid, {0})  # before it forks its workers
    wait_until_up(port, web, "gunicorn did not start; see var/bench-streams/gunicorn.log")
    # Warm-up: one answer end to end (the worker loads the embedding model), then wait
    # until the web workers' background warm-up is over too (CPU quiet for 2 s).
    asyncio.run(all_streams(port, tokens, 1, 0, args.seconds * 3 + 60))
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        before = cpu_seconds([web.pid, *worker_pids])
        time.sleep(2)
        if cpu_seconds([web.pid, *worker_pids]) - before < 0.2:
            break
    log(f"gunicorn on {port} (2 workers, threads {args.threads or 'default'}); worker up")

    for k, count in enumerate(args.streams, start=1):
        if args.gate is not None:
            log(f"waiting for {args.gate} to reach {k}")
            while not _gate_open(args.gate, k):
                time.sleep(0.2)
        burst(args, count, port=port, web=web, web_env=web_env, tokens=tokens, workers=worker_pids)
        time.sleep(args.pause)


def _gate_open(path: Path, k: int) -> bool:
    try:
        return int(path.read_text().strip() or 0) >= k
    except (OSError, ValueError):
        return False


def burst(args, count: int, *, port: int, web, web_env: dict, tokens: list, workers: list) -> None:
    """`count` answers opened over --ramp seconds, read to their end, with the probes."""
    worker_pids = workers
    stop = threading.Event()
    auth = {"Authorization": f"Bearer {tokens[0]}"}
    probes = [
        Probe(port, "/api/chats", auth, stop),
        Probe(port, "/api/health/live", {}, stop),
    ]
    web_cpu, worker_cpu = cpu_seconds([web.pid]), cpu_seconds(worker_pids)
    spread = Spread(web.pid, port, stop)
    for probe in probes:
        probe.start()
    time.sleep(2)
    spread.start()
    idle = [list(p.latencies) for p in probes]
    log(f"opening {count} answers over {args.ramp:g} s")
    started = time.perf_counter()
    timeout = args.seconds * 3 + 60
    results = asyncio.run(all_streams(port, tokens, count, args.ramp, timeout))
    elapsed = time.perf_counter() - started
    stop.set()
    for probe in [*probes, spread]:
        probe.join()
    web_cpu = cpu_seconds([web.pid]) - web_cpu
    worker_cpu = cpu_seconds(worker_pids) - worker_cpu

    done = [r for r in results if r["ok"]]
    expected = int(args.rate * args.seconds)
    print()
    print(
        f"{count} answers of {expected} tokens ({args.rate:g}/s for {args.seconds:g} s), "
        f"gunicorn 2 workers x {args.threads or 'default'} threads"
        f"{' on CPU 0, the rest on CPU 1' if args.pin else ''}, "
        f"{args.task_workers} task worker(s) x {args.answer_threads} answer threads; "
        f"{elapsed:.1f} s"
    )
    print(
        f"  completed {len(done)}/{count}; tokens/answer min "
        f"{min((r['tokens'] for r in results), default=0)} max "
        f"{max((r['tokens'] for r in results), default=0)} (in "
        f"{min((r['events'] for r in results), default=0)}-"
        f"{max((r['events'] for r in results), default=0)} events); statuses "
        f"{sorted({r['status'] for r in results}, key=str)}"
    )
    errors = [r["error"] for r in results if r["error"]]
    if errors:
        print(f"  errors: {len(errors)}, e.g. {errors[0]!r}")
    print(f"  time to first token   {fmt_ms([r['ttft'] for r in results if r['ttft']])}")
    threads = args.threads or int(web_env.get("GUNICORN_THREADS", 128))
    peaks = ", ".join(f"{n}" for _, n in sorted(spread.peak.items()))
    print(
        f"  connections per web worker at most: {peaks or '-'}"
        f" (each has {threads} threads; a worker past that makes answers wait)"
    )
    for probe, before in zip(probes, idle, strict=True):
        during = probe.latencies[len(before) :]
        print(f"  GET {probe.path:<17} idle {fmt_ms(before)}")
        print(f"  GET {probe.path:<17} load {fmt_ms(during)}  failures {len(probe.failures)}")
    print(f"  CPU: web {web_cpu:.1f} s, task workers {worker_cpu:.1f} s over {elapsed:.1f} s")
    work = ROOT / "var" / "bench-streams"
    print_phases(phase_times(results, [work / "gunicorn.log", *sorted(work.glob("worker-*.log"))]))
    print(f"  load average at the end: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
