from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db.models import Count
from django.utils import timezone

from documents.models import Document


class Command(BaseCommand):
    help = "Counts per status; stuck and failed documents with their reasons."

    def handle(self, *args, **options):
        counts = dict(Document.objects.values_list("status").annotate(n=Count("id")).order_by())
        self.stdout.write("status      count")
        for status in Document.Status.values:
            self.stdout.write(f"{status:<11} {counts.get(status, 0)}")
        cutoff = timezone.now() - timedelta(seconds=settings.INGEST_STALE_AFTER_S)
        stuck = Document.objects.in_progress().filter(heartbeat_at__lt=cutoff)
        if stuck:
            self.stdout.write(f"\nstuck (no progress for {settings.INGEST_STALE_AFTER_S} s):")
            for d in stuck:
                self.stdout.write(
                    f"  #{d.pk} {d.name} [{d.status}] last progress {d.heartbeat_at:%Y-%m-%d %H:%M:%S}"
                )
        failed = Document.objects.filter(status=Document.Status.FAILED).select_related("owner")
        if failed:
            self.stdout.write("\nfailed:")
            for d in failed[:200]:
                self.stdout.write(f"  #{d.pk} {d.name} ({d.owner.email}): {d.failure_reason}")
