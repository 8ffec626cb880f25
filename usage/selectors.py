"""Reads of usage. Everything here reads rollups and lifecycle rows, never the raw event table.

Quantities are *billed quantities*: sums and counts as reported, unique counts as distinct values,
gauges in unit-months (unit-hours ÷ hours in the period), tenants and partners as the number live at any
moment of the period.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Count, Max, Q, Sum
from django.db.models.expressions import RawSQL
from django.db.models.functions import TruncMonth

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
    late_by_month: dict[dt.date, Decimal] = field(default_factory=dict)  # late usage per month it happened in


def _month(period: Period) -> dt.date:
    return period.start.date().replace(day=1)


def _micros(delta: dt.timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _hours(delta: dt.timedelta) -> Decimal:
    return Decimal(_micros(delta)) / Decimal(3_600_000_000)


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _epoch_micros(moment: dt.datetime) -> int:
    return _micros(moment - EPOCH)


def _from_epoch_micros(micros: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=micros)


def _hours_us(micros: int) -> Decimal:
    """``_hours`` of a span given in microseconds."""
    return Decimal(micros) / Decimal(3_600_000_000)


def _gauge_shapes(buckets) -> Iterator[tuple[int, int, int, int, Decimal, Decimal]]:
    """(account, tenant, first reading, last reading (epoch microseconds), last value, inner area) of gauge
    buckets. PostgreSQL computes the microseconds, saving the parsing of two timestamps per bucket."""
    from django.db import connection

    if connection.vendor == "postgresql":
        yield from buckets.annotate(
            first_us=RawSQL("(extract(epoch FROM gauge_first_at) * 1000000)::bigint", ()),
            last_us=RawSQL("(extract(epoch FROM gauge_last_at) * 1000000)::bigint", ()),
        ).values_list(
            "account_id", "tenant_id", "first_us", "last_us", "gauge_last_value", "gauge_inner_area"
        ).iterator(chunk_size=5000)
        return
    for account_id, tenant_id, first_at, last_at, last_value, inner in buckets.values_list(
        "account_id", "tenant_id", "gauge_first_at", "gauge_last_at", "gauge_last_value", "gauge_inner_area"
    ).iterator(chunk_size=5000):
        yield account_id, tenant_id, _epoch_micros(first_at), _epoch_micros(last_at), last_value, inner


def _floor_hour(moment: dt.datetime) -> dt.datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def period_usage(*, account: Account, period: Period, now: dt.datetime) -> dict[str, MetricUsage]:
    """Usage of every catalogue metric for ``account`` over ``period`` (a calendar month), as of ``now``."""
    return period_usage_many(account_ids=[account.pk], period=period, now=now)[account.pk]


def period_usage_many(
    *, account_ids: list[int], period: Period, now: dt.datetime, until: dt.datetime | None = None
) -> dict[int, dict[str, MetricUsage]]:
    """``period_usage`` for many accounts at once: a fixed number of queries, whatever the number of accounts.

    With ``until``, accumulating metrics (sums, counts, gauges) only count what happened before it (late
    usage excluded): the usage of a span ``[a, b)`` of the period is the difference of two such reads.
    """
    metrics = list(Metric.objects.all())
    result = {a: {m.code: MetricUsage(metric=m) for m in metrics} for a in account_ids}
    if not account_ids:
        return result
    by_id = {m.id: m for m in metrics}
    month = _month(period)
    events = [m for m in metrics if m.source == Metric.Source.EVENTS]

    # Sums, counts and maxima: hourly rollups billed in this month (late usage included, flagged).
    additive = [m.id for m in events if m.aggregation in ("sum", "count", "max")]
    rollups = UsageRollup.objects.filter(account_id__in=account_ids, billing_month=month, metric_id__in=additive)
    if until is not None:
        rollups = rollups.filter(hour__gte=period.start, hour__lt=_floor_hour(until))
    rows = list(
        rollups.values("account_id", "metric_id", "tenant_id", "partner_id").annotate(
            total=Sum("quantity_sum"),
            events=Sum("event_count"),
            peak=Max("quantity_max"),
            late=Sum("quantity_sum", filter=Q(hour__lt=period.start)),
            late_events=Sum("event_count", filter=Q(hour__lt=period.start)),
        )
    )
    if until is not None and until > _floor_hour(until) and _floor_hour(until) >= period.start:
        # The hour ``until`` falls in is read from the events themselves.
        partial = (
            UsageEvent.objects.filter(
                account_id__in=account_ids,
                billing_month=month,
                metric_id__in=additive,
                timestamp__gte=_floor_hour(until),
                timestamp__lt=until,
            )
            .values("account_id", "metric_id", "tenant_id", "partner_id")
            .annotate(total=Sum("quantity"), events=Count("id"), peak=Max("quantity"))
        )
        rows += [{**row, "late": ZERO, "late_events": 0} for row in partial]
    for row in rows:
        metric = by_id[row["metric_id"]]
        entry = result[row["account_id"]][metric.code]
        if metric.aggregation == Metric.Aggregation.MAX:
            value = row["peak"] or ZERO
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
    if any(entry.late_quantity for usage in result.values() for entry in usage.values()):
        late_rows = (
            UsageRollup.objects.filter(
                account_id__in=account_ids, billing_month=month, metric_id__in=additive, hour__lt=period.start
            )
            .annotate(usage_month=TruncMonth("hour", tzinfo=dt.UTC))
            .values("account_id", "metric_id", "usage_month")
            .annotate(total=Sum("quantity_sum"), events=Sum("event_count"))
        )
        for row in late_rows:
            metric = by_id[row["metric_id"]]
            value = row["events"] if metric.aggregation == Metric.Aggregation.COUNT else row["total"]
            entry = result[row["account_id"]][metric.code]
            key = row["usage_month"].date() if isinstance(row["usage_month"], dt.datetime) else row["usage_month"]
            entry.late_by_month[key] = entry.late_by_month.get(key, ZERO) + Decimal(value or 0)

    # Unique counts: distinct values first billed in this month (counted over the whole month).
    unique_ids = [m.id for m in events if m.aggregation == "unique_count"]
    values = UsageUniqueValue.objects.filter(account_id__in=account_ids, billing_month=month, metric_id__in=unique_ids)
    for row in values.values("account_id", "metric_id").annotate(
        n=Count("value", distinct=True), late=Count("value", distinct=True, filter=~Q(usage_month=month))
    ):
        entry = result[row["account_id"]][by_id[row["metric_id"]].code]
        entry.quantity, entry.late_quantity = Decimal(row["n"]), Decimal(row["late"])
    for row in values.values("account_id", "metric_id", "tenant_id").annotate(n=Count("value", distinct=True)):
        result[row["account_id"]][by_id[row["metric_id"]].code].by_tenant[row["tenant_id"]] = Decimal(row["n"])
    late_values = values.exclude(usage_month=month)
    if any(result[a][by_id[m].code].late_quantity for a in account_ids for m in unique_ids):
        for row in late_values.values("account_id", "metric_id", "usage_month").annotate(
            n=Count("value", distinct=True)
        ):
            entry = result[row["account_id"]][by_id[row["metric_id"]].code]
            entry.late_by_month[row["usage_month"]] = Decimal(row["n"])

    # Gauges: integrate the readings' shape kept in the rollups.
    gauge_end = min(now, until) if until is not None else now
    for metric in events:
        if metric.aggregation == Metric.Aggregation.TIME_WEIGHTED:
            per_tenant = gauge_unit_hours_many(account_ids=account_ids, metric=metric, period=period, now=gauge_end)
            for account_id, tenants in per_tenant.items():
                entry = result[account_id][metric.code]
                entry.unit_hours = sum(tenants.values(), ZERO)
                # GB-months (unit-months) to 8 places: the billed quantity of a gauge.
                entry.by_tenant = {t: (hours / period.hours).quantize(QUANTUM) for t, hours in tenants.items()}
                entry.quantity = (entry.unit_hours / period.hours).quantize(QUANTUM)

    # Tenants and partners live at any moment of the period (up to now).
    upto = min(period.end, max(now, period.start + dt.timedelta(microseconds=1)))
    for metric in metrics:
        if metric.source == Metric.Source.TENANTS:
            live = Tenant.objects.filter(account_id__in=account_ids, activated_at__lt=upto).filter(
                Q(archived_at__isnull=True) | Q(archived_at__gt=period.start)
            )
            for account_id, tenant_id in live.values_list("account_id", "id"):
                entry = result[account_id][metric.code]
                entry.quantity += 1
                entry.by_tenant[tenant_id] = Decimal(1)
        elif metric.source == Metric.Source.PARTNERS:
            live = MasterPartner.objects.filter(account_id__in=account_ids, activated_at__lt=upto).filter(
                Q(deactivated_at__isnull=True) | Q(deactivated_at__gt=period.start)
            )
            for row in live.values("account_id").annotate(n=Count("id")):
                result[row["account_id"]][metric.code].quantity = Decimal(row["n"])
    return result


def gauge_unit_hours(*, account: Account, metric: Metric, period: Period, now: dt.datetime) -> dict[int, Decimal]:
    """Unit-hours per tenant over ``[period.start, min(period.end, now))``: each reading holds until the
    next; the level before the first reading of the period is the last one before it (or 0)."""
    return gauge_unit_hours_many(account_ids=[account.pk], metric=metric, period=period, now=now).get(account.pk, {})


def gauge_unit_hours_many(
    *, account_ids: list[int], metric: Metric, period: Period, now: dt.datetime
) -> dict[int, dict[int, Decimal]]:
    """``gauge_unit_hours`` per account, then per tenant, in a fixed number of queries."""
    end = min(period.end, now)
    if end <= period.start:
        return {}
    buckets = UsageRollup.objects.filter(
        account_id__in=account_ids,
        metric=metric,
        hour__gte=period.start,
        hour__lt=end,
        partner__isnull=True,
        gauge_first_at__isnull=False,
    ).order_by("account_id", "tenant_id", "hour")
    level = _last_levels_many(account_ids, metric, hour__lt=period.start)
    # Moments as integer microseconds since the epoch: thousands of buckets per chunk of accounts, and
    # differences of microseconds are exactly what ``_hours`` turns into hours.
    start_us, end_us = _epoch_micros(period.start), _epoch_micros(end)
    result: dict[tuple[int, int], Decimal] = defaultdict(lambda: ZERO)
    cursor: dict[tuple[int, int], int] = {}
    for account_id, tenant_id, first_us, last_us, last_value, inner in _gauge_shapes(buckets):
        if first_us >= end_us:
            continue
        key = (account_id, tenant_id)
        since = cursor.get(key, start_us)
        result[key] += level.get(key, ZERO) * _hours_us(first_us - since)
        if last_us < end_us:
            result[key] += inner
            cursor[key], level[key] = last_us, last_value
        else:  # the bucket runs past ``end``: only its readings before ``end`` count
            readings = list(
                UsageEvent.objects.filter(
                    account_id=account_id,
                    tenant_id=tenant_id,
                    metric=metric,
                    timestamp__gte=_from_epoch_micros(first_us),
                    timestamp__lt=end,
                )
                .order_by("timestamp", "id")
                .values_list("timestamp", "quantity")
            )
            for (at, value), (next_at, _) in zip(readings, readings[1:], strict=False):
                result[key] += value * _hours(next_at - at)
            last_at, level[key] = readings[-1]
            cursor[key] = _epoch_micros(last_at)
    for key in set(level) | set(cursor):
        result[key] += level.get(key, ZERO) * _hours_us(end_us - cursor.get(key, start_us))
    nested: dict[int, dict[int, Decimal]] = defaultdict(dict)
    for (account_id, tenant_id), hours in result.items():
        nested[account_id][tenant_id] = round(hours, 8)
    return dict(nested)


def _last_levels_many(account_ids: list[int], metric: Metric, **hours) -> dict[tuple[int, int], Decimal]:
    """Each (account, tenant)'s last gauge reading in the hours selected by ``hours``."""
    from django.db import connection

    buckets = UsageRollup.objects.filter(
        account_id__in=account_ids, metric=metric, partner__isnull=True, gauge_last_at__isnull=False, **hours
    )
    if connection.features.can_distinct_on_fields:
        rows = (
            buckets.order_by("account_id", "tenant_id", "-hour")
            .distinct("account_id", "tenant_id")
            .values_list("account_id", "tenant_id", "gauge_last_value")
        )
        return {(a, t): v for a, t, v in rows}
    latest: dict[tuple[int, int], Decimal] = {}
    for a, t, value in buckets.order_by("account_id", "tenant_id", "hour").values_list(
        "account_id", "tenant_id", "gauge_last_value"
    ):
        latest[(a, t)] = value
    return latest


def gauge_current_level(*, account: Account, metric: Metric, now: dt.datetime) -> Decimal:
    """The gauge's level now, summed over tenants (e.g. GB stored right now): each tenant's last reading."""
    return sum(_last_levels_many([account.pk], metric, hour__lte=now).values(), ZERO)
