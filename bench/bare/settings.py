"""The framework's floor: a bare Django project with one view and no middleware, no apps,
no database, no cache. bench/load.py serves it with gunicorn (gthread) beside RRA and
divides RRA's numbers by its hello, so a ratio says what our stack costs on top of
Django itself, not on top of our own middleware (bench/README.md, issue 24)."""

SECRET_KEY = "bench-bare-not-secret"  # noqa: S105 - a benchmark project that serves "hello"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "bench.bare.urls"
DATABASES: dict = {}
USE_TZ = True
LOGGING_CONFIG = None
