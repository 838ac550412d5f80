"""Typed readers for environment variables.

Every setting in rra/settings.py comes through one of these helpers, so that a bad
value stops start-up with a message that names the variable and says what was expected.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class Env:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = os.environ if environ is None else environ

    def raw(self, name: str, aliases: Sequence[str] = ()) -> tuple[str, str | None]:
        """The first of name and its aliases that is set (and not empty)."""
        for candidate in (name, *aliases):
            value = self.environ.get(candidate)
            if value is not None and value.strip() != "":
                return candidate, value.strip()
        return name, None

    @staticmethod
    def fail(name: str, expected: str, value: str) -> ImproperlyConfigured:
        return ImproperlyConfigured(
            f"Environment variable {name} must be {expected}; got {value!r}."
        )

    def str(
        self,
        name: str,
        default: str | None = None,
        *,
        aliases: Sequence[str] = (),
        choices: Sequence[str] | None = None,
    ) -> str | None:
        used, value = self.raw(name, aliases)
        if value is None:
            return default
        if choices is not None and value not in choices:
            raise self.fail(used, "one of " + ", ".join(choices), value)
        return value

    def bool(self, name: str, default: bool) -> bool:
        used, value = self.raw(name)
        if value is None:
            return default
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise self.fail(used, "a boolean (true/false, 1/0, yes/no, on/off)", value)

    def int(
        self, name: str, default: int, *, min: int | None = None, max: int | None = None
    ) -> int:
        used, value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise self.fail(used, "a whole number", value) from None
        self._bounds(used, number, value, min, max)
        return number

    def float(
        self,
        name: str,
        default: float,
        *,
        min: float | None = None,
        max: float | None = None,
    ) -> float:
        used, value = self.raw(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise self.fail(used, "a number", value) from None
        self._bounds(used, number, value, min, max)
        return number

    def _bounds(self, name, number, value, min, max) -> None:
        if min is not None and number < min:
            raise self.fail(name, f"at least {min}", value)
        if max is not None and number > max:
            raise self.fail(name, f"at most {max}", value)

    def list(self, name: str, default: Sequence[str] = ()) -> list[str]:
        _, value = self.raw(name)
        if value is None:
            return list(default)
        return [item.strip() for item in value.split(",") if item.strip()]

    def url(
        self,
        name: str,
        default: str | None = None,
        *,
        aliases: Sequence[str] = (),
        schemes: Sequence[str] = ("http", "https"),
    ) -> str | None:
        used, value = self.raw(name, aliases)
        if value is None:
            return default
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise self.fail(used, "a valid URL", value) from None
        if parts.scheme not in schemes:
            raise self.fail(
                used, "a URL starting with " + " or ".join(f"{s}://" for s in schemes), value
            )
        if parts.scheme in ("http", "https") and not parts.hostname:
            raise self.fail(used, "a URL with a host", value)
        return value
