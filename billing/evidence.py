"""Usage evidence for an invoice line: what it billed, summarised so a dispute can be answered with figures.

``line_evidence(line)`` reads the events the line billed — ``billing.selectors.invoice_line_events(line)``, the
very set the invoice admin's "list events" link opens — and sums them up by tenant, by master partner and by
UTC day, in the metric's reported unit and in the line's billing unit. The billed total is measured the way the
rating engine measures it, so that it equals ``line.quantity`` exactly (``reconciles``); beside it are the
hourly rollups of the same span with the figure the engine itself reads from them (``usage.selectors``), the
duplicates ingestion refused in the span, and late usage.

Invariants:
- sums, counts and gauges: the tenants' (and the partners', and the days') figures in the reported unit add
  up to the total; unique counts and maxima do not add up (``adds_up`` is False and says so), and a gauge's
  per-tenant figures in the billing unit are each rounded to 8 places;
- a gauge is integrated from its readings exactly as ``usage.selectors`` integrates the rollups: hourly shapes
  (first and last reading, the unit-hours between them rounded to 8 places), each reading holding until the
  next, the level before the span being the last reading before it; unit-hours are billed as unit-months
  (÷ the hours of the invoice's month, to 8 places).

``evidence_csv(lines)`` streams the same figures and every event row: constant memory, whatever the number of
events (querysets read with ``.iterator()``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, cast

from django.db import connection
from django.db.models import Count, Max, Min, OuterRef, QuerySet, Subquery, Sum
from django.db.models.fields.json import KT
from django.db.models.functions import TruncDay

from billing.models import Invoice, InvoiceLine
from billing.quantities import adds_up
from billing.rating.engine import MONTHLY_COUNTS
from billing.selectors import invoice_line_events
from common.formats import decimal_string, iso_utc
from common.periods import Period
from tenants.models import MasterPartner, Tenant
from usage.models import Metric, RefusedDuplicate, UsageEvent, UsageRollup
from usage.selectors import (
    QUANTUM,
    GaugeShape,
    MetricUsage,
    _integrate_gauge,  # the engine's integration of hourly gauge shapes: reused, not re-derived
    gauge_unit_hours_many,
    period_usage_many,
)

ZERO = Decimal(0)
EVENT_CHUNK = 2000
NO_PARTNER = "no partner"

NOTE_NOT_ADDITIVE = "The {dimension} figures of a {aggregation} do not add up to the total; the total is the line's."
NOTE_MONTHLY_SEGMENT = (
    "A monthly count is billed over the whole month on every plan segment's line; the events listed are the "
    "segment's only."
)
NOTE_LATE_MONTHS = "The late events of this invoice span several months; the line bills one of them."
NOTE_GAUGE_ROUNDED = "Each tenant's GB-months are rounded to 8 places on their own; the unit-hours add up exactly."


@dataclass(frozen=True)
class Share:
    """One tenant's, partner's or UTC day's part of a line: events, and the quantity in the metric's reported
    unit (unit-hours for a gauge) and in the line's billing unit."""

    key: str  # tenant or partner public id, ISO day; "" for events without a partner
    name: str
    events: int
    quantity: Decimal
    billed: Decimal


@dataclass(frozen=True)
class RollupEvidence:
    """The hourly rollups of the line's span, and the quantity the rating engine reads from them."""

    buckets: int
    events: int
    quantity_sum: Decimal  # reported quantities summed over the buckets
    billed: Decimal  # the engine's measure (``usage.selectors.period_usage_many``) for the line
    by_tenant: list[Share]
    reconciles: bool  # ``billed`` equals the line's quantity


@dataclass(frozen=True)
class RefusedEvidence:
    """Events refused at ingestion as duplicates (transaction id already stored or repeated in the batch),
    stamped in the line's span: neither stored nor billed."""

    count: int
    quantity: Decimal
    first_refused_at: dt.datetime | None
    last_refused_at: dt.datetime | None
    by_tenant: list[Share]


