"""Reads of usage. Everything here reads rollups and lifecycle rows, never the raw event table.

Quantities are *billed quantities*: sums and counts as reported, unique counts as distinct values,
gauges in unit-months (unit-hours ÷ hours in the period), tenants and partners as the number live at any
moment of the period.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, cast

from django.db import connection
from django.db.models import Count, Exists, Max, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.expressions import RawSQL
from django.db.models.functions import TruncDay, TruncMonth

from accounts.models import Account
from common.periods import Period, month_containing
from tenants.models import MasterPartner, Tenant
from usage.models import Metric, UsageEvent, UsageRollup, UsageUniqueValue

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
    return month_containing(period.start).start.date()


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


GaugeShape = tuple[int, int, int, int, int, Decimal, Decimal]
# The gauge columns of a rollup are written together (``usage.writers``): a bucket with readings
# (``gauge_first_at`` and ``gauge_last_at`` set) has none of them null, though each column is nullable.
_GaugeRow = tuple[int, int, dt.datetime, dt.datetime, dt.datetime, Decimal, Decimal]


def _gauge_shapes(buckets: QuerySet[UsageRollup]) -> Iterator[GaugeShape]:
    """(account, tenant, hour, first reading, last reading (epoch microseconds), last value, inner area) of
    gauge buckets. PostgreSQL computes the microseconds, saving the parsing of timestamps per bucket."""
    if connection.vendor == "postgresql":
        yield from cast(
            "Iterator[GaugeShape]",
            buckets.annotate(
                hour_us=RawSQL("(extract(epoch FROM hour) * 1000000)::bigint", ()),
                first_us=RawSQL("(extract(epoch FROM gauge_first_at) * 1000000)::bigint", ()),
                last_us=RawSQL("(extract(epoch FROM gauge_last_at) * 1000000)::bigint", ()),
            )
            .values_list(
                "account_id", "tenant_id", "hour_us", "first_us", "last_us", "gauge_last_value", "gauge_inner_area"
            )
            .iterator(chunk_size=5000),
        )
        return
    rows = buckets.values_list(
        "account_id", "tenant_id", "hour", "gauge_first_at", "gauge_last_at", "gauge_last_value", "gauge_inner_area"
    ).iterator(chunk_size=5000)
    for account_id, tenant_id, hour, first_at, last_at, last_value, inner in cast("Iterator[_GaugeRow]", rows):
        yield (
            account_id, tenant_id, _epoch_micros(hour), _epoch_micros(first_at), _epoch_micros(last_at), last_value,
            inner,
        )  # fmt: skip


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
    _add_additive_rows(result, rows, by_id)
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
    any_late = False
    for row in values.values("account_id", "metric_id").annotate(
        n=Count("value", distinct=True, filter=Q(usage_month=month)), late=Count("id", filter=~Q(usage_month=month))
    ):
        entry = result[row["account_id"]][by_id[row["metric_id"]].code]
        entry.quantity = Decimal(row["n"])
        any_late = any_late or bool(row["late"])
    for row in (
        values.filter(usage_month=month)
        .values("account_id", "metric_id", "tenant_id")
        .annotate(n=Count("value", distinct=True))
    ):
        result[row["account_id"]][by_id[row["metric_id"]].code].by_tenant[row["tenant_id"]] = Decimal(row["n"])
    if any_late:
        # Late values: seen in an earlier month, arrived after it was invoiced, and not billed for that month
        # already (the same value reported by another tenant in time).
        billed_then = UsageUniqueValue.objects.filter(
            account_id=OuterRef("account_id"),
            metric_id=OuterRef("metric_id"),
            value=OuterRef("value"),
            usage_month=OuterRef("usage_month"),
            billing_month=OuterRef("usage_month"),
        )
        late_values = values.exclude(usage_month=month).exclude(Exists(billed_then))
        for row in late_values.values("account_id", "metric_id", "usage_month").annotate(
            n=Count("value", distinct=True)
        ):
            entry = result[row["account_id"]][by_id[row["metric_id"]].code]
            entry.late_by_month[row["usage_month"]] = Decimal(row["n"])
            entry.late_quantity += Decimal(row["n"])
            entry.quantity += Decimal(row["n"])

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
    for metric in metrics:
        if metric.source == Metric.Source.TENANTS:
            live = tenants_live_in_period(account_ids=account_ids, period=period, now=now)
            for account_id, tenant_id in live.values_list("account_id", "id"):
                entry = result[account_id][metric.code]
                entry.quantity += 1
                entry.by_tenant[tenant_id] = Decimal(1)
        elif metric.source == Metric.Source.PARTNERS:
            live = partners_live_in_period(account_ids=account_ids, period=period, now=now)
            for row in live.values("account_id").annotate(n=Count("id")):
                result[row["account_id"]][metric.code].quantity = Decimal(row["n"])
    return result


def _lifecycle_upto(period: Period, now: dt.datetime) -> dt.datetime:
    """The end of the part of ``period`` that has happened by ``now`` (at least its first instant)."""
    return min(period.end, max(now, period.start + dt.timedelta(microseconds=1)))


def tenants_live_in_period(*, account_ids: list[int], period: Period, now: dt.datetime) -> QuerySet[Tenant]:
    """Tenants live at any moment of ``period`` up to ``now``: ``[activated_at, archived_at)`` overlaps it.
    This is the count billed as tenant-months, and the count the tenant limit measures: a tenant archived
    during the month still counts for that month."""
    return Tenant.objects.filter(account_id__in=account_ids, activated_at__lt=_lifecycle_upto(period, now)).filter(
        Q(archived_at__isnull=True) | Q(archived_at__gt=period.start)
    )


def partners_live_in_period(*, account_ids: list[int], period: Period, now: dt.datetime) -> QuerySet[MasterPartner]:
    """Master partners live at any moment of ``period`` up to ``now`` (billed and limited alike)."""
    return MasterPartner.objects.filter(
        account_id__in=account_ids, activated_at__lt=_lifecycle_upto(period, now)
    ).filter(Q(deactivated_at__isnull=True) | Q(deactivated_at__gt=period.start))


def _add_additive_rows(
    result: dict[int, dict[str, MetricUsage]], rows: Sequence[Mapping[str, Any]], by_id: dict[int, Metric]
) -> None:
    """Add rollup (or partial-hour event) aggregates per (account, metric, tenant, partner) to ``result``."""
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


# Cut reads (``period_usage_cuts_many``): rollups and partial hours for many (account, until) pairs at once.
_CUT_ROLLUPS = """
SELECT c.n, r.account_id, r.metric_id, r.tenant_id, r.partner_id, sum(r.quantity_sum), sum(r.event_count),
       max(r.quantity_max)
