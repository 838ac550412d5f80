from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import Exists, OuterRef

from documents.models import Chunk, ChunkTerm, Document, DocumentTerm


class Command(BaseCommand):
    help = (
        "Rewrite the full-text leg's term counts (DocumentTerm) and postings (ChunkTerm) "
        "of stored documents from their chunks, one document per transaction, while the "
        "site runs. --missing: only the documents with chunks but no postings (those "
        "ingested by the previous version while migration 0007 filled the table)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--document", type=int, action="append", help="Only this document id (repeatable)."
        )
        parser.add_argument(
            "--missing", action="store_true", help="Only documents whose chunks have no postings."
        )

    def handle(self, *args, document=None, missing=False, **options):
        documents = Document.objects.order_by("pk")
        if document:
            documents = documents.filter(pk__in=document)
            unknown = set(document) - set(documents.values_list("pk", flat=True))
            if unknown:
                raise CommandError(f"No document with id {sorted(unknown)}")
        if missing:
            documents = documents.filter(
                Exists(Chunk.objects.filter(document=OuterRef("pk")))
            ).exclude(Exists(ChunkTerm.objects.filter(chunk__document=OuterRef("pk"))))
        ids = list(documents.values_list("pk", flat=True))
        for document_id in ids:
            with transaction.atomic():
                # Locked like an ingest's write, so a concurrent one cannot interleave.
                if Document.objects.select_for_update().filter(pk=document_id).exists():
                    DocumentTerm.rebuild_for(document_id)
        self.stdout.write(f"rebuilt the terms of {len(ids)} document(s)")
