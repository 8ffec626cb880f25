"""Credit notes: crediting part or all of an issued invoice, with tax credited at the invoice's rate.

A credit names what it credits line by line (``CreditLine``): part or all of an invoice line (an amount, or a
quantity at the line's unit price, ``credit_line_for_quantity``) or a goodwill amount (no line). One function
(``_credit_plan``) checks a credit and works out its figures, for the preview staff see and for the issue.

Invariants (checked under the invoice's lock when issued):
- the issued credits of an invoice add up to at most its total, those of one line to at most the line's amount;
- tax is credited on the running total of the invoice's credits, so credits that add up to its subtotal give
  back exactly its tax, and never more than its tax;
- what a credit note credits first lowers what the invoice still owes; money already paid beyond that is
  released from the invoice's payments (``released``) to the account's credit balance, or refunded
  (``excess_to="refund"``): a transfer or check is recorded as sent back, card money is refunded through Stripe.
A note is voided only while it is not applied (its invoice still open with an amount due, no money released).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Sum

from billing.models import Collection, CreditNote, CreditNoteLine, Invoice, InvoiceLine, Payment, PaymentAllocation
from billing.presentation import unit_price_text
from billing.quantities import format_metric_quantity
from billing.services import stripe_gateway
from billing.services.documents import document_request
from billing.services.emails.queueing import email_queue_credit_note
from billing.services.numbering import document_numbers
from billing.services.payments import (
    PERM_REFUND,
    invoice_release_payments,
    payment_received,
    payment_refund,
    require_permission,
)
from common import clock
from common.audit import stamp
from common.errors import BillingError
from common.formats import iso_utc, money_string
from common.money import format_money, round_money
from common.outbox import outbox_emit

ZERO = Decimal(0)
PERM_VOID_CREDIT_NOTE = "billing.void_credit_note"
EXCESS_TO = ("balance", "refund")


@dataclass(frozen=True)
class CreditLine:
    """One line of a credit: part or all of an invoice line (``invoice_line``), or a goodwill amount (no line).
    ``amount`` is before tax; ``quantity`` is the quantity credited at the line's unit price, when it was
    credited by quantity (shown on the credit note)."""

    invoice_line: InvoiceLine | None
    description: str
    amount: Decimal
    quantity: Decimal | None = None


@dataclass(frozen=True)
class CreditPreview:
    """What a credit would come to: ``subtotal`` + ``tax`` = ``total``; ``left_to_credit`` is what could still be
    credited on the invoice after it; ``released`` is the part of it the invoice's payments would give back
    (beyond what the invoice still owes), to the credit balance or refunded."""

    subtotal: Decimal
    tax: Decimal
    total: Decimal
    left_to_credit: Decimal
    released: Decimal = ZERO


ERR_CREDIT_STATUS = "Only finalized or paid invoices can be credited; {number} is {status}."
ERR_CREDIT_EMPTY = "A credit note needs at least one line with a positive amount."
ERR_CREDIT_TOO_MUCH = "A credit of {amount} exceeds what is left to credit on {number} ({left})."
ERR_CREDIT_LINE_FOREIGN = "A credited line must belong to the invoice."
ERR_CREDIT_LINE_TOO_MUCH = "A credit of {amount} on “{line}” exceeds what is left to credit on that line ({left})."
ERR_NO_UNIT_PRICE = "“{line}” has no single unit price to credit a quantity at: credit an amount instead."
ERR_QUANTITY_POSITIVE = "The quantity credited on “{line}” must be positive."
ERR_QUANTITY_TOO_MUCH = "{quantity} is more than the {billable} billed on “{line}”."
ERR_EXCESS_TO = "Money already paid goes to the credit balance or is refunded (excess_to: balance or refund)."
ERR_REFUND_DENIED = (
    "This credit gives back {amount} already paid: only Finance admins may refund it (choose the credit balance)."
)
ERR_REFUND_STRIPE_OFF = (
    "{payment} was paid through Stripe, which is not configured here: its {amount} cannot be refunded now "
    "(choose the credit balance, or configure Stripe). Nothing was issued."
)
ERR_STRIPE_UNAVAILABLE = "Stripe could not refund {payment} now ({error}); nothing was issued. Try again later."
ERR_VOID_DENIED = "Only Finance admins may void credit notes."
ERR_REASON = "Give a reason."
ERR_VOID_NOT_ISSUED = "{number} is void already."
ERR_VOID_RELEASED = (
    "{number} is applied: it gave back {amount} already paid on {invoice} (to the credit balance or refunded), "
    "so it cannot be voided."
)
ERR_VOID_SETTLED = "{number} is applied: {invoice} is {status} with nothing left to pay, so it cannot be voided."


def _lower_first(name: str) -> str:
    """``Messages`` → ``messages``; ``API requests`` stays (an acronym)."""
    if len(name) > 1 and name[0].isupper() and name[1].islower():
        return name[0].lower() + name[1:]
    return name


def credit_line_for_quantity(*, line: InvoiceLine, quantity: Decimal) -> CreditLine:
    """``quantity`` of ``line`` credited at its unit price per price unit (``quantity / price_unit_size ×
    unit_price``), rounded once to the invoice's currency: 6,000 messages at $0.03 → $180.00, described
    "6,000 messages credited at USD 0.03". Refused (400, field ``lines``) for a line without a single unit
    price (tiered prices, a prorated base fee: credit an amount instead), a quantity that is not positive,
    or more than the line billed (its billable quantity, or its quantity when nothing was included)."""
    quantity = Decimal(quantity)
    billed = line.billable if line.billable is not None else line.quantity
    if line.unit_price is None or billed is None:
        raise BillingError(ERR_NO_UNIT_PRICE.format(line=line.description), code="no_unit_price", field="lines")
    if quantity <= 0:
        raise BillingError(ERR_QUANTITY_POSITIVE.format(line=line.description), code="invalid_quantity", field="lines")
    metric = line.metric
    if quantity > billed:
        raise BillingError(
            ERR_QUANTITY_TOO_MUCH.format(
                quantity=format_metric_quantity(quantity, metric),
                billable=format_metric_quantity(billed, metric),
                line=line.description,
            ),
            code="quantity_exceeds_billable",
            field="lines",
        )
    currency = line.invoice.currency
    per = metric.price_unit_size if metric is not None else Decimal(1)
    amount = round_money(quantity / per * line.unit_price, currency)
    shown, price = format_metric_quantity(quantity, metric), unit_price_text(line, currency)
    if metric is not None:
        description = f"{shown} {_lower_first(metric.name)} credited at {price}"
    else:  # a base fee: its own description names what is credited
        description = f"{shown} × {line.description} credited at {price}"
    return CreditLine(invoice_line=line, description=description[:300], amount=amount, quantity=quantity)


def _as_credit_line(line: CreditLine | tuple[InvoiceLine | None, str, Decimal]) -> CreditLine:
    if isinstance(line, CreditLine):
        return line
    invoice_line, description, amount = line
    return CreditLine(invoice_line=invoice_line, description=description, amount=amount)


@dataclass(frozen=True)
class _Plan:
    lines: list[CreditLine]  # amounts rounded to the currency
    preview: CreditPreview


def _credit_plan(invoice: Invoice, lines: Sequence[CreditLine | tuple[InvoiceLine | None, str, Decimal]]) -> _Plan:
    """Check a credit of ``invoice`` (as it is in the database now; the issue holds its lock) and work out its
    figures. The one place the rules live: the preview and the issue both call it."""
    if invoice.status not in (Invoice.Status.FINALIZED, Invoice.Status.PAID):
        raise BillingError(
            ERR_CREDIT_STATUS.format(number=invoice.number or invoice.pk, status=invoice.get_status_display().lower()),
            code="invoice_not_creditable",
            status=409,
        )
    currency = invoice.currency
    clean = []
    for given in lines:
        line = _as_credit_line(given)
        clean.append(
            CreditLine(
                invoice_line=line.invoice_line,
                description=line.description,
                amount=round_money(line.amount, currency),
                quantity=line.quantity,
            )
        )
    if not clean or any(line.amount <= 0 for line in clean):
        raise BillingError(ERR_CREDIT_EMPTY, code="invalid_amount", field="lines")
    credited: dict[int, Decimal] = defaultdict(lambda: ZERO)
    by_line: dict[int, InvoiceLine] = {}
    for line in clean:
        if line.invoice_line is None:
            continue
        if line.invoice_line.invoice_id != invoice.pk:
            raise BillingError(ERR_CREDIT_LINE_FOREIGN, code="invalid_line", field="lines")
        by_line[line.invoice_line.pk] = line.invoice_line
        credited[line.invoice_line.pk] += line.amount
    if by_line:
        before = dict(
            CreditNoteLine.objects.filter(invoice_line_id__in=by_line, credit_note__status=CreditNote.Status.ISSUED)
            .values("invoice_line_id")
            .annotate(total=Sum("amount"))
            .values_list("invoice_line_id", "total")
        )
        for pk, invoice_line in by_line.items():
            # Stored amounts (the line's, earlier credits') carry four places; the currency's minor unit is what counts.
            left = round_money(invoice_line.amount - before.get(pk, ZERO), currency)
            if credited[pk] > left:
                raise BillingError(
                    ERR_CREDIT_LINE_TOO_MUCH.format(
                        amount=format_money(credited[pk], currency),
                        line=invoice_line.description,
                        left=format_money(max(left, ZERO), currency),
                    ),
                    code="credit_exceeds_line",
                    field="lines",
                )
    subtotal = sum((line.amount for line in clean), ZERO)
    rate = ZERO if invoice.tax_reverse_charge else invoice.tax_rate
    # Tax on all credits so far, less the tax already credited: credits that add up to the invoice's
    # subtotal give back exactly its tax, never a cent more through rounding.
    before_notes = invoice.credit_notes.filter(status=CreditNote.Status.ISSUED).aggregate(
        subtotal=Sum("subtotal", default=ZERO), tax=Sum("tax", default=ZERO)
    )
    tax = round_money((before_notes["subtotal"] + subtotal) * rate / 100, currency) - before_notes["tax"]
    tax = round_money(max(min(tax, invoice.tax - before_notes["tax"]), ZERO), currency)
    total = subtotal + tax
    left = round_money(invoice.total - invoice.amount_credited, currency)
    if total > left:
        raise BillingError(
            ERR_CREDIT_TOO_MUCH.format(amount=total, number=invoice.number, left=left),
            code="credit_exceeds_invoice",
            field="lines",
        )
    released = round_money(max(total - invoice.amount_due, ZERO), currency)
    return _Plan(
        lines=clean,
        preview=CreditPreview(subtotal=subtotal, tax=tax, total=total, left_to_credit=left - total, released=released),
    )


def credit_preview(
    *, invoice: Invoice, lines: Sequence[CreditLine | tuple[InvoiceLine | None, str, Decimal]]
) -> CreditPreview:
    """What issuing this credit would come to, with the errors the issue would raise (nothing is written)."""
    invoice = Invoice.objects.get(pk=invoice.pk)
    return _credit_plan(invoice, lines).preview


def _refund_released(*, note: CreditNote, invoice: Invoice, reason: str, actor: Any, now: dt.datetime) -> None:
    """Send back the money ``note`` released from ``invoice``'s payments: per payment, a transfer, check or
    other payment is recorded as refunded; a Stripe payment is refunded at Stripe and recorded with Stripe's
    ``re_…`` id, so Stripe's ``charge.refunded`` for it records nothing more. Stripe last: it is the one step
    that cannot be rolled back."""
    shares: dict[int, Decimal] = defaultdict(lambda: ZERO)
    for payment_id, amount in PaymentAllocation.objects.filter(
        invoice=invoice, kind=PaymentAllocation.Kind.RELEASE, reason=f"credited by {note.number}"
    ).values_list("payment_id", "amount"):
        shares[payment_id] -= amount
    payments = {p.pk: p for p in Payment.objects.filter(pk__in=shares).order_by("pk")}
    offline = [p for p in payments.values() if p.provider != Payment.Provider.STRIPE]
    by_stripe = [p for p in payments.values() if p.provider == Payment.Provider.STRIPE]
    if by_stripe and not stripe_gateway.stripe_enabled():
        payment = by_stripe[0]
        raise BillingError(
            ERR_REFUND_STRIPE_OFF.format(
                payment=payment.public_id, amount=format_money(shares[payment.pk], payment.currency)
            ),
            code="stripe_not_configured",
            status=409,
        )
    why = f"{note.number}: {reason}"
    for payment in offline:
        payment_refund(payment=payment, amount=shares[payment.pk], reason=why, actor=actor, now=now)
    for payment in by_stripe:
        try:
            refund = stripe_gateway.refund_create(
                payment=payment,
                amount=shares[payment.pk],
                idempotency_key=f"credit-note-{note.pk}-payment-{payment.pk}",
                metadata={"credit_note": note.number, "payment_id": payment.public_id},
            )
        except stripe_gateway.StripeUnavailable as exc:
            raise BillingError(
                ERR_STRIPE_UNAVAILABLE.format(payment=payment.public_id, error=exc),
                code="stripe_unavailable",
                status=503,
            ) from exc
        payment_refund(
            payment=payment,
            amount=stripe_gateway.from_minor(refund["amount"], refund.get("currency") or payment.currency),
            reason=f"Stripe refund {refund['id']}: {why}",
            external_id=refund["id"],
            refunded_at=stripe_gateway.timestamp(refund.get("created")) or now,
            actor=actor,
            now=now,
        )


@transaction.atomic
def credit_note_issue(
    *,
    invoice: Invoice,
    lines: Sequence[CreditLine | tuple[InvoiceLine | None, str, Decimal]],
    reason: str,
    excess_to: str = "balance",
    actor: Any = None,
    now: dt.datetime | None = None,
) -> CreditNote:
    """Credit part or all of a finalized invoice. Tax is credited at the invoice's rate; the invoice's
    amount due falls by the credit (a fully settled invoice becomes paid). Money already paid beyond what
    is due is released from the invoice's payments to the credit balance, or refunded (``excess_to="refund"``,
    which needs ``billing.refund_payment``). ``lines`` are ``CreditLine``s or ``(line, description, amount)``."""
    now = now or clock.now()
    if excess_to not in EXCESS_TO:
        raise BillingError(ERR_EXCESS_TO, code="invalid_choice", field="excess_to")
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    plan = _credit_plan(invoice, lines)
    figures = plan.preview
    currency = invoice.currency
    # Credit beyond what is owed: that much of the money that paid the invoice is released from it and becomes
    # the account's credit balance (applied to its next invoice), or goes back to the customer.
    refund_due = figures.released
    refunding = excess_to == "refund" and refund_due > 0
    if refunding:
        require_permission(actor, PERM_REFUND, ERR_REFUND_DENIED.format(amount=format_money(refund_due, currency)))
    (number,) = document_numbers(prefix=getattr(settings, "BILLING_CREDIT_NOTE_SERIES", "CN"), at=now, count=1)
    note = CreditNote(
        number=number,
        invoice=invoice,
        account_id=invoice.account_id,
        currency=currency,
        reason=reason[:500],
        subtotal=figures.subtotal,
        tax=figures.tax,
        total=figures.total,
        issued_at=now,
        released=refund_due,
        excess_to=excess_to,
        created_by=actor if getattr(actor, "is_authenticated", False) else None,
    )
    stamp(note, actor=actor, reason=reason[:100], at=now)
    note.save()
    CreditNoteLine.objects.bulk_create(
        [
            CreditNoteLine(
                credit_note=note, invoice_line=line.invoice_line, description=line.description[:300], amount=line.amount
            )
            for line in plan.lines
        ]
    )
    invoice.amount_credited += figures.total
    if refund_due:
        invoice_release_payments(
            invoice=invoice, amount=refund_due, reason=f"credited by {note.number}", actor=actor, now=now
        )
    invoice.amount_due = invoice.total - invoice.amount_paid - invoice.amount_credited
    fields = ["amount_credited", "amount_due", "amount_paid", "updated_at"]
    if invoice.amount_due == 0 and invoice.status == Invoice.Status.FINALIZED:
        invoice.status, invoice.paid_at = Invoice.Status.PAID, now
        fields += ["status", "paid_at"]
    where = "refunded" if excess_to == "refund" else "to the credit balance"
    stamp(
        invoice,
        actor=actor,
        reason=(f"credited {note.number}" + (f" ({money_string(refund_due, currency)} {where})" if refund_due else ""))[
            :100
        ],
        at=now,
    )
    invoice.save(update_fields=fields)
    if refunding:
        _refund_released(note=note, invoice=invoice, reason=reason, actor=actor, now=now)
    if "status" in fields:
        # Settled by the credit: nothing is left to collect, so the automatic retries stop (as a payment would).
        Collection.objects.filter(invoice=invoice).update(state=Collection.State.SUCCEEDED, next_attempt_at=None)
        # ... and an account past due or suspended for it may be active again at once, as after a payment.
        account_id = invoice.account_id
        transaction.on_commit(lambda: payment_received.send(sender=CreditNote, account_id=account_id, now=now))
    outbox_emit(
        type="billing.credit_note_issued",
        account_id=invoice.account_id,
        dedup_key=f"credit_note_issued:{note.pk}",
        data={
            "credit_note_id": note.number,
            "invoice_id": invoice.number,
            "subtotal": money_string(note.subtotal, currency),
            "tax": money_string(note.tax, currency),
            "total": money_string(note.total, currency),
            "currency": currency,
            "reason": note.reason,
            "excess_to": note.excess_to,
            "released": money_string(note.released, currency),
            "issued_at": iso_utc(note.issued_at),
        },
        now=now,
    )
    document_request(credit_note=note, now=now)
    document_request(invoice=invoice, now=now)  # the invoice's PDF shows the credit and the new amount due
    email_queue_credit_note(credit_note=note, now=now)
    return note


def credit_note_voidable(note: CreditNote) -> bool:
    """Whether ``note`` is not applied yet (what ``credit_note_void`` allows), read from the rows as they are."""
    invoice = note.invoice
    return (
        note.status == CreditNote.Status.ISSUED
        and note.released == 0
        and invoice.status == Invoice.Status.FINALIZED
        and invoice.amount_due > 0
    )


@transaction.atomic
def credit_note_void(*, credit_note: CreditNote, reason: str, actor: Any, now: dt.datetime | None = None) -> CreditNote:
    """Void a credit note that is not applied yet: it released no money and its invoice is still open with an
    amount due (a note that settled its invoice is applied). The invoice owes the note's total again; both
    PDFs are rendered again, and the note's e-mail, if still queued, is cancelled when it is due to be sent."""
    now = now or clock.now()
    require_permission(actor, PERM_VOID_CREDIT_NOTE, ERR_VOID_DENIED)
    if not reason.strip():
        raise BillingError(ERR_REASON, code="required", field="reason")
    # The invoice first, then the note: the order the issue locks them in.
    invoice = Invoice.objects.select_for_update().get(pk=credit_note.invoice_id)
    note = CreditNote.objects.select_for_update().get(pk=credit_note.pk)
    currency = note.currency
    if note.status != CreditNote.Status.ISSUED:
        raise BillingError(ERR_VOID_NOT_ISSUED.format(number=note.number), code="credit_note_void", status=409)
    if note.released > 0:
        raise BillingError(
            ERR_VOID_RELEASED.format(
                number=note.number, amount=format_money(note.released, currency), invoice=invoice.number
            ),
            code="credit_note_applied",
            status=409,
        )
    if invoice.status != Invoice.Status.FINALIZED or invoice.amount_due <= 0:
        raise BillingError(
            ERR_VOID_SETTLED.format(
                number=note.number, invoice=invoice.number, status=invoice.get_status_display().lower()
            ),
            code="credit_note_applied",
            status=409,
        )
    note.status, note.voided_at, note.void_reason = CreditNote.Status.VOID, now, reason[:500]
    stamp(note, actor=actor, reason=f"voided: {reason}"[:100], at=now)
    note.save(update_fields=["status", "voided_at", "void_reason"])
    invoice.amount_credited = round_money(invoice.amount_credited - note.total, currency)
    invoice.amount_due = round_money(invoice.amount_due + note.total, currency)
    stamp(invoice, actor=actor, reason=f"{note.number} voided: {reason}"[:100], at=now)
    invoice.save(update_fields=["amount_credited", "amount_due", "updated_at"])
    outbox_emit(
        type="billing.credit_note_voided",
        account_id=invoice.account_id,
        dedup_key=f"credit_note_voided:{note.pk}",
        data={
            "credit_note_id": note.number,
            "invoice_id": invoice.number,
            "total": money_string(note.total, currency),
            "currency": currency,
            "reason": note.void_reason,
            "voided_at": iso_utc(now),
            "amount_due": money_string(invoice.amount_due, currency),
        },
        now=now,
    )
    document_request(credit_note=note, now=now)
    document_request(invoice=invoice, now=now)
    return note
