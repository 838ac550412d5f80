from __future__ import annotations

import sys
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError

from documents import filetypes
from documents.models import Document
from documents.services import (
    FileTooLarge,
    document_create,
    document_ingest,
    document_validate_upload,
)


def _progress(done: int, total: int, label: str, stream) -> None:
    width = 30
    filled = int(width * done / total) if total else width
    stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {label[:50]:<50}")
    stream.flush()


class Command(BaseCommand):
    help = "Ingest files or folders of manuals for a user (PDF, DOCX, Markdown, text)."

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", type=Path)
        parser.add_argument("--owner", required=True, help="Email of the owning user.")
        parser.add_argument(
            "--shared", action="store_true", help="Make the documents readable by everyone."
        )
        parser.add_argument(
            "--enqueue",
            action="store_true",
            help="Only queue the documents for the background worker instead of processing them here.",
        )

    def handle(self, *args, paths: list[Path], owner: str, shared: bool, enqueue: bool, **options):
        User = get_user_model()
        try:
            user = User.objects.with_email(owner).get()
        except User.DoesNotExist:
            raise CommandError(f"No user with email {owner}.") from None
        files: list[Path] = []
        for path in paths:
            if path.is_dir():
                files.extend(
                    sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
                )
            elif path.is_file():
                files.append(path)
            else:
                raise CommandError(f"{path} does not exist.")
        if not files:
            raise CommandError("No files found.")
        visibility = Document.Visibility.SHARED if shared else Document.Visibility.PRIVATE
        out = sys.stdout if self.stdout.isatty() else None
        summary = {"ready": 0, "queued": 0, "failed": 0, "skipped": 0, "duplicate": 0}
        for number, path in enumerate(files, 1):
            if out:
                _progress(number - 1, len(files), path.name, out)
            with path.open("rb") as handle:
                upload = File(handle, name=path.name)
                try:
                    mime = document_validate_upload(upload=upload)
                except (FileTooLarge, filetypes.FileRejected) as exc:
                    self.stderr.write(f"\nskipped {path}: {exc.message}")
                    summary["skipped"] += 1
                    continue
                result = document_create(
                    owner=user,
                    upload=upload,
                    mime_type=mime,
                    visibility=visibility,
                    enqueue=enqueue,
                )
            document = result.document
            if not result.created:
                summary["duplicate"] += 1
                continue
            if enqueue:
                summary["queued"] += 1
                continue
            outcome = document_ingest(document_id=document.pk)
            document.refresh_from_db()
            if document.status == Document.Status.READY:
                summary["ready"] += 1
            else:
                summary["failed"] += 1
                self.stderr.write(f"\nfailed {path}: {document.failure_reason or outcome}")
        if out:
            _progress(len(files), len(files), "done", out)
            out.write("\n")
        self.stdout.write(", ".join(f"{k}: {v}" for k, v in summary.items()))
