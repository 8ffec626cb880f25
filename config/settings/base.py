"""Settings shared by every environment. Values come from the environment (see config/env.py)."""

from __future__ import annotations

from pathlib import Path

import dj_database_url

from config.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent.parent

DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    # Third party
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc served from our static files, not a CDN
    "django_celery_beat",
    "simple_history",
    "djstripe",
    # Ledgerline
    "common",
    "accounts",
    "tenants",
    "billing",
    "disputes",
    "webhooks",
    "exports",
    "insights",
    "usage",
    "portal",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Records which user made each change in the audit history.
    "simple_history.middleware.HistoryRequestMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
                "portal.context.portal",
            ],
        },
    },
]

# Database: the embedded SQLite file by default so the demo needs nothing installed;
# production and the test suite use PostgreSQL through DATABASE_URL.
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The demo's web server and its schedule (celery beat, tasks inline) share the file: write-ahead logging
    # lets readers go on while one writes, and transactions that will write take the lock when they begin,
    # waiting up to 30 s for it, instead of failing with "database is locked" halfway through.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
# One date format across the admin: 2026-11-30 23:59 UTC (config/formats/en/formats.py).
FORMAT_MODULE_PATH = ["config.formats"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env_str("DJANGO_MEDIA_ROOT", str(BASE_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# Cache (rate limits, idempotency locks). Redis when REDIS_URL is set, local memory otherwise.
REDIS_URL = env_str("REDIS_URL", "")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["accounts.throttling.ApiKeyRateThrottle"],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "common.api.exception_handler",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Ledgerline API",
    "DESCRIPTION": "Usage ingestion, current usage and charges, and exports for Ledgerline billing.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The docs pages load their scripts from our static files (drf-spectacular-sidecar), so they work offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # A payment's status appears in two components (the ledger's payments and the export's rows): one name.
    "ENUM_NAME_OVERRIDES": {
        "PaymentStatusEnum": "billing.schema_ledger.PAYMENT_STATUS_VALUES",
        "MonthStatusEnum": "insights.analysis.MONTH_STATUS_VALUES",
    },
    # Every webhook event type with an example body (webhooks.schema_docs), after drf-spectacular's enum hook.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "webhooks.schema_docs.add_webhook_events",
    ],
}

SIMPLE_HISTORY_HISTORY_CHANGE_REASON_USE_TEXT_FIELD = True

# SQLite (demo only) cannot enforce the rollup bucket key with NULL partners; its writer upserts in Python.
SILENCED_SYSTEM_CHECKS = ["models.W047"]

# Usage API. A batch of 10,000 events is about 2-3 MB of JSON.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DJANGO_DATA_UPLOAD_MAX_MEMORY_SIZE", 16 * 1024 * 1024)
API_RATE_LIMIT_PER_MINUTE = env_int("API_RATE_LIMIT_PER_MINUTE", 6000)
USAGE_LATE_GRACE_DAYS = env_int("USAGE_LATE_GRACE_DAYS", 7)
USAGE_MAX_AGE_DAYS = env_int("USAGE_MAX_AGE_DAYS", 62)
# Small ingest batches run as prepared statements (see usage/writers.py); off behind a transaction-mode
# connection pooler that cannot keep prepared statements.
USAGE_PREPARED_WRITES = env_bool("USAGE_PREPARED_WRITES", True)

# Billing cycle. Drafts wait BILLING_REVIEW_HOURS for staff review before they are finalized (0: at once).
BILLING_REVIEW_HOURS = env_int("BILLING_REVIEW_HOURS", 24)
BILLING_INVOICE_SERIES = env_str("BILLING_INVOICE_SERIES", "INV")
BILLING_CREDIT_NOTE_SERIES = env_str("BILLING_CREDIT_NOTE_SERIES", "CN")
BILLING_RUN_CHUNK = env_int("BILLING_RUN_CHUNK", 200)  # accounts per task and per transaction
# Disputes (docs/billing.md, "Disputes"). SLA: staff answer a new case within DISPUTES_RESPONSE_HOURS and resolve it
# within DISPUTES_RESOLUTION_DAYS (the clock pauses while the case waits on the customer). A credit whose total
# (tax included) is above DISPUTES_CREDIT_APPROVAL_ABOVE, in the invoice's currency, needs a second person: a
# Finance admin approves it before the credit note is issued. Staff are told of new cases and customers' replies at
# DISPUTES_STAFF_EMAILS (and the assignee's address). Attachments: up to DISPUTES_ATTACHMENT_MAX_BYTES, CSV, PDF,
# PNG or JPEG, checked by their content.
DISPUTES_RESPONSE_HOURS = env_int("DISPUTES_RESPONSE_HOURS", 24)
DISPUTES_RESOLUTION_DAYS = env_int("DISPUTES_RESOLUTION_DAYS", 10)
DISPUTES_CREDIT_APPROVAL_ABOVE = env_str("DISPUTES_CREDIT_APPROVAL_ABOVE", "500.00")
DISPUTES_STAFF_EMAILS = env_list("DISPUTES_STAFF_EMAILS", ["billing@ledgerline.example"])
DISPUTES_ATTACHMENT_MAX_BYTES = env_int(
    "DISPUTES_ATTACHMENT_MAX_BYTES", 5 * 1024 * 1024
)  # accounts per task and per transaction
# Subscriptions (docs/billing.md, "Plan changes", "Trials"). A customer's upgrade applies without waiting for
# billing staff when SUBSCRIPTIONS_UPGRADES_APPLY_AT_ONCE is on; downgrades, changes at the same price and changes
# to or from a custom plan, a yearly plan or an account under contract always wait for approval. The "trial ends
# soon" e-mail goes SUBSCRIPTIONS_TRIAL_NOTICE_DAYS before a trial ends. A trial that ends while Stripe is
# configured and the account has no payment method: "invoice" (the subscription goes on; invoices are paid by
# bank transfer until a card is added) or "cancel" (the subscription ends with the trial).
SUBSCRIPTIONS_UPGRADES_APPLY_AT_ONCE = env_bool("SUBSCRIPTIONS_UPGRADES_APPLY_AT_ONCE", True)
SUBSCRIPTIONS_TRIAL_NOTICE_DAYS = env_int("SUBSCRIPTIONS_TRIAL_NOTICE_DAYS", 3)
SUBSCRIPTIONS_TRIAL_END_WITHOUT_PAYMENT_METHOD = env_str("SUBSCRIPTIONS_TRIAL_END_WITHOUT_PAYMENT_METHOD", "invoice")
# A usage jump larger than this factor against the previous month is flagged for review.
BILLING_ANOMALY_FACTOR = env_int("BILLING_ANOMALY_FACTOR", 10)
# The seller printed on invoices and credit notes (snapshotted onto each invoice at finalization).
# Address and payment-instruction lines are separated by "|".
BILLING_SELLER = {
    "name": env_str("BILLING_SELLER_NAME", "Ledgerline Demo Ltd"),
    "address": [
        line.strip()
        for line in env_str("BILLING_SELLER_ADDRESS", "1 Example Street|Dublin D02 XY00|Ireland").split("|")
        if line.strip()
    ],
    "tax_id": env_str("BILLING_SELLER_TAX_ID", "IE0000000XX"),
    "email": env_str("BILLING_SELLER_EMAIL", "billing@ledgerline.example"),
    "payment_instructions": [
        line.strip()
        for line in env_str(
            "BILLING_SELLER_PAYMENT_INSTRUCTIONS",
            "Bank transfer to IBAN IE00 DEMO 0000 0000 0000 00 (BIC DEMOIE2D)|"
            "Please quote the invoice number as the payment reference.",
        ).split("|")
        if line.strip()
    ],
}
# Invoice e-mails: temporary failures (4xx replies, connection errors) are retried with exponential backoff
# (BILLING_EMAIL_RETRY_SECONDS, doubled each time) until BILLING_EMAIL_MAX_ATTEMPTS attempts in all.
BILLING_EMAIL_MAX_ATTEMPTS = env_int("BILLING_EMAIL_MAX_ATTEMPTS", 5)
BILLING_EMAIL_RETRY_SECONDS = env_int("BILLING_EMAIL_RETRY_SECONDS", 60)
# Days before the due date a reminder goes out, and days after it an overdue notice goes out.
BILLING_REMINDER_DAYS_BEFORE_DUE = [int(d) for d in env_list("BILLING_REMINDER_DAYS_BEFORE_DUE", ["7", "1"])]
BILLING_OVERDUE_DAYS = [int(d) for d in env_list("BILLING_OVERDUE_DAYS", ["1", "7", "14"])]
# Dunning: automatic collection charges the payment method when an invoice is finalized (day 0) and, after a
# failure, again on these days counted from the first failure. After the last one fails, the account is
# suspended; so is an account with an invoice this many days past its due date.
BILLING_DUNNING_RETRY_DAYS = [int(d) for d in env_list("BILLING_DUNNING_RETRY_DAYS", ["3", "5", "7"])]
BILLING_SUSPEND_AFTER_DAYS_OVERDUE = env_int("BILLING_SUSPEND_AFTER_DAYS_OVERDUE", 30)
# Absolute links in e-mails (the customer portal) start with this.
LEDGERLINE_BASE_URL = env_str("LEDGERLINE_BASE_URL", "http://127.0.0.1:8000")
# The demo's webhook receivers at /demo/webhooks/<name>/ (demo.webhook_inbox): on in the local settings only.
DEMO_WEBHOOK_INBOX = env_bool("DEMO_WEBHOOK_INBOX", False)
# The settable test clock (common.clock): on for the demo and tests only.
LEDGERLINE_TEST_CLOCK = env_bool("LEDGERLINE_TEST_CLOCK", False)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("DJANGO_LOG_LEVEL", "INFO")},
    # WeasyPrint reports every rendering step at INFO; its warnings (a CSS rule it ignores) still show.
    # fontTools, which subsets the fonts embedded in every PDF, warns about font metadata it tolerates
    # (e.g. a "head.created" timestamp it reads as Unix time), once per font and PDF: only its errors show.
    "loggers": {"weasyprint.progress": {"level": "WARNING"}, "fontTools": {"level": "ERROR"}},
}

