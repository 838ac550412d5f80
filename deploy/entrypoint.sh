#!/usr/bin/env bash
# The container's entry point (tini runs it; see Dockerfile).
#
#   web       gunicorn with deploy/gunicorn.conf.py on $BIND (default 0.0.0.0:8000);
#             further arguments go to gunicorn
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

if [ "$#" -eq 0 ]; then
  set -- web
fi

case "$1" in
  web)
    shift
    prepare_database
    prepare_metrics_dir
    export BIND="${BIND:-0.0.0.0:8000}"
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
