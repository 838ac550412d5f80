"""Prometheus metrics: definitions, the /metrics view, and the optional push.

Several gunicorn workers: set PROMETHEUS_MULTIPROC_DIR (deploy/gunicorn.conf.py does,
for more than one worker) before anything imports prometheus_client. Each process then
writes its samples to memory-mapped files in that directory and a scrape, answered by
any worker, adds them up (prometheus_client's multiprocess mode). gunicorn empties the
directory of dead processes' files when it starts and marks each exiting worker dead.
The background worker (manage.py worker) joins in when it sees the same directory (same
machine); on another machine it can push to METRICS_ENDPOINT instead.

In multiprocess mode the usual process_* collector only sees the scraping process, so
rra_process_* gauges (one series per live pid) are kept up to date by every process.

/metrics answers to a bearer token (METRICS_TOKEN) or to clients in
METRICS_ALLOWED_NETWORKS (default: loopback only); 403 otherwise.
"""

from __future__ import annotations

import atexit
import functools
import hmac
import ipaddress
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder, push_to_gateway

logger = logging.getLogger(__name__)

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
if MULTIPROCESS:
    # Any process that exits cleanly (manage.py commands included) takes its live
    # gauges with it; gunicorn's child_exit does the same for workers it reaps.
    atexit.register(lambda: multiprocess.mark_process_dead(os.getpid()))

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# --- HTTP ------------------------------------------------------------------------------

