"""The pricing engine: the charges an account's invoice would show for a period.

``charges_many`` is the one place that turns usage and plans into lines and totals; the usage API shows
its figures as estimated charges and the billing run writes them as invoices, so both agree to the cent.
The arithmetic itself is in ``billing.rating.tiers`` (pure functions); this module loads what it needs, a
fixed number of queries for any number of accounts.

Rules (see docs/billing.md):
- The period is a calendar month in UTC, ``[start, end)``. It is cut into *segments*: spans with one plan
  version in force, and a trial split off (nothing is charged during a trial).
- Base fee: each charged segment pays ``base_fee × its share of the period`` (exact, by the microsecond).
- Yearly versions (``billing_interval == "year"``, ``base_fee`` per year): billed in advance, once per
  subscription year. Year ``k`` is ``[anchor + k years, anchor + k + 1 years)``, the anchor being the trial's
  end, or the start without a trial. The month a year starts in bills it whole (a ``base_fee`` line spanning
  the year), with the annual discount as its own ``discount`` line, ``−round_money(base_fee × pct / 100)``;
  other months bill no base fee. A yearly subscription ended inside a paid year by a plan change (another
  subscription of the account starts at its ``ended_at``; a cancellation runs to the year's end instead) is
  credited on the month holding ``ended_at``: ``−round_money((base_fee − the year's discount) × unused
  time / the year)``, a negative ``base_fee`` line spanning the unused time. Usage is billed monthly as for
  any plan; the monthly minimum commitment is not topped up (yearly commitments are the contract's).
- Accumulating usage (sums, counts, GB-months) is measured inside each segment and priced by the plan in
  force then, against the included quantity prorated to the segment's share.
- Monthly counts (active users, features, tenants, master partners, maxima) are counted over the whole
  month; each charged segment's plan charges its share of the month for them.
- Late usage (events for an already invoiced month, accepted in the grace window) is billed on the next
  invoice as its own lines: the difference between pricing the month with and without it, under the
  plan in force then.
- Discount on a segment's usage; minimum commitment topped up per segment (prorated); tax on the subtotal
  unless reverse charge. Every line and the tax are rounded once, half up (``round_money``).
- An account under a contract: its volume-discount tiers, committed minimum, early-termination charge and
  prepaid credits add lines after the segments' lines (``billing.rating.contracts``). An annual discount
  is handed to it as part of the base fee: spend, but nothing prepaid credits pay for.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from fractions import Fraction
from typing import Any

from django.db.models import Q

from accounts.models import Account
from billing.models import Invoice, InvoiceLine, PlanCharge, PlanVersion, PrepaidCredit, Subscription
from billing.rating.contracts import ContractTerms, contract_lines, contracts_load
from billing.rating.tiers import ChargeTerms, Tier, overage_amount, prorate
from common.money import round_money
from common.periods import Period, month_period
from usage.models import Metric
from usage.selectors import MetricUsage, period_usage_cuts_many, period_usage_many

ZERO = Decimal(0)
# Counted over the whole month, not accumulated over time.
MONTHLY_COUNTS = ("unique_count", "max")


@dataclass
class Segment:
    """A span of the period with one plan version in force; ``charged`` is False during a trial."""

    start: dt.datetime
    end: dt.datetime
    subscription: Subscription
    version: PlanVersion
    charged: bool
    fraction: Fraction


@dataclass
class ChargeLine:
    kind: str  # base_fee | usage | late_usage | discount | minimum_commitment | prepaid_credit | early_termination
    description: str
    amount: Decimal
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    metric_code: str | None = None
    quantity: Decimal | None = None
    included: Decimal | None = None
    billable: Decimal | None = None
    unit_price: Decimal | None = None
    charge: PlanCharge | None = None
    metric: Metric | None = None  # the metric billed (late usage may have no charge)
    plan_version: PlanVersion | None = None
    usage_month: dt.date | None = None
    by_tenant: dict[int, Decimal] = field(default_factory=dict)
    by_partner: dict[int, Decimal] = field(default_factory=dict)
    # A charged usage line's pricing: its exact amount is ``overage_amount(terms, quantity) × share`` (the
    # segment's share of the month for monthly counts, else 1). Contract volume discounts price with it.
    terms: ChargeTerms | None = None
    share: Fraction = Fraction(1)
    prepaid_credit: PrepaidCredit | None = None  # prepaid credit lines: the credit drawn on
    # An annual discount: a discount on the (yearly) base fee, not on usage.
    of_base_fee: bool = False


@dataclass
class Estimate:
    account: Account
    period: Period
    currency: str
    subscription: Subscription | None
    usage: dict[str, MetricUsage]
    segments: list[Segment] = field(default_factory=list)
    lines: list[ChargeLine] = field(default_factory=list)
    subtotal: Decimal = ZERO
    discount: Decimal = ZERO
    tax: Decimal = ZERO
    total: Decimal = ZERO
    contract: ContractTerms | None = None  # the contract in force, if any

    def line_for(self, metric_code: str) -> ChargeLine | None:
        return next((line for line in self.lines if line.metric_code == metric_code and line.kind == "usage"), None)

    def usage_lines(self, metric_code: str) -> list[ChargeLine]:
        return [line for line in self.lines if line.metric_code == metric_code and line.kind == "usage"]


def terms_of(charge: PlanCharge, *, included_fraction: Fraction | None = None) -> ChargeTerms:
    included = charge.included_quantity
    if included is not None and included_fraction is not None and included_fraction != 1:
        included = prorate(included, included_fraction)
    return ChargeTerms(
        pricing_model=charge.pricing_model,
        included=included,
        price_unit_size=charge.metric.price_unit_size,
        unit_price=charge.unit_price,
        package_size=charge.package_size,
        package_price=charge.package_price,
        tiers=[Tier(t.lower_bound, t.upper_bound, t.unit_price, t.flat_fee) for t in charge.tiers.all()],
    )


def _subscriptions(account_ids: list[int], period: Period) -> dict[int, list[Subscription]]:
    rows = (
        Subscription.objects.filter(account_id__in=account_ids, started_at__lt=period.end)
        # One ended at the period's start cuts no segment, but may be owed a yearly credit this month.
        .exclude(ended_at__lt=period.start)
        .select_related("plan_version__plan")
        .prefetch_related("plan_version__charges__metric", "plan_version__charges__tiers")
        .order_by("account_id", "started_at")
    )
    result: dict[int, list[Subscription]] = defaultdict(list)
    for subscription in rows:
        result[subscription.account_id].append(subscription)
    return result


def plan_segments(subscriptions: list[Subscription], period: Period) -> list[Segment]:
    """Cut ``period`` by the subscriptions overlapping it (in start order) and their trials."""
    segments = []
    for subscription in subscriptions:
        start = max(subscription.started_at, period.start)
        end = min(subscription.ended_at or period.end, period.end)
        cuts = [start, end]
        trial_end = subscription.trial_end
        if trial_end is not None and start < trial_end < end:
            cuts.insert(1, trial_end)
        for a, b in zip(cuts, cuts[1:], strict=False):
            if a >= b:
                continue
            charged = trial_end is None or a >= trial_end
            segments.append(
                Segment(
                    a, b, subscription, subscription.plan_version, charged, period.fraction_covered_by(Period(a, b))
                )
            )
    return segments


def _subtract(total: MetricUsage, before: MetricUsage) -> MetricUsage:
    def minus(x: dict, y: dict) -> dict:
        keys = set(x) | set(y)
        return {k: x.get(k, ZERO) - y.get(k, ZERO) for k in keys if x.get(k, ZERO) - y.get(k, ZERO)}

    return MetricUsage(
        metric=total.metric,
        quantity=total.quantity - before.quantity,
        by_tenant=minus(total.by_tenant, before.by_tenant),
        by_partner=minus(total.by_partner, before.by_partner),
    )


def _regular(usage: MetricUsage) -> MetricUsage:
    """The usage of the month itself, late usage from earlier months taken out."""
    if not usage.late_quantity:
        return usage
    if usage.metric.aggregation == "unique_count":  # its per-tenant counts are the month's own already
        return MetricUsage(
            metric=usage.metric, quantity=usage.quantity - usage.late_quantity, by_tenant=dict(usage.by_tenant)
        )
    share = (usage.quantity - usage.late_quantity) / usage.quantity if usage.quantity else ZERO
    return MetricUsage(
        metric=usage.metric,
        quantity=usage.quantity - usage.late_quantity,
        # Late usage is rare and small: tenants and partners keep their month's share of the rest.
        by_tenant={t: q * share for t, q in usage.by_tenant.items()},
        by_partner={p: q * share for p, q in usage.by_partner.items()},
    )


def _day(moment: dt.date) -> str:
    return f"{moment:%b} {moment.day}"


def _span_label(segment: Segment, period: Period) -> str:
    if segment.start == period.start and segment.end == period.end:
        return ""
    last = Period(segment.start, segment.end).last_day
    return f" ({_day(segment.start)}–{_day(last)})"


def _date(moment: dt.date) -> str:
    return f"{moment:%b} {moment.day}, {moment.year}"


def _dates(span: Period) -> str:
    """``Jan 1, 2027 – Dec 31, 2027``: the first and last UTC days of ``span``."""
    return f"{_date(span.start.astimezone(dt.UTC).date())} – {_date(span.last_day)}"


def is_yearly(version: PlanVersion) -> bool:
    return version.billing_interval == PlanVersion.Interval.YEAR


def add_years(moment: dt.datetime, years: int) -> dt.datetime:
    """The same moment ``years`` later (Feb 29 becomes Feb 28 in a year without it)."""
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:
        return moment.replace(year=moment.year + years, day=28)


def subscription_year(subscription: Subscription, at: dt.datetime) -> Period | None:
    """The subscription year holding ``at``: ``[anchor + k years, anchor + k + 1 years)``, the anchor being the
    trial's end (the start, without a trial); None before the anchor. Each year is counted from the anchor
    itself, so a year from Feb 29 ends on Feb 28 and the one after a leap year's ends on Feb 29 again."""
    anchor = subscription.trial_end or subscription.started_at
    if at < anchor:
        return None
    years = max(at.year - anchor.year - 1, 0)
    while add_years(anchor, years + 1) <= at:
        years += 1
    return Period(add_years(anchor, years), add_years(anchor, years + 1))


