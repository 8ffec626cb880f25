"""Department allocation: an issued invoice's money shared among the customer's departments, to the cent.

Who belongs where: each master partner and each tenant may name a department (``MasterPartner.department``,
``Tenant.department``). Usage sent for a partner with a department is that department's; other usage (no
partner, or a partner without a department) is its tenant's department's; usage of neither is "Unallocated".

The rule (also in docs and on the portal's Allocation page):
- a usage line (usage, late usage) is split by each department's share of the line's quantity: the events the
  line billed (``billing.selectors.invoice_line_events``, the evidence the invoice admin opens) grouped by tenant
  and partner for sums and counts; the tenants' billed figures of the line's evidence
  (``billing.evidence.line_evidence``) for gauges, maxima and unique counts; the tenants or partners on the
  line's stored breakdown for per-tenant-month and per-partner-month lines;
- every other line (base fee, discounts, minimum commitment top-up, prepaid credit, early termination) and the
  invoice's tax are split in proportion to the departments' usage allocation; an invoice without usage
  charges puts them under "Unallocated";
- every split is ``common.money.allocate`` (largest remainder, to the currency's minor unit; ties go to the
  larger weight, then to the department first in name order), so each line's shares add up to the line and the
  departments add up to the invoice's total exactly, and no share is a cent or more from its exact value.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Count, QuerySet, Sum

from accounts.models import Account
from billing.evidence import line_evidence
from billing.models import Invoice, InvoiceLine
from billing.selectors import invoice_line_events
from common.money import allocate, round_money
from common.periods import Period
from tenants.models import MasterPartner, Tenant
from usage.models import Metric

ZERO = Decimal(0)
UNALLOCATED = "Unallocated"
MESSAGES_METRIC = "messages"
USAGE_KINDS = (InvoiceLine.Kind.USAGE, InvoiceLine.Kind.LATE_USAGE)
# Invoices whose money is the customer's: issued and not voided.
ALLOCATED_STATUSES = (Invoice.Status.FINALIZED, Invoice.Status.PAID, Invoice.Status.UNCOLLECTIBLE)

RULE = (
    "Usage lines are split by each department's share of the line's quantity: a master partner's department "
    "first, else the tenant's, else Unallocated. The base fee, discounts, other charges and tax are split in "
    "proportion to the departments' usage charges (all of them to Unallocated when there are none). Each split "
    "is rounded by largest remainder, so the departments add up to the invoice's total to the cent."
)


def department_order(departments: Iterable[str]) -> list[str]:
    """Departments by name (case-insensitive), "Unallocated" last: the order of every table and of ties."""
    return sorted(set(departments), key=lambda d: (d == UNALLOCATED, d.casefold(), d))


def split(amount: Decimal, weights: Mapping[str, Decimal], currency: str) -> dict[str, Decimal]:
    """``amount`` shared by ``weights`` (largest remainder); without a positive weight, all to Unallocated."""
    positive = {d: weights[d] for d in department_order(weights) if weights[d] > 0}
    if not positive:
        return {UNALLOCATED: round_money(amount, currency)}
    return allocate(round_money(amount, currency), positive, currency)


@dataclass(frozen=True)
class LineShares:
    line: InvoiceLine
    quantities: dict[str, Decimal]  # usage lines: the department's quantity (in the line's measure)
    amounts: dict[str, Decimal]  # the department's part of ``line.amount``; adds up to it


@dataclass(frozen=True)
class InvoiceAllocation:
    invoice: Invoice
    lines: list[LineShares]
    tax: dict[str, Decimal]  # adds up to ``invoice.tax``
    departments: list[str] = field(default_factory=list)

    def usage_weights(self) -> dict[str, Decimal]:
        """The departments' usage charges: the weights of every proportional split."""
        weights: dict[str, Decimal] = {}
        for shares in self.lines:
            if shares.line.kind in USAGE_KINDS:
                for department, amount in shares.amounts.items():
                    weights[department] = weights.get(department, ZERO) + amount
        return weights

    def totals(self) -> dict[str, Decimal]:
        """Each department's lines and tax: adds up to ``invoice.total``."""
        totals = {d: ZERO for d in self.departments}
        for shares in self.lines:
            for department, amount in shares.amounts.items():
                totals[department] += amount
        for department, amount in self.tax.items():
            totals[department] += amount
        return totals


