"""The query cache: read-through caching of per-viewer query results in Redis.

The contract (docs/architecture.md, "The cache contract"):

- Each app declares its namespaces (``Namespace``): a name, a version, the type of the
  values it holds, a TTL and who may read an entry. One namespace holds one type of
  value; a change to what an entry holds bumps the version, so old entries are never
  read as new ones.
- ``cached(namespace, scopes=..., viewer=..., request=..., compute=...)`` is the one way
  to read: it derives the key (namespace, version, scopes, viewer, the request's query
  string, host and scheme, any extra ``params``), checks access before anything goes
  out, reads the entry and its scopes' generations in one round trip, and stores
  compute()'s value for the namespace's TTL on a miss. Without ``compute`` it only
  peeks: a hit or None, nothing computed, stored or counted.
- ``bump(*scopes)`` invalidates everything filed under those scopes.
- ``read_ahead(lookups, keys)`` reads entries (and plain keys: a session) a request
  will need in one round trip; ``take_ahead(key)`` hands a plain key's value over once.

Access is checked inside cached(), before a cached body goes out, hit or miss: by the
namespace's rule (``Namespace.access(viewer_key, scopes)``: the entry is the viewer's
own, or the same for everyone) or, for a namespace without one, by the call's
``access()`` (which raises to refuse: Http404, PermissionDenied) whose result compute
receives. A call with neither is refused (ValueError).

Invalidation is by *scope generations*. Every entry is filed under the scopes whose
data it holds (``user:12``, ``chats:user:12``, ``chat:<uuid>``, ``token:<hash>``,
``documents:user:12``) and stores the generations those scopes had when it was
computed. A write bumps the generations of the scopes it touches, so the entry no longer
matches, in any process, and is computed again. Writes reach the bumps through signals
(save, delete, cascades, admin) and through ``InvalidatingQuerySet`` (``update``,
``delete``, ``bulk_create``, ``bulk_update``), see each model's ``cache_scopes``.
Generations expire (GENERATION_TTL, longer than any entry lives): a generation that is
gone is created anew, different from every earlier one, so its entries only miss.

One entry can only ever answer the question it was computed for: the entry stores the
namespace, version, scopes and viewer it was computed for, which a hit must match, and
a value of the namespace's type. Two chats, or two users, cannot share an entry whatever
their generations.

A bump happens twice: at once (the writer's own next read sees its write) and again when
the transaction commits (another process may have cached the old rows in between).
Inside a real transaction nothing is read from or written to the cache, so rows that may
still roll back are never cached. A generation is the time of the bump in microseconds
plus a random suffix: unique without a counter, and it doubles as the scope's
last-modified time for HTTP caching.

With the cache store down, everything is computed from the database (the "default"
cache swallows Redis errors); a bump lost to an outage is bounded by the TTLs. While
Redis's circuit breaker refuses (rra/redis_breaker.py: it did not answer a moment ago),
nothing is even tried: no read, read-ahead, store or bump (``unreachable()``).
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db import connection, models, transaction

from rra import redis_breaker, telemetry

_SUFFIX = 1000  # generation = microseconds * _SUFFIX + random suffix
# Seconds a scope's generation lives without a bump; longer than any entry's TTL.
GENERATION_TTL = 7 * 24 * 3600


@dataclass(frozen=True)
class Namespace:
    """What one kind of entry is: declared once, by the app whose data it holds.

    value: the type (or types) of what compute() returns; a stored value of another
    type is a miss. ttl: seconds an entry lives, read at each store (so settings can
    change it); 0 turns the namespace off. access: who may read an entry, checked by
    cached() before anything goes out: ``"everyone"`` (the viewer is EVERYONE: the same
    entry for all), ``"own:<kind>"`` (one of the entry's scopes is ``<kind>:<viewer>``,
    ``chats:user:12`` for user 12), or None (each call passes its own access())."""

    name: str
    version: int
    value: type | tuple[type, ...]
    ttl: Callable[[], int] = field(compare=False)
    access: str | None = None

    def __post_init__(self) -> None:
        if ":" in self.name or not self.name:
            raise ValueError(f"a namespace name has no colon: {self.name!r}")
        rule = self.access
        if rule not in (None, "everyone") and (not rule.startswith("own:") or rule == "own:"):
            raise ValueError(f"unknown access rule {rule!r}")


def _gen_key(scope: str) -> str:
    return f"qc:gen:{scope}"


def _new_generation() -> int:
    return time.time_ns() // 1000 * _SUFFIX + random.randrange(_SUFFIX)  # noqa: S311


def _generations(scopes: Iterable[str]) -> dict[str, int] | None:
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
            cache.add(key, _new_generation(), GENERATION_TTL)
        found = {**found, **cache.get_many(missing)}
        if any(key not in found for key in missing):
            return None
    return [int(found[key]) for key in gen_keys]


def _changed_at(versions: Iterable[int]) -> datetime | None:
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
        if unreachable():
            return  # lost, like a refused write: bounded by the TTLs
        generation = _new_generation()
        cache.set_many({_gen_key(scope): generation for scope in scopes}, GENERATION_TTL)

    apply()
    if _in_transaction():
        transaction.on_commit(apply)


def _in_transaction() -> bool:
    """True inside an atomic block of the code (not the one a TestCase wraps tests in)."""
    return any(not getattr(block, "_from_testcase", False) for block in connection.atomic_blocks)


@dataclass(frozen=True)
class Entry:
    value: Any
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


def _viewer_key(viewer: Any) -> str:
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


def _request_params(request) -> list:
    """What a cached body depends on in its request besides scopes and viewer: the
    query string, and the host and scheme that links in it are built with (request:
    Django's or DRF's, which share them)."""
    if request is None:
        return []
    return [sorted(request.GET.lists()), request.get_host(), request.scheme]


@dataclass(frozen=True)
class Lookup:
    """One entry, named: a cached() call's namespace, scopes, viewer, request and params,
    for reading ahead (cached(..., ahead=[...])). Its keys are derived once."""

    namespace: Namespace
    scopes: tuple[str, ...]
    viewer: Any
    request: Any = None
    params: tuple = ()

    @cached_property
    def viewer_key(self) -> str:
        return _viewer_key(self.viewer)

    @cached_property
    def identity(self) -> tuple:
        """What a hit must have been stored for."""
        scopes = tuple(sorted(set(self.scopes)))
        if not scopes or not all(isinstance(scope, str) and scope for scope in scopes):
            raise ValueError(f"a cached {self.namespace.name} entry needs the scopes it holds")
        return (self.namespace.name, self.namespace.version, scopes, self.viewer_key)

    @cached_property
    def key(self) -> str:
        params = [*_request_params(self.request), *self.params]
        digest = hashlib.sha256(
            json.dumps([*self.identity, params], default=str, separators=(",", ":")).encode()
        ).hexdigest()[:40]
        return f"qc:{self.namespace.name}:v{self.namespace.version}:{digest}"

    @cached_property
    def gen_keys(self) -> tuple[str, ...]:
        return tuple(_gen_key(scope) for scope in self.identity[2])

    def allowed(self) -> bool:
        """The namespace's access rule (see Namespace) for this viewer and these scopes."""
        rule = self.namespace.access
        if rule == "everyone":
            return self.viewer_key == "*"
        kind = rule.removeprefix("own:") if rule else None
        return (
            bool(kind)
            and self.viewer_key.startswith("user:")
            and (f"{kind}:{self.viewer_key}" in self.identity[2])
        )


