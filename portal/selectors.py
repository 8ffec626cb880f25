"""What the portal's dashboard shows, read through the same selectors as the usage API, so both show the
same figures: ``charges_estimate`` for quantities and charges, ``quota_statuses`` for limits,
``tenant_breakdown``/``partner_breakdown`` for the breakdowns, ``daily_usage`` for the charts.
Quantities are shown by their metric's rule (``billing.quantities``), as on invoices and their PDFs."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Q
from django.utils.safestring import SafeString

from accounts.models import Account
from billing.models import PlanCharge
from billing.quantities import format_metric_quantity, format_parts, format_usage
from billing.quotas import QuotaStatus, quota_statuses
from billing.rating.allocation import partner_breakdown, tenant_breakdown
from billing.rating.engine import ChargeLine, Estimate, charges_estimate
from common.money import format_money
from common.periods import Period, month_containing
from portal.charts import Series, bar_chart
from tenants.models import MasterPartner, Tenant
from usage.models import Metric
from usage.selectors import daily_usage

ZERO = Decimal(0)
# Meter colours change as usage crosses these shares of a limit (the same thresholds as usage alerts).
METER_LEVELS = ((100, "over", "at or over the limit"), (90, "high", "past 90 %"), (75, "warn", "past 75 %"))
# Past an included allowance whose overage is priced: information, not an error (usage is billed, not stopped).
METER_OVERAGE = ("overage", "past the included quantity, billed as overage")
# A stacked chart shows this many tenants by name; the rest are added up as "Other tenants".
CHART_TENANTS = 6


@dataclass
class MetricRow:
    """A usage line of the month with its limit meter.

    A limit never blocks usage: crossing 75, 90 and 100 % of it is alerted. When the limit is the included
    quantity and the plan prices what goes beyond it (``allowance``), the meter is an allowance: past it
    the row says how much is over and at what price, in an informational colour. Other limits (hourly
    ones, limits on what is included without an overage price, limits apart from the included quantity)
    say "limit reached" past 100 %."""

    line: ChargeLine
    name: str
    unit: str
    currency: str
    quota: QuotaStatus | None = None
    live_now: int | None = None  # tenants and partners: how many are live now (the month counts all)

    @property
    def metric(self) -> Metric:
        return self.line.charge.metric

    @property
    def figures(self) -> dict[str, str]:
        """Quantity, included and billable quantity as shown (``billing.quantities``)."""
        line = self.line
        return format_usage(quantity=line.quantity, included=line.included, billable=line.billable, metric=self.metric)

    @property
    def lifecycle(self) -> bool:
        return self.metric.source != Metric.Source.EVENTS

    @property
    def gauge(self) -> bool:
        return self.metric.aggregation == Metric.Aggregation.TIME_WEIGHTED

    @property
    def allowance(self) -> bool:
        charge = self.line.charge
        return (
            self.quota is not None
            and self.quota.window == PlanCharge.LimitWindow.PERIOD
            and charge.included_quantity is not None
            and self.quota.limit == charge.included_quantity
            and charge.pricing_model != PlanCharge.PricingModel.INCLUDED_ONLY
        )

    @property
    def over(self) -> Decimal:
        """How far the meter is past its limit (for an allowance: the quantity billed beyond it)."""
        return max(self.quota.current - self.quota.limit, ZERO) if self.quota else ZERO

    @property
    def percent(self) -> Decimal | None:
        return self.quota.percentage if self.quota else None

    @property
    def meter_width(self) -> Decimal:
        return min(self.percent or ZERO, Decimal(100))

    @property
    def level(self) -> tuple[str, str]:
        if self.percent is not None and self.percent >= 100 and self.allowance:
            return METER_OVERAGE
        for threshold, css, words in METER_LEVELS:
            if self.percent is not None and self.percent >= threshold:
                return css, words
        return "", "below 75 %"

    @property
    def meter_text(self) -> str:
        """The meter in words: "3,927 of 25,000 included (15.71 %)"; past an allowance, what is over and
        its price: "25,000 included — 6,000 over, billed at USD 0.03 per message"."""
        if self.quota is None:
            return ""
        metric = self.metric
        current = format_metric_quantity(self.quota.current, metric)
        limit = format_metric_quantity(self.quota.limit, metric)
        percent = format_metric_quantity(self.percent)
        now = " now" if self.gauge else ""
        if not self.allowance:
            window = " this hour" if self.quota.window == PlanCharge.LimitWindow.HOUR else now
            return f"{current} of {limit}{window} ({percent} %)"
        if self.level != METER_OVERAGE:
            return f"{current} of {limit} included{now} ({percent} %)"
        line = self.line
        billed = (
            f"billed at {format_money(line.unit_price, self.currency, unit_price=True)} {self.unit}"
            if line.unit_price is not None
            else "billed at your plan's overage prices"
        )
        if self.gauge:
            # A gauge's limit is on the level now; its overage is billed by the GB-months held beyond it.
            return f"{current} {metric.unit} now, {limit} included — beyond it, {billed}"
        if self.over:
            return f"{limit} included — {format_metric_quantity(self.over, metric)} over, {billed}"
        return f"{limit} included, all used — more is {billed}"


@dataclass
class Dashboard:
    period: Period
    last_day: dt.date
    days_left: int
    now: dt.datetime
    estimate: Estimate
    metrics: list[MetricRow]
    fees: list[ChargeLine]
    tenants: list[dict]
    tenant_metrics: list[tuple[str, str]]
    partners: list[dict]
    charts: list[dict] = field(default_factory=list)


def _chart_unit(metric: Metric) -> str:
    if metric.aggregation == Metric.Aggregation.TIME_WEIGHTED:
        return f"{metric.unit}-months"
    if metric.aggregation == Metric.Aggregation.UNIQUE_COUNT:
        return f"new {metric.unit}s"
    return f"{metric.unit}s"


def _price_unit(metric: Metric) -> str:
    """What one price unit is, in the metric's own words: "per message", "per 1,000 requests"."""
    if metric.billing_unit == Metric.BillingUnit.PER_UNIT:
        return f"per {metric.unit}"
    if metric.billing_unit == Metric.BillingUnit.PER_THOUSAND:
        return f"per 1,000 {metric.unit}s"
    return metric.get_billing_unit_display()


