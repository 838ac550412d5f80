"""The worker's housekeeping: expired sessions and old finished task results go, the
rest stays."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import psycopg
import pytest
from django.contrib.sessions.models import Session
from django.db import connection
from django.utils import timezone
from django_tasks_db.compat import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from rra import housekeeping, metrics
from rra.management.commands.worker import housekeeping_forever


def _session(key: str, *, expires_in: timedelta) -> None:
    Session.objects.create(
        session_key=key, session_data="e30:", expire_date=timezone.now() + expires_in
    )


def _task(status: str, *, finished_ago: timedelta | None) -> DBTaskResult:
    now = timezone.now()
    return DBTaskResult.objects.create(
        status=status,
        args_kwargs={"args": [], "kwargs": {}},
        task_path="documents.tasks.ingest_document",
        backend_name="default",
        run_after=now,
        finished_at=None if finished_ago is None else now - finished_ago,
    )


def _rows():
    _session("expired" + "x" * 25, expires_in=timedelta(seconds=-1))
    _session("current" + "x" * 25, expires_in=timedelta(days=1))
    return {
        "old_done": _task(TaskResultStatus.SUCCESSFUL, finished_ago=timedelta(days=8)),
        "new_done": _task(TaskResultStatus.SUCCESSFUL, finished_ago=timedelta(days=6)),
        "old_failed": _task(TaskResultStatus.FAILED, finished_ago=timedelta(days=31)),
        "new_failed": _task(TaskResultStatus.FAILED, finished_ago=timedelta(days=8)),
        "queued": _task(TaskResultStatus.READY, finished_ago=None),
        "running": _task(TaskResultStatus.RUNNING, finished_ago=None),
    }


def _left() -> tuple[set[str], set]:
    return (
        set(Session.objects.values_list("session_key", flat=True)),
        set(DBTaskResult.objects.values_list("pk", flat=True)),
    )


@pytest.mark.django_db
def test_it_prunes_old_rows_and_keeps_fresh_ones(settings):
    settings.HOUSEKEEPING_TASK_RETENTION_DAYS = 7
    settings.HOUSEKEEPING_FAILED_TASK_RETENTION_DAYS = 30
    tasks = _rows()
    before = metrics.samples("rra_housekeeping_pruned_total").get((("kind", "task_results"),), 0)

    assert housekeeping.housekeeping_run() == {
        "sessions": 1,
        "task_results": 2,
        "pending_signups": 0,
    }

    sessions, task_ids = _left()
    assert sessions == {"current" + "x" * 25}
    kept = {name for name, task in tasks.items() if task.pk in task_ids}
    assert kept == {"new_done", "new_failed", "queued", "running"}
    after = metrics.samples("rra_housekeeping_pruned_total")[(("kind", "task_results"),)]
    assert after - before == 2
    # Nothing more to do the second time.
    assert housekeeping.housekeeping_run() == {
        "sessions": 0,
        "task_results": 0,
        "pending_signups": 0,
    }


@pytest.mark.django_db
def test_it_deletes_in_batches(monkeypatch):
    monkeypatch.setattr(housekeeping, "BATCH", 2)
    for n in range(5):
        _session(f"expired{n}" + "x" * 24, expires_in=timedelta(seconds=-1))
    assert housekeeping.prune_sessions(now=timezone.now()) == 5
    assert not Session.objects.exists()


@pytest.mark.django_db
def test_only_one_worker_prunes_at_a_time():
    _session("expired" + "x" * 25, expires_in=timedelta(seconds=-1))
    params = connection.get_connection_params()
    with psycopg.connect(**params, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [housekeeping.LOCK_KEY])
        assert housekeeping.housekeeping_run() is None
        assert Session.objects.exists()
        other.execute("SELECT pg_advisory_unlock(%s)", [housekeeping.LOCK_KEY])
    assert housekeeping.housekeeping_run() == {
        "sessions": 1,
        "task_results": 0,
        "pending_signups": 0,
    }


@pytest.mark.django_db(transaction=True)
def test_the_worker_thread_prunes_on_its_schedule():
    _rows()
    stop = threading.Event()
    thread = threading.Thread(target=housekeeping_forever, args=(stop, 0.05), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    try:
        while Session.objects.count() != 1 or DBTaskResult.objects.count() != 4:
            assert time.monotonic() < deadline, _left()
            time.sleep(0.05)
        # Rows that expire later go on a later round.
        _session("expired2" + "x" * 24, expires_in=timedelta(seconds=-1))
        while Session.objects.count() != 1:
            assert time.monotonic() < deadline, _left()
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()


@pytest.mark.django_db
def test_the_command_prunes_once_and_says_what_went():
    from io import StringIO

    from django.core.management import call_command

    _rows()
    out = StringIO()
    call_command("housekeeping", stdout=out)
    assert (
        out.getvalue().strip()
        == "sessions: 1 deleted, task_results: 2 deleted, pending_signups: 0 deleted"
    )
    assert Session.objects.count() == 1 and DBTaskResult.objects.count() == 4


def _pending(email: str, *, days: float):
    from accounts.models import User

    user = User(email=email, name="", is_active=False)
    user.set_unusable_password()
    user.created_at = timezone.now() - timedelta(days=days)
    user.save()
    return user


@pytest.mark.django_db
def test_it_prunes_sign_ups_whose_link_expired_and_nothing_else(settings, owner):
    from accounts.models import ApiToken, User
    from chats.models import Chat

    settings.PASSWORD_RESET_TIMEOUT = 72 * 3600
    _pending("expired@example.com", days=3.1)
    _pending("fresh@example.com", days=2.9)
    used = _pending("signed-in-once@example.com", days=30)
    User.objects.filter(pk=used.pk).update(last_login=timezone.now() - timedelta(days=29))
    deactivated = User.objects.create_user("deactivated@example.com", password="x" * 20)
    User.objects.filter(pk=deactivated.pk).update(
        is_active=False, created_at=timezone.now() - timedelta(days=30)
    )
    given_a_chat = _pending("given-a-chat@example.com", days=30)
    Chat.objects.create(owner=given_a_chat, title="Handed over by an admin")
    given_a_token = _pending("given-a-token@example.com", days=30)
    ApiToken.issue(user=given_a_token, name="admin's")
    owner_before = User.objects.filter(pk=owner.pk).values_list("password", flat=True).get()

    assert housekeeping.housekeeping_run()["pending_signups"] == 1
    assert set(User.objects.values_list("email", flat=True)) == {
        owner.email,
        "fresh@example.com",
        "signed-in-once@example.com",
        "deactivated@example.com",
        "given-a-chat@example.com",
        "given-a-token@example.com",
    }
    assert User.objects.get(pk=owner.pk).password == owner_before
    assert housekeeping.housekeeping_run()["pending_signups"] == 0


@pytest.mark.django_db
def test_signing_up_again_keeps_a_pending_account_until_the_new_link_expires(client, settings):
    """The first link expired, the person asked again: the account is not pruned under
    the new link, which still works after housekeeping."""
    import re

    from django.core import mail
    from django.urls import reverse

    from accounts.models import User

    settings.PASSWORD_RESET_TIMEOUT = 72 * 3600
    _pending("again@example.com", days=5)
    assert client.post(reverse("accounts:signup"), {"email": "again@example.com", "name": "A"})
    assert housekeeping.housekeeping_run()["pending_signups"] == 0
    link = re.search(r"https?://\S+", mail.outbox[-1].body).group(0)
    page = client.get(link, follow=True)
    assert "Choose your password" in page.content.decode()
    assert User.objects.get(email="again@example.com").name == "A"
