from __future__ import annotations

from django.contrib.auth.backends import ModelBackend

from accounts.models import USERS_CACHE, User
from rra.querycache import EVERYONE, Lookup, cached


def user_lookup(user_id: int) -> Lookup:
    """The query-cache entry of a user by id (what cached_user reads; a request that
    knows the id early reads it ahead: accounts/sessions.py)."""
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
