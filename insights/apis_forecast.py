"""``GET /v1/billing/forecast``: the running month's projected usage and charges at its end, the next three months,
and how far the forecasts of past months were from the bill. Read-only. A ``read`` key reads its own account; an
``export`` key (without a dataset limit: the forecast reads usage and invoices) names the account with
``?account=acc_…``. A key pinned to a tenant reads none (the charges are the account's). The serializers below are
the documented shape of the answer (``tests/test_openapi_conformance.py`` checks the schema against them)."""

from __future__ import annotations

import datetime as dt

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import HasReadOrExportScope, export_dataset_permission
from billing import schema_ledger
from billing.apis import account_of_request
from billing.apis_journal import PeriodOut
from billing.apis_ledger import IsAccountWideKey
from common import clock
from common.formats import decimal_string, iso_utc, money_string
from common.money import AMOUNT_MAX_DIGITS, CURRENCY_MINOR_UNITS, QUANTITY_DECIMAL_PLACES, QUANTITY_MAX_DIGITS
from common.periods import Period
from insights.forecast import (
    Charges,
    MetricForecast,
    MonthAccuracy,
    MonthForecast,
    NextMonth,
    forecast_accuracy,
    month_forecast,
    next_months_forecast,
)

METRIC_METHODS = [
    "weekday_pattern",
    "current_level",
    "count_so_far",
    "count_history",
    "seasonal",
    "damped_trend",
    "flat",
    "none",
]
MONTH_METHODS = ["seasonal", "damped_trend", "flat", "none"]
FORECAST_PERMISSIONS = [HasReadOrExportScope, IsAccountWideKey, export_dataset_permission(None)]


