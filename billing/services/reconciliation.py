"""Reconciliation of one month ``[start, end)`` (UTC): what was invoiced, what was received (by provider), refunded
and credited, how the credit balance moved, and Stripe's own records as dj-stripe synced them, per currency.
Every mismatch found is kept as a ``ReconciliationIssue`` until staff resolve it.

Invariants:
- an issue's ``key`` names what was found (the charge, the payment, the invoice, the statement line), so
  reconciling again never records it twice, and a resolved issue found again stays resolved;
- an open issue of the month that is no longer found (the statement line was matched, the missing payment
  recorded) is closed by the run, with no user and the reason;
- reconciling reads the ledger and writes issues only: it never moves money.

Mismatches:
- ``charge_without_payment``: a succeeded Stripe charge no payment stands for (``Payment.stripe_charge_id`` is
  the charge, or ``Payment.external_id`` its PaymentIntent);
- ``payment_without_invoice``: a succeeded payment, older than ``PAYMENT_GRACE``, with money unapplied while its
  account has invoices open (with nothing open, unapplied money is a legitimate credit balance);
- ``amount_mismatch``: a Stripe charge of another amount than its payment, or an invoice whose ``amount_paid``
  is not the sum of its allocations;
- ``paid_without_money``: a paid invoice (total − credits > 0) whose allocations do not cover it (reported
  instead of ``amount_mismatch`` for that invoice);
- ``statement_line_unmatched``: a bank statement line waiting for staff.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce
from djstripe.models import BalanceTransaction, Charge

from billing.models import (
    BankStatementLine,
    CreditNote,
    Invoice,
    Payment,
    PaymentAllocation,
    ReconciliationIssue,
    Refund,
)
from billing.selectors import payment_unapplied
from billing.services.payments import require_permission
from common import clock
from common.errors import BillingError
from common.money import UnknownCurrency, format_money, minor_unit
from common.periods import Period, month_containing, previous_month

ZERO = Decimal(0)
# A payment recorded a moment ago may not be applied yet (a webhook, staff matching it by hand): only older
# unapplied money, while the account has invoices open, is a mismatch.
PAYMENT_GRACE = dt.timedelta(days=3)
# Money that was received: a refunded payment was received before it was given back; a reversed one never was.
RECEIVED = (Payment.Status.SUCCEEDED, Payment.Status.REFUNDED)
STRIPE_SUCCEEDED = "succeeded"

PERM_RESOLVE = "billing.change_reconciliationissue"
ERR_RESOLVE_DENIED = "Only Finance admins may reconcile or resolve reconciliation issues."
ERR_RESOLUTION = "Say how the issue was resolved."
ERR_ALREADY_RESOLVED = "The issue was resolved already ({when} by {who})."
NOT_FOUND_AGAIN = "Not found again when {month} was reconciled on {at}."

DESC_CHARGE_WITHOUT_PAYMENT = "Stripe charge {charge} ({amount}) has no payment in the ledger."
DESC_CHARGE_AMOUNT = "Stripe charge {charge} is {charged}; its payment {payment} is {recorded}."
DESC_UNAPPLIED = "{payment} ({amount}) has {unapplied} unapplied while {account} has invoices open."
DESC_INVOICE_PAID = "{invoice} records {paid} paid; its allocations add up to {allocated}."
DESC_PAID_WITHOUT_MONEY = "{invoice} is paid, but money applied to it covers {allocated} of {owed}."
DESC_LINE_UNMATCHED = "Bank statement line of {date}, {amount} “{reference}”, is not matched."


@dataclass(frozen=True)
class InvoiceFigure:
    """Invoices issued (finalized) in the month in one currency, void ones aside, with their balances now."""

    currency: str
    count: int
    total: Decimal
    paid: Decimal
    credited: Decimal
    due: Decimal
    voided: int


@dataclass(frozen=True)
class MoneyFigure:
    """A count and a sum of money in one currency (``provider`` for payments, else empty)."""

    currency: str
    count: int
    amount: Decimal
    provider: str = ""

    @property
    def provider_label(self) -> str:
        return Payment.Provider(self.provider).label if self.provider else ""


@dataclass(frozen=True)
class BalanceMovement:
    """How the credit balance (money received and applied to no invoice) moved in one currency:
    ``closing = opening + received − applied − refunded``."""

    currency: str
    opening: Decimal
    received: Decimal
    applied: Decimal
    refunded: Decimal

    @property
    def closing(self) -> Decimal:
        return self.opening + self.received - self.applied - self.refunded


@dataclass(frozen=True)
class StripeBalanceFigure:
    """Stripe balance transactions of one currency and type created in the month (major units)."""

    currency: str
    type: str
    count: int
    amount: Decimal
    fee: Decimal
    net: Decimal


@dataclass(frozen=True)
class StatementFigure:
    currency: str
    status: str
    count: int
    amount: Decimal

    @property
    def status_label(self) -> str:
        return BankStatementLine.Status(self.status).label


@dataclass(frozen=True)
class ReconciliationFigures:
    period: Period
    invoices: list[InvoiceFigure]
    payments: list[MoneyFigure]
    refunds: list[MoneyFigure]
    credit_notes: list[MoneyFigure]
    balance: list[BalanceMovement]
    stripe_charges: list[MoneyFigure]
    stripe_payments: list[MoneyFigure]
    stripe_balance: list[StripeBalanceFigure]
    statement_lines: list[StatementFigure]

    @property
    def month(self) -> dt.date:
        return self.period.start.date()

    @property
    def label(self) -> str:
        return self.period.label


@dataclass(frozen=True)
class ReconciliationSummary:
    """The outcome of reconciling a month: its figures and what changed among its issues."""

    figures: ReconciliationFigures
    found: int = 0
    new: int = 0
    closed: int = 0
    open: int = 0
    kinds: dict[str, int] = field(default_factory=dict)

    @property
    def period(self) -> Period:
        return self.figures.period


@dataclass(frozen=True)
class Finding:
    key: str
    kind: str
    description: str
    account_id: int | None = None
    invoice_id: int | None = None
    payment_id: int | None = None
    external_id: str = ""
    amount: Decimal | None = None
    currency: str = ""


def _minor(currency: str) -> int:
    try:
        return minor_unit(currency)
    except UnknownCurrency:
        return 2  # a currency we do not bill in; Stripe's default exponent


def _stripe_units(value: Any, currency: str) -> Decimal:
    """An amount in Stripe's integer minor units (``1999`` = 19.99 USD, ``1200`` = 1,200 JPY)."""
    return Decimal(int(value or 0)).scaleb(-_minor(currency))