FROM unnest(%s::int[], %s::bigint[], %s::timestamptz[]) AS c(n, account_id, until_hour)
JOIN usage_usagerollup r ON r.account_id = c.account_id AND r.hour < c.until_hour
WHERE r.billing_month = %s AND r.metric_id = ANY(%s::bigint[]) AND r.hour >= %s
GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
"""
_CUT_PARTIAL_HOURS = """
SELECT c.n, e.account_id, e.metric_id, e.tenant_id, e.partner_id, sum(e.quantity), count(e.id), max(e.quantity)
FROM unnest(%s::int[], %s::bigint[], %s::timestamptz[], %s::timestamptz[]) AS c(n, account_id, since, until)
JOIN usage_usageevent e ON e.account_id = c.account_id AND e.timestamp >= c.since AND e.timestamp < c.until
WHERE e.billing_month = %s AND e.metric_id = ANY(%s::bigint[])
GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
"""


def period_usage_cuts_many(
    *, cuts: dict[dt.datetime, list[int]], period: Period, now: dt.datetime
) -> dict[dt.datetime, dict[int, dict[str, MetricUsage]]]:
    """``{moment: period_usage_many(account_ids=ids, period=period, now=now, until=moment)}`` for every
    ``moment: ids`` of ``cuts`` (plan changes and trial ends inside the period, each account its own moment),
    in a fixed number of queries however many moments there are."""
    if connection.vendor != "postgresql" or len(cuts) <= 1:
        return {
            moment: period_usage_many(account_ids=ids, period=period, now=now, until=moment)
            for moment, ids in cuts.items()
        }
    moments = list(cuts)
    all_ids = sorted({a for ids in cuts.values() for a in ids})
    # Everything ``until`` does not change (unique counts, live tenants and partners) is read once.
    whole = period_usage_many(account_ids=all_ids, period=period, now=now)
    metrics = list(Metric.objects.all())
    by_id = {m.id: m for m in metrics}
    month = _month(period)
    events = [m for m in metrics if m.source == Metric.Source.EVENTS]
    additive = [m.id for m in events if m.aggregation in ("sum", "count", "max")]
    result = {moment: {a: {m.code: MetricUsage(metric=m) for m in metrics} for a in cuts[moment]} for moment in moments}
    pairs = [(n, a, moment) for n, moment in enumerate(moments) for a in cuts[moment]]
    partial = [
        (n, a, moment) for n, a, moment in pairs if _floor_hour(moment) < moment and _floor_hour(moment) >= period.start
    ]
    columns = ("account_id", "metric_id", "tenant_id", "partner_id", "total", "events", "peak")
    rows: dict[int, list[dict]] = defaultdict(list)
    with connection.cursor() as cursor:
        cursor.execute(
            _CUT_ROLLUPS,
            [[n for n, _, _ in pairs], [a for _, a, _ in pairs], [_floor_hour(m) for _, _, m in pairs], month, additive,
             period.start],
        )  # fmt: skip
        for n, *values in cursor.fetchall():
            rows[n].append({**dict(zip(columns, values, strict=True)), "late": None, "late_events": None})
        if partial:
            cursor.execute(
                _CUT_PARTIAL_HOURS,
                [[n for n, _, _ in partial], [a for _, a, _ in partial], [_floor_hour(m) for _, _, m in partial],
                 [m for _, _, m in partial], month, additive],
            )  # fmt: skip
            partial_rows: dict[int, list[dict]] = defaultdict(list)
            for n, *values in cursor.fetchall():
                partial_rows[n].append({**dict(zip(columns, values, strict=True)), "late": ZERO, "late_events": 0})
            for n, extra in partial_rows.items():
                rows[n] += extra
    for n, moment in enumerate(moments):
        _add_additive_rows(result[moment], rows[n], by_id)
    gauges = [m for m in events if m.aggregation == Metric.Aggregation.TIME_WEIGHTED]
    for metric in gauges:
        per_moment = _gauge_unit_hours_ends(
            ends={moment: (cuts[moment], min(now, moment)) for moment in moments}, metric=metric, period=period
        )
        for moment, per_account in per_moment.items():
            for account_id, tenants in per_account.items():
                entry = result[moment][account_id][metric.code]
                entry.unit_hours = sum(tenants.values(), ZERO)
                entry.by_tenant = {t: (hours / period.hours).quantize(QUANTUM) for t, hours in tenants.items()}
                entry.quantity = (entry.unit_hours / period.hours).quantize(QUANTUM)
    unchanged = [m.code for m in metrics if m.source != Metric.Source.EVENTS or m.aggregation == "unique_count"]
    for moment in moments:
        for account_id in cuts[moment]:
            for code in unchanged:
                source = whole[account_id][code]
                result[moment][account_id][code] = MetricUsage(
                    metric=source.metric,
                    quantity=source.quantity,
                    late_quantity=source.late_quantity,
                    by_tenant=dict(source.by_tenant),
                    by_partner=dict(source.by_partner),
                    unit_hours=source.unit_hours,
                    late_by_month=dict(source.late_by_month),
                )
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
    level = _last_levels_many(account_ids, metric, hour__lt=period.start)
    return _integrate_gauge(_gauge_shapes(_gauge_buckets(account_ids, metric, period, end)), level, metric, period, end)


def _gauge_buckets(account_ids: list[int], metric: Metric, period: Period, end: dt.datetime) -> QuerySet[UsageRollup]:
    return UsageRollup.objects.filter(
        account_id__in=account_ids,
        metric=metric,
        hour__gte=period.start,
        hour__lt=end,
        partner__isnull=True,
        gauge_first_at__isnull=False,
    ).order_by("account_id", "tenant_id", "hour")


def _integrate_gauge(
    shapes: Iterable[GaugeShape],
    level: dict[tuple[int, int], Decimal],
    metric: Metric,
    period: Period,
    end: dt.datetime,
) -> dict[int, dict[int, Decimal]]:
    """Unit-hours per account and tenant up to ``end`` from buckets' shapes (in account, tenant, hour
    order) and each tenant's level carried into the period (``level`` is updated)."""
    # Moments as integer microseconds since the epoch: thousands of buckets per chunk of accounts, and
    # differences of microseconds are exactly what ``_hours`` turns into hours.
    start_us, end_us = _epoch_micros(period.start), _epoch_micros(end)
    result: dict[tuple[int, int], Decimal] = defaultdict(lambda: ZERO)
    cursor: dict[tuple[int, int], int] = {}
    for account_id, tenant_id, _hour_us, first_us, last_us, last_value, inner in shapes:
        key = (account_id, tenant_id)
        if first_us >= end_us:  # a reading from ``end`` on: the tenant holds 0 unit-hours in the span
            result[key] += ZERO
            continue
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


