#!/usr/bin/env bash
# The container's entry point (tini runs it; see Dockerfile).
#
#   web       nginx on $BIND (default 0.0.0.0:8000) in front of gunicorn with
#             deploy/gunicorn.conf.py on $UPSTREAM_BIND (default 127.0.0.1:8001), as
#             `make run` serves (deploy/front.py): nginx reads each request whole, so
#             slow clients cannot hold gunicorn's threads (issue 21). Further arguments
#             go to gunicorn. TRUSTED_PROXY_COUNT counts the proxies in front of the
#             container; the app is told one more (this nginx).
#             WEB_FRONT=none: gunicorn alone on $BIND (when something else buffers in
#             front, as front-prod does in docker-compose.yml)
#   worker    the background worker (manage.py worker); further arguments go to it
#   migrate   apply migrations, then exit
#   anything else is run as it is, e.g. `python manage.py createsuperuser`
#   (no command: web)
#
# First, for every command: wait for the database (DB_WAIT_TIMEOUT seconds, default 60)
# and apply migrations holding a PostgreSQL advisory lock, so that of many replicas
# starting together one migrates and the others wait (deploy/migrate_locked.py).
#   SKIP_MIGRATE=1          neither wait nor migrate
#   MIGRATE_ON_START=false  wait for the database but leave migrations to someone else
#                           (e.g. a one-off `migrate` job)
#
# The server is exec'd: it replaces this shell, so the SIGTERM that tini passes on reaches
# gunicorn (which finishes in-flight requests within GUNICORN_GRACEFUL_TIMEOUT) or the
# worker (which finishes its current task) directly.
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"

log() { echo "entrypoint: $*" >&2; }

is_true() {
  case "${1,,}" in
    1 | true | yes | on) return 0 ;;
    *) return 1 ;;
  esac
}

prepare_database() {
  if is_true "${SKIP_MIGRATE:-0}"; then
    log "SKIP_MIGRATE is set: not waiting for the database, not migrating"
    return
  fi
  local args=(--wait "${DB_WAIT_TIMEOUT:-60}")
  if ! is_true "${MIGRATE_ON_START:-true}"; then
    args+=(--no-migrate)
  fi
  "$PYTHON" deploy/migrate_locked.py "${args[@]}"
}

# prometheus_client's multiprocess mode: start from an empty directory, so that files of
# processes from a previous run of this container are not added to the new ones.
prepare_metrics_dir() {
  local dir="${PROMETHEUS_MULTIPROC_DIR:-}"
  if [ -n "$dir" ]; then
    mkdir -p "$dir"
    find "$dir" -mindepth 1 -maxdepth 1 -name '*.db' -delete
  fi
}

has_nginx() { command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; }

# nginx on $BIND in front of gunicorn on $UPSTREAM_BIND; a TERM or INT stops both
# (nginx stops accepting and finishes its requests, gunicorn its in-flight ones), and
# whichever exits first takes the other down with it.
serve_with_front() {
  local upstream="${UPSTREAM_BIND:-127.0.0.1:8001}"
  local web="" front="" signalled=0 stopping=0 status=0 web_status=0
  export TRUSTED_PROXY_COUNT=$((${TRUSTED_PROXY_COUNT:-0} + 1))
  # Once: a second TERM could reach a server that is already exiting (its handlers
  # gone) and kill it, so that it reports 143 instead of its own status.
  stop() {
    if [ "$stopping" = 1 ]; then return; fi
    if [ -n "$front" ] || [ -n "$web" ]; then stopping=1; fi
    if [ -n "$front" ]; then kill -QUIT "$front" 2>/dev/null || true; fi
    if [ -n "$web" ]; then kill -TERM "$web" 2>/dev/null || true; fi
  }
  # Before anything starts: a SIGTERM at any moment stops what runs.
  trap 'signalled=1; stop' TERM INT
  log "starting nginx on $BIND in front of gunicorn on $upstream"
  BIND="$upstream" "$PYTHON" -m gunicorn --config deploy/gunicorn.conf.py "$@" &
  web=$!
  "$PYTHON" deploy/front.py --listen "$BIND" --upstream "$upstream" \
    --prefix "${FRONT_PREFIX:-/tmp/rra-front}" &
  front=$!
  if [ "$signalled" = 1 ]; then
    stop
  fi
  wait -n "$web" "$front" || status=$?
  stop
  wait "$web" 2>/dev/null || web_status=$?
  wait "$front" 2>/dev/null || true
  if [ "$signalled" = 1 ]; then
    status=$web_status # told to stop: as gunicorn finished
  fi
  exit "$status"
}

if [ "$#" -eq 0 ]; then
  set -- web
fi

case "$1" in
  web)
    shift
    prepare_database
    prepare_metrics_dir
    export BIND="${BIND:-0.0.0.0:8000}"
    if [ "${WEB_FRONT:-nginx}" != none ]; then
      if has_nginx; then
        serve_with_front "$@"
      fi
      log "warning: nginx not found; gunicorn serves $BIND directly, and slow clients can hold its threads"
    fi
    log "starting gunicorn on $BIND"
    exec "$PYTHON" -m gunicorn --config deploy/gunicorn.conf.py "$@"
    ;;
  worker)
    shift
    prepare_database
    prepare_metrics_dir
    log "starting the background worker"
    exec "$PYTHON" manage.py worker "$@"
    ;;
  migrate)
    if is_true "${SKIP_MIGRATE:-0}"; then
      log "SKIP_MIGRATE is set: nothing to do"
      exit 0
    fi
    exec "$PYTHON" deploy/migrate_locked.py --wait "${DB_WAIT_TIMEOUT:-60}"
    ;;
  *)
    prepare_database
    exec "$@"
    ;;
esac
