"""Sending one delivery over SMTP: one attempt, classified as sent, temporary failure (retried with backoff)
or permanent failure; a delivery whose reason lapsed (the invoice was paid, voided, ...) is cancelled."""

from __future__ import annotations

import datetime as dt
import logging
import smtplib
from dataclasses import dataclass

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction

from billing.models import CreditNote, EmailDelivery, Invoice
from billing.presentation import day
from billing.services.emails.content import TemporaryFailure, email_message
from common import clock

logger = logging.getLogger(__name__)

Kind = EmailDelivery.Kind
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


class PermanentFailure(Exception):
    """A failure that another attempt will not fix (5xx reply)."""


def _reply(code: int, text: bytes | str) -> str:
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return f"{code} {' '.join(text.split())}"


def _classify(exc: Exception) -> Exception:
    """The SMTP outcome as a temporary or permanent failure carrying the server's reply."""
    if isinstance(exc, SoftTimeLimitExceeded):  # the send task's time limit struck mid-conversation
        return TemporaryFailure(ERR_TIME_LIMIT)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        replies = sorted(exc.recipients.items())
        text = "; ".join(f"{_reply(code, msg)} ({address})" for address, (code, msg) in replies)
        temporary = any(400 <= code < 500 for _, (code, _) in replies)
        return TemporaryFailure(text) if temporary else PermanentFailure(text)
    if isinstance(exc, smtplib.SMTPResponseException):
        text = _reply(exc.smtp_code, exc.smtp_error)
        return PermanentFailure(text) if exc.smtp_code >= 500 else TemporaryFailure(text)
    if isinstance(exc, OSError):  # lost connection, refused connection, timeout (smtplib's errors are OSErrors)
        return TemporaryFailure(f"{type(exc).__name__}: {exc}".rstrip(": "))
    return exc


_WHAT: dict[str, str] = {
    Kind.INVOICE: "invoice e-mail",
    Kind.REMINDER: "reminder",
    Kind.OVERDUE: "overdue notice",
    Kind.CREDIT_NOTE: "e-mail",
    Kind.PAYMENT_FAILED: "failed-payment notice",
}


def _lapsed_reason(delivery: EmailDelivery, now: dt.datetime) -> str | None:
    """Why a queued e-mail no longer applies to its invoice (or credit note) as it is ``now``; ``None`` while it
    still does. A new invoice e-mail applies unless the invoice was voided, a credit note's unless the note was;
    an overdue notice while the finalized invoice has an amount due; a reminder, in addition, only before its due
    date (a retry after it would say "due in -3 days")."""
    invoice = delivery.invoice
    if invoice is None:  # about the subscription: it says what was true when it was queued
        return None
    what = _WHAT.get(delivery.kind, "e-mail")
    if delivery.kind == Kind.CREDIT_NOTE:
        note = delivery.credit_note
        if note is not None and note.status == CreditNote.Status.VOID:
            return ERR_LAPSED_NOTE_VOID.format(number=note.number)
        return None
    if invoice.status == Invoice.Status.VOID:
        return ERR_LAPSED_VOID.format(number=invoice.number, what=what)
    if delivery.kind not in (Kind.REMINDER, Kind.OVERDUE, Kind.PAYMENT_FAILED):
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
            .select_related("invoice", "invoice__account", "credit_note", "account")
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
            failure = raised if isinstance(raised, TemporaryFailure | PermanentFailure) else _classify(raised)
            if not isinstance(failure, TemporaryFailure | PermanentFailure):
                # A broken template or a bug: another attempt would fail the same way; staff can retry.
                logger.exception("E-mail delivery %s failed", delivery_id)
                failure = PermanentFailure(f"{type(raised).__name__}: {raised}")
            delivery.last_error = str(failure)[:2000]
            if isinstance(failure, TemporaryFailure) and delivery.attempts < max_attempts:
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
