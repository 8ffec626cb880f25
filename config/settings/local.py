"""Local development and the demo: debug on, embedded SQLite, e-mails written to files, tasks eager."""

import os

os.environ.setdefault("DJANGO_DEBUG", "1")
# Each e-mail (PDF attached) becomes a file under sent-emails/ instead of flooding the terminal.
os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")
os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "1")
os.environ.setdefault("LEDGERLINE_TEST_CLOCK", "1")

from config.env import env_str  # noqa: E402
from config.settings.base import *  # noqa: E402,F403

SECRET_KEY = env_str("DJANGO_SECRET_KEY", "local-development-only-not-secret")
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", str(BASE_DIR / "sent-emails"))  # noqa: F405

# Tasks run inline here: Celery's per-task "succeeded" lines would bury the demo's own output.
LOGGING["loggers"]["celery.app.trace"] = {"level": "WARNING"}  # noqa: F405
