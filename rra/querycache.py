"""The query cache: read-through caching of per-user query results in Redis.

What is cached, and for how long (QUERY_CACHE_TTLS, seconds):

- ``users``: the signed-in user of a session or API token (5 min);
- ``chats``: a user's chat list, as the API and the sidebar show it (3 min);
- ``messages``: a chat with its messages, as the API and the chat page show it (2 min).

Invalidation is by *scope generations*. Every entry is filed under the scopes whose
data it holds (``user:12``, ``chats:user:12``, ``chat:<uuid>``, ``token:<hash>``) and
stores the generations those scopes had when it was computed. A write bumps the
generations of the scopes it touches, so the entry no longer matches, in any process,
and is computed again. A hit costs one Redis round trip: the entry and the generations
come in one MGET. Writes reach the bumps through signals (save, delete, cascades,
admin) and through ``InvalidatingQuerySet`` (``update``, ``delete``, ``bulk_create``,
``bulk_update``), see each model's ``cache_scopes``.

One entry can only ever answer the question it was computed for: its key is built from
the namespace, the scopes (which name the objects: ``chat:<uuid>``), the viewer (the
user whose view of the data it is, or ``EVERYONE`` when it is the same for all) and the
caller's parameters, and the entry stores the scopes and viewer it was computed for,
which a hit must match. Two chats, or two users, cannot share an entry whatever their
generations. The cache never decides access: a view checks that the viewer may read the
object before it asks the cache for the object's body.

A bump happens twice: at once (the writer's own next read sees its write) and again when
the transaction commits (another process may have cached the old rows in between).
Inside a real transaction nothing is read from or written to the cache, so rows that may
still roll back are never cached. A generation is the time of the bump in microseconds
plus a random suffix: unique without a counter, and it doubles as the scope's
last-modified time for HTTP caching.

With the cache store down, everything is computed from the database (the "default"
cache swallows Redis errors); a bump lost to an outage is bounded by the TTLs.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from django.conf import settings
from django.core.cache import cache
from django.db import connection, models, transaction

from rra import telemetry

T = TypeVar("T")
_SUFFIX = 1000  # generation = microseconds * _SUFFIX + random suffix


def _gen_key(scope: str) -> str:
    return f"qc:gen:{scope}"


def _new_generation() -> int:
    return time.time_ns() // 1000 * _SUFFIX + random.randrange(_SUFFIX)  # noqa: S311


def generations(scopes: Iterable[str]) -> dict[str, int] | None:
    """The current generation of each scope (created when missing); None when the cache
    store cannot be reached."""
    scopes = list(scopes)
    gen_keys = [_gen_key(scope) for scope in scopes]
    versions = _versions(gen_keys, cache.get_many(gen_keys))
    return None if versions is None else dict(zip(scopes, versions, strict=True))


def _versions(gen_keys: Sequence[str], found: dict) -> list[int] | None:
    """The generations under these keys, from an MGET's answer; the missing ones are
    created (another process may create them first: fine, whichever value is stored is
    read back). None when the cache store cannot be reached."""
    missing = [key for key in gen_keys if key not in found]
    if missing:
        for key in missing:
            cache.add(key, _new_generation(), None)
        found = {**found, **cache.get_many(missing)}
        if any(key not in found for key in missing):
            return None
    return [int(found[key]) for key in gen_keys]


def changed_at(versions: Iterable[int]) -> datetime | None:
    """When the newest of these generations' scopes was last written (or first seen by
    the cache)."""
    newest = max(versions, default=None)
    if newest is None:
        return None
    return datetime.fromtimestamp(newest // _SUFFIX / 1_000_000, tz=UTC)


def bump(*scopes: str) -> None:
    """Invalidate everything cached under these scopes: now, and again on commit."""
    scopes = tuple(sorted({scope for scope in scopes if scope}))
    if not scopes:
        return
    store = _PREFETCHED.get()
    if store:
        store.clear()  # this request wrote: nothing it read ahead may answer it now

    def apply() -> None:
        generation = _new_generation()
        cache.set_many({_gen_key(scope): generation for scope in scopes}, None)

    apply()
    if _in_transaction():
        transaction.on_commit(apply)


def _in_transaction() -> bool:
    """True inside an atomic block of the code (not the one a TestCase wraps tests in)."""
    return any(not getattr(block, "_from_testcase", False) for block in connection.atomic_blocks)


@dataclass(frozen=True)
class Entry(Generic[T]):
    value: T
    hit: bool
    changed_at: datetime | None  # the newest write to the entry's scopes, if known


class _Everyone:
    """The viewer of an entry that is the same for every user (a user's own record, a
    token's owner): passed explicitly, so that no call leaves the viewer out by mistake."""

    def __repr__(self) -> str:
        return "EVERYONE"


EVERYONE = _Everyone()


class UserId(int):
    """A viewer named by id alone (a lookup named before the user object is loaded)."""


def viewer_key(viewer: Any) -> str:
    """How an entry names its viewer (a user by id, ``anonymous`` or ``*``)."""
    if viewer is EVERYONE:
        return "*"
    if isinstance(viewer, UserId):
        return f"user:{int(viewer)}"
    if viewer is None or not getattr(viewer, "is_authenticated", False):
        return "anonymous"
    if viewer.pk is None:
        raise ValueError("the viewer of a cached entry must be saved (it has no pk)")
    return f"user:{viewer.pk}"


def _keys(namespace: str, scopes: Iterable[str], viewer: Any, params: Iterable[Any]):
    """(identity, entry key, generation keys) of one lookup."""
    scopes = tuple(sorted(set(scopes)))
    if not scopes or not all(isinstance(scope, str) and scope for scope in scopes):
        raise ValueError(f"a cached {namespace} entry needs the scopes of what it holds")
    identity = (namespace, scopes, viewer_key(viewer))
    digest = hashlib.sha256(
        json.dumps([*identity, list(params)], default=str, separators=(",", ":")).encode()
    ).hexdigest()[:40]
    return identity, f"qc:{namespace}:{digest}", [_gen_key(scope) for scope in scopes]


# --- Several lookups of one request in one round trip ------------------------------------
#
# A request that knows early which entries it will read (the API token's, then the chat
# list's) names them with ask(), and prefetch() reads their entries and generations in
# one MGET; each answer() that follows takes its own part, once. What is prefetched lives
# only for the request (RequestScopeMiddleware) and any bump() in it drops all of it, so
# a prefetched generation is never older than the request's own writes.

_PREFETCHED: ContextVar[dict[str, dict] | None] = ContextVar("qc_prefetched", default=None)


@dataclass(frozen=True)
class Ask:
    """One lookup, named: what it is for and its keys, computed once (ask())."""

    namespace: str
    identity: tuple  # (namespace, scopes, viewer key): what a hit must have been stored for
    key: str  # the entry's
    gen_keys: tuple[str, ...]  # the scopes' generations', in the order of identity[1]

    @property
    def viewer_key(self) -> str:
        return self.identity[2]


def ask(namespace: str, *, scopes: Iterable[str], viewer: Any, params: Iterable[Any] = ()) -> Ask:
    """The lookup of (namespace, scopes, viewer, params), for prefetch() and answer(); see
    lookup() for what the arguments mean."""
    identity, key, gen_keys = _keys(namespace, scopes, viewer, params)
    return Ask(namespace, identity, key, tuple(gen_keys))


def prefetch(*asks: Ask) -> None:
    """Read these lookups' entries and generations in one round trip, for the lookups
    that follow in this request. Outside a request scope, in a transaction or with the
    cache off: nothing (each lookup reads its own)."""
    store = _PREFETCHED.get()
    if store is None or not settings.QUERY_CACHE_ENABLED or _in_transaction():
        return
    ttls = settings.QUERY_CACHE_TTLS
    planned = [a for a in asks if ttls.get(a.namespace)]
    found = cache.get_many([key for a in planned for key in (a.key, *a.gen_keys)])
    for a in planned:
        store[a.key] = {key: found[key] for key in (a.key, *a.gen_keys) if key in found}


class RequestScopeMiddleware:
    """What prefetch() read lives for this request only."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        token = _PREFETCHED.set({})
        try:
            return self.get_response(request)
        finally:
            _PREFETCHED.reset(token)


def lookup(
    namespace: str,
    *,
    scopes: Iterable[str],
    viewer: Any,
    params: Iterable[Any] = (),
    compute: Callable[[], T],
) -> Entry[T]:
    """The cached value of compute() for (namespace, scopes, viewer, params) if none of
    its scopes was written since it was stored, else compute() stored for the
    namespace's TTL. One Redis round trip on a hit (the entry and its scopes'
    generations in one MGET). Counts hits and misses.

    scopes: what the value is made of, naming the objects (``chat:<uuid>``); at least
    one. viewer: the user (or anonymous user) whose view this is, or EVERYONE.
    params: anything else the value depends on (query string, host, page size).
    """
    return answer(ask(namespace, scopes=scopes, viewer=viewer, params=params), compute=compute)


def answer(a: Ask, *, compute: Callable[[], T]) -> Entry[T]:
    """lookup() of a lookup named with ask() (its keys are not computed again); from what
    was prefetched for it, if anything."""
    read = _read(a)
    if read is None:  # off, in a transaction, or the store is down: the database answers
        return Entry(compute(), hit=False, changed_at=None)
    versions, stored = read
    hit = stored is not _MISS
    telemetry.cache_lookup(a.namespace, hit=hit)
    if hit:
        value = stored
    else:
        value = compute()
        cache.set(a.key, (a.identity, versions, value), settings.QUERY_CACHE_TTLS[a.namespace])
    return Entry(value, hit=hit, changed_at=changed_at(versions))


def peek(a: Ask) -> Entry | None:
    """answer() when it is a hit; None (nothing computed, stored or counted) when it is
    not, for a caller that then takes its ordinary path, which asks again."""
    read = _read(a)
    if read is None or read[1] is _MISS:
        return None
    telemetry.cache_lookup(a.namespace, hit=True)
    return Entry(read[1], hit=True, changed_at=changed_at(read[0]))


_MISS = object()


def _read(a: Ask) -> tuple[list[int], Any] | None:
    """(the scopes' generations, the stored value or _MISS when there is none that is
    current); None when the cache is off for the namespace, in a transaction, or down.
    From what was prefetched for this lookup (used once), else one MGET."""
    if not settings.QUERY_CACHE_ENABLED or not settings.QUERY_CACHE_TTLS[a.namespace]:
        return None
    if _in_transaction():
        return None
    store = _PREFETCHED.get()
    found = store.pop(a.key, None) if store else None
    if found is None:
        found = cache.get_many([a.key, *a.gen_keys])
    versions = _versions(a.gen_keys, found)
    if versions is None:
        return None
    stored = found.get(a.key)
    # An entry holds the generations read *before* its value was computed: a write
    # during the computation leaves it out of date, never wrongly current. It also holds
    # what it was computed for, which must be what is asked now.
    current = (
        isinstance(stored, tuple)
        and len(stored) == 3
        and stored[0] == a.identity
        and stored[1] == versions
    )
    return versions, stored[2] if current else _MISS


def cached(
    namespace: str,
    *,
    scopes: Iterable[str],
    viewer: Any,
    params: Iterable[Any] = (),
    compute: Callable[[], T],
) -> T:
    return lookup(namespace, scopes=scopes, viewer=viewer, params=params, compute=compute).value


# --- Invalidation ---------------------------------------------------------------------


class CacheScoped:
    """Mixin for models whose rows feed the query cache.

    ``cache_scope_fields`` are the values (``values()`` lookups) that
    ``cache_scopes_from`` needs to name the scopes of a row; ``cache_scopes`` names the
    scopes of an instance (signals), by default from the same fields read off it (a
    model whose fields span a relation overrides it).
    """

    cache_scope_fields: tuple[str, ...] = ()
    # True when a cascade delete from the parent always bumps this row's scopes too
    # (so the per-row signal, which may need a query, is skipped).
    cache_cascade_covered: bool = False

    @classmethod
    def cache_scopes_from(cls, values: dict[str, Any]) -> list[str]:
        raise NotImplementedError

    def cache_scopes(self) -> list[str]:
        return self.cache_scopes_from(
            {name: getattr(self, name) for name in self.cache_scope_fields}
        )


def scopes_of_rows(queryset: models.QuerySet) -> list[str]:
    model = queryset.model
    rows = queryset.order_by().values(*model.cache_scope_fields).distinct()
    return [scope for row in rows for scope in model.cache_scopes_from(row)]


def scopes_of_objects(objs: Iterable[models.Model]) -> list[str]:
    return [scope for obj in objs for scope in obj.cache_scopes()]


class InvalidatingQuerySet(models.QuerySet):
    """Bulk writes bump the scopes of the rows they touch (save/delete send signals).

    ``update`` and ``delete`` read the affected rows' scopes first: one small query.
    """

    def update(self, **kwargs) -> int:
        scopes = scopes_of_rows(self)
        fields = {name.split("__")[0].removesuffix("_id") for name in self.model.cache_scope_fields}
        moved = any(name.removesuffix("_id") in fields for name in kwargs)
        # Rows that move (a new owner, say) change their new scopes too.
        pks = list(self.values_list("pk", flat=True)) if moved else []
        count = super().update(**kwargs)
        if pks:
            scopes += scopes_of_rows(self.model._default_manager.filter(pk__in=pks))
        bump(*scopes)
        return count

    def delete(self):
        scopes = scopes_of_rows(self)
        result = super().delete()
        bump(*scopes)
        return result

    def bulk_create(self, objs, *args, **kwargs):
        created = super().bulk_create(objs, *args, **kwargs)
        bump(*scopes_of_objects(created))
        return created

    def bulk_update(self, objs, fields, *args, **kwargs):
        objs = list(objs)
        count = super().bulk_update(objs, fields, *args, **kwargs)
        bump(*scopes_of_objects(objs))
        return count


def on_instance_change(sender, instance, **kwargs) -> None:
    """post_save / post_delete receiver for CacheScoped models (connected in rra.apps)."""
    if kwargs.get("raw"):  # loaddata
        return
    origin = kwargs.get("origin")
    if sender.cache_cascade_covered and origin is not None and not _same_model(origin, sender):
        return  # deleted with its parent, whose own delete bumps the same scopes
    bump(*instance.cache_scopes())


def _same_model(origin, model) -> bool:
    origin_model = origin.model if isinstance(origin, models.QuerySet) else type(origin)
    return issubclass(origin_model, model)
