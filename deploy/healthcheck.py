#!/usr/bin/env python
"""The container's HEALTHCHECK: GET /api/health/live on this container's own gunicorn.

Exit status 0 when it answers 200, 1 otherwise. Standard library only (no Django start-up
on every probe). The port comes from BIND (default 0.0.0.0:8000); the Host header is the
first usable name in ALLOWED_HOSTS, so Django accepts the probe in production too, where
ALLOWED_HOSTS names the public host and not 127.0.0.1.
"""

from __future__ import annotations

import http.client
import os
import sys


def target() -> tuple[int, str]:
    bind = os.environ.get("BIND", "").split(",")[0].strip() or "0.0.0.0:8000"
    port = int(bind.rsplit(":", 1)[1]) if ":" in bind and not bind.startswith("unix:") else 8000
    host = "localhost"
    for name in os.environ.get("ALLOWED_HOSTS", "").split(","):
        name = name.strip().lstrip(".")  # ".example.com" allows example.com itself
        if name and "*" not in name:
            host = name
            break
    return port, host


def main() -> int:
    port, host = target()
    timeout = float(os.environ.get("HEALTHCHECK_TIMEOUT", "4"))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/api/health/live", headers={"Host": host})
        status = conn.getresponse().status
    except OSError as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    finally:
        conn.close()
    if status != 200:
        print(f"unhealthy: /api/health/live answered {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
