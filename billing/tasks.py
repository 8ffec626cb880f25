"""Celery tasks of the billing cycle. Thin: each calls a service.

Schedule (``LEDGERLINE_SCHEDULE``, installed into django-celery-beat's tables by ``migrate``, edited in the admin):
the month closes at 00:05 UTC on the 1st (billing periods are UTC months for every account);
drafts past their review window are finalized every 15 minutes; the lifecycle runs daily; budgets are
evaluated hourly (and right after a budget is created or changed); reminders before the due date and
overdue notices go out daily at 08:00 UTC (``billing.invoice_reminders``); every 10 minutes
``billing.deliveries_sweep`` queues again renders and e-mails whose task was lost; daily at 02:15 UTC
``billing.reconcile`` reconciles the month so far and the month before; every 15 minutes
``billing.collections_due`` queues the automatic collection attempts that are due (``billing.collection_attempt``).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from accounts.models import Account
from billing.models import BillingRun, BillingRunItem, Invoice
from billing.quotas import quotas_check
from billing.services.budgets import budgets_evaluate
from billing.services.collection import collection_attempt, collections_run_due
from billing.services.documents import document_render, documents_requeue_stale
from billing.services.emails.queueing import emails_requeue_stale
from billing.services.emails.schedule import reminders_queue
from billing.services.emails.sending import email_send
from billing.services.invoices import invoice_finalize, invoice_hold
from billing.services.lifecycle import lifecycle_update
from billing.services.reconciliation import reconciliation_daily
from billing.services.runs import (
    billing_run_chunk,
    billing_run_chunk_failed,
    billing_run_finish,
    billing_run_start,
    pending_chunks,
)
from billing.services.stripe_gateway import StripeUnavailable
from common import clock
from common.errors import BillingError
from common.periods import month_containing, parse_month, previous_month

logger = logging.getLogger(__name__)


@shared_task(name="billing.period_close")
def period_close_task(month: str | None = None) -> int:
    """Open the run of ``month`` (default: the month that just ended) and fan its accounts out in chunks."""
    now = clock.now()
    period = parse_month(month) if month else previous_month(month_containing(now))
    run = billing_run_start(period=period, now=now, trigger="schedule")
    chunks = list(pending_chunks(run=run))
    for chunk in chunks:
        billing_run_chunk_task.delay(run.pk, chunk)
    if not chunks:
        billing_run_finish(run=run, now=now)
    return len(chunks)


@shared_task(name="billing.run_chunk", acks_late=True, autoretry_for=(OSError,), max_retries=3)
def billing_run_chunk_task(run_id: int, account_ids: list[int]) -> None:
    run = BillingRun.objects.get(pk=run_id)
    now = clock.now()
    try:
        billing_run_chunk(run=run, account_ids=account_ids, now=now)
    except OSError:
        raise  # retried
    except Exception as exc:
        logger.exception("Billing chunk of run %s failed", run_id)
        billing_run_chunk_failed(run=run, account_ids=account_ids, error=f"chunk failed: {exc}")
    if not BillingRunItem.objects.filter(run=run, status=BillingRunItem.Status.PENDING).exists():
        run = billing_run_finish(run=run, now=now)
        if run.finished_at and not run.dry_run:
            lifecycle_update(now=now)


@shared_task(name="billing.finalize_due")
def invoices_finalize_due_task() -> int:
    """Finalize drafts whose review window has passed (held drafts wait for staff). A draft that cannot be
    finalized (e.g. usage that arrived during review overflows what an invoice holds) is held with the reason,
    for staff to review, instead of being tried again every run."""
    now = clock.now()
    done = 0
    for invoice in Invoice.objects.filter(status=Invoice.Status.DRAFT, held=False, review_until__lte=now):
        try:
            invoice_finalize(invoice=invoice, now=now)
            done += 1
        except BillingError as exc:
            logger.warning("Invoice %s not finalized, held for review: %s", invoice.pk, exc.message)
            try:
                invoice_hold(invoice=invoice, reason=f"not finalized: {exc.message}")
            except BillingError:  # finalized or voided by staff in the meantime: nothing to hold
                pass
        except Exception:  # each draft is its own transaction: one failure must not hold back the others
            logger.exception("Invoice %s not finalized", invoice.pk)
    return done


@shared_task(name="billing.lifecycle")
def lifecycle_update_task() -> dict:
    return lifecycle_update(now=clock.now())


# Soft time limits of the single-item tasks: a render or an SMTP conversation that hangs past them raises
# SoftTimeLimitExceeded inside the service, which records it (a failed render; a temporary e-mail failure,
# retried). The batch tasks have none: a batch of thousands takes as long as it takes, and each item is
# bounded by its own I/O timeouts (EMAIL_TIMEOUT).
RENDER_SOFT_TIME_LIMIT = 120
SEND_SOFT_TIME_LIMIT = 60


@shared_task(
    name="billing.render_document",
    acks_late=True,
    autoretry_for=(OSError,),
    max_retries=3,
    soft_time_limit=RENDER_SOFT_TIME_LIMIT,
)
def document_render_task(document_id: int) -> str:
    """Render one invoice or credit-note PDF (requests made while it was pending collapse into this run)."""
    return document_render(document_id=document_id).status


@shared_task(name="billing.render_documents", acks_late=True)
def documents_render_task(document_ids: list[int]) -> int:
    """Render a batch of PDFs (the invoices one finalization run issued): one message, not one per invoice.
    One that raises (e.g. its document was deleted) is logged and the rest of the batch goes on."""
    ready = 0
    for pk in document_ids:
        try:
            ready += document_render(document_id=pk).status == "ready"
        except Exception:
            logger.exception("Rendering document %s failed", pk)
    return ready


@shared_task(name="billing.budgets_evaluate")
def budgets_evaluate_task(account_ids: list[int] | None = None) -> int:
    """Record budget alerts newly reached (by the accounts of ``account_ids``, or every account)."""
    return len(budgets_evaluate(account_ids=account_ids, now=clock.now()))


@shared_task(
    name="billing.send_email", bind=True, acks_late=True, max_retries=None, soft_time_limit=SEND_SOFT_TIME_LIMIT
)
def email_send_task(self, delivery_id: int) -> Any:
    """One attempt to send an e-mail delivery; a temporary failure comes back here with its backoff (the
    service counts attempts and gives up after ``BILLING_EMAIL_MAX_ATTEMPTS``)."""
    outcome = email_send(delivery_id=delivery_id)
    if outcome.retry_in is None:
        return outcome.delivery.status
    if self.request.is_eager:
        # Run eagerly (demo, tests), a raised Retry would propagate as an error; a returned one is applied by
        # Celery at once, without waiting for the countdown.
        return self.retry(countdown=outcome.retry_in, throw=False)
    raise self.retry(countdown=outcome.retry_in)


@shared_task(name="billing.send_emails", acks_late=True)
def emails_send_task(delivery_ids: list[int]) -> int:
    """First attempt of a batch of deliveries; one that fails for now goes on alone with its backoff. One that
    raises (e.g. its delivery was deleted) is logged and the rest of the batch goes on."""
    sent = 0
    for pk in delivery_ids:
        try:
            outcome = email_send(delivery_id=pk)
            if outcome.retry_in is not None:
                email_send_task.apply_async((pk,), countdown=outcome.retry_in)
        except Exception:
            logger.exception("E-mail delivery %s not sent", pk)
            continue
        sent += outcome.delivery.status == "sent"
    return sent


@shared_task(name="billing.deliveries_sweep")
def deliveries_sweep_task() -> dict:
    """Queue again PDFs and e-mails whose task was lost (broker down at commit, worker killed)."""
    now = clock.now()
    return {"documents": documents_requeue_stale(now=now), "emails": emails_requeue_stale(now=now)}


@shared_task(name="billing.invoice_reminders")
def invoice_reminders_task() -> int:
    """Queue today's reminders before the due date and overdue notices (each step once per invoice)."""
    return len(reminders_queue(now=clock.now()))


