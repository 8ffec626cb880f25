"""Reads that price usage: the charges an account's invoice would show for a period.

``charges_estimate`` is the one place that turns usage and a plan into lines and totals; the usage API
shows its figures as estimated charges and the invoice run bills them, so both agree to the cent.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from accounts.models import Account
from billing.models import PlanCharge, Subscription
from billing.rating import ChargeTerms, Tier, overage_amount, prorate
from common.money import allocate, round_money
from common.periods import Period
from tenants.models import MasterPartner, Tenant
from usage.selectors import MetricUsage, period_usage

ZERO = Decimal(0)


@dataclass
class ChargeLine:
    kind: str  # base_fee | usage | discount | minimum_commitment
    description: str
    amount: Decimal
    metric_code: str | None = None
    quantity: Decimal | None = None
    included: Decimal | None = None
    billable: Decimal | None = None
    charge: PlanCharge | None = None


@dataclass
class Estimate:
    account: Account
    period: Period
    currency: str
    subscription: Subscription | None
    usage: dict[str, MetricUsage]
    lines: list[ChargeLine] = field(default_factory=list)
    subtotal: Decimal = ZERO
    tax: Decimal = ZERO
    total: Decimal = ZERO

    def line_for(self, metric_code: str) -> ChargeLine | None:
        return next((line for line in self.lines if line.metric_code == metric_code and line.kind == "usage"), None)


def terms_of(charge: PlanCharge) -> ChargeTerms:
    return ChargeTerms(
        pricing_model=charge.pricing_model,
        included=charge.included_quantity,
        price_unit_size=charge.metric.price_unit_size,
        unit_price=charge.unit_price,
        package_size=charge.package_size,
        package_price=charge.package_price,
        tiers=[Tier(t.lower_bound, t.upper_bound, t.unit_price, t.flat_fee) for t in charge.tiers.all()],
    )


def subscription_for_period(account: Account, period: Period) -> Subscription | None:
    return (
        Subscription.objects.filter(account=account, started_at__lt=period.end)
        .exclude(ended_at__lte=period.start)
        .select_related("plan_version__plan")
        .prefetch_related("plan_version__charges__metric", "plan_version__charges__tiers")
        .order_by("-started_at")
        .first()
    )


def charges_estimate(*, account: Account, period: Period, now: dt.datetime) -> Estimate:
    """What the invoice for ``period`` would show if the period closed at ``now``.

    Base fee: for the part of the period the subscription is live and out of its trial (exact fraction,
    by the microsecond). Usage: every metric's billed quantity to date under its charge. Then the
    negotiated discount on usage, a top-up to the minimum commitment, and tax.
    """
    usage = period_usage(account=account, period=period, now=now)
    subscription = subscription_for_period(account, period)
    estimate = Estimate(
        account=account, period=period, currency=account.currency, subscription=subscription, usage=usage
    )
    if subscription is None:
        return estimate
    version = subscription.plan_version
    currency = account.currency
    live_end = subscription.ended_at or period.end
    paid_from = max(subscription.started_at, subscription.trial_end or subscription.started_at)
    billable_part = Period(paid_from, live_end) if paid_from < live_end else None
    fraction = period.fraction_covered_by(billable_part) if billable_part else 0
    if version.base_fee and fraction:
        description = f"{version.plan.name} base fee"
        if fraction != 1:
            description += f" (prorated {float(fraction) * 100:.1f}% of the period)"
        estimate.lines.append(
            ChargeLine(
                kind="base_fee",
                description=description,
                amount=round_money(prorate(version.base_fee, fraction), currency),
            )
        )
    in_trial = subscription.trial_end is not None and subscription.trial_end >= min(period.end, now)
    usage_total = ZERO
    for charge in version.charges.all():
        metric_usage = usage.get(charge.metric.code)
        if metric_usage is None:
            continue
        quantity = metric_usage.quantity
        amount = ZERO if in_trial else round_money(overage_amount(terms_of(charge), quantity), currency)
        included = charge.included_quantity
        billable = ZERO if included is None else max(quantity - included, ZERO)
        estimate.lines.append(
            ChargeLine(
                kind="usage",
                description=charge.metric.name,
                amount=amount,
                metric_code=charge.metric.code,
                quantity=quantity,
                included=included,
                billable=billable,
                charge=charge,
            )
        )
        usage_total += amount
    if version.discount_percent and usage_total:
        discount = round_money(usage_total * version.discount_percent / 100, currency)
        estimate.lines.append(
            ChargeLine(
                kind="discount",
                amount=-discount,
                description=f"Volume discount {version.discount_percent.normalize():f}%",
            )
        )
    subtotal = sum((line.amount for line in estimate.lines), ZERO)
    if version.minimum_commitment and subtotal < version.minimum_commitment and not in_trial:
        commitment = round_money(prorate(version.minimum_commitment, fraction), currency) if fraction else ZERO
        if subtotal < commitment:
            estimate.lines.append(
                ChargeLine(
                    kind="minimum_commitment", amount=commitment - subtotal, description="Minimum commitment top-up"
                )
            )
            subtotal = commitment
    estimate.subtotal = round_money(subtotal, currency)
    rate = ZERO if account.tax_reverse_charge else account.tax_rate
    estimate.tax = round_money(estimate.subtotal * rate / 100, currency)
    estimate.total = estimate.subtotal + estimate.tax
    return estimate


def tenant_breakdown(estimate: Estimate, only_tenant_id: int | None = None) -> list[dict]:
    """Per tenant: its quantity of each metric and its share of each usage line (shares add up to lines).
    With ``only_tenant_id``, that tenant's row alone (its share still computed against the whole account)."""
    tenants = {t.id: t for t in Tenant.objects.filter(account=estimate.account)}
    shares: dict[int, dict[str, Decimal]] = {t: {} for t in tenants}
    costs: dict[int, Decimal] = {t: ZERO for t in tenants}
    for line in estimate.lines:
        if line.kind != "usage":
            continue
        metric_usage = estimate.usage[line.metric_code]
        per_tenant = metric_usage.by_tenant
        for tenant_id, quantity in per_tenant.items():
            if tenant_id in shares:
                shares[tenant_id][line.metric_code] = quantity
        weights: dict = dict(per_tenant)
        # Usage no tenant accounts for (account-wide counts, e.g. users seen in several tenants) keeps its
        # share, so tenant costs never exceed the line.
        unattributed = metric_usage.quantity - sum(per_tenant.values(), ZERO)
        if unattributed > 0 or not weights:
            weights[None] = unattributed if unattributed > 0 else Decimal(1)
        for tenant_id, cost in allocate(line.amount, weights, estimate.currency).items():
            if tenant_id in costs:
                costs[tenant_id] += cost
    return [
        {"tenant": tenants[t], "quantities": shares[t], "cost": costs[t]}
        for t in sorted(tenants, key=lambda t: tenants[t].public_id)
        if (shares[t] or costs[t]) and only_tenant_id in (None, t)
    ]


def partner_breakdown(estimate: Estimate, metric_code: str = "messages") -> list[dict]:
    """Per master partner: messages and their share of the messages charge (shares add up to it)."""
    usage = estimate.usage.get(metric_code)
    if usage is None or not usage.by_partner:
        return []
    line = estimate.line_for(metric_code)
    partners = {p.id: p for p in MasterPartner.objects.filter(pk__in=usage.by_partner)}
    weights: dict = dict(usage.by_partner)
    unattributed = usage.quantity - sum(usage.by_partner.values(), ZERO)
    if unattributed > 0:  # messages sent without a partner keep their share of the charge
        weights[None] = unattributed
    costs = allocate(line.amount if line else ZERO, weights, estimate.currency)
    return [
        {"partner": partners[p], "message_count": usage.by_partner[p], "cost": costs[p]}
        for p in sorted(usage.by_partner, key=lambda p: partners[p].public_id)
    ]
