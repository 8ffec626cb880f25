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

# Periodic tasks. Installed into django-celery-beat's tables by ``migrate`` when missing (common/schedule.py);
# from then on the tables are the schedule: staff see, edit and pause it in the admin (Periodic tasks), and
# beat reads it there. Celery's own CELERY_BEAT_SCHEDULE is not used, so a restart of beat keeps those edits.
import datetime as dt  # noqa: E402

from celery.schedules import crontab  # noqa: E402

LEDGERLINE_SCHEDULE = {
    "close-billing-period": {
        "task": "billing.period_close",
        "schedule": crontab(minute=5, hour=0, day_of_month=1),
        "description": "Closes the month that ended: drafts every account's invoice (00:05 UTC on the 1st).",
    },
    "finalize-reviewed-invoices": {
        "task": "billing.finalize_due",
        "schedule": crontab(minute="*/15"),
        "description": "Finalizes drafts whose review window has passed (held drafts wait).",
    },
    "billing-lifecycle": {
        "task": "billing.lifecycle",
        "schedule": crontab(minute=30, hour=0),
        "description": "Ends trials and cancellations due, marks accounts past due and back.",
    },
    "evaluate-budgets": {
        "task": "billing.budgets_evaluate",
        "schedule": crontab(minute=20),
        "description": "Records a budget alert for every threshold a budget's spend has reached (hourly).",
    },
    "invoice-reminders": {
        "task": "billing.invoice_reminders",
        "schedule": crontab(minute=0, hour=8),
        "description": "E-mails reminders before the due date and overdue notices after it.",
    },
    "sweep-deliveries": {
        "task": "billing.deliveries_sweep",
        "schedule": crontab(minute="*/10"),
        "description": "Queues again PDF renders and e-mails whose task was lost.",
    },
    "collection-attempts": {
        "task": "billing.collections_due",
        "schedule": crontab(minute="*/15"),
        "description": "Charges the payment method of invoices whose automatic collection attempt is due.",
    },
    "reconcile-payments": {
        "task": "billing.reconcile",
        "schedule": crontab(minute=15, hour=2),
        "description": "Reconciles the month so far and the month before: invoices, payments, Stripe, bank lines.",
    },
    "webhooks": {
        "task": "webhooks.run",
        "schedule": dt.timedelta(seconds=10),
        "description": "Hands new events to the webhook endpoints and sends the deliveries due, retries included "
        "(every 10 seconds).",
    },
    "forecasts-record": {
        "task": "insights.forecasts_record",
        "schedule": crontab(minute=30, hour=2),
        "description": "Records today's forecast of every subscribed account's running month and fills in the actual "
        "bill of the months invoiced since (02:30 UTC).",
    },
    "recommendations-refresh": {
        "task": "insights.recommendations_refresh_book",
        "schedule": crontab(minute=45, hour=3),
        "description": "Re-rates the last 12 closed months of every subscribed account on every plan it could be on "
        "and replaces its recommendations, one task per 200 accounts run by the workers in parallel (03:45 UTC).",
    },
    "webhooks-usage-report": {
        "task": "webhooks.usage_report",
        "schedule": crontab(minute=5),
        "description": "Records the hourly usage report (billing.usage_reported) of the hour that just ended, for "
        "accounts with an endpoint that asked for it.",
    },
}
