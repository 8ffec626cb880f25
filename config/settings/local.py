"""Local development and the demo: embedded SQLite, e-mails written to files, tasks eager.

Debug pages are off, as in production: the demo is tried as customers and integrators would meet the product
(error pages, the API's JSON errors on ``/v1/`` paths), and shows no settings or tracebacks to whoever
probes it. ``DJANGO_DEBUG=1`` turns them on while developing.
"""

import os

os.environ.setdefault("DJANGO_DEBUG", "0")
# Each e-mail (PDF attached) becomes a file under sent-emails/ instead of flooding the terminal.
os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")
os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "1")
os.environ.setdefault("LEDGERLINE_TEST_CLOCK", "1")

from config.env import env_str  # noqa: E402
from config.settings.base import *  # noqa: E402,F403

SECRET_KEY = env_str("DJANGO_SECRET_KEY", "local-development-only-not-secret")
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", str(BASE_DIR / "sent-emails"))  # noqa: F405

# Static files (the admin's, the portal's, the API docs') are served by WhiteNoise straight from the apps'
# folders, without collectstatic.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# Tasks run inline here: Celery's per-task "succeeded" lines would bury the demo's own output.
LOGGING["loggers"]["celery.app.trace"] = {"level": "WARNING"}  # noqa: F405

# Webhooks: local development may send to receivers on this machine or the local network, over plain HTTP.
WEBHOOKS_REQUIRE_HTTPS = env_bool("WEBHOOKS_REQUIRE_HTTPS", False)  # noqa: F405
WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = env_bool("WEBHOOKS_ALLOW_PRIVATE_ADDRESSES", True)  # noqa: F405
# The demo's webhook receivers, so its endpoints have somewhere to deliver (demo.webhook_inbox).
DEMO_WEBHOOK_INBOX = env_bool("DEMO_WEBHOOK_INBOX", True)  # noqa: F405