@dataclass(frozen=True)
class LateMonth:
    billing_month: dt.date
    invoice_number: str | None  # the invoice whose late-usage line bills them (None: not invoiced yet)
    events: int
    quantity: Decimal


@dataclass(frozen=True)
class LateEvidence:
    """Late usage: for a late-usage line, its own events; for a regular line, events of its month and metric
    (in its span) that arrived after it was invoiced and are billed on a later invoice (information only:
    the line itself never changes)."""

    events: int
    quantity: Decimal
    months: list[LateMonth]


@dataclass(frozen=True)
class LineEvidence:
    line: InvoiceLine
    metric: Metric
    reported_unit: str
    billing_unit: str
    event_count: int
    quantity: Decimal  # the events' total in the reported unit
    billed: Decimal  # converted to the billing unit as the rating engine does
    line_quantity: Decimal
    difference: Decimal  # billed - line_quantity
    reconciles: bool
    adds_up: bool  # whether the tenant/partner/day figures add up to the total
    by_tenant: list[Share]
    by_partner: list[Share]
    by_day: list[Share]
    rollups: RollupEvidence
    refused: RefusedEvidence
    late: LateEvidence
    notes: list[str] = field(default_factory=list)


# --- the events --------------------------------------------------------------------------------------------


def _month(invoice: Invoice) -> Period:
    return Period(invoice.period_start, invoice.period_end)


def _is_gauge(metric: Metric) -> bool:
    return metric.aggregation == Metric.Aggregation.TIME_WEIGHTED


def _floor_hour(moment: dt.datetime) -> dt.datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _exact(value: Any) -> Decimal:
    """A database aggregate as an exact quantity (SQLite, the demo's database, sums decimals as floats)."""
    return ZERO if value is None else Decimal(value).quantize(QUANTUM)


def _aggregates(metric: Metric) -> dict[str, Any]:
    aggregates: dict[str, Any] = {"n": Count("id"), "total": Sum("quantity"), "peak": Max("quantity")}
    if metric.aggregation == Metric.Aggregation.UNIQUE_COUNT:
        aggregates["distinct"] = Count(KT(f"properties__{metric.aggregation_property}"), distinct=True)
    return aggregates


def _measure(metric: Metric, row: dict[str, Any]) -> Decimal:
    """A group of events' quantity as the metric aggregates it (sums, counts, maxima, distinct values)."""
    aggregation = metric.aggregation
    if aggregation == Metric.Aggregation.COUNT:
        return Decimal(row["n"] or 0)
    if aggregation == Metric.Aggregation.MAX:
        return _exact(row["peak"])
    if aggregation == Metric.Aggregation.UNIQUE_COUNT:
        return Decimal(row["distinct"] or 0)
    return _exact(row["total"])


def _names(model: type[Tenant] | type[MasterPartner], ids: Iterable[int | None]) -> dict[int, tuple[str, str]]:
    wanted = {i for i in ids if i is not None}
    return {
        pk: (public_id, name)
        for pk, public_id, name in model.objects.filter(pk__in=wanted).values_list("pk", "public_id", "name")
    }


def _grouped_shares(metric: Metric, events: QuerySet[UsageEvent], column: str) -> list[Share]:
    rows = list(events.order_by().values(column).annotate(**_aggregates(metric)))
    names = _names(Tenant if column == "tenant_id" else MasterPartner, (row[column] for row in rows))
    shares = []
    for row in rows:
        key, name = names.get(row[column], ("", NO_PARTNER))
        quantity = _measure(metric, row)
        shares.append(Share(key=key, name=name, events=row["n"], quantity=quantity, billed=quantity))
    return sorted(shares, key=lambda s: (s.key == "", s.key))


def _day_shares(metric: Metric, events: QuerySet[UsageEvent]) -> list[Share]:
    rows = cast(
        "Iterable[dict[str, Any]]",
        events.order_by()
        .annotate(day=TruncDay("timestamp", tzinfo=dt.UTC))
        .values("day")
        .annotate(**_aggregates(metric)),
    )
    shares = []
    for row in rows:
        day = row["day"].date() if isinstance(row["day"], dt.datetime) else row["day"]
        quantity = _measure(metric, row)
        shares.append(Share(key=day.isoformat(), name="", events=row["n"], quantity=quantity, billed=quantity))
    return sorted(shares, key=lambda s: s.key)


