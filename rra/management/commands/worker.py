"""The background worker: django-tasks-db's db_worker, and what the apps register in
rra.registry: services beside the task loop (chats: the answer threads,
ANSWER_WORKER_THREADS answers generated at once), warm-ups (documents: the embedding
model) and recovery sweeps.

Every WORKER_SWEEP_INTERVAL_S a thread runs the sweeps (documents: re-queue documents
whose worker died mid-way), so nothing stays stuck. Run as many workers on as many
machines as needed; claims make the work safe to share (documents/tests/test_workers.py).
Workers on machines without the web's disk need the uploads in S3 (STORAGE_S3_BUCKET),
and several on one machine EMBEDDINGS_THREADS = cores / workers each.

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

from rra import health, metrics, registry
from rra.embedded_redis import refuse_local_memory_cache
from rra.housekeeping import housekeeping_run

logger = logging.getLogger("rra.worker")


def sweep_forever(stop: threading.Event, interval: float) -> None:
    while not stop.is_set():
        for name, sweep in registry.WORKER_SWEEPS.items():
            try:
                counts = sweep()
                if any(counts.values()):
                    logger.warning("recovered %s: %s", name, counts)
            except Exception:
                logger.exception("%s sweep failed", name)
            finally:
                close_old_connections()
        stop.wait(interval)


def housekeeping_forever(stop: threading.Event, interval: float) -> None:
    while not stop.is_set():
        try:
            housekeeping_run()  # None: another worker holds the lock and does it
        except Exception:
            logger.exception("housekeeping failed")
        finally:
            close_old_connections()
        stop.wait(interval)


def warm_up() -> None:
    """What the apps load before the first task, not during it."""
    for warm in registry.WORKER_WARM_UPS:
        try:
            warm()
        except Exception:  # the task that needs it will try again
            logger.exception("warm-up %s failed", warm.__qualname__)


def heartbeat_forever(stop: threading.Event, interval: float) -> None:
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
    help = "Run the background worker (tasks, the apps' services and recovery sweeps)."

    def handle(self, *args, **options):
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
        # The apps' services (answers stream through Redis: chats' threads generate
        # them). Not for --batch (it exits once the task queue is empty).
        services = [] if options.get("batch") else [s(stop) for s in registry.WORKER_SERVICES]
        warm_up()
        try:
            return super().handle(*args, **options)
        finally:
            stop.set()
            for service in filter(None, services):
                if ended := service.abandon():
                    logger.warning(
                        "stopping: %s ended %d jobs in progress with an error",
                        type(service).__name__,
                        len(ended),
                    )
            threads[1].join(timeout=5)  # removes the heartbeat row
