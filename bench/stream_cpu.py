"""The task worker's CPU per streamed token, in one process: --answers threads each
stream one answer from the fake model (bench/streams.py's, --rate words/s for --seconds)
through the worker's own path (llm.stream -> telemetry -> the runner's coalescing ->
Redis), with no database, web server or readers. Prints the process's CPU seconds
(user + system, all threads) per answer and per token: a figure that holds on a loaded
machine, where wall-clock latency does not.

    .venv/bin/python bench/stream_cpu.py [--answers 100] [--rate 20] [--seconds 10] [--rounds 3]

Not a test; see bench/README.md.
"""

from __future__ import annotations

import argparse
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
from rra.testing import redis_server  # noqa: E402


def one_answer(n: int, question: str, passages: list, errors: list) -> None:
    from chats.answering import runner
    from chats.answering.generation import _stream_with_retry
    from chats.answering.llm import get_llm
    from rra import telemetry

    llm = get_llm()

    def events():
        for item in telemetry.llm_stream(
            _stream_with_retry(llm, question=question, passages=passages, history=[]),
            provider=llm,
        ):
            if hasattr(item, "text"):
                yield ("token", {"text": item.text})
        yield ("done", {"message_id": n, "status": "complete", "html": "", "usage": {}})

    try:
        runner._publish_coalesced(f"cpu-bench-{n}", events(), chat_id=n, stop=runner._StopSeen())
    except Exception as exc:  # counted, not raised: the round goes on
        errors.append(repr(exc))


def one_round(answers: int) -> tuple[float, float, int]:
    """(CPU seconds, wall seconds, errors) of `answers` answers streamed at once."""
    from chats.answering.types import Passage

    passages = [Passage(number=1, text="Level the chuck.", document="m.md", pages="1", score=1)]
    errors: list = []
    threads = [
        threading.Thread(target=one_answer, args=(n, "How?", passages, errors))
        for n in range(answers)
    ]
    cpu, wall = time.process_time(), time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.process_time() - cpu, time.perf_counter() - wall, len(errors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--answers", type=int, default=100)
    parser.add_argument("--rate", type=float, default=20.0, help="fake LLM words per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each answer")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    redis = redis_server.start(prefix="rra-cpu-redis-", new_session=True)
    llm = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "bench" / "streams.py"),
            "--fake-llm",
            *("--rate", str(args.rate), "--seconds", str(args.seconds)),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    prom_dir = tempfile.mkdtemp(prefix="rra-cpu-prometheus-")
    try:
        url = llm.stdout.readline().strip()
        env = load.service_env(
            redis_url=redis.url,
            db_name="rra_stream_cpu",
            prom_dir=prom_dir,
            LLM_BASE_URL=url,
            LLM_API_KEY="bench-key",
            LLM_MODEL="fake",
            LLM_MAX_TOKENS="100000",
        )
        load.setup_django(env)
        words = int(args.rate * args.seconds)
        print(
            f"{args.answers} answers at once, {words} words each ({args.rate:g}/s), "
            f"one process; load average {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)"
        )
        one_round(2)  # warm-up: imports, the client's connection pool
        for n in range(args.rounds):
            cpu, wall, errors = one_round(args.answers)
            tokens = args.answers * words
            print(
                f"  round {n + 1}: CPU {cpu:.2f} s ({cpu / args.answers * 1000:.1f} ms per "
                f"answer, {cpu / tokens * 1e6:.0f} us per token), wall {wall:.1f} s, "
                f"errors {errors}; load average {os.getloadavg()[0]:.1f}"
            )
    finally:
        load.terminate(llm)
        load.terminate(redis.process)
        shutil.rmtree(redis.folder, True)
        shutil.rmtree(prom_dir, True)


if __name__ == "__main__":
    main()
