"""Security headers and the Content-Security-Policy on every kind of response."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.templatetags.static import static
from django.test import Client

pytestmark = pytest.mark.django_db

POLICY = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],  # + the response's nonce when the page has scripts
    "style-src": ["'self'"],
    "img-src": ["'self'"],
    "connect-src": ["'self'"],
    "worker-src": ["'self'"],
    "manifest-src": ["'self'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
    "object-src": ["'none'"],
    "frame-ancestors": ["'none'"],
}
DENIED_FEATURES = {"camera", "microphone", "geolocation", "payment", "usb", "serial", "hid"}
HSTS = "max-age=31536000; includeSubDomains; preload"
SCRIPT_TAG = re.compile(r"<script\b[^>]*>")
NONCE_ATTR = re.compile(r'\snonce="([^"]*)"')


def policy(response) -> dict[str, list[str]]:
    directives = {}
    for part in response["Content-Security-Policy"].split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def header_nonce(response) -> str | None:
    found = [v for v in policy(response)["script-src"] if v.startswith("'nonce-")]
    assert len(found) <= 1
    return found[0].removeprefix("'nonce-").removesuffix("'") if found else None


def assert_security_headers(response, *, secure: bool = False) -> None:
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-DNS-Prefetch-Control"] == "off"
    features = dict(item.split("=") for item in response["Permissions-Policy"].split(", "))
    assert set(features) >= DENIED_FEATURES
    assert set(features.values()) == {"()"}
    assert "clipboard-write" not in features  # the chat's Copy button
    directives = policy(response)
    nonce = header_nonce(response)
    if nonce:
        directives["script-src"].remove(f"'nonce-{nonce}'")
    assert directives == POLICY
    if secure:
        assert response["Strict-Transport-Security"] == HSTS
    else:
        assert "Strict-Transport-Security" not in response  # HSTS only over HTTPS


def assert_scripts_carry_the_nonce(response) -> str:
    """Every <script> of the page has the nonce of the response's policy."""
    nonce = header_nonce(response)
    tags = SCRIPT_TAG.findall(response.content.decode())
    assert tags, "the page has no script"
    assert nonce and len(nonce) >= 16
    for tag in tags:
        match = NONCE_ATTR.search(tag)
        assert match and match.group(1) == nonce, tag
    return nonce


# --- pages -------------------------------------------------------------------------------


def test_it_sends_the_headers_and_nonce_on_a_signed_out_page(client):
    response = client.get("/accounts/login/", secure=True)
    assert response.status_code == 200
    assert_security_headers(response, secure=True)
    assert_scripts_carry_the_nonce(response)


def test_it_sends_the_headers_and_nonce_on_the_signed_in_pages(owner_client):
    for url in ("/", "/documents/", "/accounts/profile/", "/offline/"):
        response = owner_client.get(url, secure=True)
        assert response.status_code == 200, url
        assert_security_headers(response, secure=True)
        assert_scripts_carry_the_nonce(response)


def test_it_uses_a_new_nonce_for_every_response(owner_client):
    nonces = {assert_scripts_carry_the_nonce(owner_client.get("/")) for _ in range(3)}
    assert len(nonces) == 3


def test_it_allows_no_inline_script_or_style_and_no_eval(client):
    directives = policy(client.get("/accounts/login/"))
    for name in ("script-src", "style-src", "default-src"):
        assert "'unsafe-inline'" not in directives[name]
        assert "'unsafe-eval'" not in directives[name]
    assert "'unsafe-inline'" not in client.get("/accounts/login/")["Content-Security-Policy"]


def test_it_leaves_no_inline_style_in_the_pages(owner_client):
    for url in ("/", "/documents/", "/accounts/profile/"):
        page = owner_client.get(url).content.decode()
        assert not re.search(r"<style\b|\sstyle=", page), url


# --- other responses ----------------------------------------------------------------------


def test_it_sends_the_headers_on_api_json(owner_client):
    response = owner_client.get("/api/me", secure=True)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert_security_headers(response, secure=True)
    assert header_nonce(response) is None  # no page, no nonce


def test_it_sends_the_headers_on_static_files_served_by_whitenoise(client):
    response = client.get(static("js/chat.js"), HTTP_ACCEPT_ENCODING="br")
    assert response.status_code == 200
    assert response["Content-Encoding"] == "br"  # whitenoise answered, not a view
    assert_security_headers(response)
    response.close()


