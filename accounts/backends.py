from __future__ import annotations

import functools

from django.contrib.auth.backends import ModelBackend
from django.db import connection

from accounts.models import USERS_CACHE, User
from rra.querycache import EVERYONE, Lookup, cached


@functools.lru_cache(maxsize=4096)
def user_lookup(user_id: int) -> Lookup:
    """The query-cache entry of a user by id (what cached_user reads; a request that
    knows the id early reads it ahead: accounts/sessions.py). It depends on the id
    alone, so each process names it once per user: its keys (a hash) are derived once,
    not on every request that reads the user."""
    return Lookup(USERS_CACHE, scopes=(User.cache_scope(user_id),), viewer=EVERYONE)


def cached_user(user_id) -> User | None:
    """The user with this id through the query cache ("users", 5 min); None if gone."""
    try:
        user_id = int(user_id)
    except (TypeError, ValueError):
        return None
    return cached(
        user_lookup(user_id),
        compute=lambda: User._default_manager.filter(pk=user_id).first(),
    ).value


@functools.cache
def _user_columns() -> tuple[tuple[str, ...], str]:
    fields = User._meta.concrete_fields
    return tuple(f.attname for f in fields), ", ".join(f'u."{f.column}"' for f in fields)


def user_columns() -> tuple[str, int]:
    """Every column of the user table as ``u."column"``, and how many, for a statement
    that reads a user (as ``u``) with other rows; ``user_from_row`` makes the user."""
    names, columns = _user_columns()
    return columns, len(names)


def user_from_row(row) -> User:
    """The user whose columns (user_columns()) start this row."""
    names, _ = _user_columns()
    return User.from_db(connection.alias, names, row[: len(names)])


class CachedModelBackend(ModelBackend):
    """Django's ModelBackend, with the per-request user lookup of a session served from
    the query cache (every save or bulk update of the user invalidates it)."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        """Refuses while a sign-in limit for this account or address is exhausted, or
        the limit store is down (accounts/limits.py): every sign-in path is limited."""
        if request is not None:
            from accounts import limits
            from rra.ratelimit import RateLimitUnavailable

            try:
                if limits.sign_in_blocked(request, username or "") is not None:
                    return None
            except RateLimitUnavailable:
                return None
        return super().authenticate(request, username=username, password=password, **kwargs)

    def get_user(self, user_id):
        user = cached_user(user_id)
        return user if user is not None and self.user_can_authenticate(user) else None
