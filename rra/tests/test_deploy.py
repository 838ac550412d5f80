"""The container's start-up, outside Docker: deploy/entrypoint.sh, deploy/migrate_locked.py,
deploy/healthcheck.py and gunicorn with deploy/gunicorn.conf.py, against a fresh database
on the test session's PostgreSQL (DATABASE_URL, as in a container)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from django.conf import settings
from psycopg import sql

from rra.testing.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = str(ROOT / "deploy/entrypoint.sh")
GRACEFUL_TIMEOUT = 10
MIGRATION_LOCK = 0x5252_415F_4D49_4752  # deploy/migrate_locked.py's LOCK_KEY


def _db() -> dict:
    """The test database's settings, with the embedded server's socket folder filled in
    (Django fills it in only at its first connection: without it, libpq would try the
    default socket, some other PostgreSQL's or none)."""
    db = settings.DATABASES["default"]
    if not db["HOST"] and db.get("EMBEDDED_DIR"):
        from rra.embedded_db.base import _server_fields

        fields = _server_fields(db["EMBEDDED_DIR"], db["EMBEDDED_DATABASE"])
        return {**db, "HOST": fields["HOST"], "USER": db["USER"] or fields["USER"]}
    return db


def _admin_connection() -> psycopg.Connection:
    db = _db()
    return psycopg.connect(
        host=db["HOST"] or None,
        port=db["PORT"] or None,
        user=db["USER"],
        password=db["PASSWORD"] or None,
        dbname="postgres",
        autocommit=True,
    )


def _database_url(name: str) -> str:
    """A DATABASE_URL for `name` on the server of the test settings (for the embedded one:
    its unix socket directory, percent-encoded as the host)."""
    db = _db()
    auth = quote(db["USER"], safe="")
    if db["PASSWORD"]:
        auth += ":" + quote(db["PASSWORD"], safe="")
    host = quote(db["HOST"], safe="") if db["HOST"].startswith("/") else db["HOST"]
    port = f":{db['PORT']}" if db["PORT"] else ""
    return f"postgresql://{auth}@{host}{port}/{name}"


@pytest.fixture(scope="module")
def database_url():
    """A database made for this module and dropped after it."""
    name = f"rra_deploy_{uuid.uuid4().hex[:10]}"
    with _admin_connection() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _database_url(name)
    finally:
        with _admin_connection() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _env(**extra: str) -> dict[str, str]:
    """The test session's environment (production-like settings, see
    rra/testing/pytest_plugin.py) with the given variables."""
    env = {k: v for k, v in os.environ.items() if k not in ("POSTGRES_URL", "DATABASE_URL")}
    env.update(PYTHON=sys.executable, PYTHONUNBUFFERED="1")
    env.pop("BIND", None)
    env.update(extra)
    return env


def _run(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


# --- migrations --------------------------------------------------------------------------


def test_replicas_starting_together_migrate_one_at_a_time(database_url):
    env = _env(DATABASE_URL=database_url)
    command = [sys.executable, "deploy/migrate_locked.py", "--wait", "30"]
    procs = [
        subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=180) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out + err

    # One applied the migrations; the other waited for its lock and found nothing to do.
    applied = [out for out, _ in outputs if "Applying " in out]
    assert len(applied) == 1, outputs
    assert any("No migrations to apply." in out for out, _ in outputs), outputs
    assert any("waiting for it" in err for _, err in outputs), outputs

    with psycopg.connect(database_url) as conn:
        duplicates = conn.execute(
            "SELECT app, name FROM django_migrations GROUP BY 1, 2 HAVING count(*) > 1"
        ).fetchall()
        apps = {row[0] for row in conn.execute("SELECT DISTINCT app FROM django_migrations")}
    assert duplicates == []
    assert {"accounts", "documents", "chats"} <= apps
    # The lock is released: anyone may take it now.
    with psycopg.connect(database_url, autocommit=True) as conn:
        (free,) = conn.execute("SELECT pg_try_advisory_lock(%s)", [MIGRATION_LOCK]).fetchone()
    assert free


def test_an_unreachable_database_is_waited_for_a_bounded_time():
    url = f"postgresql://rra@127.0.0.1:{free_port()}/rra"
    started = time.monotonic()
    result = _run(
        [sys.executable, "deploy/migrate_locked.py", "--wait", "2"],
        _env(DATABASE_URL=url, DB_CONNECT_TIMEOUT="1"),
    )
    assert result.returncode == 1
    assert "giving up: the database is unreachable after 2 s" in result.stderr
    assert time.monotonic() - started < 30


# --- the entry point's commands ----------------------------------------------------------


def test_any_other_command_is_execd_as_is():
    result = _run([ENTRYPOINT, "echo", "hi"], _env(SKIP_MIGRATE="1"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hi\n"

    # exec: the command replaces the entry point (same process), so signals reach it.
    proc = subprocess.Popen(
        [ENTRYPOINT, "sh", "-c", "echo $$"],
        cwd=ROOT,
        env=_env(SKIP_MIGRATE="1"),
        stdout=subprocess.PIPE,
        text=True,
    )
    out, _ = proc.communicate(timeout=30)
    assert int(out) == proc.pid


@pytest.fixture
def fake_python(tmp_path):
    """A PYTHON that prints how it was called instead of running anything."""
    script = tmp_path / "python"
    script.write_text('#!/bin/sh\necho "BIND=${BIND:-} $*"\n')
    script.chmod(0o755)
    return str(script)


def test_web_and_worker_commands(fake_python):
    env = _env(PYTHON=fake_python, SKIP_MIGRATE="1", WEB_FRONT="none")
    web = _run([ENTRYPOINT, "web", "--log-level", "debug"], env)
    assert web.stdout == (
        "BIND=0.0.0.0:8000 -m gunicorn --config deploy/gunicorn.conf.py --log-level debug\n"
    )
    assert _run([ENTRYPOINT], env).stdout.endswith("-m gunicorn --config deploy/gunicorn.conf.py\n")
    assert _run([ENTRYPOINT, "web"], {**env, "BIND": "127.0.0.1:9000"}).stdout.startswith(
        "BIND=127.0.0.1:9000 "
    )
    assert _run([ENTRYPOINT, "worker"], env).stdout.endswith(" manage.py worker\n")


def test_web_puts_nginx_in_front_of_gunicorn_unless_told_not_to(tmp_path):
    """The image's default: nginx (deploy/front.py) on BIND, gunicorn on UPSTREAM_BIND,
    and the app told about one more proxy than TRUSTED_PROXY_COUNT counts."""
    if not shutil.which("nginx") and not os.access("/usr/sbin/nginx", os.X_OK):
        pytest.skip("nginx not installed (make test installs it in CI)")
    fake = tmp_path / "python"
    # Each prints how it was called and runs until it is told to stop, as the real ones
    # do (a Python script: sh cannot trap the SIGQUIT that bash's background jobs start
    # with ignored; nginx and gunicorn set their own handlers); the entry point's SIGTERM
    # stops both, and it exits 0.
    fake.write_text(
        f"#!{sys.executable}\n"
        "import os, signal, sys, time\n"
        "for s in (signal.SIGTERM, signal.SIGQUIT, signal.SIGINT):\n"
        "    signal.signal(s, lambda *a: sys.exit(0))\n"
        "e = os.environ\n"
        "line = f\"TRUSTED={e.get('TRUSTED_PROXY_COUNT', '')} BIND={e.get('BIND', '')} \""
        " + ' '.join(sys.argv[1:])\n"
        "os.write(1, (line + '\\n').encode())  # one write: the two lines never mix\n"
        "if e.get('FAKE_SERVE'):\n"
        "    time.sleep(60)\n"
    )
    fake.chmod(0o755)
    env = _env(PYTHON=str(fake), SKIP_MIGRATE="1", TRUSTED_PROXY_COUNT="1")
    env.pop("WEB_FRONT", None)
    web = subprocess.Popen(
        [ENTRYPOINT, "web", "--log-level", "debug"],
        cwd=ROOT,
        env={**env, "FAKE_SERVE": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines = [web.stdout.readline().strip(), web.stdout.readline().strip()]
    web.send_signal(signal.SIGTERM)
    assert web.wait(timeout=20) == 0
    assert sorted(lines) == [
        "TRUSTED=2 BIND=0.0.0.0:8000 deploy/front.py --listen 0.0.0.0:8000"
        " --upstream 127.0.0.1:8001 --prefix /tmp/rra-front",
        "TRUSTED=2 BIND=127.0.0.1:8001 -m gunicorn --config deploy/gunicorn.conf.py"
        " --log-level debug",
    ]
    alone = _run([ENTRYPOINT, "web"], {**env, "WEB_FRONT": "none"})
    assert alone.stdout == (
        "TRUSTED=1 BIND=0.0.0.0:8000 -m gunicorn --config deploy/gunicorn.conf.py\n"
    )
    assert _run([ENTRYPOINT, "worker"], env).stdout.startswith("TRUSTED=1 ")


def test_the_database_comes_first_unless_skipped(fake_python):
    env = _env(PYTHON=fake_python, DB_WAIT_TIMEOUT="45")
    assert _run([ENTRYPOINT, "worker"], env).stdout.splitlines() == [
        "BIND= deploy/migrate_locked.py --wait 45",
        "BIND= manage.py worker",
    ]
    lines = _run([ENTRYPOINT, "echo", "hi"], {**env, "MIGRATE_ON_START": "false"}).stdout
    assert lines.splitlines() == ["BIND= deploy/migrate_locked.py --wait 45 --no-migrate", "hi"]
    assert _run([ENTRYPOINT, "migrate"], env).stdout.splitlines() == [
        "BIND= deploy/migrate_locked.py --wait 45"
    ]


# --- gunicorn: serve, then stop gracefully ------------------------------------------------


def _get(port: int, path: str) -> int | None:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


def test_web_serves_and_finishes_in_flight_requests_on_sigterm(database_url, tmp_path):
    port = free_port()
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_12345.db").write_bytes(b"stale")  # from a previous run
    env = _env(
        DATABASE_URL=database_url,
        BIND=f"127.0.0.1:{port}",
        WEB_FRONT="none",  # gunicorn's own graceful stop (the front: test_front_server.py)
        WEB_CONCURRENCY="1",
        GUNICORN_THREADS="2",
        GUNICORN_GRACEFUL_TIMEOUT=str(GRACEFUL_TIMEOUT),
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        # No model to load in the worker's warm-up thread (a remote provider's is a no-op).
        EMBEDDINGS_PROVIDER="openai",
        EMBEDDINGS_BASE_URL="http://127.0.0.1:9/v1",
        EMBEDDINGS_MODEL="test-model",
    )
    log = (tmp_path / "gunicorn.log").open("w+")
    proc = subprocess.Popen(
        [ENTRYPOINT, "web"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 90
        while _get(port, "/api/health/live") != 200:
            assert proc.poll() is None, f"gunicorn exited: {_read(log)}"
            assert time.monotonic() < deadline, f"gunicorn did not answer: {_read(log)}"
            time.sleep(0.2)
        assert not (metrics_dir / "counter_12345.db").exists()
        assert _get(port, "/api/health/ready") == 200, _read(log)
        _head_then_get_on_one_connection(port)

        health = _run([sys.executable, "deploy/healthcheck.py"], env, timeout=10)
        assert health.returncode == 0, health.stderr

        # An in-flight request: a form POST whose body arrives slowly. The view's CSRF
        # check reads the body, so the request is held in a worker thread until it is in.
        token = "a" * 32
        body = f"csrfmiddlewaretoken={token}".encode()
        client = socket.create_connection(("127.0.0.1", port), timeout=GRACEFUL_TIMEOUT + 5)
        client.sendall(
            (
                "POST /api/health/live HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{port}\r\n"
                f"Cookie: csrftoken={token}\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\n"
                f"Content-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n"
            ).encode()
            + body[:10]
        )
        _wait_until_accepted(proc.pid, port, client.getsockname()[1])
        time.sleep(0.5)  # the worker thread is now waiting for the rest of the body
        stopped_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        time.sleep(1.5)
        assert proc.poll() is None, "gunicorn quit before the request was finished"
        client.sendall(body[10:])
        response = b""
        while chunk := client.recv(65536):
            response += chunk
        client.close()
        assert response.startswith(b"HTTP/1.1 200 "), response[:300]
        assert b'{"status": "ok"}' in response

        assert proc.wait(timeout=GRACEFUL_TIMEOUT + 5) == 0, _read(log)
        assert time.monotonic() - stopped_at < GRACEFUL_TIMEOUT
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()


def _head_then_get_on_one_connection(port: int) -> None:
    """A HEAD answer has no body (a keep-alive client would read it as its next answer),
    and says how long the GET's is."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        for path in ("/accounts/login/", "/api/health/live", "/api/chats"):
            conn.request("GET", path)
            got = conn.getresponse()
            body = got.read()
            conn.request("HEAD", path)
            head = conn.getresponse()
            assert head.read() == b""
            assert head.status == got.status and head.getheader("Content-Length") == str(len(body))
        conn.request("GET", "/api/health/live")  # still in step on the same connection
        assert conn.getresponse().read() == b'{"status": "ok"}'
    finally:
        conn.close()


def _wait_until_accepted(master: int, port: int, client_port: int) -> None:
    """Until a gunicorn worker holds the client's connection (accepted, not queued)."""
    import psutil

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for worker in psutil.Process(master).children():
            try:
                connections = worker.net_connections(kind="tcp")
            except psutil.Error:
                continue
            if any(
                c.laddr and c.laddr.port == port and c.raddr and c.raddr.port == client_port
                for c in connections
            ):
                return
        time.sleep(0.05)
    raise AssertionError("no gunicorn worker accepted the request")


def _read(log) -> str:
    log.flush()
    log.seek(0)
    return log.read()[-3000:]


def test_healthcheck_fails_when_nothing_answers():
    result = _run(
        [sys.executable, "deploy/healthcheck.py"], _env(BIND=f"0.0.0.0:{free_port()}"), timeout=10
    )
    assert result.returncode == 1
    assert "unhealthy" in result.stderr


# --- the deployment files -------------------------------------------------------------------


def test_deployment_files_agree():
    """deploy/check_config.py (also run by `make deploy-check`, with promtool and
    docker-compose where available)."""
    result = _run([sys.executable, "deploy/check_config.py"], _env(), timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def _check_config():
    sys.path.insert(0, str(ROOT / "deploy"))
    try:
        import check_config
    finally:
        sys.path.pop(0)
    check_config.problems.clear()
    return check_config


def test_the_documented_compose_commands_start_what_they_promise():
    check = _check_config()
    services = check.interpolate(check.load_yaml(check.COMPOSE))["services"]
    dev = check.services_started(services, [], ["app"])
    assert {"app", "worker", "postgres", "redis", "metrics-token"} <= dev
    assert not dev & {"web-prod", "worker-prod", "prometheus"}
    monitoring = check.services_started(services, ["monitoring"], [])
    assert {"app", "worker", "prometheus", "grafana", "pushgateway"} <= monitoring
    assert not monitoring & {"web-prod", "worker-prod"}
    production = check.services_started(services, ["production"], [])
    assert {"web-prod", "worker-prod", "prometheus", "grafana", "pushgateway"} <= production
    assert not production & {"app", "worker"}
    check.check_commands({"services": services})
    assert check.problems == []


def test_the_checks_notice_a_monitoring_stack_without_data():
    check = _check_config()
    services = check.interpolate(check.load_yaml(check.COMPOSE))["services"]
    services["app"]["profiles"] = ["local"]  # monitoring alone would start no app
    services["worker-prod"]["environment"]["METRICS_ENDPOINT"] = ""  # nothing pushed
    check.check_commands({"services": services})
    assert any("monitoring up` does not start app" in p for p in check.problems)
    assert any("no web server answers" in p for p in check.problems)
    assert any("worker-prod does not push" in p for p in check.problems)


def test_the_dockerfile_has_development_and_production_targets():
    check = _check_config()
    compose = check.interpolate(check.load_yaml(check.COMPOSE))
    check.check_dockerfile(compose)
    assert check.problems == []
    targets = {name: svc["build"]["target"] for name, svc in compose["services"].items()
               if svc.get("build")}  # fmt: skip
    assert targets == {
        "app": "development",
        "worker": "development",
        "web-prod": "production",
        "worker-prod": "production",
    }
    app = compose["services"]["app"]
    assert ".:/app" in app["volumes"] and "runserver" in app["command"]


@pytest.mark.parametrize("profiles", [[], ["local"], ["production"], ["monitoring"]])
def test_docker_compose_accepts_each_profile(profiles, tmp_path):
    """`docker-compose config` (Debian's docker-compose parses the file offline), as
    `make deploy-check` runs it; CI installs it, elsewhere the test skips without it."""
    import shutil

    if not shutil.which("docker-compose"):
        if os.environ.get("CI") == "true":
            pytest.fail("docker-compose is missing (make deploy-check installs it)")
        pytest.skip("docker-compose not installed")
    empty_env = tmp_path / "empty.env"
    empty_env.write_text("")
    args = ["docker-compose", "--env-file", str(empty_env), "-f", "docker-compose.yml"]
    for profile in profiles:
        args += ["--profile", profile]
    result = _run([*args, "config"], _env(), timeout=60)
    assert result.returncode == 0, result.stderr
    import yaml

    config = yaml.safe_load(result.stdout)
    app = config["services"]["app"]
    assert app["build"]["target"] == "development"
    assert app["environment"]["METRICS_TOKEN_FILE"] == "/run/rra-metrics/token"
    assert config["services"]["worker"]["environment"]["METRICS_ENDPOINT"] == (
        "http://pushgateway:9091"
    )


COMPOSE_RESOLVE = """
import json, sys
from unittest import mock

from compose.config import config
from compose.config.environment import Environment
from compose.project import Project
from docker.errors import NotFound

client = mock.MagicMock()  # no Docker engine: every network is still to be created
client.inspect_network.side_effect = NotFound("none")
client.api_version = "1.41"
out = {}
for command, profiles, named in json.loads(sys.argv[2]):
    env = Environment.from_env_file(".", sys.argv[1])
    data = config.load(config.find(".", ["docker-compose.yml"], env), interpolate=True)
    project = Project.from_config("rra", data, client=client, enabled_profiles=profiles)
    services = project.get_services(named or None, include_deps=True)
    out[command] = sorted(s.name for s in services)
print(json.dumps(out))
"""


def test_docker_compose_itself_starts_what_the_commands_promise(tmp_path):
    """The services `up` would start for each documented command, as Debian's
    docker-compose (v1, Python) resolves profiles and dependencies."""
    import json
    import shutil

    compose_bin = shutil.which("docker-compose")
    interpreter = Path(compose_bin).read_text().split("\n")[0][2:] if compose_bin else ""
    if not interpreter.endswith("python3"):
        if os.environ.get("CI") == "true" and not compose_bin:
            pytest.fail("docker-compose is missing (make deploy-check installs it)")
        pytest.skip("Debian's docker-compose (Python) is not installed")
    check = _check_config()
    empty_env = tmp_path / "empty.env"
    empty_env.write_text("")
    commands = [[c, profiles, named] for c, profiles, named, _, _ in check.COMMANDS]
    result = _run(
        [interpreter, "-c", COMPOSE_RESOLVE, str(empty_env), json.dumps(commands)],
        _env(),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    started = json.loads(result.stdout)
    for command, _, _, must, must_not in check.COMMANDS:
        assert must <= set(started[command]), (command, started[command])
        assert not must_not & set(started[command]), (command, started[command])
    assert set(started["docker compose up app"]) == {
        "app", "worker", "postgres", "redis", "metrics-token"
    }  # fmt: skip


GUNICORN_VALUES = (
    "import runpy; c = runpy.run_path('deploy/gunicorn.conf.py'); "
    "print(c['bind'], c['workers'], c['threads'], c['graceful_timeout'])"
)


def test_gunicorn_reads_bind_and_its_settings_from_env_file_and_the_environment_wins(tmp_path):
    """.env.example lists BIND, WEB_CONCURRENCY and GUNICORN_* in .env (issue 22 item 9)."""
    env_file = tmp_path / ".env"
    env_file.write_text(
        "BIND=127.0.0.1:9123\nWEB_CONCURRENCY=3\nGUNICORN_THREADS=7\nGUNICORN_GRACEFUL_TIMEOUT=4\n"
    )
    env = _env(ENV_FILE=str(env_file))
    for name in ("WEB_CONCURRENCY", "GUNICORN_THREADS", "GUNICORN_GRACEFUL_TIMEOUT"):
        env.pop(name, None)
    result = _run([sys.executable, "-c", GUNICORN_VALUES], env)
    assert result.stdout.split() == ["127.0.0.1:9123", "3", "7", "4"], result.stderr
    result = _run([sys.executable, "-c", GUNICORN_VALUES], {**env, "BIND": "127.0.0.1:9124"})
    assert result.stdout.split()[0] == "127.0.0.1:9124", result.stderr


def test_make_run_says_the_address_it_serves_from_env_file(tmp_path):
    """deploy/run-dev.sh prints BIND as .env sets it, not always port 8000; the server
    is not started here (gunicorn and nginx are replaced by commands that exit)."""
    env_file = tmp_path / ".env"
    env_file.write_text("BIND=127.0.0.1:9125\n")
    env = _env(ENV_FILE=str(env_file))
    source = (ROOT / "deploy" / "run-dev.sh").read_text()
    for real, stand_in in (
        ("$PY manage.py worker &", "true &"),
        ("command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]", "false"),
        (".venv/bin/gunicorn --config deploy/gunicorn.conf.py", "true"),
    ):
        assert real in source
        source = source.replace(real, stand_in)
    # In var/ (ignored), so that the script's "cd $(dirname $0)/.." is the project.
    copy = ROOT / "var" / f"run-dev-{uuid.uuid4().hex}.sh"
    copy.parent.mkdir(exist_ok=True)
    copy.write_text(source)
    try:
        result = _run(["bash", str(copy)], env)
    finally:
        copy.unlink()
    assert "RRA is starting on http://127.0.0.1:9125 " in result.stdout, result
    assert "8000" not in result.stdout
