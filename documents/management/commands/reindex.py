from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from documents.models import Document, Embedding
from documents.services import Superseded, document_reindex


class Command(BaseCommand):
    help = (
        "Embed ready documents with the configured (or given) embedding model. New vectors "
        "are written beside the old ones, each document's all at once, and searches keep "
        "using the old ones until the model setting is switched: change models without "
        "downtime (README: Changing the embedding model)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--model",
            help=(
                "Embedding provider (local, cohere, openai) or local model "
                "(local/all-MiniLM-L6-v2, local/multilingual-e5-small-q4); default: the "
                "configured EMBEDDINGS_PROVIDER and LOCAL_EMBEDDING_MODEL."
            ),
        )
        parser.add_argument(
            "--missing",
            action="store_true",
            help="Only documents without this model's vectors (e.g. uploaded meanwhile).",
        )
        parser.add_argument(
            "--document", type=int, action="append", help="Only this document id (repeatable)."
        )
        parser.add_argument(
            "--prune",
            action="store_true",
            help=(
                "Afterwards delete the other models' vectors of every document that has "
                "this model's (only once searches use this model)."
            ),
        )

    def handle(self, *args, model=None, document=None, missing=False, prune=False, **options):
        from documents.embeddings import EmbeddingError, get_provider

        try:
            provider = get_provider(model)
        except (ValueError, ImproperlyConfigured, EmbeddingError) as exc:
            raise CommandError(str(exc)) from None
        documents = Document.objects.ready().order_by("pk")
        if document:
            documents = documents.filter(pk__in=document)
            unknown = set(document) - set(documents.values_list("pk", flat=True))
            if unknown:
                raise CommandError(f"Not found or not ready: {sorted(unknown)}")
        if missing:
            documents = documents.exclude(
                pk__in=Embedding.objects.filter(model=provider.model_id).values(
                    "chunk__document_id"
                )
            )
        done = failed = 0
        # A list, not an open cursor: creating the new model's index needs the table free.
        for doc in list(documents):
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
            done += 1
            self.stdout.write(
                f"#{doc.pk} {doc.name}: {count} chunks embedded with {provider.model_id}"
            )
        self.stdout.write(f"reindexed {done} document(s), {failed} failed")
        if prune:
            complete = Embedding.objects.filter(model=provider.model_id)
            if document:
                complete = complete.filter(chunk__document_id__in=document)
            complete = complete.values("chunk__document_id")
            pruned, _ = (
                Embedding.objects.filter(chunk__document_id__in=complete)
                .exclude(model=provider.model_id)
                .delete()
            )
            self.stdout.write(f"pruned {pruned} vector(s) of other models")
        if failed:
            raise CommandError(f"{failed} document(s) could not be reindexed")
