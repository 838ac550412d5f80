"""The background worker: django-tasks-db's db_worker, the answer threads (chats/answering/:
ANSWER_WORKER_THREADS answers generated at once) and a recovery sweep.

Every WORKER_SWEEP_INTERVAL_S a thread re-queues documents whose worker died mid-way
(documents.services.documents_requeue_stale), so nothing stays stuck. Run as many
workers on as many machines as needed; claims make the work safe to share.

Every HOUSEKEEPING_INTERVAL_S a third prunes expired sessions and old finished task
results (rra/housekeeping.py).

Every WORKER_HEARTBEAT_INTERVAL_S another thread records this process's heartbeat
(rra.models.WorkerHeartbeat), which /api/health/ready reads; the row is removed on a
clean exit. Metrics: see rra/metrics.py (a shared PROMETHEUS_MULTIPROC_DIR, or the push
to METRICS_ENDPOINT).
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone
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


def housekeeping_forever(stop: threading.Event, interval: float) -> None:
    from rra.housekeeping import housekeeping_run

    while not stop.is_set():
        try:
            housekeeping_run()  # None: another worker holds the lock and does it
        except Exception:
            logger.exception("housekeeping failed")
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


def heartbeat_forever(stop: threading.Event, interval: float) -> None:
    from rra import health

    worker = health.worker_id()
    started_at = timezone.now()
    try:
        health.heartbeat_prune()
    except Exception:
        logger.exception("pruning old worker heartbeats failed")
    while not stop.is_set():
        try:
            health.heartbeat_beat(worker=worker, started_at=started_at)
        except Exception as exc:  # the database may be briefly away; try again later
            logger.warning("worker heartbeat failed: %s", exc)
        finally:
            close_old_connections()
        stop.wait(interval)
    try:
        health.heartbeat_forget(worker=worker)
    except Exception as exc:
        logger.warning("could not remove this worker's heartbeat: %s", exc)
    finally:
        close_old_connections()


class Command(DbWorkerCommand):
    help = "Run the background worker (tasks + recovery of stale documents)."

    def handle(self, *args, **options):
        from rra import metrics
        from rra.embedded_redis import refuse_local_memory_cache

        # The worker writes (documents, answers) that the web processes must see.
        refuse_local_memory_cache(settings.CACHES, why="a task worker runs beside the web")

        metrics.start_background()
        stop = threading.Event()
        threads = [
            threading.Thread(
                target=sweep_forever,
                args=(stop, settings.WORKER_SWEEP_INTERVAL_S),
                name="stale-sweep",
                daemon=True,
            ),
            threading.Thread(
                target=heartbeat_forever,
                args=(stop, settings.WORKER_HEARTBEAT_INTERVAL_S),
                name="heartbeat",
                daemon=True,
            ),
        ]
        if settings.HOUSEKEEPING_INTERVAL_S:
            threads.append(
                threading.Thread(
                    target=housekeeping_forever,
                    args=(stop, settings.HOUSEKEEPING_INTERVAL_S),
                    name="housekeeping",
                    daemon=True,
                )
            )
        for thread in threads:
            thread.start()
        from chats.answering import runner_start

        # Answers stream through Redis: these threads generate them (chats/answering/).
        # Not for --batch (it exits once the task queue is empty).
        runner = None if options.get("batch") else runner_start(stop=stop)
        warm_up()
        try:
            return super().handle(*args, **options)
        finally:
            stop.set()
            if runner is not None and (ended := runner.abandon()):
                logger.warning("stopping: %d answers in progress ended with an error", len(ended))
            threads[1].join(timeout=5)  # removes the heartbeat row
