"""Gunicorn settings (gthread workers; see DESIGN.md for why WSGI).

Every value can be set from the environment: BIND, WEB_CONCURRENCY, GUNICORN_THREADS,
GUNICORN_TIMEOUT, GUNICORN_GRACEFUL_TIMEOUT, GUNICORN_KEEPALIVE, GUNICORN_MAX_REQUESTS.
"""

import os

from rra.env import Env

env = Env(os.environ)

bind = env.str("BIND", "127.0.0.1:8000")
workers = env.int("WEB_CONCURRENCY", 2, min=1)
worker_class = "gthread"
threads = env.int("GUNICORN_THREADS", 4, min=1)
# With gthread the timeout is a worker heartbeat, not a limit on a streaming response.
timeout = env.int("GUNICORN_TIMEOUT", 60, min=1)
graceful_timeout = env.int("GUNICORN_GRACEFUL_TIMEOUT", 30, min=1)
keepalive = env.int("GUNICORN_KEEPALIVE", 5, min=0)
max_requests = env.int("GUNICORN_MAX_REQUESTS", 2000, min=0)
max_requests_jitter = max_requests // 10
accesslog = "-"
errorlog = "-"
wsgi_app = "rra.wsgi:application"


def post_worker_init(worker):
    """Load the embedding model in the background so the first search does not wait
    for it (requests are served meanwhile)."""
    import threading

    def warm():
        try:
            from documents.embeddings import get_provider

            get_provider().warm_up()
        except Exception as exc:  # the worker still serves; searches will retry the load
            worker.log.warning("embedding warm-up failed: %s", exc)

    threading.Thread(target=warm, name="warm-up", daemon=True).start()
