"""The front server of `make run`, the tests and bench/hostile.py: nginx from the
template deploy/nginx/rra.conf.template (the one the production compose stack uses),
in a prefix directory of its own, in the foreground.

    python deploy/front.py --listen 127.0.0.1:8000 --upstream 127.0.0.1:8001 \\
        --prefix var/nginx [--max-body-mb N]

renders <prefix>/nginx.conf and execs nginx on it (stops with SIGTERM/SIGQUIT like nginx).
Needs Debian's nginx (`make run` installs it when missing).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent / "nginx" / "rra.conf.template"

MAIN = """\
# Written by deploy/front.py; see deploy/nginx/rra.conf.template.
daemon off;
master_process on;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log stderr warn;
{user}
events {{
    # Every proxied request holds two connections; slow clients hold one each.
    worker_connections 4096;
}}

http {{
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    default_type application/octet-stream;

{server}
}}
"""


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


def default_max_body_mb() -> int:
    """One upload request's largest body: MAX_UPLOAD_FILES files of MAX_UPLOAD_SIZE_MB
    (from the environment or .env, as the settings read them) and room for the envelope."""
    from dotenv import dotenv_values

    root = Path(__file__).resolve().parent.parent
    env_file = os.environ.get("ENV_FILE", str(root / ".env"))
    values = {**(dotenv_values(env_file) if env_file else {}), **os.environ}
    size = int(values.get("MAX_UPLOAD_SIZE_MB") or 50)
    files = int(values.get("MAX_UPLOAD_FILES") or 20)
    return size * files + 10


def render(*, listen: str, upstream: str, prefix: Path, max_body_mb: int | None = None) -> Path:
    """Write <prefix>/nginx.conf; return its path."""
    if max_body_mb is None:
        max_body_mb = default_max_body_mb()
    prefix = prefix.resolve()
    prefix.mkdir(parents=True, exist_ok=True)
    values = {"RRA_LISTEN": listen, "RRA_UPSTREAM": upstream, "RRA_MAX_BODY": f"{max_body_mb}m"}
    # Like the nginx image's envsubst: only these ${NAMES}; nginx's own $variables stay.
    server = re.sub(r"\$\{(RRA_[A-Z_]+)\}", lambda m: values[m[1]], TEMPLATE.read_text())
    # As root, nginx's workers would run as nobody; they keep the caller's user instead
    # (the temp directories are the caller's).
    user = "user root;" if os.geteuid() == 0 else ""
    conf = prefix / "nginx.conf"
    conf.write_text(
        MAIN.format(prefix=prefix, user=user, server="    " + server.replace("\n", "\n    "))
    )
    return conf


def command(conf: Path) -> list[str]:
    binary = nginx_binary()
    if binary is None:
        raise SystemExit("nginx not found (Debian: apt-get install nginx-light)")
    return [binary, "-p", str(conf.parent), "-c", str(conf), "-e", "stderr"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--prefix", type=Path, required=True)
    parser.add_argument("--max-body-mb", type=int, default=None)
    args = parser.parse_args()
    conf = render(
        listen=args.listen, upstream=args.upstream, prefix=args.prefix, max_body_mb=args.max_body_mb
    )
    argv = command(conf)
    os.execv(argv[0], argv)  # noqa: S606 (a fixed argv: nginx and its own files)


if __name__ == "__main__":
    main()