def _gauge_unit_hours_ends(
    *, ends: dict[dt.datetime, tuple[list[int], dt.datetime]], metric: Metric, period: Period
) -> dict[dt.datetime, dict[int, dict[int, Decimal]]]:
    """``gauge_unit_hours_many(account_ids=ids, now=end)`` for every ``key: (ids, end)`` of ``ends``, reading
    the buckets and the carried-in levels once."""
    clipped = {key: (ids, min(period.end, end)) for key, (ids, end) in ends.items()}
    live = {key: (ids, end) for key, (ids, end) in clipped.items() if end > period.start}
    result: dict[dt.datetime, dict[int, dict[int, Decimal]]] = {key: {} for key in ends}
    if not live:
        return result
    all_ids = sorted({a for ids, _ in live.values() for a in ids})
    shapes = list(_gauge_shapes(_gauge_buckets(all_ids, metric, period, max(end for _, end in live.values()))))
    levels = _last_levels_many(all_ids, metric, hour__lt=period.start)
    for key, (ids, end) in live.items():
        wanted, end_us = set(ids), _epoch_micros(end)
        result[key] = _integrate_gauge(
            [row for row in shapes if row[0] in wanted and row[2] < end_us],
            {k: v for k, v in levels.items() if k[0] in wanted},
            metric,
            period,
            end,
        )
    return result


