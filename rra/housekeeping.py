"""Housekeeping: prune rows nobody needs any more, in small batches.

- expired sessions (django_session rows past expire_date; sessions are cached_db, so
  the table grows with every sign-in and nothing else empties it)
- finished task results of django-tasks-db: successful ones after
  HOUSEKEEPING_TASK_RETENTION_DAYS, failed ones after HOUSEKEEPING_FAILED_TASK_RETENTION_DAYS
  (queued and running rows are never touched)
- whatever the apps register in rra.registry.PRUNERS (accounts: sign-ups never
  confirmed, once their last link has expired).

The worker runs housekeeping_run() every HOUSEKEEPING_INTERVAL_S (rra/management/commands/
worker.py); with several workers, an advisory lock lets one of them do it at a time.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone

from rra import metrics, registry

logger = logging.getLogger("rra.housekeeping")

LOCK_KEY = 0x5252_415F_484B_5550  # "RRA_HKUP": one worker at a time
BATCH = 5000


def delete_in_batches(queryset: QuerySet) -> int:
    """Delete the matching rows a batch at a time: short transactions, short locks."""
    model = queryset.model
    deleted = 0
    while True:
        pks = list(queryset.order_by().values_list("pk", flat=True)[:BATCH])
        if not pks:
            return deleted
        deleted += model._base_manager.filter(pk__in=pks).delete()[0]
        if len(pks) < BATCH:
            return deleted


def prune_sessions(*, now) -> int:
    from django.contrib.sessions.models import Session

    return delete_in_batches(Session.objects.filter(expire_date__lt=now))


def prune_task_results(*, now) -> int:
    from django_tasks_db.compat import TaskResultStatus
    from django_tasks_db.models import DBTaskResult

    done_before = now - timedelta(days=settings.HOUSEKEEPING_TASK_RETENTION_DAYS)
    failed_before = now - timedelta(days=settings.HOUSEKEEPING_FAILED_TASK_RETENTION_DAYS)
    old = DBTaskResult.objects.finished().filter(
        Q(status=TaskResultStatus.SUCCESSFUL, finished_at__lt=done_before)
        | Q(status=TaskResultStatus.FAILED, finished_at__lt=failed_before)
    )
    return delete_in_batches(old)


def housekeeping_run(*, now=None) -> dict[str, int] | None:
    """Prune once; the counts by kind, or None when another worker holds the lock."""
    now = now or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY])
        (locked,) = cursor.fetchone()
    if not locked:
        return None
    try:
        counts = {
            "sessions": prune_sessions(now=now),
            "task_results": prune_task_results(now=now),
        }
        for kind, prune in registry.PRUNERS.items():
            counts[kind] = prune(now=now)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])
    for kind, count in counts.items():
        metrics.HOUSEKEEPING_PRUNED.labels(kind).inc(count)
    if any(counts.values()):
        logger.info("housekeeping: pruned %s", counts)
    return counts