def charge_amount(charge: Charge) -> Decimal:
    """The charge's amount in the currency's major unit. dj-stripe stores ``amount`` divided by 100 whatever
    the currency; Stripe's own integer (kept in ``stripe_data``) is read when present."""
    currency = charge.currency.upper()
    raw = (charge.stripe_data or {}).get("amount")
    if isinstance(raw, int):
        return _stripe_units(raw, currency)
    return _stripe_units((charge.amount or ZERO) * 100, currency)


def charge_payment_intent(charge: Charge) -> str:
    return charge.payment_intent_id or (charge.stripe_data or {}).get("payment_intent") or ""


def _in(period: Period, name: str) -> Q:
    return Q(**{f"{name}__gte": period.start, f"{name}__lt": period.end})


def _money(amount: Decimal | None, currency: str) -> str:
    return format_money(amount if amount is not None else ZERO, currency) if currency else str(amount)


# --- figures -------------------------------------------------------------------------------------------------


def _invoice_figures(period: Period) -> list[InvoiceFigure]:
    issued = Invoice.objects.filter(_in(period, "finalized_at"), number__isnull=False)
    rows = (
        issued.exclude(status=Invoice.Status.VOID)
        .values("currency")
        .annotate(
            count=Count("pk"),
            total=Sum("total"),
            paid=Sum("amount_paid"),
            credited=Sum("amount_credited"),
            due=Sum("amount_due"),
        )
    )
    voided = dict(
        issued.filter(status=Invoice.Status.VOID)
        .values("currency")
        .annotate(n=Count("pk"))
        .values_list("currency", "n")
    )
    figures = {
        row["currency"]: InvoiceFigure(
            currency=row["currency"],
            count=row["count"],
            total=row["total"],
            paid=row["paid"],
            credited=row["credited"],
            due=row["due"],
            voided=voided.get(row["currency"], 0),
        )
        for row in rows
    }
    for currency, count in voided.items():
        figures.setdefault(currency, InvoiceFigure(currency, 0, ZERO, ZERO, ZERO, ZERO, count))
    return [figures[c] for c in sorted(figures)]


