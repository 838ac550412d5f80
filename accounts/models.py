from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from rra.querycache import CacheScoped, InvalidatingQuerySet, Namespace


class UserQuerySet(InvalidatingQuerySet):
    def with_email(self, email: str) -> UserQuerySet:
        """The user with this address in any letter case, through the lower(email) index
        (``email__iexact`` compiles to UPPER(...) LIKE UPPER(...), which no index serves)."""
        return self.alias(email_lower=Lower("email")).filter(email_lower=email.lower())

    def pending(self) -> UserQuerySet:
        """Signed up, but the link was not followed yet (accounts.services.is_pending, in
        SQL): inactive, no usable password, never signed in."""
        from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX

        return self.filter(
            is_active=False,
            password__startswith=UNUSABLE_PASSWORD_PREFIX,
            last_login__isnull=True,
        )


class UserManager(BaseUserManager.from_queryset(UserQuerySet)):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **fields) -> User:
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **fields) -> User:
        fields.setdefault("type", User.Type.REGULAR)
        fields.setdefault("is_superuser", False)
        return self._create_user(email, password, **fields)

    def create_superuser(self, email: str, password: str | None = None, **fields) -> User:
        # createsuperuser may pass is_staff; being staff is what type=admin means here.
        fields.pop("is_staff", None)
        fields["type"] = User.Type.ADMIN
        fields["is_superuser"] = True
        return self._create_user(email, password, **fields)

    def get_by_natural_key(self, username: str) -> User:
        return self.with_email(username).get()


class User(CacheScoped, AbstractBaseUser, PermissionsMixin):
    """A person who signs in with an email address."""

    class Type(models.TextChoices):
        REGULAR = "regular", "Regular"
        ADMIN = "admin", "Admin"

    email = models.EmailField("email address", unique=True)
    name = models.CharField(max_length=150, blank=True)
    type = models.CharField(max_length=16, choices=Type.choices, default=Type.REGULAR)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        indexes = [
            models.Index(fields=["type"], name="user_type_idx"),
            models.Index(fields=["created_at"], name="user_created_at_idx"),
        ]
        constraints = [
            # Sign-in and sign-up look addresses up case-insensitively (with_email); this
            # index serves that lookup and keeps two accounts from differing only in case.
            models.UniqueConstraint(Lower("email"), name="user_email_lower_uniq"),
        ]

    def __str__(self) -> str:
        return self.email

    @property
    def is_staff(self) -> bool:
        """Admins may use Django admin; there is no separate staff flag to drift."""
        return self.type == self.Type.ADMIN

    def clean(self) -> None:
        super().clean()
        self.email = type(self).objects.normalize_email(self.email).lower()

    def save(self, *args, **kwargs) -> None:
        # set_password() keeps the new raw password in _password until the save (a hash
        # upgrade on sign-in clears it first): a real change revokes every API token, as
        # it ends every other session.
        password_changed = self._password is not None and not self._state.adding
        super().save(*args, **kwargs)
        if password_changed:
            ApiToken.objects.active().filter(user=self).update(revoked_at=timezone.now())

    def get_full_name(self) -> str:
        return self.name or self.email

    def get_short_name(self) -> str:
        return self.name or self.email.split("@")[0]

    # The query cache holds the signed-in user of sessions and API tokens.
    cache_scope_fields = ("id",)

    @staticmethod
    def cache_scope(user_id) -> str:
        return f"user:{user_id}"

    @classmethod
    def cache_scopes_from(cls, values: dict) -> list[str]:
        return [cls.cache_scope(values["id"])]


TOKEN_PREFIX = "rra_"  # noqa: S105 - a public prefix, not a secret


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiTokenQuerySet(InvalidatingQuerySet):
    def active(self) -> ApiTokenQuerySet:
        """Not revoked and not expired."""
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=timezone.now())
        )


class ApiToken(CacheScoped, models.Model):
    """A personal API token. Only its SHA-256 is stored; the secret is shown once."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    key_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=12)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="Optional: the token stops working at this time."
    )

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "revoked_at"], name="apitoken_user_idx")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @classmethod
    def issue(
        cls, *, user: User, name: str, expires_at: datetime | None = None
    ) -> tuple[ApiToken, str]:
        """Create a token; return it with the raw secret (never stored)."""
        raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(
            user=user,
            name=name,
            key_hash=hash_token(raw),
            prefix=raw[: len(TOKEN_PREFIX) + 4],
            expires_at=expires_at,
        )
        return token, raw

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and not self.is_expired

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    # The query cache maps a token's hash to its user (accounts.authentication).
    cache_scope_fields = ("key_hash",)

    @staticmethod
    def cache_scope(key_hash: str) -> str:
        return f"token:{key_hash}"

    @classmethod
    def cache_scopes_from(cls, values: dict) -> list[str]:
        return [cls.cache_scope(values["key_hash"])]


# The query cache's namespace of users and tokens (accounts.backends,
# accounts.authentication): a user, a token with its user, or a token's owner's id
# (None: no such token); the same for every viewer.
USERS_CACHE = Namespace(
    "users",
    version=1,
    value=(User, ApiToken, int, type(None)),
    ttl=lambda: settings.QUERY_CACHE_TTLS["users"],
    access="everyone",
)
