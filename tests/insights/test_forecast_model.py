"""The forecast model: on a synthetic history with a known weekly pattern (weekdays 1,000 messages, weekends 200)
the running month's projection lands within its stated range and near the true month; the seasonal model recovers
a known month-of-year pattern over 24 months; and whatever the history, ``low ≤ expected ≤ high`` and an
accumulating metric's projection is never below its usage so far."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from insights.forecast import add_months, month_forecast, project_days, project_months, quantile
from tests.accounts.factories import AccountFactory
from tests.billing.cycle import subscribe
from tests.tenants.factories import TenantFactory
from tests.usage.factories import usage_event, usage_ingest

UTC = dt.UTC
HISTORY_START = dt.date(2026, 8, 3)  # a Monday
NOV_16 = dt.datetime(2026, 11, 16, 10, tzinfo=UTC)  # a Monday, 10:00: the 15 first days of November are complete
FLAT = [Decimal(1)] * 5
WAVY = [Decimal("1.00"), Decimal("1.10"), Decimal("0.90"), Decimal("1.05"), Decimal("0.95")]


def messages_on(day: dt.date, scales: list[Decimal]) -> Decimal:
    """The synthetic history: 1,000 messages a weekday and 200 a weekend day, each calendar week (Monday to
    Sunday) scaled by the next of ``scales`` in turn."""
    base = Decimal(1000) if day.weekday() < 5 else Decimal(200)
    return base * scales[((day - HISTORY_START).days // 7) % len(scales)]


def report_history(account, tenant, *, until: dt.datetime, scales: list[Decimal]) -> None:
    """One event a day at 09:00 UTC from ``HISTORY_START`` until ``until``, reported week by week as it happened."""
    day = HISTORY_START
    week: list[dict] = []
    while True:
        at = dt.datetime.combine(day, dt.time(9), tzinfo=UTC)
        if at >= until:
            break
        week.append(
            usage_event(tenant=tenant.public_id, metric="messages", quantity=str(messages_on(day, scales)), at=at)
        )
        if day.weekday() == 6:
            usage_ingest(account=account, items=week, now=at + dt.timedelta(minutes=1))
            week = []
        day += dt.timedelta(days=1)
    if week:
        usage_ingest(account=account, items=week, now=until)


@pytest.fixture
def startup(plan):
    """An account on the Startup plan (5,000 messages included, then 0.05 USD each; 99.00 USD a month)."""
    account = AccountFactory(name="Weekly Co")
    subscribe(account, plan("messaging-startup"), at=dt.datetime(2026, 1, 1, tzinfo=UTC))
    tenant = TenantFactory(account=account, public_id="ten_weekly", activated_at=dt.datetime(2026, 1, 1, tzinfo=UTC))
    return account, tenant


def metric(forecast, code):
    return next(m for m in forecast.metrics if m.code == code)


@pytest.mark.django_db
def test_an_exact_weekly_pattern_is_projected_to_the_true_month(startup):
    account, tenant = startup
    report_history(account, tenant, until=NOV_16, scales=FLAT)
    forecast = month_forecast(account=account, now=NOV_16)
    messages = metric(forecast, "messages")
    # November 2026: 21 weekdays × 1,000 + 9 weekend days × 200; so far Nov 1–15 and this morning's 1,000.
    assert messages.so_far == Decimal(12000)
    assert messages.expected.quantize(Decimal(1)) == Decimal(22800)
    assert forecast.days_observed == 15
    # Priced by the engine: 99.00 base fee + (22,800 − 5,000) × 0.05 = 989.00 USD before tax.
    assert forecast.charges.expected == Decimal("989.00")
    assert forecast.so_far == Decimal("449.00")  # 99.00 + (12,000 − 5,000) × 0.05
    assert forecast.charges.low <= Decimal("989.00") <= forecast.charges.high


@pytest.mark.django_db
def test_a_noisy_weekly_pattern_lands_within_the_stated_range(startup):
    account, tenant = startup
    report_history(account, tenant, until=NOV_16, scales=WAVY)
    forecast = month_forecast(account=account, now=NOV_16)
    messages = metric(forecast, "messages")
    # The true November (by hand from the pattern: weeks scaled 0.90, 1.05, 0.95, 1.00, 1.10, 0.90 in turn).
    true_messages = Decimal(23220)
    true_subtotal = Decimal("1010.00")  # 99.00 + (23,220 − 5,000) × 0.05
    assert messages.so_far == Decimal(10980 + 1000)
    assert messages.low <= true_messages <= messages.high
    assert abs(messages.expected - true_messages) / true_messages < Decimal("0.03")
    assert forecast.charges.low <= true_subtotal <= forecast.charges.high
    assert messages.low < messages.expected < messages.high  # a real range, not a point
    # The chart's days: 15 complete, today's partial, and the 15 days left from today with their band.
    assert (len(messages.actual_days), len(messages.expected_days)) == (16, 15)
    assert all(
        lo <= e <= hi for lo, e, hi in zip(messages.low_days, messages.expected_days, messages.high_days, strict=True)
    )


def test_the_seasonal_model_recovers_a_known_month_of_year_pattern():
    # 24 months from January 2025: (1,000 + 20 t) × a month-of-year factor (averaging 1).
    factors = [
        Decimal(f) for f in ("0.8", "0.85", "0.95", "1.0", "1.05", "1.1", "1.2", "1.15", "1.05", "1.0", "0.9", "0.95")
    ]
    history = [(add_months(dt.date(2025, 1, 1), t), (1000 + 20 * t) * factors[t % 12]) for t in range(24)]
    projection = project_months(history=history, horizon=3)
    assert projection.method == "seasonal"
    assert projection.months == [dt.date(2027, 1, 1), dt.date(2027, 2, 1), dt.date(2027, 3, 1)]
    # The truth: t = 24, 25, 26 → 1,480 × 0.8, 1,500 × 0.85, 1,520 × 0.95.
    truth = [Decimal(1184), Decimal(1275), Decimal(1444)]
    for expected, low, high, true in zip(projection.expected, projection.low, projection.high, truth, strict=True):
        assert abs(expected - true) < Decimal("0.5")
        assert low <= true + Decimal("0.5") and true - Decimal("0.5") <= high


def test_a_short_history_gets_a_damped_trend_with_a_range():
    history = [(add_months(dt.date(2026, 1, 1), t), Decimal(1000 + 100 * t)) for t in range(6)]
    projection = project_months(history=history, horizon=3)
    assert projection.method == "damped_trend"
    # Damped: still growing, by less each month than the history's 100.
    steps = [b - a for a, b in zip([Decimal(1500), *projection.expected], projection.expected, strict=False)]
    assert all(Decimal(0) < s < Decimal(100) for s in steps)
    assert all(lo <= e <= hi for lo, e, hi in zip(projection.low, projection.expected, projection.high, strict=True))


def test_quantiles_interpolate_between_order_statistics():
    values = [Decimal(v) for v in (4, 1, 3, 2, 5)]
    assert quantile(values, Decimal("0.1")) == Decimal("1.4")
    assert quantile(values, Decimal("0.5")) == Decimal(3)
    assert quantile(values, Decimal("0.9")) == Decimal("4.6")


amounts = st.decimals(min_value=0, max_value=100_000, places=2, allow_nan=False, allow_infinity=False)


@settings(max_examples=150, deadline=None)
@given(
    history=st.lists(amounts, max_size=91),
    observed=st.lists(amounts, max_size=30),
    today=amounts,
    left=st.integers(min_value=0, max_value=31),
)
def test_the_day_projection_is_ordered_and_never_below_the_usage_so_far(history, observed, today, left):
    first = dt.date(2026, 1, 1)
    past = [(first + dt.timedelta(days=i), v) for i, v in enumerate(history)]
    month_start = first + dt.timedelta(days=len(history))
    seen = [(month_start + dt.timedelta(days=i), v) for i, v in enumerate(observed)]
    today_date = month_start + dt.timedelta(days=len(observed))
    remaining = [today_date + dt.timedelta(days=i) for i in range(left)]
    projection = project_days(
        history=past + seen, observed=seen, today_so_far=today if left else Decimal(0), remaining=remaining
    )
    so_far = sum((v for _, v in seen), Decimal(0)) + (today if left else Decimal(0))
    assert so_far <= projection.low <= projection.expected <= projection.high


@settings(max_examples=150, deadline=None)
@given(values=st.lists(amounts, min_size=0, max_size=24))
def test_the_month_projection_is_ordered_and_never_negative(values):
    history = [(add_months(dt.date(2025, 1, 1), t), v) for t, v in enumerate(values)]
    projection = project_months(history=history, horizon=3)
    for low, expected, high in zip(projection.low, projection.expected, projection.high, strict=True):
        assert Decimal(0) <= low <= expected <= high
