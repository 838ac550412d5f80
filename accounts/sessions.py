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
Redis's circuit breaker refuses nothing is read ahead and the database answers. Then
the same remembered id lets one query read the session row and its user's row
(``_get_session_from_db``), and the user goes to ``cached_user`` of this request
(``querycache.hand_over``) instead of costing a second round trip; what decides is
again the session as read (a session of another user, or without one, gets no user
handed over, and Django's check of the user and its session hash runs as always). A view
that reads rows of the user can have them in that statement too (``read_session_with``:
the chat list's first page, chats/chat_list.py), used once that check has passed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.models import Session
from django.db import connection
from django.utils import timezone

from accounts.backends import user_columns, user_from_row, user_lookup
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

    def _get_session_from_db(self):
        """The session row (or None), as Django reads it; while Redis is unreachable
        and this process knows the session's user, read together with that user's row
        in one query, the user handed over to this request's cached_user."""
        owner = _OWNERS.get(self.session_key) if self.session_key else None
        if owner is None or not querycache.unreachable(settings.SESSION_CACHE_ALIAS):
            return super()._get_session_from_db()
        found = self._with_user(owner)
        if found is None:  # no such session, or its user is gone: as Django reads it
            return super()._get_session_from_db()
        return found[0]

    def _with_user(
        self, owner: int, rows_sql: str = "", rows_params: Sequence = ()
    ) -> tuple[Session, dict, list[tuple]] | None:
        """The session row, its data, and (in the same statement) the row of the user
        this process remembers for it, handed over to the request's cached_user when it
        is the session's user, and the rows of ``rows_sql`` (a SELECT that names the
        user's id as ``u."id"``; none when it finds none); None when there is no such
        session or user."""
        columns, width = user_columns()
        lateral, extra = ("", "")
        if rows_sql:
            lateral, extra = f" LEFT JOIN LATERAL ({rows_sql}) x ON true", ", x.*"
        # Column names from the models and the caller's SELECT; every value a parameter.
        sql = (
            f'SELECT s."session_data", s."expire_date", {columns}{extra} '  # noqa: S608
            f'FROM "django_session" s JOIN "accounts_user" u ON u."id" = %s{lateral} '
            'WHERE s."session_key" = %s AND s."expire_date" > %s'
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [owner, *rows_params, self.session_key, timezone.now()])
            rows = cursor.fetchall()
        if not rows:
            return None
        session = self.model(
            session_key=self.session_key, session_data=rows[0][0], expire_date=rows[0][1]
        )
        data = self.decode(session.session_data)
        if str(data.get(SESSION_KEY)) == str(owner):
            querycache.hand_over(user_lookup(owner), user_from_row(rows[0][2:]))
        found = [row[2 + width :] for row in rows] if rows_sql else []
        return session, data, [row for row in found if any(v is not None for v in row)]


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


def read_session_with(
    request, rows_sql: str, rows_params: Sequence = ()
) -> tuple[int | None, list[tuple]]:
    """While Redis is unreachable: the request's session, its user and the rows of
    ``rows_sql`` (a SELECT naming the user's id as ``u."id"``) in one statement, when
    this process knows the session's user. The session is loaded from its row as
    cached_db's load() would (so it is not read again), the user handed over to the
    request's cached_user, and (that user's id, the rows) returned: rows of that user,
    which the caller uses only once Django's own check of the session has found the
    request's user to be that one. (None, []) when nothing was read: Redis answers, the
    session is loaded already or not this engine's, its user not known, or no such
    session (then it is read its usual way)."""
    session = getattr(request, "session", None)
    if (
        not isinstance(session, SessionStore)
        or session.session_key is None
        or hasattr(session, "_session_cache")  # loaded already
        or not querycache.unreachable(settings.SESSION_CACHE_ALIAS)
    ):
        return None, []
    owner = _OWNERS.get(session.session_key)
    found = session._with_user(owner, rows_sql, rows_params) if owner is not None else None
    if found is None:
        return None, []
    _, data, rows = found
    session._session_cache = data  # what load() returns
    if data.get(SESSION_KEY) is not None:
        _remember(session.session_key, data[SESSION_KEY])
    return owner, rows
