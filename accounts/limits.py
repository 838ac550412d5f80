"""Limits on everything that checks a password or sends an email to an address.

Failed sign-ins are counted three ways (django-ratelimit fixed windows, in the
"ratelimit" cache):

- per account *and* client address (LOGIN_RATE): a guesser is stopped quickly, and a
  stranger's failures from their address do not lock the owner out of theirs;
- per client address across accounts (LOGIN_IP_RATE): one address spraying many
  accounts;
- per account across addresses (LOGIN_ACCOUNT_RATE, a higher ceiling): a guesser
  spreading over many addresses.

Counting is done by the ``user_login_failed`` signal, which Django sends from every
``authenticate()`` (the site's sign-in, Django admin's, any later one), and the
authentication backend refuses while a limit is exhausted: no sign-in path can skip the
limit by construction. The views check first only to answer 429 with Retry-After.
The limits fail closed: without the counter store, nobody signs in (503).
"""

from __future__ import annotations

import contextlib

from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from rra.ratelimit import RateLimitUnavailable, Usage, client_ip, retry_after_text, usage


def _normalise(email: str) -> str:
    return (email or "").strip().lower()


def _sign_in_counters(request: HttpRequest, email: str) -> list[tuple[str, str, str]]:
    ip = client_ip(request)
    counters = [("login:ip", ip, settings.LOGIN_IP_RATE)]
    account = _normalise(email)
    if account:
        counters += [
            ("login:account-ip", f"{account}|{ip}", settings.LOGIN_RATE),
            ("login:account", account, settings.LOGIN_ACCOUNT_RATE),
        ]
    return counters


def _usages(request, counters, *, increment: bool) -> list[Usage]:
    found = []
    for group, value, rate in counters:
        hit = usage(
            request, group=group, value=value, rate=rate, increment=increment, fail_open=False
        )
        if hit is not None:
            found.append(hit)
    return found


def sign_in_blocked(request: HttpRequest, email: str) -> int | None:
    """Seconds until this sign-in may be tried again, or None when it may be tried now.
    Raises RateLimitUnavailable when the counters cannot be read."""
    exhausted = [
        u
        for u in _usages(request, _sign_in_counters(request, email), increment=False)
        if u.exhausted
    ]
    return max(u.retry_after for u in exhausted) if exhausted else None


@receiver(user_login_failed, dispatch_uid="accounts-count-failed-sign-in")
def _count_failed_sign_in(sender, credentials, request=None, **kwargs) -> None:
    if request is None:
        return
    # Without the store the check before the next attempt fails closed.
    with contextlib.suppress(RateLimitUnavailable):
        email = credentials.get("username", "")
        _usages(request, _sign_in_counters(request, email), increment=True)


def limited_sign_in_response(
    request: HttpRequest, form, *, retry_after: int | None
) -> HttpResponse:
    """429 (limited) or 503 (counter store down) on the sign-in page."""
    if retry_after is None:
        message, status, retry_after = (
            "Sign-in is temporarily unavailable. Please try again in a minute.",
            503,
            60,
        )
    else:
        message, status = (
            "Too many failed sign-in attempts. For your security, sign-in is paused; "
            f"try again in {retry_after_text(retry_after)}.",
            429,
        )
    response = render(
        request, "accounts/login.html", {"form": form, "limited_message": message}, status=status
    )
    response["Retry-After"] = str(retry_after)
    return response


def check_sign_in(request: HttpRequest, form) -> HttpResponse | None:
    """The 429/503 answer for a sign-in POST that may not be tried now, else None."""
    try:
        retry_after = sign_in_blocked(request, request.POST.get("username", ""))
    except RateLimitUnavailable:
        return limited_sign_in_response(request, form, retry_after=None)
    if retry_after is None:
        return None
    return limited_sign_in_response(request, form, retry_after=retry_after)


# --- Other limited actions ---------------------------------------------------------


def action_blocked(
    request: HttpRequest, group: str, values: list[str], rate: str, *, increment: bool = True
) -> int | None:
    """Count one hit (or only read, increment=False) on each of the action's counters;
    the seconds to wait when any is over its limit, else None. Fails open."""
    waits = []
    for value in values:
        hit = usage(
            request, group=group, value=value, rate=rate, increment=increment, fail_open=True
        )
        if hit is not None and (hit.count > hit.limit if increment else hit.exhausted):
            waits.append(hit.retry_after)
    return max(waits) if waits else None


def too_many(
    request: HttpRequest, template: str, context: dict, retry_after: int, what: str
) -> HttpResponse:
    context = {
        **context,
        "limited_message": f"Too many {what}. Please try again in {retry_after_text(retry_after)}.",
    }
    response = render(request, template, context, status=429)
    response["Retry-After"] = str(retry_after)
    return response


def refused(
    request: HttpRequest,
    group: str,
    counters: list[str],
    rate: str,
    *,
    template: str,
    form,
    what: str,
    increment: bool = True,
) -> HttpResponse | None:
    """The 429 page (the form again, with when to retry) when the action is over its
    limit, else None; counts this request unless increment=False."""
    wait = action_blocked(request, group, counters, rate, increment=increment)
    if wait is None:
        return None
    return too_many(request, template, {"form": form}, wait, what)


def address_and_email(request: HttpRequest) -> list[str]:
    """Counters of a request that sends mail: its client address and the address
    mailed to (so that one inbox cannot be flooded from many places)."""
    counters = [ip_value(request)]
    if request.POST.get("email"):
        counters.append(email_value(request.POST["email"]))
    return counters


def ip_value(request: HttpRequest) -> str:
    return f"ip:{client_ip(request)}"


def email_value(email: str) -> str:
    return f"email:{_normalise(email)}"
