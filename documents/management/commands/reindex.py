from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from documents.models import Document, Embedding
from documents.services import Superseded, document_reindex


class Command(BaseCommand):
    help = (
        "Re-embed ready documents with the configured (or given) embedding provider. New "
        "vectors are written beside the old ones; each document switches when complete."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--model",
            help="Embedding provider to use: local, cohere or openai (default: EMBEDDINGS_PROVIDER).",
        )
        parser.add_argument(
            "--document", type=int, action="append", help="Only this document id (repeatable)."
        )
        parser.add_argument(
            "--prune",
            action="store_true",
            help="Afterwards delete vectors of other models for reindexed documents.",
        )

    def handle(self, *args, model=None, document=None, prune=False, **options):
        from documents.embeddings import EmbeddingError, get_provider

        try:
            provider = get_provider(model)
        except (ValueError, ImproperlyConfigured, EmbeddingError) as exc:
            raise CommandError(str(exc)) from None
        documents = Document.objects.ready().order_by("pk")
        if document:
            documents = documents.filter(pk__in=document)
            missing = set(document) - set(documents.values_list("pk", flat=True))
            if missing:
                raise CommandError(f"Not found or not ready: {sorted(missing)}")
        done = failed = 0
        for doc in documents.iterator():
            try:
                count = document_reindex(document=doc, provider=provider)
            except Superseded:
                self.stderr.write(f"#{doc.pk} {doc.name}: changed while reindexing; skipped")
                failed += 1
                continue
            except EmbeddingError as exc:
                self.stderr.write(f"#{doc.pk} {doc.name}: {exc}")
                failed += 1
                continue
            if prune:
                Embedding.objects.filter(chunk__document=doc).exclude(
                    model=provider.model_id
                ).delete()
            done += 1
            self.stdout.write(
                f"#{doc.pk} {doc.name}: {count} chunks embedded with {provider.model_id}"
            )
        self.stdout.write(f"reindexed {done} document(s), {failed} failed")
        if failed:
            raise CommandError(f"{failed} document(s) could not be reindexed")
