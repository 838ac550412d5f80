#!/usr/bin/env bash
# `make run`: nginx in front (deploy/front.py), gunicorn behind it and the background
# worker side by side; Ctrl-C stops them all.
#
# nginx listens on BIND (default 127.0.0.1:8000) and reads every request whole before
# gunicorn (on UPSTREAM_BIND, default 127.0.0.1:8001) sees it, so slow clients cannot
# hold gunicorn's threads (deploy/nginx/rra.conf.template). Without nginx (the Makefile
# installs Debian's when it can), gunicorn serves BIND itself, with a warning.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
# BIND and UPSTREAM_BIND from the environment, else from .env (as the settings read it).
setting() {
  $PY -c 'import os, sys
from dotenv import dotenv_values
path = os.environ.get("ENV_FILE", ".env")
values = dotenv_values(path) if path and os.path.exists(path) else {}
print(os.environ.get(sys.argv[1]) or values.get(sys.argv[1]) or sys.argv[2])' "$1" "$2"
}
listen="$(setting BIND 127.0.0.1:8000)"
# Ctrl-C: gunicorn waits up to this long for its workers, whose threads may be holding
# answer streams open (30 s in production); in development a few seconds are enough.
export GUNICORN_GRACEFUL_TIMEOUT="$(setting GUNICORN_GRACEFUL_TIMEOUT 3)"
upstream="$(setting UPSTREAM_BIND 127.0.0.1:8001)"
echo
echo "  RRA is starting on http://${listen}  (web + background worker; Ctrl-C stops both)"
echo "  Create an admin account:  $PY manage.py createsuperuser"
echo

$PY manage.py worker &
worker=$!
pids=("$worker")
if command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; then
  # The app trusts one proxy's X-Forwarded-For (rate limits key on the client address).
  BIND="$upstream" TRUSTED_PROXY_COUNT=1 .venv/bin/gunicorn --config deploy/gunicorn.conf.py &
  pids+=("$!")
  $PY deploy/front.py --listen "$listen" --upstream "$upstream" --prefix var/nginx &
  pids+=("$!")
else
  echo "warning: nginx not found; gunicorn serves $listen directly, and slow clients can hold its threads" >&2
  BIND="$listen" .venv/bin/gunicorn --config deploy/gunicorn.conf.py &
  pids+=("$!")
fi

stop() {
  kill -TERM "${pids[@]}" 2>/dev/null
  wait "${pids[@]}" 2>/dev/null
}
trap 'stop; exit 0' INT TERM
# Whichever exits first takes the others down with it.
wait -n "${pids[@]}"
status=$?
stop
exit "$status"
