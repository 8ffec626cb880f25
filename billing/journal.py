"""The ERP journal of a month: issued invoices and credit notes as balanced double-entry journal entries.

Which documents: the invoices finalized in the month (any status but draft and void) and the credit notes
issued in it (not voided), each dated by the day it was issued, so an ERP that imports one month after another
books every document once. Every line carries the reference ``<BILLING_JOURNAL_REFERENCE_PREFIX>-YYYY-MM``.

An invoice's entry (``billing.models.GlAccount`` names the accounts):
- debit Receivables with the invoice's total (one line);
- credit revenue per group of invoice lines of one kind, plan and metric (base fee; each metric's usage and
  late usage; other charges), split per department (``billing.allocation``);
- debit Discounts (and Prepaid credit drawn) with those lines' amounts, per department;
- credit Tax payable with the invoice's tax, per department.
A credit note's entry reverses: debit the revenue account of each credited invoice line (Credit notes for a
line tied to none) and Tax payable, per department of the invoice, and credit Receivables with its total.

Invariants: each entry's debits equal its credits to the cent; the Receivables debits of a month equal the
totals of the invoices issued in it, and its Receivables credits the totals of its credit notes and voids.
Amounts are ``Decimal`` rounded by ``common.money`` only (the department splits are ``common.money.allocate``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db.models import QuerySet

from accounts.models import Account
from billing.allocation import UNALLOCATED, InvoiceAllocation, department_order, invoice_allocation, split
from billing.models import CreditNote, GlAccount, Invoice, InvoiceLine
from common.formats import money_string
from common.money import round_money
from common.periods import Period

ZERO = Decimal(0)
# Issued invoices: a voided one was issued too when it has a finalization time (its void is a reversal entry).
JOURNAL_STATUSES = (Invoice.Status.FINALIZED, Invoice.Status.PAID, Invoice.Status.UNCOLLECTIBLE, Invoice.Status.VOID)
DOCUMENTS = ("invoice", "credit_note", "invoice_void")

CSV_HEADER = [
    "date",
    "reference",
    "entry",
    "document",
    "account",
    "account_code",
    "account_name",
    "description",
    "department",
    "debit",
    "credit",
    "currency",
]

# Invoice line kinds and the account kind their revenue (or contra-revenue) posts to.
LINE_ACCOUNT_KIND = {
    InvoiceLine.Kind.BASE_FEE: GlAccount.Kind.BASE_FEE,
    InvoiceLine.Kind.MINIMUM_COMMITMENT: GlAccount.Kind.OTHER_CHARGES,
    InvoiceLine.Kind.EARLY_TERMINATION: GlAccount.Kind.OTHER_CHARGES,
    InvoiceLine.Kind.DISCOUNT: GlAccount.Kind.DISCOUNTS,
    InvoiceLine.Kind.PREPAID_CREDIT: GlAccount.Kind.PREPAID_CREDIT,
}
# Used when Finance admin deleted an account's row: the journal still balances and names what is missing.
FALLBACK_NAMES = {kind: label for kind, label in GlAccount.Kind.choices}


@dataclass(frozen=True)
class JournalLine:
    date: dt.date
    reference: str
    entry: str  # the invoice's or credit note's number
    document: str  # "invoice", "credit_note" or "invoice_void"
    account_id: str  # the customer account's public id
    account_code: str
    account_name: str
    description: str
    department: str
    debit: Decimal
    credit: Decimal
    currency: str


@dataclass(frozen=True)
class JournalEntry:
    number: str
    document: str
    date: dt.date
    account_id: str
    currency: str
    lines: list[JournalLine]

    @property
    def debit(self) -> Decimal:
        return sum((line.debit for line in self.lines), ZERO)

    @property
    def credit(self) -> Decimal:
        return sum((line.credit for line in self.lines), ZERO)


@dataclass(frozen=True)
class Journal:
    period: Period
    reference: str
    entries: list[JournalEntry]

    @property
    def lines(self) -> list[JournalLine]:
        return [line for entry in self.entries for line in entry.lines]


def journal_reference(period: Period) -> str:
    prefix = getattr(settings, "BILLING_JOURNAL_REFERENCE_PREFIX", "AS2")
    return f"{prefix}-{period.start:%Y-%m}"


class _Chart:
    """The GL accounts, read once per journal."""

    def __init__(self) -> None:
        rows = list(GlAccount.objects.all())
        self.by_kind = {row.kind: row for row in rows if row.kind != GlAccount.Kind.METRIC}
        self.by_metric = {row.metric_code: row for row in rows if row.kind == GlAccount.Kind.METRIC}

    def of_kind(self, kind: str) -> tuple[str, str]:
        row = self.by_kind.get(kind)
        return (row.code, row.name) if row else ("", str(FALLBACK_NAMES[kind]))

    def of_line(self, line: InvoiceLine) -> tuple[str, str]:
        if line.metric is not None and line.kind in (InvoiceLine.Kind.USAGE, InvoiceLine.Kind.LATE_USAGE):
            row = self.by_metric.get(line.metric.code)
            return (row.code, row.name) if row else self.of_kind(GlAccount.Kind.USAGE)
        return self.of_kind(LINE_ACCOUNT_KIND.get(InvoiceLine.Kind(line.kind), GlAccount.Kind.OTHER_CHARGES))


def _group_description(line: InvoiceLine, invoice: Invoice) -> str:
    metric_names = (invoice.snapshot or {}).get("metrics", {})
    plan = f" · {line.plan_version}" if line.plan_version_id else ""
    if line.metric is not None:
        name = metric_names.get(line.metric.code) or line.metric.name
        what = "late usage" if line.kind == InvoiceLine.Kind.LATE_USAGE else "usage"
        return f"{name} {what}{plan}"
    return f"{line.get_kind_display()}{plan}"


@dataclass
class _EntryBuilder:
    number: str
    document: str
    date: dt.date
    account_id: str
    currency: str
    reference: str
    lines: list[JournalLine] = field(default_factory=list)

    def post(
        self, account: tuple[str, str], description: str, department: str, debit: Decimal, credit: Decimal
    ) -> None:
        """One line; a negative debit is posted as a credit and vice versa, zero lines are left out."""
        net = debit - credit
        if net == 0:
            return
        self.lines.append(
            JournalLine(
                date=self.date,
                reference=self.reference,
                entry=self.number,
                document=self.document,
                account_id=self.account_id,
                account_code=account[0],
                account_name=account[1],
                description=description,
                department=department,
                debit=net if net > 0 else ZERO,
                credit=-net if net < 0 else ZERO,
                currency=self.currency,
            )
        )

    def entry(self) -> JournalEntry:
        return JournalEntry(
            number=self.number,
            document=self.document,
            date=self.date,
            account_id=self.account_id,
            currency=self.currency,
            lines=self.lines,
        )


def _invoice_entry(allocation: InvoiceAllocation, chart: _Chart, reference: str) -> JournalEntry:
    invoice = allocation.invoice
    assert invoice.number is not None and invoice.finalized_at is not None
    builder = _EntryBuilder(
        number=invoice.number,
        document="invoice",
        date=invoice.finalized_at.date(),
        account_id=invoice.account.public_id,
        currency=invoice.currency,
        reference=reference,
    )
    builder.post(
        chart.of_kind(GlAccount.Kind.RECEIVABLES),
        f"Invoice {invoice.number}, {invoice.month_label}",
        "",
        invoice.total,
        ZERO,
    )
    # Lines of one account, kind, plan and metric post together, per department.
    groups: dict[tuple, dict[str, Decimal]] = {}
    meta: dict[tuple, tuple[tuple[str, str], str]] = {}
    for shares in allocation.lines:
        line = shares.line
        account = chart.of_line(line)
        key = (account, line.kind == InvoiceLine.Kind.LATE_USAGE, line.kind, line.plan_version_id, line.metric_id)
        meta.setdefault(key, (account, _group_description(line, invoice)))
        bucket = groups.setdefault(key, {})
        for department, amount in shares.amounts.items():
            bucket[department] = bucket.get(department, ZERO) + amount
    for key, per_department in groups.items():
        account, description = meta[key]
        for department in department_order(per_department):
            builder.post(account, description, department, ZERO, per_department[department])
    tax_account = chart.of_kind(GlAccount.Kind.TAX)
    for department in department_order(allocation.tax):
        builder.post(
            tax_account, f"Tax at {invoice.tax_rate.normalize():f} %", department, ZERO, allocation.tax[department]
        )
    return builder.entry()


def _void_entry(allocation: InvoiceAllocation, chart: _Chart, reference: str) -> JournalEntry:
    """A voided issued invoice: its entry mirrored (debits become credits), dated the day it was voided."""
    invoice = allocation.invoice
    assert invoice.voided_at is not None
    issued = _invoice_entry(allocation, chart, reference)
    builder = _EntryBuilder(
        number=issued.number,
        document="invoice_void",
        date=invoice.voided_at.date(),
        account_id=issued.account_id,
        currency=issued.currency,
        reference=reference,
    )
    for line in issued.lines:
        builder.post(
            (line.account_code, line.account_name),
            f"Void of {line.description}",
            line.department,
            line.credit,
            line.debit,
        )
    return builder.entry()


def _credit_note_entry(
    note: CreditNote, allocation: InvoiceAllocation | None, chart: _Chart, reference: str
) -> JournalEntry:
    invoice = note.invoice
    currency = note.currency
    builder = _EntryBuilder(
        number=note.number,
        document="credit_note",
        date=note.issued_at.date(),
        account_id=note.account.public_id,
        currency=currency,
        reference=reference,
    )
    line_shares = {s.line.pk: s for s in allocation.lines} if allocation else {}
    # Weights of a credit tied to no line, and of the credited tax: the invoice's departments.
    totals = allocation.totals() if allocation else {}
    tax_weights = dict(allocation.tax) if allocation and any(allocation.tax.values()) else totals
    for credit_line in note.lines.all():
        tied = line_shares.get(credit_line.invoice_line_id) if credit_line.invoice_line_id else None
        if tied is not None:
            account = chart.of_line(tied.line)
            description = f"Credit note {note.number}: {_group_description(tied.line, invoice)}"
            weights = {d: abs(a) for d, a in tied.amounts.items()}
        else:
            account = chart.of_kind(GlAccount.Kind.CREDIT_NOTES)
            description = f"Credit note {note.number}: {credit_line.description}"
            weights = totals
        shares = split(credit_line.amount, weights, currency)
        for department in department_order(shares):
            builder.post(account, description, department, shares[department], ZERO)
    # Rounding the lines may leave the note's subtotal a cent apart from their sum: the difference is the note's.
    posted = sum((line.debit for line in builder.lines), ZERO)
    if posted != note.subtotal:
        builder.post(
            chart.of_kind(GlAccount.Kind.CREDIT_NOTES),
            f"Credit note {note.number}",
            UNALLOCATED,
            note.subtotal - posted,
            ZERO,
        )
    tax_shares = split(note.tax, tax_weights, currency)
    for department in department_order(tax_shares):
        builder.post(
            chart.of_kind(GlAccount.Kind.TAX),
            f"Credit note {note.number}: tax",
            department,
            tax_shares[department],
            ZERO,
        )
    builder.post(
        chart.of_kind(GlAccount.Kind.RECEIVABLES),
        f"Credit note {note.number} on {invoice.number}",
        "",
        ZERO,
        round_money(note.total, currency),
    )
    return builder.entry()


def journal_invoices(*, period: Period, accounts: QuerySet[Account] | None = None) -> QuerySet[Invoice]:
    invoices = Invoice.objects.filter(
        status__in=JOURNAL_STATUSES,
        number__isnull=False,
        finalized_at__gte=period.start,
        finalized_at__lt=period.end,
    )
    if accounts is not None:
        invoices = invoices.filter(account__in=accounts)
    return invoices.select_related("account").order_by("finalized_at", "number")


def journal_voided_invoices(*, period: Period, accounts: QuerySet[Account] | None = None) -> QuerySet[Invoice]:
    invoices = Invoice.objects.filter(
        status=Invoice.Status.VOID,
        number__isnull=False,
        finalized_at__isnull=False,
        voided_at__gte=period.start,
        voided_at__lt=period.end,
    )
    if accounts is not None:
        invoices = invoices.filter(account__in=accounts)
    return invoices.select_related("account").order_by("voided_at", "number")


def journal_credit_notes(*, period: Period, accounts: QuerySet[Account] | None = None) -> QuerySet[CreditNote]:
    notes = CreditNote.objects.filter(
        status=CreditNote.Status.ISSUED, issued_at__gte=period.start, issued_at__lt=period.end
    )
    if accounts is not None:
        notes = notes.filter(account__in=accounts)
    return notes.select_related("account", "invoice").prefetch_related("lines").order_by("issued_at", "number")


def month_journal(*, period: Period, accounts: QuerySet[Account] | None = None) -> Journal:
    """The journal of ``period`` for ``accounts`` (every account when ``None``): invoices issued, then invoices
    voided, then credit notes, each in the order they happened."""
    chart = _Chart()
    reference = journal_reference(period)
    allocations: dict[int, InvoiceAllocation] = {}

    def allocation_of(invoice: Invoice) -> InvoiceAllocation:
        if invoice.pk not in allocations:
            allocations[invoice.pk] = invoice_allocation(invoice)
        return allocations[invoice.pk]

    entries = [
        _invoice_entry(allocation_of(i), chart, reference) for i in journal_invoices(period=period, accounts=accounts)
    ]
    entries += [
        _void_entry(allocation_of(i), chart, reference)
        for i in journal_voided_invoices(period=period, accounts=accounts)
    ]
    for note in journal_credit_notes(period=period, accounts=accounts):
        allocation = allocation_of(note.invoice) if note.invoice.number else None
        entries.append(_credit_note_entry(note, allocation, chart, reference))
    return Journal(period=period, reference=reference, entries=entries)


def _amount(value: Decimal, currency: str) -> str:
    return money_string(value, currency) if value else ""


def journal_rows(lines: Iterable[JournalLine]) -> Iterator[list[str]]:
    """CSV rows: the header, then one row per journal line (debit or credit left empty when zero)."""
    yield list(CSV_HEADER)
    for line in lines:
        yield [
            line.date.isoformat(),
            line.reference,
            line.entry,
            line.document,
            line.account_id,
            line.account_code,
            line.account_name,
            line.description,
            line.department,
            _amount(line.debit, line.currency),
            _amount(line.credit, line.currency),
            line.currency,
        ]
