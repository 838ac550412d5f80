"""What documents adds to the platform's scrape-time metrics and worker (registered in
DocumentsConfig.ready through rra.registry)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from documents.models import Document

logger = logging.getLogger(__name__)


def ingest_queue_gauges() -> Iterator[GaugeMetricFamily]:
    """Ingestion queue depth by status and the oldest queued document's age (two small
    indexed queries at scrape time)."""
    waiting = [Document.Status.QUEUED, *Document.IN_PROGRESS]
    counts = dict(
        Document.objects.filter(status__in=waiting)
        .order_by()
        .values_list("status")
        .annotate(n=Count("pk"))
        .values_list("status", "n")
    )
    oldest = Document.objects.filter(status=Document.Status.QUEUED).aggregate(at=Min("updated_at"))[
        "at"
    ]
    queue = GaugeMetricFamily(
        "rra_ingest_queue_documents",
        "Documents queued or being processed, by status.",
        labels=["status"],
    )
    for status in waiting:
        queue.add_metric([str(status)], counts.get(status, 0))
    yield queue
    yield GaugeMetricFamily(
        "rra_ingest_oldest_queued_seconds",
        "Age of the oldest queued document (0 when none is queued).",
        value=(timezone.now() - oldest).total_seconds() if oldest else 0.0,
    )


def embeddings_warm_up() -> None:
    """Load the embedding model before the worker's first task, not during it."""
    from documents.embeddings import get_provider

    try:
        get_provider().warm_up()
    except Exception as exc:  # a provider may be unavailable now; tasks will retry
        logger.warning("embedding provider warm-up failed: %s", exc)
