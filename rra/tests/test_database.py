import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from rra import dbpool

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_connections_come_from_a_pool_as_the_plan_sets_it():
    options = settings.DATABASES["default"]["OPTIONS"]
    assert options["pool"] == {
        "min_size": 2,
        "max_size": 20,
        "max_idle": 20.0,
        "timeout": 10.0,
        "max_reconnect_delay": 1.0,
    }
    assert options["connect_timeout"] == 10
    assert settings.DATABASES["default"]["CONN_HEALTH_CHECKS"] is True
    assert settings.DATABASES["default"]["ATOMIC_REQUESTS"] is False
    connection.ensure_connection()
    assert connection.pool is not None and connection.pool.max_size == 20
    # rra.dbpool's pool (reconnection delay capped, rra/tests/test_db_pool.py).
    assert isinstance(connection.pool, dbpool.ConnectionPool)
    assert connection.pool.max_reconnect_delay == 1.0
    # No server-side prepared statements (PgBouncer in transaction mode).
    assert connection.connection.prepare_threshold is None


@pytest.mark.django_db
def test_pgvector_is_installed_by_a_migration():
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        (version,) = cursor.fetchone()
        cursor.execute("SELECT '[1,2,3]'::vector <=> '[1,2,4]'::vector")
        assert cursor.fetchone()[0] > 0
    major, minor = (int(x) for x in version.split(".")[:2])
    assert (major, minor) >= (0, 8)


@pytest.mark.skipif(bool(settings.DATABASE_URL), reason="an external database is configured")
def test_the_embedded_server_starts_once_when_many_processes_start_together(tmp_path):
    pgdata = tmp_path / "pgdata"
    code = (
        "import django; django.setup(); from django.db import connection;"
        "c = connection.cursor(); c.execute('select current_database()'); print(c.fetchone()[0])"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "POSTGRES_URL")}
    env.update(
        {"ENV_FILE": "", "DJANGO_SETTINGS_MODULE": "rra.settings", "EMBEDDED_PG_DIR": str(pgdata)}
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    try:
        outputs = [p.communicate(timeout=180) for p in procs]
        for proc, (out, err) in zip(procs, outputs, strict=True):
            assert proc.returncode == 0, err
            assert out.strip() == "rra"
        postmasters = (pgdata / "postmaster.pid").read_text().splitlines()
        assert postmasters and postmasters[0].isdigit()
    finally:
        stop = subprocess.run(
            [sys.executable, "manage.py", "embedded_db", "stop"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert stop.returncode == 0, stop.stderr
    assert not (pgdata / "postmaster.pid").exists()


def test_importing_the_settings_starts_nothing(tmp_path):
    # No database URL and no Redis URL: both servers would be the private ones, in
    # folders of their own here. Reading the settings must start neither: they start on
    # the first connection (PostgreSQL) and at django.setup() (Redis).
    pgdata, redis_dir = tmp_path / "pg", tmp_path / "redis"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "POSTGRES_URL", "REDIS_URL")
    }
    env.update(
        {
            "ENV_FILE": "",
            "DEBUG": "true",
            "EMBEDDED_REDIS": "true",
            "EMBEDDED_PG_DIR": str(pgdata),
            "EMBEDDED_REDIS_DIR": str(redis_dir),
        }
    )
    code = (
        "import rra.settings as s; "
        "print(s.DATABASES['default']['ENGINE'], s.DATABASES['default']['HOST'] or '-', s.REDIS_URL)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    engine, host, redis_url = done.stdout.split()
    assert (engine, host) == ("rra.embedded_db", "-")
    assert redis_url == f"unix://{redis_dir.resolve()}/redis.sock?db=0"
    # Nothing was started: no data folder, no socket, no pid file, no server process.
    assert not pgdata.exists() and not redis_dir.exists()
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
    assert str(tmp_path) not in ps.stdout


def _postmaster_pid(pgdata: Path, pid: int, status: str) -> None:
    # postmaster.pid as PostgreSQL writes it: pid, data dir, start time, port, socket
    # folder, listen address, shared memory, status.
    lines = [str(pid), str(pgdata), "1712346200", "5432", str(pgdata), "", "1 2", status]
    (pgdata / "postmaster.pid").write_text("\n".join(lines) + "\n")


def test_a_server_still_stopping_is_waited_for_before_it_is_started_again(tmp_path):
    """A restart under load failed in CI: the old postmaster was still shutting down
    ("stopping" in postmaster.pid, its process alive) when the new process asked
    pgserver for the server, which took it for running and asserted it was "ready".
    embedded_db.settled waits until it is ready or gone, and not for a ready one."""
    import threading

    from rra import embedded_db

    pgdata = tmp_path / "pgdata"
    pgdata.mkdir()
    stopping = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _postmaster_pid(pgdata, stopping.pid, "stopping")
        waiter = threading.Thread(target=embedded_db.settled, args=(pgdata, 30.0))
        waiter.start()
        waiter.join(1.5)
        assert waiter.is_alive()  # still waiting: the old server has not gone
        stopping.kill()
        stopping.wait()
        waiter.join(10)
        assert not waiter.is_alive()  # gone: settled
        ready = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            _postmaster_pid(pgdata, ready.pid, "ready")
            waiter = threading.Thread(target=embedded_db.settled, args=(pgdata, 30.0))
            waiter.start()
            waiter.join(10)
            assert not waiter.is_alive()  # a ready server is not waited for
        finally:
            ready.kill()
            ready.wait()
    finally:
        stopping.kill()
        stopping.wait()
