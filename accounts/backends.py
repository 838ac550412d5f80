from __future__ import annotations

from django.contrib.auth.backends import ModelBackend

from accounts.models import User
from rra.querycache import EVERYONE, cached


def cached_user(user_id) -> User | None:
    """The user with this id through the query cache ("users", 5 min); None if gone."""
    try:
        user_id = int(user_id)
    except (TypeError, ValueError):
        return None
    return cached(
        "users",
        scopes=[User.cache_scope(user_id)],
        viewer=EVERYONE,
        compute=lambda: User._default_manager.filter(pk=user_id).first(),
    )


class CachedModelBackend(ModelBackend):
    """Django's ModelBackend, with the per-request user lookup of a session served from
    the query cache (every save or bulk update of the user invalidates it)."""

    def get_user(self, user_id):
        user = cached_user(user_id)
        return user if user is not None and self.user_can_authenticate(user) else None
