"""Several worker processes share the ingestion queue (issue 24 item 2): two real
`manage.py worker` processes, every document queued twice (as a reprocess racing the
upload's own task would), and every document is ingested exactly once, by one of them,
while both take work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import Count
from django_tasks_db.models import DBTaskResult

from documents.models import Chunk, Document, Embedding
from documents.tasks import ingest_document
from rra.tests.test_deploy import ROOT, _database_url, _env

pytestmark = pytest.mark.django_db(transaction=True)  # the workers see the rows


def _manual(n: int) -> bytes:
    sections = [
        f"## Step {n}.{k}\n\n"
        + " ".join(f"Loosen bolt {n}-{k}-{j} and check the torque gauge." for j in range(10))
        for k in range(12)
    ]
    return (f"# Press {n} maintenance\n\n" + "\n\n".join(sections) + "\n").encode()


class Worker:
    """A worker process; `polling` is set once it has loaded the model and polls."""

    def __init__(self, worker_id: str, env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.polling = threading.Event()
        self.process = subprocess.Popen(
            [
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
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)
            if "Starting worker" in line:
                self.polling.set()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


def test_two_worker_processes_share_the_queue_and_ingest_each_document_once(owner_client, media):
    env = _env(
        DATABASE_URL=_database_url(django_settings.DATABASES["default"]["NAME"]),
        MEDIA_ROOT=str(media),
        ANSWERS_IN_WORKER="false",
        METRICS_ENDPOINT="",
        EMBEDDINGS_THREADS="1",
        LOG_LEVEL="INFO",  # the worker says "Starting worker" once it polls
    )
    workers = [Worker("worker-a", env), Worker("worker-b", env)]
    try:
        for worker in workers:
            assert worker.polling.wait(300), "".join(worker.lines[-40:])
        uploads = [SimpleUploadedFile(f"press-{n}.md", _manual(n)) for n in range(5)]
        response = owner_client.post("/api/documents", {"files": uploads})
        assert response.status_code == 201, response.content
        for document in Document.objects.all():
            ingest_document.enqueue(document_id=document.pk)  # a second task for each
        deadline = time.monotonic() + 400
        tasks = DBTaskResult.objects.filter(task_path__endswith="ingest_document")
        while tasks.exclude(status__in=["SUCCESSFUL", "FAILED"]).exists() or (
            Document.objects.exclude(status="ready").exists()
        ):
            for worker in workers:
                assert worker.process.poll() is None, "".join(worker.lines[-40:])
            assert not Document.objects.filter(status="failed").exists()
            assert time.monotonic() < deadline, list(Document.objects.values("name", "status"))
            time.sleep(0.2)
    finally:
        for worker in workers:
            worker.stop()

    results = list(tasks.values("args_kwargs", "status", "worker_ids", "return_value"))
    assert len(results) == 10 and {r["status"] for r in results} == {"SUCCESSFUL"}
    assert all(len(r["worker_ids"]) == 1 for r in results)  # each task claimed once
    by_worker = {r["worker_ids"][0] for r in results if r["return_value"] == "ready"}
    assert by_worker == {"worker-a", "worker-b"}  # both took documents
    for document in Document.objects.all():
        outcomes = sorted(
            r["return_value"]
            for r in results
            if r["args_kwargs"]["kwargs"]["document_id"] == document.pk
        )
        assert outcomes == ["ready", "skipped"], (document.name, outcomes)
        assert document.attempts == 1  # claimed once: never processed twice
        indexes = list(
            Chunk.objects.filter(document=document)
            .order_by("index")
            .values_list("index", flat=True)
        )
        assert indexes == list(range(len(indexes))) and len(indexes) >= 3, document.name
        vectors = (
            Embedding.objects.filter(chunk__document=document)
            .values("chunk_id")
            .annotate(n=Count("id"))
        )
        assert len(vectors) == len(indexes) and {v["n"] for v in vectors} == {1}
