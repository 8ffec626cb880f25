"""What an invoice or credit-note e-mail says: subject, text and HTML bodies, the PDF attached."""

from __future__ import annotations

import datetime as dt
import logging
from email.utils import make_msgid
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.core.mail.utils import DNS_NAME
from django.template.loader import render_to_string
from django.urls import reverse

from billing.models import Collection, EmailDelivery, Invoice
from billing.presentation import invoice_seller
from billing.services.documents import document_ready
from common import clock
from common.money import format_money
from common.periods import Period

logger = logging.getLogger(__name__)

Kind = EmailDelivery.Kind
ERR_NO_PDF = "The PDF is not available yet: {error}"


class TemporaryFailure(Exception):
    """A failure worth trying again (4xx reply, lost connection, timeout, PDF not rendered yet)."""


def _portal_url(invoice: Invoice) -> str:
    return settings.LEDGERLINE_BASE_URL.rstrip("/") + reverse("portal:invoice", args=[invoice.number])


def _billing_url() -> str:
    return settings.LEDGERLINE_BASE_URL.rstrip("/") + reverse("portal:billing")


# E-mails about money and the account's status: the invoice is named, its PDF is not attached again.
WITHOUT_PDF = {
    Kind.PAYMENT_FAILED,
    Kind.RECEIPT,
    Kind.PAST_DUE,
    Kind.SUSPENDED,
    Kind.REACTIVATED,
    Kind.DISPUTE_OPENED,
    Kind.DISPUTE_MESSAGE,
    Kind.DISPUTE_RESOLVED,
    Kind.DISPUTE_STAFF,
    Kind.PLAN_CHANGE,
    Kind.TRIAL_ENDING,
    Kind.RENEWAL_NOTICE,
    Kind.SUBSCRIPTION,
    "webhook_disabled",  # webhooks: an endpoint disabled after failing for days (webhooks/templates)
}


def _payment_context(delivery: EmailDelivery) -> dict[str, Any]:
    payment = delivery.payment
    if payment is None or delivery.invoice_id is None:
        return {}
    collection = Collection.objects.filter(invoice_id=delivery.invoice_id).first()
    retry = collection.next_attempt_at if collection and collection.state == Collection.State.RETRYING else None
    return {
        "payment": payment,
        "payment_amount": format_money(payment.amount, payment.currency),
        "payment_method": payment.payment_method.replace("_", " ") or payment.get_provider_display(),
        "paid_at": payment.received_at,
        "failure_reason": payment.failure_message or payment.failure_code,
        "retry_date": retry.date() if retry else None,
    }


def _account_context(delivery: EmailDelivery) -> dict[str, Any]:
    """An e-mail about the subscription (no invoice): the account, links, the seller as configured now."""
    account = delivery.account
    assert account is not None  # a delivery is about an invoice or an account (a database constraint)
    seller = dict(getattr(settings, "BILLING_SELLER", {}))
    return {
        "kind": delivery.kind,
        "invoice": None,
        "credit_note": None,
        "account": account,
        "customer_name": account.name,
        "billing_url": _billing_url(),
        "plan_url": settings.LEDGERLINE_BASE_URL.rstrip("/") + reverse("portal:plan"),
        "account_status": account.get_status_display().lower(),
        **(delivery.context or {}),
        "seller_name": seller.get("name", ""),
        "contact_email": seller.get("email", ""),
    }


def _context(delivery: EmailDelivery, now: dt.datetime) -> dict[str, Any]:
    invoice = delivery.invoice
    if invoice is None:
        return _account_context(delivery)
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
        "period_last_day": Period(invoice.period_start, invoice.period_end).last_day,
        "total": format_money(invoice.total, invoice.currency),
        "amount_due": format_money(invoice.amount_due, invoice.currency),
        "credit_total": format_money(note.total, note.currency) if note else "",
        "due_date": due_date,
        "days_to_due": (due_date - today).days if due_date else None,
        "days_overdue": (today - due_date).days if due_date else None,
        "portal_url": _portal_url(invoice),
        "billing_url": _billing_url(),
        "account_status": invoice.account.get_status_display().lower(),
        **_payment_context(delivery),
        # What the e-mail says beyond its invoice (a dispute's id, state and message), as it was queued.
        **(delivery.context or {}),
        # Signed by the seller as snapshotted on the invoice, like its PDF.
        "seller_name": seller.get("name", ""),
        "contact_email": seller.get("email", ""),
    }


def email_subject(delivery: EmailDelivery, now: dt.datetime) -> str:
    text = render_to_string(f"billing/email/{delivery.kind}_subject.txt", _context(delivery, now))
    return " ".join(text.split())[:300]


def email_message(*, delivery: EmailDelivery, now: dt.datetime | None = None) -> EmailMultiAlternatives:
    """The e-mail of a delivery: plain text and HTML bodies, the PDF attached (not to e-mails about payments
    and the account's status), a fresh Message-ID."""
    now = now or clock.now()
    context = _context(delivery, now)
    attachment = None if delivery.kind in WITHOUT_PDF else _pdf_attachment(delivery)
    message = EmailMultiAlternatives(
        subject=delivery.subject or email_subject(delivery, now),
        body=render_to_string(f"billing/email/{delivery.kind}.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=list(delivery.recipients),
        reply_to=[context["contact_email"]] if context["contact_email"] else [],
        headers={"Message-ID": make_msgid(domain=DNS_NAME)},
    )
    message.attach_alternative(render_to_string(f"billing/email/{delivery.kind}.html", context), "text/html")
    if attachment is not None:
        message.attach(*attachment, "application/pdf")
    return message


def _pdf_attachment(delivery: EmailDelivery) -> tuple[str, bytes]:
    if delivery.credit_note is not None:
        document = document_ready(credit_note=delivery.credit_note)
        filename = f"{delivery.credit_note.number}.pdf"
    else:
        invoice = delivery.invoice
        assert invoice is not None  # e-mails about the subscription attach nothing (WITHOUT_PDF)
        document = document_ready(invoice=invoice)
        filename = f"{invoice.number}.pdf"
    if not document.file:
        raise TemporaryFailure(ERR_NO_PDF.format(error=document.error or "still rendering"))
    with document.file.open("rb") as pdf:
        return filename, pdf.read()
