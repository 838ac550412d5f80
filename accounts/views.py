from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse, reverse_lazy
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts import limits, services
from accounts.forms import ApiTokenForm, PasswordResetForm, SignInForm, SignUpForm
from accounts.models import ApiToken
from rra import telemetry
from rra.ratelimit import limit_request, too_many_requests_page


class SignInView(auth_views.LoginView):
    """Sign-in, limited as accounts/limits.py describes (429 with Retry-After).

    A limit only ever lasts until its window ends; nothing locks an account for good,
    and a successful sign-in clears nothing an attacker could use.
    """

    form_class = SignInForm
    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        limited = limits.check_sign_in(request, self.get_form_class()(request))
        return limited or super().post(request, *args, **kwargs)


def signup(request: HttpRequest) -> HttpResponse:
    """Sign-up answers the same for every address (see accounts/services.py)."""
    if not settings.SIGNUP_ENABLED:
        return render(request, "accounts/signup_closed.html", status=404)
    if request.user.is_authenticated:
        return redirect(settings.LOGIN_REDIRECT_URL)
    form = SignUpForm(request.POST or None)
    if request.method == "POST":
        limited = limits.refused(
            request,
            "signup",
            limits.address_and_email(request),
            settings.SIGNUP_RATE,
            template="accounts/signup.html",
            form=form,
            what="sign-up attempts",
        )
        if limited:
            return limited
        if form.is_valid():
            email = form.cleaned_data["email"]
            try:
                services.start_sign_up(request, email=email, name=form.cleaned_data["name"])
            except services.EmailNotSent:
                form.add_error(
                    None,
                    "We could not send the email that finishes signing up. "
                    "Please try again in a few minutes.",
                )
                return render(request, "accounts/signup.html", {"form": form}, status=503)
            return render(request, "accounts/signup_sent.html", {"email": email})
        return render(request, "accounts/signup.html", {"form": form}, status=400)
    return render(request, "accounts/signup.html", {"form": form})


class SignUpConfirmView(auth_views.PasswordResetConfirmView):
    """The emailed sign-up link: choose a password, and the account is active and
    signed in. The link is spent once a password is set."""

    template_name = "accounts/signup_confirm.html"
    token_generator = services.sign_up_tokens
    post_reset_login = True
    post_reset_login_backend = "accounts.backends.CachedModelBackend"
    success_url = reverse_lazy("home")
    reset_url_token = "set-password"  # noqa: S105 - Django's placeholder, not a secret

    def get_user(self, uidb64):
        user = super().get_user(uidb64)
        return user if user is not None and services.is_pending(user) else None

    def form_valid(self, form):
        form.user.is_active = True
        response = super().form_valid(form)
        telemetry.signup_confirmed(form.user)
        messages.success(self.request, "Welcome! Your account is ready.")
        return response


class PasswordResetView(auth_views.PasswordResetView):
    """Asks for an address and always answers the same; the email goes only to an
    active account's address. Limited per client address and per email address. A mail
    server failure is logged by Django and answered the same too (only known addresses
    need the server, so a different answer would tell which exist)."""

    template_name = "accounts/password_reset.html"
    form_class = PasswordResetForm
    email_template_name = "accounts/email/password_reset.txt"
    subject_template_name = "accounts/email/password_reset_subject.txt"
    success_url = reverse_lazy("accounts:password_reset_done")

    def post(self, request, *args, **kwargs):
        limited = limits.refused(
            request,
            "password-reset",
            limits.address_and_email(request),
            settings.PASSWORD_RESET_RATE,
            template=self.template_name,
            form=self.get_form(),
            what="password-reset requests",
        )
        return limited or super().post(request, *args, **kwargs)


class PasswordResetDoneView(auth_views.PasswordResetDoneView):
    template_name = "accounts/password_reset_done.html"


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "accounts/password_reset_confirm.html"
    post_reset_login = True
    post_reset_login_backend = "accounts.backends.CachedModelBackend"
    success_url = reverse_lazy("home")

    def form_valid(self, form):
        response = super().form_valid(form)
        messages.success(self.request, "Your password was changed.")
        return response


class PasswordChangeView(auth_views.PasswordChangeView):
    """Changing the password needs the current one: wrong guesses are limited per
    account (PASSWORD_CHANGE_RATE), so a borrowed session cannot try many."""

    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("accounts:profile")

    def _counter(self) -> list[str]:
        return [f"user:{self.request.user.pk}"]

    def post(self, request, *args, **kwargs):
        limited = limits.refused(
            request,
            "password-change",
            self._counter(),
            settings.PASSWORD_CHANGE_RATE,
            template=self.template_name,
            form=self.get_form(),
            what="wrong current passwords",
            increment=False,
        )
        return limited or super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        if "old_password" in form.errors:
            limits.action_blocked(
                self.request, "password-change", self._counter(), settings.PASSWORD_CHANGE_RATE
            )
        return super().form_invalid(form)

    def form_valid(self, form):
        response = super().form_valid(form)
        messages.success(self.request, "Your password was changed.")
        return response


@never_cache  # may show a new token's secret: never stored by the browser or the service worker
@login_required
def profile(request: HttpRequest) -> HttpResponse:
    form = ApiTokenForm(request.POST or None)
    new_token = None
    status = 200
    if request.method == "POST":
        if form.is_valid():
            limited = limit_request(request, group="token-create", rate=settings.TOKEN_CREATE_RATE)
            if limited:
                return too_many_requests_page(
                    request,
                    limited,
                    "new tokens",
                    back_url=reverse("accounts:profile"),
                    back_label="Back to your profile",
                )
            days = form.cleaned_data["expires_in_days"]
            _token, new_token = ApiToken.issue(
                user=request.user,
                name=form.cleaned_data["name"],
                expires_at=timezone.now() + timedelta(days=days) if days else None,
            )
            form = ApiTokenForm()
            status = 201
        else:
            status = 400
    tokens = ApiToken.objects.active().filter(user=request.user).order_by("-created_at", "-id")
    page = Paginator(tokens, settings.TOKENS_PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "accounts/profile.html",
        {"form": form, "tokens": page, "new_token": new_token},
        status=status,
    )


@login_required
@require_POST
def revoke_token(request: HttpRequest, token_id: int) -> HttpResponse:
    token = get_object_or_404(ApiToken.objects.active(), pk=token_id, user=request.user)
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    messages.success(request, f"Token “{token.name}” was revoked.")
    return redirect("accounts:profile")
