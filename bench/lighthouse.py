"""Lighthouse (mobile preset) on the sign-in, chat, shared-chat and library pages, served
in production mode (DEBUG off, gunicorn, hashed and compressed static files).

    nice -n 10 .venv/bin/python bench/lighthouse.py [--keep]

What it does:
1. installs the npm package `lighthouse` into var/lighthouse/ when it is missing (npm,
   PUPPETEER_SKIP_DOWNLOAD: no browser is downloaded; Debian's /usr/bin/chromium runs,
   CHROME_PATH);
2. makes a user with a ready manual, a chat with a cited answer, and a shared copy of it
   (in the database the project uses: the embedded PostgreSQL unless POSTGRES_URL);
3. starts gunicorn with deploy/gunicorn.conf.py on a free port, DEBUG=false;
4. runs Lighthouse on each page, in a Chromium with a fresh profile that holds the
   session cookie where the page needs it, and prints the four category scores; the reports are written to
   var/lighthouse/<page>.report.json and the failing audits of each are listed.

Without --keep the data it made is deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "var" / "lighthouse"
CHROMIUM = "/usr/bin/chromium"
CATEGORIES = ["performance", "accessibility", "best-practices", "seo"]
# Production mode over plain HTTP on the loopback (no TLS here: no redirect to https).
PRODUCTION = {
    "DEBUG": "false",
    "SECURE_SSL_REDIRECT": "false",
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "CSRF_TRUSTED_ORIGINS": "http://127.0.0.1",
    "LOG_LEVEL": "WARNING",
    "SLOW_QUERY_MS": "0",
}


def lighthouse_bin() -> Path:
    binary = OUT / "node_modules" / ".bin" / "lighthouse"
    if not binary.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        print("installing lighthouse (npm) into var/lighthouse/ ...", flush=True)
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--silent", "lighthouse@12"],
            cwd=OUT,
            env={**os.environ, "PUPPETEER_SKIP_DOWNLOAD": "1"},
            check=True,
        )
    return binary


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_data() -> dict:
    """A user, a ready manual, a chat with a cited answer and a shared chat."""
    import django

    django.setup()
    from django.core.files.base import ContentFile
    from django.test import Client

    from accounts.models import User
    from chats.models import Chat, Citation, Message
    from documents.models import Document
    from documents.services import document_ingest

    email = f"lighthouse-{secrets.token_hex(4)}@example.com"
    user = User.objects.create_user(email=email, password=secrets.token_urlsafe(16))
    user.name = "Lighthouse"
    user.save(update_fields=["name"])
    text = (ROOT / "documents" / "tests" / "conftest.py").read_text()
    manual = text.split('MANUAL_MD = b"""', 1)[1].split('"""', 1)[0].encode()
    document = Document(
        owner=user,
        name="RoboRail maintenance.md",
        mime_type="text/markdown",
        size=len(manual),
        sha256=secrets.token_hex(32),
    )
    document.file.save("upload", ContentFile(manual), save=False)
    document.save()
    document_ingest(document_id=document.pk)
    chunk = document.chunks.first()
    chats = {}
    for key, visibility in (("chat", "private"), ("shared", "public")):
        chat = Chat.objects.create(owner=user, title="Chuck calibration", visibility=visibility)
        Message.objects.create(chat=chat, role="user", content="How often is the chuck calibrated?")
        answer = Message.objects.create(
            chat=chat,
            role="assistant",
            content="Calibrate the chuck alignment every 500 operating hours [1].",
        )
        if chunk is not None:
            Citation.objects.create(
                message=answer,
                chunk=chunk,
                document=document,
                document_name=document.name,
                first_page=chunk.first_page,
                last_page=chunk.last_page,
                quote=chunk.content,
                number=1,
                rank=1,
                score=1.0,
            )
        chats[key] = chat.pk
    client = Client()
    client.force_login(user)
    return {"user": user.pk, "session": client.cookies["sessionid"].value, **chats}


def delete_data(user_id: int) -> None:
    from accounts.models import User

    User.objects.filter(pk=user_id).delete()


def run_lighthouse(binary: Path, url: str, report: Path, session: str | None) -> None:
    """Lighthouse on a Chromium of our own (a fresh profile, reached over its debugging
    port) that holds the session as a real cookie: with --extra-headers the cookie went
    only with the page's own requests, so the service worker's API requests were
    refused with a 401, a console error no signed-in browser shows. Storage is not reset
    (that would delete the cookie); the profile is new, so its caches start empty."""
    import tempfile

    from playwright.sync_api import sync_playwright

    port = free_port()
    with tempfile.TemporaryDirectory(prefix="rra-lighthouse-") as profile, sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=[
                f"--remote-debugging-port={port}",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
            ],
        )
        try:
            if session:
                # For the whole site: a cookie set for the page's URL would get that
                # page's path, and the API requests would still go without it.
                root = "/".join(url.split("/", 3)[:3]) + "/"
                browser.add_cookies([{"name": "sessionid", "value": session, "url": root}])
            subprocess.run(
                [
                    str(binary),
                    url,
                    "--quiet",
                    "--output=json",
                    f"--output-path={report}",
                    f"--only-categories={','.join(CATEGORIES)}",
                    f"--port={port}",
                    "--disable-storage-reset",
                ],
                env={**os.environ, "CHROME_PATH": CHROMIUM},
                check=True,
            )
        finally:
            browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the user and its data")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is missing: apt-get install chromium", file=sys.stderr)
        return 2
    binary = lighthouse_bin()
    os.environ.update(PRODUCTION)
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(48))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rra.settings")
    sys.path.insert(0, str(ROOT))
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=ROOT,
        check=True,
    )
    data = make_data()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "gunicorn"), "--config", "deploy/gunicorn.conf.py"],
        cwd=ROOT,
        env={**os.environ, "BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "1"},
    )
    pages = {
        "sign-in": ("/accounts/login/", False),
        "chat": (f"/c/{data['chat']}/", True),
        "shared-chat": (f"/c/{data['shared']}/", False),
        "library": ("/documents/", True),
    }
    scores: dict[str, dict[str, int]] = {}
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(base + "/api/health/live", timeout=2)  # noqa: S310
                break
            except OSError:
                time.sleep(0.5)
        for name, (path, signed_in) in pages.items():
            report = OUT / f"{name}.report.json"
            run_lighthouse(binary, base + path, report, data["session"] if signed_in else None)
            result = json.loads(report.read_text())
            scores[name] = {
                c: round(100 * (result["categories"][c]["score"] or 0)) for c in CATEGORIES
            }
            failing = [
                f"{audit['id']} ({audit['score']})"
                for audit in result["audits"].values()
                if audit.get("score") is not None
                and audit["score"] < 0.9
                and audit.get("scoreDisplayMode") in ("binary", "numeric", "metricSavings")
            ]
            print(f"{name}: {scores[name]}  below 0.9: {', '.join(failing) or 'none'}", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
        if not args.keep:
            delete_data(data["user"])
    print()
    print(f"| page | {' | '.join(CATEGORIES)} |")
    print(f"|---|{'---|' * len(CATEGORIES)}")
    for name, row in scores.items():
        print(f"| {name} | {' | '.join(str(row[c]) for c in CATEGORIES)} |")
    low = [(n, c) for n, row in scores.items() for c, s in row.items() if s < 95]
    if low:
        print(f"below 95: {low}")
    shutil.rmtree(OUT / "tmp", ignore_errors=True)
    return 1 if low else 0


if __name__ == "__main__":
    sys.exit(main())