@dataclass
class _Counted:
    event_count: int
    quantity: Decimal
    billed: Decimal
    by_tenant: list[Share]
    by_partner: list[Share]
    by_day: list[Share]


def _counted_events(metric: Metric, events: QuerySet[UsageEvent]) -> _Counted:
    """Sums, counts, maxima and unique counts: grouped in the database."""
    total = events.order_by().aggregate(**_aggregates(metric))
    quantity = _measure(metric, total)
    return _Counted(
        event_count=total["n"] or 0,
        quantity=quantity,
        billed=quantity,
        by_tenant=_grouped_shares(metric, events, "tenant_id"),
        by_partner=_grouped_shares(metric, events, "partner_id"),
        by_day=_day_shares(metric, events),
    )


# --- gauges ------------------------------------------------------------------------------------------------

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROS_PER_HOUR = Decimal(3_600_000_000)


def _us(moment: dt.datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _inner_area(readings: list[tuple[dt.datetime, Decimal]]) -> Decimal:
    """Unit-hours between an hour's first and last reading, rounded as ``usage.writers`` stores it
    (PostgreSQL's ``round``: half away from zero; the SQLite writer: Python's ``round``)."""
    area = ZERO
    for (at, value), (next_at, _) in zip(readings, readings[1:], strict=False):
        area += value * Decimal(_us(next_at) - _us(at)) / _MICROS_PER_HOUR
    if connection.vendor == "postgresql":
        return area.quantize(QUANTUM, rounding=ROUND_HALF_UP)
    return round(area, 8)


def _gauge_shapes(account_id: int, events: QuerySet[UsageEvent]) -> Iterator[GaugeShape]:
    """The hourly shapes of the readings, as the rollups hold them, in (tenant, hour) order. Streams the
    readings; holds one hour's readings at a time."""
    rows = events.order_by("tenant_id", "timestamp", "id").values_list("tenant_id", "timestamp", "quantity")
    bucket: tuple[int, dt.datetime] | None = None
    readings: list[tuple[dt.datetime, Decimal]] = []

    def shape() -> GaugeShape:
        assert bucket is not None
        (first_at, _), (last_at, last_value) = readings[0], readings[-1]
        return (account_id, bucket[0], _us(bucket[1]), _us(first_at), _us(last_at), last_value, _inner_area(readings))

    for tenant_id, at, value in rows.iterator(chunk_size=EVENT_CHUNK):
        key = (tenant_id, _floor_hour(at))
        if key != bucket and readings:
            yield shape()
            readings = []
        bucket = key
        readings.append((at, value))
    if readings:
        yield shape()


def _levels_before(account_id: int, metric: Metric, moment: dt.datetime) -> dict[tuple[int, int], Decimal]:
    """Each tenant's last reading before ``moment``: its level when the span starts (ties: the last stored)."""
    last = UsageEvent.objects.filter(
        account_id=account_id, metric_id=metric.pk, tenant_id=OuterRef("pk"), timestamp__lt=moment
    ).order_by("-timestamp", "-id")
    rows = (
        Tenant.objects.filter(account_id=account_id)
        .annotate(level=Subquery(last.values("quantity")[:1]))
        .filter(level__isnull=False)
        .values_list("pk", "level")
    )
    return {(account_id, pk): _exact(level) for pk, level in rows}


def _gauge_events(line: InvoiceLine, metric: Metric, events: QuerySet[UsageEvent]) -> _Counted:
    """A gauge's unit-hours over the line's span, per tenant and per UTC day, from its readings (and each
    tenant's level carried into the span), billed as unit-months of the invoice's month."""
    account_id = line.invoice.account_id
    hours = _month(line.invoice).hours
    start, end = line.period_start, line.period_end
    shapes = list(_gauge_shapes(account_id, events))  # one per tenant and hour: bounded by the span, not the events
    carried = _levels_before(account_id, metric, start)
    per_tenant = _integrate_gauge(shapes, dict(carried), metric, Period(start, end), end).get(account_id, {})

    # Day by day: each day's integration carries the levels on (``_integrate_gauge`` updates ``level``).
    per_day: dict[dt.date, Decimal] = {}
    level = dict(carried)
    day_start = start
    while day_start < end:
        day_end = min(end, dt.datetime.combine(day_start.date() + dt.timedelta(days=1), dt.time(), dt.UTC))
        lo, hi = _us(day_start), _us(day_end)
        day_shapes = [s for s in shapes if lo <= s[3] < hi]
        integrated = _integrate_gauge(day_shapes, level, metric, Period(day_start, day_end), day_end)
        per_day[day_start.date()] = sum(integrated.get(account_id, {}).values(), ZERO)
        day_start = day_end

    readings_per_tenant = dict(
        events.order_by().values("tenant_id").annotate(n=Count("id")).values_list("tenant_id", "n")
    )
    readings_per_day = {
        (row["day"].date() if isinstance(row["day"], dt.datetime) else row["day"]): row["n"]
        for row in events.order_by()
        .annotate(day=TruncDay("timestamp", tzinfo=dt.UTC))
        .values("day")
        .annotate(n=Count("id"))
    }
    names = _names(Tenant, per_tenant)
    by_tenant = sorted(
        (
            Share(
                key=names[t][0],
                name=names[t][1],
                events=readings_per_tenant.get(t, 0),
                quantity=unit_hours,
                billed=(unit_hours / hours).quantize(QUANTUM),
            )
            for t, unit_hours in per_tenant.items()
        ),
        key=lambda s: s.key,
    )
    unit_hours = sum(per_tenant.values(), ZERO)
    billed = (unit_hours / hours).quantize(QUANTUM)  # as ``usage.selectors.period_usage_many`` bills a gauge
    event_count = sum(readings_per_tenant.values())
    return _Counted(
        event_count=event_count,
        quantity=unit_hours,
        billed=billed,
        by_tenant=by_tenant,
        # Gauge readings carry no partner: a level is the tenant's.
        by_partner=[Share(key="", name=NO_PARTNER, events=event_count, quantity=unit_hours, billed=billed)],
        by_day=[
            Share(
                key=day.isoformat(),
                name="",
                events=readings_per_day.get(day, 0),
                quantity=value,
                billed=(value / hours).quantize(QUANTUM),
            )
            for day, value in sorted(per_day.items())
        ],
    )


# --- rollups, refused duplicates, late usage ------------------------------------------------------------------


def _usage(account_id: int, metric: Metric, month: Period, until: dt.datetime | None = None) -> MetricUsage:
    return period_usage_many(account_ids=[account_id], period=month, now=month.end, until=until)[account_id][
        metric.code
    ]


def _engine_quantity(line: InvoiceLine, metric: Metric) -> Decimal:
    """What the rating engine reads from the rollups for this line (``billing.rating.engine.charges_many``):
    the month's regular usage, a segment's part of it (the difference of two reads), or a month's late usage."""
    account_id, month = line.invoice.account_id, _month(line.invoice)
    whole = _usage(account_id, metric, month)
    if line.kind == InvoiceLine.Kind.LATE_USAGE:
        return whole.late_by_month.get(line.usage_month, ZERO) if line.usage_month else ZERO
    monthly = metric.source != Metric.Source.EVENTS or metric.aggregation in MONTHLY_COUNTS
    if monthly or (line.period_start <= month.start and line.period_end >= month.end):
        return whole.quantity - whole.late_quantity
    until_end = (
        _usage(account_id, metric, month, until=line.period_end).quantity
        if line.period_end < month.end
        else whole.quantity - whole.late_quantity
    )
    until_start = (
        _usage(account_id, metric, month, until=line.period_start).quantity if line.period_start > month.start else ZERO
    )
    return until_end - until_start


def _rollup_evidence(line: InvoiceLine, metric: Metric, line_quantity: Decimal) -> RollupEvidence:
    month = _month(line.invoice)
    buckets = UsageRollup.objects.filter(
        account_id=line.invoice.account_id,
        metric_id=metric.pk,
        billing_month=month.start.date(),
        hour__gte=_floor_hour(line.period_start),
        hour__lt=line.period_end,
    ).order_by()
    totals = buckets.aggregate(n=Count("id"), events=Sum("event_count"), total=Sum("quantity_sum"))
    if _is_gauge(metric):
        unit_hours = gauge_unit_hours_many(
            account_ids=[line.invoice.account_id], metric=metric, period=month, now=line.period_end
        ).get(line.invoice.account_id, {})
        if line.period_start > month.start:
            before = gauge_unit_hours_many(
                account_ids=[line.invoice.account_id], metric=metric, period=month, now=line.period_start
            ).get(line.invoice.account_id, {})
            unit_hours = {t: h - before.get(t, ZERO) for t, h in unit_hours.items()}
        per_tenant = {t: (h, (h / month.hours).quantize(QUANTUM), 0) for t, h in unit_hours.items()}
    else:
        field_of = {"count": "event_count", "max": "quantity_max"}.get(metric.aggregation, "quantity_sum")
        aggregate = Max(field_of) if metric.aggregation == Metric.Aggregation.MAX else Sum(field_of)
        per_tenant = {}
        for tenant_id, value, events in (
            buckets.values("tenant_id").annotate(v=aggregate, e=Sum("event_count")).values_list("tenant_id", "v", "e")
        ):
            measured = _exact(value)
            per_tenant[tenant_id] = (measured, measured, events or 0)
    names = _names(Tenant, per_tenant)
    billed = _engine_quantity(line, metric)
    return RollupEvidence(
        buckets=totals["n"] or 0,
        events=totals["events"] or 0,
        quantity_sum=_exact(totals["total"]),
        billed=billed,
        by_tenant=sorted(
            (
                Share(key=names[t][0], name=names[t][1], events=e, quantity=q, billed=b)
                for t, (q, b, e) in per_tenant.items()
                if t in names
            ),
            key=lambda s: s.key,
        ),
        reconciles=billed == line_quantity,
    )


def _refused_evidence(line: InvoiceLine, metric: Metric) -> RefusedEvidence:
    tally = RefusedDuplicate.objects.filter(
        account_id=line.invoice.account_id,
        metric_id=metric.pk,
        hour__gte=_floor_hour(line.period_start),
        hour__lt=line.period_end,
    ).order_by()
    totals = tally.aggregate(
        n=Sum("count"), q=Sum("quantity_sum"), first=Min("first_refused_at"), last=Max("last_refused_at")
    )
    rows = list(tally.values("tenant_id").annotate(n=Sum("count"), q=Sum("quantity_sum")))
    names = _names(Tenant, (row["tenant_id"] for row in rows))
    return RefusedEvidence(
        count=totals["n"] or 0,
        quantity=_exact(totals["q"]),
        first_refused_at=totals["first"],
        last_refused_at=totals["last"],
        by_tenant=sorted(
            (
                Share(
                    key=names.get(row["tenant_id"], ("", ""))[0],
                    name=names.get(row["tenant_id"], ("", ""))[1],
                    events=row["n"] or 0,
                    quantity=_exact(row["q"]),
                    billed=_exact(row["q"]),
                )
                for row in rows
            ),
            key=lambda s: s.key,
        ),
    )


def _late_events(line: InvoiceLine, metric: Metric, events: QuerySet[UsageEvent]) -> QuerySet[UsageEvent]:
    if line.kind == InvoiceLine.Kind.LATE_USAGE:
        return events
    return UsageEvent.objects.filter(
        account_id=line.invoice.account_id,
        metric_id=metric.pk,
        is_late=True,
        timestamp__gte=line.period_start,
        timestamp__lt=line.period_end,
    ).exclude(billing_month=line.invoice.period_start.date())


def _late_evidence(line: InvoiceLine, metric: Metric, events: QuerySet[UsageEvent]) -> LateEvidence:
    late = _late_events(line, metric, events).order_by()
    rows = cast(
        "list[dict[str, Any]]",
        list(late.values("billing_month").annotate(**_aggregates(metric)).order_by("billing_month")),
    )
    invoices = dict(
        InvoiceLine.objects.filter(
            invoice__account_id=line.invoice.account_id,
            metric_id=metric.pk,
            kind=InvoiceLine.Kind.LATE_USAGE,
            invoice__period_start__date__in=[row["billing_month"] for row in rows],
        )
        .exclude(invoice__status=Invoice.Status.VOID)
        .values_list("invoice__period_start__date", "invoice__number")
    )
    months = [
        LateMonth(
            billing_month=row["billing_month"],
            invoice_number=invoices.get(row["billing_month"]),
            events=row["n"],
            quantity=_measure(metric, row),
        )
        for row in rows
    ]
    return LateEvidence(
        events=sum(m.events for m in months), quantity=sum((m.quantity for m in months), ZERO), months=months
    )


# --- the evidence --------------------------------------------------------------------------------------------


def line_evidence(line: InvoiceLine) -> LineEvidence:
    """The usage evidence of an invoice line with a metric (a usage or late-usage line)."""
    metric = line.metric
    if metric is None:
        raise ValueError("Only a line with a metric has usage evidence.")
    events = invoice_line_events(line)
    counted = _gauge_events(line, metric, events) if _is_gauge(metric) else _counted_events(metric, events)
    line_quantity = line.quantity if line.quantity is not None else ZERO
    additive = adds_up(metric)
    notes = []
    if not additive:
        aggregation = "maximum" if metric.aggregation == Metric.Aggregation.MAX else "unique count"
        notes.append(NOTE_NOT_ADDITIVE.format(dimension="tenant, partner and day", aggregation=aggregation))
    month = _month(line.invoice)
    if (
        line.kind == InvoiceLine.Kind.USAGE
        and metric.aggregation in MONTHLY_COUNTS
        and (line.period_start > month.start or line.period_end < month.end)
    ):
        notes.append(NOTE_MONTHLY_SEGMENT)
    if _is_gauge(metric) and len(counted.by_tenant) > 1:
        notes.append(NOTE_GAUGE_ROUNDED)
    late = _late_evidence(line, metric, events)
    if line.kind == InvoiceLine.Kind.LATE_USAGE and line.usage_month is not None:
        later = events.filter(timestamp__gte=dt.datetime.combine(line.usage_month, dt.time(), dt.UTC)).exclude(
            timestamp__lt=line.period_end
        )
        if later.exists() or events.filter(timestamp__lt=line.period_start).exists():
            notes.append(NOTE_LATE_MONTHS)
    reported_unit = f"{metric.unit}-hours" if _is_gauge(metric) else metric.unit
    if metric.aggregation in (Metric.Aggregation.COUNT, Metric.Aggregation.UNIQUE_COUNT):
        reported_unit = "events" if metric.aggregation == Metric.Aggregation.COUNT else "distinct values"
    return LineEvidence(
        line=line,
        metric=metric,
        reported_unit=reported_unit,
        billing_unit=metric.get_billing_unit_display(),
        event_count=counted.event_count,
        quantity=counted.quantity,
        billed=counted.billed,
        line_quantity=line_quantity,
        difference=counted.billed - line_quantity,
        reconciles=counted.billed == line_quantity,
        adds_up=additive,
        by_tenant=counted.by_tenant,
        by_partner=counted.by_partner,
        by_day=counted.by_day,
        rollups=_rollup_evidence(line, metric, line_quantity),
        refused=_refused_evidence(line, metric),
        late=late,
        notes=notes,
    )


# --- CSV -----------------------------------------------------------------------------------------------------

CSV_HEADER = [
    "record",
    "invoice",
    "line",
    "metric",
    "key",
    "name",
    "transaction_id",
    "tenant",
    "partner",
    "timestamp",
    "received_at",
    "late",
    "events",
    "quantity",
    "billed_quantity",
    "note",
]


def _q(value: Decimal | None) -> str:
    return "" if value is None else decimal_string(value)


def _row(**values: str) -> list[str]:
    return [values.get(column, "") for column in CSV_HEADER]


def _section(evidence: LineEvidence) -> Iterator[list[str]]:
    line = evidence.line
    head = {
        "invoice": line.invoice.number or f"draft {line.invoice_id}",
        "line": str(line.position),
        "metric": evidence.metric.code,
    }
    yield _row(
        record="line",
        **head,
        name=line.description,
        quantity="",
        billed_quantity=_q(evidence.line_quantity),
        note=f"billed in {evidence.billing_unit}; reported in {evidence.reported_unit}",
    )
    parts_note = "" if evidence.adds_up else "parts do not add up to the total"
    for record, shares in (("tenant", evidence.by_tenant), ("partner", evidence.by_partner), ("day", evidence.by_day)):
        for share in shares:
            yield _row(
                record=record,
                **head,
                key=share.key,
                name=share.name,
                events=str(share.events),
                quantity=_q(share.quantity),
                billed_quantity=_q(share.billed),
            )
        yield _row(
            record=f"{record}_total",
            **head,
            events=str(evidence.event_count),
            quantity=_q(evidence.quantity),
            billed_quantity=_q(evidence.billed),
            note=parts_note,
        )
    yield _row(
        record="reconciliation",
        **head,
        events=str(evidence.event_count),
        quantity=_q(evidence.quantity),
        billed_quantity=_q(evidence.billed),
        note="reconciles" if evidence.reconciles else f"differs from the line by {_q(evidence.difference)}",
    )
    rollups = evidence.rollups
    yield _row(
        record="rollups",
        **head,
        key=f"{rollups.buckets} buckets",
        events=str(rollups.events),
        quantity=_q(rollups.quantity_sum),
        billed_quantity=_q(rollups.billed),
        note="reconciles" if rollups.reconciles else "differs from the line",
    )
    refused = evidence.refused
    yield _row(
        record="refused_duplicates",
        **head,
        events=str(refused.count),
        quantity=_q(refused.quantity),
        note="not billed",
    )
    for month in evidence.late.months:
        yield _row(
            record="late",
            **head,
            key=f"{month.billing_month:%Y-%m}",
            name=month.invoice_number or "",
            events=str(month.events),
            quantity=_q(month.quantity),
        )
    for note in evidence.notes:
        yield _row(record="note", **head, note=note)
    rows = (
        invoice_line_events(line)
        .order_by("timestamp", "id")
        .values_list(
            "transaction_id",
            "tenant__public_id",
            "partner__public_id",
            "timestamp",
            "quantity",
            "received_at",
            "is_late",
        )
    )
    for transaction_id, tenant, partner, timestamp, quantity, received_at, is_late in rows.iterator(
        chunk_size=EVENT_CHUNK
    ):
        yield _row(
            record="event",
            **head,
            transaction_id=transaction_id,
            tenant=tenant,
            partner=partner or "",
            timestamp=iso_utc(timestamp),
            received_at=iso_utc(received_at),
            late="yes" if is_late else "no",
            quantity=_q(quantity),
        )


def evidence_csv(lines: Iterable[InvoiceLine]) -> Iterator[list[str]]:
    """CSV rows: the header, then per line with a metric its section — the line, its tenants', partners' and
    days' figures each followed by their total, the reconciliation, the rollups, refused duplicates, late
    usage, notes — and its event rows (transaction id, tenant, partner, timestamp, quantity, received at,
    late). Streamed: the events are read in chunks, never all at once."""
    yield list(CSV_HEADER)
    for line in lines:
        if line.metric_id is None:
            continue
        yield from _section(line_evidence(line))