def _last_levels_many(account_ids: list[int], metric: Metric, **hours: Any) -> dict[tuple[int, int], Decimal]:
    """Each (account, tenant)'s last gauge reading in the hours selected by ``hours``.

    One probe per tenant of the accounts (a tenant's rollups are its own account's), for its latest bucket with a
    reading: ordered as the bucket index is (``usage_rollup_bucket``: account, tenant, metric, partner, hour),
    backwards, so the probe stops at the first row however many months of buckets lie behind it."""
    last = (
        UsageRollup.objects.filter(
            account_id=OuterRef("account_id"),
            tenant_id=OuterRef("pk"),
            metric=metric,
            partner__isnull=True,
            gauge_last_at__isnull=False,
            **hours,
        )
        .order_by("-partner_id", "-hour")
        .values("gauge_last_value")[:1]
    )
    rows = (
        Tenant.objects.filter(account_id__in=account_ids)
        .annotate(level=Subquery(last))
        .order_by()
        .values_list("account_id", "pk", "level")
    )
    # ``gauge_last_value`` is set wherever ``gauge_last_at`` is (``_GaugeRow``): None means no reading.
    return {(a, t): v for a, t, v in cast("Iterable[tuple[int, int, Decimal | None]]", rows) if v is not None}


def gauge_current_level(*, account: Account, metric: Metric, now: dt.datetime) -> Decimal:
    """The gauge's level now, summed over tenants (e.g. GB stored right now): each tenant's last reading."""
    return sum(_last_levels_many([account.pk], metric, hour__lte=now).values(), ZERO)


@dataclass
class DailyMetricUsage:
    """One metric's usage per UTC day of a period, in the unit its quantity is billed in (as the usage API
    shows it): sums and counts as reported, maxima as the day's peak, unique counts as values first seen
    that day, gauges as the unit-months accrued that day (so the days add up to the month's quantity)."""

    metric: Metric
    totals: list[Decimal]
    by_tenant: dict[int, list[Decimal]] = field(default_factory=dict)


@dataclass
class DailyUsage:
    period: Period
    days: list[dt.date]
    metrics: list[DailyMetricUsage]


def _day_starts(period: Period, now: dt.datetime) -> list[dt.datetime]:
    end = min(period.end, now)
    starts, moment = [], period.start
    while moment < end:
        starts.append(moment)
        moment += dt.timedelta(days=1)
    return starts


