from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse_lazy
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts.forms import ApiTokenForm, SignInForm, SignUpForm
from accounts.models import ApiToken
from rra.ratelimit import RateLimitUnavailable, client_ip, retry_after_text, usage


def _login_limits(request: HttpRequest, email: str, *, increment: bool):
    """Failed-sign-in counters: one per client IP and one per account (across IPs)."""
    keys = [("login:ip", client_ip(request))]
    if email:
        keys.append(("login:account", email.strip().lower()))
    return [
        usage(
            request,
            group=group,
            value=value,
            rate=settings.LOGIN_RATE,
            increment=increment,
            fail_open=False,
        )
        for group, value in keys
    ]


class SignInView(auth_views.LoginView):
    """Sign-in, limited to LOGIN_RATE failed attempts per account and per client IP.

    A limit only ever lasts until its window ends (Retry-After says when); nothing locks
    an account for good, and a successful sign-in clears nothing an attacker could use.
    """

    form_class = SignInForm
    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        email = request.POST.get("username", "")
        try:
            limits = [u for u in _login_limits(request, email, increment=False) if u]
        except RateLimitUnavailable:
            return self._unavailable(request)
        exhausted = [u for u in limits if u.exhausted]
        if exhausted:
            return self._limited(request, max(u.retry_after for u in exhausted))
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        email = self.request.POST.get("username", "")
        try:
            _login_limits(self.request, email, increment=True)
        except RateLimitUnavailable:
            return self._unavailable(self.request)
        return super().form_invalid(form)

    def _limited(self, request, retry_after: int) -> HttpResponse:
        response = render(
            request,
            "accounts/login.html",
            {
                "form": self.get_form_class()(request),
                "limited_message": (
                    "Too many failed sign-in attempts. For your security, sign-in is paused; "
                    f"try again in {retry_after_text(retry_after)}."
                ),
            },
            status=429,
        )
        response["Retry-After"] = str(retry_after)
        return response

    def _unavailable(self, request) -> HttpResponse:
        response = render(
            request,
            "accounts/login.html",
            {
                "form": self.get_form_class()(request),
                "limited_message": (
                    "Sign-in is temporarily unavailable. Please try again in a minute."
                ),
            },
            status=503,
        )
        response["Retry-After"] = "60"
        return response


def signup(request: HttpRequest) -> HttpResponse:
    if not settings.SIGNUP_ENABLED:
        return render(request, "accounts/signup_closed.html", status=404)
    if request.user.is_authenticated:
        return redirect(settings.LOGIN_REDIRECT_URL)
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="accounts.backends.CachedModelBackend")
        messages.success(request, "Welcome! Your account is ready.")
        return redirect(settings.LOGIN_REDIRECT_URL)
    return render(request, "accounts/signup.html", {"form": form})


class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("accounts:profile")

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
            _token, new_token = ApiToken.issue(user=request.user, name=form.cleaned_data["name"])
            form = ApiTokenForm()
            status = 201
        else:
            status = 400
    tokens = ApiToken.objects.active().filter(user=request.user)
    return render(
        request,
        "accounts/profile.html",
        {"form": form, "tokens": tokens, "new_token": new_token},
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