@shared_task(name="billing.quotas_check", acks_late=True, max_retries=5, default_retry_delay=5, soft_time_limit=60)
def quotas_check_task(account_id: int) -> None:
    """Evaluate an account's plan limits against its committed usage (queued by ``billing.quotas``)."""
    account = Account.objects.filter(pk=account_id).first()
    if account is not None:
        quotas_check(account=account, now=clock.now())


@shared_task(name="billing.reconcile")
def reconcile_task() -> dict:
    """Reconcile yesterday's month so far and the month before it; mismatches become reconciliation issues."""
    return {summary.period.label: summary.open for summary in reconciliation_daily(now=clock.now())}


@shared_task(
    name="billing.collection_attempt",
    acks_late=True,
    autoretry_for=(StripeUnavailable,),
    max_retries=5,
    retry_backoff=60,
)
def collection_attempt_task(collection_id: int) -> str | None:
    """One automatic collection attempt (safe to run twice: the attempt's payment row and Stripe's
    idempotency key make it one charge). Stripe unreachable: retried; the 15-minute sweep queues it again."""
    payment = collection_attempt(collection_id=collection_id, now=clock.now())
    return payment.status if payment else None


@shared_task(name="billing.collections_due")
def collections_due_task() -> int:
    """Queue the automatic collection attempts that are due (every 15 minutes)."""
    return collections_run_due(now=clock.now())