def _tenant_series(by_tenant: dict[int, list[Decimal]], names: dict[int, str], days: int) -> list[Series]:
    """The busiest tenants by name, in name order so each keeps its colour from chart to chart; the rest summed."""
    ranked = sorted(by_tenant.items(), key=lambda kv: (-sum(kv[1], ZERO), names.get(kv[0], "")))
    top = sorted(ranked[:CHART_TENANTS], key=lambda kv: names.get(kv[0], ""))
    shown = [Series(names.get(t, f"Tenant {t}"), values) for t, values in top if any(values)]
    others = ranked[CHART_TENANTS:]
    if others:
        rest = [sum((values[i] for _, values in others), ZERO) for i in range(days)]
        shown.append(Series(f"Other tenants ({len(others)})", rest))
    return shown


def dashboard(*, account: Account, now: dt.datetime) -> Dashboard:
    period = month_containing(now)
    estimate = charges_estimate(account=account, period=period, now=now)
    quotas = {q.metric.code: q for q in quota_statuses(account=account, now=now)}
    sources = {line.charge.metric.source for line in estimate.lines if line.kind == "usage"}
    live_now = _live_now(account=account, now=now, sources=sources)
    metrics = [
        MetricRow(
            line=line,
            name=line.charge.metric.name,
            unit=_price_unit(line.charge.metric),
            currency=estimate.currency,
            quota=quotas.get(line.metric_code) if line.charge.limit is not None else None,
            live_now=live_now.get(line.charge.metric.source),
        )
        for line in estimate.lines
        if line.kind == "usage"
    ]
    tenants = tenant_breakdown(estimate)
    codes = sorted({code for row in tenants for code in row["quantities"]})
    names_by_code = {line.metric_code: line.charge.metric.name for line in estimate.lines if line.kind == "usage"}
    metrics_by_code = {code: usage.metric for code, usage in estimate.usage.items()}
    # Each metric's tenant quantities, shown so that they add up to the account's as shown.
    shown = {
        code: format_parts(
            {n: row["quantities"][code] for n, row in enumerate(tenants) if code in row["quantities"]},
            metrics_by_code.get(code),
        )
        for code in codes
    }
    board = Dashboard(
        period=period,
        last_day=period.last_day,
        days_left=(period.end.date() - now.date()).days,
        now=now,
        estimate=estimate,
        metrics=metrics,
        fees=[line for line in estimate.lines if line.kind != "usage"],
        tenants=[
            {**row, "cells": [(names_by_code.get(code, code), shown[code].get(n, "")) for code in codes]}
            for n, row in enumerate(tenants)
        ],
        tenant_metrics=[(code, names_by_code.get(code, code)) for code in codes],
        partners=partner_breakdown(estimate),
    )
    board.charts = usage_charts(account=account, period=period, now=now, metric_codes=set(names_by_code))
    return board


def _live_now(*, account: Account, now: dt.datetime, sources: set[str]) -> dict[str, int]:
    """Tenants and master partners live at ``now``, shown beside the month's count (which also counts those
    that ended earlier in the month), so a customer can tell the two apart."""
    live = {}
    if Metric.Source.TENANTS in sources:
        live[Metric.Source.TENANTS] = (
            Tenant.objects.filter(account=account, activated_at__lte=now)
            .filter(Q(archived_at__isnull=True) | Q(archived_at__gt=now))
            .count()
        )
    if Metric.Source.PARTNERS in sources:
        live[Metric.Source.PARTNERS] = (
            MasterPartner.objects.filter(account=account, activated_at__lte=now)
            .filter(Q(deactivated_at__isnull=True) | Q(deactivated_at__gt=now))
            .count()
        )
    return live


def usage_charts(*, account: Account, period: Period, now: dt.datetime, metric_codes: set[str]) -> list[dict]:
    """Per metric of the plan measured from events: a chart of the account's daily usage and one of the
    same days stacked by tenant."""
    usage = daily_usage(account=account, period=period, now=now)
    names = dict(Tenant.objects.filter(account=account).values_list("id", "name"))
    charts = []
    for entry in usage.metrics:
        metric = entry.metric
        if metric.code not in metric_codes:
            continue
        unit = _chart_unit(metric)
        total: SafeString = bar_chart(
            title=f"{metric.name} per day",
            days=usage.days,
            series=[Series(metric.name, entry.totals)],
            unit=unit,
            metric=metric,
        )
        by_tenant = bar_chart(
            title=f"{metric.name} per day by tenant",
            days=usage.days,
            series=_tenant_series(entry.by_tenant, names, len(usage.days)) or [Series(metric.name, entry.totals)],
            unit=unit,
            metric=metric,
        )
        charts.append({"metric": metric, "total": total, "by_tenant": by_tenant, "unit": unit})
    return charts