def daily_usage(*, account: Account, period: Period, now: dt.datetime, tenant: Tenant | None = None) -> DailyUsage:
    """Usage of every event metric per UTC day of ``period`` up to ``now``, in total and per tenant (only
    ``tenant``'s, when given). Reads the hourly rollups and the unique values (and, as the usage API does, a
    gauge's readings in the hour ``now`` falls in). Late usage from earlier months is not in it."""
    starts = _day_starts(period, now)
    days = [s.date() for s in starts]
    index = {d: i for i, d in enumerate(days)}
    month = _month(period)
    metrics = [m for m in Metric.objects.filter(source=Metric.Source.EVENTS).order_by("code")]
    result = {m.id: DailyMetricUsage(metric=m, totals=[ZERO] * len(days)) for m in metrics}
    if not days:
        return DailyUsage(period=period, days=days, metrics=list(result.values()))
    scope = {"tenant": tenant} if tenant is not None else {}

    def cell(entry: DailyMetricUsage, tenant_id: int) -> list[Decimal]:
        return entry.by_tenant.setdefault(tenant_id, [ZERO] * len(days))

    additive = [m.id for m in metrics if m.aggregation in ("sum", "count", "max")]
    rows = (
        UsageRollup.objects.filter(
            account=account,
            billing_month=month,
            metric_id__in=additive,
            hour__gte=period.start,
            hour__lt=period.end,
            **scope,
        )
        .annotate(day=TruncDay("hour", tzinfo=dt.UTC))
        .values("metric_id", "tenant_id", "day")
        .annotate(total=Sum("quantity_sum"), events=Sum("event_count"), peak=Max("quantity_max"))
    )
    for row in rows:
        entry = result[row["metric_id"]]
        day = row["day"].date() if isinstance(row["day"], dt.datetime) else row["day"]
        i = index.get(day)
        if i is None:  # reported ahead of ``now``: counted on the month (as by the API) but not yet a day here
            continue
        if entry.metric.aggregation == Metric.Aggregation.MAX:
            value = row["peak"] or ZERO
            cell(entry, row["tenant_id"])[i] = max(cell(entry, row["tenant_id"])[i], value)
            entry.totals[i] = max(entry.totals[i], value)
            continue
        value = Decimal(row["events"] or 0) if entry.metric.aggregation == "count" else row["total"] or ZERO
        cell(entry, row["tenant_id"])[i] += value
        entry.totals[i] += value

    unique = [m.id for m in metrics if m.aggregation == Metric.Aggregation.UNIQUE_COUNT]
    values = UsageUniqueValue.objects.filter(
        account=account, usage_month=month, metric_id__in=unique, **scope
    ).values_list("metric_id", "tenant_id", "value", "first_seen_at")
    first_seen: dict[tuple[int, str], dt.datetime] = {}
    for metric_id, tenant_id, value, seen in values:
        # Per tenant: values new to that tenant that day; in total: values new to the account.
        i = index.get(seen.astimezone(dt.UTC).date())
        if i is not None:
            cell(result[metric_id], tenant_id)[i] += 1
        key = (metric_id, value)
        first_seen[key] = min(first_seen.get(key, seen), seen)
    for (metric_id, _value), seen in first_seen.items():
        i = index.get(seen.astimezone(dt.UTC).date())
        if i is not None:
            result[metric_id].totals[i] += 1

    for metric in metrics:
        if metric.aggregation != Metric.Aggregation.TIME_WEIGHTED:
            continue
        ends = {s: ([account.pk], min(s + dt.timedelta(days=1), now)) for s in starts}
        cumulative = _gauge_unit_hours_ends(ends=ends, metric=metric, period=period)
        entry = result[metric.id]
        previous: dict[int, Decimal] = {}
        for i, start in enumerate(starts):
            for tenant_id, hours in cumulative[start].get(account.pk, {}).items():
                if tenant is not None and tenant_id != tenant.pk:
                    continue
                accrued = ((hours - previous.get(tenant_id, ZERO)) / period.hours).quantize(QUANTUM)
                previous[tenant_id] = hours
                cell(entry, tenant_id)[i] = accrued
                entry.totals[i] += accrued
    return DailyUsage(period=period, days=days, metrics=list(result.values()))
