"""Test suite: PostgreSQL (DATABASE_URL, default the local server), fast hashing, tasks eager."""

import os
from urllib.parse import urlsplit, urlunsplit

os.environ.setdefault("DATABASE_URL", "postgres://postgres:postgres@127.0.0.1:5432/ledgerline")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")


def _redis_url_for_worker(url: str, worker: str) -> str:
    """pytest-xdist worker ``gwN`` uses the Redis database N below the configured one (wrapping within
    Redis's 16): tests clear their database (``cache.clear()`` is FLUSHDB), so workers must not share one.
    The environment variable changes too, so servers the tests start use the worker's database."""
    parts = urlsplit(url)
    base = int(parts.path.strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{(base - int(worker.removeprefix('gw'))) % 16}"))


if os.environ.get("PYTEST_XDIST_WORKER"):
    # Kept aside so that importing these settings again (a subprocess of a worker) picks the same database.
    _configured_redis_url = os.environ.setdefault("LEDGERLINE_TEST_REDIS_URL", os.environ["REDIS_URL"])
    os.environ["REDIS_URL"] = _redis_url_for_worker(_configured_redis_url, os.environ["PYTEST_XDIST_WORKER"])
os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "1")
os.environ.setdefault("LEDGERLINE_TEST_CLOCK", "1")
os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")

from config.settings.base import *  # noqa: E402,F403

SECRET_KEY = "test-only-not-secret"
DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Serve static files from the finders (the apps' and STATICFILES_DIRS): no collectstatic needed for tests.
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True

# Webhooks: the tests' receivers listen on 127.0.0.1 over plain HTTP (production refuses both).
WEBHOOKS_REQUIRE_HTTPS = False
WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = True
WEBHOOKS_CONNECT_TIMEOUT_SECONDS = 2
WEBHOOKS_READ_TIMEOUT_SECONDS = 2
