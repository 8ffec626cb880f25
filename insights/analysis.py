"""Cost analysis of an account over a range of months: what each month cost, per charge (metric or fee), per
tenant, per master partner and per premium feature, the unit costs, and what moved from one month to the next.

Where the figures come from:
- a closed month is its invoice: the issued one (finalized, paid or written off), else the draft under review
  (marked ``draft``); its lines' amounts and stored per-tenant and per-partner ``breakdown`` are read as they
  were issued, nothing is priced again. Late usage billed on an invoice counts in the month of that invoice.
- the running month is ``billing.rating.engine.charges_estimate`` as of ``now`` (marked ``estimate``), shared
  among tenants and partners by ``billing.rating.allocation`` (the same functions that write the breakdowns).
- a month before the running one with no invoice at all is ``not_invoiced`` (zero).

The analysis is of **invoiced cost before tax** (each month's ``subtotal``); tax and total are given beside it,
and so are the credit notes issued against the month's invoice (``credited``, before tax) and the ``net``
(``subtotal − credited``). Credit notes are not spread over tenants, partners or charges: they correct a
document, usually for a reason (a dispute) that names no tenant.

Shares, to the cent (``billing.allocation``'s rule, with tenants and partners in place of departments): a
usage line is shared as its breakdown says (its tenants, and "no tenant" for usage no tenant accounts for);
a late-usage line by its events' tenants (sums and counts), else to no tenant; every other line (base fee,
discounts, minimum commitment, prepaid credit, early termination) in proportion to the tenants' usage shares
of the month (all to no tenant when nothing was used). Each split is ``common.money.allocate`` (largest
remainder), so a month's tenants add up to its subtotal exactly, and so do its partners (usage sent without a
partner is "no partner"). Range figures are sums of the months' figures.

Premium features (``premium_features``, a unique count of the events' ``feature``): a feature is *paid for*
when the month counts more features than the plan includes. The allowance covers the features used most (by
events, then by days used, then by name) and the rest are paid for; the month's premium-features charge is
shared equally among the paid features (largest remainder, in name order).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Count, Sum
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import TruncDay

from accounts.models import Account
from billing.allocation import ALLOCATED_STATUSES, UNALLOCATED, USAGE_KINDS, allocate_document
from billing.models import CreditNote, Invoice, InvoiceLine
from billing.presentation import tenant_names
from billing.rating.allocation import line_partner_costs, line_tenant_costs
from billing.rating.engine import Estimate, charges_estimate
from billing.selectors import invoice_line_events
from common import clock
from common.money import allocate, format_money, round_money
from common.periods import Period, month_containing, month_period
from tenants.models import MasterPartner, Tenant
from usage.models import Metric, UsageEvent, UsageUniqueValue
from usage.selectors import partners_live_in_period

ZERO = Decimal(0)
HUNDRED = Decimal(100)
FEATURES_METRIC = "premium_features"
STORAGE_METRIC = "storage_gb"
NO_SOURCE = ""  # the key of "no tenant" / "no partner"
NO_TENANT_LABEL = "No tenant (account-wide)"
NO_PARTNER_LABEL = "No master partner"
UNIT_COST_PLACES = Decimal("0.0001")  # unit costs are shown to 4 places, like a unit price
PERCENT_PLACES = Decimal("0.1")
MAX_MONTHS = 24

# Month statuses.
INVOICED = "invoiced"
DRAFT = "draft"
ESTIMATE = "estimate"
NOT_INVOICED = "not_invoiced"
STATUS_LABELS = {
    INVOICED: "Invoiced",
    DRAFT: "Invoice under review",
    ESTIMATE: "Running month (estimate)",
    NOT_INVOICED: "Not invoiced",
}
# The values as the API documents them (one named enum, MonthStatusEnum).
MONTH_STATUS_VALUES = tuple(STATUS_LABELS)

# The charges that are not a metric's usage, by line kind, as the analysis names them.
FEE_LABELS: dict[str, str] = {
    InvoiceLine.Kind.BASE_FEE: "Base fee",
    InvoiceLine.Kind.DISCOUNT: "Discounts",
    InvoiceLine.Kind.MINIMUM_COMMITMENT: "Minimum commitment top-up",
    InvoiceLine.Kind.PREPAID_CREDIT: "Prepaid credit applied",
    InvoiceLine.Kind.EARLY_TERMINATION: "Early-termination charge",
}
# Unit costs: metric code → (label, units per price unit shown).
UNIT_COSTS: dict[str, tuple[str, Decimal]] = {
    "messages": ("per message", Decimal(1)),
    "api_requests": ("per 1,000 API requests", Decimal(1000)),
    "active_users": ("per active user", Decimal(1)),
}
MONTHLY_COUNT_AGGREGATIONS = (Metric.Aggregation.UNIQUE_COUNT, Metric.Aggregation.MAX)

ERR_RANGE_ORDER = "The range ends before it starts."
ERR_RANGE_LENGTH = f"A range is at most {MAX_MONTHS} months."
ERR_RANGE_FUTURE = "The range ends after the running month."


# --- Results -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChargeCost:
    """One charge of a month (or range): a metric's usage, or a fee of one kind. ``key`` is the metric code, or
    the line kind for fees. Quantities: the month's billed quantity (monthly counts once, accumulating usage
    summed over the month's lines); over a range, summed (``None`` for fees)."""

    key: str
    label: str
    is_usage: bool
    amount: Decimal
    quantity: Decimal | None = None
    included: Decimal | None = None
    metric: Metric | None = None


