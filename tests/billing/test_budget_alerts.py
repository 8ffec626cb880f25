"""Budget alerts: one ``billing.budget_alert`` per budget, period and threshold as spend crosses it."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine

from accounts.services import budget_create, budget_update
from billing.models import Invoice
from billing.services.budgets import budgets_evaluate
from billing.tasks import budgets_evaluate_task
from common.models import OutboxEvent
from common.periods import month_period
from tests.accounts.factories import AccountFactory
from tests.billing.cycle import close, event, ingest, subscribe
from tests.tenants.factories import TenantFactory

pytestmark = pytest.mark.django_db
UTC = dt.UTC
OCTOBER_CLOSE = dt.datetime(2026, 11, 1, 0, 5, tzinfo=UTC)


@pytest.fixture
def business(plan):
    """Business plan (base fee 299.00, 25,000 messages included, 0.03 per message beyond), trial long over."""
    account = AccountFactory(name="Northwind")
    subscribe(account, plan("messaging-business"), at=dt.datetime(2026, 10, 1, tzinfo=UTC))
    TenantFactory(account=account, public_id="ten_northwind_eu")
    return account


def messages(account, txn, quantity, at):
    ingest(account, [event(txn, "ten_northwind_eu", "messages", quantity, f"{at:%Y-%m-%dT%H:%M:%SZ}")], now=at)


def evaluate(at, **kwargs):
    with time_machine.travel(at, tick=False):
        return budgets_evaluate(now=at, **kwargs)


def alerts(account):
    return [
        e.payload["data"]
        for e in OutboxEvent.objects.filter(account=account, type="billing.budget_alert").order_by("id")
    ]


def summary(account):
    return [(a["threshold_percentage"], a["current_usage"], a["period_remaining_days"]) for a in alerts(account)]


def test_spend_crossing_each_threshold_alerts_once_with_exact_figures(business):
    budget_create(account=business, name="Monthly spend", amount="500.00")
    at = dt.datetime(2026, 11, 10, 12, tzinfo=UTC)
    evaluate(at)  # base fee alone: 299.00 of 500.00 = 59.8 %
    assert alerts(business) == [
        {
            "account_id": business.public_id,
            "budget_name": "Monthly spend",
            "threshold_percentage": 50,
            "current_usage": "299.00",
            "budget_limit": "500.00",
            "currency": "USD",
            "period_remaining_days": 20,  # 20 days and 12 hours to December 1st
            "period": {"start": "2026-11-01T00:00:00Z", "end": "2026-12-01T00:00:00Z"},
        }
    ]

    messages(business, "m1", 25_000 + 2_533, at)  # 299.00 + 75.99 = 374.99: just short of 75 %
    assert evaluate(at) == []
    messages(business, "m2", 1, at)  # 299.00 + 76.02 = 375.02: 75 %
    later = dt.datetime(2026, 11, 25, 0, 0, 1, tzinfo=UTC)
    messages(business, "m3", 5_034 - 2_534, later)  # 299.00 + 151.02 = 450.02: 90 %
    evaluate(later)
    last_day = dt.datetime(2026, 11, 30, 23, tzinfo=UTC)
    messages(business, "m4", 6_700 - 5_034, last_day)  # 299.00 + 201.00 = 500.00: 100 % exactly
    evaluate(last_day)

    assert summary(business) == [(50, "299.00", 20), (75, "450.02", 5), (90, "450.02", 5), (100, "500.00", 0)]


def test_evaluating_again_writes_nothing_new(business):
    budget_create(account=business, name="Monthly spend", amount="300.00", alert_thresholds=[50, 90, 100])
    at = dt.datetime(2026, 11, 10, tzinfo=UTC)
    first = evaluate(at)
    assert [e.payload["data"]["threshold_percentage"] for e in first] == [50, 90]
    assert evaluate(at) == []
    assert evaluate(at + dt.timedelta(hours=1)) == []
    assert OutboxEvent.objects.filter(type="billing.budget_alert").count() == 2


def test_a_new_month_starts_over(business):
    budget_create(account=business, name="Monthly spend", amount="500.00")
    evaluate(dt.datetime(2026, 11, 10, tzinfo=UTC))
    evaluate(dt.datetime(2026, 11, 30, tzinfo=UTC))
    evaluate(dt.datetime(2026, 12, 1, 9, tzinfo=UTC))
    sent = [(a["threshold_percentage"], a["period"]["start"], a["period_remaining_days"]) for a in alerts(business)]
    assert sent == [
        (50, "2026-11-01T00:00:00Z", 21),
        (50, "2026-12-01T00:00:00Z", 30),
    ]


def test_a_quarterly_budget_adds_the_quarters_earlier_invoices(business):
    messages(business, "oct", 26_000, dt.datetime(2026, 10, 20, tzinfo=UTC))  # October: 299.00 + 30.00
    close(period=month_period(2026, 10), now=OCTOBER_CLOSE)
    assert Invoice.objects.get(account=business).total == Decimal("329.00")
    budget_create(account=business, name="Q4", amount="1000.00", period="quarterly")

    at = dt.datetime(2026, 11, 10, tzinfo=UTC)
    evaluate(at)  # 329.00 invoiced + 299.00 estimated = 628.00 of 1,000.00
    assert alerts(business) == [
        {
            "account_id": business.public_id,
            "budget_name": "Q4",
            "threshold_percentage": 50,
            "current_usage": "628.00",
            "budget_limit": "1000.00",
            "currency": "USD",
            "period_remaining_days": 52,  # November 10th to January 1st
            "period": {"start": "2026-10-01T00:00:00Z", "end": "2027-01-01T00:00:00Z"},
        }
    ]


def test_spend_counts_tax(plan):
    account = AccountFactory(tax_rate="20")
    subscribe(account, plan("messaging-business"), at=dt.datetime(2026, 10, 1, tzinfo=UTC))
    budget_create(account=account, name="Monthly spend", amount="358.80", alert_thresholds=[100])
    evaluate(dt.datetime(2026, 11, 10, tzinfo=UTC))  # 299.00 + 20 % tax = 358.80
    assert summary(account) == [(100, "358.80", 21)]


def test_inactive_budgets_do_not_alert(business):
    budget = budget_create(account=business, name="Monthly spend", amount="100.00")
    budget_update(budget=budget, data={"is_active": False})
    assert evaluate(dt.datetime(2026, 11, 10, tzinfo=UTC)) == []


def test_creating_a_budget_evaluates_it_after_commit(business, django_capture_on_commit_callbacks):
    with time_machine.travel(dt.datetime(2026, 11, 10, tzinfo=UTC), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            budget_create(account=business, name="Monthly spend", amount="398.00")
        assert summary(business) == [(50, "299.00", 21), (75, "299.00", 21)]
        assert budgets_evaluate_task.delay().get() == 0