def _sums(queryset: Any, amount: str, *group: str) -> list[dict[str, Any]]:
    return list(queryset.values(*group).annotate(count=Count("pk"), amount=Sum(amount)).order_by(*group))


def _balance_at(moment: dt.datetime) -> dict[str, Decimal]:
    """The credit balance per currency just before ``moment``, from the ledger's dated rows."""
    received = Payment.objects.filter(status__in=RECEIVED, received_at__lt=moment)
    applied = PaymentAllocation.objects.filter(payment__status__in=RECEIVED, created_at__lt=moment)
    refunded = Refund.objects.filter(
        status=Refund.Status.SUCCEEDED, payment__status__in=RECEIVED, refunded_at__lt=moment
    )
    balance: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for sign, queryset in ((1, received), (-1, applied), (-1, refunded)):
        for currency, total in queryset.values("currency").annotate(t=Sum("amount")).values_list("currency", "t"):
            balance[currency] += sign * total
    return balance


def _balance_movements(period: Period) -> list[BalanceMovement]:
    opening = _balance_at(period.start)

    def by_currency(queryset: Any) -> dict[str, Decimal]:
        return dict(queryset.values("currency").annotate(t=Sum("amount")).values_list("currency", "t"))

    received = by_currency(Payment.objects.filter(_in(period, "received_at"), status__in=RECEIVED))
    applied = by_currency(PaymentAllocation.objects.filter(_in(period, "created_at"), payment__status__in=RECEIVED))
    refunded = by_currency(
        Refund.objects.filter(_in(period, "refunded_at"), status=Refund.Status.SUCCEEDED, payment__status__in=RECEIVED)
    )
    currencies = sorted({c for c, v in opening.items() if v} | set(received) | set(applied) | set(refunded))
    return [
        BalanceMovement(
            currency=c,
            opening=opening.get(c, ZERO),
            received=received.get(c, ZERO),
            applied=applied.get(c, ZERO),
            refunded=refunded.get(c, ZERO),
        )
        for c in currencies
    ]


def _stripe_charges(period: Period) -> list[MoneyFigure]:
    totals: dict[str, list[Any]] = defaultdict(lambda: [0, ZERO])
    for charge in Charge.objects.filter(_in(period, "created"), status=STRIPE_SUCCEEDED).only(
        "currency", "amount", "stripe_data"
    ):
        figure = totals[charge.currency.upper()]
        figure[0] += 1
        figure[1] += charge_amount(charge)
    return [MoneyFigure(currency=c, count=n, amount=a) for c, (n, a) in sorted(totals.items())]


def _stripe_balance(period: Period) -> list[StripeBalanceFigure]:
    totals: dict[tuple[str, str], list[Any]] = defaultdict(lambda: [0, ZERO, ZERO, ZERO])
    for txn in BalanceTransaction.objects.filter(_in(period, "created")).only(
        "currency", "type", "amount", "stripe_data"
    ):
        currency = txn.currency.upper()
        data = txn.stripe_data or {}
        figure = totals[(currency, txn.type)]
        figure[0] += 1
        figure[1] += _stripe_units(txn.amount, currency)
        figure[2] += _stripe_units(data.get("fee"), currency)
        figure[3] += _stripe_units(data.get("net", txn.amount), currency)
    return [
        StripeBalanceFigure(currency=c, type=t, count=n, amount=a, fee=f, net=net)
        for (c, t), (n, a, f, net) in sorted(totals.items())
    ]


