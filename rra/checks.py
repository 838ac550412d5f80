"""`check --deploy` for the security middleware RRA lists instead of Django's.

Django's deploy checks of the HSTS, nosniff, HTTPS-redirect, Referrer-Policy,
Cross-Origin-Opener-Policy and X-Frame-Options settings (security.W004-W008, W019,
W021, W022, E023, E024) run only while django.middleware.security.SecurityMiddleware or
XFrameOptionsMiddleware is listed in MIDDLEWARE, and security.W001/W002 warn when they
are not. RRA lists neither: rra.middleware.SecurityHeadersMiddleware sets their headers
on every response and rra.middleware.HTTPSRedirectMiddleware redirects (each of
Django's would be one more layer per request setting the same headers again). So the
settings silence W001/W002, and this module runs Django's own checks of those settings
as if its middleware were listed, while RRA's is, and warns (rra.W001/rra.W002, not
silenced) when a stack has neither Django's middleware nor RRA's.
"""

from __future__ import annotations

from django.conf import settings
from django.core import checks
from django.core.checks.security import base
from django.test.utils import override_settings

DJANGO_SECURITY = "django.middleware.security.SecurityMiddleware"
DJANGO_XFRAME = "django.middleware.clickjacking.XFrameOptionsMiddleware"
HEADERS = "rra.middleware.SecurityHeadersMiddleware"
REDIRECT = "rra.middleware.HTTPSRedirectMiddleware"

# Django's checks that look at a setting only while SecurityMiddleware is listed.
_SECURITY_CHECKS = (
    base.check_sts,
    base.check_sts_include_subdomains,
    base.check_sts_preload,
    base.check_content_type_nosniff,
    base.check_referrer_policy,
    base.check_cross_origin_opener_policy,
)


def _run_as_listed(middleware: list[str], functions, app_configs) -> list[checks.CheckMessage]:
    with override_settings(MIDDLEWARE=[*settings.MIDDLEWARE, *middleware]):
        return [message for check in functions for message in check(app_configs)]


@checks.register(checks.Tags.security, deploy=True)
def check_security_middleware(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    listed = settings.MIDDLEWARE
    messages: list[checks.CheckMessage] = []
    if DJANGO_SECURITY not in listed:
        if HEADERS in listed:
            messages += _run_as_listed([DJANGO_SECURITY], _SECURITY_CHECKS, app_configs)
        if REDIRECT in listed:
            messages += _run_as_listed([DJANGO_SECURITY], [base.check_ssl_redirect], app_configs)
        if HEADERS not in listed or REDIRECT not in listed:
            messages.append(
                checks.Warning(
                    f"Neither {DJANGO_SECURITY} nor both of {HEADERS} and {REDIRECT} are"
                    " in MIDDLEWARE: responses miss the security headers or plain HTTP is"
                    " not redirected to HTTPS.",
                    id="rra.W001",
                )
            )
    if DJANGO_XFRAME not in listed:
        if HEADERS in listed:
            messages += _run_as_listed([DJANGO_XFRAME], [base.check_xframe_deny], app_configs)
        else:
            messages.append(
                checks.Warning(
                    f"Neither {DJANGO_XFRAME} nor {HEADERS} is in MIDDLEWARE: responses"
                    " carry no X-Frame-Options header.",
                    id="rra.W002",
                )
            )
    return messages
