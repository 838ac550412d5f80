"""Gunicorn settings (gthread workers; see DESIGN.md for why WSGI).

Every value can be set in the environment or in .env (the environment wins): BIND,
WEB_CONCURRENCY, GUNICORN_THREADS, GUNICORN_TIMEOUT, GUNICORN_GRACEFUL_TIMEOUT,
GUNICORN_KEEPALIVE, GUNICORN_MAX_REQUESTS.

Logging: gunicorn's own lines use RRA's formatter (LOG_LEVEL, LOG_FORMAT; read from the
environment or .env like the settings do); its access log is off because the request
middleware writes one access line per request, with the request id.

Metrics: with more than one worker, prometheus_client's multiprocess mode needs a
directory shared by the workers: PROMETHEUS_MULTIPROC_DIR, or a fresh temporary one.
It is emptied of dead processes' files at start, and each worker that exits is marked
dead (its live gauges disappear; its counters are kept).
"""

import os
import shutil
import tempfile
from pathlib import Path

from dotenv import dotenv_values

from rra.env import Env

ROOT = Path(__file__).resolve().parent.parent
_env_file = os.environ.get("ENV_FILE", str(ROOT / ".env"))
# Every value comes from the environment or from .env, as in rra/settings.py (the
# environment wins), as .env.example lists them.
env = Env({**(dotenv_values(_env_file) if _env_file else {}), **os.environ})
obs_env = env

bind = env.str("BIND", "127.0.0.1:8000")
workers = env.int("WEB_CONCURRENCY", 2, min=1)
# The workers inherit it: settings refuse a per-process cache when more than one serves.
os.environ["RRA_WEB_PROCESSES"] = str(workers)
# gthread that accepts a connection only while it has a free thread, so a burst of
# answer streams spreads over the workers instead of queueing in one (rra/webworker.py).
worker_class = "rra.webworker.ThreadWorker"
# Each open answer stream holds a thread while it waits on Redis (and no database
# connection): 128 per worker serve 200+ streams on 2 workers with room for the other
# routes, whose concurrency the pool (DB_POOL_MAX_SIZE) bounds (bench/README.md, streams).
threads = env.int("GUNICORN_THREADS", 128, min=1)
# Settings keep a share of them free of event streams (STREAM_READERS_PER_PROCESS).
os.environ["RRA_WEB_THREADS"] = str(threads)
# With gthread the timeout is a worker heartbeat, not a limit on a streaming response.
timeout = env.int("GUNICORN_TIMEOUT", 60, min=1)
graceful_timeout = env.int("GUNICORN_GRACEFUL_TIMEOUT", 30, min=1)
keepalive = env.int("GUNICORN_KEEPALIVE", 5, min=0)
# Off by default: a recycled worker loads the embedding model again (seconds of CPU),
# and bench/load.py's soak shows the workers' memory flat without recycling. Set it to
# recycle workers after that many requests (with 10 % jitter).
max_requests = env.int("GUNICORN_MAX_REQUESTS", 0, min=0)
max_requests_jitter = max_requests // 10
accesslog = None  # the middleware writes the access lines
errorlog = "-"
wsgi_app = "rra.wsgi:application"

_debug = obs_env.bool("DEBUG", False)
loglevel = obs_env.str(
    "LOG_LEVEL", "INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
).lower()


def _logconfig() -> dict:
    from rra.logs import logging_config

    return logging_config(
        level=loglevel.upper(),
        fmt=obs_env.str("LOG_FORMAT", "console" if _debug else "json", choices=("json", "console")),
    )


logconfig_dict = _logconfig()


def _logger_class():
    from gunicorn.glogging import Logger

    class NoAccessLogger(Logger):
        """Gunicorn formats an access line for every request whenever a logging config is
        set, even with accesslog off; RequestObservabilityMiddleware writes ours."""

        def access(self, resp, req, environ, request_time) -> None:
            return None

    return NoAccessLogger


logger_class = _logger_class()

# Before any worker imports prometheus_client (workers inherit the environment).
_multiproc_dir = obs_env.str("PROMETHEUS_MULTIPROC_DIR")
_multiproc_dir_is_ours = False
if _multiproc_dir:
    _multiproc_dir = str(ROOT / _multiproc_dir)
elif workers > 1:
    _multiproc_dir = tempfile.mkdtemp(prefix="rra-prometheus-")
    _multiproc_dir_is_ours = True
if _multiproc_dir:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _multiproc_dir


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_multiproc_dir(path: str) -> list[str]:
    """Remove the metric files of processes that are gone (a previous run's); a worker
    (manage.py worker) sharing the directory keeps its files. Returns the removed names."""
    os.makedirs(path, exist_ok=True)
    removed = []
    for entry in os.scandir(path):
        pid = entry.name.removesuffix(".db").rpartition("_")[2]
        if not entry.name.endswith(".db") or not pid.isdigit():
            continue
        if not _pid_alive(int(pid)):
            os.remove(entry.path)
            removed.append(entry.name)
    return removed


def on_starting(server):
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        removed = clean_multiproc_dir(path)
        server.log.info("metrics: multiprocess dir %s (%d stale files removed)", path, len(removed))


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _multiproc_dir_is_ours:
        shutil.rmtree(_multiproc_dir, ignore_errors=True)


def post_worker_init(worker):
    """Warm up in the background while requests are served: load the migration graph
    (so the first readiness probe is fast too), then the embedding model (so the first
    search does not wait for it)."""
    import threading

    def warm():
        try:
            from rra.health import check_migrations

            check_migrations()
        except Exception as exc:  # readiness reports it; nothing to do here
            worker.log.warning("migration check warm-up failed: %s", exc)
        try:
            from documents.embeddings import get_provider

            get_provider().warm_up()
        except Exception as exc:  # the worker still serves; searches will retry the load
            worker.log.warning("embedding warm-up failed: %s", exc)

    threading.Thread(target=warm, name="warm-up", daemon=True).start()