def test_it_sends_the_headers_on_the_404_page_with_its_nonce(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert "Page not found" in response.content.decode()
    assert_security_headers(response)
    assert_scripts_carry_the_nonce(response)


def test_it_sends_the_headers_on_a_json_404_under_the_api(owner_client):
    response = owner_client.get("/api/no/such/thing")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert_security_headers(response)


@pytest.mark.urls("rra.tests.urls_failing")
def test_it_sends_the_headers_on_the_500_page():
    response = Client(raise_request_exception=False).get("/test/fail")
    assert response.status_code == 500
    assert_security_headers(response)
    assert_scripts_carry_the_nonce(response)


def test_it_sends_the_headers_on_metrics_and_health(client):
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert_security_headers(metrics)
    health = client.get("/api/health/live")
    assert health.status_code == 200
    assert_security_headers(health)


# --- the admin and the DEBUG pages still work under the policy -------------------------------


def test_it_keeps_the_admin_scripts_external(client, admin_user):
    client.force_login(admin_user)
    for url in (
        "/admin/",
        "/admin/accounts/user/",
        f"/admin/accounts/user/{admin_user.pk}/change/",
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        assert_security_headers(response)
        page = response.content.decode()
        for tag in SCRIPT_TAG.findall(page):
            # External, or a JSON data block (never executed).
            assert "src=" in tag or 'type="application/json"' in tag, (url, tag)
        assert not re.search(r"<style\b|\sstyle=", page), url


@pytest.mark.urls("rra.tests.dev_urls")
def test_it_puts_the_nonce_on_the_debug_pages(owner_client, settings):
    settings.DEBUG = True
    response = owner_client.get("/dev/vlist/")
    assert response.status_code == 200
    assert len(SCRIPT_TAG.findall(response.content.decode())) == 2
    assert_scripts_carry_the_nonce(response)


def test_the_permissions_policy_is_the_settings_one(client):
    assert client.get("/accounts/login/")["Permissions-Policy"] == settings.PERMISSIONS_POLICY


def test_a_304_keeps_the_cached_policy_but_gets_the_other_headers(owner_client):
    """rra/conditional.py answers 304 for an unchanged page: the browser keeps the page
    and the policy it came with (whose nonce matches its scripts), so the 304 has none.
    The compressed page's ETag is weak and still matches."""
    page = owner_client.get("/", HTTP_ACCEPT_ENCODING="br")
    assert page["Content-Encoding"] == "br" and page["ETag"].startswith('W/"')
    again = owner_client.get("/", HTTP_ACCEPT_ENCODING="br", HTTP_IF_NONE_MATCH=page["ETag"])
    assert again.status_code == 304
    assert "Content-Security-Policy" not in again
    assert again["X-Frame-Options"] == "DENY"
    assert again["Permissions-Policy"] == settings.PERMISSIONS_POLICY


def test_a_response_without_a_nonce_gets_the_policy_of_the_settings_as_they_are(
    owner_client, settings
):
    """A response that uses no nonce gets a policy built once per process
    (rra.middleware.CSPMiddleware): a change of the settings reaches it, the
    report-only policy too, and a response's own exemption still holds."""
    first = owner_client.get("/api/me")
    assert policy(first) == POLICY and "Content-Security-Policy-Report-Only" not in first
    assert (
        owner_client.get("/api/me")["Content-Security-Policy"] == first["Content-Security-Policy"]
    )
    settings.CONTENT_SECURITY_POLICY = {
        "DIRECTIVES": {**settings.CONTENT_SECURITY_POLICY["DIRECTIVES"], "img-src": ["'none'"]}
    }
    settings.CONTENT_SECURITY_POLICY_REPORT_ONLY = {"DIRECTIVES": {"default-src": ["'none'"]}}
    changed = owner_client.get("/api/me")
    assert policy(changed)["img-src"] == ["'none'"]
    assert changed["Content-Security-Policy-Report-Only"] == "default-src 'none'"
    settings.CONTENT_SECURITY_POLICY_REPORT_ONLY = {
        "DIRECTIVES": {"default-src": ["'none'"]},
        "EXCLUDE_URL_PREFIXES": ["/api/me"],
    }
    assert "Content-Security-Policy-Report-Only" not in owner_client.get("/api/me")


def test_a_view_with_its_own_policy_still_gets_it(rf):
    """django-csp's per-view decorators build that response's policy as before."""
    from csp.decorators import csp_update
    from django.http import HttpResponse

    from rra.middleware import CSPMiddleware

    @csp_update({"img-src": ["https://example.org"]})
    def view(request):
        return HttpResponse("ok")

    updated = CSPMiddleware(view)(rf.get("/x"))
    assert "https://example.org" in policy(updated)["img-src"]
    plain = CSPMiddleware(lambda request: HttpResponse("ok"))(rf.get("/x"))
    assert policy(plain) == POLICY


def test_a_view_exempt_from_x_frame_options_gets_none_and_a_view_s_own_is_kept(rf, settings):
    """X-Frame-Options is SecurityHeadersMiddleware's (Django's XFrameOptionsMiddleware is
    not listed): the setting, in upper case as Django writes it, unless the view is
    @xframe_options_exempt or set its own."""
    from django.http import HttpResponse
    from django.views.decorators.clickjacking import (
        xframe_options_exempt,
        xframe_options_sameorigin,
    )

    from rra.middleware import SecurityHeadersMiddleware

    settings.X_FRAME_OPTIONS = "deny"
    plain = SecurityHeadersMiddleware(lambda request: HttpResponse("ok"))(rf.get("/x"))
    assert plain["X-Frame-Options"] == "DENY"
    exempt = xframe_options_exempt(lambda request: HttpResponse("ok"))
    assert "X-Frame-Options" not in SecurityHeadersMiddleware(exempt)(rf.get("/x"))
    own = xframe_options_sameorigin(lambda request: HttpResponse("ok"))
    assert SecurityHeadersMiddleware(own)(rf.get("/x"))["X-Frame-Options"] == "SAMEORIGIN"


# --- the HTTPS redirect ------------------------------------------------------------------

HEX_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def access_lines(log_lines):
    """The access lines (rra.access) written during the test, as JSON."""
    return lambda: [line for line in log_lines() if line["logger"] == "rra.access"]


def test_neither_of_django_s_security_middleware_is_a_layer_of_its_own():
    """Their headers are SecurityHeadersMiddleware's; the redirect is below the access
    line and metrics, so that a redirect is observed."""
    stack = settings.MIDDLEWARE
    assert "django.middleware.security.SecurityMiddleware" not in stack
    assert "django.middleware.clickjacking.XFrameOptionsMiddleware" not in stack
    assert stack.index("rra.middleware.RequestObservabilityMiddleware") < stack.index(
        "rra.middleware.HTTPSRedirectMiddleware"
    )


def test_plain_http_is_redirected_to_https_with_the_headers_and_an_access_line(
    settings, access_lines
):
    settings.SECURE_SSL_REDIRECT = True
    response = Client().get("/accounts/login/?next=/c/")
    assert response.status_code == 301
    assert response["Location"] == "https://testserver/accounts/login/?next=/c/"
    assert_security_headers(response)
    assert HEX_ID.fullmatch(response["X-Request-ID"])
    [line] = access_lines()
    assert line["status"] == 301 and line["path"] == "/accounts/login/"
    assert line["request_id"] == response["X-Request-ID"]


def test_https_is_served_with_hsts_and_the_redirect_goes_to_secure_ssl_host(settings):
    settings.SECURE_SSL_REDIRECT = True
    secure = Client().get("/accounts/login/", secure=True)
    assert secure.status_code == 200
    assert_security_headers(secure, secure=True)
    settings.SECURE_SSL_HOST = "secure.example.com"
    moved = Client().get("/accounts/login/")
    assert moved.status_code == 301
    assert moved["Location"] == "https://secure.example.com/accounts/login/"


def test_probes_and_scrapes_are_not_redirected_nor_anything_when_the_setting_is_off(settings):
    settings.SECURE_SSL_REDIRECT = True
    client = Client()
    assert client.get("/api/health/live").status_code == 200
    assert client.get("/metrics").status_code == 200
    settings.SECURE_SSL_REDIRECT = False
    assert Client().get("/accounts/login/").status_code == 200


# --- check --deploy ----------------------------------------------------------------------


def _deploy_warnings() -> set[str]:
    from django.core import checks

    found = checks.run_checks(include_deployment_checks=True, tags=[checks.Tags.security])
    return {message.id for message in found if not message.is_silenced()}


HEADER_CHECKS = {
    "security.W004",  # HSTS
    "security.W006",  # nosniff
    "security.W008",  # the redirect
    "security.W019",  # X-Frame-Options
    "security.W022",  # Referrer-Policy
}


def test_check_deploy_still_checks_the_settings_of_the_headers_and_the_redirect(settings):
    """Django checks these settings only while its middleware is listed (rra/checks.py
    runs the same checks for RRA's), and its 'not in MIDDLEWARE' warnings are silenced."""
    settings.SECURE_SSL_REDIRECT = True
    assert not _deploy_warnings() & (
        HEADER_CHECKS | {"security.W001", "security.W002", "rra.W001", "rra.W002"}
    )
    settings.SECURE_HSTS_SECONDS = 0
    settings.SECURE_CONTENT_TYPE_NOSNIFF = False
    settings.SECURE_SSL_REDIRECT = False
    settings.X_FRAME_OPTIONS = "SAMEORIGIN"
    settings.SECURE_REFERRER_POLICY = None
    assert _deploy_warnings() >= HEADER_CHECKS
    settings.SECURE_REFERRER_POLICY = "nonsense"
    settings.SECURE_CROSS_ORIGIN_OPENER_POLICY = "nonsense"
    assert _deploy_warnings() >= {"security.E023", "security.E024"}


def test_check_deploy_warns_about_a_stack_without_the_security_middleware(settings):
    settings.MIDDLEWARE = [
        m
        for m in settings.MIDDLEWARE
        if m
        not in (
            "rra.middleware.SecurityHeadersMiddleware",
            "rra.middleware.HTTPSRedirectMiddleware",
        )
    ]
    assert _deploy_warnings() >= {"rra.W001", "rra.W002"}
    settings.MIDDLEWARE = [
        "django.middleware.security.SecurityMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
        *settings.MIDDLEWARE,
    ]
    settings.SECURE_HSTS_SECONDS = 0
    warnings = _deploy_warnings()
    assert not warnings & {"rra.W001", "rra.W002"}
    assert "security.W004" in warnings  # Django's own check, once
