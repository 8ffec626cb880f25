"""E-mails about invoices and credit notes: queued as ``EmailDelivery`` rows, sent by a Celery task.

When: a new invoice when it is finalized (``invoice:<pk>``), a credit note when it is issued
(``credit_note:<pk>``), reminders before the due date and overdue notices after it (the daily
``billing.invoice_reminders`` schedule, ``reminder:<pk>:7d`` / ``overdue:<pk>:14d``), and resends asked
for by staff (no key). A ``dedup_key`` is unique, so a scheduled e-mail is queued once per key.

Delivery is at least once, not exactly once: the mail server may accept a message and then the commit that
records it fail, or the worker die, and the delivery is sent again. Sending (``email_send``) holds the
delivery's row lock for the whole attempt, so on PostgreSQL duplicate tasks for one delivery are serialized:
the second waits, then finds it sent and sends nothing (SQLite ignores ``select_for_update``; there
concurrent tasks are not kept apart). Temporary failures (4xx replies, lost
connections, timeouts) come back with the seconds to wait before the next attempt, doubling from
``BILLING_EMAIL_RETRY_SECONDS``, until ``BILLING_EMAIL_MAX_ATTEMPTS``; permanent failures (5xx) fail at
once. The server's reply is kept on the row.
"""

from __future__ import annotations

import datetime as dt
import logging
import smtplib
from dataclasses import dataclass
from email.utils import make_msgid
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.core.mail.utils import DNS_NAME
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse

from accounts.models import Account
from billing.models import CreditNote, EmailDelivery, Invoice
from billing.pdf import day, invoice_seller
from billing.selectors import invoices_awaiting_payment
from billing.services.documents import STALE_AFTER, document_ready
from common import clock
from common.enqueue import enqueue_on_commit
from common.errors import BillingError
from common.money import format_money

logger = logging.getLogger(__name__)

Kind = EmailDelivery.Kind
SEND_TASK = "billing.send_email"
SEND_BATCH_TASK = "billing.send_emails"
ERR_RESEND_STATUS = "Only a finalized, paid or uncollectible invoice can be e-mailed; {number} is {status}."
ERR_NO_PDF = "The PDF is not available yet: {error}"
ERR_TIME_LIMIT = "Timed out: the attempt took longer than the send task's time limit"
# Why a queued e-mail was cancelled instead of sent ({what}: "reminder", "overdue notice", "e-mail").
ERR_LAPSED_PAID = "invoice {number} was paid before this {what} went out"
ERR_LAPSED_VOID = "invoice {number} was voided before this {what} went out"
ERR_LAPSED_WRITTEN_OFF = "invoice {number} was written off before this {what} went out"
ERR_LAPSED_NOTHING_DUE = "invoice {number} had no amount due any more when this {what} was to go out"
ERR_LAPSED_DUE_DATE = "invoice {number} fell due on {due} before this reminder went out"
ERR_LAPSED_NOTE_VOID = "credit note {number} was voided before this e-mail went out"


@dataclass(frozen=True)
class SendOutcome:
    delivery: EmailDelivery
    retry_in: int | None = None  # seconds until the next attempt, for a temporary failure with attempts left


class _Temporary(Exception):
    """A failure worth trying again (4xx reply, lost connection, timeout, PDF not rendered yet)."""


class _Permanent(Exception):
    """A failure that another attempt will not fix (5xx reply)."""


# ----------------------------------------------------------------------------------------------------- content


def _portal_url(invoice: Invoice) -> str:
    return settings.LEDGERLINE_BASE_URL.rstrip("/") + reverse("portal:invoice", args=[invoice.number])


