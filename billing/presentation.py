"""How billing documents read: the context of invoice and credit-note PDFs, and the seller block, tenant names
and dates that the portal pages and the e-mails show the same way. Read from the stored rows.

The invoice is printed with its balance as it stands (what the credit balance paid, the payments applied,
the amount credited and due, and a PAID or VOID mark): the PDF is rendered again whenever the balance or the
status changes. The payment part (``invoice_balance``, ``payment_method_text``, ``collection_text``,
``invoice_payment_status``) reads the same on the invoice PDF and the portal's pages.

Every figure printed is a stored amount (a line's ``amount``, a tenant's or partner's share in its
``breakdown``, the invoice's totals) formatted with ``common.money.format_money``; nothing is re-computed
or rounded differently here. A line's tenant shares are split by largest remainders when the invoice is
written, so they add up to the line; a line whose shares do not (never expected) is printed whole under
the account instead, so the grouped figures always add up to the subtotal.

Quantities are shown by their metric's rule (``billing.quantities``, as on the portal's pages): storage
to 2 decimals, counts as whole numbers; a line's tenant and partner quantities add up to it as shown.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings

from billing.models import Collection, CreditNote, Invoice, InvoiceLine, Payment, PaymentAllocation, PaymentProfile
from billing.quantities import format_metric_quantity, format_parts, format_usage
from common.money import format_money
from common.periods import Period
from tenants.models import Tenant

ZERO = Decimal(0)
ACCOUNT_GROUP = "Account"
REVERSE_CHARGE_WORDING = (
    "Reverse charge: VAT to be accounted for by the recipient (Article 196, Council Directive 2006/112/EC)"
)
DRAFT_WATERMARK = "DRAFT — not a valid invoice"
VOID_WATERMARK = "VOID"
PAID_WATERMARK = "PAID"


def day(moment: dt.datetime | dt.date | None) -> str:
    """``1 December 2026`` (UTC date)."""
    if moment is None:
        return ""
    if isinstance(moment, dt.datetime):
        moment = moment.astimezone(dt.UTC).date()
    return f"{moment.day} {moment:%B %Y}"


def period_label(start: dt.datetime, end: dt.datetime) -> str:
    """A half-open period ``[start, end)`` as its first and last day: ``1–30 November 2026``."""
    first = start.astimezone(dt.UTC).date()
    last = Period(start, end).last_day
    if first == last:
        return day(first)
    if (first.year, first.month) == (last.year, last.month):
        return f"{first.day}–{last.day} {last:%B %Y}"
    if first.year == last.year:
        return f"{first.day} {first:%B} – {last.day} {last:%B %Y}"
    return f"{day(first)} – {day(last)}"


def unit_price_text(line: InvoiceLine, currency: str) -> str:
    """The unit price with the places it was priced at (at least the currency's), per price unit."""
    if line.unit_price is None:
        return ""
    text = format_money(line.unit_price, currency, unit_price=True)
    if line.metric is not None and line.metric.price_unit_size != 1:
        text += f" / {line.metric.price_unit_size:,.0f}"
    return text


def rate_text(rate: Decimal) -> str:
    rate = rate.normalize()
    return f"{rate:f}%"


@dataclass
class Row:
    description: str
    quantity: str
    unit_price: str
    amount: Decimal
    amount_text: str
    note: str = ""


@dataclass
class Group:
    key: str
    title: str
    rows: list[Row] = field(default_factory=list)
    total: Decimal = ZERO
    total_text: str = ""


def _line_label(line: InvoiceLine) -> tuple[str, str]:
    """Description, and a note naming the month of late usage when the description does not."""
    note = ""
    if line.kind == InvoiceLine.Kind.LATE_USAGE and line.usage_month:
        month = f"{line.usage_month:%B %Y}"
        if month not in line.description:
            note = f"usage of {month}"
    return line.description, note


def _tenant_shares(line: InvoiceLine) -> list[tuple[str, str, Decimal]] | None:
    """(tenant public id or ``""`` for unattributed, quantity as shown, amount) adding up to the line; else
    None. The tenants' quantities are shown so that they add up to the line's as shown (``format_parts``)."""
    tenants = (line.breakdown or {}).get("tenants") or []
    if not tenants:
        return None
    quantities = format_parts({n: Decimal(row["quantity"]) for n, row in enumerate(tenants)}, line.metric)
    shares: list[tuple[str, str, Decimal]] = [
        (row["tenant"], quantities[n], Decimal(row["amount"])) for n, row in enumerate(tenants)
    ]
    unattributed = Decimal((line.breakdown or {}).get("unattributed") or 0)
    if sum((amount for _, _, amount in shares), ZERO) + unattributed != line.amount:
        return None
    if unattributed:
        shares.append(("", "", unattributed))
    return shares


def tenant_names(invoice: Invoice) -> dict[str, str]:
    """Tenant names as snapshotted at finalization; a draft (or an invoice from before the snapshot kept
    them) reads the account's tenants as they are now."""
    names = (invoice.snapshot or {}).get("tenants")
    if names:
        return names
    return dict(Tenant.objects.filter(account_id=invoice.account_id).values_list("public_id", "name"))


def tenant_groups(invoice: Invoice, lines: list[InvoiceLine], tenant_names: dict[str, str]) -> list[Group]:
    """The lines grouped by tenant (account-level charges first, under "Account")."""
    currency = invoice.currency
    account = Group(key="", title=ACCOUNT_GROUP)
    groups: dict[str, Group] = {}
    for line in lines:
        description, note = _line_label(line)
        price = unit_price_text(line, currency)
        shares = _tenant_shares(line)
        if shares is None:
            account.rows.append(
                Row(
                    description,
                    format_metric_quantity(line.quantity, line.metric),
                    price,
                    line.amount,
                    format_money(line.amount, currency),
                    note,
                )
            )
            continue
        for tenant, quantity, amount in shares:
            if not tenant:
                account.rows.append(
                    Row(f"{description} (no tenant)", "", "", amount, format_money(amount, currency), note)
                )
                continue
            if tenant not in groups:
                name = tenant_names.get(tenant, "")
                groups[tenant] = Group(key=tenant, title=f"{name} ({tenant})" if name else tenant)
            # A share has no unit price of its own: included quantities and tiers apply to the account.
            groups[tenant].rows.append(Row(description, quantity, "", amount, format_money(amount, currency), note))
    result = ([account] if account.rows else []) + [groups[key] for key in sorted(groups)]
    for group in result:
        group.total = sum((row.amount for row in group.rows), ZERO)
        group.total_text = format_money(group.total, currency)
    return result


def partner_rows(invoice: Invoice, lines: list[InvoiceLine], partner_names: dict[str, str]) -> list[dict[str, Any]]:
    """The master-partner breakdown: one row per line and partner, as stored."""
    rows = []
    for line in lines:
        shares = (line.breakdown or {}).get("partners") or []
        quantities = format_parts({n: Decimal(share["quantity"]) for n, share in enumerate(shares)}, line.metric)
        for n, share in enumerate(shares):
            partner = share["partner"]
            name = partner_names.get(partner, "")
            rows.append(
                {
                    "partner": f"{name} ({partner})" if name else partner,
                    "description": line.description,
                    "quantity": quantities[n],
                    "amount": format_money(Decimal(share["amount"]), invoice.currency),
                }
            )
    return rows


def _current_seller() -> dict[str, Any]:
    seller = dict(getattr(settings, "BILLING_SELLER", {}))
    seller.setdefault("address", [])
    seller.setdefault("payment_instructions", [])
    return seller


def invoice_seller(invoice: Invoice) -> dict[str, Any]:
    """The seller as snapshotted at finalization (older invoices and drafts: as configured now)."""
    return (invoice.snapshot or {}).get("seller") or _current_seller()


def _buyer(invoice: Invoice) -> dict[str, Any]:
    """The customer as snapshotted at finalization (a draft reads the account as it is now)."""
    snap = (invoice.snapshot or {}).get("account")
    if snap:
        return {
            "name": snap.get("legal_name") or snap.get("name", ""),
            "trading_name": snap.get("name", "") if snap.get("legal_name") else "",
            "id": snap.get("id", ""),
            "tax_id": snap.get("tax_id", ""),
            "tax_country": snap.get("tax_country", ""),
            "emails": snap.get("billing_emails", []),
        }
    account = invoice.account
    return {
        "name": account.legal_name or account.name,
        "trading_name": account.name if account.legal_name else "",
        "id": account.public_id,
        "tax_id": account.tax_id,
        "tax_country": account.tax_country,
        "emails": list(account.billing_emails or []),
    }


def _pdf_meta(*, title: str, author: str, created: dt.datetime) -> dict[str, str]:
    """Metadata dates come from the document itself, so the same document gives the same bytes."""
    stamp = created.astimezone(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return {"title": title, "author": author, "created": stamp, "modified": stamp}


def _watermark(invoice: Invoice) -> str:
    return {
        Invoice.Status.DRAFT: DRAFT_WATERMARK,
        Invoice.Status.VOID: VOID_WATERMARK,
        Invoice.Status.PAID: PAID_WATERMARK,
    }.get(invoice.status, "")


# Payments: how an invoice's balance, a payment and the collection of an open invoice read.

BALANCE_APPLIED_LABEL = "Applied from credit balance"
_METHOD_RE = re.compile(r"^(?P<kind>[a-z_]+?)_ending_(?P<last4>\w+)$")


def short_day(moment: dt.datetime | dt.date | None) -> str:
    """``3 Dec`` (UTC date), as the collection of an open invoice is told."""
    if moment is None:
        return ""
    if isinstance(moment, dt.datetime):
        moment = moment.astimezone(dt.UTC).date()
    return f"{moment.day} {moment:%b}"


def current_seller() -> dict[str, Any]:
    """The seller as configured now (a payment receipt that paid no invoice has no snapshot to read)."""
    return _current_seller()


def _method_kind_label(kind: str) -> str:
    if kind in PaymentProfile.MethodType.values:
        return str(PaymentProfile.MethodType(kind).label)
    return kind.replace("_", " ").capitalize()


def payment_method_text(payment: Payment) -> str:
    """How a payment was made, as customers read it: ``Card ending 4242``, ``SEPA Direct Debit ending 3000``,
    ``Bank transfer`` (the provider when the payment names no method)."""
    method = payment.payment_method
    match = _METHOD_RE.match(method) if method else None
    if match:
        return f"{_method_kind_label(match['kind'])} ending {match['last4']}"
    if method:
        return _method_kind_label(method)
    return payment.get_provider_display()


def profile_method_text(profile: PaymentProfile | None) -> str:
    """The payment method on file: ``Visa ending 4242, expires 08/2028``; "" when there is none."""
    if profile is None or not profile.has_payment_method:
        return ""
    if profile.payment_method_type == PaymentProfile.MethodType.CARD or not profile.payment_method_type:
        name = profile.payment_method_brand.replace("_", " ").title() if profile.payment_method_brand else "Card"
    else:
        name = profile.get_payment_method_type_display()
    text = f"{name} ending {profile.payment_method_last4}" if profile.payment_method_last4 else name
    if profile.payment_method_exp_month and profile.payment_method_exp_year:
        text += f", expires {profile.payment_method_exp_month:02d}/{profile.payment_method_exp_year}"
    return text


@dataclass
class AppliedPayment:
    """A payment's share of an invoice, net of what was taken back off it again."""

    payment: Payment
    date: str
    method: str
    amount: Decimal
    amount_text: str


@dataclass
class InvoiceBalance:
    """What paid an invoice: the account's credit balance (applied at finalization, like Stripe's customer
    balance) apart from the payments made for it. ``balance_applied`` + ``paid`` = ``invoice.amount_paid``."""

    balance_applied: Decimal
    balance_applied_text: str
    balance_applied_date: str
    paid: Decimal
    paid_text: str
    payments: list[AppliedPayment]


def invoice_balance(invoice: Invoice) -> InvoiceBalance:
    """Split ``invoice.amount_paid`` into the credit balance applied and the payments, from its allocations.

    Per payment, money taken back off the invoice (a credit note's release, a refund, a reversal) comes off
    the payment's own share first and off the balance applied last: releases take the newest money first,
    and the balance is applied at finalization, before any payment is made for the invoice."""
    currency = invoice.currency
    per_payment: dict[int, dict[str, Any]] = {}
    balance_dates: list[dt.datetime] = []
    allocations = (
        PaymentAllocation.objects.filter(invoice=invoice).select_related("payment").order_by("created_at", "pk")
    )
    for allocation in allocations:
        entry = per_payment.setdefault(
            allocation.payment_id, {"payment": allocation.payment, "net": ZERO, "balance": ZERO}
        )
        entry["net"] += allocation.amount
        if allocation.kind == PaymentAllocation.Kind.BALANCE:
            entry["balance"] += allocation.amount
            balance_dates.append(allocation.created_at)
    balance_applied = ZERO
    payments = []
    for entry in per_payment.values():
        own = max(entry["net"] - entry["balance"], ZERO)
        balance_applied += max(entry["net"] - own, ZERO)
        if own > 0:
            payment = entry["payment"]
            payments.append(
                AppliedPayment(
                    payment=payment,
                    date=day(payment.received_at),
                    method=payment_method_text(payment),
                    amount=own,
                    amount_text=format_money(own, currency),
                )
            )
    payments.sort(key=lambda row: (row.payment.received_at, row.payment.pk))
    paid = invoice.amount_paid - balance_applied
    return InvoiceBalance(
        balance_applied=balance_applied,
        balance_applied_text=format_money(balance_applied, currency) if balance_applied else "",
        balance_applied_date=day(min(balance_dates)) if balance_applied and balance_dates else "",
        paid=paid,
        paid_text=format_money(paid, currency) if paid else "",
        payments=payments,
    )


def invoice_payment_status(invoice: Invoice, now: dt.datetime) -> tuple[str, str]:
    """The invoice's status as the invoices list shows it, and its badge class: Paid, Partly paid, Open,
    Overdue (unpaid after its due date, whether partly paid or not), Void, Written off."""
    if invoice.status == Invoice.Status.PAID:
        return "Paid", "paid"
    if invoice.status == Invoice.Status.VOID:
        return "Void", "void"
    if invoice.status == Invoice.Status.UNCOLLECTIBLE:
        return "Written off", "uncollectible"
    if invoice.status != Invoice.Status.FINALIZED:
        return invoice.get_status_display(), invoice.status
    if invoice.amount_due <= 0:
        return "Paid", "paid"
    if invoice.due_at is not None and invoice.due_at < now:
        return "Overdue", "failed"
    if invoice.amount_paid > 0:
        return "Partly paid", "finalized"
    return "Open", "finalized"


def _charge_words(profile: PaymentProfile | None) -> tuple[str, str, str]:
    """(what an attempt is called, how we collect, what to update) for the payment method on file."""
    if profile is None or not profile.has_payment_method or profile.payment_method_type in ("", "card"):
        ending = f" ending {profile.payment_method_last4}" if profile and profile.payment_method_last4 else ""
        return "Card payment", f"charge your card{ending}", "your card"
    label = profile.get_payment_method_type_display()
    return f"{label} payment", f"collect by {label}", "your payment method"


def _in_brackets(message: str) -> str:
    """A provider's sentence as an aside: "Your card was declined." → "your card was declined"."""
    message = message.strip().rstrip(".")
    if len(message) > 1 and message[0].isupper() and message[1].islower():
        message = message[0].lower() + message[1:]
    return message


def collection_text(
    invoice: Invoice, collection: Collection | None, *, profile: PaymentProfile | None, now: dt.datetime
) -> str:
    """Where collecting an open invoice stands, in plain words for the customer:
    "Card payment failed on 3 Dec (card declined). We will try again on 6 Dec."."""
    attempt, collect, update = _charge_words(profile)
    due = short_day(invoice.due_at)
    overdue = invoice.due_at is not None and invoice.due_at < now
    when_due = (f"overdue since {due}" if overdue else f"due {due}") if due else ""
    state = collection.state if collection is not None else None
    if state == Collection.State.SCHEDULED:
        return f"We will {collect} on {short_day(collection.next_attempt_at)}."
    if state == Collection.State.RETRYING:
        failed_on = short_day(collection.last_attempt_at or collection.first_failed_at)
        reason = f" ({_in_brackets(collection.last_failure)})" if collection.last_failure else ""
        return f"{attempt} failed on {failed_on}{reason}. We will try again on {short_day(collection.next_attempt_at)}."
    if state == Collection.State.PAUSED:
        return "Paused by our billing team."
    if state == Collection.State.EXHAUSTED:
        return f"All retries failed: please pay now or update {update}."
    if state == Collection.State.SUCCEEDED:
        return "Paid."
    if state == Collection.State.WRITTEN_OFF:
        return "Written off by our billing team."
    if state == Collection.State.MANUAL:
        return f"Awaiting your bank transfer, {when_due}." if when_due else "Awaiting your bank transfer."
    return f"Awaiting your payment, {when_due}." if when_due else "Awaiting your payment."


def invoice_context(invoice: Invoice) -> dict[str, Any]:
    lines = list(invoice.lines.select_related("metric").order_by("position"))
    snapshot = invoice.snapshot or {}
    currency = invoice.currency
    is_draft = invoice.status == Invoice.Status.DRAFT

    def money(value: Decimal) -> str:
        return format_money(value, currency)

    summary = []
    for line in lines:
        description, note = _line_label(line)
        summary.append(
            {
                "description": description,
                "note": note,
                **format_usage(
                    quantity=line.quantity, included=line.included, billable=line.billable, metric=line.metric
                ),
                "unit_price": unit_price_text(line, currency),
                "amount": money(line.amount),
            }
        )
    groups = tenant_groups(invoice, lines, tenant_names(invoice))
    title = f"Invoice {invoice.number}" if invoice.number else "Draft invoice"
    seller = snapshot.get("seller") or _current_seller()
    balance = invoice_balance(invoice) if not is_draft else None
    return {
        "invoice": invoice,
        "title": title,
        "is_draft": is_draft,
        "watermark": _watermark(invoice),
        "seller": seller,
        "buyer": _buyer(invoice),
        "issue_date": day(invoice.finalized_at),
        "due_date": day(invoice.due_at),
        "period": period_label(invoice.period_start, invoice.period_end),
        "summary": summary,
        "groups": groups,
        "partners": partner_rows(invoice, lines, snapshot.get("partners", {})),
        "subtotal": money(invoice.subtotal),
        "discount": money(-invoice.discount_total) if invoice.discount_total else "",
        "tax_rate": rate_text(invoice.tax_rate),
        "tax": money(invoice.tax),
        "reverse_charge": REVERSE_CHARGE_WORDING if invoice.tax_reverse_charge else "",
        "total": money(invoice.total),
        # Under the total, like Stripe's customer balance: the credit balance applied, then the payments.
        "balance_applied": balance.balance_applied_text if balance else "",
        "balance_applied_label": BALANCE_APPLIED_LABEL,
        "amount_paid": balance.paid_text if balance else "",
        "payments": balance.payments if balance else [],
        "amount_credited": money(invoice.amount_credited) if invoice.amount_credited else "",
        "amount_due": money(invoice.amount_due),
        # Only an invoice still being collected asks for payment (not a paid, void, written-off or zero one).
        "ask_payment": invoice.status == Invoice.Status.FINALIZED and invoice.amount_due > 0,
        "status": invoice.get_status_display(),
        "pdf": _pdf_meta(
            title=title, author=seller.get("name", ""), created=invoice.finalized_at or invoice.created_at
        ),
    }


def credit_note_context(note: CreditNote) -> dict[str, Any]:
    invoice = note.invoice
    currency = note.currency
    snapshot = invoice.snapshot or {}
    title = f"Credit note {note.number}"
    seller = snapshot.get("seller") or _current_seller()
    return {
        "credit_note": note,
        "invoice": invoice,
        "title": title,
        # A voided note is rendered again with the mark, and the day and reason it was voided.
        "watermark": VOID_WATERMARK if note.status == CreditNote.Status.VOID else "",
        "void_date": day(note.voided_at) if note.status == CreditNote.Status.VOID else "",
        "seller": seller,
        "buyer": _buyer(invoice),
        "issue_date": day(note.issued_at),
        "invoice_date": day(invoice.finalized_at),
        "period": period_label(invoice.period_start, invoice.period_end),
        "lines": [
            {"description": line.description, "amount": format_money(line.amount, currency)}
            for line in note.lines.order_by("pk")
        ],
        "subtotal": format_money(note.subtotal, currency),
        "tax_rate": rate_text(invoice.tax_rate),
        "tax": format_money(note.tax, currency),
        "reverse_charge": REVERSE_CHARGE_WORDING if invoice.tax_reverse_charge else "",
        "total": format_money(note.total, currency),
        "pdf": _pdf_meta(title=title, author=seller.get("name", ""), created=note.issued_at),
    }