def _year_starting_in(subscription: Subscription, span: Period) -> Period | None:
    """The subscription year that starts inside ``span`` (at most one: a span is never longer than a month)."""
    anchor = subscription.trial_end or subscription.started_at
    if anchor >= span.end:
        return None
    year = subscription_year(subscription, max(span.start, anchor))
    assert year is not None  # at or after the anchor
    if year.start < span.start:
        year = subscription_year(subscription, year.end)
        assert year is not None
    return year if year.start < span.end else None


def _year_lines(segment: Segment, year: Period, currency: str) -> list[ChargeLine]:
    """A yearly version's fee for ``year``, billed whole in advance, and its annual discount."""
    version = segment.version
    fee = version.base_fee or ZERO
    name = version.plan.name
    lines = [
        ChargeLine(
            kind="base_fee",
            description=f"{name} base fee, {_dates(year)}",
            amount=round_money(fee, currency),
            start=year.start,
            end=year.end,
            plan_version=version,
            quantity=Decimal(1),
            unit_price=fee,
        )
    ]
    percent = version.annual_discount_percent
    if percent:
        lines.append(
            ChargeLine(
                kind="discount",
                description=f"Annual plan discount {percent.normalize():f}% on the base fee",
                amount=-round_money(fee * percent / 100, currency),
                start=year.start,
                end=year.end,
                plan_version=version,
                of_base_fee=True,
            )
        )
    return lines


