from django.core.management.base import BaseCommand, CommandError

from documents.filetypes import DOCX, MARKDOWN, PDF, TEXT
from documents.models import Document
from documents.services import document_ingest, document_reprocess

TYPES = {"pdf": PDF, "docx": DOCX, "markdown": MARKDOWN, "text": TEXT}


class Command(BaseCommand):
    help = (
        "Extract, chunk and embed stored documents again, from their stored files. By "
        "default the ready DOCX and plain-text documents processed before their structure "
        "was kept (the viewer shows them as plain paragraphs, and a text manual's passages "
        "have no section). A document is out of search until it is ready again; citations "
        "of it keep working (they find their passage by its text)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--document", type=int, action="append", help="Only this document id (repeatable)."
        )
        parser.add_argument(
            "--type",
            choices=sorted(TYPES),
            action="append",
            help="Every ready document of this type (repeatable).",
        )
        parser.add_argument(
            "--now",
            action="store_true",
            help="Process here, one after the other, instead of queueing for the worker.",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="List the documents, change nothing."
        )

    def handle(self, *args, document=None, type=None, now=False, dry_run=False, **options):
        documents = Document.objects.order_by("pk")
        if document:
            documents = documents.filter(pk__in=document)
            missing = set(document) - set(documents.values_list("pk", flat=True))
            if missing:
                raise CommandError(f"No document with id {sorted(missing)}")
        elif type:
            documents = documents.ready().filter(mime_type__in=[TYPES[t] for t in type])
        else:
            documents = documents.ready().filter(mime_type__in=[DOCX, TEXT], content__blocks=[])
        selected = list(documents.only("pk", "name", "status", "owner_id"))
        if not selected:
            self.stdout.write("nothing to reprocess")
            return
        if dry_run:
            for doc in selected:
                self.stdout.write(f"#{doc.pk} {doc.name} ({doc.status})")
            self.stdout.write(f"would reprocess {len(selected)} document(s)")
            return
        failed = 0
        for doc in selected:
            document_reprocess(document=doc)
            if not now:
                self.stdout.write(f"#{doc.pk} {doc.name}: queued")
                continue
            outcome = document_ingest(document_id=doc.pk)
            doc.refresh_from_db(fields=["status", "failure_reason", "chunks_total"])
            if outcome == "skipped":  # the worker took it first
                self.stdout.write(f"#{doc.pk} {doc.name}: processed by the worker")
            elif outcome == "ready":
                self.stdout.write(f"#{doc.pk} {doc.name}: ready, {doc.chunks_total} chunks")
            else:
                failed += 1
                reason = doc.failure_reason or outcome
                self.stderr.write(f"#{doc.pk} {doc.name}: {reason}")
        verb = "reprocessed" if now else "queued"
        self.stdout.write(f"{verb} {len(selected)} document(s), {failed} failed")
        if failed:
            raise CommandError(f"{failed} document(s) could not be reprocessed")
