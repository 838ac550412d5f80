"""The query cache (rra/querycache.py): hits without database queries, and no stale read
after any kind of write — API, ORM bulk operations, admin, cascades — in this process or
another one sharing Redis."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import ApiToken
from chats.models import Chat, Citation, Message, Vote
from rra import metrics, querycache
from rra.testing import factories

pytestmark = pytest.mark.usefixtures("redis_url")


# Namespaces of the tests' own entries: one the same for everyone, one whose calls
# check access themselves.
SHARED = querycache.Namespace(
    "test-shared", version=1, value=(str, int), ttl=lambda: 60, access="everyone"
)
PER_CALL = querycache.Namespace("test-per-call", version=1, value=str, ttl=lambda: 60)


def titles(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [chat["title"] for chat in response.json()["results"]]


def lookups(namespace: str, result: str) -> float:
    return metrics.CACHE_REQUESTS.labels(namespace, result)._value.get()


@pytest.fixture
def api(client, owner):
    _, raw = ApiToken.issue(user=owner, name="tests")
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {raw}"
    return client


@pytest.mark.django_db
def test_it_answers_a_repeated_chat_list_without_touching_the_database(api, owner):
    Chat.objects.create(owner=owner, title="Calibration")
    # The token's first use writes its last_used_at (at most once a minute).
    api.get("/api/me")
    hits, misses = lookups("chats", "hit"), lookups("chats", "miss")
    assert titles(api.get("/api/chats")) == ["Calibration"]
    with CaptureQueriesContext(connection) as queries:
        assert titles(api.get("/api/chats")) == ["Calibration"]
    # The token, its user and the list all come from Redis.
    assert [q["sql"] for q in queries.captured_queries] == []
    assert lookups("chats", "hit") == hits + 1
    assert lookups("chats", "miss") == misses + 1


@pytest.mark.django_db
def test_it_keeps_the_cache_in_redis(api, owner, redis_url):
    import redis

    Chat.objects.create(owner=owner, title="Calibration")
    api.get("/api/chats")
    keys = [k.decode() for k in redis.Redis.from_url(redis_url).keys("*qc:*")]
    assert any(":qc:chats:" in k for k in keys)
    assert any(":qc:gen:chats:user:" in k for k in keys)


@pytest.mark.django_db
def test_it_uses_the_configured_ttls(api, owner, redis_url):
    import redis

    Chat.objects.create(owner=owner, title="Calibration")
    api.get("/api/chats")
    api.get(reverse("api:chat-detail", args=[Chat.objects.get().pk]))
    raw = redis.Redis.from_url(redis_url)
    ttls = {}
    for key in raw.keys("*qc:*"):
        name = key.decode().split(":qc:", 1)[1].split(":")[0]
        ttls.setdefault(name, set()).add(raw.ttl(key))
    assert settings.QUERY_CACHE_TTLS == {"users": 300, "chats": 180, "messages": 120}
    assert max(ttls["users"]) <= 300 < max(ttls["users"]) + 5
    assert max(ttls["chats"]) <= 180 < max(ttls["chats"]) + 5
    assert max(ttls["messages"]) <= 120 < max(ttls["messages"]) + 5
    # Generations expire too, after longer than any entry lives.
    assert min(ttls["gen"]) > 0 and max(ttls["gen"]) <= querycache.GENERATION_TTL
    assert max(settings.QUERY_CACHE_TTLS.values()) < querycache.GENERATION_TTL


@pytest.mark.django_db
@pytest.mark.parametrize(
    "write",
    [
        pytest.param(lambda c: c.save(), id="save"),
        pytest.param(lambda c: Chat.objects.filter(pk=c.pk).update(title="Renamed"), id="update"),
        pytest.param(lambda c: Chat.objects.bulk_update([c], ["title"]), id="bulk_update"),
    ],
)
def test_it_sees_a_rename_by_any_write_path(api, owner, write):
    chat = Chat.objects.create(owner=owner, title="Old title")
    assert titles(api.get("/api/chats")) == ["Old title"]
    chat.title = "Renamed"
    write(chat)
    assert titles(api.get("/api/chats")) == ["Renamed"]


@pytest.mark.django_db
def test_it_sees_creates_and_deletes_of_every_kind(api, owner, outsider):
    first = Chat.objects.create(owner=owner, title="First")
    assert titles(api.get("/api/chats")) == ["First"]
    Chat.objects.bulk_create([Chat(owner=owner, title="Bulk")])
    assert sorted(titles(api.get("/api/chats"))) == ["Bulk", "First"]
    assert (
        api.post("/api/chats", {"title": "Posted"}, content_type="application/json").status_code
        == 201
    )
    assert sorted(titles(api.get("/api/chats"))) == ["Bulk", "First", "Posted"]
    Chat.objects.filter(title="Bulk").delete()
    assert sorted(titles(api.get("/api/chats"))) == ["First", "Posted"]
    assert api.delete(f"/api/chats/{first.pk}").status_code == 204
    assert titles(api.get("/api/chats")) == ["Posted"]
    # A chat moved to another owner leaves this list (its new owner's list changes too).
    Chat.objects.filter(title="Posted").update(owner=outsider)
    assert titles(api.get("/api/chats")) == []


@pytest.mark.django_db
def test_it_sees_new_messages_citations_and_votes_in_the_chat(api, owner, member):
    chat = Chat.objects.create(owner=owner, title="Chat", visibility=Chat.Visibility.PUBLIC)
    url = reverse("api:chat-detail", args=[chat.pk])
    assert api.get(url).json()["messages"] == []
    answer = Message.objects.create(chat=chat, role=Message.Role.ASSISTANT, content="Hello")
    assert [m["content"] for m in api.get(url).json()["messages"]] == ["Hello"]
    Citation.objects.bulk_create(
        [
            Citation(
                message=answer,
                document=factories.document(owner, "manual.pdf", visibility="shared"),
                document_name="manual.pdf",
                first_page=3,
                last_page=3,
                quote="q",
                number=1,
                rank=1,
                score=0.9,
            )
        ]
    )
    assert api.get(url).json()["messages"][0]["citations"][0]["pages"] == "p. 3"
    Message.objects.filter(pk=answer.pk).update(content="Hello again")
    assert api.get(url).json()["messages"][0]["content"] == "Hello again"
    Vote.objects.create(message=answer, user=member, value=Vote.Value.UP)
    assert api.get(url).json()["messages"][0]["votes"]["up"] == 1
    # The voter's account goes, and their vote with it.
    member.delete()
    assert api.get(url).json()["messages"][0]["votes"]["up"] == 0
    Message.objects.filter(chat=chat).delete()
    assert api.get(url).json()["messages"] == []


@pytest.mark.django_db
def test_it_records_token_use_without_invalidating_the_token(api, owner):
    api.get("/api/me")
    token = ApiToken.objects.get(user=owner)
    assert token.last_used_at is not None
    with CaptureQueriesContext(connection) as queries:
        assert api.get("/api/me").status_code == 200
    assert len(queries) == 0  # neither a new write nor a re-read of the token


@pytest.mark.django_db
def test_it_turns_a_revoked_token_away_at_once(api, owner):
    assert api.get("/api/chats").status_code == 200
    ApiToken.objects.filter(user=owner).update(revoked_at="2026-01-01T00:00:00Z")
    assert api.get("/api/chats").status_code == 401


@pytest.mark.django_db
def test_it_signs_out_a_deactivated_user_at_once(client, owner):
    client.force_login(owner)
    assert client.get(reverse("home")).status_code == 200
    type(owner).objects.filter(pk=owner.pk).update(is_active=False)
    assert client.get(reverse("home")).status_code == 302


@pytest.mark.django_db
def test_it_sees_changes_made_in_django_admin(client, admin_user, owner):
    chat = Chat.objects.create(owner=owner, title="Before")
    owner_client = type(client)()
    owner_client.force_login(owner)
    assert titles(owner_client.get("/api/chats")) == ["Before"]
    client.force_login(admin_user)
    change = reverse("admin:chats_chat_change", args=[chat.pk])
    response = client.post(
        change, {"title": "After", "visibility": "private", "owner": owner.pk, **_inline(chat)}
    )
    assert response.status_code == 302, response.content[:2000]
    assert titles(owner_client.get("/api/chats")) == ["After"]
    response = client.post(
        reverse("admin:chats_chat_changelist"),
        {"action": "delete_selected", "_selected_action": [chat.pk], "post": "yes"},
    )
    assert response.status_code == 302
    assert titles(owner_client.get("/api/chats")) == []


def _inline(chat) -> dict:
    """The management form of the (read-only) messages inline on the chat admin page."""
    return {
        "messages-TOTAL_FORMS": "0",
        "messages-INITIAL_FORMS": "0",
        "messages-MIN_NUM_FORMS": "0",
        "messages-MAX_NUM_FORMS": "0",
    }


@pytest.mark.django_db
def test_it_shows_the_sidebar_and_chat_page_fresh(client, owner):
    chat = Chat.objects.create(owner=owner, title="Sidebar title")
    client.force_login(owner)
    assert b"Sidebar title" in client.get(reverse("home")).content
    Chat.objects.filter(pk=chat.pk).update(title="New sidebar title")
    assert b"New sidebar title" in client.get(reverse("home")).content
    page = reverse("chat", args=[chat.pk])
    assert b"First answer" not in client.get(page).content
    Message.objects.create(chat=chat, role=Message.Role.ASSISTANT, content="First answer")
    assert b"First answer" in client.get(page).content
    owner.name = "Renamed Owner"
    owner.save()
    Chat.objects.filter(pk=chat.pk).update(visibility=Chat.Visibility.PUBLIC)
    anonymous = type(client)()
    assert b"Shared by Renamed Owner" in anonymous.get(page).content
    Chat.objects.filter(pk=chat.pk).update(visibility=Chat.Visibility.PRIVATE)
    assert anonymous.get(page).status_code == 404


@pytest.mark.django_db
def test_it_does_not_cache_inside_a_transaction(owner):
    computed = []

    def compute():
        computed.append(1)
        return "value"

    with transaction.atomic():
        querycache.cached(
            SHARED,
            scopes=["chats:user:x"],
            viewer=querycache.EVERYONE,
            params=["k"],
            compute=compute,
        )
    querycache.cached(
        SHARED, scopes=["chats:user:x"], viewer=querycache.EVERYONE, params=["k"], compute=compute
    )
    querycache.cached(
        SHARED, scopes=["chats:user:x"], viewer=querycache.EVERYONE, params=["k"], compute=compute
    )
    # The read inside the transaction was not stored; the next one was, and was hit.
    assert len(computed) == 2


@pytest.mark.django_db(transaction=True)
def test_it_bumps_again_when_the_transaction_commits(owner):
    before = querycache._generations(["chats:user:t"])["chats:user:t"]
    with transaction.atomic():
        querycache.bump("chats:user:t")
        during = querycache._generations(["chats:user:t"])["chats:user:t"]
        assert during != before
    assert querycache._generations(["chats:user:t"])["chats:user:t"] not in (before, during)


@pytest.mark.django_db
def test_it_can_be_switched_off(api, owner, settings):
    settings.QUERY_CACHE_ENABLED = False
    Chat.objects.create(owner=owner, title="Calibration")
    api.get("/api/chats")
    with CaptureQueriesContext(connection) as queries:
        assert titles(api.get("/api/chats")) == ["Calibration"]
    assert len(queries) > 0


@pytest.mark.django_db
def test_it_answers_from_the_database_when_redis_is_down(api, owner, settings):
    from rra.tests.test_health import DEAD_REDIS

    Chat.objects.create(owner=owner, title="Calibration")
    settings.CACHES = {**settings.CACHES, **DEAD_REDIS}
    assert titles(api.get("/api/chats")) == ["Calibration"]
    Chat.objects.filter(owner=owner).update(title="Renamed")
    assert titles(api.get("/api/chats")) == ["Renamed"]


# --- Two processes ----------------------------------------------------------------------


class Peer:
    """rra/testing/cache_peer.py in a subprocess on the same database and Redis."""

    def __init__(self, **env_overrides: str | None) -> None:
        """env_overrides: variables to set, or to remove with None."""
        env = dict(os.environ)
        name = connection.settings_dict["NAME"]
        if settings.DATABASE_URL:
            env["POSTGRES_URL"] = urlunsplit(
                urlsplit(settings.DATABASE_URL)._replace(path=f"/{name}")
            )
        else:
            env["EMBEDDED_DB_NAME"] = name
        env["DB_POOL"] = "false"
        for name, value in env_overrides.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rra.testing.cache_peer"],
            cwd=Path(settings.BASE_DIR),
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def __call__(self, **command) -> dict:
        self.process.stdin.write(json.dumps(command, default=str) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, f"the peer process died (exit code {self.process.poll()})"
        return json.loads(line)

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture
def peer():
    process = Peer()
    yield process
    process.close()


@pytest.mark.django_db(transaction=True)
def test_it_never_serves_one_process_stale_data_after_another_writes(api, owner, peer):
    token = ApiToken.issue(user=owner, name="peer")[1]
    chat = Chat.objects.create(owner=owner, title="One")

    assert [c["title"] for c in peer(op="list", token=token)["body"]["results"]] == ["One"]
    assert titles(api.get("/api/chats")) == ["One"]

    # This process writes; the other one reads the change.
    assert (
        api.patch(
            f"/api/chats/{chat.pk}", {"title": "Two"}, content_type="application/json"
        ).status_code
        == 200
    )
    assert [c["title"] for c in peer(op="list", token=token)["body"]["results"]] == ["Two"]

    # The other process writes (a bulk update); this one reads the change.
    assert titles(api.get("/api/chats")) == ["Two"]
    assert peer(op="rename", chat=chat.pk, title="Three") == {"updated": 1}
    assert titles(api.get("/api/chats")) == ["Three"]

    # Messages: cached here, added there... and deleted there.
    detail = peer(op="detail", token=token, chat=chat.pk)
    assert detail["status"] == 200 and detail["body"]["messages"] == []
    Message.objects.create(chat=chat, role=Message.Role.USER, content="A question")
    detail = peer(op="detail", token=token, chat=chat.pk)
    assert [m["content"] for m in detail["body"]["messages"]] == ["A question"]

    assert peer(op="delete", chat=chat.pk)["deleted"] >= 1
    assert titles(api.get("/api/chats")) == []
    assert api.get(f"/api/chats/{chat.pk}").status_code == 404


@pytest.mark.django_db
def test_one_generation_never_lets_two_objects_or_two_viewers_share_an_entry(owner, member):
    # One bump gives several scopes the same generation; entries still stay apart.
    querycache.bump("chat:a", "chat:b")
    assert len(set(querycache._generations(["chat:a", "chat:b"]).values())) == 1

    def cached(scopes, viewer, name):
        return querycache.cached(
            PER_CALL, scopes=scopes, viewer=viewer, access=lambda: None, compute=lambda _: name
        ).value

    assert cached(["chat:a"], owner, "A") == "A"
    assert cached(["chat:b"], owner, "B") == "B"
    assert cached(["chat:a"], member, "A2") == "A2"
    assert cached(["chat:a"], None, "anon") == "anon"
    # Each is still its own entry, and hit.
    assert cached(["chat:a"], owner, "x") == "A"
    assert cached(["chat:b"], owner, "x") == "B"
    with pytest.raises(ValueError):
        cached([], owner, "x")


class RedisCalls:
    """Commands the server ran between two readings (INFO commandstats on one connection;
    the reading's own INFO is taken off)."""

    def __init__(self, redis_url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(redis_url)
        self.last = self._total()

    def _total(self) -> int:
        return sum(v["calls"] for v in self.client.info("commandstats").values())

    def since_last(self) -> int:
        total = self._total()
        count, self.last = total - self.last - 1, total
        return count


@pytest.mark.django_db
def test_a_cached_chat_list_with_a_token_is_one_redis_round_trip(api, owner, redis_url):
    Chat.objects.create(owner=owner, title="Calibration")
    api.get("/api/me")  # the token's first use writes last_used_at
    assert titles(api.get("/api/chats")) == ["Calibration"]  # now cached
    calls = RedisCalls(redis_url)
    assert titles(api.get("/api/chats")) == ["Calibration"]
    # The token, its user and the list: one MGET.
    assert calls.since_last() == 1
    # And it is not a stale read: a new chat shows at once, and another user's
    # token gets their own list from the same round trip.
    Chat.objects.create(owner=owner, title="Alignment")
    assert titles(api.get("/api/chats")) == ["Alignment", "Calibration"]


@pytest.mark.django_db
def test_what_a_request_reads_ahead_is_used_once_and_dropped_when_it_writes(owner, redis_url):
    computed = []

    def compute():
        computed.append(1)
        return len(computed)

    def lookup():
        return querycache.cached(
            SHARED,
            scopes=["chats:user:p"],
            viewer=querycache.EVERYONE,
            params=["x"],
            compute=compute,
        ).value

    ahead = querycache.Lookup(SHARED, ("chats:user:p",), querycache.EVERYONE, params=("x",))

    def prefetch():  # another entry's read, which reads `ahead` in the same round trip
        querycache.cached(
            SHARED, scopes=["other"], viewer=querycache.EVERYONE, compute=lambda: 0, ahead=[ahead]
        )

    assert lookup() == 1  # stored

    def request(_request):
        prefetch()
        calls = RedisCalls(redis_url)
        first = lookup()  # from what was read ahead: no round trip of its own
        used = calls.since_last()
        prefetch()
        querycache.bump("chats:user:p")  # this request writes...
        second = lookup()  # ...so the read-ahead generation may not answer it
        return first, used, second

    first, used, second = querycache.RequestScopeMiddleware(request)(None)
    assert first == 1 and used == 0
    assert second == 2
    # Outside a request nothing is kept: reading ahead is a no-op.
    prefetch()
    assert querycache._PREFETCHED.get() is None


# --- The cached chat list: cheap, and never less safe ---------------------------------------


@pytest.mark.django_db
def test_a_cached_chat_list_names_each_entry_once(api, owner, monkeypatch):
    Chat.objects.create(owner=owner, title="Calibration")
    api.get("/api/me")
    assert titles(api.get("/api/chats")) == ["Calibration"]
    named = []
    key = querycache.Lookup.key.func

    def counted(lookup):
        named.append(lookup.namespace.name)
        return key(lookup)

    counting = functools.cached_property(counted)
    counting.__set_name__(querycache.Lookup, "key")
    monkeypatch.setattr(querycache.Lookup, "key", counting)
    assert titles(api.get("/api/chats")) == ["Calibration"]
    # The list's entry, named once (read ahead, then answered); the token's was named
    # on its first use in this process.
    assert named == ["chats"]


@pytest.mark.django_db
def test_a_cached_chat_list_is_answered_without_drfs_machinery(api, owner, monkeypatch):
    from rest_framework.views import APIView

    Chat.objects.create(owner=owner, title="Calibration")
    api.get("/api/me")
    through_drf = []
    initial = APIView.initial
    monkeypatch.setattr(
        APIView, "initial", lambda view, *a, **k: through_drf.append(1) or initial(view, *a, **k)
    )
    assert titles(api.get("/api/chats")) == ["Calibration"]  # a miss: DRF
    assert len(through_drf) == 1
    assert titles(api.get("/api/chats")) == ["Calibration"]  # a hit: no DRF
    assert len(through_drf) == 1
    # Anything but a plain GET with a token goes through DRF, hit or not.
    assert titles(api.get("/api/chats?format=json")) == ["Calibration"]
    assert api.head("/api/chats").status_code == 200
    assert len(through_drf) == 3


@pytest.mark.django_db
def test_it_never_serves_a_list_read_ahead_for_another_user(api, owner, outsider, monkeypatch):
    from accounts import authentication
    from accounts.models import hash_token

    Chat.objects.create(owner=owner, title="Mine")
    Chat.objects.create(owner=outsider, title="Theirs")
    theirs = ApiToken.issue(user=outsider, name="theirs")[1]
    assert titles(api.get("/api/chats")) == ["Mine"]
    assert titles(api.get("/api/chats", HTTP_AUTHORIZATION=f"Bearer {theirs}")) == ["Theirs"]
    # The process's memo of token owners goes wrong (a token never changes hands, so
    # it cannot, but nothing may rest on that): the list read ahead with the token is
    # the outsider's. The token's user is the owner, and the owner gets their own list.
    key_hash = hash_token(api.defaults["HTTP_AUTHORIZATION"].split()[1])
    wrong = (outsider.pk, authentication._token_lookup(key_hash, outsider.pk))
    monkeypatch.setitem(authentication._OWNERS, key_hash, wrong)
    assert titles(api.get("/api/chats")) == ["Mine"]


class _Closed:
    """A throttle that lets nothing through."""

    def allow_request(self, request, view) -> bool:
        return False

    def wait(self) -> float:
        return 60.0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("attribute", "classes", "status"),
    [
        pytest.param("throttle_classes", [_Closed], 429, id="a-throttle"),
        pytest.param("permission_classes", ["IsAdminUser"], 403, id="another-permission"),
    ],
)
def test_the_chat_lists_drf_classes_decide_cached_hits_too(
    api, owner, monkeypatch, attribute, classes, status
):
    from rest_framework import permissions

    from chats.api import ChatListView

    Chat.objects.create(owner=owner, title="Calibration")
    assert titles(api.get("/api/chats")) == ["Calibration"]
    assert titles(api.get("/api/chats")) == ["Calibration"]  # token and list cached
    classes = [getattr(permissions, c) if isinstance(c, str) else c for c in classes]
    monkeypatch.setattr(ChatListView, attribute, classes)
    assert api.get("/api/chats").status_code == status


def _revoke(token):
    token.revoked_at = timezone.now()
    token.save()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param(_revoke, "Invalid or revoked API token.", id="revoked"),
        pytest.param(
            lambda t: ApiToken.objects.filter(pk=t.pk).update(revoked_at=timezone.now()),
            "Invalid or revoked API token.",
            id="revoked-by-update",
        ),
        pytest.param(lambda t: t.delete(), "Invalid or revoked API token.", id="deleted"),
        pytest.param(
            lambda t: type(t.user).objects.filter(pk=t.user_id).update(is_active=False),
            "Invalid or revoked API token.",
            id="user-deactivated",
        ),
        pytest.param(
            lambda t: ApiToken.objects.filter(pk=t.pk).update(expires_at=timezone.now()),
            "Invalid or revoked API token.",
            id="expired-by-update",
        ),
    ],
)
def test_a_cached_chat_list_is_refused_at_once_when_its_token_goes(api, owner, change, message):
    Chat.objects.create(owner=owner, title="Calibration")
    assert titles(api.get("/api/chats")) == ["Calibration"]
    assert titles(api.get("/api/chats")) == ["Calibration"]  # a hit, token and list
    change(ApiToken.objects.select_related("user").get(user=owner))
    response = api.get("/api/chats")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert response.json() == {
        "error": {"status": 401, "code": "authentication_failed", "message": message}
    }