def _context(delivery: EmailDelivery, now: dt.datetime) -> dict[str, Any]:
    invoice = delivery.invoice
    note = delivery.credit_note
    snapshot_account = (invoice.snapshot or {}).get("account", {})
    due_date = invoice.due_at.date() if invoice.due_at else None
    today = now.date()
    seller = invoice_seller(invoice)
    return {
        "kind": delivery.kind,
        "invoice": invoice,
        "credit_note": note,
        "customer_name": snapshot_account.get("name") or invoice.account.name,
        "period": invoice.month_label,
        # The period is half-open [start, end); customers read the first and the last day it covers.
        "period_first_day": invoice.period_start.date(),
        "period_last_day": (invoice.period_end - dt.timedelta(microseconds=1)).date(),
        "total": format_money(invoice.total, invoice.currency),
        "amount_due": format_money(invoice.amount_due, invoice.currency),
        "credit_total": format_money(note.total, note.currency) if note else "",
        "due_date": due_date,
        "days_to_due": (due_date - today).days if due_date else None,
        "days_overdue": (today - due_date).days if due_date else None,
        "portal_url": _portal_url(invoice),
        # Signed by the seller as snapshotted on the invoice, like its PDF.
        "seller_name": seller.get("name", ""),
        "contact_email": seller.get("email", ""),
    }


def _subject(delivery: EmailDelivery, now: dt.datetime) -> str:
    text = render_to_string(f"billing/email/{delivery.kind}_subject.txt", _context(delivery, now))
    return " ".join(text.split())[:300]


def email_message(*, delivery: EmailDelivery, now: dt.datetime | None = None) -> EmailMultiAlternatives:
    """The e-mail of a delivery: plain text and HTML bodies, the PDF attached, a fresh Message-ID."""
    now = now or clock.now()
    context = _context(delivery, now)
    if delivery.credit_note_id:
        document = document_ready(credit_note=delivery.credit_note)
        filename = f"{delivery.credit_note.number}.pdf"
    else:
        document = document_ready(invoice=delivery.invoice)
        filename = f"{delivery.invoice.number}.pdf"
    if not document.file:
        raise _Temporary(ERR_NO_PDF.format(error=document.error or "still rendering"))
    with document.file.open("rb") as pdf:
        content = pdf.read()
    message = EmailMultiAlternatives(
        subject=delivery.subject or _subject(delivery, now),
        body=render_to_string(f"billing/email/{delivery.kind}.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=list(delivery.recipients),
        reply_to=[context["contact_email"]] if context["contact_email"] else [],
        headers={"Message-ID": make_msgid(domain=DNS_NAME)},
    )
    message.attach_alternative(render_to_string(f"billing/email/{delivery.kind}.html", context), "text/html")
    message.attach(filename, content, "application/pdf")
    return message


# ----------------------------------------------------------------------------------------------------- queueing


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


def _deliveries_create(rows: list[EmailDelivery]) -> list[int]:
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


def _delivery(
    *,
    invoice: Invoice,
    kind: str,
    recipients: list[str],
    now: dt.datetime,
    credit_note: CreditNote | None = None,
    dedup_key: str | None = None,
    requested_by: Any = None,
) -> EmailDelivery:
    delivery = EmailDelivery(
        invoice=invoice,
        credit_note=credit_note,
        kind=kind,
        recipients=list(recipients),
        dedup_key=dedup_key,
        requested_by=requested_by if getattr(requested_by, "is_authenticated", False) else None,
        queued_at=now,
        status=EmailDelivery.Status.QUEUED,
    )
    delivery.subject = _subject(delivery, now)
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
        _delivery(
            invoice=invoice,
            kind=Kind.INVOICE,
            recipients=addresses[invoice.account_id],
            now=now,
            dedup_key=f"invoice:{invoice.pk}",
        )
        for invoice in invoices
    ]
    return _deliveries_create(rows)


def email_queue_credit_note(*, credit_note: CreditNote, now: dt.datetime) -> list[int]:
    """The e-mail of a freshly issued credit note, its PDF attached, sent after commit."""
    invoice = credit_note.invoice
    recipients = Account.objects.values_list("billing_emails", flat=True).get(pk=credit_note.account_id)
    row = _delivery(
        invoice=invoice,
        credit_note=credit_note,
        kind=Kind.CREDIT_NOTE,
        recipients=recipients,
        now=now,
        dedup_key=f"credit_note:{credit_note.pk}",
    )
    return _deliveries_create([row])


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
    delivery = _delivery(
        invoice=invoice,
        kind=Kind.INVOICE,
        recipients=invoice.account.billing_emails,
        now=now,
        requested_by=actor,
    )
    _deliveries_create([delivery])
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


# ----------------------------------------------------------------------------------------------------- schedule