REQUESTS = Counter(
    "rra_http_requests_total",
    "Requests answered (event streams included), by view (URL name), method and status.",
    ["view", "method", "status"],
)
REQUEST_SECONDS = Histogram(
    "rra_http_request_duration_seconds",
    "Time from the request arriving to the last byte of the response, by view (URL "
    "name), method and status. Server-Sent Events streams (answers) stay out of it, so "
    "its percentiles are those of pages and API calls: rra_http_stream_duration_seconds.",
    ["view", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
STREAM_SECONDS = Histogram(
    "rra_http_stream_duration_seconds",
    "Time from the request arriving to the last event of a Server-Sent Events stream "
    "(an answer), by view and status.",
    ["view", "status"],
    buckets=(0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300),
)
REQUESTS_IN_PROGRESS = Gauge(
    "rra_http_requests_in_progress",
    "Requests being handled now.",
    multiprocess_mode="livesum",
)
SERVER_ERRORS = Counter(
    "rra_http_server_errors_total",
    "Responses with a 5xx status, by view and status.",
    ["view", "status"],
)
EXCEPTIONS = Counter(
    "rra_http_exceptions_total",
    "Exceptions raised by views (answered 500), by view and exception type.",
    ["view", "exception"],
)
DB_QUERIES = Histogram(
    "rra_http_request_db_queries",
    "Database queries made while handling one request, by view.",
    ["view"],
    buckets=(0, 1, 2, 3, 5, 8, 13, 21, 50, 100, 250),
)
DB_SECONDS = Histogram(
    "rra_http_request_db_seconds",
    "Time spent in database queries while handling one request, by view.",
    ["view"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
COMPRESSION_RATIO = Histogram(
    "rra_http_compression_ratio",
    "Compressed size / original size of the response bodies rra/compression.py compressed, "
    "by encoding (br, gzip).",
    ["encoding"],
    buckets=(0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.8, 1),
)
COMPRESSION_SAVED_BYTES = Counter(
    "rra_http_compression_saved_bytes_total",
    "Response body bytes not sent thanks to compression (original - compressed), by encoding.",
    ["encoding"],
)

# --- Database ------------------------------------------------------------------------------

SLOW_QUERIES = Counter(
    "rra_db_slow_queries_total",
    "Database queries that took SLOW_QUERY_MS or longer (web, worker and commands), by "
    "database alias.",
    ["db_alias"],
)

# --- Cache and rate limits ------------------------------------------------------------------

CACHE_REQUESTS = Counter(
    "rra_cache_requests_total",
    "Reads of application caches, by cache and result (hit, miss).",
    ["cache", "result"],
)
CONDITIONAL_GETS = Counter(
    "rra_http_conditional_total",
    "GETs of cacheable endpoints, by view and result: not_modified (304) or full (200).",
    ["view", "result"],
)
RATELIMIT_REJECTIONS = Counter(
    "rra_ratelimit_rejections_total",
    "Requests turned away by a rate limit, by limit group.",
    ["group"],
)

# --- Ingestion ------------------------------------------------------------------------------

_SLOW_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
INGEST_DOCUMENTS = Counter(
    "rra_ingest_documents_total",
    "Ingestion runs by outcome (ready, failed, retrying, superseded, skipped).",
    ["outcome"],
)
INGEST_PAGES = Counter("rra_ingest_pages_total", "Pages of documents that became ready.")
INGEST_CHUNKS = Counter("rra_ingest_chunks_total", "Chunks stored for documents that became ready.")
INGEST_STEP_SECONDS = Histogram(
    "rra_ingest_step_seconds",
    "Time of each ingestion step (extract, chunk, embed, store).",
    ["step"],
    buckets=_SLOW_BUCKETS,
)
INGEST_SECONDS = Histogram(
    "rra_ingest_duration_seconds",
    "Time of a whole ingestion run, by outcome.",
    ["outcome"],
    buckets=_SLOW_BUCKETS,
)

# --- Search and answers -----------------------------------------------------------------------

SEARCH_SECONDS = Histogram(
    "rra_search_duration_seconds",
    "Time of a search (query embedding, SQL and rerank), by mode.",
    ["mode"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
SEARCH_ERRORS = Counter("rra_search_errors_total", "Searches that raised, by mode.", ["mode"])
LLM_SECONDS = Histogram(
    "rra_llm_request_duration_seconds",
    "Time of an LLM answer stream, by provider and outcome (ok, error, cancelled).",
    ["provider", "outcome"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120),
)
LLM_FIRST_TOKEN_SECONDS = Histogram(
    "rra_llm_first_token_seconds",
    "Time until the first token of an answer, by provider.",
    ["provider"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
LLM_TOKENS = Counter(
    "rra_llm_tokens_total",
    "LLM tokens by provider and kind (prompt, completion).",
    ["provider", "kind"],
)

# --- Users: actions and conversions (rra/telemetry.py) ------------------------------------------

USER_ACTIONS = Counter(
    "rra_user_actions_total",
    "What people do, by action: upload (one per new document), question, vote_up, "
    "vote_down, share_chat (made public), share_document (shared).",
    ["action"],
)
CONVERSIONS = Counter(
    "rra_conversions_total",
    "People reaching a step of the funnel, by step: signup_requested (a new address "
    "asked for an account), signup (the account confirmed), first_upload and "
    "first_question (the first of that person's, found in the database).",
    ["step"],
)

# --- Housekeeping (rra/housekeeping.py) -------------------------------------------------------

HOUSEKEEPING_PRUNED = Counter(
    "rra_housekeeping_pruned_total",
    "Rows pruned by the worker's housekeeping, by kind (sessions, task_results).",
    ["kind"],
)

# --- Observability itself ---------------------------------------------------------------------

LOG_RECORDS_DROPPED = Counter(
    "rra_log_records_dropped_total",
    "Log lines not shipped to LOG_ENDPOINT, by reason (queue_full, endpoint_error).",
    ["reason"],
)
LOG_RECORDS_SHIPPED = Counter("rra_log_records_shipped_total", "Log lines shipped to LOG_ENDPOINT.")
METRICS_PUSH_FAILURES = Counter(
    "rra_metrics_push_failures_total", "Failed pushes to METRICS_ENDPOINT."
)

# --- Process (one series per live process in multiprocess mode) ------------------------------

PROCESS_RSS = Gauge(
    "rra_process_resident_memory_bytes",
    "Resident memory of the process.",
    multiprocess_mode="liveall",
)
PROCESS_CPU = Gauge(
    "rra_process_cpu_seconds",
    "CPU time (user + system) used by the process so far.",
    multiprocess_mode="liveall",
)
PROCESS_THREADS = Gauge(
    "rra_process_threads", "Threads of the process.", multiprocess_mode="liveall"
)
PROCESS_OPEN_FDS = Gauge(
    "rra_process_open_fds", "Open file descriptors of the process.", multiprocess_mode="liveall"
)


def update_process_gauges() -> None:
    import psutil

    process = psutil.Process()
    with process.oneshot():
        PROCESS_RSS.set(process.memory_info().rss)
        cpu = process.cpu_times()
        PROCESS_CPU.set(cpu.user + cpu.system)
        PROCESS_THREADS.set(process.num_threads())
        if hasattr(process, "num_fds"):
            PROCESS_OPEN_FDS.set(process.num_fds())


# --- Scrape-time metrics -----------------------------------------------------------------------


class DatabaseCollector:
    """Worker heartbeats and what the apps register (rra.registry.GAUGES: the ingestion
    queue), read from the database when scraped (small indexed queries); what cannot be
    read is left out and logged."""

    def collect(self) -> Iterator[Metric]:
        from rra import registry

        for gauges in registry.GAUGES:
            try:
                yield from gauges()
            except Exception as exc:
                logger.warning("metrics: %s could not be read: %s", gauges.__qualname__, exc)
        yield from self._workers()

    def _workers(self) -> Iterator[Metric]:
        from django.db.models import Count, Max, Q
        from django.utils import timezone

        from rra.models import WorkerHeartbeat

        now = timezone.now()
        try:
            beats = WorkerHeartbeat.objects.aggregate(
                alive=Count("pk", filter=Q(seen_at__gte=now - WorkerHeartbeat.stale_after())),
                latest=Max("seen_at"),
            )
        except Exception as exc:
            logger.warning("metrics: the worker heartbeats could not be read: %s", exc)
            return
        yield GaugeMetricFamily(
            "rra_workers_alive",
            "Background workers whose heartbeat is fresh (WORKER_HEARTBEAT_STALE_S).",
            value=beats["alive"],
        )
        if beats["latest"] is not None:
            yield GaugeMetricFamily(
                "rra_worker_heartbeat_age_seconds",
                "Seconds since the most recent worker heartbeat.",
                value=(now - beats["latest"]).total_seconds(),
            )


class ScrapeCollector:
    """Everything one scrape returns: this process's registry (or, in multiprocess
    mode, all processes' files), the process gauges, and the database metrics."""

    def __init__(self, *, multiproc_dir: str | None = None, database: bool = True) -> None:
        self.multiproc_dir = multiproc_dir or os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        self.database = database

    def collect(self) -> Iterator[Metric]:
        try:
            update_process_gauges()
        except Exception as exc:  # psutil missing or /proc unreadable
            logger.debug("process gauges not updated: %s", exc)
        if self.multiproc_dir:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=self.multiproc_dir)
            yield from registry.collect()
        else:
            yield from REGISTRY.collect()
        if self.database:
            yield from DatabaseCollector().collect()


def render(accept: str | None = None, **options: Any) -> tuple[bytes, str]:
    encoder, content_type = choose_encoder(accept or "")
    return encoder(ScrapeCollector(**options)), content_type  # type: ignore[arg-type]


# --- Access --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _networks(cidrs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


_PROXY_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")


def _token_from_file(path: str) -> str:
    """The token in METRICS_TOKEN_FILE, read at each scrape (a small file, every 15 s or
    so): it may be written after this process started, or replaced; "" while missing."""
    if not path:
        return ""
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def scrape_allowed(request) -> bool:
    """A valid METRICS_TOKEN bearer token, or a client address in
    METRICS_ALLOWED_NETWORKS. A request that came through a proxy RRA was not told
    about (TRUSTED_PROXY_COUNT=0) is judged by its token only: behind such a proxy every
    client would look like the proxy's (often loopback) address."""
    from django.conf import settings

    from rra.ratelimit import client_ip

    token = settings.METRICS_TOKEN or _token_from_file(settings.METRICS_TOKEN_FILE)
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            return True
    if not settings.TRUSTED_PROXY_COUNT and any(h in request.META for h in _PROXY_HEADERS):
        return False
    try:
        address = ipaddress.ip_address(client_ip(request))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in net for net in _networks(tuple(settings.METRICS_ALLOWED_NETWORKS)))


def metrics_view(request):
    from django.http import HttpResponse

    if not scrape_allowed(request):
        return HttpResponse(
            "Forbidden: send Authorization: Bearer <METRICS_TOKEN> or scrape from "
            "METRICS_ALLOWED_NETWORKS.\n",
            status=403,
            content_type="text/plain; charset=utf-8",
        )
    body, content_type = render(request.headers.get("Accept"))
    response = HttpResponse(body, content_type=content_type)
    response["Cache-Control"] = "no-store"
    return response


# --- Background: process gauges and pushing -----------------------------------------------------

_started_pid: int | None = None
_start_lock = threading.Lock()


def start_background() -> None:
    """Start this process's metric threads once (again in a forked child): the
    process gauges in multiprocess mode, and the push to METRICS_ENDPOINT when set."""
    global _started_pid
    if _started_pid == os.getpid():
        return
    with _start_lock:
        if _started_pid == os.getpid():
            return
        _started_pid = os.getpid()
        from django.conf import settings

        if MULTIPROCESS:
            threading.Thread(
                target=_update_process_gauges_forever,
                args=(settings.METRICS_PROCESS_INTERVAL_S,),
                name="process-metrics",
                daemon=True,
            ).start()
        if settings.METRICS_ENDPOINT:
            threading.Thread(
                target=push_forever,
                kwargs={
                    "endpoint": settings.METRICS_ENDPOINT,
                    "job": settings.METRICS_JOB,
                    "interval": settings.METRICS_PUSH_INTERVAL_S,
                },
                name="metrics-push",
                daemon=True,
            ).start()


def _update_process_gauges_forever(interval: float) -> None:
    while True:
        try:
            update_process_gauges()
        except Exception as exc:
            logger.debug("process gauges not updated: %s", exc)
            return
        time.sleep(interval)


_push_failing: dict[str, bool] = {}


def push_once(*, endpoint: str, job: str, timeout: float = 5.0) -> bool:
    """Push everything a scrape would return to a Prometheus pushgateway (PUT: it
    replaces this instance's group)."""
    from django.db import connection

    try:
        push_to_gateway(
            endpoint,
            job=job,
            registry=ScrapeCollector(),  # type: ignore[arg-type]
            grouping_key={"instance": socket.gethostname()},
            timeout=timeout,
        )
        if _push_failing.pop(endpoint, False):
            logger.info("metrics push to %s works again", endpoint)
        return True
    except Exception as exc:
        METRICS_PUSH_FAILURES.inc()
        # A warning when pushing starts failing, then quiet until it works again (a
        # compose stack without its monitoring profile has no pushgateway to reach).
        level = logging.DEBUG if _push_failing.get(endpoint) else logging.WARNING
        logger.log(level, "metrics push to %s failed: %s", endpoint, exc)
        _push_failing[endpoint] = True
        return False
    finally:
        connection.close()  # this thread's connection goes back to the pool


def push_forever(
    *, endpoint: str, job: str, interval: float, stop: threading.Event | None = None
) -> None:
    stop = stop or threading.Event()
    while not stop.wait(interval):
        push_once(endpoint=endpoint, job=job)


def samples(name: str, collector: Iterable[Metric] | None = None) -> dict[tuple, float]:
    """{label values: value} of one sample name (tests and debugging)."""
    metrics = collector if collector is not None else ScrapeCollector(database=False).collect()
    found = {}
    for metric in metrics:
        for sample in metric.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found
