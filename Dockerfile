# syntax=docker/dockerfile:1
# RRA: one image for the web server and the background worker, in two build targets.
#
#   production (the last stage, so the default): runtime requirements only, the code
#     copied in, static files collected, gunicorn
#   development: every requirement (tests and lint included), manage.py runserver with
#     its autoreload; docker-compose.yml mounts the source over /app
#
#   docker build -t rra .                                     # production
#   docker build --target development -t rra:dev .
#   docker run --rm -p 8000:8000 -e DATABASE_URL=... -e SECRET_KEY=... rra          # web (nginx + gunicorn)
#   docker run --rm -e DATABASE_URL=... -e SECRET_KEY=... rra worker                # worker
#
# deploy/entrypoint.sh waits for the database, applies migrations under a lock (one
# replica migrates, the others wait) and then runs `web` (nginx in front of gunicorn), `worker`,
# `migrate` (and exit) or any other command. docker-compose.yml runs the whole stack.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: a wheel for every runtime requirement -------------------------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /build
COPY requirements.txt .

# 1. Runtime packages only: requirements.txt ends with the test and lint tools, from the
#    line "# Test and lint" on; the image does not need them.
# 2. torch is the CPU build. PyPI's Linux torch wheel pulls in some 3 GB of CUDA
#    libraries; PyTorch's own CPU index serves the same release as "X+cpu". The pin in
#    requirements.txt stays plain (torch==X) because a developer machine installs X+cpu
#    from a local wheel, which that pin matches; only this build rewrites it to
#    torch==X+cpu, so a missing CPU wheel fails the build instead of quietly installing
#    the CUDA one. Only torch itself comes from PyTorch's index (--no-deps); everything
#    else, torch's dependencies included, comes from PyPI, which finds torch==X+cpu among
#    the wheels already built (--find-links).
# 3. --only-binary: every requirement ships wheels, so the builder needs no compiler.
RUN sed -e '/^# Test and lint/,$d' \
        -e 's/^torch==\([0-9][0-9.]*\)$/torch==\1+cpu/' \
        requirements.txt > requirements-runtime.txt \
    && grep -q '^torch==[0-9.]*+cpu$' requirements-runtime.txt \
    && pip wheel --only-binary=:all: --no-deps --wheel-dir /wheels \
        --index-url https://download.pytorch.org/whl/cpu \
        "$(grep '^torch==' requirements-runtime.txt)" \
    && pip wheel --only-binary=:all: --wheel-dir /wheels --find-links /wheels \
        -r requirements-runtime.txt

# --- builder-dev: wheels for the test and lint tools too ----------------------------------
FROM builder AS builder-dev
RUN sed -e 's/^torch==\([0-9][0-9.]*\)$/torch==\1+cpu/' requirements.txt > requirements-dev.txt \
    && pip wheel --only-binary=:all: --wheel-dir /wheels --find-links /wheels \
        -r requirements-dev.txt

# --- base: what both targets share ------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS base

# tini is PID 1: it reaps zombies (extraction runs in child processes) and passes
# SIGTERM on to the entrypoint, which has exec'd the worker by then, or runs `web`:
# Debian's nginx (deploy/front.py) in front of gunicorn, so slow clients wait in nginx,
# not in gunicorn's threads (issue 21; WEB_FRONT=none serves gunicorn alone).
# Not version-pinned: Debian's security updates to tini and nginx should land on a rebuild.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini nginx-light \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 rra \
    && useradd --system --uid 10001 --gid rra --home-dir /home/rra --create-home \
        --shell /usr/sbin/nologin rra

# ENV_FILE="": configuration comes from the environment only, no .env file is read.
# PROMETHEUS_MULTIPROC_DIR: prometheus_client's multiprocess files (docker-compose.yml
# mounts a tmpfs on /tmp). HF_HUB_OFFLINE: the embedding model ships in a wheel, nothing
# is fetched from a model hub.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    ENV_FILE="" \
    BIND=0.0.0.0:8000 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/rra-metrics \
    HF_HUB_OFFLINE=1 \
    HF_HUB_DISABLE_TELEMETRY=1

WORKDIR /app
ENTRYPOINT ["/usr/bin/tini", "--", "/app/deploy/entrypoint.sh"]
EXPOSE 8000
# Liveness only (no database): /api/health/ready is for the load balancer.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "/app/deploy/healthcheck.py"]

# --- development ------------------------------------------------------------------------------
FROM base AS development

COPY --from=builder-dev /build/requirements-dev.txt /tmp/requirements-dev.txt
RUN --mount=type=bind,from=builder-dev,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels -r /tmp/requirements-dev.txt \
    && rm /tmp/requirements-dev.txt

# The code is copied too, so the image runs on its own; docker-compose.yml mounts the
# working tree over it. DEBUG serves static files from the source (no collectstatic).
COPY . .
RUN mkdir -p var/media && chown rra:rra var var/media
ENV DEBUG=true
USER 10001:10001
# The entry point migrates first, then runs this (reloads when a .py file changes).
CMD ["python", "manage.py", "runserver", "0.0.0.0:8000"]

# --- production (last: the default target) ---------------------------------------------------
FROM base AS production

# The release Sentry and the logs report (the image has no .git to read it from), e.g.
# docker build --build-arg RELEASE=rra@$(git rev-parse --short=12 HEAD) .
ARG RELEASE=""
ENV RELEASE=${RELEASE}

# The wheels are bind-mounted from the builder, so they never become a layer.
COPY --from=builder /build/requirements-runtime.txt /tmp/requirements-runtime.txt
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels -r /tmp/requirements-runtime.txt \
    && rm /tmp/requirements-runtime.txt

# The code belongs to root and is read-only for the app user.
COPY . .

# Static files (hashed names, gzip + brotli copies) are collected at build time. Settings
# must load for that: DEBUG skips the SECRET_KEY requirement, and a dummy DATABASE_URL
# keeps the embedded PostgreSQL from starting (settings only parse the URL; collectstatic
# never connects). An empty PROMETHEUS_MULTIPROC_DIR keeps settings from creating that
# directory (as root) in the image. None of these values stays in the image.
RUN DEBUG=true DATABASE_URL=postgres://build@127.0.0.1:1/build PROMETHEUS_MULTIPROC_DIR='' \
        python manage.py collectstatic --noinput --verbosity 0 \
    && mkdir -p var/media var/pgdata \
    && chown rra:rra var var/media var/pgdata

USER 10001:10001

CMD ["web"]