@dataclass(frozen=True)
class Step:
    kind: str
    days: int
    on: dt.date  # the day it is due to go out

    def key(self, invoice_id: int) -> str:
        return f"{self.kind}:{invoice_id}:{self.days}d"


def reminder_step(
    *, due: dt.date, finalized: dt.date, today: dt.date, before: list[int], after: list[int]
) -> Step | None:
    """The most recent reminder or overdue step due by ``today`` (a late schedule sends only that one).

    Reminders go out before the due date only, and not on or before the day the invoice itself went out.
    """
    steps = [Step(Kind.REMINDER, d, due - dt.timedelta(days=d)) for d in before if d > 0]
    steps = [s for s in steps if finalized < s.on <= today < due]
    steps += [
        Step(Kind.OVERDUE, d, due + dt.timedelta(days=d))
        for d in after
        if d > 0 and due + dt.timedelta(days=d) <= today
    ]
    return max(steps, key=lambda s: s.on, default=None)


def reminders_queue(*, now: dt.datetime | None = None) -> list[int]:
    """Queue today's reminders and overdue notices: each step once per invoice (its key), and for an invoice
    whose steps were missed (the schedule did not run) only the most recent one."""
    now = now or clock.now()
    today = now.date()
    before = list(settings.BILLING_REMINDER_DAYS_BEFORE_DUE)
    after = list(settings.BILLING_OVERDUE_DAYS)
    horizon = now + dt.timedelta(days=max(before, default=0) + 1)
    invoices = list(invoices_awaiting_payment(due_before=horizon))
    chosen: list[tuple[Invoice, Step]] = []
    for invoice in invoices:
        step = reminder_step(
            due=invoice.due_at.date(), finalized=invoice.finalized_at.date(), today=today, before=before, after=after
        )
        if step is not None:
            chosen.append((invoice, step))
    if not chosen:
        return []
    sent_keys = set(
        EmailDelivery.objects.filter(dedup_key__in=[s.key(i.pk) for i, s in chosen]).values_list("dedup_key", flat=True)
    )
    rows = [
        _delivery(
            invoice=invoice,
            kind=step.kind,
            recipients=invoice.account.billing_emails,
            now=now,
            dedup_key=step.key(invoice.pk),
        )
        for invoice, step in chosen
        if step.key(invoice.pk) not in sent_keys
    ]
    return _deliveries_create(rows) if rows else []


# ----------------------------------------------------------------------------------------------------- sending


def _reply(code: int, text: bytes | str) -> str:
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return f"{code} {' '.join(text.split())}"


def _classify(exc: Exception) -> Exception:
    """The SMTP outcome as a temporary or permanent failure carrying the server's reply."""
    if isinstance(exc, SoftTimeLimitExceeded):  # the send task's time limit struck mid-conversation
        return _Temporary(ERR_TIME_LIMIT)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        replies = sorted(exc.recipients.items())
        text = "; ".join(f"{_reply(code, msg)} ({address})" for address, (code, msg) in replies)
        temporary = any(400 <= code < 500 for _, (code, _) in replies)
        return _Temporary(text) if temporary else _Permanent(text)
    if isinstance(exc, smtplib.SMTPResponseException):
        text = _reply(exc.smtp_code, exc.smtp_error)
        return _Permanent(text) if exc.smtp_code >= 500 else _Temporary(text)
    if isinstance(exc, OSError):  # lost connection, refused connection, timeout (smtplib's errors are OSErrors)
        return _Temporary(f"{type(exc).__name__}: {exc}".rstrip(": "))
    return exc


_WHAT = {
    Kind.INVOICE: "invoice e-mail",
    Kind.REMINDER: "reminder",
    Kind.OVERDUE: "overdue notice",
    Kind.CREDIT_NOTE: "e-mail",
}


