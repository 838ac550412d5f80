"""SESSION_ENGINE: Django's cached_db sessions, minus the cache while Redis's circuit
breaker refuses (rra/redis_breaker.py).

cached_db already falls back to the database when the cache misses or fails, so an
outage costs nothing but the refused commands: a read and a store for every signed-in
request, each refused and logged. While the breaker refuses, this store reads and
writes the session in the database only, trying nothing (Django's DummyCache stands in
for the cache); once Redis answers again it is cached_db as before. A session written
during the outage may leave an older copy in the cache, as a refused write always did;
the session's cache TTL bounds it.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.sessions.backends import cached_db
from django.core.cache.backends.dummy import DummyCache

from rra import querycache

_NO_CACHE = DummyCache("sessions-without-redis", {})


class SessionStore(cached_db.SessionStore):
    @property
    def _cache(self):
        if querycache.unreachable(settings.SESSION_CACHE_ALIAS):
            return _NO_CACHE
        return self.__dict__["_cache_store"]

    @_cache.setter
    def _cache(self, value) -> None:  # cached_db's __init__ sets it
        self.__dict__["_cache_store"] = value