@dataclass(frozen=True)
class SourceCost:
    """A tenant's or master partner's part of a month (or range). ``public_id`` is ``""`` for usage of no tenant
    (or no partner) and the account-level charges that go with it. ``usage`` is its share of the usage lines,
    ``total`` that plus its share of the other lines; ``by_charge`` its usage share per metric code,
    ``quantities`` its quantity per metric code."""

    public_id: str
    name: str
    usage: Decimal
    total: Decimal
    by_charge: dict[str, Decimal] = field(default_factory=dict)
    quantities: dict[str, Decimal] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.public_id})" if self.name and self.public_id else self.name or self.public_id


@dataclass(frozen=True)
class FeatureCost:
    """A premium feature in a month (or range): its events, the distinct UTC days it was used on, the tenants
    that used it, whether it was paid for (beyond the plan's included features) and what it cost. Over a range,
    ``months_paid`` counts the months it was paid for."""

    feature: str
    events: int
    days: int
    tenants: int
    paid: bool
    cost: Decimal
    months_paid: int = 0


@dataclass(frozen=True)
class UnitCost:
    """What one unit of a billed metric cost: ``metric_cost`` is the metric's own charges ÷ its quantity
    (× ``per`` units), ``all_in`` the month's whole subtotal ÷ its quantity (× ``per``). To 4 places."""

    metric_code: str
    label: str
    per: Decimal
    quantity: Decimal
    amount: Decimal
    metric_cost: Decimal
    all_in: Decimal


@dataclass(frozen=True)
class Move:
    key: str
    label: str
    delta: Decimal


@dataclass(frozen=True)
class ChargeMove:
    """A charge's change from the month before, and the tenant whose share of it moved most (usage only)."""

    key: str
    label: str
    delta: Decimal
    tenant: Move | None = None


@dataclass(frozen=True)
class MonthChange:
    """A month against the month before it: the subtotal's change, the charges and tenants that moved (largest
    change first), and the change explained in words."""

    previous_month: dt.date
    previous_subtotal: Decimal
    delta: Decimal
    percent: Decimal | None
    charges: list[ChargeMove]
    tenants: list[Move]
    explanation: str


@dataclass(frozen=True)
class MonthCost:
    month: dt.date
    period: Period
    status: str
    invoice_number: str | None
    currency: str
    subtotal: Decimal
    tax: Decimal
    total: Decimal
    credited: Decimal
    charges: list[ChargeCost]
    tenants: list[SourceCost]
    partners: list[SourceCost]
    features: list[FeatureCost]
    unit_costs: list[UnitCost]
    change: MonthChange | None = None

    @property
    def net(self) -> Decimal:
        """The subtotal less the credit notes issued against the month's invoice (before tax)."""
        return self.subtotal - self.credited

    @property
    def is_estimate(self) -> bool:
        return self.status == ESTIMATE

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.status]

    def charge(self, key: str) -> ChargeCost | None:
        return next((c for c in self.charges if c.key == key), None)


@dataclass(frozen=True)
class CostAnalysis:
    account: Account
    start_month: dt.date
    end_month: dt.date
    currency: str
    months: list[MonthCost]
    subtotal: Decimal
    tax: Decimal
    total: Decimal
    credited: Decimal
    charges: list[ChargeCost]
    tenants: list[SourceCost]
    partners: list[SourceCost]
    features: list[FeatureCost]
    unit_costs: list[UnitCost]

    @property
    def net(self) -> Decimal:
        return self.subtotal - self.credited

    @property
    def includes_estimate(self) -> bool:
        return any(m.is_estimate for m in self.months)


# --- Months --------------------------------------------------------------------------------------------------


def first_of(month: dt.date) -> dt.date:
    return month.replace(day=1)


