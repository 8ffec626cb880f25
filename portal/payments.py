"""What the portal's Billing page and payment receipts show, and the account-status banner of every portal page.

Read from the payments ledger (``billing.models.payment``) through the same figures as the staff admin: the
open balance is the sum of the open invoices' ``amount_due``, the credit balance is
``billing.selectors.credit_balance``; wording of methods, statuses and collection comes from
``billing.presentation``, as on the invoice PDF."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Prefetch, Sum

from accounts.models import Account
from billing.models import Collection, Invoice, Payment, PaymentAllocation, PaymentProfile, Refund
from billing.presentation import (
    collection_text,
    current_seller,
    day,
    invoice_payment_status,
    invoice_seller,
    payment_method_text,
    profile_method_text,
    short_day,
)
from billing.selectors import credit_balance, payment_unapplied
from billing.services.account_status import overdue_invoices, suspension_due
from common import clock
from common.money import format_money

ZERO = Decimal(0)
# Payments a customer gets a receipt for: money that was received (a refunded one was received, too).
RECEIPT_STATUSES = (Payment.Status.SUCCEEDED, Payment.Status.REFUNDED)
# Pending payments are attempts in flight (a card being charged): not money received yet, not listed.
LISTED_STATUSES = (Payment.Status.SUCCEEDED, Payment.Status.FAILED, Payment.Status.REFUNDED, Payment.Status.REVERSED)


@dataclass
class InvoiceShare:
    number: str
    amount: Decimal
    amount_text: str


@dataclass
class PaymentRow:
    payment: Payment
    date: str
    method: str
    reference: str
    amount_text: str
    status: str
    invoices: list[InvoiceShare]
    has_receipt: bool
    failure: str = ""


@dataclass
class OpenInvoiceRow:
    invoice: Invoice
    status: str
    status_css: str
    due: str
    amount_due_text: str
    collection: str


@dataclass
class BillingOverview:
    account: Account
    profile: PaymentProfile | None
    method: str
    auto_collection: bool
    open_balance: Decimal
    open_balance_text: str
    credit_balance: Decimal
    credit_balance_text: str
    open_invoices: list[OpenInvoiceRow]
    payments: list[PaymentRow]
    refunds: list[dict]


def _shares(payment: Payment) -> list[InvoiceShare]:
    """The invoices a payment paid, net of what was taken back off them (read from prefetched allocations)."""
    nets: dict[int, list] = {}
    for allocation in payment.allocations.all():
        entry = nets.setdefault(allocation.invoice_id, [allocation.invoice, ZERO])
        entry[1] += allocation.amount
    return [
        InvoiceShare(invoice.number, net, format_money(net, payment.currency))
        for invoice, net in nets.values()
        if net > 0 and invoice.number
    ]


def account_payments(account: Account) -> list[Payment]:
    """The account's payments, newest first, with the invoices they went to."""
    allocations = PaymentAllocation.objects.select_related("invoice").order_by("created_at", "pk")
    return list(
        Payment.objects.filter(account=account, status__in=LISTED_STATUSES)
        .select_related("invoice")
        .prefetch_related(Prefetch("allocations", queryset=allocations))
        .order_by("-received_at", "-pk")
    )


def billing_overview(*, account: Account, now: dt.datetime) -> BillingOverview:
    profile = PaymentProfile.objects.filter(account=account).first()
    currency = account.currency
    open_qs = (
        Invoice.objects.filter(account=account, status=Invoice.Status.FINALIZED, amount_due__gt=0)
        .select_related("collection")
        .order_by("due_at", "finalized_at", "pk")
    )
    open_rows = []
    for invoice in open_qs:
        label, css = invoice_payment_status(invoice, now)
        open_rows.append(
            OpenInvoiceRow(
                invoice=invoice,
                status=label,
                status_css=css,
                due=day(invoice.due_at),
                amount_due_text=format_money(invoice.amount_due, invoice.currency),
                collection=collection_text(invoice, getattr(invoice, "collection", None), profile=profile, now=now),
            )
        )
    open_balance = open_qs.aggregate(total=Sum("amount_due", default=ZERO))["total"]
    balance = credit_balance(account)
    payments = [
        PaymentRow(
            payment=payment,
            date=day(payment.received_at),
            method=payment_method_text(payment),
            reference=payment.reference,
            amount_text=format_money(payment.amount, payment.currency),
            status=payment.get_status_display(),
            invoices=_shares(payment),
            has_receipt=payment.status in RECEIPT_STATUSES,
            failure=payment.failure_message if payment.status == Payment.Status.FAILED else "",
        )
        for payment in account_payments(account)
    ]
    refunds = [
        {
            "refund": refund,
            "date": day(refund.refunded_at),
            "amount_text": format_money(refund.amount, refund.currency),
            "payment": refund.payment.public_id,
            "status": refund.get_status_display(),
        }
        for refund in Refund.objects.filter(account=account).select_related("payment").order_by("-refunded_at", "-pk")
    ]
    return BillingOverview(
        account=account,
        profile=profile,
        method=profile_method_text(profile),
        auto_collection=bool(profile and profile.auto_collection),
        open_balance=open_balance,
        open_balance_text=format_money(open_balance, currency),
        credit_balance=balance,
        credit_balance_text=format_money(balance, currency),
        open_invoices=open_rows,
        payments=payments,
        refunds=refunds,
    )


