from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from django.db import connection
from django.utils import timezone
from rest_framework import authentication, exceptions

from accounts.backends import user_columns, user_from_row
from accounts.models import USERS_CACHE, ApiToken, User, hash_token
from rra.querycache import EVERYONE, Lookup, cached, unreachable

# last_used_at is a hint for the owner, not an audit log: write it at most this often.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer rra_…` with a personal API token."""

    keyword = "Bearer"

    def authenticate(self, request):
        raw = bearer_secret(request)
        if raw is None:
            return None
        context = getattr(request, "parser_context", None) or {}  # DRF's request, or Django's
        return token_user(raw, view=context.get("view"), request=request)

    def authenticate_header(self, request) -> str:
        return self.keyword


def bearer_secret(request) -> str | None:
    """The secret of the request's `Authorization: Bearer <secret>` header; None without
    such a header. AuthenticationFailed when it is malformed."""
    header = authentication.get_authorization_header(request).split()
    if not header or header[0].lower() != ApiTokenAuthentication.keyword.lower().encode():
        return None
    if len(header) != 2:
        raise exceptions.AuthenticationFailed(
            "Malformed Authorization header: expected 'Bearer <token>'."
        )
    try:
        return header[1].decode()
    except UnicodeError:
        raise exceptions.AuthenticationFailed("Invalid API token.") from None


def token_user(raw: str, *, view=None, request=None) -> tuple[User, ApiToken]:
    """The user and token of an API token's secret, its use noted; AuthenticationFailed
    unless the token is active and its user too. (view, request: see _active_token.)
    While Redis is unreachable there is no cached token to read: the token and its user
    come from one statement written once, not one the ORM builds on every request."""
    if unreachable():
        token = _token_statement(raw)[0]
    else:
        token = _active_token(raw, view=view, request=request)
    user = token.user if token is not None else None
    if user is None or not user.is_active:
        raise exceptions.AuthenticationFailed("Invalid or revoked API token.")
    if token.is_expired:  # the cached token is checked against the clock on each use
        raise exceptions.AuthenticationFailed("This API token has expired.")
    _note_use(token)
    return user, token


def token_user_with(
    raw: str, rows_sql: str, rows_params: Sequence = ()
) -> tuple[User, ApiToken, list[tuple]] | None:
    """While Redis is unreachable (no token entry to read the page's with): token_user's
    user and token and the rows of ``rows_sql`` (a SELECT naming the user's id as
    ``u."id"``) in one statement, the use noted. None when the token is not active or
    its user not: the caller leaves the request to DRF, which refuses it its way."""
    token, rows = _token_statement(raw, rows_sql, rows_params)
    if token is None or not token.user.is_active:
        return None
    _note_use(token)
    return token.user, token, rows


def _token_statement(
    raw: str, rows_sql: str = "", rows_params: Sequence = ()
) -> tuple[ApiToken | None, list[tuple]]:
    """The active token of this secret with its user (``token.user``), as
    ``ApiToken.objects.active()`` finds it, and the rows of ``rows_sql`` (none when it
    finds none), in one statement; (None, []) when there is no such token."""
    columns, width = user_columns()
    token_fields = ApiToken._meta.concrete_fields
    token_columns = ", ".join(f't."{f.column}"' for f in token_fields)
    lateral, extra = ("", "")
    if rows_sql:
        lateral, extra = f"LEFT JOIN LATERAL ({rows_sql}) x ON true ", ", x.*"
    # Column names from the models and the caller's SELECT; every value is a parameter.
    sql = (
        f"SELECT {columns}, {token_columns}{extra} "  # noqa: S608
        'FROM "accounts_apitoken" t JOIN "accounts_user" u ON u."id" = t."user_id" '
        f"{lateral}"
        'WHERE t."key_hash" = %s AND t."revoked_at" IS NULL '
        'AND (t."expires_at" IS NULL OR t."expires_at" > %s)'
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*rows_params, hash_token(raw), timezone.now()])
        rows = cursor.fetchall()
    if not rows:
        return None, []
    end = width + len(token_fields)
    token = ApiToken.from_db(
        connection.alias, [f.attname for f in token_fields], rows[0][width:end]
    )
    token.user = user_from_row(rows[0])
    found = [row[end:] for row in rows] if rows_sql else []
    return token, [row for row in found if any(v is not None for v in row)]


# When this process last wrote each token's last_used_at (the cached token keeps the
# value it was read with, so it cannot tell).
_WRITTEN: dict[int, datetime] = {}


def _note_use(token: ApiToken) -> None:
    """Write last_used_at at most once per LAST_USED_RESOLUTION per process. The write
    goes through the base manager: it changes nothing authentication depends on, so it
    does not invalidate the cached token."""
    now = timezone.now()
    last = max(filter(None, (token.last_used_at, _WRITTEN.get(token.pk))), default=None)
    if last is None or now - last > LAST_USED_RESOLUTION:
        if len(_WRITTEN) >= _MAX_OWNERS:
            _WRITTEN.clear()
        _WRITTEN[token.pk] = now
        ApiToken._base_manager.filter(pk=token.pk).update(last_used_at=now)


# Which user a token hash belongs to never changes: each process remembers it, with the
# lookup of the token and its user (named once), so that they come from the query cache
# in one round trip.
_OWNERS: dict[str, tuple[int, Lookup]] = {}
_MAX_OWNERS = 10_000


def _active_token(raw: str, *, view=None, request=None) -> ApiToken | None:
    """The active token with this secret and its user, through the query cache
    ("users"): issuing, revoking or deleting the token, or any change to its user,
    invalidates the entry (scopes token:<hash> and user:<id>). A view that names the
    cache entries it will read for a user (``cache_ahead(request, user_id)``: Lookups)
    gets them in the same round trip as the token."""
    key_hash = hash_token(raw)
    known = _OWNERS.get(key_hash)
    if known is None:
        owner_id = cached(
            USERS_CACHE,
            scopes=[ApiToken.cache_scope(key_hash)],
            viewer=EVERYONE,
            params=["owner"],
            compute=lambda: ApiToken.objects.filter(key_hash=key_hash)
            .values_list("user_id", flat=True)
            .first(),
        ).value
        if owner_id is None:
            return None
        known = (owner_id, _token_lookup(key_hash, owner_id))
        if len(_OWNERS) >= _MAX_OWNERS:
            _OWNERS.clear()
        _OWNERS[key_hash] = known
    owner_id, token = known
    ahead = getattr(view, "cache_ahead", None)
    return cached(
        token,
        compute=lambda: ApiToken.objects.active()
        .filter(key_hash=key_hash)
        .select_related("user")
        .first(),
        ahead=ahead(request, owner_id) if ahead is not None and request is not None else (),
    ).value


def _token_lookup(key_hash: str, owner_id: int) -> Lookup:
    return Lookup(
        USERS_CACHE,
        scopes=(ApiToken.cache_scope(key_hash), User.cache_scope(owner_id)),
        viewer=EVERYONE,
    )
