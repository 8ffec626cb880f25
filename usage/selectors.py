"""Reads of usage. Everything here reads rollups and lifecycle rows, never the raw event table.

Quantities are *billed quantities*: sums and counts as reported, unique counts as distinct values,
gauges in unit-months (unit-hours ÷ hours in the period), tenants and partners as the number live at any
moment of the period.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Count, Max, Q, Sum

from accounts.models import Account
from billing.models import Metric
from common.periods import Period
from tenants.models import MasterPartner, Tenant
from usage.models import UsageEvent, UsageRollup, UsageUniqueValue

ZERO = Decimal(0)
QUANTUM = Decimal("0.00000001")


@dataclass
class MetricUsage:
    metric: Metric
    quantity: Decimal = ZERO
    late_quantity: Decimal = ZERO  # part of ``quantity`` from earlier, already invoiced months
    by_tenant: dict[int, Decimal] = field(default_factory=dict)
    by_partner: dict[int, Decimal] = field(default_factory=dict)
    unit_hours: Decimal | None = None  # gauges only


def _month(period: Period) -> dt.date:
    return period.start.date().replace(day=1)


def _micros(delta: dt.timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _hours(delta: dt.timedelta) -> Decimal:
    return Decimal(_micros(delta)) / Decimal(3_600_000_000)


def period_usage(*, account: Account, period: Period, now: dt.datetime) -> dict[str, MetricUsage]:
    """Usage of every catalogue metric for ``account`` over ``period`` (a calendar month), as of ``now``."""
    metrics = list(Metric.objects.all())
    usage = {m.code: MetricUsage(metric=m) for m in metrics}
    by_id = {m.id: m for m in metrics}
    month = _month(period)

    # Sums, counts and maxima: hourly rollups billed in this month (late usage included, flagged).
    additive = [m.id for m in metrics if m.source == Metric.Source.EVENTS and m.aggregation in ("sum", "count", "max")]
    rows = (
        UsageRollup.objects.filter(account=account, billing_month=month, metric_id__in=additive)
        .values("metric_id", "tenant_id", "partner_id")
        .annotate(
            total=Sum("quantity_sum"),
            events=Sum("event_count"),
            peak=Max("quantity_max"),
            late=Sum("quantity_sum", filter=Q(hour__lt=period.start)),
            late_events=Sum("event_count", filter=Q(hour__lt=period.start)),
        )
    )
    for row in rows:
        metric = by_id[row["metric_id"]]
        entry = usage[metric.code]
        if metric.aggregation == Metric.Aggregation.MAX:
            value, late = row["peak"] or ZERO, ZERO
            entry.quantity = max(entry.quantity, value)
            entry.by_tenant[row["tenant_id"]] = max(entry.by_tenant.get(row["tenant_id"], ZERO), value)
            continue
        if metric.aggregation == Metric.Aggregation.COUNT:
            value, late = Decimal(row["events"] or 0), Decimal(row["late_events"] or 0)
        else:
            value, late = row["total"] or ZERO, row["late"] or ZERO
        entry.quantity += value
        entry.late_quantity += late
        entry.by_tenant[row["tenant_id"]] = entry.by_tenant.get(row["tenant_id"], ZERO) + value
        if row["partner_id"] is not None:
            entry.by_partner[row["partner_id"]] = entry.by_partner.get(row["partner_id"], ZERO) + value

    # Unique counts: distinct values first billed in this month.
    unique_ids = [m.id for m in metrics if m.source == Metric.Source.EVENTS and m.aggregation == "unique_count"]
    values = UsageUniqueValue.objects.filter(account=account, billing_month=month, metric_id__in=unique_ids)
    for row in values.values("metric_id").annotate(
        n=Count("value", distinct=True), late=Count("value", distinct=True, filter=~Q(usage_month=month))
    ):
        entry = usage[by_id[row["metric_id"]].code]
        entry.quantity, entry.late_quantity = Decimal(row["n"]), Decimal(row["late"])
    for row in values.values("metric_id", "tenant_id").annotate(n=Count("value", distinct=True)):
        usage[by_id[row["metric_id"]].code].by_tenant[row["tenant_id"]] = Decimal(row["n"])

    # Gauges: integrate the readings' shape kept in the rollups.
    for metric in metrics:
        if metric.source == Metric.Source.EVENTS and metric.aggregation == Metric.Aggregation.TIME_WEIGHTED:
            per_tenant = gauge_unit_hours(account=account, metric=metric, period=period, now=now)
            entry = usage[metric.code]
            entry.unit_hours = sum(per_tenant.values(), ZERO)
            # GB-months (unit-months) to 8 places: the billed quantity of a gauge.
            entry.by_tenant = {t: (hours / period.hours).quantize(QUANTUM) for t, hours in per_tenant.items()}
            entry.quantity = (entry.unit_hours / period.hours).quantize(QUANTUM)

    # Tenants and partners live at any moment of the period (up to now).
    upto = min(period.end, max(now, period.start + dt.timedelta(microseconds=1)))
    for metric in metrics:
        if metric.source == Metric.Source.TENANTS:
            live = Tenant.objects.filter(account=account, activated_at__lt=upto).filter(
                Q(archived_at__isnull=True) | Q(archived_at__gt=period.start)
            )
            ids = list(live.values_list("id", flat=True))
            usage[metric.code].quantity = Decimal(len(ids))
            usage[metric.code].by_tenant = {i: Decimal(1) for i in ids}
        elif metric.source == Metric.Source.PARTNERS:
            live = MasterPartner.objects.filter(account=account, activated_at__lt=upto).filter(
                Q(deactivated_at__isnull=True) | Q(deactivated_at__gt=period.start)
            )
            usage[metric.code].quantity = Decimal(live.count())
    return usage


def gauge_unit_hours(*, account: Account, metric: Metric, period: Period, now: dt.datetime) -> dict[int, Decimal]:
    """Unit-hours per tenant over ``[period.start, min(period.end, now))``: each reading holds until the
    next; the level before the first reading of the period is the last one before it (or 0)."""
    end = min(period.end, now)
    if end <= period.start:
        return {}
    buckets = (
        UsageRollup.objects.filter(
            account=account,
            metric=metric,
            hour__gte=period.start,
            hour__lt=end,
            partner__isnull=True,
            gauge_first_at__isnull=False,
        )
        .order_by("tenant_id", "hour")
        .values_list(
            "tenant_id", "gauge_first_at", "gauge_first_value", "gauge_last_at", "gauge_last_value", "gauge_inner_area"
        )
    )
    carry = _last_levels(account, metric, hour__lt=period.start)
    result: dict[int, Decimal] = defaultdict(lambda: ZERO)
    cursor: dict[int, dt.datetime] = {}
    level: dict[int, Decimal] = dict(carry)
    for tenant_id, first_at, _first_value, last_at, last_value, inner in buckets:
        if first_at >= end:
            continue
        since = cursor.get(tenant_id, period.start)
        result[tenant_id] += level.get(tenant_id, ZERO) * _hours(first_at - since)
        if last_at < end:
            result[tenant_id] += inner
            cursor[tenant_id], level[tenant_id] = last_at, last_value
        else:  # the bucket runs past ``end``: only its readings before ``end`` count
            readings = list(
                UsageEvent.objects.filter(
                    account=account, tenant_id=tenant_id, metric=metric, timestamp__gte=first_at, timestamp__lt=end
                )
                .order_by("timestamp", "id")
                .values_list("timestamp", "quantity")
            )
            for (at, value), (next_at, _) in zip(readings, readings[1:], strict=False):
                result[tenant_id] += value * _hours(next_at - at)
            cursor[tenant_id], level[tenant_id] = readings[-1]
    for tenant_id in set(level) | set(cursor):
        result[tenant_id] += level.get(tenant_id, ZERO) * _hours(end - cursor.get(tenant_id, period.start))
    return {t: round(v, 8) for t, v in result.items()}


def _last_levels(account: Account, metric: Metric, **hours) -> dict[int, Decimal]:
    """Each tenant's last gauge reading in the hours selected by ``hours`` (e.g. ``hour__lt=...``).

    PostgreSQL reads one bucket per tenant (``DISTINCT ON``); other databases walk the buckets.
    """
    from django.db import connection

    buckets = UsageRollup.objects.filter(
        account=account, metric=metric, partner__isnull=True, gauge_last_at__isnull=False, **hours
    )
    if connection.features.can_distinct_on_fields:
        rows = buckets.order_by("tenant_id", "-hour").distinct("tenant_id").values_list("tenant_id", "gauge_last_value")
        return dict(rows)
    latest: dict[int, Decimal] = {}
    for tenant_id, value in buckets.order_by("tenant_id", "hour").values_list("tenant_id", "gauge_last_value"):
        latest[tenant_id] = value
    return latest


def gauge_current_level(*, account: Account, metric: Metric, now: dt.datetime) -> Decimal:
    """The gauge's level now, summed over tenants (e.g. GB stored right now): each tenant's last reading."""
    return sum(_last_levels(account, metric, hour__lte=now).values(), ZERO)