def allocate_document(
    *,
    usage: Sequence[tuple[Decimal, Mapping[str, Decimal]]],
    others: Sequence[Decimal],
    tax: Decimal,
    currency: str,
) -> tuple[list[dict[str, Decimal]], list[dict[str, Decimal]], dict[str, Decimal]]:
    """The rule on plain figures: usage lines ``(amount, department quantities)`` split by quantity, then the
    other lines' amounts and ``tax`` in proportion to the departments' usage allocation."""
    usage_shares = [split(amount, quantities, currency) for amount, quantities in usage]
    weights: dict[str, Decimal] = {}
    for shares in usage_shares:
        for department, amount in shares.items():
            weights[department] = weights.get(department, ZERO) + amount
    other_shares = [split(amount, weights, currency) for amount in others]
    return usage_shares, other_shares, split(tax, weights, currency)


# --- The departments of a line's quantity -------------------------------------------------------------------


def _clean(department: str | None) -> str:
    return (department or "").strip()


class _Departments:
    """The account's tenants' and partners' departments, read once per invoice."""

    def __init__(self, account_id: int) -> None:
        tenants = Tenant.objects.filter(account_id=account_id).values_list("pk", "public_id", "department")
        partners = MasterPartner.objects.filter(account_id=account_id).values_list("pk", "public_id", "department")
        self.tenant_by_pk = {pk: _clean(d) for pk, _, d in tenants}
        self.tenant_by_id = {public_id: _clean(d) for _, public_id, d in tenants}
        self.partner_by_pk = {pk: _clean(d) for pk, _, d in partners}
        self.partner_by_id = {public_id: _clean(d) for _, public_id, d in partners}

    def of(self, tenant_pk: int | None, partner_pk: int | None) -> str:
        return (
            (self.partner_by_pk.get(partner_pk, "") if partner_pk else "")
            or (self.tenant_by_pk.get(tenant_pk, "") if tenant_pk else "")
            or UNALLOCATED
        )


def _add(target: dict[str, Decimal], department: str, quantity: Decimal) -> None:
    target[department] = target.get(department, ZERO) + quantity


def _event_quantities(line: InvoiceLine, metric: Metric, departments: _Departments) -> dict[str, Decimal]:
    """Sums and counts: the line's events grouped by tenant and partner, each group to its department."""
    events: QuerySet = invoice_line_events(line).order_by()
    measure = Count("id") if metric.aggregation == Metric.Aggregation.COUNT else Sum("quantity")
    quantities: dict[str, Decimal] = {}
    for tenant_pk, partner_pk, value in (
        events.values("tenant_id", "partner_id").annotate(q=measure).values_list("tenant_id", "partner_id", "q")
    ):
        _add(quantities, departments.of(tenant_pk, partner_pk), Decimal(value or 0))
    return quantities


def _breakdown_quantities(line: InvoiceLine, metric: Metric, departments: _Departments) -> dict[str, Decimal]:
    """Per-tenant-month and per-partner-month lines: the tenants or partners counted on the line."""
    breakdown = line.breakdown or {}
    quantities: dict[str, Decimal] = {}
    if metric.source == Metric.Source.PARTNERS and breakdown.get("partners"):
        for share in breakdown["partners"]:
            _add(
                quantities,
                departments.partner_by_id.get(share["partner"], "") or UNALLOCATED,
                Decimal(share["quantity"]),
            )
        return quantities
    for share in breakdown.get("tenants", []):
        _add(quantities, departments.tenant_by_id.get(share["tenant"], "") or UNALLOCATED, Decimal(share["quantity"]))
    return quantities


def _evidence_quantities(line: InvoiceLine, departments: _Departments) -> dict[str, Decimal]:
    """Gauges, maxima and unique counts: the tenants' billed figures of the line's evidence."""
    quantities: dict[str, Decimal] = {}
    for share in line_evidence(line).by_tenant:
        _add(quantities, departments.tenant_by_id.get(share.key, "") or UNALLOCATED, share.billed)
    return quantities


def line_quantities(line: InvoiceLine, departments: _Departments) -> dict[str, Decimal]:
    metric = line.metric
    if metric is None:
        return {}
    if metric.source != Metric.Source.EVENTS:
        return _breakdown_quantities(line, metric, departments)
    if metric.aggregation in (Metric.Aggregation.SUM, Metric.Aggregation.COUNT):
        return _event_quantities(line, metric, departments)
    return _evidence_quantities(line, departments)


# --- Invoices and months -----------------------------------------------------------------------------------


