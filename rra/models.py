"""Platform tables: the background workers' heartbeats."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models


class WorkerHeartbeat(models.Model):
    """One row per running worker process (manage.py worker), touched every
    WORKER_HEARTBEAT_INTERVAL_S; removed when the worker stops cleanly."""

    worker_id = models.CharField(max_length=200, unique=True)  # host:pid
    hostname = models.CharField(max_length=255)
    pid = models.IntegerField()
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["seen_at"], name="workerheartbeat_seen_at_idx")]

    def __str__(self) -> str:
        return self.worker_id

    @staticmethod
    def stale_after() -> timedelta:
        return timedelta(seconds=settings.WORKER_HEARTBEAT_STALE_S)