def cached(
    namespace: Namespace | Lookup,
    *,
    scopes: Iterable[str] = (),
    viewer: Any = None,
    request: Any = None,
    params: Iterable[Any] = (),
    compute: Callable[..., Any] | None = None,
    access: Callable[[], Any] | None = None,
    ahead: Iterable[Lookup] = (),
) -> Entry | None:
    """The entry of (namespace, scopes, viewer, request, params): the cached value of
    compute() if none of its scopes was written since it was stored, else compute()
    stored for the namespace's TTL. One Redis round trip on a hit (the entry and its
    scopes' generations in one MGET). Counts hits and misses.

    scopes: what the value is made of, naming the objects (``chat:<uuid>``); at least
    one. viewer: the user (or anonymous user) whose view this is, a UserId, or EVERYONE.
    request: the request whose query string, host and scheme the value depends on.
    params: anything else it depends on. access: for a namespace without an access rule,
    run first (it raises to refuse); compute receives its result. compute None: a peek,
    the hit or None. ahead: other entries this request reads next, read in the same
    round trip (each used once, by its own cached() call). A prepared Lookup may stand
    for namespace, scopes, viewer, request and params."""
    lookup = (
        namespace
        if isinstance(namespace, Lookup)
        else Lookup(namespace, tuple(scopes), viewer, request, tuple(params))
    )
    allowed = None
    if lookup.namespace.access is not None:
        if not lookup.allowed():
            raise PermissionDenied(f"{lookup.viewer_key} may not read this entry")
    elif access is not None:
        allowed = access()
    else:
        raise ValueError(f"namespace {lookup.namespace.name!r} has no access rule: pass access")
    run = (lambda: compute(allowed)) if access is not None and compute is not None else compute
    read = _read(lookup, ahead)
    if read is None:  # off, in a transaction, or the store is down: the database answers
        if run is None:
            return None
        handed, value = _take_handed(lookup)
        return Entry(_checked(lookup, value if handed else run()), hit=False, changed_at=None)
    versions, stored = read
    hit = stored is not _MISS
    if run is None:
        if not hit:
            return None
        telemetry.cache_lookup(lookup.namespace.name, hit=True)
        return Entry(stored, hit=True, changed_at=_changed_at(versions))
    telemetry.cache_lookup(lookup.namespace.name, hit=hit)
    if hit:
        value = stored
    else:
        value = _checked(lookup, run())
        cache.set(lookup.key, (lookup.identity, versions, value), lookup.namespace.ttl())
    return Entry(value, hit=hit, changed_at=_changed_at(versions))


