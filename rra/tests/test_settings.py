"""A bad environment stops start-up with a message that names the variable."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from rra.env import Env

ROOT = Path(__file__).resolve().parents[2]


def _start(**overrides):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_"))}
    env.update({"ENV_FILE": "", "DJANGO_SETTINGS_MODULE": "rra.settings", **overrides})
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('started')"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"DEBUG": "maybe"}, "Environment variable DEBUG must be a boolean"),
        (
            {"DB_POOL_MAX_SIZE": "twenty"},
            "Environment variable DB_POOL_MAX_SIZE must be a whole number",
        ),
        (
            {"REDIS_URL": "http://cache:6379"},
            "Environment variable REDIS_URL must be a URL starting with redis://",
        ),
        (
            {"DATABASE_URL": "mysql://db/x"},
            "Environment variable DATABASE_URL must be a URL starting with postgres://",
        ),
        (
            {"EMBEDDINGS_PROVIDER": "magic"},
            "Environment variable EMBEDDINGS_PROVIDER must be one of local, cohere, openai",
        ),
        ({"SECRET_KEY": ""}, "Environment variable SECRET_KEY must be set"),
        (
            {"SECRET_KEY": "insecure-dev-only-key-change-me"},
            "Environment variable SECRET_KEY must be set",
        ),
        (
            {"CSRF_TRUSTED_ORIGINS": "example.com"},
            "Environment variable CSRF_TRUSTED_ORIGINS must list origins",
        ),
        (
            # The seed's example: an address, not a DSN (no key, no project).
            {"ERROR_TRACKING_ENDPOINT": "https://errors.example.com/"},
            "Environment variable ERROR_TRACKING_ENDPOINT must be a Sentry DSN",
        ),
        (
            {"SENTRY_DSN": "https://errors.example.com/api/"},
            "Environment variable SENTRY_DSN must be a Sentry DSN",
        ),
        (
            {"STORAGE_S3_BUCKET": "rra", "AWS_S3_ENDPOINT_URL": "s3:8333"},
            "Environment variable AWS_S3_ENDPOINT_URL must be a URL starting with http://",
        ),
        (
            {"STORAGE_S3_BUCKET": "rra", "AWS_S3_ADDRESSING_STYLE": "auto"},
            "Environment variable AWS_S3_ADDRESSING_STYLE must be one of path, virtual",
        ),
        (
            {"EMAIL_HOST": "smtp.example.com", "EMAIL_USE_SSL": "true"},
            "Environment variables EMAIL_USE_TLS and EMAIL_USE_SSL cannot both be true",
        ),
    ],
)
def test_it_refuses_to_start_with_a_bad_value(overrides, message):
    result = _start(**{"DEBUG": "false", **overrides})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr


def test_uploaded_files_go_to_s3_only_when_a_bucket_is_named():
    from rra.settings import s3_media_storage

    storage = s3_media_storage(
        Env(
            {
                "STORAGE_S3_BUCKET": "manuals",
                "STORAGE_S3_PREFIX": "site-a",
                "AWS_S3_ENDPOINT_URL": "http://s3:8333",
                "AWS_ACCESS_KEY_ID": "key",
                "AWS_SECRET_ACCESS_KEY": "secret",
            }
        )
    )
    assert storage["BACKEND"] == "storages.backends.s3.S3Storage"
    options = storage["OPTIONS"]
    assert options["bucket_name"] == "manuals" and options["location"] == "site-a"
    assert options["endpoint_url"] == "http://s3:8333" and options["addressing_style"] == "path"
    assert options["access_key"] == "key" and options["secret_key"] == "secret"
    assert options["default_acl"] is None  # never public
    # Unset keys: boto3's own sources (instance role, ~/.aws), not empty strings.
    assert s3_media_storage(Env({"STORAGE_S3_BUCKET": "m"}))["OPTIONS"]["access_key"] is None

    from django.conf import settings

    if not os.environ.get("STORAGE_S3_BUCKET"):
        assert settings.STORAGES["default"]["BACKEND"].endswith("FileSystemStorage")


def test_it_starts_in_debug_without_a_secret_key():
    result = _start(DEBUG="true", SECRET_KEY="")
    assert result.returncode == 0, result.stderr
    assert "started" in result.stdout


def test_env_helpers_read_types_bounds_and_aliases():
    env = Env({"A": " 5 ", "B": "yes", "URL2": "postgres://u@h/db", "L": "a, b,,c", "E": ""})
    assert env.int("A", 0, min=1) == 5
    assert env.bool("B", False) is True
    assert env.bool("E", True) is True  # empty means unset
    assert env.url("URL1", aliases=["URL2"], schemes=("postgres",)) == "postgres://u@h/db"
    assert env.list("L") == ["a", "b", "c"]
    with pytest.raises(ImproperlyConfigured, match="A must be at most 4"):
        env.int("A", 0, max=4)
    with pytest.raises(ImproperlyConfigured, match="URL2 must be a URL starting with redis://"):
        env.url("URL1", aliases=["URL2"], schemes=("redis",))


def test_dotenv_is_read_but_real_environment_wins(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("DEBUG=true\nSIGNUP_ENABLED=false\nLOG_LEVEL=ERROR\n")
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.DEBUG, settings.SIGNUP_ENABLED, settings.LOG_LEVEL)"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SIGNUP_ENABLED", "LOG_LEVEL")}
    env.update(
        {"ENV_FILE": str(dotenv), "LOG_LEVEL": "DEBUG", "DJANGO_SETTINGS_MODULE": "rra.settings"}
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "False", "DEBUG"]


def test_email_goes_to_the_console_unless_an_smtp_server_is_named():
    code = (
        "import django; django.setup(); from django.conf import settings as s;"
        "print(s.EMAIL_BACKEND, getattr(s, 'EMAIL_HOST', ''), s.EMAIL_PORT, s.EMAIL_USE_TLS)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_"))}
    env.update({"ENV_FILE": "", "DJANGO_SETTINGS_MODULE": "rra.settings", "DEBUG": "true"})

    def backend(**extra):
        result = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.split()

    assert backend()[0] == "django.core.mail.backends.console.EmailBackend"
    assert backend(EMAIL_HOST="smtp.example.com", EMAIL_PORT="2525") == [
        "django.core.mail.backends.smtp.EmailBackend",
        "smtp.example.com",
        "2525",
        "True",
    ]
