"""Customer-facing reads of billing: issued invoices and credit notes, their lines, the events a line
billed, partner totals, and the invoices awaiting payment. Pricing is ``billing.rating``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal

from django.db.models import QuerySet, Sum

from accounts.models import Account
from billing.models import CreditNote, Invoice, InvoiceLine, Payment, PaymentAllocation, Refund
from common.money import round_money
from tenants.models import MasterPartner
from usage.models import UsageEvent

ZERO = Decimal(0)


def invoice_line_events(line: InvoiceLine) -> QuerySet[UsageEvent]:
    """The events an invoice line billed: the month's events of its metric inside the span it covers, or
    for a late-usage line, the late events accepted into this month. Gauge readings are billed by the
    time they cover, so a storage line lists the readings taken in its span."""
    invoice = line.invoice
    if line.metric_id is None:
        return UsageEvent.objects.none()
    events = UsageEvent.objects.filter(
        account_id=invoice.account_id, metric_id=line.metric_id, billing_month=invoice.period_start.date()
    )
    if line.kind == InvoiceLine.Kind.LATE_USAGE:
        return events.filter(is_late=True)
    return events.filter(is_late=False, timestamp__gte=line.period_start, timestamp__lt=line.period_end)


# What a customer sees of its invoices: issued ones. A draft is still under review by billing staff.
CUSTOMER_VISIBLE_STATUSES = (
    Invoice.Status.FINALIZED,
    Invoice.Status.PAID,
    Invoice.Status.VOID,
    Invoice.Status.UNCOLLECTIBLE,
)


def customer_invoices(*, account: Account) -> QuerySet[Invoice]:
    """``account``'s issued invoices, newest month first (drafts are not the customer's to see yet)."""
    return (
        Invoice.objects.filter(account=account, status__in=CUSTOMER_VISIBLE_STATUSES, number__isnull=False)
        .select_related("account")
        .order_by("-period_start", "-finalized_at")
    )


def customer_credit_notes(*, account: Account) -> QuerySet[CreditNote]:
    """``account``'s credit notes, newest first, with the invoice each corrects."""
    return (
        CreditNote.objects.filter(account=account, invoice__account=account)
        .select_related("invoice")
        .order_by("-issued_at", "-number")
    )


def invoice_lines(invoice: Invoice) -> list[InvoiceLine]:
    """The invoice's lines in order, with their metrics: read once per page and handed to the selectors below."""
    return list(invoice.lines.select_related("metric"))


def invoice_partner_totals(invoice: Invoice, lines: list[InvoiceLine] | None = None) -> list[dict]:
    """Per master partner: quantity and amount over the invoice's usage lines (from their breakdown)."""
    totals: dict[str, dict] = {}
    for line in invoice_lines(invoice) if lines is None else lines:
        for share in (line.breakdown or {}).get("partners", []):
            row = totals.setdefault(
                share["partner"], {"partner_id": share["partner"], "quantity": ZERO, "amount": ZERO}
            )
            row["quantity"] += Decimal(share["quantity"])
            row["amount"] += Decimal(share["amount"])
    partners = {
        p.public_id: p for p in MasterPartner.objects.filter(account_id=invoice.account_id, public_id__in=totals)
    }
    for key, row in totals.items():
        row["partner"] = partners.get(key)
    return [totals[k] for k in sorted(totals)]


def invoices_awaiting_payment(*, due_before: dt.datetime) -> QuerySet[Invoice]:
    """Finalized invoices with an amount due whose due date is before ``due_before`` (overdue ones too),
    with their accounts: the candidates for reminders and overdue notices."""
    return (
        Invoice.objects.filter(status=Invoice.Status.FINALIZED, amount_due__gt=0, due_at__lt=due_before)
        .select_related("account")
        .order_by("due_at", "pk")
    )


# --- The payments ledger: what is unapplied, credit balances, open invoices ------------------------------------


def payment_unapplied(payment: Payment) -> Decimal:
    """What of a succeeded payment is applied to no invoice and not refunded: part of the credit balance."""
    if payment.status != Payment.Status.SUCCEEDED:
        return ZERO
    allocated = payment.allocations.aggregate(total=Sum("amount", default=ZERO))["total"]
    refunded = payment.refunds.filter(status=Refund.Status.SUCCEEDED).aggregate(total=Sum("amount", default=ZERO))
    # Rounded: exact on PostgreSQL; SQLite (the demo) sums decimals as floats.
    return round_money(payment.amount - allocated - refunded["total"], payment.currency)


def credit_balances(account_ids: Iterable[int]) -> dict[int, Decimal]:
    """Credit balance per account (accounts with none are left out): succeeded payments less what they
    paid and what was refunded of them. Three grouped queries, whatever the number of accounts."""
    ids = list(account_ids)
    received = dict(
        Payment.objects.filter(account_id__in=ids, status=Payment.Status.SUCCEEDED)
        .values("account_id")
        .annotate(total=Sum("amount"))
        .values_list("account_id", "total")
    )
    if not received:
        return {}
    applied = dict(
        PaymentAllocation.objects.filter(account_id__in=received, payment__status=Payment.Status.SUCCEEDED)
        .values("account_id")
        .annotate(total=Sum("amount"))
        .values_list("account_id", "total")
    )
    refunded = dict(
        Refund.objects.filter(
            account_id__in=received, status=Refund.Status.SUCCEEDED, payment__status=Payment.Status.SUCCEEDED
        )
        .values("account_id")
        .annotate(total=Sum("amount"))
        .values_list("account_id", "total")
    )
    currencies = dict(Account.objects.filter(pk__in=received).values_list("pk", "currency"))
    # Rounded to the currency's minor unit: the stored amounts are, but SQLite (the demo) sums them as floats.
    balances = {
        pk: round_money(total - applied.get(pk, ZERO) - refunded.get(pk, ZERO), currencies[pk])
        for pk, total in received.items()
    }
    return {pk: balance for pk, balance in balances.items() if balance > 0}


def credit_balance(account: Account) -> Decimal:
    return credit_balances([account.pk]).get(account.pk, ZERO)


def open_invoices(account: Account) -> list[Invoice]:
    """Invoices with money due, oldest first (where a payment goes by default)."""
    return list(
        Invoice.objects.filter(account=account, status=Invoice.Status.FINALIZED, amount_due__gt=0).order_by(
            "due_at", "finalized_at", "pk"
        )
    )
