"""manage.py backup and restore (rra/backup.py): a backup taken from the running
database is restored into a fresh embedded PostgreSQL data directory and media folder,
and every user, document, passage, chat, message, citation and file is there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from chats.models import Chat, Citation, Message
from documents.models import Chunk, Document, Embedding
from documents.services import document_ingest
from rra import embedded_db

pytestmark = pytest.mark.django_db(transaction=True)  # pg_dump sees committed rows only
ROOT = Path(__file__).resolve().parents[2]
MANUALS = {
    "calibration.md": b"# Calibration\n\n## Chuck\n\nLevel the front chuck with a spirit level.\n",
    "network.md": b"# Network\n\nPing 192.168.7.10 when the controller has no link.\n",
}


def _library(owner_client, owner) -> None:
    for name, content in MANUALS.items():
        response = owner_client.post(
            "/api/documents", {"files": [SimpleUploadedFile(name, content)]}
        )
        assert response.status_code == 201, response.content
    for document in Document.objects.all():
        assert document_ingest(document_id=document.pk) == "ready"
    chat = Chat.objects.create(owner=owner, title="Levelling")
    Message.objects.create(chat=chat, role="user", content="How do I level the chuck?")
    answer = Message.objects.create(chat=chat, role="assistant", content="Use a level [1].")
    chunk = Chunk.objects.filter(document__name="calibration.md").first()
    Citation.objects.create(
        message=answer,
        chunk=chunk,
        document=chunk.document,
        document_name="calibration.md",
        first_page=1,
        last_page=1,
        quote=chunk.content,
        number=1,
        rank=1,
        score=0.9,
    )


def test_a_backup_restores_into_a_fresh_data_directory_with_everything(
    owner_client, owner, media, tmp_path
):
    _library(owner_client, owner)
    expected = {
        "users": 1,
        "documents": 2,
        "passages": Chunk.objects.count(),
        "chats": 1,
        "messages": 2,
        "citations": 1,
    }
    assert expected["passages"] >= 2
    vectors = Embedding.objects.count()
    quote = Citation.objects.get().quote
    assert vectors >= 2 and "spirit level" in quote
    folder = tmp_path / "backup"
    call_command("backup", output=folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["counts"] == expected and manifest["missing_files"] == []
    assert len(manifest["files"]) == 2
    with pytest.raises(CommandError, match="not empty"):
        call_command("backup", output=folder)  # never over another backup

    # A fresh machine: a new data directory and media folder, nothing else.
    pgdata, restored_media = tmp_path / "pgdata", tmp_path / "restored-media"
    env = {k: v for k, v in os.environ.items() if k not in ("POSTGRES_URL", "DATABASE_URL")}
    env.update(
        ENV_FILE="",
        DEBUG="true",
        EMBEDDED_REDIS="false",
        EMBEDDED_PG_DIR=str(pgdata),
        EMBEDDED_DB_NAME="rra",
        MEDIA_ROOT=str(restored_media),
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
        assert "restored" in restore.stdout
        fields = embedded_db.ensure_running(pgdata, "rra")
        with psycopg.connect(host=fields["HOST"], user=fields["USER"], dbname="rra") as conn:

            def rows(sql):
                return conn.execute(sql).fetchall()

            names = {r[0] for r in rows("SELECT name FROM documents_document")}
            assert names == set(MANUALS)
            assert rows("SELECT count(*) FROM documents_chunk")[0][0] == expected["passages"]
            # The passages' vectors came too: a nearest-neighbour query runs on them.
            assert rows("SELECT count(*) FROM documents_embedding")[0][0] == vectors
            nearest = (
                "SELECT chunk_id FROM documents_embedding ORDER BY vector <=> "
                "(SELECT vector FROM documents_embedding LIMIT 1) LIMIT 1"
            )
            assert rows(nearest)
            assert rows("SELECT title FROM chats_chat") == [("Levelling",)]
            assert rows("SELECT count(*) FROM chats_message")[0][0] == 2
            assert rows("SELECT quote FROM chats_citation") == [(quote,)]
            assert rows("SELECT email FROM accounts_user") == [(owner.email,)]
            files = dict(rows("SELECT name, file FROM documents_document"))
        for name, content in MANUALS.items():
            assert (restored_media / files[name]).read_bytes() == content

        # Restoring again over it is refused (nothing is replaced by accident).
        again = subprocess.run(
            [sys.executable, "manage.py", "restore", str(folder)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert again.returncode != 0 and "already has" in again.stderr
    finally:
        embedded_db.stop(pgdata)
