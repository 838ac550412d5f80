"""Django admin's site with the site's sign-in limits in front of its login view.

The limit is enforced for every sign-in path by the authentication backend and the
``user_login_failed`` counter (accounts/limits.py); this only makes admin's sign-in
answer 429 with Retry-After, as the site's does, instead of a generic error.
"""

from __future__ import annotations

from django.contrib import admin

from accounts import limits
from accounts.forms import SignInForm


class AdminSite(admin.AdminSite):
    def login(self, request, extra_context=None):
        if request.method == "POST":
            limited = limits.check_sign_in(request, SignInForm(request))
            if limited is not None:
                return limited
        return super().login(request, extra_context)