@pytest.mark.django_db
def test_a_cached_chat_list_is_refused_when_its_token_expires_with_no_write(
    api, owner, monkeypatch
):
    ApiToken.objects.filter(user=owner).update(expires_at=timezone.now() + timedelta(hours=1))
    Chat.objects.create(owner=owner, title="Calibration")
    assert titles(api.get("/api/chats")) == ["Calibration"]
    assert titles(api.get("/api/chats")) == ["Calibration"]
    later = timezone.now() + timedelta(hours=2)
    monkeypatch.setattr(timezone, "now", lambda: later)
    response = api.get("/api/chats")
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "This API token has expired."


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Bearer", "Malformed Authorization header: expected 'Bearer <token>'."),
        ("Bearer a b", "Malformed Authorization header: expected 'Bearer <token>'."),
        ("Bearer rra_not-a-token", "Invalid or revoked API token."),
    ],
)
def test_a_bad_token_gets_the_same_401_from_the_chat_list(api, owner, header, message):
    Chat.objects.create(owner=owner, title="Calibration")
    assert titles(api.get("/api/chats")) == ["Calibration"]
    response = api.get("/api/chats", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert response.json()["error"] == {
        "status": 401,
        "code": "authentication_failed",
        "message": message,
    }


@pytest.mark.django_db
def test_the_chat_list_without_credentials_or_with_a_session(client, owner):
    Chat.objects.create(owner=owner, title="Calibration")
    response = client.get("/api/chats")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "not_authenticated"
    client.force_login(owner)
    assert titles(client.get("/api/chats")) == ["Calibration"]
    assert titles(client.get("/api/chats")) == ["Calibration"]  # a hit
    # A session's unsafe request still needs the CSRF token.
    csrf_client = type(client)(enforce_csrf_checks=True)
    csrf_client.force_login(owner)
    assert titles(csrf_client.get("/api/chats")) == ["Calibration"]
    refused = csrf_client.post("/api/chats", {"title": "New"}, content_type="application/json")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["error"]["message"]


@pytest.mark.django_db
def test_a_cached_chat_list_answers_with_the_same_headers_as_a_computed_one(api, owner):
    Chat.objects.bulk_create([Chat(owner=owner, title=f"Calibration {n}") for n in range(12)])
    api.get("/api/me")

    def headers(response) -> dict:
        assert response.status_code == 200
        return {k: v for k, v in response.headers.items() if k != "X-Request-ID"}

    computed = headers(api.get("/api/chats", HTTP_ACCEPT_ENCODING="gzip, deflate, br"))
    cached = headers(api.get("/api/chats", HTTP_ACCEPT_ENCODING="gzip, deflate, br"))
    assert cached == computed
    assert cached["Allow"] == "GET, POST, HEAD, OPTIONS"
    assert cached["Cache-Control"] == "private, max-age=0, no-cache"
    assert cached["Vary"] == "Cookie, Authorization, Accept-Encoding"
    assert cached["Content-Encoding"] == "br" and cached["ETag"].startswith('W/"')
    assert "Content-Security-Policy" in cached and cached["X-Frame-Options"] == "DENY"
    not_modified = api.get("/api/chats", HTTP_IF_NONE_MATCH=cached["ETag"])
    assert not_modified.status_code == 304
    assert api.get("/api/chats?format=xml").status_code == 404
    assert api.get("/api/chats", HTTP_ACCEPT="text/html").status_code == 200


# --- The contract: declared namespaces, access inside the helper ----------------------


@pytest.mark.django_db
def test_access_is_checked_inside_the_helper_before_anything_goes_out(owner, outsider):
    from django.core.exceptions import PermissionDenied

    mine = querycache.Namespace("test-own", version=1, value=str, ttl=lambda: 60, access="own:t")
    scope = f"t:user:{owner.pk}"
    assert querycache.cached(mine, scopes=[scope], viewer=owner, compute=lambda: "A").value == "A"
    # Another viewer, anonymous or EVERYONE never gets it, hit or peek.
    for viewer in (outsider, None, querycache.EVERYONE):
        with pytest.raises(PermissionDenied):
            querycache.cached(mine, scopes=[scope], viewer=viewer, compute=lambda: "B")
        with pytest.raises(PermissionDenied):
            querycache.cached(mine, scopes=[scope], viewer=viewer)
    # A namespace without a rule needs the call's own check, which runs first and whose
    # refusal stops the read; its result is what compute receives.
    with pytest.raises(ValueError):
        querycache.cached(PER_CALL, scopes=["chat:z"], viewer=owner, compute=lambda: "x")

    def refuse():
        raise PermissionDenied

    querycache.cached(PER_CALL, scopes=["chat:z"], viewer=owner, access=lambda: "ok", compute=str)
    with pytest.raises(PermissionDenied):
        querycache.cached(PER_CALL, scopes=["chat:z"], viewer=owner, access=refuse)
    found = querycache.cached(PER_CALL, scopes=["chat:z"], viewer=owner, access=lambda: "ok")
    assert found is not None and found.hit and found.value == "ok"


@pytest.mark.django_db
def test_a_new_version_or_a_value_of_another_type_is_never_read_as_an_entry(owner):
    old = querycache.Namespace(
        "test-versioned", version=1, value=(str, int), ttl=lambda: 60, access="everyone"
    )
    shared = {"scopes": ["v:1"], "viewer": querycache.EVERYONE}
    assert querycache.cached(old, **shared, compute=lambda: "v1").value == "v1"
    assert querycache.cached(old, **shared, compute=lambda: "again").value == "v1"  # a hit
    new = querycache.Namespace(
        "test-versioned", version=2, value=int, ttl=lambda: 60, access="everyone"
    )
    assert querycache.cached(new, **shared) is None  # the version 1 entry is not read
    assert querycache.cached(new, **shared, compute=lambda: 2).value == 2
    with pytest.raises(TypeError):  # a compute that breaks the declaration is refused
        querycache.cached(new, scopes=["v:2"], viewer=querycache.EVERYONE, compute=lambda: "2")
    with pytest.raises(ValueError):
        querycache.Namespace("test-versioned", version=3, value=int, ttl=lambda: 60, access="all")


@pytest.mark.django_db
def test_a_generation_that_expired_only_makes_its_entries_miss(owner, redis_url):
    import redis

    value = iter(range(10))
    read = {"scopes": ["exp:1"], "viewer": querycache.EVERYONE, "compute": lambda: next(value)}
    assert querycache.cached(SHARED, **read).value == 0
    assert querycache.cached(SHARED, **read).value == 0
    raw = redis.Redis.from_url(redis_url)
    (gen,) = raw.keys("*qc:gen:exp:1")
    assert 0 < raw.ttl(gen) <= querycache.GENERATION_TTL
    raw.delete(gen)  # as when it expires
    assert querycache.cached(SHARED, **read).value == 1
