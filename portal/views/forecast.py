"""Forecast: the running month's projected usage and charges at its end with their ranges (a chart per metric of the
days so far and the days projected), the next three months, and how far past forecasts were from the bill
(``insights.forecast``). Every role of the account reads it; the figures are the account's own
(``request.account``). ``forecast_summary_context`` gives the short summary other pages include
(``portal/_forecast_summary.html``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.shortcuts import render
from django.urls import reverse
from django.utils.safestring import SafeString

from accounts.models import Account
from common import clock
from insights.forecast import (
    MetricForecast,
    forecast_accuracy,
    is_accumulating,
    month_forecast,
    next_months_forecast,
)
from portal.access import portal_view
from portal.charts import range_chart

METHODS = {
    "weekday_pattern": "weekday pattern of the last 13 weeks",
    "current_level": "current level held to the month's end",
    "count_so_far": "those live so far",
    "count_history": "at least the count so far; the last 3 months' median expected",
    "seasonal": "seasonal model (trend × month of the year)",
    "damped_trend": "damped trend",
    "flat": "last month's figure",
    "none": "no usage yet",
}


@dataclass
class Cumulative:
    days: list[dt.date]
    actual: list[Decimal]
    expected: list[Decimal]
    low: list[Decimal]
    high: list[Decimal]


def cumulative(forecast: MetricForecast, month_days: list[dt.date]) -> Cumulative:
    """The running totals a range chart draws: each complete day so far, then from today on the expected total and
    its range (today counts at least what it has used already, as in the projection)."""
    complete = len(forecast.actual_days) - (1 if forecast.expected_days else 0)
    actual, total = [], Decimal(0)
    for value in forecast.actual_days[:complete]:
        total += value
        actual.append(total)
    today_so_far = forecast.actual_days[complete] if forecast.expected_days else Decimal(0)

    def running(values: list[Decimal]) -> list[Decimal]:
        result, sum_ = [], total
        for n, value in enumerate(values):
            sum_ += max(today_so_far, value) if n == 0 else value
            result.append(sum_)
        return result

    return Cumulative(
        days=month_days,
        actual=actual,
        expected=running(forecast.expected_days),
        low=running(forecast.low_days),
        high=running(forecast.high_days),
    )


def _charts(forecast_metrics: list[MetricForecast], month_days: list[dt.date], month: str) -> list[SafeString]:
    charts = []
    for forecast in forecast_metrics:
        if not is_accumulating(forecast.metric) or not (forecast.so_far or forecast.expected):
            continue
        lines = cumulative(forecast, month_days)
        charts.append(
            range_chart(
                title=f"{forecast.metric.name}, {month}: so far and expected",
                days=lines.days,
                actual=lines.actual,
                expected=lines.expected,
                low=lines.low,
                high=lines.high,
                unit=f"{forecast.metric.unit}s",
                metric=forecast.metric,
            )
        )
    return charts


@portal_view
def forecast_page(request):
    now = clock.now()
    account = request.account
    running = month_forecast(account=account, now=now)
    month_days = []
    day = running.period.start.date()
    while day <= running.period.last_day:
        month_days.append(day)
        day += dt.timedelta(days=1)
    month = f"{running.period.start:%B %Y}"
    return render(
        request,
        "portal/forecast.html",
        {
            "forecast": running,
            "month": month,
            "last_day": running.period.last_day,
            "charts": _charts(running.metrics, month_days, month),
            "next_months": next_months_forecast(account=account, now=now),
            "accuracy": forecast_accuracy(account=account, now=now),
            "methods": METHODS,
            "now": now,
        },
    )


def forecast_summary_context(account: Account, now: dt.datetime) -> dict:
    """``{"forecast_summary": …}`` for ``portal/_forecast_summary.html``: the running month's expected subtotal at
    its end with its range, the subtotal so far, and the link to the Forecast page."""
    running = month_forecast(account=account, now=now)
    charges = running.charges
    return {
        "forecast_summary": {
            "period": running.period,
            "currency": charges.currency,
            "so_far": running.so_far,
            "expected": charges.expected,
            "low": charges.low,
            "high": charges.high,
            "url": reverse("portal:forecast"),
        }
    }
