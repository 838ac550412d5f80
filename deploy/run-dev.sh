#!/usr/bin/env bash
# `make run`: gunicorn and the background worker side by side; Ctrl-C stops both.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python

$PY manage.py worker &
worker=$!
.venv/bin/gunicorn --config deploy/gunicorn.conf.py &
web=$!

stop() {
  kill -TERM "$web" "$worker" 2>/dev/null
  wait "$web" "$worker" 2>/dev/null
}
trap 'stop; exit 0' INT TERM
# Whichever exits first takes the other down with it.
wait -n "$web" "$worker"
status=$?
stop
exit "$status"
