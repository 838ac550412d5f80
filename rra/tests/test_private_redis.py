"""Without REDIS_URL every process of a run (web workers, task worker) shares one private
Redis (rra/embedded_redis.py); a per-process cache is refused when several processes serve.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from accounts.models import ApiToken
from chats.models import Chat
from rra import embedded_redis
from rra.tests.test_query_cache import Peer

ROOT = Path(__file__).resolve().parents[2]


def _env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_"))}
    env.pop("REDIS_URL", None)
    env.pop("RRA_WEB_PROCESSES", None)  # left by a test that loads gunicorn.conf.py
    env.update({"ENV_FILE": "", "DJANGO_SETTINGS_MODULE": "rra.settings", "EMBEDDED_REDIS": "true"})
    env.update(overrides)
    return env


@pytest.fixture
def redis_dir(tmp_path):
    folder = tmp_path / "r"  # short: a unix socket's path is limited to 107 bytes
    yield folder
    embedded_redis.stop(folder)


def test_every_process_of_a_run_shares_one_private_redis_until_stopped(redis_dir):
    code = (
        "import django; django.setup(); from django.conf import settings;"
        "from django.core.cache import caches; import os;"
        "caches['default'].set(f'pid:{os.getpid()}', 1, 60);"
        "print(settings.REDIS_URL, len(caches['default'].keys('pid:*')))"
    )
    env = _env(EMBEDDED_REDIS_DIR=str(redis_dir))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=120)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert {url for url, _ in outputs} == {embedded_redis.url(redis_dir)}
    # One server: the last process to write saw the keys of the others.
    assert max(int(seen) for _, seen in outputs) == 3
    sock = redis_dir / embedded_redis.SOCKET_NAME
    assert stat.S_IMODE(sock.stat().st_mode) == 0o700  # this user only; no TCP port

    stop = subprocess.run(
        [sys.executable, "manage.py", "embedded_redis", "stop"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert stop.returncode == 0, stop.stderr
    assert stop.stdout.strip() == "stopped"
    assert not embedded_redis._answers(sock)
    assert (redis_dir / "dump.rdb").exists()  # its data stays in its folder


@pytest.mark.django_db(transaction=True)
def test_a_revoked_token_and_a_changed_row_reach_a_second_process_of_a_run(owner, redis_dir):
    make_run = {"REDIS_URL": None, "EMBEDDED_REDIS": "true", "EMBEDDED_REDIS_DIR": str(redis_dir)}
    web, worker = Peer(**make_run), Peer(**make_run)
    try:
        for process in (web, worker):
            assert process(op="redis") == {
                "url": embedded_redis.url(redis_dir),
                "backends": ["django_redis.cache.RedisCache"],
            }
        token = ApiToken.issue(user=owner, name="cli")[1]
        chat = Chat.objects.create(owner=owner, title="One")

        # The first process caches the token's user and the list...
        listed = web(op="list", token=token)
        assert listed["status"] == 200
        assert [c["title"] for c in listed["body"]["results"]] == ["One"]
        # ...the second changes the row and revokes the token...
        assert worker(op="rename", chat=chat.pk, title="Two") == {"updated": 1}
        assert [c["title"] for c in web(op="list", token=token)["body"]["results"]] == ["Two"]
        assert worker(op="revoke", token=token) == {"revoked": 1}
        # ...and the first sees both at once.
        assert web(op="list", token=token)["status"] == 401
    finally:
        web.close()
        worker.close()


def test_a_per_process_cache_is_refused_when_more_than_one_process_serves():
    started = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=_env(EMBEDDED_REDIS="false", RRA_WEB_PROCESSES="2", DEBUG="true"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert started.returncode != 0
    assert "ImproperlyConfigured: 2 web processes serve the site" in started.stderr
    assert "Set REDIS_URL" in started.stderr

    worker = subprocess.run(
        [sys.executable, "manage.py", "worker"],
        cwd=ROOT,
        env=_env(EMBEDDED_REDIS="false", DEBUG="true"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert worker.returncode != 0
    assert "a task worker runs beside the web" in worker.stderr


def test_one_process_may_keep_its_cache_in_memory_and_a_shared_one_passes():
    local = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    with pytest.raises(ImproperlyConfigured, match="REDIS_URL"):
        embedded_redis.refuse_local_memory_cache(local, why="two processes")
    embedded_redis.refuse_local_memory_cache(
        {"default": {"BACKEND": "django_redis.cache.RedisCache"}}, why="two processes"
    )
