"""Contract pricing: what an account's ``Contract`` adds to its month, after the plan has priced it.

The engine (``billing.rating.engine``) prices the month's segments as for any account, then asks
``contract_lines`` for the contract's own lines and puts them after the segments' lines, before late usage.
``contracts_load`` reads what that needs for any number of accounts in a fixed number of queries (none of
them grows with the number of accounts; an account without a contract costs nothing beyond them). The
rest of this module is arithmetic over the loaded rows, no queries.

Rules (also in docs/billing.md, "Contracts: how they are rated"):
- The contract of a month: the account's contract whose term ``[term_start, term_end)`` overlaps it, cut
  short at ``terminated_at`` when it ended early (the month holding that last moment is its last month).
  Several overlapping: the latest term. A contract in force for part of the month applies to the month's
  lines (tiers and credits); its monthly commitment is prorated to that part.
- Volume-discount tiers (graduated, per metric): a usage line of quantity ``q`` with exact amount ``A(q)``
  gets ``Σ pct_i/100 × (A(min(q, t_i+1)) − A(t_i))`` over its metric's thresholds ``t_i < q``, never
  below 0 nor above ``A(q)``; one discount line per usage line (a month cut into plan segments: one per
  segment's line, each against its own quantity).
- Committed minimum: per month (topped up on each month, prorated to the part the contract is in force),
  per contract year or over the term (trued up on the invoice of the span's last month). Spend is what the
  lines bill before prepaid draws and commitment lines: on earlier invoices of the span (not void) and on
  this one. A span cut short (a term that is not whole years, or an early termination) commits its share
  of the full span, by time.
- Early termination: the termination fee, on the invoice of the contract's last month.
- Prepaid credits draw down against the usage charges (usage lines and discounts, after the volume
  discounts; not base fees, commitment lines or late usage), oldest expiry first (no expiry last), then
  the oldest in effect, then the oldest created.
- Every line is rounded once, half up (``round_money``).
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Protocol

from django.db.models import Prefetch, Q, Sum
from django.db.models.functions import Abs

from accounts.models import Account
from billing.models import Contract, ContractDiscountTier, Invoice, InvoiceLine, PlanVersion, PrepaidCredit
from billing.rating.tiers import ChargeTerms, overage_amount
from common.money import round_money
from common.periods import Period

ZERO = Decimal(0)
# Lines that are not spend towards a committed minimum: the commitment lines themselves and prepaid draws
# (spend is counted before the prepaid credits pay for it), and the early-termination charge.
NOT_SPEND = (
    InvoiceLine.Kind.MINIMUM_COMMITMENT,
    InvoiceLine.Kind.PREPAID_CREDIT,
    InvoiceLine.Kind.EARLY_TERMINATION,
)
# What prepaid credits pay for: the usage charges, less their discounts.
DRAWN_AGAINST = (InvoiceLine.Kind.USAGE, InvoiceLine.Kind.DISCOUNT)


@dataclass(frozen=True)
class DiscountTier:
    """Usage above ``threshold`` (the line's quantity) is discounted by ``percent`` (0–100]."""

    threshold: Decimal
    percent: Decimal


@dataclass(frozen=True)
class CreditBalance:
    """A prepaid credit as it stands before this invoice: ``remaining`` of its ``amount`` left."""

    amount: Decimal
    remaining: Decimal
    credit: PrepaidCredit | None = None


@dataclass(frozen=True)
class Draw:
    balance: CreditBalance
    amount: Decimal  # drawn on this invoice (positive)
    left: Decimal  # what remains of the credit after it


@dataclass(frozen=True)
class CommitmentSpan:
    """A span a committed minimum is trued up over: a contract year (``number`` 1, 2, …) or the term
    (``number`` 0). ``share`` of the committed amount applies (1 unless the span was cut short)."""

    number: int
    start: dt.datetime
    end: dt.datetime
    share: Fraction

    def label(self) -> str:
        first = f"{self.start:%b %Y}"
        last = f"{Period(self.start, self.end).last_day:%b %Y}"
        span = f"({first} – {last})"
        return f"contract year {self.number} {span}" if self.number else f"the term {span}"


@dataclass
class ContractTerms:
    """A contract as the engine rates one month with it (loaded by ``contracts_load``)."""

    contract: Contract
    in_force: Period  # the part of the month the contract is in force
    ends_at: dt.datetime  # the term's end, or the early termination
    tiers: dict[str, list[DiscountTier]] = field(default_factory=dict)  # by metric code, thresholds ascending
    credits: list[CreditBalance] = field(default_factory=list)  # usable this month, in drawing order
    due: list[tuple[CommitmentSpan, Decimal]] = field(default_factory=list)  # spans trued up now, earlier spend


class PricedLine(Protocol):
    """What this module reads of the engine's lines (``billing.rating.engine.ChargeLine``)."""

    kind: str
    description: str
    amount: Decimal
    start: dt.datetime | None
    end: dt.datetime | None
    metric_code: str | None
    quantity: Decimal | None
    plan_version: PlanVersion | None
    terms: ChargeTerms | None
    share: Fraction


@dataclass
class ContractLine:
    """A line the contract adds; the engine turns it into one of its own lines."""

    kind: str
    description: str
    amount: Decimal
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    plan_version: PlanVersion | None = None
    prepaid_credit: PrepaidCredit | None = None


# Pure arithmetic ---------------------------------------------------------------------------------------


def volume_discount(
    amount_of: Callable[[Decimal], Decimal], quantity: Decimal, tiers: Sequence[DiscountTier]
) -> Decimal:
    """Exact (unrounded) discount of graduated ``tiers`` on a charge whose exact amount for a quantity is
    ``amount_of``: each tier discounts what the units between its threshold and the next one cost. Never
    negative and never more than the charge itself (a volume-priced charge is not monotone in quantity)."""
    ordered = sorted(tiers, key=lambda tier: tier.threshold)
    total = ZERO
    for index, tier in enumerate(ordered):
        if quantity <= tier.threshold:
            break
        upper = ordered[index + 1].threshold if index + 1 < len(ordered) else None
        top = quantity if upper is None else min(quantity, upper)
        total += tier.percent / 100 * (amount_of(top) - amount_of(tier.threshold))
    return min(max(total, ZERO), max(amount_of(quantity), ZERO))


def credits_draw(charges: Decimal, balances: Iterable[CreditBalance]) -> list[Draw]:
    """Draw ``charges`` from the credits in the order given, each up to what remains of it; nothing when
    there is nothing to pay for."""
    draws = []
    left_to_pay = max(charges, ZERO)
    for balance in balances:
        if left_to_pay <= 0:
            break
        amount = min(max(balance.remaining, ZERO), left_to_pay)
        if amount <= 0:
            continue
        draws.append(Draw(balance=balance, amount=amount, left=balance.remaining - amount))
        left_to_pay -= amount
    return draws


def credit_order(credit: PrepaidCredit) -> tuple[bool, dt.datetime, dt.datetime, int]:
    """Drawing order: the first to expire first (no expiry last), then the oldest in effect, then by id."""
    expires = credit.expires_at
    return (expires is None, expires or credit.effective_at, credit.effective_at, credit.pk or 0)


def add_months(moment: dt.datetime, months: int) -> dt.datetime:
    """``moment`` moved by calendar months, the day kept (or the month's last day when it has fewer)."""
    years_on, month_index = divmod(moment.month - 1 + months, 12)
    year, month = moment.year + years_on, month_index + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def _share(part: dt.timedelta, whole: dt.timedelta) -> Fraction:
    def micros(delta: dt.timedelta) -> int:
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds

    return Fraction(micros(part), micros(whole))


def commitment_spans(
    *, term_start: dt.datetime, term_end: dt.datetime, ends_at: dt.datetime, per: str
) -> list[CommitmentSpan]:
    """The spans a yearly or whole-term committed minimum is trued up over, up to ``ends_at`` (the term's
    end or the early termination). A span cut short commits its share of the full one, by time."""
    if per == Contract.CommitmentPeriod.TERM:
        end = min(term_end, ends_at)
        return [CommitmentSpan(0, term_start, end, _share(end - term_start, term_end - term_start))]
    if per != Contract.CommitmentPeriod.YEAR:
        return []
    spans = []
    number = 0
    start = term_start
    while start < min(term_end, ends_at):
        number += 1
        full_end = add_months(term_start, 12 * number)
        end = min(full_end, term_end, ends_at)
        spans.append(CommitmentSpan(number, start, end, _share(end - start, full_end - start)))
        start = full_end
    return spans


def spans_due(spans: Sequence[CommitmentSpan], period: Period) -> list[CommitmentSpan]:
    """The spans whose last moment falls in ``period``: trued up on its invoice."""
    return [span for span in spans if period.start < span.end <= period.end]


def month_in_span(month_start: dt.datetime, span: CommitmentSpan, term_start: dt.datetime) -> bool:
    """A month counts whole for the span its first contracted moment falls in."""
    return span.start <= max(month_start, term_start) < span.end


def _money(amount: Decimal, currency: str) -> str:
    return f"{round_money(amount, currency):,f} {currency}"


def _number(value: Decimal) -> str:
    return f"{value.normalize():,f}"


def _day(moment: dt.date) -> str:
    return f"{moment:%b} {moment.day}, {moment.year}"


def discount_lines(
    *, tiers: dict[str, list[DiscountTier]], lines: Sequence[PricedLine], currency: str
) -> list[ContractLine]:
    """One volume-discount line per charged usage line of a metric with tiers."""
    result = []
    for line in lines:
        metric_tiers = tiers.get(line.metric_code or "")
        terms = line.terms
        if line.kind != "usage" or not metric_tiers or terms is None or line.amount <= 0 or line.quantity is None:
            continue
        share = line.share

        def amount_of(quantity: Decimal, terms: ChargeTerms = terms, share: Fraction = share) -> Decimal:
            return overage_amount(terms, quantity) * Decimal(share.numerator) / Decimal(share.denominator)

        exact = volume_discount(amount_of, line.quantity, metric_tiers)
        amount = min(round_money(exact, currency), line.amount)
        if amount <= 0:
            continue
        reached = ", ".join(
            f"{_number(t.percent)}% over {_number(t.threshold)}" for t in metric_tiers if line.quantity > t.threshold
        )
        result.append(
            ContractLine(
                kind="discount",
                description=f"Volume discount on {line.description}: {reached}",
                amount=-amount,
                start=line.start,
                end=line.end,
                plan_version=line.plan_version,
            )
        )
    return result


def commitment_lines(*, terms: ContractTerms, period: Period, spend: Decimal, currency: str) -> list[ContractLine]:
    """The true-up of the committed minimum due on this month's invoice, if the spend falls short."""
    contract = terms.contract
    committed = contract.commitment_amount
    if not committed:
        return []
    result = []
    if contract.commitment_period == Contract.CommitmentPeriod.MONTH:
        share = period.fraction_covered_by(terms.in_force)
        owed = round_money(committed * Decimal(share.numerator) / Decimal(share.denominator), currency)
        label = f"{period.start:%B %Y}"
        if terms.in_force != period:
            label += f" ({terms.in_force.start:%b} {terms.in_force.start.day}–{terms.in_force.last_day:%b} "
            label += f"{terms.in_force.last_day.day})"
        due = [(owed, spend, label, terms.in_force)]
    else:
        due = []
        for span, earlier in terms.due:
            owed = round_money(committed * Decimal(span.share.numerator) / Decimal(span.share.denominator), currency)
            this_month = spend if month_in_span(period.start, span, contract.term_start) else ZERO
            due.append((owed, earlier + this_month, span.label(), terms.in_force))
    for owed, billed, label, covered in due:
        if billed < owed:
            result.append(
                ContractLine(
                    kind="minimum_commitment",
                    description=(
                        f"Commitment true-up: {_money(owed, currency)} committed for {label}, "
                        f"{_money(billed, currency)} billed"
                    ),
                    amount=owed - billed,
                    start=covered.start,
                    end=covered.end,
                )
            )
    return result


def termination_lines(*, contract: Contract, period: Period, currency: str) -> list[ContractLine]:
    """The early-termination charge, on the invoice of the contract's last month."""
    ended = contract.terminated_at
    if ended is None or not (period.start < ended <= period.end) or not contract.termination_fee:
        return []
    term_last_day = Period(contract.term_start, contract.term_end).last_day
    return [
        ContractLine(
            kind="early_termination",
            description=f"Early termination of contract {contract.public_id}, term to {_day(term_last_day)}",
            amount=round_money(contract.termination_fee, currency),
        )
    ]


def prepaid_lines(*, credits: Sequence[CreditBalance], charges: Decimal, currency: str) -> list[ContractLine]:
    """One line per credit drawn on."""
    return [
        ContractLine(
            kind="prepaid_credit",
            description=(
                f"Prepaid credit applied ({_money(draw.balance.amount, currency)} prepaid, "
                f"{_money(draw.left, currency)} left)"
            ),
            amount=-draw.amount,
            prepaid_credit=draw.balance.credit,
        )
        for draw in credits_draw(charges, credits)
    ]


def contract_lines(
    *, terms: ContractTerms, period: Period, lines: Sequence[PricedLine], currency: str
) -> list[ContractLine]:
    """The contract's lines for the month, in invoice order: volume discounts, commitment true-up, early
    termination, prepaid draws. ``lines`` are the engine's lines for the month (late usage included)."""
    discounts = discount_lines(tiers=terms.tiers, lines=lines, currency=currency)
    spend = sum((line.amount for line in lines if line.kind not in NOT_SPEND), ZERO)
    spend += sum((line.amount for line in discounts), ZERO)
    true_up = commitment_lines(terms=terms, period=period, spend=spend, currency=currency)
    termination = termination_lines(contract=terms.contract, period=period, currency=currency)
    charges = sum((line.amount for line in lines if line.kind in DRAWN_AGAINST), ZERO)
    charges += sum((line.amount for line in discounts), ZERO)
    prepaid = prepaid_lines(credits=terms.credits, charges=charges, currency=currency)
    return [*discounts, *true_up, *termination, *prepaid]


# Loading -----------------------------------------------------------------------------------------------


def contracts_load(*, accounts: Sequence[Account], period: Period) -> dict[int, ContractTerms]:
    """The contract in force in ``period`` for each account that has one, with its tiers, usable prepaid
    credits (less what invoices of other months drew), and the earlier spend of the commitment spans that
    end this month. At most five queries, whatever the number of accounts; one when none has a contract."""
    if not accounts:
        return {}
    currencies = {account.pk: account.currency for account in accounts}
    rows = (
        Contract.objects.filter(account_id__in=currencies, term_start__lt=period.end, term_end__gt=period.start)
        .filter(Q(terminated_at__isnull=True) | Q(terminated_at__gt=period.start))
        .select_related("account_manager")
        .prefetch_related(
            Prefetch(
                "discount_tiers",
                queryset=ContractDiscountTier.objects.select_related("metric").order_by("metric_id", "threshold"),
            ),
            Prefetch(
                "prepaid_credits",
                queryset=PrepaidCredit.objects.filter(effective_at__lt=period.end).filter(
                    Q(expires_at__isnull=True) | Q(expires_at__gt=period.start)
                ),
            ),
        )
        .order_by("account_id", "-term_start", "-pk")
    )
    contracts: dict[int, Contract] = {}
    for contract in rows:
        contracts.setdefault(contract.account_id, contract)  # the latest term
    if not contracts:
        return {}

    result: dict[int, ContractTerms] = {}
    for account_id, contract in contracts.items():
        ends_at = min(contract.term_end, contract.terminated_at or contract.term_end)
        if ends_at <= contract.term_start:  # terminated before it started: never in force
            continue
        in_force = Period(max(period.start, contract.term_start), min(period.end, ends_at))
        tiers: dict[str, list[DiscountTier]] = defaultdict(list)
        for tier in contract.discount_tiers.all():
            tiers[tier.metric.code].append(DiscountTier(tier.threshold, tier.percent))
        result[account_id] = ContractTerms(contract=contract, in_force=in_force, ends_at=ends_at, tiers=dict(tiers))

    _load_credits(result, currencies, period)
    _load_spend(result, period)
    return result


def _load_credits(terms: dict[int, ContractTerms], currencies: dict[int, str], period: Period) -> None:
    """Usable credits in drawing order, each with what invoices of other months (not void) left of it:
    re-rating this month's draft draws the same again."""
    credits = [
        (account_id, credit)
        for account_id, t in terms.items()
        for credit in t.contract.prepaid_credits.all()
        if credit.currency == currencies[account_id]
    ]
    if not credits:
        return
    drawn = dict(
        InvoiceLine.objects.filter(
            prepaid_credit__in=[credit.pk for _, credit in credits], invoice__account_id__in=list(terms)
        )
        .exclude(invoice__status=Invoice.Status.VOID)
        .exclude(invoice__period_start=period.start)
        .order_by()
        .values("prepaid_credit_id")
        .annotate(drawn=Sum(Abs("amount")))
        .values_list("prepaid_credit_id", "drawn")
    )
    for account_id, credit in sorted(credits, key=lambda pair: credit_order(pair[1])):
        remaining = max(credit.amount - (drawn.get(credit.pk) or ZERO), ZERO)
        terms[account_id].credits.append(CreditBalance(credit.amount, remaining, credit))


def _load_spend(terms: dict[int, ContractTerms], period: Period) -> None:
    """For yearly and whole-term commitments ending this month: what the span's earlier invoices (not
    void) billed before prepaid draws and commitment lines, from one grouped query."""
    due: dict[int, list[CommitmentSpan]] = {}
    for account_id, t in terms.items():
        contract = t.contract
        if not contract.commitment_amount or contract.commitment_period == Contract.CommitmentPeriod.MONTH:
            continue
        spans = commitment_spans(
            term_start=contract.term_start,
            term_end=contract.term_end,
            ends_at=t.ends_at,
            per=contract.commitment_period,
        )
        if found := spans_due(spans, period):
            due[account_id] = found
    if not due:
        return
    earliest = min(span.start for spans in due.values() for span in spans)
    earliest = earliest.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    billed: dict[int, list[tuple[dt.datetime, Decimal]]] = defaultdict(list)
    for account_id, month_start, amount in (
        InvoiceLine.objects.filter(
            invoice__account_id__in=list(due),
            invoice__period_start__gte=earliest,
            invoice__period_start__lt=period.start,
        )
        .exclude(invoice__status=Invoice.Status.VOID)
        .exclude(kind__in=NOT_SPEND)
        .order_by()
        .values("invoice__account_id", "invoice__period_start")
        .annotate(amount=Sum("amount"))
        .values_list("invoice__account_id", "invoice__period_start", "amount")
    ):
        billed[account_id].append((month_start, amount))
    for account_id, spans in due.items():
        term_start = terms[account_id].contract.term_start
        terms[account_id].due = [
            (
                span,
                sum(
                    (amount for month, amount in billed[account_id] if month_in_span(month, span, term_start)),
                    ZERO,
                ),
            )
            for span in spans
        ]
