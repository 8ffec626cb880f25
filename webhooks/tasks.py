"""Celery tasks of webhooks. Thin: each calls a service.

Schedule (``LEDGERLINE_SCHEDULE``): ``webhooks.run`` every 10 seconds fans the outbox's new events out to
deliveries and sends what is due (first attempts and retries). A resend or a test event queues
``webhooks.deliver_due`` once its transaction commits, so it goes out at once rather than at the next run.
Runs may overlap safely: events and deliveries are claimed with ``FOR UPDATE SKIP LOCKED``.
``webhooks.usage_report`` at five past every hour records the last full hour's ``billing.usage_reported`` for
the accounts with an endpoint that asked for it.
"""

from __future__ import annotations

from celery import shared_task

from common import clock
from webhooks.services.delivery import webhooks_deliver_due, webhooks_run
from webhooks.usage_report import usage_reports_emit


@shared_task(name="webhooks.run", soft_time_limit=300, time_limit=360, ignore_result=True)
def webhooks_run_task() -> dict[str, int]:
    dispatched, delivered = webhooks_run()
    return {"events": dispatched.events, "deliveries": dispatched.deliveries, "attempts": delivered.attempts}


@shared_task(name="webhooks.deliver_due", soft_time_limit=300, time_limit=360, ignore_result=True)
def webhooks_deliver_due_task() -> int:
    return webhooks_deliver_due().attempts


@shared_task(name="webhooks.usage_report", soft_time_limit=600, time_limit=660, ignore_result=True)
def webhooks_usage_report_task() -> int:
    """The hourly usage report of the last full hour, for the accounts that asked for it."""
    return usage_reports_emit(now=clock.now())
