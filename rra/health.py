"""Health probes.

/api/health/live answers as long as the process serves requests (no dependencies).
/api/health/ready (and /api/health) checks the database, the cache and that every
migration is applied; 503 when any check fails. Each check reports its status and time.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

_migrations_applied = False  # once true, it stays true for this process


def check_database() -> None:
    pool = connection.pool if hasattr(connection, "pool") else None
    if pool is not None:
        # Ask the pool with a short timeout: a down database must not hold the probe
        # for the full DB_POOL_TIMEOUT.
        pool.open()
        with pool.connection(timeout=settings.HEALTH_CHECK_TIMEOUT) as conn:
            conn.execute("SELECT 1")
    else:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")


def check_cache() -> None:
    # The default cache swallows Redis errors (pages keep working), so write and read
    # back through the raw client to see the truth.
    key = f"health:{uuid.uuid4().hex}"
    client = getattr(cache, "client", None)
    if client is not None and hasattr(client, "get_client"):
        redis = client.get_client(write=True)
        redis.set(key, "1", ex=10)
        if redis.get(key) != b"1":
            raise RuntimeError("cache did not return the value just written")
        redis.delete(key)
        return
    cache.set(key, "1", 10)
    if cache.get(key) != "1":
        raise RuntimeError("cache did not return the value just written")
    cache.delete(key)


def check_migrations() -> None:
    global _migrations_applied
    if _migrations_applied:
        return
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        names = ", ".join(f"{m.app_label}.{m.name}" for m, _ in plan[:5])
        raise RuntimeError(f"{len(plan)} unapplied migration(s): {names}")
    _migrations_applied = True


READY_CHECKS: dict[str, Callable[[], None]] = {
    "database": check_database,
    "cache": check_cache,
    "migrations": check_migrations,
}


def run_checks(checks: dict[str, Callable[[], None]]) -> tuple[bool, dict]:
    results = {}
    healthy = True
    for name, check in checks.items():
        started = time.perf_counter()
        try:
            check()
            result = {"status": "ok"}
        except Exception as exc:  # a probe reports failures, it does not raise them
            healthy = False
            result = {"status": "fail", "error": f"{type(exc).__name__}: {exc}"[:300]}
        result["ms"] = round((time.perf_counter() - started) * 1000, 2)
        results[name] = result
        if name == "database" and result["status"] == "fail":
            # Without a database the migrations check can only wait and fail again.
            results["migrations"] = {"status": "skipped", "ms": 0.0}
            break
    return healthy, results


@never_cache
def live(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
def ready(request: HttpRequest) -> JsonResponse:
    started = time.perf_counter()
    healthy, results = run_checks(READY_CHECKS)
    body = {
        "status": "ok" if healthy else "fail",
        "checks": results,
        "ms": round((time.perf_counter() - started) * 1000, 2),
    }
    return JsonResponse(body, status=200 if healthy else 503)