def _lapsed_reason(delivery: EmailDelivery, now: dt.datetime) -> str | None:
    """Why a queued e-mail no longer applies to its invoice (or credit note) as it is ``now``; ``None`` while it
    still does. A new invoice e-mail applies unless the invoice was voided, a credit note's unless the note was;
    an overdue notice while the finalized invoice has an amount due; a reminder, in addition, only before its due
    date (a retry after it would say "due in -3 days")."""
    invoice = delivery.invoice
    what = _WHAT.get(delivery.kind, "e-mail")
    if delivery.kind == Kind.CREDIT_NOTE:
        note = delivery.credit_note
        if note is not None and note.status == CreditNote.Status.VOID:
            return ERR_LAPSED_NOTE_VOID.format(number=note.number)
        return None
    if invoice.status == Invoice.Status.VOID:
        return ERR_LAPSED_VOID.format(number=invoice.number, what=what)
    if delivery.kind not in (Kind.REMINDER, Kind.OVERDUE):
        return None
    if invoice.status == Invoice.Status.PAID:
        return ERR_LAPSED_PAID.format(number=invoice.number, what=what)
    if invoice.status == Invoice.Status.UNCOLLECTIBLE:
        return ERR_LAPSED_WRITTEN_OFF.format(number=invoice.number, what=what)
    if invoice.status != Invoice.Status.FINALIZED or invoice.amount_due <= 0:
        return ERR_LAPSED_NOTHING_DUE.format(number=invoice.number, what=what)
    if delivery.kind == Kind.REMINDER and (invoice.due_at is None or now.date() >= invoice.due_at.date()):
        return ERR_LAPSED_DUE_DATE.format(number=invoice.number, due=day(invoice.due_at))
    return None


def email_send(*, delivery_id: int, now: dt.datetime | None = None) -> SendOutcome:
    """One attempt to send a queued delivery. Holds the row lock while it talks to the server, so on PostgreSQL
    a second task for the same delivery waits and then finds it sent: concurrent tasks do not both send. This is
    at least once, not exactly once (the server may accept the message and the commit then fail).

    A delivery that is not queued is left alone; one that no longer applies to its invoice (paid, voided,
    written off, past the reminder's due date) is cancelled with the reason, and nothing is sent."""
    max_attempts = max(1, int(settings.BILLING_EMAIL_MAX_ATTEMPTS))
    base = int(settings.BILLING_EMAIL_RETRY_SECONDS)
    with transaction.atomic():
        delivery = (
            EmailDelivery.objects.select_for_update(of=("self",))
            .select_related("invoice", "invoice__account", "credit_note")
            .get(pk=delivery_id)
        )
        if delivery.status != EmailDelivery.Status.QUEUED:
            return SendOutcome(delivery)
        now = now or clock.now()
        # Decided under the lock, at the moment of sending: the invoice may have been paid, voided or written
        # off since the e-mail was queued (or since its last failed attempt).
        reason = _lapsed_reason(delivery, now)
        if reason is not None:
            delivery.status, delivery.last_error = EmailDelivery.Status.CANCELLED, reason
            delivery.next_attempt_at = None
            delivery.save(update_fields=["status", "last_error", "next_attempt_at"])
            return SendOutcome(delivery)
        delivery.attempts += 1
        fields = ["attempts", "status", "last_error", "next_attempt_at", "sent_at", "message_id"]
        try:
            message = email_message(delivery=delivery, now=now)
            message.send(fail_silently=False)
        except Exception as raised:
            failure = raised if isinstance(raised, _Temporary | _Permanent) else _classify(raised)
            if not isinstance(failure, _Temporary | _Permanent):
                # A broken template or a bug: another attempt would fail the same way; staff can retry.
                logger.exception("E-mail delivery %s failed", delivery_id)
                failure = _Permanent(f"{type(raised).__name__}: {raised}")
            delivery.last_error = str(failure)[:2000]
            if isinstance(failure, _Temporary) and delivery.attempts < max_attempts:
                retry_in = base * 2 ** (delivery.attempts - 1)
                delivery.next_attempt_at = now + dt.timedelta(seconds=retry_in)
                delivery.save(update_fields=fields)
                return SendOutcome(delivery, retry_in=retry_in)
            delivery.status, delivery.next_attempt_at = EmailDelivery.Status.FAILED, None
            delivery.save(update_fields=fields)
            return SendOutcome(delivery)
        delivery.status, delivery.sent_at, delivery.next_attempt_at = EmailDelivery.Status.SENT, now, None
        delivery.message_id = message.extra_headers["Message-ID"]
        delivery.save(update_fields=fields)
        return SendOutcome(delivery)
