from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from rest_framework import authentication, exceptions

from accounts.backends import cached_user
from accounts.models import ApiToken, _hash_token
from rra.querycache import cached

# last_used_at is a hint for the owner, not an audit log: write it at most this often.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer rra_…` with a personal API token."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                "Malformed Authorization header: expected 'Bearer <token>'."
            )
        try:
            raw = header[1].decode()
        except UnicodeError:
            raise exceptions.AuthenticationFailed("Invalid API token.") from None
        token = _active_token(raw)
        user = cached_user(token.user_id) if token is not None else None
        if user is None or not user.is_active:
            raise exceptions.AuthenticationFailed("Invalid or revoked API token.")
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return user, token

    def authenticate_header(self, request) -> str:
        return self.keyword


def _active_token(raw: str) -> ApiToken | None:
    """The active token with this secret, through the query cache ("users"): issuing,
    revoking or deleting a token invalidates its entry (scope token:<hash>)."""
    key_hash = _hash_token(raw)
    return cached(
        "users",
        scopes=[f"token:{key_hash}"],
        key=["token", key_hash],
        compute=lambda: ApiToken.objects.active().filter(key_hash=key_hash).first(),
    )
