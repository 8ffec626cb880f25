"""Payments against invoices: ``invoice_payment_record`` applies a payment to a finalized invoice's balance
(no admin action, API endpoint or payment provider calls it yet), and the signal sent when an invoice is
issued with money due."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.dispatch import Signal

from billing.models import Invoice
from billing.services.documents import document_request
from common import clock
from common.audit import stamp
from common.errors import BillingError
from common.money import round_money

ERR_PAYMENT = "A payment must be positive and at most the amount due ({due})."

# Sent after commit with ``invoice_ids`` when invoices are finalized with money due: where collection
# starts. No receiver is connected yet; invoices are paid by ``invoice_payment_record``.
invoice_ready_for_collection = Signal()


@transaction.atomic
def invoice_payment_record(
    *, invoice: Invoice, amount: Decimal, reference: str = "", actor: Any = None, now: dt.datetime | None = None
) -> Invoice:
    """Record a payment (manual/offline, or confirmed by the payment provider) against a finalized invoice."""
    now = now or clock.now()
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if invoice.status != Invoice.Status.FINALIZED:
        raise BillingError(
            f"Payments apply to finalized invoices; {invoice} is {invoice.get_status_display().lower()}.",
            code="invoice_not_payable",
            status=409,
        )
    amount = round_money(amount, invoice.currency)
    if amount <= 0 or amount > invoice.amount_due:
        raise BillingError(ERR_PAYMENT.format(due=invoice.amount_due), code="invalid_amount", field="amount")
    invoice.amount_paid += amount
    invoice.amount_due -= amount
    fields = ["amount_paid", "amount_due", "updated_at"]
    if invoice.amount_due == 0:
        invoice.status, invoice.paid_at = Invoice.Status.PAID, now
        fields += ["status", "paid_at"]
    stamp(invoice, actor=actor, reason=f"payment {amount} {invoice.currency} {reference}".strip(), at=now)
    invoice.save(update_fields=fields)
    document_request(invoice=invoice, now=now)  # the PDF shows the balance as it stands
    return invoice
