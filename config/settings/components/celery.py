"""Celery: Redis broker by default; eager execution when CELERY_TASK_ALWAYS_EAGER is set (demo, tests)."""

from config.env import env_bool, env_str

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", env_str("REDIS_URL", "redis://127.0.0.1:6379/0"))
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# Periodic tasks (django-celery-beat installs these in its tables; staff can see and pause them in the admin).
from celery.schedules import crontab  # noqa: E402

CELERY_BEAT_SCHEDULE = {
    "close-billing-period": {"task": "billing.period_close", "schedule": crontab(minute=5, hour=0, day_of_month=1)},
    "finalize-reviewed-invoices": {"task": "billing.finalize_due", "schedule": crontab(minute="*/15")},
    "billing-lifecycle": {"task": "billing.lifecycle", "schedule": crontab(minute=30, hour=0)},
    "evaluate-budgets": {"task": "billing.budgets_evaluate", "schedule": crontab(minute=20)},
    "invoice-reminders": {"task": "billing.invoice_reminders", "schedule": crontab(minute=0, hour=8)},
    "sweep-deliveries": {"task": "billing.deliveries_sweep", "schedule": crontab(minute="*/10")},
}