def _money(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(
        max_digits=AMOUNT_MAX_DIGITS, decimal_places=max(CURRENCY_MINOR_UNITS.values()), **kwargs
    )


def _quantity(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=QUANTITY_MAX_DIGITS, decimal_places=QUANTITY_DECIMAL_PLACES, **kwargs)


class MetricForecastOut(serializers.Serializer):
    metric = serializers.CharField(help_text="The metric's code.")
    name = serializers.CharField()
    unit = serializers.CharField()
    method = serializers.ChoiceField(
        choices=METRIC_METHODS,
        help_text="weekday_pattern (sums and counts), current_level (storage), count_so_far (tenants, partners), "
        "count_history (active users, features); for months to come the monthly model: seasonal, damped_trend, "
        "flat, or none (no usage yet).",
    )
    so_far = _quantity(help_text="The month's billed quantity so far (0 for a month to come).")
    expected = _quantity()
    low = _quantity()
    high = _quantity()


class ChargesFields(serializers.Serializer):
    expected = _money(help_text="The subtotal before tax the rating engine gives the expected quantities.")
    low = _money(help_text="… and the low ends of the ranges.")
    high = _money(help_text="… and the high ends of the ranges.")


class RunningMonthOut(ChargesFields):
    period = PeriodOut()
    days_observed = serializers.IntegerField(help_text="Complete UTC days of the month so far.")
    so_far = _money(help_text="The subtotal if the month closed now.")
    metrics = MetricForecastOut(many=True)


class NextMonthOut(ChargesFields):
    month = serializers.CharField(help_text="YYYY-MM.")
    period = PeriodOut()
    method = serializers.ChoiceField(choices=MONTH_METHODS)
    metrics = MetricForecastOut(many=True)


class ForecastCheckOut(serializers.Serializer):
    made_on = serializers.DateField(help_text="The day (UTC) the forecast was made, from the usage until its start.")
    expected = _money()
    low = _money()
    high = _money()
    error = _money(help_text="actual − expected: positive when the bill was higher than forecast.")
    error_percent = serializers.DecimalField(
        max_digits=12, decimal_places=2, allow_null=True, help_text="The error as a percentage of the actual."
    )
    in_range = serializers.BooleanField(help_text="Whether the actual fell in [low, high].")


class MonthAccuracyOut(serializers.Serializer):
    month = serializers.CharField(help_text="YYYY-MM.")
    invoice = serializers.CharField(help_text="The month's issued invoice.")
    actual = _money(help_text="The invoice's subtotal before tax.")
    forecasts = ForecastCheckOut(many=True)


class ForecastOut(serializers.Serializer):
    account_id = serializers.CharField()
    currency = serializers.CharField()
    made_at = serializers.DateTimeField()
    running_month = RunningMonthOut()
    next_months = NextMonthOut(many=True)
    accuracy = MonthAccuracyOut(many=True, help_text="The last six invoiced months, newest first.")


def _period_out(period: Period) -> dict:
    return {"start": iso_utc(period.start), "end": iso_utc(period.end)}


def _metric_out(forecast: MetricForecast) -> dict:
    return {
        "metric": forecast.code,
        "name": forecast.metric.name,
        "unit": forecast.metric.unit,
        "method": forecast.method,
        "so_far": decimal_string(forecast.so_far),
        "expected": decimal_string(forecast.expected),
        "low": decimal_string(forecast.low),
        "high": decimal_string(forecast.high),
    }


def _charges_out(charges: Charges) -> dict:
    currency = charges.currency
    return {
        "expected": money_string(charges.expected, currency),
        "low": money_string(charges.low, currency),
        "high": money_string(charges.high, currency),
    }


def _accuracy_out(month: MonthAccuracy) -> dict:
    currency = month.currency
    return {
        "month": f"{month.period.start:%Y-%m}",
        "invoice": month.invoice_number or "",
        "actual": money_string(month.actual, currency),
        "forecasts": [
            {
                "made_on": check.made_on.isoformat(),
                "expected": money_string(check.expected, currency),
                "low": money_string(check.low, currency),
                "high": money_string(check.high, currency),
                "error": money_string(check.error, currency),
                "error_percent": None if check.error_percent is None else format(check.error_percent, "f"),
                "in_range": check.in_range,
            }
            for check in month.checks
        ],
    }


def forecast_document(
    running: MonthForecast, next_months: list[NextMonth], accuracy: list[MonthAccuracy], now: dt.datetime
) -> dict:
    currency = running.currency
    return {
        "account_id": running.account.public_id,
        "currency": currency,
        "made_at": iso_utc(now),
        "running_month": {
            "period": _period_out(running.period),
            "days_observed": running.days_observed,
            "so_far": money_string(running.so_far, currency),
            **_charges_out(running.charges),
            "metrics": [_metric_out(m) for m in running.metrics],
        },
        "next_months": [
            {
                "month": f"{month.period.start:%Y-%m}",
                "period": _period_out(month.period),
                "method": month.method,
                **_charges_out(month.charges),
                "metrics": [_metric_out(m) for m in month.metrics],
            }
            for month in next_months
        ],
        "accuracy": [_accuracy_out(month) for month in accuracy],
    }


FORECAST_DESCRIPTION = """
The account's forecast, every figure with a range (`low` ≤ `expected` ≤ `high`, an ~80 % interval):

- `running_month`: each metric's quantity so far and at the month's end, and the month's subtotal before tax at
  its end, priced by the same rating engine as the invoice. Sums and counts (messages, API requests) fill the days
  left from the weekday pattern of the last 13 weeks scaled to this month's level so far, the range from the spread
  of past weeks; storage holds its current level; active users and features count at least what is seen so far
  (the last three months' median is expected); tenants and master partners are those live so far.
- `next_months`: the three months after it, from up to 24 months of history: a seasonal model (level and trend ×
  month-of-year factor) with 12 months or more, a damped trend with fewer; priced on the current plan.
- `accuracy`: for the last six invoiced months, each forecast recorded (one a day) against the invoice's subtotal
  before tax: the error in money and percent, and whether the bill fell in the range.

A `read` key reads its own account; an `export` key without a dataset limit names the account with
`?account=acc_…` (an account outside the key's export accounts is a `404`).
"""

_METRIC = {"metric": "messages", "name": "Messages", "unit": "message"}
FORECAST_EXAMPLE = OpenApiExample(
    "Half-way through December",
    response_only=True,
    value={
        "account_id": "acc_000001",
        "currency": "USD",
        "made_at": "2026-12-16T10:00:00Z",
        "running_month": {
            "period": {"start": "2026-12-01T00:00:00Z", "end": "2027-01-01T00:00:00Z"},
            "days_observed": 15,
            "so_far": "449.00",
            "expected": "989.00",
            "low": "941.50",
            "high": "1052.75",
            "metrics": [
                {
                    **_METRIC,
                    "method": "weekday_pattern",
                    "so_far": "12000",
                    "expected": "22800",
                    "low": "21850",
                    "high": "24055",
                }
            ],
        },
        "next_months": [
            {
                "month": "2027-01",
                "period": {"start": "2027-01-01T00:00:00Z", "end": "2027-02-01T00:00:00Z"},
                "method": "damped_trend",
                "expected": "1002.40",
                "low": "905.10",
                "high": "1110.95",
                "metrics": [
                    {
                        **_METRIC,
                        "method": "damped_trend",
                        "so_far": "0",
                        "expected": "23068",
                        "low": "21122",
                        "high": "25239",
                    }
                ],
            }
        ],
        "accuracy": [
            {
                "month": "2026-11",
                "invoice": "INV-2026-000001",
                "actual": "1039.00",
                "forecasts": [
                    {
                        "made_on": "2026-11-16",
                        "expected": "989.00",
                        "low": "960.00",
                        "high": "1020.00",
                        "error": "50.00",
                        "error_percent": "4.81",
                        "in_range": False,
                    }
                ],
            }
        ],
    },
)


class ForecastApi(APIView):
    permission_classes = FORECAST_PERMISSIONS

    @extend_schema(
        operation_id="billing_forecast",
        summary="The running month's forecast, the next three months and past forecasts' error",
        description=FORECAST_DESCRIPTION,
        parameters=[schema_ledger.EXPORT_ACCOUNT],
        responses=schema_ledger.account_wide_responses(ForecastOut),
        examples=[FORECAST_EXAMPLE],
        tags=["Billing"],
    )
    def get(self, request):
        account = account_of_request(request)
        now = clock.now()
        return Response(
            forecast_document(
                month_forecast(account=account, now=now),
                next_months_forecast(account=account, now=now),
                forecast_accuracy(account=account, now=now),
                now,
            )
        )