def _unused_year_credit(
    subscription: Subscription, subscriptions: Sequence[Subscription], period: Period, currency: str
) -> ChargeLine | None:
    """The credit for the unused part of a paid year, when a plan change (another subscription of the account
    starting at this one's end) ends a yearly subscription inside it, on the month holding its end. A
    cancellation runs to the year's end: it has no successor, and no credit."""
    version = subscription.plan_version
    ended = subscription.ended_at
    if not is_yearly(version) or not version.base_fee or ended is None or ended not in period:
        return None
    if not any(other is not subscription and other.started_at == ended for other in subscriptions):
        return None
    year = subscription_year(subscription, ended)
    if year is None or year.start == ended:  # ended before its first year, or exactly at a year's end
        return None
    fee = version.base_fee
    paid = fee - round_money(fee * version.annual_discount_percent / 100, currency)
    unused = Period(ended, year.end)
    amount = round_money(prorate(paid, year.fraction_covered_by(unused)), currency)
    if not amount:
        return None
    return ChargeLine(
        kind="base_fee",
        description=f"Unused time on {version.plan.name}, {_dates(unused)}",
        amount=-amount,
        start=unused.start,
        end=unused.end,
        plan_version=version,
    )


def _late_terms(
    prior: dict[tuple[int, dt.date, str], tuple[Decimal, PlanCharge]],
    account_id: int,
    month: dt.date,
    code: str,
    fallback: PlanCharge | None,
) -> tuple[Decimal, PlanCharge | None]:
    billed, charge = prior.get((account_id, month, code), (ZERO, None))
    return billed, charge or fallback