def add_months(month: dt.date, count: int) -> dt.date:
    index = month.year * 12 + month.month - 1 + count
    return dt.date(index // 12, index % 12 + 1, 1)


def months_between(start_month: dt.date, end_month: dt.date) -> list[dt.date]:
    """The first days of every month from ``start_month`` to ``end_month``, both included."""
    months, month = [], first_of(start_month)
    while month <= end_month:
        months.append(month)
        month = add_months(month, 1)
    return months


def range_error(*, start_month: dt.date, end_month: dt.date, now: dt.datetime) -> tuple[str, str] | None:
    """Why a range cannot be analysed, as (field, message), or None. The API and the pages share it."""
    running = month_containing(now).start.date()
    if end_month < start_month:
        return "to", ERR_RANGE_ORDER
    if len(months_between(start_month, end_month)) > MAX_MONTHS:
        return "to", ERR_RANGE_LENGTH
    if first_of(end_month) > running:
        return "to", ERR_RANGE_FUTURE
    return None


def percent(part: Decimal, whole: Decimal) -> Decimal | None:
    """``part`` as a percentage of ``whole``, to one place (None when ``whole`` is zero)."""
    if not whole:
        return None
    return (part * HUNDRED / whole).quantize(PERCENT_PLACES, rounding=ROUND_HALF_UP)


def _per_unit(amount: Decimal, quantity: Decimal, per: Decimal) -> Decimal:
    return (amount * per / quantity).quantize(UNIT_COST_PLACES, rounding=ROUND_HALF_UP)


# --- One month's lines, whichever document they come from ---------------------------------------------------


@dataclass
class _Line:
    kind: str
    metric: Metric | None
    quantity: Decimal | None
    included: Decimal | None
    amount: Decimal
    tenants: dict[str, Decimal] = field(default_factory=dict)  # usage lines: shares of ``amount``
    tenant_quantities: dict[str, Decimal] = field(default_factory=dict)
    partners: dict[str, Decimal] = field(default_factory=dict)
    partner_quantities: dict[str, Decimal] = field(default_factory=dict)

    @property
    def is_usage(self) -> bool:
        return self.kind in USAGE_KINDS and self.metric is not None


def _equal_split(amount: Decimal, keys: Iterable[str], currency: str) -> dict[str, Decimal]:
    ordered = sorted(keys)
    if not ordered:
        return {NO_SOURCE: amount}
    return allocate(amount, {key: Decimal(1) for key in ordered}, currency)


def _remainder(amount: Decimal, shares: dict[str, Decimal]) -> dict[str, Decimal]:
    """``shares`` with what they leave of ``amount`` under no source, so they add up to it."""
    rest = amount - sum(shares.values(), ZERO)
    result = dict(shares)
    if rest:
        result[NO_SOURCE] = result.get(NO_SOURCE, ZERO) + rest
    return result


def _late_weights(line: InvoiceLine) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    """A late-usage line's events by tenant and by partner (sums and counts only)."""
    metric = line.metric
    if metric is None or metric.source != Metric.Source.EVENTS:
        return {}, {}
    if metric.aggregation not in (Metric.Aggregation.SUM, Metric.Aggregation.COUNT):
        return {}, {}
    measure = Count("id") if metric.aggregation == Metric.Aggregation.COUNT else Sum("quantity")
    tenants: dict[str, Decimal] = {}
    partners: dict[str, Decimal] = {}
    rows = (
        invoice_line_events(line)
        .order_by()
        .values("tenant__public_id", "partner__public_id")
        .annotate(q=measure)
        .values_list("tenant__public_id", "partner__public_id", "q")
    )
    for tenant, partner, quantity in rows:
        tenants[tenant or NO_SOURCE] = tenants.get(tenant or NO_SOURCE, ZERO) + Decimal(quantity or 0)
        partners[partner or NO_SOURCE] = partners.get(partner or NO_SOURCE, ZERO) + Decimal(quantity or 0)
    return tenants, partners


def _split_by(amount: Decimal, weights: Mapping[str, Decimal], currency: str) -> dict[str, Decimal]:
    positive = {k: w for k, w in sorted(weights.items()) if w > 0}
    if not positive:
        return {NO_SOURCE: amount}
    return allocate(amount, positive, currency)


def _partner_keys(account: Account, period: Period, now: dt.datetime) -> list[str]:
    return list(
        partners_live_in_period(account_ids=[account.pk], period=period, now=now).values_list("public_id", flat=True)
    )


def _invoice_lines(invoice: Invoice, now: dt.datetime) -> list[_Line]:
    period = Period(invoice.period_start, invoice.period_end)
    currency = invoice.currency
    result = []
    partner_keys: list[str] | None = None
    for line in invoice.lines.select_related("metric", "invoice").order_by("position"):
        item = _Line(
            kind=line.kind, metric=line.metric, quantity=line.quantity, included=line.included, amount=line.amount
        )
        if item.is_usage and line.kind == InvoiceLine.Kind.USAGE:
            breakdown = line.breakdown or {}
            tenants = {s["tenant"]: Decimal(s["amount"]) for s in breakdown.get("tenants") or []}
            tenants = _remainder(line.amount, tenants)
            if any(v < 0 for v in tenants.values()):  # shares that do not add up (never expected): whole
                tenants = {NO_SOURCE: line.amount}
            item.tenants = tenants
            item.tenant_quantities = {s["tenant"]: Decimal(s["quantity"]) for s in breakdown.get("tenants") or []}
            if breakdown.get("partners"):
                item.partners = _remainder(
                    line.amount, {s["partner"]: Decimal(s["amount"]) for s in breakdown["partners"]}
                )
                item.partner_quantities = {s["partner"]: Decimal(s["quantity"]) for s in breakdown["partners"]}
            elif line.metric is not None and line.metric.source == Metric.Source.PARTNERS:
                if partner_keys is None:
                    partner_keys = _partner_keys(invoice.account, period, now)
                item.partners = _equal_split(line.amount, partner_keys, currency)
                item.partner_quantities = {key: Decimal(1) for key in partner_keys}
            else:
                item.partners = {NO_SOURCE: line.amount}
        elif item.is_usage:  # late usage
            tenant_weights, partner_weights = _late_weights(line)
            item.tenants = _split_by(line.amount, tenant_weights, currency)
            item.partners = _split_by(line.amount, partner_weights, currency)
            item.tenant_quantities = {k: v for k, v in tenant_weights.items() if k}
            item.partner_quantities = {k: v for k, v in partner_weights.items() if k}
        result.append(item)
    return result


def _estimate_lines(estimate: Estimate, now: dt.datetime) -> list[_Line]:
    currency = estimate.currency
    tenant_ids = dict(Tenant.objects.filter(account=estimate.account).values_list("id", "public_id"))
    partner_ids = dict(MasterPartner.objects.filter(account=estimate.account).values_list("id", "public_id"))
    partner_keys: list[str] | None = None

    def tenant_key(pk: object) -> str:
        return tenant_ids.get(pk, NO_SOURCE) if isinstance(pk, int) else NO_SOURCE

    def partner_key(pk: object) -> str:
        return partner_ids.get(pk, NO_SOURCE) if isinstance(pk, int) else NO_SOURCE

    result = []
    for line in estimate.lines:
        metric = line.metric or (line.charge.metric if line.charge is not None else None)
        item = _Line(kind=line.kind, metric=metric, quantity=line.quantity, included=line.included, amount=line.amount)
        if item.is_usage and line.kind == InvoiceLine.Kind.USAGE:
            usage = estimate.usage.get(line.metric_code or "")
            item.tenants = _fold(line_tenant_costs(line, usage, currency), tenant_key)
            quantities = line.by_tenant or (usage.by_tenant if usage else {})
            item.tenant_quantities = {tenant_key(t): q for t, q in quantities.items() if tenant_key(t)}
            if line.by_partner:
                item.partners = _remainder(line.amount, _fold(line_partner_costs(line, currency), partner_key))
                item.partner_quantities = {partner_key(p): q for p, q in line.by_partner.items() if partner_key(p)}
            elif metric is not None and metric.source == Metric.Source.PARTNERS:
                if partner_keys is None:
                    partner_keys = _partner_keys(estimate.account, estimate.period, now)
                item.partners = _equal_split(line.amount, partner_keys, currency)
                item.partner_quantities = {key: Decimal(1) for key in partner_keys}
            else:
                item.partners = {NO_SOURCE: line.amount}
        elif item.is_usage:
            item.tenants = {NO_SOURCE: line.amount}
            item.partners = {NO_SOURCE: line.amount}
        result.append(item)
    return result


def _fold(shares: Mapping[object, Decimal], key: Callable[[object], str]) -> dict[str, Decimal]:
    """Shares keyed by row id as public ids (the unattributed share, ``None``, is no source's)."""
    result: dict[str, Decimal] = {}
    for pk, amount in shares.items():
        result[key(pk)] = result.get(key(pk), ZERO) + amount
    return result


# --- Building a month ----------------------------------------------------------------------------------------


def _charges(lines: list[_Line]) -> list[ChargeCost]:
    """The month's charges: usage per metric (the costliest first), then fees per kind."""
    usage: dict[str, dict] = {}
    fees: dict[str, Decimal] = {}
    for line in lines:
        if line.is_usage and line.metric is not None:
            metric = line.metric
            entry = usage.setdefault(
                metric.code, {"metric": metric, "amount": ZERO, "quantity": None, "included": None, "late": ZERO}
            )
            entry["amount"] += line.amount
            if line.kind == InvoiceLine.Kind.LATE_USAGE:
                entry["late"] += line.quantity or ZERO
                continue
            monthly = metric.source != Metric.Source.EVENTS or metric.aggregation in MONTHLY_COUNT_AGGREGATIONS
            quantity = line.quantity or ZERO
            if entry["quantity"] is None:
                entry["quantity"] = quantity
            else:
                entry["quantity"] = max(entry["quantity"], quantity) if monthly else entry["quantity"] + quantity
            if line.included is not None:
                previous = entry["included"]
                entry["included"] = line.included if previous is None or monthly else previous + line.included
        elif line.kind in USAGE_KINDS:  # a usage line without a metric: counted with the fees
            fees[InvoiceLine.Kind.BASE_FEE] = fees.get(InvoiceLine.Kind.BASE_FEE, ZERO) + line.amount
        else:
            fees[line.kind] = fees.get(line.kind, ZERO) + line.amount
    result = [
        ChargeCost(
            key=code,
            label=entry["metric"].name,
            is_usage=True,
            amount=entry["amount"],
            quantity=(entry["quantity"] or ZERO) + entry["late"],
            included=entry["included"],
            metric=entry["metric"],
        )
        for code, entry in sorted(usage.items(), key=lambda kv: (-kv[1]["amount"], kv[1]["metric"].name))
    ]
    result += [
        ChargeCost(key=kind, label=FEE_LABELS.get(kind, kind), is_usage=False, amount=amount)
        for kind, amount in fees.items()
    ]
    return result


def _sources(
    lines: list[_Line], *, partners: bool, names: Mapping[str, str], currency: str, no_source_label: str
) -> list[SourceCost]:
    """Tenants (or partners): usage lines by their shares, other lines in proportion to the usage shares."""
    usage_lines = [line for line in lines if line.is_usage]
    other_lines = [line for line in lines if not line.is_usage]
    shares_of = [(line.partners if partners else line.tenants) or {NO_SOURCE: line.amount} for line in usage_lines]
    usage_shares, other_shares, _tax = allocate_document(
        usage=[(line.amount, shares) for line, shares in zip(usage_lines, shares_of, strict=True)],
        others=[line.amount for line in other_lines],
        tax=ZERO,
        currency=currency,
    )
    keys: set[str] = set()
    usage_total: dict[str, Decimal] = {}
    total: dict[str, Decimal] = {}
    by_charge: dict[str, dict[str, Decimal]] = {}
    quantities: dict[str, dict[str, Decimal]] = {}

    def key_of(name: str) -> str:  # a split without usage to follow puts the amount under "Unallocated"
        return NO_SOURCE if name == UNALLOCATED else name

    for line, shares in zip(usage_lines, usage_shares, strict=True):
        assert line.metric is not None  # usage lines have a metric (``_Line.is_usage``)
        for raw, amount in shares.items():
            key = key_of(raw)
            keys.add(key)
            usage_total[key] = usage_total.get(key, ZERO) + amount
            total[key] = total.get(key, ZERO) + amount
            charge = by_charge.setdefault(key, {})
            charge[line.metric.code] = charge.get(line.metric.code, ZERO) + amount
        for key, quantity in (line.partner_quantities if partners else line.tenant_quantities).items():
            keys.add(key)
            q = quantities.setdefault(key, {})
            q[line.metric.code] = q.get(line.metric.code, ZERO) + quantity
    for shares in other_shares:
        for raw, amount in shares.items():
            key = key_of(raw)
            keys.add(key)
            total[key] = total.get(key, ZERO) + amount
    rows = [
        SourceCost(
            public_id=key,
            name=names.get(key, "") if key else no_source_label,
            usage=round_money(usage_total.get(key, ZERO), currency),
            total=round_money(total.get(key, ZERO), currency),
            by_charge=by_charge.get(key, {}),
            quantities=quantities.get(key, {}),
        )
        for key in keys
    ]
    rows = [row for row in rows if row.public_id or row.total or row.usage]
    return sorted(rows, key=lambda r: (-r.total, r.public_id == NO_SOURCE, r.public_id))


def _features(*, account: Account, period: Period, line: ChargeCost | None, currency: str) -> list[FeatureCost]:
    """The month's premium features (see the module's docstring for which are paid for)."""
    metric = Metric.objects.filter(code=FEATURES_METRIC).first()
    if metric is None:
        return []
    month = period.start.date()
    counted = set(
        UsageUniqueValue.objects.filter(
            account=account, metric=metric, billing_month=month, usage_month=month
        ).values_list("value", flat=True)
    )
    use: dict[str, dict[str, int]] = {}
    rows = (
        UsageEvent.objects.filter(
            account=account,
            metric=metric,
            billing_month=month,
            is_late=False,
            timestamp__gte=period.start,
            timestamp__lt=period.end,
        )
        .annotate(feature=KeyTextTransform("feature", "properties"))
        .values("feature")
        .annotate(
            events=Count("id"),
            days=Count(TruncDay("timestamp", tzinfo=dt.UTC), distinct=True),
            tenants=Count("tenant_id", distinct=True),
        )
    )
    for row in rows:
        if row["feature"] is None:
            continue
        use[str(row["feature"])] = {"events": row["events"], "days": row["days"], "tenants": row["tenants"]}
    for feature in counted:
        use.setdefault(feature, {"events": 0, "days": 0, "tenants": 0})
    ranked = sorted(use, key=lambda f: (-use[f]["events"], -use[f]["days"], f))
    paid: list[str] = []
    amount = line.amount if line is not None else ZERO
    if line is not None and line.included is not None and line.quantity is not None:
        paid_count = int(max(line.quantity - line.included, ZERO).to_integral_value(rounding="ROUND_CEILING"))
        paid = ranked[len(ranked) - min(paid_count, len(ranked)) :] if paid_count else []
    elif line is not None and line.included is None and amount:
        paid = ranked  # priced without an allowance (not the catalogue's way): every feature is paid for
    costs = allocate(amount, {f: Decimal(1) for f in sorted(paid)}, currency) if paid and amount else {}
    return [
        FeatureCost(
            feature=f,
            events=use[f]["events"],
            days=use[f]["days"],
            tenants=use[f]["tenants"],
            paid=f in paid,
            cost=costs.get(f, ZERO) if f in paid else ZERO,
            months_paid=1 if f in paid else 0,
        )
        for f in sorted(use, key=lambda f: (f not in paid, f))
    ]


def _unit_costs(charges: list[ChargeCost], subtotal: Decimal) -> list[UnitCost]:
    result = []
    for code, (label, per) in UNIT_COSTS.items():
        charge = next((c for c in charges if c.key == code), None)
        if charge is None or not charge.quantity:
            continue
        result.append(
            UnitCost(
                metric_code=code,
                label=label,
                per=per,
                quantity=charge.quantity,
                amount=charge.amount,
                metric_cost=_per_unit(charge.amount, charge.quantity, per),
                all_in=_per_unit(subtotal, charge.quantity, per),
            )
        )
    return result


def _month_document(account: Account, period: Period, now: dt.datetime) -> tuple[str, Invoice | None]:
    invoices = Invoice.objects.filter(account=account, period_start=period.start)
    invoice = invoices.filter(status__in=ALLOCATED_STATUSES).first()
    if invoice is not None:
        return INVOICED, invoice
    draft = invoices.filter(status=Invoice.Status.DRAFT).first()
    if draft is not None:
        return DRAFT, draft
    if now in period:
        return ESTIMATE, None
    return NOT_INVOICED, None


def month_cost(*, account: Account, month: dt.date, now: dt.datetime | None = None) -> MonthCost:
    """One month of ``account``: its invoice (or the running month's estimate) by charge, tenant, partner and
    premium feature, with its unit costs (``change`` is filled by ``cost_analysis``)."""
    now = now or clock.now()
    period = month_period(month.year, month.month)
    status, invoice = _month_document(account, period, now)
    currency = account.currency
    number = None
    credited = tax = ZERO
    if invoice is not None:
        currency = invoice.currency
        lines = _invoice_lines(invoice, now)
        subtotal, tax, total = invoice.subtotal, invoice.tax, invoice.total
        number = invoice.number
        credited = (
            CreditNote.objects.filter(invoice=invoice, status=CreditNote.Status.ISSUED).aggregate(s=Sum("subtotal"))[
                "s"
            ]
            or ZERO
        )
        names = tenant_names(invoice)
    elif status == ESTIMATE:
        estimate = charges_estimate(account=account, period=period, now=now)
        lines = _estimate_lines(estimate, now)
        subtotal, tax, total = estimate.subtotal, estimate.tax, estimate.total
        names = dict(Tenant.objects.filter(account=account).values_list("public_id", "name"))
    else:
        lines, subtotal, total = [], ZERO, ZERO
        names = {}
    partner_names = dict(MasterPartner.objects.filter(account=account).values_list("public_id", "name"))
    charges = _charges(lines)
    return MonthCost(
        month=period.start.date(),
        period=period,
        status=status,
        invoice_number=number,
        currency=currency,
        subtotal=subtotal,
        tax=tax,
        total=total,
        credited=credited,
        charges=charges,
        tenants=_sources(lines, partners=False, names=names, currency=currency, no_source_label=NO_TENANT_LABEL),
        partners=(
            _sources(lines, partners=True, names=partner_names, currency=currency, no_source_label=NO_PARTNER_LABEL)
            if any(line.partners and set(line.partners) != {NO_SOURCE} for line in lines)
            else []
        ),
        features=_features(
            account=account,
            period=period,
            line=next((c for c in charges if c.key == FEATURES_METRIC), None),
            currency=currency,
        ),
        unit_costs=_unit_costs(charges, subtotal),
    )


# --- Month over month ----------------------------------------------------------------------------------------


def _signed(amount: Decimal, currency: str) -> str:
    sign = "+" if amount > 0 else "−" if amount < 0 else "±"
    return f"{sign}{format_money(abs(amount), currency)}"


def month_change(previous: MonthCost, current: MonthCost) -> MonthChange:
    """What moved from ``previous`` to ``current``: each charge's change with the tenant whose share of it
    moved most, each tenant's change, largest first, and a sentence saying so."""
    currency = current.currency
    delta = current.subtotal - previous.subtotal
    before = {c.key: c for c in previous.charges}
    after = {c.key: c for c in current.charges}
    tenants_before = {t.public_id: t for t in previous.tenants}
    tenants_after = {t.public_id: t for t in current.tenants}
    tenant_labels = {t.public_id: t.label for t in (*previous.tenants, *current.tenants)}

    charge_moves = []
    for key in list(before) + [k for k in after if k not in before]:
        old, new = before.get(key), after.get(key)
        moved = (new.amount if new else ZERO) - (old.amount if old else ZERO)
        if not moved:
            continue
        label = (new or old).label  # type: ignore[union-attr]  # one of them exists: the key came from them
        top = None
        if (new or old).is_usage:  # type: ignore[union-attr]
            tenant_deltas = {
                t: tenants_after.get(t, _EMPTY).by_charge.get(key, ZERO)
                - tenants_before.get(t, _EMPTY).by_charge.get(key, ZERO)
                for t in set(tenants_before) | set(tenants_after)
            }
            tenant_deltas = {t: d for t, d in tenant_deltas.items() if d}
            if tenant_deltas:
                best = max(tenant_deltas, key=lambda t: (abs(tenant_deltas[t]), t != NO_SOURCE, t))
                top = Move(key=best, label=tenant_labels.get(best, best), delta=tenant_deltas[best])
        charge_moves.append(ChargeMove(key=key, label=label, delta=moved, tenant=top))
    charge_moves.sort(key=lambda m: (-abs(m.delta), m.key))

    tenant_moves = []
    for key in set(tenants_before) | set(tenants_after):
        moved = tenants_after.get(key, _EMPTY).total - tenants_before.get(key, _EMPTY).total
        if moved:
            tenant_moves.append(Move(key=key, label=tenant_labels.get(key, key), delta=moved))
    tenant_moves.sort(key=lambda m: (-abs(m.delta), m.key))

    return MonthChange(
        previous_month=previous.month,
        previous_subtotal=previous.subtotal,
        delta=delta,
        percent=percent(delta, previous.subtotal),
        charges=charge_moves,
        tenants=tenant_moves,
        explanation=_explain(previous, current, delta, charge_moves, currency),
    )


_EMPTY = SourceCost(public_id="", name="", usage=ZERO, total=ZERO)


def _explain(previous: MonthCost, current: MonthCost, delta: Decimal, moves: list[ChargeMove], currency: str) -> str:
    """E.g. "Up USD 120.00 (+12.0 %) from October 2026: Messages +USD 120.00, mostly Foo (ten_foo)
    +USD 100.00; Storage −USD 5.00." A tenant is "mostly" behind a charge's change when its share moved at
    least half as much, the same way; otherwise the sentence says the change was "led by" it."""
    month = f"{previous.month:%B %Y}"
    if not delta and not moves:
        return f"Unchanged from {month}."
    change = percent(delta, previous.subtotal)
    head = (
        f"Unchanged in total from {month}"
        if not delta
        else f"{'Up' if delta > 0 else 'Down'} {format_money(abs(delta), currency)}"
        + (f" ({'+' if delta > 0 else '−'}{abs(change)} %)" if change is not None else "")
        + f" from {month}"
    )
    parts = []
    for move in moves[:3]:
        text = f"{move.label} {_signed(move.delta, currency)}"
        if move.tenant is not None:
            same_way = (move.tenant.delta > 0) == (move.delta > 0)
            word = "mostly" if same_way and abs(move.tenant.delta) * 2 >= abs(move.delta) else "led by"
            text += f", {word} {move.tenant.label} {_signed(move.tenant.delta, currency)}"
        parts.append(text)
    return head + (": " + "; ".join(parts) if parts else "") + "."


# --- A range -------------------------------------------------------------------------------------------------


def _sum_charges(months: list[MonthCost]) -> list[ChargeCost]:
    merged: dict[str, ChargeCost] = {}
    for month in months:
        for charge in month.charges:
            old = merged.get(charge.key)
            if old is None:
                merged[charge.key] = ChargeCost(
                    key=charge.key,
                    label=charge.label,
                    is_usage=charge.is_usage,
                    amount=charge.amount,
                    quantity=charge.quantity,
                    included=charge.included,
                    metric=charge.metric,
                )
                continue
            merged[charge.key] = ChargeCost(
                key=charge.key,
                label=charge.label,
                is_usage=charge.is_usage,
                amount=old.amount + charge.amount,
                quantity=_add_optional(old.quantity, charge.quantity),
                included=_add_optional(old.included, charge.included),
                metric=charge.metric,
            )
    usage = sorted((c for c in merged.values() if c.is_usage), key=lambda c: (-c.amount, c.label))
    fees = [c for c in merged.values() if not c.is_usage]
    return usage + fees


def _add_optional(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    if a is None or b is None:
        return a if b is None else b
    return a + b


def _sum_sources(months: list[MonthCost], *, partners: bool) -> list[SourceCost]:
    merged: dict[str, SourceCost] = {}
    for month in months:
        for row in month.partners if partners else month.tenants:
            old = merged.get(row.public_id)
            if old is None:
                merged[row.public_id] = row
                continue
            merged[row.public_id] = SourceCost(
                public_id=row.public_id,
                name=old.name or row.name,
                usage=old.usage + row.usage,
                total=old.total + row.total,
                by_charge=_sum_maps(old.by_charge, row.by_charge),
                quantities=_sum_maps(old.quantities, row.quantities),
            )
    return sorted(merged.values(), key=lambda r: (-r.total, r.public_id == NO_SOURCE, r.public_id))


def _sum_maps(a: Mapping[str, Decimal], b: Mapping[str, Decimal]) -> dict[str, Decimal]:
    result = dict(a)
    for key, value in b.items():
        result[key] = result.get(key, ZERO) + value
    return result


def _sum_features(months: list[MonthCost]) -> list[FeatureCost]:
    merged: dict[str, FeatureCost] = {}
    for month in months:
        for row in month.features:
            old = merged.get(row.feature)
            if old is None:
                merged[row.feature] = row
                continue
            merged[row.feature] = FeatureCost(
                feature=row.feature,
                events=old.events + row.events,
                days=old.days + row.days,
                tenants=max(old.tenants, row.tenants),
                paid=old.paid or row.paid,
                cost=old.cost + row.cost,
                months_paid=old.months_paid + row.months_paid,
            )
    return sorted(merged.values(), key=lambda f: (not f.paid, -f.cost, f.feature))


def cost_analysis(
    *, account: Account, start_month: dt.date, end_month: dt.date, now: dt.datetime | None = None
) -> CostAnalysis:
    """``account``'s cost for every month from ``start_month`` to ``end_month`` (both included; the running
    month as an estimate) and for the range. Each month's ``change`` compares it with the month before (the
    month before the range too, for its first month, when that month has an invoice). Raises ValueError for a
    range ``range_error`` refuses."""
    now = now or clock.now()
    start_month, end_month = first_of(start_month), first_of(end_month)
    problem = range_error(start_month=start_month, end_month=end_month, now=now)
    if problem is not None:
        raise ValueError(problem[1])
    baseline = month_cost(account=account, month=add_months(start_month, -1), now=now)
    months: list[MonthCost] = []
    previous: MonthCost | None = baseline if baseline.status != NOT_INVOICED else None
    for month in months_between(start_month, end_month):
        current = month_cost(account=account, month=month, now=now)
        if previous is not None:
            current = _with_change(current, month_change(previous, current))
        months.append(current)
        previous = current
    currency = months[-1].currency if months else account.currency
    subtotal = sum((m.subtotal for m in months), ZERO)
    charges = _sum_charges(months)
    return CostAnalysis(
        account=account,
        start_month=start_month,
        end_month=end_month,
        currency=currency,
        months=months,
        subtotal=subtotal,
        tax=sum((m.tax for m in months), ZERO),
        total=sum((m.total for m in months), ZERO),
        credited=sum((m.credited for m in months), ZERO),
        charges=charges,
        tenants=_sum_sources(months, partners=False),
        partners=_sum_sources(months, partners=True),
        features=_sum_features(months),
        unit_costs=_unit_costs(charges, subtotal),
    )


def _with_change(month: MonthCost, change: MonthChange) -> MonthCost:
    return replace(month, change=change)
