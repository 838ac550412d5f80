# Two commands on a fresh machine:  make run  |  make test
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
PIP_VERSION := 26.3

# Settings for the checks that run outside pytest (pytest sets its own, see
# rra/testing/pytest_plugin.py). ENV_FILE= keeps a developer's .env out of them;
# EMBEDDED_REDIS=false: they start no private Redis (db-stop stops it without one;
# Redis first, since any manage.py command starts the embedded PostgreSQL).
CHECK_ENV := ENV_FILE= DEBUG=true EMBEDDED_REDIS=false
DEPLOY_ENV := ENV_FILE= DEBUG=false SECRET_KEY=$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(50))') \
	ALLOWED_HOSTS=rra.example.com CSRF_TRUSTED_ORIGINS=https://rra.example.com \
	REDIS_URL=redis://127.0.0.1:6379/0

.PHONY: help setup run test lint format check-deploy deploy-check worker db-stop clean redis-server chromium nginx bench-load

help:
	@echo "make run    set everything up and serve http://127.0.0.1:8000, or BIND (web + worker)"
	@echo "make test   set everything up and run lint, checks and the whole test suite"
	@echo "make format apply ruff's formatting and safe fixes"
	@echo "make db-stop stop the embedded PostgreSQL and the private Redis"
	@echo "make bench-load  HTTP load benchmark (bench/README.md; BENCH_LOAD_ARGS=\"--scale 0.05\")"

$(PY):
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "RRA needs Python 3.11, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet pip==$(PIP_VERSION)

# Reinstall only when requirements.txt changes.
$(INSTALLED): requirements.txt | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

# A first `make run` writes a development .env (DEBUG on, a random SECRET_KEY).
.env:
	@printf '# Written by `make run` for local development; see .env.example.\nDEBUG=true\nSECRET_KEY=%s\n' \
		"$$(python3 -c 'import secrets; print(secrets.token_urlsafe(50))')" > .env
	@echo "wrote .env for development (DEBUG=true)"

setup: $(INSTALLED) .env
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0

run: setup nginx
	@deploy/run-dev.sh

worker: setup
	$(PY) manage.py worker

redis-server:
	@command -v redis-server >/dev/null || { \
		if [ "$${CI:-}" = "true" ]; then apt-get update -qq && apt-get install -y -qq redis-server; \
		else echo "note: redis-server not found; tests that need Redis will be skipped"; fi; }

# The front server of `make run` (deploy/run-dev.sh, deploy/front.py): Debian's nginx,
# installed when missing and the user may (root or CI); without it gunicorn serves alone.
nginx:
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || { \
		if [ "$$(id -u)" = 0 ] || [ "$${CI:-}" = "true" ]; then apt-get update -qq && apt-get install -y -qq nginx-light; \
		else echo "note: nginx not found (apt-get install nginx-light); gunicorn will serve without a front server"; fi; }

# Browser tests drive Debian's chromium (never a downloaded browser build).
chromium:
	@test -x /usr/bin/chromium || { \
		if [ "$${CI:-}" = "true" ]; then apt-get update -qq && apt-get install -y -qq chromium; \
		else echo "note: /usr/bin/chromium not found; browser tests will be skipped"; fi; }

lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(INSTALLED)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

check-deploy: $(INSTALLED)
	$(CHECK_ENV) $(PY) manage.py makemigrations --check --dry-run
	$(DEPLOY_ENV) $(PY) manage.py check --deploy --fail-level WARNING

# Dockerfile, docker-compose.yml, Prometheus and Grafana files, offline (deploy/check.sh).
deploy-check: $(INSTALLED)
	@deploy/check.sh

test: $(INSTALLED) redis-server chromium nginx lint check-deploy deploy-check
	$(PY) -m pytest

# HTTP load benchmark (bench/load.py, bench/README.md); not part of `make test`. Needs
# wrk and redis-server (installed from Debian when missing). Options, e.g.:
#   make bench-load BENCH_LOAD_ARGS="--scale 0.05 --duration 10 --soak 30"
bench-load: $(INSTALLED)
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
	@command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server; }
	$(PY) bench/load.py $(BENCH_LOAD_ARGS)

db-stop: $(INSTALLED)
	$(CHECK_ENV) $(PY) manage.py embedded_redis stop
	$(CHECK_ENV) $(PY) manage.py embedded_db stop

clean:
	rm -rf var/static .pytest_cache .ruff_cache
