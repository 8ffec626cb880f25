"""Efficiency metrics of an account: how much of each included allowance a month used, the tenants and master
partners that are idle but still billed, the premium features paid for and (barely) used, how fast storage
grows, and what share of the bill is overage. Read-only; the figures come from ``insights.analysis`` (the
invoices, or the running month's estimate) and the usage rollups.

Rules:
- allowance use: a usage charge's billed quantity ÷ its included quantity (percent, one place); unlimited
  allowances (no included quantity) and charges without one are not listed.
- idle: a live tenant (not archived) or live master partner (not deactivated) with no usage event for at least
  ``days`` days (counted from its last event, or from its activation when it has none). What it costs a month
  while idle is its share of the running month's usage charges (e.g. its tenant-month beyond the plan's
  included tenants), and ``billed_as`` names the charges it is counted in.
- a paid premium feature is *barely used* when it was used on at most ``BARELY_USED_DAYS`` days of the month;
  one that was paid for and used on no day (counted from late values only) is *unused*.
- storage growth: each month's average stored GB (its GB-months; the running month's average so far),
  against the month before, in percent.
- overage share: the usage charges (usage beyond what the plan includes, late usage included) ÷ the subtotal.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Max, Q

from accounts.models import Account
from common.money import format_money
from common.periods import Period, month_containing
from insights.analysis import (
    NOT_INVOICED,
    STORAGE_METRIC,
    ZERO,
    CostAnalysis,
    FeatureCost,
    MonthCost,
    month_cost,
    percent,
)
from tenants.models import MasterPartner, Tenant
from usage.models import UsageEvent, UsageRollup

IDLE_DAYS = 30
BARELY_USED_DAYS = 2
GB_PLACES = Decimal("0.01")
TENANT = "tenant"
PARTNER = "partner"


@dataclass(frozen=True)
class AllowanceUse:
    metric_code: str
    label: str
    used: Decimal
    included: Decimal
    percent: Decimal
    over: Decimal  # beyond the allowance (zero when within it)
    amount: Decimal  # what the charge cost the month


@dataclass(frozen=True)
class IdleSource:
    kind: str  # "tenant" or "partner"
    public_id: str
    name: str
    last_usage_at: dt.datetime | None
    idle_since: dt.datetime
    idle_days: int
    monthly_cost: Decimal
    currency: str
    billed_as: list[str]


@dataclass(frozen=True)
class FeatureUse:
    feature: str
    events: int
    days: int
    tenants: int
    paid: bool
    cost: Decimal
    flag: str  # "" | "unused" | "barely_used"
    reason: str


@dataclass(frozen=True)
class StorageMonth:
    month: dt.date
    status: str
    average_gb: Decimal | None
    growth_percent: Decimal | None


@dataclass(frozen=True)
class OverageShare:
    overage: Decimal
    subtotal: Decimal
    percent: Decimal | None


@dataclass(frozen=True)
class Efficiency:
    month: dt.date
    status: str
    currency: str
    allowances: list[AllowanceUse]
    idle_days: int
    idle: list[IdleSource]
    features: list[FeatureUse]
    storage: list[StorageMonth]
    overage: OverageShare


def allowance_use(*, month: MonthCost) -> list[AllowanceUse]:
    """Each usage charge with an included quantity: used, included and the percent used."""
    result = []
    for charge in month.charges:
        if not charge.is_usage or charge.included is None or not charge.included or charge.quantity is None:
            continue
        share = percent(charge.quantity, charge.included)
        assert share is not None  # included is not zero
        result.append(
            AllowanceUse(
                metric_code=charge.key,
                label=charge.label,
                used=charge.quantity,
                included=charge.included,
                percent=share,
                over=max(charge.quantity - charge.included, ZERO),
                amount=charge.amount,
            )
        )
    return result


def overage_share(*, month: MonthCost) -> OverageShare:
    overage = sum((c.amount for c in month.charges if c.is_usage), ZERO)
    return OverageShare(overage=overage, subtotal=month.subtotal, percent=percent(overage, month.subtotal))


def _flag(feature: FeatureCost, month: dt.date, currency: str) -> tuple[str, str]:
    if not feature.paid:
        return "", ""
    cost = format_money(feature.cost, currency)
    if feature.days == 0:
        return "unused", f"Paid for ({cost}) in {month:%B %Y} and not used on any day of it."
    if feature.days <= BARELY_USED_DAYS:
        days = "1 day" if feature.days == 1 else f"{feature.days} days"
        events = "1 event" if feature.events == 1 else f"{feature.events:,} events"
        return "barely_used", f"Paid for ({cost}) in {month:%B %Y} and used on {days} ({events})."
    return "", ""


def feature_usage(
    *, account: Account, period: Period, now: dt.datetime | None = None, month: MonthCost | None = None
) -> list[FeatureUse]:
    """The premium features of ``period`` (a month): use, whether paid for, cost, and the flag of a paid
    feature that is unused or barely used. ``month``: the month's analysis, when it is at hand already."""
    month = month or month_cost(account=account, month=period.start.date(), now=now)
    result = []
    for feature in month.features:
        flag, reason = _flag(feature, month.month, month.currency)
        result.append(
            FeatureUse(
                feature=feature.feature,
                events=feature.events,
                days=feature.days,
                tenants=feature.tenants,
                paid=feature.paid,
                cost=feature.cost,
                flag=flag,
                reason=reason,
            )
        )
    return result


