"""The background worker: django-tasks-db's db_worker plus a recovery sweep.

Every WORKER_SWEEP_INTERVAL_S a thread re-queues documents whose worker died mid-way
(documents.services.documents_requeue_stale), so nothing stays stuck. Run as many
workers on as many machines as needed; claims make the work safe to share.
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import close_old_connections
from django_tasks_db.management.commands.db_worker import Command as DbWorkerCommand

logger = logging.getLogger("rra.worker")


def sweep_forever(stop: threading.Event, interval: float) -> None:
    from documents.services import documents_requeue_stale

    while not stop.is_set():
        try:
            counts = documents_requeue_stale()
            if any(counts.values()):
                logger.warning("recovered stale documents: %s", counts)
        except Exception:
            logger.exception("stale-document sweep failed")
        finally:
            close_old_connections()
        stop.wait(interval)


def warm_up() -> None:
    """Load the embedding model before the first task, not during it."""
    try:
        from documents.embeddings import get_provider

        get_provider().warm_up()
    except Exception as exc:  # a provider may be unavailable now; tasks will retry
        logger.warning("embedding provider warm-up failed: %s", exc)


class Command(DbWorkerCommand):
    help = "Run the background worker (tasks + recovery of stale documents)."

    def handle(self, *args, **options):
        warm_up()
        stop = threading.Event()
        thread = threading.Thread(
            target=sweep_forever,
            args=(stop, settings.WORKER_SWEEP_INTERVAL_S),
            name="stale-sweep",
            daemon=True,
        )
        thread.start()
        try:
            return super().handle(*args, **options)
        finally:
            stop.set()