def rate(
    *,
    account: Account,
    period: Period,
    segments: list[Segment],
    usage: dict[str, MetricUsage],
    segment_usage: dict[int, dict[str, MetricUsage]],
    prior: dict[tuple[int, dt.date, str], tuple[Decimal, PlanCharge]],
    contract: ContractTerms | None = None,
    subscriptions: Sequence[Subscription] | None = None,
) -> Estimate:
    """Price ``usage`` under ``segments`` (and the account's ``contract``, if it has one): pure arithmetic
    over loaded rows (no queries). ``subscriptions``: the account's subscriptions the segments were cut from,
    with one ended at the period's start (its unused yearly time is credited this month); by default, the
    segments' own."""
    currency = account.currency
    estimate = Estimate(
        account=account,
        period=period,
        currency=currency,
        subscription=segments[-1].subscription if segments else None,
        usage=usage,
        segments=segments,
    )
    lines = estimate.lines
    any_charged = any(s.charged for s in segments)
    if subscriptions is None:  # each once, by identity: an unsaved subscription (a preview's) has no pk
        subscriptions = []
        for segment in segments:
            if not any(s is segment.subscription for s in subscriptions):
                subscriptions.append(segment.subscription)
    credits = [
        (s, credit) for s in subscriptions if (credit := _unused_year_credit(s, subscriptions, period, currency))
    ]
    for index, segment in enumerate(segments):
        version = segment.version
        label = _span_label(segment, period)
        seg_lines: list[ChargeLine] = []
        if segment.charged and version.base_fee and is_yearly(version):
            year = _year_starting_in(segment.subscription, Period(segment.start, segment.end))
            if year is not None:
                year_lines = _year_lines(segment, year, currency)
                seg_lines.extend(year_lines)
                estimate.discount -= sum((line.amount for line in year_lines if line.kind == "discount"), ZERO)
        elif segment.charged and version.base_fee:
            description = f"{version.plan.name} base fee{label}"
            seg_lines.append(
                ChargeLine(
                    kind="base_fee",
                    description=description,
                    amount=round_money(prorate(version.base_fee, segment.fraction), currency),
                    start=segment.start,
                    end=segment.end,
                    plan_version=version,
                    quantity=Decimal(1) if segment.fraction == 1 else None,
                    unit_price=version.base_fee,
                )
            )
        if segment.end == segment.subscription.ended_at:
            seg_lines.extend(credit for s, credit in credits if s is segment.subscription)
        usage_total = ZERO
        for charge in version.charges.all():
            code = charge.metric.code
            whole = usage.get(code)
            if whole is None:
                continue
            monthly = charge.metric.source != "events" or charge.metric.aggregation in MONTHLY_COUNTS
            if not segment.charged and (monthly and any_charged):
                continue  # counted once, by the charged segments
            if monthly:
                measured = _regular(whole)
                terms = terms_of(charge)
                exact = (
                    overage_amount(terms, measured.quantity)
                    * Decimal(segment.fraction.numerator)
                    / Decimal(segment.fraction.denominator)
                )
                included = terms.included
            else:
                measured = segment_usage.get(index, {}).get(code) or _regular(whole)
                terms = terms_of(charge, included_fraction=segment.fraction)
                exact = overage_amount(terms, measured.quantity)
                included = terms.included
            amount = round_money(exact, currency) if segment.charged else ZERO
            billable = ZERO if included is None else max(measured.quantity - included, ZERO)
            description = charge.metric.name + label
            if not segment.charged:
                description += " – free trial"
            seg_lines.append(
                ChargeLine(
                    kind="usage",
                    description=description,
                    amount=amount,
                    start=segment.start,
                    end=segment.end,
                    metric_code=code,
                    quantity=measured.quantity,
                    included=included,
                    billable=billable,
                    unit_price=charge.unit_price if charge.pricing_model == "per_unit" else None,
                    charge=charge,
                    plan_version=version,
                    by_tenant=measured.by_tenant,
                    by_partner=measured.by_partner,
                    terms=terms if segment.charged else None,
                    share=segment.fraction if monthly else Fraction(1),
                )
            )
            usage_total += amount
        if segment.charged and version.discount_percent and usage_total:
            discount = round_money(usage_total * version.discount_percent / 100, currency)
            seg_lines.append(
                ChargeLine(
                    kind="discount",
                    amount=-discount,
                    description=f"Volume discount {version.discount_percent.normalize():f}% on usage{label}",
                    start=segment.start,
                    end=segment.end,
                    plan_version=version,
                )
            )
            estimate.discount += discount
        seg_subtotal = sum((line.amount for line in seg_lines), ZERO)
        # Yearly versions: no monthly top-up (a yearly commitment is a contract's).
        if segment.charged and version.minimum_commitment and not is_yearly(version):
            commitment = round_money(prorate(version.minimum_commitment, segment.fraction), currency)
            if seg_subtotal < commitment:
                seg_lines.append(
                    ChargeLine(
                        kind="minimum_commitment",
                        amount=commitment - seg_subtotal,
                        description=f"Minimum commitment top-up to {commitment:,f} {currency}{label}",
                        start=segment.start,
                        end=segment.end,
                        plan_version=version,
                    )
                )
        lines.extend(seg_lines)
    # A yearly subscription ended at the period's start has no segment: its credit goes first.
    lines[0:0] = [credit for s, credit in credits if not any(seg.subscription is s for seg in segments)]
    contract_at = len(lines)  # the contract's lines go after the segments' lines, before late usage

    # Late usage from earlier, already invoiced months: priced as the difference it makes to that month.
    fallback = {c.metric.code: c for c in segments[-1].version.charges.all()} if segments else {}
    for code, metric_usage in usage.items():
        for month, late in sorted(metric_usage.late_by_month.items()):
            if not late:
                continue
            billed, charge = _late_terms(prior, account.pk, month, code, fallback.get(code))
            amount = ZERO
            if charge is not None:
                terms = terms_of(charge)
                amount = round_money(overage_amount(terms, billed + late) - overage_amount(terms, billed), currency)
            month_start = month_period(month.year, month.month).start
            lines.append(
                ChargeLine(
                    kind="late_usage",
                    metric=metric_usage.metric,
                    description=f"Late usage: {metric_usage.metric.name}, {month_start:%B %Y}",
                    amount=amount,
                    start=month_start,
                    end=period.start,
                    metric_code=code,
                    quantity=late,
                    billable=late,
                    charge=charge,
                    plan_version=charge.plan_version if charge is not None else None,
                    usage_month=month,
                )
            )
    if contract is not None:
        estimate.contract = contract
        # To the contract an annual discount is part of the base fee: spend, not a usage charge to prepay.
        priced = [replace(line, kind="base_fee") if line.of_base_fee else line for line in lines]
        added = contract_lines(terms=contract, period=period, lines=priced, currency=currency)
        lines[contract_at:contract_at] = [
            ChargeLine(
                kind=line.kind,
                description=line.description,
                amount=line.amount,
                start=line.start,
                end=line.end,
                plan_version=line.plan_version,
                prepaid_credit=line.prepaid_credit,
            )
            for line in added
        ]
        estimate.discount -= sum((line.amount for line in added if line.kind == "discount"), ZERO)
    estimate.subtotal = round_money(sum((line.amount for line in lines), ZERO), currency)
    rate_percent = ZERO if account.tax_reverse_charge else account.tax_rate
    estimate.tax = round_money(estimate.subtotal * rate_percent / 100, currency)
    estimate.total = estimate.subtotal + estimate.tax
    return estimate


