"""Sign-up by email confirmation: nothing this module answers tells whether an address
already has an account. Each sign-up sends one email to the address: a link to finish
signing up (new or still-unconfirmed address) or a note that an account exists (with
the sign-in and password-reset links)."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from accounts.models import User
from rra import telemetry
from rra.housekeeping import delete_in_batches

logger = logging.getLogger(__name__)


class SignUpTokenGenerator(PasswordResetTokenGenerator):
    """Its own salt: a sign-up link is never a password-reset link, nor the reverse. It
    is spent by setting the password (the hash is part of the token)."""

    key_salt = "accounts.services.SignUpTokenGenerator"


sign_up_tokens = SignUpTokenGenerator()


class EmailNotSent(Exception):
    """The mail server refused or could not be reached."""


def is_pending(user: User) -> bool:
    """Signed up, but the link was not followed yet (User.objects.pending() in SQL)."""
    return not user.is_active and not user.has_usable_password() and user.last_login is None


def start_sign_up(request, *, email: str, name: str) -> None:
    """Create the pending account (or find the existing one) and send the one email."""
    try:
        with transaction.atomic():
            user = User.objects.select_for_update().with_email(email).first()
            if user is None:
                user = User(email=email, name=name, is_active=False)
                user.set_unusable_password()
                user.save()
                telemetry.signup_requested(user)
            elif is_pending(user):
                # A pending account is made anew by each sign-up: its age counts from the
                # latest, whose link is the one that works (housekeeping prunes pending
                # accounts whose last link has expired).
                user.created_at = timezone.now()
                user.name = name or user.name
                user.save(update_fields=["created_at", "name"])
    except IntegrityError:  # the same address signed up at the same moment
        user = User.objects.with_email(email).get()
    if is_pending(user):
        link = reverse(
            "accounts:signup_confirm",
            kwargs={
                "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
                "token": sign_up_tokens.make_token(user),
            },
        )
        _send(request, user, "signup_confirm", {"link": request.build_absolute_uri(link)})
    else:
        _send(
            request,
            user,
            "signup_exists",
            {
                "signin": request.build_absolute_uri(reverse("accounts:login")),
                "reset": request.build_absolute_uri(reverse("accounts:password_reset")),
            },
        )


def _send(request, user: User, template: str, context: dict) -> None:
    context = {**context, "user": user, "days": max(1, settings.PASSWORD_RESET_TIMEOUT // 86400)}
    subject = render_to_string(f"accounts/email/{template}_subject.txt", context).strip()
    body = render_to_string(f"accounts/email/{template}.txt", context)
    try:
        send_mail(subject, body, None, [user.email])
    except OSError as exc:  # smtplib.SMTPException too: refused, or no mail server
        logger.warning("could not send %s email: %s", template, exc)
        raise EmailNotSent(str(exc)) from exc


def pending_signups_prune(*, now) -> int:
    """Housekeeping (rra.registry.PRUNERS, "pending_signups"): sign-ups never confirmed,
    once their last link has expired (PASSWORD_RESET_TIMEOUT): accounts that are
    inactive, have no usable password and never signed in, and own nothing (an account
    an admin deactivated, or gave anything to, stays). Signing up again later simply
    starts a new one."""
    expired = now - timedelta(seconds=settings.PASSWORD_RESET_TIMEOUT)
    owns_nothing = {"documents": None, "chats": None, "api_tokens": None, "votes": None}
    expired_pending = User.objects.pending().filter(
        is_superuser=False, created_at__lt=expired, **owns_nothing
    )
    return delete_in_batches(expired_pending)
