"""The session engine: Django's cached_db, whose cache read can come with others.

A browser's request to a cached page of the API (the chat list) needs three things from
Redis: its session, its user and the page's entry. With the token they come in one MGET
(accounts/authentication.py); with a session the user's id is inside the session, so it
would take three round trips. Each process remembers which user a session key belongs
to (it never changes: a sign-in as someone else, or again, gives the browser a new key;
a sign-out deletes it), so ``read_ahead_session`` can name the user's entry and the
page's before the session is read, and read all three at once; ``SessionStore.load``
takes the session from what was read. The remembered id is only a hint of what to read:
what decides is the session as read, checked as Django always checks it
(``django.contrib.auth.get_user``: the user's own record, its session hash, is_active),
so a session ended (sign-out, password change, expiry, admin) is refused as before.

Everything else is cached_db's, as rra/sessions.py keeps it: writes go to the database
and the cache, a session missing from the cache is read from the database, and while
Redis's circuit breaker refuses nothing is read ahead and the database answers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from django.conf import settings
from django.contrib.auth import SESSION_KEY

from accounts.backends import user_lookup
from rra import querycache, sessions

_OWNERS: dict[str, int] = {}
_MAX_OWNERS = 50_000


class SessionStore(sessions.SessionStore):
    def load(self) -> dict:
        data = None
        if self.session_key is not None and settings.SESSION_CACHE_ALIAS == "default":
            _, data = querycache.take_ahead(self.cache_key)
        if data is None:
            data = super().load()
        owner = data.get(SESSION_KEY)
        if owner is not None and self.session_key is not None:
            _remember(self.session_key, owner)
        return data


def _remember(session_key: str, owner) -> None:
    try:
        owner = int(owner)
    except (TypeError, ValueError):
        return
    if _OWNERS.get(session_key) != owner:
        if len(_OWNERS) >= _MAX_OWNERS:
            _OWNERS.clear()
        _OWNERS[session_key] = owner


def read_ahead_session(
    request, ahead: Callable[[int], Iterable[querycache.Lookup]] = lambda user_id: ()
) -> None:
    """Read the request's session, its user's entry and ``ahead(user_id)``'s in one
    round trip, when this process has seen the session before (else the session alone:
    the next request gets all three). Nothing happens when the session was loaded
    already, or is not this engine's, or lives in another cache than the query cache."""
    session = getattr(request, "session", None)
    if (
        not isinstance(session, SessionStore)
        or session.session_key is None
        or hasattr(session, "_session_cache")  # loaded already
        or settings.SESSION_CACHE_ALIAS != "default"
    ):
        return
    owner = _OWNERS.get(session.session_key)
    lookups = [user_lookup(owner), *ahead(owner)] if owner is not None else []
    querycache.read_ahead(lookups, keys=[session.cache_key])
