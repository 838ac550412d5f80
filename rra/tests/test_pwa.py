"""The installable app: manifest (django-pwa), icons, service worker, offline page."""

import json
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.templatetags.static import static
from PIL import Image

pytestmark = pytest.mark.django_db

APP_CSS = (Path(settings.BASE_DIR) / "static" / "css" / "app.css").read_text()
HASHED = re.compile(r"^/static/.+\.[0-9a-f]{12}\.[a-z0-9]+$")


def css_colour(name: str) -> str:
    """The first (light theme) value of a custom property of app.css."""
    return re.search(rf"--{name}:\s*(#[0-9a-fA-F]{{6}})", APP_CSS).group(1).lower()


def collected(url: str) -> Path:
    return Path(settings.STATIC_ROOT) / url.removeprefix(settings.STATIC_URL)


def worker_config(body: str) -> dict:
    first_line, _, _ = body.partition("\n")
    assert first_line.startswith("self.RRA_SW = ") and first_line.endswith(";")
    return json.loads(first_line.removeprefix("self.RRA_SW = ").removesuffix(";"))


@pytest.fixture
def manifest(client):
    response = client.get("/manifest.json")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    return json.loads(response.content)


def test_the_manifest_describes_the_app(manifest):
    assert manifest["name"] == "RRA — manual assistant"
    assert manifest["short_name"] == "RRA"
    assert manifest["description"]
    assert manifest["start_url"] == "/"
    assert manifest["scope"] == "/"
    assert manifest["display"] == "standalone"
    assert manifest["theme_color"] == css_colour("accent")
    assert manifest["background_color"] == css_colour("bg")


def test_the_manifest_icons_are_hashed_pngs_of_their_stated_size(manifest):
    icons = manifest["icons"]
    assert {icon["sizes"] for icon in icons} >= {"192x192", "512x512"}
    assert [icon["purpose"] for icon in icons].count("maskable") == 1
    for icon in icons:
        assert HASHED.match(icon["src"]), icon["src"]
        assert icon["type"] == "image/png"
        with Image.open(collected(icon["src"])) as image:
            assert image.format == "PNG"
            assert f"{image.width}x{image.height}" == icon["sizes"]
        assert collected(icon["src"]).stat().st_size < 16_000  # a flat logo: a few KB


def test_the_maskable_icon_keeps_the_logo_inside_the_safe_zone(manifest):
    """Outside the central circle of 40% radius, only the full-bleed background."""
    (icon,) = [icon for icon in manifest["icons"] if icon["purpose"] == "maskable"]
    accent = tuple(int(css_colour("accent")[i : i + 2], 16) for i in (1, 3, 5))
    with Image.open(collected(icon["src"])) as image:
        rgb = image.convert("RGB")
        size = rgb.width
        outside = [
            rgb.getpixel((x, y))
            for y in range(0, size, 4)
            for x in range(0, size, 4)
            if (x + 0.5 - size / 2) ** 2 + (y + 0.5 - size / 2) ** 2 > (0.4 * size) ** 2
        ]
        inside = rgb.getpixel((size // 2, size // 2 - size // 8))
    assert outside and all(pixel == accent for pixel in outside)
    assert inside != accent  # the logo is there


def test_the_plain_icons_have_transparent_corners(manifest):
    for icon in manifest["icons"]:
        if icon["purpose"] == "any":
            with Image.open(collected(icon["src"])) as image:
                assert image.mode == "RGBA"
                assert image.getpixel((0, 0))[3] == 0


def test_pages_link_the_manifest_icons_and_the_pwa_module(client):
    page = client.get("/accounts/login/").content.decode()
    assert '<link rel="manifest" href="/manifest.json">' in page
    assert re.search(r'<meta name="theme-color" content="#[0-9a-f]{6}"', page)
    assert f'<link rel="apple-touch-icon" href="{static("icons/apple-touch-icon.png")}">' in page
    assert re.search(
        rf'<script type="module" nonce="[^"]+" src="{re.escape(static("js/pwa.js"))}"></script>',
        page,
    )
    # The Content-Security-Policy allows no inline scripts, handlers or styles.
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page)
    assert not re.search(r"\son[a-z]+=|\sstyle=", page)


def test_the_service_worker_is_served_for_the_whole_site(client):
    response = client.get("/sw.js")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/javascript; charset=utf-8"
    assert response["Service-Worker-Allowed"] == "/"
    assert response["Cache-Control"] == "no-cache"
    body = response.content.decode()
    assert 'addEventListener("fetch"' in body


def test_the_worker_precaches_the_hashed_app_shell_and_the_offline_page(client):
    config = worker_config(client.get("/sw.js").content.decode())
    precache = config["precache"]
    app_css = static("css/app.css")
    assert HASHED.match(app_css)
    assert app_css in precache
    assert static("js/pwa.js") in precache
    assert "/offline/" in precache and config["offline"] == "/offline/"
    assert all(HASHED.match(url) for url in precache if url.startswith("/static/"))
    assert re.fullmatch(r"[0-9a-f]{16}", config["version"])
    assert {"/api/health", "/metrics", "/admin/"} <= set(config["bypass"])
    assert config["debug"] is False
    for url in precache:  # all there: one missing file would fail the worker's install
        response = client.get(url)
        assert response.status_code == 200, url
        response.close()


def test_a_new_deploy_gives_a_new_worker(client, settings):
    first = worker_config(client.get("/sw.js").content.decode())["version"]
    assert worker_config(client.get("/sw.js").content.decode())["version"] == first
    settings.PWA_PRECACHE_STATIC = [*settings.PWA_PRECACHE_STATIC, "icons/icon-maskable-512.png"]
    assert worker_config(client.get("/sw.js").content.decode())["version"] != first


def test_the_worker_answers_304_when_unchanged(client):
    etag = client.get("/sw.js")["ETag"]
    response = client.get("/sw.js", HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 304
    assert response["Service-Worker-Allowed"] == "/"


def test_the_offline_page_says_what_still_works(client):
    response = client.get("/offline/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "<title>Offline · RRA</title>" in page
    assert "You are offline" in page
    assert "What still works" in page and "queued" in page
    assert '<link rel="manifest"' in page  # a normal page of the site


def test_the_vlist_demo_exists_only_in_debug(client):
    assert client.get("/dev/vlist/").status_code == 404