def reconciliation_figures(*, period: Period) -> ReconciliationFigures:
    """The month's figures per currency (and provider); reads only."""
    received = Payment.objects.filter(_in(period, "received_at"), status__in=RECEIVED)
    payments = [
        MoneyFigure(currency=r["currency"], count=r["count"], amount=r["amount"], provider=r["provider"])
        for r in _sums(received, "amount", "provider", "currency")
    ]
    refunds = _sums(
        Refund.objects.filter(_in(period, "refunded_at"), status=Refund.Status.SUCCEEDED), "amount", "currency"
    )
    notes = _sums(
        CreditNote.objects.filter(_in(period, "issued_at"), status=CreditNote.Status.ISSUED), "total", "currency"
    )
    lines = BankStatementLine.objects.filter(booked_on__gte=period.start.date(), booked_on__lt=period.end.date())
    return ReconciliationFigures(
        period=period,
        invoices=_invoice_figures(period),
        payments=payments,
        refunds=[MoneyFigure(currency=r["currency"], count=r["count"], amount=r["amount"]) for r in refunds],
        credit_notes=[MoneyFigure(currency=r["currency"], count=r["count"], amount=r["amount"]) for r in notes],
        balance=_balance_movements(period),
        stripe_charges=_stripe_charges(period),
        stripe_payments=[p for p in payments if p.provider == Payment.Provider.STRIPE],
        stripe_balance=_stripe_balance(period),
        statement_lines=[
            StatementFigure(currency=r["currency"], status=r["status"], count=r["count"], amount=r["amount"])
            for r in _sums(lines, "amount", "currency", "status")
        ],
    )


# --- mismatches ----------------------------------------------------------------------------------------------


def _stripe_findings(period: Period) -> Iterable[Finding]:
    charges = list(Charge.objects.filter(_in(period, "created"), status=STRIPE_SUCCEEDED).order_by("created", "id"))
    if not charges:
        return
    charge_ids = [c.id for c in charges]
    intents = [pi for pi in (charge_payment_intent(c) for c in charges) if pi]
    by_charge: dict[str, Payment] = {}
    by_intent: dict[str, Payment] = {}
    for payment in Payment.objects.filter(Q(stripe_charge_id__in=charge_ids) | Q(external_id__in=intents)):
        if payment.stripe_charge_id:
            by_charge.setdefault(payment.stripe_charge_id, payment)
        if payment.external_id:
            by_intent.setdefault(payment.external_id, payment)
    for charge in charges:
        currency, amount = charge.currency.upper(), charge_amount(charge)
        intent = charge_payment_intent(charge)
        payment = by_charge.get(charge.id) or (by_intent.get(intent) if intent else None)
        if payment is None:
            yield Finding(
                key=f"charge_without_payment:{charge.id}",
                kind=ReconciliationIssue.Kind.CHARGE_WITHOUT_PAYMENT,
                description=DESC_CHARGE_WITHOUT_PAYMENT.format(charge=charge.id, amount=_money(amount, currency)),
                external_id=charge.id,
                amount=amount,
                currency=currency,
            )
        elif (payment.amount, payment.currency) != (amount, currency):
            yield Finding(
                key=f"amount_mismatch:charge:{charge.id}",
                kind=ReconciliationIssue.Kind.AMOUNT_MISMATCH,
                description=DESC_CHARGE_AMOUNT.format(
                    charge=charge.id,
                    charged=_money(amount, currency),
                    payment=payment.public_id,
                    recorded=_money(payment.amount, payment.currency),
                ),
                account_id=payment.account_id,
                payment_id=payment.pk,
                external_id=charge.id,
                amount=amount - payment.amount if currency == payment.currency else amount,
                currency=currency,
            )


def _unapplied_findings(period: Period, now: dt.datetime) -> Iterable[Finding]:
    candidates = Payment.objects.filter(
        _in(period, "received_at"), status=Payment.Status.SUCCEEDED, received_at__lt=now - PAYMENT_GRACE
    ).select_related("account")
    accounts_with_open = set(
        Invoice.objects.filter(
            account_id__in=candidates.values("account_id"), status=Invoice.Status.FINALIZED, amount_due__gt=0
        ).values_list("account_id", flat=True)
    )
    for payment in candidates.filter(account_id__in=accounts_with_open).order_by("received_at", "pk"):
        unapplied = payment_unapplied(payment)
        if unapplied > 0:
            yield Finding(
                key=f"payment_without_invoice:{payment.pk}",
                kind=ReconciliationIssue.Kind.PAYMENT_WITHOUT_INVOICE,
                description=DESC_UNAPPLIED.format(
                    payment=payment.public_id,
                    amount=_money(payment.amount, payment.currency),
                    unapplied=_money(unapplied, payment.currency),
                    account=payment.account,
                ),
                account_id=payment.account_id,
                payment_id=payment.pk,
                external_id=payment.external_id or "",
                amount=unapplied,
                currency=payment.currency,
            )


