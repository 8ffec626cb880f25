"""What the portal's dashboard shows, read through the same selectors as the usage API, so both show the
same figures: ``charges_estimate`` for quantities and charges, ``quota_statuses`` for limits,
``tenant_breakdown``/``partner_breakdown`` for the breakdowns, ``daily_usage`` for the charts."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from django.utils.safestring import SafeString

from accounts.models import Account
from billing.models import Metric
from billing.selectors import ChargeLine, Estimate, charges_estimate, partner_breakdown, tenant_breakdown
from common.periods import Period, month_containing
from portal.charts import Series, bar_chart
from tenants.models import Tenant
from usage.quotas import QuotaStatus, quota_statuses
from usage.selectors import daily_usage

ZERO = Decimal(0)
# Meter colours change as usage crosses these shares of a limit (the same thresholds as usage alerts).
METER_LEVELS = ((100, "over", "at or over the limit"), (90, "high", "past 90 %"), (75, "warn", "past 75 %"))
# A stacked chart shows this many tenants by name; the rest are added up as "Other tenants".
CHART_TENANTS = 6


@dataclass
class MetricRow:
    line: ChargeLine
    name: str
    unit: str
    quota: QuotaStatus | None = None

    @property
    def percent(self) -> Decimal | None:
        return self.quota.percentage if self.quota else None

    @property
    def meter_width(self) -> Decimal:
        return min(self.percent or ZERO, Decimal(100))

    @property
    def level(self) -> tuple[str, str]:
        for threshold, css, words in METER_LEVELS:
            if self.percent is not None and self.percent >= threshold:
                return css, words
        return "", "below 75 %"


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
    metrics = [
        MetricRow(
            line=line,
            name=line.charge.metric.name,
            unit=_price_unit(line.charge.metric),
            quota=quotas.get(line.metric_code) if line.charge.limit is not None else None,
        )
        for line in estimate.lines
        if line.kind == "usage"
    ]
    tenants = tenant_breakdown(estimate)
    codes = sorted({code for row in tenants for code in row["quantities"]})
    names_by_code = {line.metric_code: line.charge.metric.name for line in estimate.lines if line.kind == "usage"}
    board = Dashboard(
        period=period,
        last_day=(period.end - dt.timedelta(days=1)).date(),
        days_left=(period.end.date() - now.date()).days,
        now=now,
        estimate=estimate,
        metrics=metrics,
        fees=[line for line in estimate.lines if line.kind != "usage"],
        tenants=[
            {**row, "cells": [(names_by_code.get(code, code), row["quantities"].get(code)) for code in codes]}
            for row in tenants
        ],
        tenant_metrics=[(code, names_by_code.get(code, code)) for code in codes],
        partners=partner_breakdown(estimate),
    )
    board.charts = usage_charts(account=account, period=period, now=now, metric_codes=set(names_by_code))
    return board


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
            title=f"{metric.name} per day", days=usage.days, series=[Series(metric.name, entry.totals)], unit=unit
        )
        by_tenant = bar_chart(
            title=f"{metric.name} per day by tenant",
            days=usage.days,
            series=_tenant_series(entry.by_tenant, names, len(usage.days)) or [Series(metric.name, entry.totals)],
            unit=unit,
        )
        charts.append({"metric": metric, "total": total, "by_tenant": by_tenant, "unit": unit})
    return charts
