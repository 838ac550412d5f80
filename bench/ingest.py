"""Ingestion benchmark: end-to-end pages/s and chunks/s through real worker processes,
next to the raw rates of extraction alone and embedding alone, measured in the same run.

    .venv/bin/python bench/ingest.py [FOLDER ...] [--repeat N] [--workers 1 2]
                                     [--threads 1] [--as-text] [--e2e-only] [--fifo]

Defaults to ../shared/sample-docs when it exists. Uses production-like settings
(DEBUG off) on the configured database (embedded by default), as user
bench@example.invalid whose documents are replaced on every run. Prints numbers; it is
not a test.

--workers 1 2 runs the end-to-end phase once per count: the same documents uploaded
afresh, then that many `manage.py worker` processes started together drain the
queue (each with EMBEDDINGS_THREADS=--threads, default 1, so N processes use N cores).
--as-text ingests each file's extracted text as a plain-text document instead of the
file itself, so that the work is embedding-bound (extraction of text costs nearly
nothing).
--fifo starts each worker under `chrt -f 1` (SCHED_FIFO, needs root): on a shared
machine the workers, and only they, then get a whole core each whatever else runs
(the kernel still leaves other processes 5 % of every core, sched_rt_runtime_us).

"embedding alone" embeds the very texts the workers embed (the pipeline's own chunking
of what is uploaded, each passage with its document's title: services.document_passages
and chunking.index_text), and is given in CPU seconds as well as wall time, so that
the workers' chunks per CPU-second compare with it on a loaded machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.update(
    {
        "DJANGO_SETTINGS_MODULE": "rra.settings",
        "ENV_FILE": "",
        "DEBUG": "false",
        "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_urlsafe(50),
        "LOG_LEVEL": "WARNING",
        "SLOW_QUERY_MS": "0",  # a loaded machine's slow queries are not what is measured
    }
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folders", nargs="*", type=Path)
    parser.add_argument(
        "--repeat", type=int, default=1, help="ingest the folder N times (as distinct files)"
    )
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1], help="worker processes, one run each"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="EMBEDDINGS_THREADS of every process (0: all)"
    )
    parser.add_argument("--as-text", action="store_true", help="ingest the extracted text")
    parser.add_argument("--e2e-only", action="store_true", help="skip the raw rates")
    parser.add_argument(
        "--fifo", action="store_true", help="run the workers under chrt -f 1 (SCHED_FIFO)"
    )
    args = parser.parse_args()
    folders = args.folders or [ROOT.parent / "shared" / "sample-docs"]
    os.environ["EMBEDDINGS_THREADS"] = str(args.threads)

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import transaction

    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model
    from django.core.files import File
    from django.core.files.base import ContentFile

    from documents.chunking import index_text
    from documents.embeddings import get_provider
    from documents.extraction import extract_file
    from documents.filetypes import TEXT
    from documents.models import Document
    from documents.services import (
        document_create,
        document_delete,
        document_passages,
        document_validate_upload,
        extraction_limits,
    )
    from documents.tasks import ingest_document

    files = sorted(
        p for f in folders for p in f.rglob("*") if p.is_file() and not p.name.startswith(".")
    )
    if not files:
        sys.exit(f"no files under {', '.join(map(str, folders))}")
    limits = extraction_limits()
    mimes = {}
    for path in files:
        with path.open("rb") as fh:
            mimes[path] = document_validate_upload(upload=File(fh, name=path.name))

    # 1. Extraction alone (same child-process path as the pipeline).
    started = time.perf_counter()
    extractions = [
        extract_file(p, mimes[p], limits=limits) for p in files for _ in range(args.repeat)
    ]
    extract_s = time.perf_counter() - started
    pages = sum(e.page_count for e in extractions)

    # What is uploaded: the files, or (--as-text) their extracted text.
    uploads: list[tuple[str, bytes, str]] = []
    for path in files:
        if args.as_text:
            pages_text = [p.text for p in extract_file(path, mimes[path], limits=limits).pages]
            text = "\n\n".join(pages_text)
            uploads.append((path.stem + ".txt", text.encode(), TEXT))
        else:
            uploads.append((path.name, path.read_bytes(), mimes[path]))

    provider = get_provider()
    provider.embed_documents(["warm-up"])
    if not args.e2e_only:
        # 2. Embedding alone (model loaded first, as a running worker has it): the texts
        # the workers will embed, one copy of each upload.
        texts: list[str] = []
        with tempfile.TemporaryDirectory() as scratch:
            for name, content, mime in uploads:
                path = Path(scratch) / "upload"
                path.write_bytes(content)
                title, drafts = document_passages(
                    name=name, extraction=extract_file(path, mime, limits=limits), provider=provider
                )
                texts.extend(index_text(title, d.content) for d in drafts)
        tokens = sum(provider.count_tokens(t) for t in texts)
        started, cpu_started = time.perf_counter(), time.process_time()
        for i in range(0, len(texts), provider.batch_size):
            provider.embed_documents(texts[i : i + provider.batch_size])
        embed_s = time.perf_counter() - started
        embed_cpu_s = time.process_time() - cpu_started
        chunks = len(texts)
        print(
            f"files: {len(files)} x {args.repeat}  pages: {pages}  "
            f"model: {provider.model_id}  threads/process: {args.threads}"
        )
        print(f"extraction alone : {extract_s:7.2f} s  {pages / extract_s:8.1f} pages/s")
        print(
            f"embedding alone  : {embed_s:7.2f} s  {chunks / embed_s:8.1f} chunks/s  "
            f"{chunks / embed_cpu_s:8.2f} chunks per CPU-second  ({chunks} chunks of one "
            f"copy, {tokens / chunks:.0f} tokens each on average)"
        )
        print(f"raw sum          : {extract_s + embed_s * args.repeat:7.2f} s")

    # 3. End to end: upload, then real worker processes drain the queue.
    user, _ = get_user_model().objects.get_or_create(email="bench@example.invalid")
    env = {
        **os.environ,
        "EMBEDDINGS_THREADS": str(args.threads),
        "ANSWERS_IN_WORKER": "false",
        "LOG_LEVEL": "INFO",  # the worker says when it polls ("Starting worker")
    }
    baseline = None
    for count in args.workers:
        for document in Document.objects.filter(owner=user):
            document_delete(document=document)
        # The workers first, each waited for until its model is loaded and it polls the
        # queue, so that what is timed is the work, not the start-up.
        started = time.perf_counter()
        prefix = ["chrt", "-f", "1"] if args.fifo else []
        workers = [_Worker(f"bench-{count}-{k}", env, prefix) for k in range(count)]
        for worker in workers:
            worker.ready.wait()
        warm_s = time.perf_counter() - started
        cpu_before = sum(w.cpu_s() for w in workers)
        load_before = os.getloadavg()
        # Every document and its task in one transaction: the workers see the whole
        # queue at once, so a slow uploader (this process, niced on a loaded machine)
        # cannot starve them and the time measured is theirs.
        with transaction.atomic():
            for n in range(args.repeat):
                for name, content, mime in uploads:
                    marker = f"\n%bench-copy-{n}\n".encode() if n else b""
                    created = document_create(
                        owner=user,
                        upload=ContentFile(content + marker, name=name),
                        mime_type=mime,
                        enqueue=False,
                    )
                    ingest_document.enqueue(document_id=created.document.pk)
        pending = Document.objects.filter(owner=user).exclude(status__in=["ready", "failed"])
        while pending.exists():
            if any(w.process.poll() is not None for w in workers):
                sys.exit("a worker exited:\n" + "".join(x for w in workers for x in w.lines[-30:]))
            time.sleep(0.2)
        cpu_s = sum(w.cpu_s() for w in workers) - cpu_before
        for worker in workers:
            worker.process.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.process.wait(60)
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        documents = list(Document.objects.filter(owner=user))
        statuses = Counter(d.status for d in documents)
        span_s = (
            max(d.ready_at or d.updated_at for d in documents)
            - min(d.processing_started_at or d.created_at for d in documents)
        ).total_seconds()
        e2e_pages = sum(d.pages_total for d in documents)
        e2e_chunks = sum(d.chunks_total for d in documents)
        rate = e2e_chunks / span_s
        baseline = baseline or rate
        print(
            f"end to end, {count} worker(s): {span_s:7.2f} s  {e2e_pages / span_s:8.1f} pages/s  "
            f"{rate:8.1f} chunks/s  x{rate / baseline:.2f}  (first claim to last ready; "
            f"{len(documents)} documents, {e2e_chunks} chunks)"
        )
        print(f"  workers' start-up: {warm_s:7.2f} s  (to model loaded, not timed above)")
        print(
            f"  workers' CPU     : {cpu_s:7.2f} s  {e2e_chunks / cpu_s:8.1f} chunks per CPU-second"
            f"  {cpu_s / span_s:.2f} cores busy on average"
        )
        if not args.e2e_only:
            raw_s = extract_s + embed_s * args.repeat
            print(f"  pipeline overhead: {100 * (span_s - raw_s) / raw_s:6.1f} % over the raw sum")
            print(
                f"  CPU per chunk    : {cpu_s / e2e_chunks / (embed_cpu_s / chunks):6.2f} x "
                "embedding alone's"
            )
        print(f"  worker peak RSS  : {peak_mb:7.1f} MB (largest child process)")
        print(
            f"  statuses         : {dict(statuses)}  load average (1, 5, 15 min) before "
            f"{_load(load_before)}, after {_load(os.getloadavg())}"
            + ("  (workers under SCHED_FIFO)" if args.fifo else "")
        )


def _load(average: tuple[float, float, float]) -> str:
    return " ".join(f"{x:.2f}" for x in average)


class _Worker:
    """A `manage.py worker` process whose output is read by a thread: `ready` is set once
    it has loaded the model and polls the queue."""

    def __init__(self, worker_id: str, env: dict[str, str], prefix: list[str]) -> None:
        self.ready = threading.Event()
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [
                *prefix,  # chrt execs the worker: same process, whose CPU is read below
                sys.executable,
                "manage.py",
                "worker",
                "--no-startup-delay",
                "--no-reload",
                "--interval=0.2",
                f"--worker-id={worker_id}",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def cpu_s(self) -> float:
        """CPU seconds of the worker and its (extraction) children so far."""
        import psutil

        try:
            t = psutil.Process(self.process.pid).cpu_times()
        except psutil.NoSuchProcess:
            return 0.0
        return t.user + t.system + t.children_user + t.children_system

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)
            if "Starting worker" in line:
                self.ready.set()
        self.ready.set()  # it exited: the caller sees that


if __name__ == "__main__":
    main()