def _prior_lines(account_ids: list[int], months: set[dt.date]) -> dict[tuple[int, dt.date, str], tuple[Decimal, Any]]:
    """For late usage: what has been billed so far for each earlier month and metric (its invoice's usage
    lines, plus late lines of later invoices), and under which charge."""
    result: dict[tuple[int, dt.date, str], tuple[Decimal, Any]] = {}
    if not months:
        return result
    starts = [month_period(m.year, m.month).start for m in months]
    lines = list(
        InvoiceLine.objects.filter(invoice__account_id__in=account_ids, metric__isnull=False)
        .filter(
            Q(kind=InvoiceLine.Kind.USAGE, invoice__period_start__in=starts)
            | Q(kind=InvoiceLine.Kind.LATE_USAGE, usage_month__in=months)
        )
        .exclude(invoice__status=Invoice.Status.VOID)
        .select_related("invoice", "metric")
        .order_by("invoice__period_start", "invoice_id", "position")
    )
    charges: dict[tuple[int | None, int | None], PlanCharge] = {
        (c.plan_version_id, c.metric_id): c
        for c in PlanCharge.objects.filter(
            plan_version_id__in={line.plan_version_id for line in lines if line.plan_version_id}
        ).prefetch_related("tiers", "metric", "plan_version")
    }
    for line in lines:
        metric = line.metric
        assert metric is not None  # filtered above: metric__isnull=False
        late = line.kind == InvoiceLine.Kind.LATE_USAGE
        month = line.usage_month if late else line.invoice.period_start.date()
        if month is None:  # a late line always names its month; nothing to add up without one
            continue
        key = (line.invoice.account_id, month, metric.code)
        billed, charge = result.get(key, (ZERO, None))
        quantity = line.quantity or ZERO
        monthly = metric.source != "events" or metric.aggregation in MONTHLY_COUNTS
        # A monthly count is the whole month's on every segment's line: counted once, not per segment.
        billed = billed + quantity if late or not monthly else max(billed, quantity)
        result[key] = (billed, charges.get((line.plan_version_id, line.metric_id)) or charge)
    return result


