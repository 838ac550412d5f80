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
listen="${BIND:-127.0.0.1:8000}"
upstream="${UPSTREAM_BIND:-127.0.0.1:8001}"

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