def storage_growth(*, months: list[MonthCost], now: dt.datetime) -> list[StorageMonth]:
    """Each month's average stored GB and its growth against the month before (percent)."""
    result = []
    previous: Decimal | None = None
    for month in months:
        charge = month.charge(STORAGE_METRIC)
        average: Decimal | None = None
        if charge is not None and charge.quantity is not None and month.status != NOT_INVOICED:
            average = charge.quantity
            if month.is_estimate:  # GB-months so far are the average over the whole month: rescale to so far
                elapsed = Decimal(int((min(now, month.period.end) - month.period.start).total_seconds())) / 3600
                if elapsed > 0:
                    average = charge.quantity * month.period.hours / elapsed
            average = average.quantize(GB_PLACES)
        growth = percent(average - previous, previous) if average is not None and previous else None
        result.append(StorageMonth(month=month.month, status=month.status, average_gb=average, growth_percent=growth))
        previous = average
    return result


def _last_usage(account: Account, *, partners: bool) -> dict[int, dt.datetime]:
    """Each tenant's (or partner's) last usage, to the hour (the start of the latest hour with an event)."""
    column = "partner_id" if partners else "tenant_id"
    rows = (
        UsageRollup.objects.filter(account=account, **({"partner__isnull": False} if partners else {}))
        .values(column)
        .annotate(last=Max("hour"))
        .values_list(column, "last")
    )
    return {pk: last for pk, last in rows}


def _exact_last(account: Account, column: str, pk: int, hour: dt.datetime) -> dt.datetime:
    """The latest event inside the hour the rollups name (the rollups keep hours, the events the moment)."""
    last = (
        UsageEvent.objects.filter(
            account=account, timestamp__gte=hour, timestamp__lt=hour + dt.timedelta(hours=1), **{column: pk}
        )
        .aggregate(last=Max("timestamp"))
        .get("last")
    )
    return last or hour


def idle_sources(
    *, account: Account, now: dt.datetime, days: int = IDLE_DAYS, running: MonthCost | None = None
) -> list[IdleSource]:
    """Live tenants and master partners with no usage for at least ``days`` days, with their last usage, the
    days idle and what they cost a month while idle (see the module's rules). ``running``: the running
    month's analysis, when it is at hand already."""
    cutoff = now - dt.timedelta(days=days)
    tenants = list(
        Tenant.objects.filter(account=account, activated_at__lte=now)
        .filter(Q(archived_at__isnull=True) | Q(archived_at__gt=now))
        .exclude(status=Tenant.Status.ARCHIVED)
        .order_by("public_id")
    )
    partners = list(
        MasterPartner.objects.filter(account=account, activated_at__lte=now)
        .filter(Q(deactivated_at__isnull=True) | Q(deactivated_at__gt=now))
        .order_by("public_id")
    )
    tenant_last = _last_usage(account, partners=False)
    partner_last = _last_usage(account, partners=True)
    candidates: list[tuple[str, int, str, str, dt.datetime | None, dt.datetime]] = []
    for kind, rows, last_map in ((TENANT, tenants, tenant_last), (PARTNER, partners, partner_last)):
        for row in rows:
            hour = last_map.get(row.pk)
            last = _exact_last(account, f"{kind}_id", row.pk, hour) if hour is not None else None
            since = max(last, row.activated_at) if last is not None else row.activated_at
            if since > cutoff:
                continue
            candidates.append((kind, row.pk, row.public_id, row.name, last, since))
    if not candidates:
        return []
    running = running or month_cost(account=account, month=month_containing(now).start.date(), now=now)
    costs = {(TENANT, t.public_id): t for t in running.tenants} | {(PARTNER, p.public_id): p for p in running.partners}
    labels = {c.key: c.label for c in running.charges}
    result = []
    for kind, _pk, public_id, name, last, since in candidates:
        share = costs.get((kind, public_id))
        result.append(
            IdleSource(
                kind=kind,
                public_id=public_id,
                name=name,
                last_usage_at=last,
                idle_since=since,
                idle_days=(now - since).days,
                monthly_cost=share.usage if share is not None else ZERO,
                currency=running.currency,
                billed_as=[
                    labels.get(code, code) for code, q in sorted((share.quantities if share else {}).items()) if q
                ],
            )
        )
    return sorted(result, key=lambda s: (s.kind != TENANT, -s.idle_days, s.public_id))


def efficiency(*, account: Account, analysis: CostAnalysis, now: dt.datetime, idle_days: int = IDLE_DAYS) -> Efficiency:
    """The efficiency metrics of ``analysis``'s last month (allowances, features, overage), its storage growth
    over the range, and the tenants and partners idle as of ``now``."""
    month = analysis.months[-1]
    running_start = month_containing(now).start.date()
    running = next((m for m in analysis.months if m.month == running_start), None)
    return Efficiency(
        month=month.month,
        status=month.status,
        currency=month.currency,
        allowances=allowance_use(month=month),
        idle_days=idle_days,
        idle=idle_sources(account=account, now=now, days=idle_days, running=running),
        features=feature_usage(account=account, period=month.period, now=now, month=month),
        storage=storage_growth(months=analysis.months, now=now),
        overage=overage_share(month=month),
    )
