"""Queueing e-mails as ``EmailDelivery`` rows (once per ``dedup_key``) and handing them to the send tasks
after commit; staff resends and retries; the sweep that queues again deliveries whose task was lost."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.db import transaction
from django.db.models import Q

from accounts.models import Account
from billing.models import CreditNote, EmailDelivery, Invoice, Payment
from billing.services.documents import STALE_AFTER
from billing.services.emails.content import email_subject
from common import clock
from common.enqueue import enqueue_on_commit
from common.errors import BillingError

logger = logging.getLogger(__name__)

Kind = EmailDelivery.Kind
SEND_TASK = "billing.send_email"
SEND_BATCH_TASK = "billing.send_emails"
ERR_RESEND_STATUS = "Only a finalized, paid or uncollectible invoice can be e-mailed; {number} is {status}."


def _queue_sends(ids: list[int]) -> None:
    if not ids:
        return
    # One message per batch (a month's close finalizes thousands); robust: what was queued stays queued if
    # the broker is down, and the sweep sends it later.
    if len(ids) == 1:
        enqueue_on_commit(SEND_TASK, ids[0])
    else:
        enqueue_on_commit(SEND_BATCH_TASK, ids)


@transaction.atomic
def emails_requeue_stale(*, now: dt.datetime, older_than: dt.timedelta | None = None) -> int:
    """Queue again deliveries whose task was lost: queued longer than ``older_than`` ago with no attempt
    scheduled, or whose scheduled attempt is that much overdue.

    Each one queued again gets ``now`` as its next attempt, so it is not stale again (and not queued again)
    until ``older_than`` has passed once more: during a backlog a delivery is queued again at most once per
    sweep interval, not by every sweep. Deliveries being sent right now (row locked) are skipped."""
    cutoff = now - (older_than or STALE_AFTER)
    ids = list(
        EmailDelivery.objects.select_for_update(skip_locked=True)
        .filter(status=EmailDelivery.Status.QUEUED)
        .filter(Q(next_attempt_at__isnull=True, queued_at__lt=cutoff) | Q(next_attempt_at__lt=cutoff))
        .order_by("pk")
        .values_list("pk", flat=True)[:1000]
    )
    EmailDelivery.objects.filter(pk__in=ids).update(next_attempt_at=now)
    _queue_sends(ids)
    return len(ids)


def deliveries_create(rows: list[EmailDelivery]) -> list[int]:
    """Insert deliveries (a row whose key exists already is skipped) and queue the new ones after commit."""
    keyed = [row for row in rows if row.dedup_key]
    existing = set(
        EmailDelivery.objects.filter(dedup_key__in=[r.dedup_key for r in keyed]).values_list("dedup_key", flat=True)
    )
    fresh = [row for row in rows if not row.dedup_key or row.dedup_key not in existing]
    unkeyed = [row for row in fresh if not row.dedup_key]
    for row in unkeyed:
        row.save()
    EmailDelivery.objects.bulk_create([row for row in fresh if row.dedup_key], ignore_conflicts=True)
    ids = [row.pk for row in unkeyed] + list(
        EmailDelivery.objects.filter(
            dedup_key__in=[r.dedup_key for r in fresh if r.dedup_key], status=EmailDelivery.Status.QUEUED
        ).values_list("pk", flat=True)
    )
    _queue_sends(ids)
    return ids


def delivery_build(
    *,
    invoice: Invoice | None,
    kind: str,
    recipients: list[str],
    now: dt.datetime,
    credit_note: CreditNote | None = None,
    payment: Payment | None = None,
    dedup_key: str | None = None,
    requested_by: Any = None,
    context: dict[str, Any] | None = None,
    account: Account | None = None,
) -> EmailDelivery:
    delivery = EmailDelivery(
        invoice=invoice,
        account=account,
        credit_note=credit_note,
        payment=payment,
        kind=kind,
        context=dict(context or {}),
        recipients=list(recipients),
        dedup_key=dedup_key,
        requested_by=requested_by if getattr(requested_by, "is_authenticated", False) else None,
        queued_at=now,
        status=EmailDelivery.Status.QUEUED,
    )
    delivery.subject = email_subject(delivery, now)
    return delivery


def emails_queue_for_invoices(*, invoices: list[Invoice], now: dt.datetime) -> list[int]:
    """The "new invoice" e-mail of each freshly finalized invoice (void ones aside), sent after commit."""
    invoices = [i for i in invoices if i.status != Invoice.Status.VOID and i.number]
    if not invoices:
        return []
    addresses = dict(
        Account.objects.filter(pk__in={i.account_id for i in invoices}).values_list("pk", "billing_emails")
    )
    rows = [
        delivery_build(
            invoice=invoice,
            kind=Kind.INVOICE,
            recipients=addresses[invoice.account_id],
            now=now,
            dedup_key=f"invoice:{invoice.pk}",
        )
        for invoice in invoices
    ]
    return deliveries_create(rows)


def email_queue_credit_note(*, credit_note: CreditNote, now: dt.datetime) -> list[int]:
    """The e-mail of a freshly issued credit note, its PDF attached, sent after commit."""
    invoice = credit_note.invoice
    recipients = Account.objects.values_list("billing_emails", flat=True).get(pk=credit_note.account_id)
    row = delivery_build(
        invoice=invoice,
        credit_note=credit_note,
        kind=Kind.CREDIT_NOTE,
        recipients=recipients,
        now=now,
        dedup_key=f"credit_note:{credit_note.pk}",
    )
    return deliveries_create([row])


def email_queue_payment(*, payment: Payment, invoice: Invoice, kind: str, now: dt.datetime) -> list[int]:
    """A receipt for a payment that went to ``invoice``, or the notice that an automatic attempt to collect it
    failed (with the next retry date and where to update the card); once per payment and kind."""
    recipients = payment.account.billing_emails
    row = delivery_build(
        invoice=invoice, payment=payment, kind=kind, recipients=recipients, now=now, dedup_key=f"{kind}:{payment.pk}"
    )
    return deliveries_create([row])


def email_queue_account_status(*, account: Account, invoice: Invoice, kind: str, now: dt.datetime) -> list[int]:
    """The account's billing addresses learn that it is past due, suspended or active again (``invoice``: the
    one that caused it, or that settled it); once per account, kind and moment."""
    row = delivery_build(
        invoice=invoice,
        kind=kind,
        recipients=account.billing_emails,
        now=now,
        dedup_key=f"{kind}:{account.pk}:{now.isoformat()}"[:120],
    )
    return deliveries_create([row])


def email_queue_notice(
    *,
    invoice: Invoice,
    kind: str,
    recipients: list[str],
    context: dict[str, Any],
    now: dt.datetime,
    dedup_key: str | None = None,
    requested_by: Any = None,
) -> list[int]:
    """An e-mail about something that concerns ``invoice`` (a dispute about it, say) whose template reads
    ``context`` — JSON values, kept on the delivery so a retry says the same; once per ``dedup_key``."""
    row = delivery_build(
        invoice=invoice,
        kind=kind,
        recipients=recipients,
        now=now,
        dedup_key=dedup_key,
        requested_by=requested_by,
        context=context,
    )
    return deliveries_create([row])


def email_queue_account_notice(
    *,
    account: Account,
    kind: str,
    context: dict[str, Any],
    now: dt.datetime,
    dedup_key: str | None = None,
    requested_by: Any = None,
    recipients: list[str] | None = None,
) -> list[int]:
    """An e-mail about the account's subscription (a plan change, a trial ending, a contract's renewal) to its
    billing contacts (or ``recipients``); its template reads ``context`` (JSON values, kept on the delivery so a
    retry says the same); once per ``dedup_key``. Nothing is queued for an account without billing contacts."""
    to = list(recipients if recipients is not None else account.billing_emails or [])
    if not to:
        return []
    row = delivery_build(
        invoice=None,
        account=account,
        kind=kind,
        recipients=to,
        now=now,
        dedup_key=dedup_key,
        requested_by=requested_by,
        context=context,
    )
    return deliveries_create([row])


@transaction.atomic
def email_resend(*, invoice: Invoice, actor: Any = None, now: dt.datetime | None = None) -> EmailDelivery:
    """Staff asked for the invoice e-mail again: a new delivery to today's billing addresses."""
    now = now or clock.now()
    invoice = Invoice.objects.select_related("account").get(pk=invoice.pk)
    if invoice.status in (Invoice.Status.DRAFT, Invoice.Status.VOID):
        raise BillingError(
            ERR_RESEND_STATUS.format(number=invoice, status=invoice.get_status_display().lower()),
            code="invoice_not_sendable",
            status=409,
        )
    delivery = delivery_build(
        invoice=invoice,
        kind=Kind.INVOICE,
        recipients=invoice.account.billing_emails,
        now=now,
        requested_by=actor,
    )
    deliveries_create([delivery])
    return delivery


@transaction.atomic
def email_retry(*, delivery: EmailDelivery, actor: Any = None, now: dt.datetime | None = None) -> EmailDelivery:
    """Staff retry a failed delivery: queued again with a fresh round of attempts, in the retrying staff
    member's name (its last error stays visible until a new failure replaces it)."""
    now = now or clock.now()
    delivery = EmailDelivery.objects.select_for_update().get(pk=delivery.pk)
    if delivery.status != EmailDelivery.Status.FAILED:
        raise BillingError(
            f"Only failed deliveries are retried; this one is {delivery.get_status_display().lower()}.",
            code="delivery_not_failed",
            status=409,
        )
    delivery.status, delivery.attempts, delivery.next_attempt_at = EmailDelivery.Status.QUEUED, 0, now
    if getattr(actor, "is_authenticated", False):
        delivery.requested_by = actor
    delivery.save(update_fields=["status", "attempts", "next_attempt_at", "requested_by"])
    _queue_sends([delivery.pk])
    return delivery