def charges_many(
    *,
    accounts: list[Account],
    period: Period,
    now: dt.datetime,
    subscriptions: dict[int, list[Subscription]] | None = None,
    usage: dict[int, dict[str, MetricUsage]] | None = None,
) -> dict[int, Estimate]:
    """What each account's invoice for ``period`` would show if the period closed at ``now``.

    ``subscriptions`` (account pk → subscriptions in start order, saved or not) rates those accounts as if
    they had been on these plans instead of their own: a plan change's preview, or what the account's usage
    would have cost on another plan. The same arithmetic writes the invoices. ``usage``: the accounts'
    ``period_usage_many`` for ``period`` at ``now``, when the caller has read it already (re-rating)."""
    ids = [a.pk for a in accounts]
    if usage is None:
        usage = period_usage_many(account_ids=ids, period=period, now=now)
    loaded = _subscriptions([a for a in ids if a not in (subscriptions or {})], period)
    subscriptions = {**loaded, **(subscriptions or {})}
    segments = {a: plan_segments(subscriptions.get(a, []), period) for a in ids}

    # Accumulating usage per segment, where the period has more than one (plan change, trial end).
    cuts: dict[dt.datetime, list[int]] = defaultdict(list)
    for account_id, segs in segments.items():
        if len(segs) > 1 or (segs and (segs[0].start != period.start or segs[0].end != period.end)):
            for segment in segs:
                for moment in (segment.start, segment.end):
                    if period.start < moment < period.end and account_id not in cuts[moment]:
                        cuts[moment].append(account_id)
    cumulative = period_usage_cuts_many(cuts=cuts, period=period, now=now)
    segment_usage: dict[int, dict[int, dict[str, MetricUsage]]] = defaultdict(dict)
    for account_id, segs in segments.items():
        if account_id not in {a for ids_ in cuts.values() for a in ids_}:
            continue
        for index, segment in enumerate(segs):
            end_usage = (
                cumulative[segment.end][account_id]
                if segment.end in cumulative and account_id in cuts[segment.end]
                else {c: _regular(u) for c, u in usage[account_id].items()}
            )
            start_usage = (
                cumulative[segment.start][account_id]
                if segment.start in cumulative and account_id in cuts[segment.start]
                else None
            )
            segment_usage[account_id][index] = {
                code: (end if start_usage is None else _subtract(end, start_usage[code]))
                for code, end in end_usage.items()
            }

    late_months = {m for a in ids for u in usage[a].values() for m in u.late_by_month}
    late_accounts = [a for a in ids if any(u.late_by_month for u in usage[a].values())]
    prior = _prior_lines(late_accounts, late_months)
    contracts = contracts_load(accounts=accounts, period=period)
    return {
        account.pk: rate(
            account=account,
            period=period,
            segments=segments[account.pk],
            usage=usage[account.pk],
            segment_usage=segment_usage.get(account.pk, {}),
            prior=prior,
            contract=contracts.get(account.pk),
            subscriptions=subscriptions.get(account.pk, []),
        )
        for account in accounts
    }


def charges_estimate(*, account: Account, period: Period, now: dt.datetime) -> Estimate:
    """What the invoice for ``period`` would show if the period closed at ``now``."""
    return charges_many(accounts=[account], period=period, now=now)[account.pk]