def _invoice_findings(period: Period) -> Iterable[Finding]:
    """Invoices issued, paid or paid towards in the month whose recorded payments disagree with the ledger."""
    touched = PaymentAllocation.objects.filter(_in(period, "created_at")).values("invoice_id")
    invoices = (
        Invoice.objects.exclude(status=Invoice.Status.DRAFT)
        .filter(_in(period, "finalized_at") | _in(period, "paid_at") | Q(pk__in=touched))
        .annotate(allocated=Coalesce(Sum("allocations__amount"), ZERO))
        .order_by("pk")
    )
    for invoice in invoices:
        owed = invoice.total - invoice.amount_credited
        allocated = invoice.allocated
        if invoice.status == Invoice.Status.PAID and owed > 0 and allocated < owed:
            yield Finding(
                key=f"paid_without_money:{invoice.pk}",
                kind=ReconciliationIssue.Kind.PAID_WITHOUT_MONEY,
                description=DESC_PAID_WITHOUT_MONEY.format(
                    invoice=invoice.number,
                    allocated=_money(allocated, invoice.currency),
                    owed=_money(owed, invoice.currency),
                ),
                account_id=invoice.account_id,
                invoice_id=invoice.pk,
                amount=owed - allocated,
                currency=invoice.currency,
            )
        elif invoice.amount_paid != allocated:
            yield Finding(
                key=f"amount_mismatch:invoice:{invoice.pk}",
                kind=ReconciliationIssue.Kind.AMOUNT_MISMATCH,
                description=DESC_INVOICE_PAID.format(
                    invoice=invoice.number,
                    paid=_money(invoice.amount_paid, invoice.currency),
                    allocated=_money(allocated, invoice.currency),
                ),
                account_id=invoice.account_id,
                invoice_id=invoice.pk,
                amount=invoice.amount_paid - allocated,
                currency=invoice.currency,
            )


def _statement_findings(period: Period) -> Iterable[Finding]:
    for line in BankStatementLine.objects.filter(
        status=BankStatementLine.Status.UNMATCHED, booked_on__gte=period.start.date(), booked_on__lt=period.end.date()
    ).order_by("booked_on", "pk"):
        yield Finding(
            key=statement_line_issue_key(line),
            kind=ReconciliationIssue.Kind.STATEMENT_LINE_UNMATCHED,
            description=DESC_LINE_UNMATCHED.format(
                date=line.booked_on.isoformat(), amount=_money(line.amount, line.currency), reference=line.reference
            )[:500],
            amount=line.amount,
            currency=line.currency,
        )


def statement_line_issue_key(line: BankStatementLine) -> str:
    return f"statement_line_unmatched:{line.pk}"


def reconciliation_findings(*, period: Period, now: dt.datetime) -> list[Finding]:
    """Every mismatch of the month as it stands at ``now``; reads only."""
    return [
        *_stripe_findings(period),
        *_unapplied_findings(period, now),
        *_invoice_findings(period),
        *_statement_findings(period),
    ]