# Integrations, each switched on by its own environment variables.
from config.settings.components.celery import *  # noqa: E402,F403
from config.settings.components.email import *  # noqa: E402,F403
from config.settings.components.stripe import *  # noqa: E402,F403

# Reverse proxies in front of Ledgerline that append the client's address to X-Forwarded-For (0: none, the
# clients connect directly). Sign-in limits key on the address they vouch for (common/http.py).
LEDGERLINE_TRUSTED_PROXY_COUNT = env_int("LEDGERLINE_TRUSTED_PROXY_COUNT", 0)

# Signing in, to the admin and to the portal, is limited by django-axes (configured in accounts/sign_in.py):
# failed attempts are counted per login and client address together; after ADMIN_LOGIN_ATTEMPTS (admin) or
# PORTAL_LOGIN_ATTEMPTS (portal) failures, that login from that address is refused (429) until
# LOGIN_COOLOFF_SECONDS have passed since the last failure. A successful sign-in clears the count.
ADMIN_LOGIN_ATTEMPTS = env_int("ADMIN_LOGIN_ATTEMPTS", 5)
PORTAL_LOGIN_ATTEMPTS = env_int("PORTAL_LOGIN_ATTEMPTS", 10)
LOGIN_COOLOFF_SECONDS = env_int("LOGIN_COOLOFF_SECONDS", 900)
INSTALLED_APPS += ["axes"]
MIDDLEWARE += ["axes.middleware.AxesMiddleware"]  # last, as axes requires
AUTHENTICATION_BACKENDS = ["accounts.sign_in.SignInLimitBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_USERNAME_CALLABLE = "accounts.sign_in.attempt_login"
AXES_CLIENT_IP_CALLABLE = "common.http.client_ip"
AXES_FAILURE_LIMIT = "accounts.sign_in.failure_limit"
AXES_COOLOFF_TIME = "accounts.sign_in.cool_off"
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "accounts.sign_in.lockout_response"
# Only failed attempts are kept, and only until their cool-off has passed: no log of every sign-in's address.
AXES_DISABLE_ACCESS_LOG = True
LOGGING["loggers"]["axes"] = {"level": "WARNING"}  # failures and lockouts, not every step of counting them

# The portal's password reset: PORTAL_RESET_REQUESTS requests per login, from whichever client, per
# PORTAL_ATTEMPT_WINDOW seconds (portal/throttle.py).
PORTAL_RESET_REQUESTS = env_int("PORTAL_RESET_REQUESTS", 5)
PORTAL_ATTEMPT_WINDOW = env_int("PORTAL_ATTEMPT_WINDOW", 900)
# The customer portal signs people in at /portal/login/ (the admin has its own sign-in page).
LOGIN_URL = "portal:login"
LOGIN_REDIRECT_URL = "portal:dashboard"

# ERP journal (billing/journal.py): each journal line's reference is "<prefix>-YYYY-MM", the prefix naming
# the ERP's import series for billing.
BILLING_JOURNAL_REFERENCE_PREFIX = env_str("BILLING_JOURNAL_REFERENCE_PREFIX", "AS2")

# Webhooks (webhooks/): endpoints receive the account's events, signed per Standard Webhooks. A rotated secret
# stays valid WEBHOOKS_SECRET_OVERLAP_HOURS (requests carry both signatures meanwhile). URLs must be https
# (WEBHOOKS_REQUIRE_HTTPS) on public addresses (WEBHOOKS_ALLOW_PRIVATE_ADDRESSES off), checked when saved and at
# every send. Requests time out after WEBHOOKS_CONNECT_TIMEOUT_SECONDS to connect and WEBHOOKS_READ_TIMEOUT_SECONDS
# to answer; WEBHOOKS_DELIVERY_CONCURRENCY requests are in flight at once, WEBHOOKS_DELIVERY_BATCH deliveries
# claimed per transaction, WEBHOOKS_DISPATCH_BATCH outbox events fanned out per transaction. An endpoint that has
# failed continuously for WEBHOOKS_DISABLE_AFTER_HOURS is disabled and its account's owners are e-mailed.
WEBHOOKS_SECRET_OVERLAP_HOURS = env_int("WEBHOOKS_SECRET_OVERLAP_HOURS", 24)
WEBHOOKS_REQUIRE_HTTPS = env_bool("WEBHOOKS_REQUIRE_HTTPS", True)
WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = env_bool("WEBHOOKS_ALLOW_PRIVATE_ADDRESSES", False)
WEBHOOKS_CONNECT_TIMEOUT_SECONDS = env_int("WEBHOOKS_CONNECT_TIMEOUT_SECONDS", 3)
WEBHOOKS_READ_TIMEOUT_SECONDS = env_int("WEBHOOKS_READ_TIMEOUT_SECONDS", 10)
WEBHOOKS_DELIVERY_CONCURRENCY = env_int("WEBHOOKS_DELIVERY_CONCURRENCY", 16)
WEBHOOKS_DELIVERY_BATCH = env_int("WEBHOOKS_DELIVERY_BATCH", 500)
WEBHOOKS_DISPATCH_BATCH = env_int("WEBHOOKS_DISPATCH_BATCH", 1000)
WEBHOOKS_DISABLE_AFTER_HOURS = env_int("WEBHOOKS_DISABLE_AFTER_HOURS", 72)

# Exports (exports/): the export API for external billing/ERP systems. Rows are exported once they are
# EXPORT_SETTLE_SECONDS old, so that a row still being written cannot appear behind a cursor already passed:
# exactly once while new rows arrive, provided an ingest request commits within half of it after stamping its
# events' received_at. Streams read EXPORT_STREAM_CHUNK_ROWS rows per fetch from the server-side cursor and write
# them to the client as one chunk (NDJSON events on PostgreSQL: lines from COPY, below).
EXPORT_SETTLE_SECONDS = env_int("EXPORT_SETTLE_SECONDS", 10)
EXPORT_STREAM_CHUNK_ROWS = env_int("EXPORT_STREAM_CHUNK_ROWS", 5000)
# NDJSON event streams on PostgreSQL come from COPY; they are sent in chunks of about this many bytes.
EXPORT_STREAM_CHUNK_BYTES = env_int("EXPORT_STREAM_CHUNK_BYTES", 1 << 20)
