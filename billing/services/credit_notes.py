"""Credit notes: crediting part or all of an issued invoice, with tax credited at the invoice's rate."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Sum

from billing.models import Collection, CreditNote, CreditNoteLine, Invoice, InvoiceLine
from billing.services.documents import document_request
from billing.services.emails.queueing import email_queue_credit_note
from billing.services.numbering import document_numbers
from billing.services.payments import invoice_release_payments, payment_received
from common import clock
from common.audit import stamp
from common.errors import BillingError
from common.money import round_money

ZERO = Decimal(0)
ERR_CREDIT_STATUS = "Only finalized or paid invoices can be credited; {number} is {status}."
ERR_CREDIT_EMPTY = "A credit note needs at least one line with a positive amount."
ERR_CREDIT_TOO_MUCH = "A credit of {amount} exceeds what is left to credit on {number} ({left})."


@transaction.atomic
def credit_note_issue(
    *,
    invoice: Invoice,
    lines: list[tuple[InvoiceLine | None, str, Decimal]],
    reason: str,
    actor: Any = None,
    now: dt.datetime | None = None,
) -> CreditNote:
    """Credit part or all of a finalized invoice. Tax is credited at the invoice's rate; the invoice's
    amount due falls by the credit (a fully settled invoice becomes paid)."""
    now = now or clock.now()
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if invoice.status not in (Invoice.Status.FINALIZED, Invoice.Status.PAID):
        raise BillingError(
            ERR_CREDIT_STATUS.format(number=invoice.number or invoice.pk, status=invoice.get_status_display().lower()),
            code="invoice_not_creditable",
            status=409,
        )
    currency = invoice.currency
    clean = [(line, description, round_money(amount, currency)) for line, description, amount in lines]
    if not clean or any(amount <= 0 for _, _, amount in clean):
        raise BillingError(ERR_CREDIT_EMPTY, code="invalid_amount", field="lines")
    for line, _, _ in clean:
        if line is not None and line.invoice_id != invoice.pk:
            raise BillingError("A credited line must belong to the invoice.", code="invalid_line", field="lines")
    subtotal = sum((amount for _, _, amount in clean), ZERO)
    rate = ZERO if invoice.tax_reverse_charge else invoice.tax_rate
    # Tax on all credits so far, less the tax already credited: credits that add up to the invoice's
    # subtotal give back exactly its tax, never a cent more through rounding.
    before = invoice.credit_notes.filter(status=CreditNote.Status.ISSUED).aggregate(
        subtotal=Sum("subtotal", default=ZERO), tax=Sum("tax", default=ZERO)
    )
    tax = round_money((before["subtotal"] + subtotal) * rate / 100, currency) - before["tax"]
    tax = round_money(max(min(tax, invoice.tax - before["tax"]), ZERO), currency)
    total = subtotal + tax
    left = invoice.total - invoice.amount_credited
    if total > left:
        raise BillingError(
            ERR_CREDIT_TOO_MUCH.format(amount=total, number=invoice.number, left=round_money(left, currency)),
            code="credit_exceeds_invoice",
            field="lines",
        )
    (number,) = document_numbers(prefix=getattr(settings, "BILLING_CREDIT_NOTE_SERIES", "CN"), at=now, count=1)
    note = CreditNote(
        number=number,
        invoice=invoice,
        account_id=invoice.account_id,
        currency=currency,
        reason=reason[:500],
        subtotal=subtotal,
        tax=tax,
        total=total,
        issued_at=now,
        created_by=actor if getattr(actor, "is_authenticated", False) else None,
    )
    stamp(note, actor=actor, reason=reason[:100], at=now)
    note.save()
    CreditNoteLine.objects.bulk_create(
        [CreditNoteLine(credit_note=note, invoice_line=line, description=d[:300], amount=a) for line, d, a in clean]
    )
    invoice.amount_credited += total
    # Credit beyond what is owed: that much of the money that paid the invoice is released from it and becomes
    # the account's credit balance (applied to its next invoice, or refunded by finance).
    refund_due = max(total - invoice.amount_due, ZERO)
    if refund_due:
        invoice_release_payments(
            invoice=invoice, amount=refund_due, reason=f"credited by {note.number}", actor=actor, now=now
        )
    invoice.amount_due = invoice.total - invoice.amount_paid - invoice.amount_credited
    fields = ["amount_credited", "amount_due", "amount_paid", "updated_at"]
    if invoice.amount_due == 0 and invoice.status == Invoice.Status.FINALIZED:
        invoice.status, invoice.paid_at = Invoice.Status.PAID, now
        fields += ["status", "paid_at"]
    stamp(
        invoice,
        actor=actor,
        reason=f"credited {note.number}" + (f" ({refund_due} to the credit balance)" if refund_due else ""),
        at=now,
    )
    invoice.save(update_fields=fields)
    if "status" in fields:
        # Settled by the credit: nothing is left to collect, so the automatic retries stop (as a payment would).
        Collection.objects.filter(invoice=invoice).update(state=Collection.State.SUCCEEDED, next_attempt_at=None)
        # ... and an account past due or suspended for it may be active again at once, as after a payment.
        account_id = invoice.account_id
        transaction.on_commit(lambda: payment_received.send(sender=CreditNote, account_id=account_id, now=now))
    document_request(credit_note=note, now=now)
    document_request(invoice=invoice, now=now)  # the invoice's PDF shows the credit and the new amount due
    email_queue_credit_note(credit_note=note, now=now)
    return note