def _checked(lookup: Lookup, value: Any) -> Any:
    if not isinstance(value, lookup.namespace.value):
        raise TypeError(
            f"namespace {lookup.namespace.name!r} holds {lookup.namespace.value}, not {type(value)}"
        )
    return value


# --- Several lookups of one request in one round trip ------------------------------------
#
# A request that knows early which entries it will read (the API token's, then the chat
# list's) names them in cached(..., ahead=[...]): their entries and generations come in
# the same MGET, and each cached() that follows takes its own part, once. What is read
# ahead lives only for the request (RequestScopeMiddleware) and any bump() in it drops
# all of it, so a generation read ahead is never older than the request's own writes.

_PREFETCHED: ContextVar[dict[str, dict] | None] = ContextVar("qc_prefetched", default=None)


class RequestScopeMiddleware:
    """What cached(..., ahead=...) read lives for this request only."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        token = _PREFETCHED.set({})
        try:
            return self.get_response(request)
        finally:
            _PREFETCHED.reset(token)


_MISS = object()
_RAW = "raw:"  # what read_ahead() read of a plain cache key, in the request's store


def read_ahead(lookups: Iterable[Lookup] = (), keys: Iterable[str] = ()) -> None:
    """Read these lookups' entries and these plain keys of the default cache (a
    session's, say) in one MGET, for the request's later cached() calls and
    take_ahead(); each used once. Outside a request, in a transaction or with the cache
    store down (every key then reads as absent), the later reads go their own way."""
    store = _PREFETCHED.get()
    if store is None or _in_transaction() or unreachable():
        return
    planned = [a for a in lookups if _on(a)]
    keys = list(keys)
    names = [*keys, *(k for a in planned for k in (a.key, *a.gen_keys))]
    if not names:
        return
    found = cache.get_many(names)
    for a in planned:
        store[a.key] = {k: found[k] for k in (a.key, *a.gen_keys) if k in found}
    for key in keys:
        store[_RAW + key] = {key: found[key]} if key in found else {}


def take_ahead(key: str) -> tuple[bool, Any]:
    """(True, the value or None when absent) of a plain key read_ahead() read for this
    request and that no write of the request has dropped since; else (False, None).
    Once: a second take reads nothing."""
    store = _PREFETCHED.get()
    found = store.pop(_RAW + key, None) if store else None
    if found is None:
        return False, None
    return True, found.get(key)


_HANDED = "db:"  # what hand_over() put in the request's store, by the entry's key


def hand_over(lookup: Lookup, value: Any) -> None:
    """While Redis is unreachable: ``value``, just read from the database together with
    something else (a session with its user, in one query), is what this request's
    next cached(lookup, compute=...) returns instead of computing it again. Once, for
    this request only, and dropped by any bump() in it (a write of the request may have
    changed it); nothing happens outside a request, in a transaction, or when Redis
    answers (then the entry's own read decides)."""
    store = _PREFETCHED.get()
    if store is None or _in_transaction() or not unreachable():
        return
    store[_HANDED + lookup.key] = {_HANDED: value}


def _take_handed(lookup: Lookup) -> tuple[bool, Any]:
    store = _PREFETCHED.get()
    found = store.pop(_HANDED + lookup.key, None) if store else None
    if found is None or not unreachable():
        return False, None
    return True, found[_HANDED]


def _on(lookup: Lookup) -> bool:
    return bool(settings.QUERY_CACHE_ENABLED and lookup.namespace.ttl())


def unreachable(alias: str = "default") -> bool:
    """True while the circuit breaker of the cache's Redis refuses commands: the
    database answers without a cache round trip being tried (and refused)."""
    location = settings.CACHES.get(alias, {}).get("LOCATION")
    return isinstance(location, str) and "://" in location and redis_breaker.refusing(location)


def _read(lookup: Lookup, ahead: Iterable[Lookup] = ()) -> tuple[list[int], Any] | None:
    """(the scopes' generations, the stored value or _MISS when there is none that is
    current); None when the cache is off for the namespace, in a transaction, or down.
    From what was read ahead for this lookup (used once), else one MGET, which also
    reads the ``ahead`` lookups for the request's later calls."""
    if not _on(lookup) or _in_transaction() or unreachable():
        return None
    store = _PREFETCHED.get()
    found = store.pop(lookup.key, None) if store else None
    if found is None:
        planned = [a for a in ahead if _on(a)] if store is not None else []
        keys = [lookup.key, *lookup.gen_keys]
        found = cache.get_many([*keys, *(k for a in planned for k in (a.key, *a.gen_keys))])
        for a in planned:
            store[a.key] = {k: found[k] for k in (a.key, *a.gen_keys) if k in found}
    versions = _versions(lookup.gen_keys, found)
    if versions is None:
        return None
    stored = found.get(lookup.key)
    # An entry holds the generations read *before* its value was computed: a write
    # during the computation leaves it out of date, never wrongly current. It also holds
    # what it was computed for, which must be what is asked now, and a value of the
    # namespace's type.
    current = (
        isinstance(stored, tuple)
        and len(stored) == 3
        and stored[0] == lookup.identity
        and stored[1] == versions
        and isinstance(stored[2], lookup.namespace.value)
    )
    return versions, stored[2] if current else _MISS


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


def _scopes_of_rows(queryset: models.QuerySet) -> list[str]:
    model = queryset.model
    rows = queryset.order_by().values(*model.cache_scope_fields).distinct()
    return [scope for row in rows for scope in model.cache_scopes_from(row)]


def _scopes_of_objects(objs: Iterable[models.Model]) -> list[str]:
    return [scope for obj in objs for scope in obj.cache_scopes()]


class InvalidatingQuerySet(models.QuerySet):
    """Bulk writes bump the scopes of the rows they touch (save/delete send signals).

    ``update`` and ``delete`` read the affected rows' scopes first: one small query.
    """

    def update(self, **kwargs) -> int:
        scopes = _scopes_of_rows(self)
        fields = {name.split("__")[0].removesuffix("_id") for name in self.model.cache_scope_fields}
        moved = any(name.removesuffix("_id") in fields for name in kwargs)
        # Rows that move (a new owner, say) change their new scopes too.
        pks = list(self.values_list("pk", flat=True)) if moved else []
        count = super().update(**kwargs)
        if pks:
            scopes += _scopes_of_rows(self.model._default_manager.filter(pk__in=pks))
        bump(*scopes)
        return count

    def delete(self):
        scopes = _scopes_of_rows(self)
        result = super().delete()
        bump(*scopes)
        return result

    def bulk_create(self, objs, *args, **kwargs):
        created = super().bulk_create(objs, *args, **kwargs)
        bump(*_scopes_of_objects(created))
        return created

    def bulk_update(self, objs, fields, *args, **kwargs):
        objs = list(objs)
        count = super().bulk_update(objs, fields, *args, **kwargs)
        bump(*_scopes_of_objects(objs))
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