def invoice_allocation(invoice: Invoice) -> InvoiceAllocation:
    """``invoice``'s lines and tax shared among departments by the rule above."""
    departments = _Departments(invoice.account_id)
    lines = list(invoice.lines.select_related("metric", "invoice").order_by("position"))
    usage_lines = [line for line in lines if line.kind in USAGE_KINDS and line.metric_id is not None]
    other_lines = [line for line in lines if line not in usage_lines]
    quantities = [line_quantities(line, departments) for line in usage_lines]
    usage_shares, other_shares, tax = allocate_document(
        usage=[(line.amount, q) for line, q in zip(usage_lines, quantities, strict=True)],
        others=[line.amount for line in other_lines],
        tax=invoice.tax,
        currency=invoice.currency,
    )
    by_line = {
        line.pk: LineShares(line=line, quantities=q, amounts=a)
        for line, q, a in zip(usage_lines, quantities, usage_shares, strict=True)
    }
    by_line.update(
        {
            line.pk: LineShares(line=line, quantities={}, amounts=a)
            for line, a in zip(other_lines, other_shares, strict=True)
        }
    )
    ordered = [by_line[line.pk] for line in lines]
    names = department_order([d for shares in ordered for d in (*shares.amounts, *shares.quantities)] + list(tax))
    return InvoiceAllocation(invoice=invoice, lines=ordered, tax=tax, departments=names)


@dataclass(frozen=True)
class DepartmentRow:
    department: str
    message_count: Decimal
    usage: Decimal  # usage and late usage lines
    fees: Decimal  # base fee, minimum commitment, early termination
    discounts: Decimal  # discounts and prepaid credit drawn (negative or zero)
    tax: Decimal
    total: Decimal

    @property
    def subtotal(self) -> Decimal:
        return self.usage + self.fees + self.discounts


@dataclass(frozen=True)
class MonthAllocation:
    account: Account
    period: Period
    invoice: Invoice | None
    currency: str
    rows: list[DepartmentRow]
    total: Decimal


def month_invoice(*, account: Account, period: Period) -> Invoice | None:
    """The account's issued invoice of the month (not a draft, not voided)."""
    return (
        Invoice.objects.filter(account=account, period_start=period.start, status__in=ALLOCATED_STATUSES)
        .select_related("account")
        .first()
    )


def department_rows(allocation: InvoiceAllocation) -> list[DepartmentRow]:
    currency = allocation.invoice.currency
    figures = {d: {"messages": ZERO, "usage": ZERO, "fees": ZERO, "discounts": ZERO} for d in allocation.departments}
    for shares in allocation.lines:
        line = shares.line
        column = (
            "usage"
            if line.kind in USAGE_KINDS
            else "discounts"
            if line.kind in (InvoiceLine.Kind.DISCOUNT, InvoiceLine.Kind.PREPAID_CREDIT)
            else "fees"
        )
        for department, amount in shares.amounts.items():
            figures[department][column] += amount
        if line.metric is not None and line.metric.code == MESSAGES_METRIC:
            for department, quantity in shares.quantities.items():
                figures[department]["messages"] += quantity
    totals = allocation.totals()
    return [
        DepartmentRow(
            department=d,
            message_count=figures[d]["messages"],
            usage=round_money(figures[d]["usage"], currency),
            fees=round_money(figures[d]["fees"], currency),
            discounts=round_money(figures[d]["discounts"], currency),
            tax=round_money(allocation.tax.get(d, ZERO), currency),
            total=round_money(totals[d], currency),
        )
        for d in allocation.departments
    ]


def month_allocation(*, account: Account, period: Period) -> MonthAllocation:
    """Each department's messages and cost in ``account``'s issued invoice for ``period`` (no rows when the
    month has no issued invoice)."""
    invoice = month_invoice(account=account, period=period)
    if invoice is None:
        return MonthAllocation(
            account=account, period=period, invoice=None, currency=account.currency, rows=[], total=ZERO
        )
    rows = department_rows(invoice_allocation(invoice))
    return MonthAllocation(
        account=account, period=period, invoice=invoice, currency=invoice.currency, rows=rows, total=invoice.total
    )


def latest_allocated_month(*, account: Account) -> dt.date | None:
    """The first day of the latest month with an issued invoice (the Allocation page opens on it)."""
    invoice = Invoice.objects.filter(account=account, status__in=ALLOCATED_STATUSES).order_by("-period_start").first()
    return invoice.period_start.date() if invoice else None
