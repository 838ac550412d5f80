"""Health probes.

/api/health/live answers as long as the process serves requests (no dependencies).

/api/health/ready (and /api/health) reports each check with its status and time:

  database    SELECT 1 through the pool, with HEALTH_CHECK_TIMEOUT          fail -> 503
  migrations  every migration applied (checked until it is true once)       fail -> 503
  cache       a write and read back; Redis itself when REDIS_URL is set     degraded
  disk        free space on MEDIA_ROOT's disk >= HEALTH_MIN_FREE_DISK_MB    fail -> 503
  worker      a worker heartbeat younger than WORKER_HEARTBEAT_STALE_S      degraded
  memory      available memory >= HEALTH_MIN_FREE_MEMORY_MB                 degraded
  embeddings  the remote embedding service answered its last check          degraded
  llm         the remote LLM service answered its last check                degraded

The cache is "degraded", not failed: without Redis every page still answers (cached
reads go to the database, sessions fall back to it, most limits fail open; sign-in's
fail closed with a clear 503), and a Redis outage hits every replica at once, so
failing it would take the whole site out of the load balancer.

Who sees what: the status of the whole and of each check goes to anyone; the details
(errors, hostnames, memory, timings, release) only to the clients /metrics answers to
(METRICS_TOKEN or METRICS_ALLOWED_NETWORKS), as they help an attacker more than a
load balancer.

"degraded" answers 200 with {"status": "degraded"}: this process can serve pages,
search and answers (or says why not in a friendly way), and taking it out of the load
balancer would not bring a dead worker or a remote API back; alert on it instead. A
failed check answers 503. The provider checks run in a background thread every
HEALTH_PROVIDER_INTERVAL_S and the probe only reads their last result, so it never
waits on the network for them (the local embedding model and the extractive answerer
are always "ok").
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache

_migrations_applied = False  # once true, it stays true for this process


class CheckFailed(Exception):
    """Raised by a check: fail, with a message and details for the JSON."""

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class Degraded(CheckFailed):
    """Raised by a check: something is wrong, but the process can still serve."""


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


def check_cache() -> dict[str, Any]:
    try:
        return _write_and_read_back()
    except Exception as exc:
        raise Degraded(f"the cache does not answer: {type(exc).__name__}: {exc}") from exc


def _write_and_read_back() -> dict[str, Any]:
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
        return {"backend": "redis"}
    cache.set(key, "1", 10)
    if cache.get(key) != "1":
        raise RuntimeError("cache did not return the value just written")
    cache.delete(key)
    return {"backend": type(cache).__name__}


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


def check_worker() -> dict[str, Any]:
    from django.db.models import Count, Max, Q

    from rra.models import WorkerHeartbeat

    now = timezone.now()
    beats = WorkerHeartbeat.objects.aggregate(
        alive=Count("pk", filter=Q(seen_at__gte=now - WorkerHeartbeat.stale_after())),
        latest=Max("seen_at"),
    )
    if beats["latest"] is None:
        raise Degraded("no worker has reported a heartbeat (is manage.py worker running?)")
    age = round((now - beats["latest"]).total_seconds(), 1)
    details = {"alive": beats["alive"], "last_heartbeat_s": age}
    if not beats["alive"]:
        raise Degraded(
            f"the last worker heartbeat is {age:g} s old "
            f"(stale after {settings.WORKER_HEARTBEAT_STALE_S:g} s)",
            details,
        )
    return details


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_disk() -> dict[str, Any]:
    usage = shutil.disk_usage(_existing(Path(settings.MEDIA_ROOT)))
    free_mb = usage.free // (1024 * 1024)
    details = {"free_mb": free_mb, "min_free_mb": settings.HEALTH_MIN_FREE_DISK_MB}
    if free_mb < settings.HEALTH_MIN_FREE_DISK_MB:
        raise CheckFailed(f"only {free_mb} MB free on the disk of MEDIA_ROOT", details)
    return details


def _cgroup_available_bytes() -> int | None:
    """Memory left under this container's cgroup v2 limit (None without a limit)."""
    base = Path("/sys/fs/cgroup")
    try:
        limit = (base / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int((base / "memory.current").read_text())
    except (OSError, ValueError):
        return None


def check_memory() -> dict[str, Any]:
    import psutil

    available = _cgroup_available_bytes()
    source = "cgroup"
    if available is None:
        available, source = psutil.virtual_memory().available, "system"
    available_mb = available // (1024 * 1024)
    details = {
        "available_mb": available_mb,
        "source": source,
        "rss_mb": psutil.Process().memory_info().rss // (1024 * 1024),
        "min_free_mb": settings.HEALTH_MIN_FREE_MEMORY_MB,
    }
    if available_mb < settings.HEALTH_MIN_FREE_MEMORY_MB:
        raise Degraded(f"only {available_mb} MB of memory available", details)
    return details


# --- Remote providers, checked in the background -------------------------------------------


@dataclass
class ProviderTarget:
    """What to ask to learn whether a remote service answers: a cheap GET."""

    name: str  # "embeddings" | "llm"
    provider: str  # e.g. "cohere", "openai", "xai"
    url: str | None  # None: nothing remote (always ok)
    api_key: str | None = None


def provider_targets() -> list[ProviderTarget]:
    targets = []
    embeddings = settings.EMBEDDINGS_PROVIDER
    if embeddings == "cohere":
        targets.append(
            ProviderTarget(
                "embeddings",
                "cohere",
                settings.COHERE_BASE_URL.rstrip("/") + "/v1/models?page_size=1",
                settings.COHERE_API_KEY,
            )
        )
    elif embeddings == "openai":
        targets.append(
            ProviderTarget(
                "embeddings",
                "openai",
                settings.EMBEDDINGS_BASE_URL.rstrip("/") + "/models",
                settings.EMBEDDINGS_API_KEY,
            )
        )
    else:
        targets.append(ProviderTarget("embeddings", embeddings, None))
    if settings.XAI_API_KEY:
        targets.append(
            ProviderTarget(
                "llm", "xai", settings.XAI_BASE_URL.rstrip("/") + "/models", settings.XAI_API_KEY
            )
        )
    elif settings.LLM_BASE_URL:
        targets.append(
            ProviderTarget(
                "llm", "openai", settings.LLM_BASE_URL.rstrip("/") + "/models", settings.LLM_API_KEY
            )
        )
    else:
        targets.append(ProviderTarget("llm", "extractive", None))
    return targets


def probe_provider(target: ProviderTarget, *, timeout: float) -> dict[str, Any]:
    """One reachability check (network: background thread only)."""
    import httpx

    result: dict[str, Any] = {"provider": target.provider, "checked_at": time.time()}
    if target.url is None:
        return {**result, "status": "ok", "detail": "local"}
    headers = {"Authorization": f"Bearer {target.api_key}"} if target.api_key else {}
    started = time.perf_counter()
    try:
        response = httpx.get(target.url, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        return {
            **result,
            "status": "degraded",
            "error": f"could not reach {target.provider} ({type(exc).__name__})",
        }
    result["probe_ms"] = round((time.perf_counter() - started) * 1000, 2)
    status = response.status_code
    if status in (401, 403):
        return {**result, "status": "degraded", "error": f"the API key was refused (HTTP {status})"}
    if status >= 500:
        return {**result, "status": "degraded", "error": f"the service answered HTTP {status}"}
    # 2xx, 404 (a server without a models list) and 429 all mean it is up.
    return {**result, "status": "ok", "http_status": status}


class ProviderMonitor:
    """Checks the remote services every interval seconds in a daemon thread; the probe
    reads snapshot(), which never touches the network."""

    def __init__(self) -> None:
        self._results: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._pid: int | None = None

    def ensure_started(self) -> None:
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._results = {}
        if any(t.url for t in provider_targets()):
            threading.Thread(target=self._run, name="provider-health", daemon=True).start()

    def _run(self) -> None:
        while True:
            self.refresh()
            time.sleep(settings.HEALTH_PROVIDER_INTERVAL_S)

    def refresh(self) -> None:
        """Check every target now (the background thread's work; tests call it)."""
        for target in provider_targets():
            result = probe_provider(target, timeout=settings.HEALTH_CHECK_TIMEOUT)
            with self._lock:
                self._results[target.name] = result

    def snapshot(self, name: str) -> dict[str, Any]:
        target = next(t for t in provider_targets() if t.name == name)
        if target.url is None:
            return {"status": "ok", "provider": target.provider, "detail": "local"}
        with self._lock:
            result = self._results.get(name)
        if result is None or result.get("provider") != target.provider:
            return {"status": "unknown", "provider": target.provider, "detail": "not checked yet"}
        age = time.time() - result["checked_at"]
        shown = {k: v for k, v in result.items() if k != "checked_at"}
        shown["checked_s_ago"] = round(age, 1)
        if age > 3 * settings.HEALTH_PROVIDER_INTERVAL_S + settings.HEALTH_CHECK_TIMEOUT:
            return {**shown, "status": "unknown", "detail": "the last check is too old"}
        return shown


providers = ProviderMonitor()


def _provider_check(name: str) -> Callable[[], dict[str, Any]]:
    def check() -> dict[str, Any]:
        result = providers.snapshot(name)
        if result["status"] == "degraded":
            raise Degraded(result.get("error", "unreachable"), result)
        return result

    check.__name__ = f"check_{name}"
    return check


# --- The probes ----------------------------------------------------------------------------

READY_CHECKS: dict[str, Callable[[], Any]] = {
    "database": check_database,
    "migrations": check_migrations,
    "worker": check_worker,
    "cache": check_cache,
    "disk": check_disk,
    "memory": check_memory,
    "embeddings": _provider_check("embeddings"),
    "llm": _provider_check("llm"),
}
NEEDS_DATABASE = ("migrations", "worker")


def _failure(status: str, exc: Exception) -> dict[str, Any]:
    if isinstance(exc, CheckFailed):
        return {**exc.details, "status": status, "error": exc.message[:300]}
    return {"status": status, "error": f"{type(exc).__name__}: {exc}"[:300]}


def run_checks(checks: dict[str, Callable[[], Any]]) -> tuple[str, dict]:
    """Run the checks in order; the overall status is fail, degraded or ok."""
    results: dict[str, dict[str, Any]] = {}
    overall = "ok"
    database_down = False
    for name, check in checks.items():
        if database_down and name in NEEDS_DATABASE:
            # Without a database these can only wait and fail again.
            results[name] = {"status": "skipped", "ms": 0.0}
            continue
        started = time.perf_counter()
        try:
            details = check() or {}
            result = {"status": "ok", **details}
        except Degraded as exc:
            result = _failure("degraded", exc)
        except CheckFailed as exc:
            result = _failure("fail", exc)
        except Exception as exc:  # a probe reports failures, it does not raise them
            result = _failure("fail", exc)
        result["ms"] = round((time.perf_counter() - started) * 1000, 2)
        results[name] = result
        if result["status"] == "fail":
            overall = "fail"
            database_down = database_down or name == "database"
        elif result["status"] == "degraded" and overall == "ok":
            overall = "degraded"
    return overall, results


@never_cache
def live(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
def ready(request: HttpRequest) -> JsonResponse:
    from rra.metrics import scrape_allowed

    started = time.perf_counter()
    providers.ensure_started()
    status, results = run_checks(READY_CHECKS)
    if scrape_allowed(request):
        body = {
            "status": status,
            "checks": results,
            "host": socket.gethostname(),
            "release": settings.RELEASE,
            "ms": round((time.perf_counter() - started) * 1000, 2),
        }
    else:
        body = {
            "status": status,
            "checks": {name: {"status": result["status"]} for name, result in results.items()},
        }
    return JsonResponse(body, status=503 if status == "fail" else 200)


# --- The worker's heartbeat ------------------------------------------------------------------


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def heartbeat_beat(*, worker: str | None = None, started_at=None) -> None:
    """Record that this worker process is alive (one UPSERT)."""
    from rra.models import WorkerHeartbeat

    now = timezone.now()
    worker = worker or worker_id()
    WorkerHeartbeat.objects.update_or_create(
        worker_id=worker,
        defaults={"seen_at": now},
        create_defaults={
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": started_at or now,
            "seen_at": now,
        },
    )


def heartbeat_forget(*, worker: str | None = None) -> None:
    from rra.models import WorkerHeartbeat

    WorkerHeartbeat.objects.filter(worker_id=worker or worker_id()).delete()


def heartbeat_prune(*, older_than_s: float = 86400) -> int:
    """Remove the rows of workers that stopped without saying so, long ago."""
    from datetime import timedelta

    from rra.models import WorkerHeartbeat

    cutoff = timezone.now() - timedelta(seconds=older_than_s)
    return WorkerHeartbeat.objects.filter(seen_at__lt=cutoff).delete()[0]