@dataclass
class Receipt:
    payment: Payment
    date: str
    method: str
    amount_text: str
    invoices: list[InvoiceShare]
    unapplied_text: str
    refunds: list[dict]
    seller: dict
    buyer: Account


def payment_receipt(*, payment: Payment) -> Receipt:
    """What a payment's receipt says: received when, how, how much, which invoices it paid, what of it is kept
    as credit balance and what was refunded."""
    allocations = PaymentAllocation.objects.filter(payment=payment).select_related("invoice").order_by("created_at")
    payment = Payment.objects.prefetch_related(Prefetch("allocations", queryset=allocations)).get(pk=payment.pk)
    shares = _shares(payment)
    first = next((a.invoice for a in payment.allocations.all()), None)
    seller = invoice_seller(first) if first is not None else current_seller()
    unapplied = payment_unapplied(payment)
    return Receipt(
        payment=payment,
        date=day(payment.received_at),
        method=payment_method_text(payment),
        amount_text=format_money(payment.amount, payment.currency),
        invoices=shares,
        unapplied_text=format_money(unapplied, payment.currency) if unapplied > 0 else "",
        refunds=[
            {
                "date": day(refund.refunded_at),
                "amount_text": format_money(refund.amount, refund.currency),
                "reason": refund.reason,
            }
            for refund in payment.refunds.filter(status=Refund.Status.SUCCEEDED).order_by("refunded_at", "pk")
        ],
        seller=seller,
        buyer=payment.account,
    )


# The banner on every portal page of an account that is past due or suspended.
SUSPENDED_BECAUSE = "Your account is suspended because {number} is unpaid. Pay it to lift the suspension."
SUSPENDED = "Your account is suspended. Please contact us to lift the suspension."
PAST_DUE_BECAUSE = "Your account is past due: {number} was due on {due}. Pay it to avoid a suspension."
PAST_DUE_FAILED = "Your account is past due: every payment attempt for {number} failed. Pay it to avoid a suspension."
PAST_DUE = "Your account is past due. Please pay your open invoices to avoid a suspension."


def account_status_notice(*, account: Account, now: dt.datetime | None = None) -> dict | None:
    """``{"level", "text", "invoice"}`` for a past-due or suspended account, else None (no query then, not
    even for the clock)."""
    if account.status not in (Account.Status.PAST_DUE, Account.Status.SUSPENDED):
        return None
    now = now or clock.now()
    overdue = overdue_invoices([account.pk], now).get(account.pk, [])
    if account.status == Account.Status.SUSPENDED:
        invoice = suspension_due(account, overdue, now) or (overdue[0] if overdue else None)
        if invoice is None:
            return {"level": "error", "text": SUSPENDED, "invoice": ""}
        return {"level": "error", "text": SUSPENDED_BECAUSE.format(number=invoice.number), "invoice": invoice.number}
    if not overdue:
        exhausted = (
            Collection.objects.filter(account=account, state=Collection.State.EXHAUSTED, invoice__amount_due__gt=0)
            .select_related("invoice")
            .first()
        )
        if exhausted is None:
            return {"level": "warning", "text": PAST_DUE, "invoice": ""}
        number = exhausted.invoice.number
        return {"level": "warning", "text": PAST_DUE_FAILED.format(number=number), "invoice": number}
    invoice = overdue[0]
    return {
        "level": "warning",
        "text": PAST_DUE_BECAUSE.format(number=invoice.number, due=short_day(invoice.due_at)),
        "invoice": invoice.number,
    }
