"""The worker killed (SIGKILL) in the middle of processing a document (issue 21 item
7): another worker's sweep takes the document up again, and every document ends ready
exactly once: one set of passages, numbered without gaps or repeats, each with its
vector."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import Count

from documents.models import Chunk, Document, Embedding
from rra.tests.test_deploy import ROOT, _database_url, _env

pytestmark = pytest.mark.django_db(transaction=True)  # the workers see the rows


def _big_manual() -> bytes:
    sections = [
        f"## Step {n}\n\n"
        + " ".join(
            f"Turn screw {n}-{k} a quarter turn and check the gauge reading." for k in range(12)
        )
        for n in range(150)
    ]
    return ("# Long maintenance manual\n\n" + "\n\n".join(sections) + "\n").encode()


def _worker(env, log):
    return subprocess.Popen(
        [sys.executable, "manage.py", "worker"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _kill(worker) -> None:
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)


def test_a_worker_killed_mid_ingest_leaves_every_document_ready_exactly_once(
    owner_client, owner, media, tmp_path
):
    files = {
        "long.md": _big_manual(),
        "short-a.md": b"# A\n\nCheck the oil level weekly.\n",
        "short-b.md": b"# B\n\nReplace the filter every month.\n",
    }
    for name, content in files.items():
        response = owner_client.post(
            "/api/documents", {"files": [SimpleUploadedFile(name, content)]}
        )
        assert response.status_code == 201
    env = _env(
        DATABASE_URL=_database_url(django_settings.DATABASES["default"]["NAME"]),
        MEDIA_ROOT=str(media),
        INGEST_STALE_AFTER_S="10",
        WORKER_SWEEP_INTERVAL_S="1",
        ANSWERS_IN_WORKER="false",
        METRICS_ENDPOINT="",
    )
    log = (tmp_path / "workers.log").open("w+")
    first = _worker(env, log)
    second = None
    try:
        # Until a document is being processed (its passages half-written, perhaps).
        deadline = time.monotonic() + 180
        while not Document.objects.in_progress().exists():
            assert first.poll() is None, log.seek(0) or log.read()[-3000:]
            assert time.monotonic() < deadline, "no document was taken up"
            time.sleep(0.05)
        interrupted = set(Document.objects.in_progress().values_list("pk", flat=True))
        _kill(first)
        assert Document.objects.filter(pk__in=interrupted).exclude(status="ready").exists()

        second = _worker(env, log)
        deadline = time.monotonic() + 240
        while Document.objects.exclude(status="ready").exists():
            assert not Document.objects.filter(status="failed").exists()
            assert second.poll() is None, log.seek(0) or log.read()[-3000:]
            assert time.monotonic() < deadline, list(Document.objects.values("name", "status"))
            time.sleep(0.2)
    finally:
        _kill(first)
        if second is not None:
            _kill(second)
        log.close()

    for document in Document.objects.all():
        indexes = list(
            Chunk.objects.filter(document=document)
            .order_by("index")
            .values_list("index", flat=True)
        )
        assert indexes == list(range(len(indexes))) and indexes, document.name  # once each
        vectors = (
            Embedding.objects.filter(chunk__document=document)
            .values("chunk_id")
            .annotate(n=Count("id"))
        )
        assert len(vectors) == len(indexes) and {v["n"] for v in vectors} == {1}
    assert Chunk.objects.filter(document__name="long.md").count() > 20
