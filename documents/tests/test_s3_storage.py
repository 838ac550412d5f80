"""Uploaded files in an S3-compatible object store (issue 24 item 3): a real SeaweedFS
server (rra/testing/s3_server.py), no shared disk between the web process (this test)
and the worker process: upload, ingestion, page images, delete, backup and restore."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psycopg
import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from documents.filetypes import PDF
from documents.models import Chunk, Document
from documents.services import FILE_MISSING, document_ingest
from documents.tests import files
from rra import embedded_db
from rra.tests.test_deploy import ROOT, _database_url, _env

pytestmark = pytest.mark.django_db(transaction=True)  # the worker process sees the rows

MANUAL = (
    b"# Hydraulic press manual\n\n## Bleeding the circuit\n\n"
    b"Open the bleed screw on the left cylinder until the oil runs clear of bubbles.\n"
)
PDF_PAGES = [
    ["# Safety", "Wear gloves when handling the blade."],
    ["# Calibration", "Turn the dial gauge until the needle rests at zero."],
]


def _upload(client, name: str, content: bytes) -> Document:
    response = client.post("/api/documents", {"files": [SimpleUploadedFile(name, content)]})
    assert response.status_code == 201, response.content
    return Document.objects.get(name=name)


def test_an_upload_goes_to_the_bucket_and_nothing_to_the_local_disk(
    owner_client, s3_storage, media
):
    document = _upload(owner_client, "press.md", MANUAL)
    assert document.file.name.startswith("documents/")
    assert s3_storage.keys() == [document.file.name]
    body = s3_storage.server.client().get_object(
        Bucket="rra-test", Key=f"{s3_storage.prefix}/{document.file.name}"
    )["Body"]
    assert body.read() == MANUAL
    assert not media.exists() or not any(media.rglob("*.md"))

    # The same file again: the existing document, no second object.
    again = owner_client.post("/api/documents", {"files": [SimpleUploadedFile("x.md", MANUAL)]})
    assert again.status_code == 200, again.content
    assert s3_storage.keys() == [document.file.name]


def test_a_worker_process_without_the_web_disk_ingests_from_the_bucket(
    owner_client, s3_storage, tmp_path
):
    document = _upload(owner_client, "press.md", MANUAL)
    worker_disk = tmp_path / "worker-media"  # the worker's own, empty disk
    env = _env(
        DATABASE_URL=_database_url(django_settings.DATABASES["default"]["NAME"]),
        MEDIA_ROOT=str(worker_disk),
        ANSWERS_IN_WORKER="false",
        METRICS_ENDPOINT="",
        **s3_storage.env,
    )
    worker = subprocess.run(
        [sys.executable, "manage.py", "worker", "--batch", "--no-startup-delay", "--no-reload"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert worker.returncode == 0, worker.stderr[-3000:]
    document.refresh_from_db()
    assert document.status == Document.Status.READY, document.failure_reason
    assert Chunk.objects.filter(document=document, content__contains="bleed screw").exists()
    assert not worker_disk.exists() or not any(worker_disk.rglob("*.md"))


def test_the_viewer_renders_a_page_of_a_pdf_in_the_bucket_and_delete_removes_it(
    owner_client, s3_storage, media, tmp_path
):
    pdf = files.make_pdf(tmp_path / "blade.pdf", PDF_PAGES).read_bytes()
    document = _upload(owner_client, "blade.pdf", pdf)
    assert document.mime_type == PDF
    assert document_ingest(document_id=document.pk) == "ready"

    page = owner_client.get(f"/api/documents/{document.pk}/pages/2")
    assert page.status_code == 200, page.content
    image = owner_client.get(f"/api/documents/{document.pk}/pages/2/image", {"width": 400})
    assert image.status_code == 200 and image["Content-Type"] == "image/png"
    assert b"".join(image.streaming_content).startswith(b"\x89PNG")
    chunk = Chunk.objects.filter(document=document, content__contains="dial gauge").first()
    hit = owner_client.get(f"/api/documents/{document.pk}/pages/2", {"chunk": chunk.pk})
    assert hit.status_code == 200 and hit.json()["highlights"], hit.content

    response = owner_client.delete(f"/api/documents/{document.pk}")
    assert response.status_code == 204
    assert s3_storage.keys() == []  # the object went with the document
    assert not (media / "page-cache" / str(document.pk)).exists()  # and the local copy


def test_a_file_gone_from_the_bucket_fails_the_document_with_a_reason(owner_client, s3_storage):
    document = _upload(owner_client, "press.md", MANUAL)
    s3_storage.server.client().delete_object(
        Bucket="rra-test", Key=f"{s3_storage.prefix}/{document.file.name}"
    )
    assert document_ingest(document_id=document.pk) == "failed"
    document.refresh_from_db()
    assert document.failure_reason == FILE_MISSING
    assert not Chunk.objects.filter(document=document).exists()


def test_an_unreachable_store_retries_the_document_later(owner_client, s3_storage, settings):
    document = _upload(owner_client, "press.md", MANUAL)
    _dead_store(settings)
    assert document_ingest(document_id=document.pk) == "retrying"
    document.refresh_from_db()
    assert document.status == Document.Status.QUEUED
    assert document.failure_reason.startswith("The file store is unavailable.")
    page = owner_client.get(f"/api/documents/{document.pk}")
    assert page.status_code == 200


def test_backup_reads_the_bucket_and_restore_writes_it(
    owner_client, owner, s3_storage, s3_server, tmp_path
):
    from rra.testing.s3_server import BUCKET

    names = {"press.md": MANUAL, "pump.md": b"# Pump\n\nPrime the pump before starting.\n"}
    for name, content in names.items():
        _upload(owner_client, name, content)
    folder = tmp_path / "backup"
    call_command("backup", output=folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["missing_files"] == [] and len(manifest["files"]) == 2
    stored = dict(Document.objects.values_list("name", "file"))
    for name, content in names.items():
        assert (folder / "media" / stored[name]).read_bytes() == content

    # A new site: a fresh database and an empty prefix of the bucket.
    pgdata = tmp_path / "pgdata"
    target = f"{s3_storage.prefix}-restored"
    env = {k: v for k, v in os.environ.items() if k not in ("POSTGRES_URL", "DATABASE_URL")}
    env.update(s3_storage.env)
    env.update(
        ENV_FILE="",
        DEBUG="true",
        EMBEDDED_REDIS="false",
        EMBEDDED_PG_DIR=str(pgdata),
        EMBEDDED_DB_NAME="rra",
        MEDIA_ROOT=str(tmp_path / "unused-media"),
        STORAGE_S3_PREFIX=target,
    )
    env.pop("REDIS_URL", None)
    try:
        restore = subprocess.run(
            [sys.executable, "manage.py", "restore", str(folder)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert restore.returncode == 0, restore.stderr
        fields = embedded_db.ensure_running(pgdata, "rra")
        with psycopg.connect(host=fields["HOST"], user=fields["USER"], dbname="rra") as conn:
            rows = dict(conn.execute("SELECT name, file FROM documents_document").fetchall())
        assert rows == stored
        client = s3_server.client()
        for name, content in names.items():
            key = f"{target}/{rows[name]}"
            assert client.get_object(Bucket=BUCKET, Key=key)["Body"].read() == content
        assert not (tmp_path / "unused-media").exists()
    finally:
        embedded_db.stop(pgdata)


def _dead_store(settings) -> None:
    """The storage pointed at a port where nothing listens."""
    options = settings.STORAGES["default"]["OPTIONS"]
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            **settings.STORAGES["default"],
            "OPTIONS": {**options, "endpoint_url": "http://127.0.0.1:9"},
        },
    }


def test_an_upload_while_the_store_is_down_answers_503_and_creates_nothing(
    owner_client, s3_storage, settings
):
    _dead_store(settings)
    response = owner_client.post(
        "/api/documents", {"files": [SimpleUploadedFile("press.md", MANUAL)]}
    )
    assert response.status_code == 503, response.content
    assert response.json()["error"]["code"] == "storage_unavailable"
    assert response["Retry-After"]
    assert not Document.objects.exists()

    page = owner_client.post(
        "/documents/upload/", {"files": [SimpleUploadedFile("press.md", MANUAL)]}, follow=True
    )
    assert page.status_code == 200
    assert "the file store is unavailable" in page.content.decode()
    assert not Document.objects.exists()