@transaction.atomic
def reconciliation_run(*, period: Period, now: dt.datetime | None = None, actor: Any = None) -> ReconciliationSummary:
    """Reconcile ``period``: record each mismatch found once (a resolved one stays resolved), refresh the open
    ones, and close the month's open issues that are no longer found."""
    now = now or clock.now()
    require_permission(actor, PERM_RESOLVE, ERR_RESOLVE_DENIED)
    month = period.start.date()
    findings = {f.key: f for f in reconciliation_findings(period=period, now=now)}
    existing = {i.key: i for i in ReconciliationIssue.objects.select_for_update().filter(key__in=list(findings))}
    fresh = [
        ReconciliationIssue(
            key=f.key,
            kind=f.kind,
            month=month,
            account_id=f.account_id,
            invoice_id=f.invoice_id,
            payment_id=f.payment_id,
            external_id=f.external_id,
            amount=f.amount,
            currency=f.currency,
            description=f.description[:500],
            detected_at=now,
        )
        for key, f in findings.items()
        if key not in existing
    ]
    # A concurrent run may have recorded some of them since: the unique key keeps one row each.
    ReconciliationIssue.objects.bulk_create(fresh, ignore_conflicts=True)
    for key, issue in existing.items():
        finding = findings[key]
        if issue.status == ReconciliationIssue.Status.OPEN and (issue.description, issue.amount) != (
            finding.description[:500],
            finding.amount,
        ):
            issue.description, issue.amount = finding.description[:500], finding.amount
            issue.save(update_fields=["description", "amount"])
    closed = (
        ReconciliationIssue.objects.filter(month=month, status=ReconciliationIssue.Status.OPEN)
        .exclude(key__in=list(findings))
        .update(
            status=ReconciliationIssue.Status.RESOLVED,
            resolved_at=now,
            resolved_by=None,
            resolution=NOT_FOUND_AGAIN.format(month=period.label, at=f"{now:%Y-%m-%d %H:%M} UTC"),
        )
    )
    kinds: dict[str, int] = defaultdict(int)
    for finding in findings.values():
        kinds[finding.kind] += 1
    return ReconciliationSummary(
        figures=reconciliation_figures(period=period),
        found=len(findings),
        new=len(fresh),
        closed=closed,
        open=ReconciliationIssue.objects.filter(month=month, status=ReconciliationIssue.Status.OPEN).count(),
        kinds=dict(kinds),
    )


def reconciliation_daily(*, now: dt.datetime | None = None) -> list[ReconciliationSummary]:
    """The schedule's run: the month of yesterday so far, then the month before it (late payments, refunds and
    statements still land there)."""
    now = now or clock.now()
    current = month_containing(now - dt.timedelta(days=1))
    return [reconciliation_run(period=period, now=now) for period in (current, previous_month(current))]


@transaction.atomic
def reconciliation_issue_resolve(
    *, issue: ReconciliationIssue, resolution: str, actor: Any, now: dt.datetime | None = None
) -> ReconciliationIssue:
    """Staff's verdict on a mismatch: resolved, with who, when and how."""
    now = now or clock.now()
    require_permission(actor, PERM_RESOLVE, ERR_RESOLVE_DENIED)
    resolution = " ".join(resolution.split())
    if not resolution:
        raise BillingError(ERR_RESOLUTION, code="required", field="resolution")
    issue = ReconciliationIssue.objects.select_for_update().get(pk=issue.pk)
    if issue.status == ReconciliationIssue.Status.RESOLVED:
        raise BillingError(
            ERR_ALREADY_RESOLVED.format(
                when=f"{issue.resolved_at:%Y-%m-%d %H:%M} UTC" if issue.resolved_at else "–",
                who=issue.resolved_by or "the system",
            ),
            code="issue_resolved",
            status=409,
        )
    issue.status, issue.resolved_at, issue.resolution = ReconciliationIssue.Status.RESOLVED, now, resolution[:500]
    issue.resolved_by = actor if getattr(actor, "is_authenticated", False) else None
    issue.save(update_fields=["status", "resolved_at", "resolved_by", "resolution"])
    return issue


def statement_line_issue_close(*, line: BankStatementLine, resolution: str, actor: Any, now: dt.datetime) -> None:
    """The line's open issue, if any, is resolved by what staff did with the line (matched or ignored)."""
    ReconciliationIssue.objects.filter(
        key=statement_line_issue_key(line), status=ReconciliationIssue.Status.OPEN
    ).update(
        status=ReconciliationIssue.Status.RESOLVED,
        resolved_at=now,
        resolved_by=actor if getattr(actor, "is_authenticated", False) else None,
        resolution=resolution[:500],
    )
