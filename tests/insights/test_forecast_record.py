"""The daily record of the running month's forecast: one row per account and day (made from the usage until the
day's start, so recording again the same day changes nothing), the actual bill filled in from the month's issued
invoice (subtotal before tax), and the forecast error shown in money and percent with whether the bill fell in the
range."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import time_machine

from billing.models import Invoice
from insights.forecast import forecast_accuracy
from insights.models import Forecast
from insights.services_forecast import forecast_actuals_fill, forecast_record, forecasts_record_book
from insights.tasks_forecast import forecasts_record_task
from tests.accounts.factories import AccountFactory
from tests.billing.cycle import NOVEMBER, close, subscribe
from tests.insights.test_forecast_model import FLAT, report_history
from tests.tenants.factories import TenantFactory
from tests.usage.factories import usage_event, usage_ingest

pytestmark = pytest.mark.django_db
UTC = dt.UTC
NOV_16_0230 = dt.datetime(2026, 11, 16, 2, 30, tzinfo=UTC)
NOV_17_0230 = dt.datetime(2026, 11, 17, 2, 30, tzinfo=UTC)
CLOSE_AT = dt.datetime(2026, 12, 1, 0, 5, tzinfo=UTC)


def forecast_account(plan, name="Weekly Co", public_id="ten_weekly"):
    """The exact weekly pattern (weekdays 1,000 messages, weekends 200) from August on the Startup plan, up to the
    16th of November: its November forecast is 22,800 messages, 989.00 USD before tax."""
    account = AccountFactory(name=name)
    subscribe(account, plan("messaging-startup"), at=dt.datetime(2026, 1, 1, tzinfo=UTC))
    tenant = TenantFactory(account=account, public_id=public_id, activated_at=dt.datetime(2026, 1, 1, tzinfo=UTC))
    report_history(account, tenant, until=dt.datetime(2026, 11, 16, tzinfo=UTC), scales=FLAT)
    return account, tenant


def rest_of_november(account, tenant, first=16):
    """The pattern from the ``first`` to the end of November, with 1,000 messages more on Friday the 20th: 23,800
    messages in the month, billed 99.00 + (23,800 − 5,000) × 0.05 = 1,039.00 USD before tax."""
    items = []
    for n in range(first, 31):
        day = dt.date(2026, 11, n)
        quantity = (1000 if day.weekday() < 5 else 200) + (1000 if n == 20 else 0)
        at = dt.datetime.combine(day, dt.time(9), tzinfo=UTC)
        items.append(usage_event(tenant=tenant.public_id, metric="messages", quantity=quantity, at=at))
    usage_ingest(account=account, items=items, now=dt.datetime(2026, 11, 30, 12, tzinfo=UTC))


def invoiced_november(plan, **kwargs):
    """Forecasts recorded on the 16th and the 17th, the rest of November reported, November invoiced (at once)."""
    account, tenant = forecast_account(plan, **kwargs)
    forecast_record(account=account, now=NOV_16_0230)
    usage_ingest(
        account=account,
        items=[usage_event(tenant=tenant.public_id, metric="messages", quantity=1000, at="2026-11-16T09:00:00Z")],
        now=dt.datetime(2026, 11, 16, 10, tzinfo=UTC),
    )
    forecast_record(account=account, now=NOV_17_0230)
    rest_of_november(account, tenant, first=17)
    close(period=NOVEMBER, now=CLOSE_AT)
    return account


def test_the_days_forecast_is_recorded_once(plan):
    account, _ = forecast_account(plan)
    first = forecast_record(account=account, now=NOV_16_0230)
    again = forecast_record(account=account, now=dt.datetime(2026, 11, 16, 23, 59, tzinfo=UTC))
    assert again.pk == first.pk
    assert Forecast.objects.filter(account=account).count() == 1
    assert (first.month, first.made_on, first.currency) == (dt.date(2026, 11, 1), dt.date(2026, 11, 16), "USD")
    # From the complete days Nov 1–15 (11,000 messages): 22,800 by the month's end, 989.00 USD. The exact
    # pattern's weeks never stray, so the 11,800 messages still to come get the narrowest range, ±5 %:
    # 11,000 + 11,210 = 22,210 (959.50 USD) to 11,000 + 12,390 = 23,390 (1,018.50 USD).
    assert (first.expected, first.low, first.high, first.actual) == (
        Decimal("989.00"),
        Decimal("959.50"),
        Decimal("1018.50"),
        None,
    )
    forecast_record(account=account, now=NOV_17_0230)
    assert list(Forecast.objects.filter(account=account).values_list("made_on", flat=True)) == [
        dt.date(2026, 11, 17),
        dt.date(2026, 11, 16),
    ]


def test_the_book_records_subscribed_accounts_only(plan):
    account, _ = forecast_account(plan)
    AccountFactory(name="Never subscribed")
    assert forecasts_record_book(now=NOV_16_0230) == 1
    assert forecasts_record_book(now=NOV_16_0230) == 1
    assert list(Forecast.objects.values_list("account__name", "made_on")) == [("Weekly Co", dt.date(2026, 11, 16))]


def test_the_actual_bill_is_filled_in_and_the_error_shown(plan):
    account = invoiced_november(plan)
    invoice = Invoice.objects.get(account=account, period_start=NOVEMBER.start)
    assert (invoice.status, invoice.subtotal) == ("finalized", Decimal("1039.00"))
    assert forecast_actuals_fill(now=dt.datetime(2026, 12, 1, 2, 30, tzinfo=UTC)) == 2
    assert forecast_actuals_fill(now=dt.datetime(2026, 12, 2, 2, 30, tzinfo=UTC)) == 0
    assert set(Forecast.objects.filter(account=account).values_list("actual", flat=True)) == {Decimal("1039.00")}

    (november,) = forecast_accuracy(account=account, now=dt.datetime(2026, 12, 10, tzinfo=UTC))
    assert (november.period, november.invoice_number, november.actual) == (NOVEMBER, invoice.number, Decimal("1039.00"))
    assert [(c.made_on, c.expected, c.low, c.high, c.error, c.error_percent, c.in_range) for c in november.checks] == [
        # 1,039.00 − 989.00 = 50.00, 4.81 % of the bill: the extra 1,000 messages took the bill past both ranges
        # (on the 17th, 12,000 so far and 10,800 to come: 22,260 to 23,340 messages, 962.00 to 1,016.00 USD).
        (
            dt.date(2026, 11, 16),
            Decimal("989.00"),
            Decimal("959.50"),
            Decimal("1018.50"),
            Decimal("50.00"),
            Decimal("4.81"),
            False,
        ),
        (
            dt.date(2026, 11, 17),
            Decimal("989.00"),
            Decimal("962.00"),
            Decimal("1016.00"),
            Decimal("50.00"),
            Decimal("4.81"),
            False,
        ),
    ]
    assert (november.in_range_share, november.mean_absolute_error_percent) == (Decimal("0.00"), Decimal("4.81"))
    assert november.halfway.made_on == dt.date(2026, 11, 16)


def test_a_draft_invoice_fills_nothing(plan):
    account, tenant = forecast_account(plan)
    forecast_record(account=account, now=NOV_16_0230)
    rest_of_november(account, tenant)
    close(period=NOVEMBER, now=CLOSE_AT, review_hours=48)  # drafted, in review
    assert Invoice.objects.get(account=account).status == "draft"
    assert forecast_actuals_fill(now=dt.datetime(2026, 12, 1, 2, 30, tzinfo=UTC)) == 0
    assert forecast_accuracy(account=account, now=dt.datetime(2026, 12, 1, 3, tzinfo=UTC)) == []


def test_the_daily_task_fills_then_records(plan):
    account, _ = forecast_account(plan)
    with time_machine.travel(NOV_16_0230, tick=False):
        assert forecasts_record_task() == {"recorded": 1, "actuals_filled": 0}
    assert Forecast.objects.get(account=account).made_on == dt.date(2026, 11, 16)
