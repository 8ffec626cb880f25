"""The portal's Forecast page: owners, admins and members see the running month's projection with its range (per
metric and in money, with the chart and its table), the next three months and November's forecasts against its
bill; another account's figures never appear. The summary fragment the analysis page includes."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import time_machine
from django.template.loader import render_to_string
from django.test import Client

from billing.quantities import format_metric_quantity
from insights.forecast import month_forecast
from portal.views.forecast import forecast_summary_context
from tests.accounts.factories import AccountFactory, AccountUserFactory
from tests.billing.cycle import subscribe
from tests.insights.test_forecast_record import invoiced_november
from tests.usage.factories import usage_event, usage_ingest

pytestmark = pytest.mark.django_db
UTC = dt.UTC
DEC_10 = dt.datetime(2026, 12, 10, 9, tzinfo=UTC)
PASSWORD = "portal-pass-123"


@pytest.fixture
def weekly(plan):
    """November invoiced (1,039.00 USD before tax, forecast 989.00 on the 16th and 17th), then December's first
    nine days in the weekly pattern (1,000 a weekday, 200 a weekend day): 7,400 messages so far."""
    account = invoiced_november(plan)
    tenant = account.tenants.get()
    items = [
        usage_event(
            tenant=tenant.public_id,
            metric="messages",
            quantity=1000 if dt.date(2026, 12, n).weekday() < 5 else 200,
            at=dt.datetime(2026, 12, n, 9, tzinfo=UTC),
        )
        for n in range(1, 10)
    ]
    usage_ingest(account=account, items=items, now=dt.datetime(2026, 12, 9, 23, tzinfo=UTC))
    with time_machine.travel(DEC_10, tick=False):
        yield account


def signed_in(account, role: str) -> Client:
    membership = AccountUserFactory(account=account, role=role)
    client = Client()
    assert client.login(username=membership.user.username, password=PASSWORD)
    return client


def text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


@pytest.mark.parametrize("role", ["owner", "admin", "member"])
def test_every_role_sees_the_projection_with_its_range(weekly, role):
    forecast = month_forecast(account=weekly, now=DEC_10)
    charges = forecast.charges
    assert charges.low < charges.expected < charges.high
    page = signed_in(weekly, role).get("/portal/forecast/")
    assert page.status_code == 200
    body = page.content.decode()
    words = text(body)
    assert "Forecast, December 2026" in words
    # 99.00 + (7,400 − 5,000) × 0.05 = 219.00 USD so far.
    assert "So far USD 219.00 if the month closed now" in words
    assert f"Expected at the month's end USD {charges.expected:,}" in words
    assert f"range USD {charges.low:,} to USD {charges.high:,}" in words
    messages = next(m for m in forecast.metrics if m.code == "messages")
    shown = [format_metric_quantity(q, messages.metric) for q in (messages.expected, messages.low, messages.high)]
    assert f"Messages (message) 7,400 {shown[0]} {shown[1]} – {shown[2]} weekday pattern" in words
    # The chart: its summary, the band, and the day-by-day table.
    assert 'class="band"' in body and "Messages, December 2026: so far and expected as a table" in words
    assert "7,400 messages in 9 days" in words
    assert [m for m in re.findall(r'data-month="([0-9-]+)"', body)] == ["2027-01", "2027-02", "2027-03", "2026-11"]
    # November: billed 1,039.00; forecast 989.00 half-way, 50.00 (4.81 %) short, outside its range.
    assert (
        "November 2026 USD 1,039.00 USD 989.00 (USD 959.50 – USD 1,018.50, Nov 16) USD 50.00 (4.81 %) no 0 % of 2"
        in words
    )


def test_another_accounts_figures_never_appear(weekly, plan):
    other = AccountFactory(name="Globex")
    subscribe(other, plan("messaging-business"), at=dt.datetime(2026, 1, 1, tzinfo=UTC))
    theirs = text(signed_in(other, "owner").get("/portal/forecast/").content.decode())
    assert "Expected at the month's end USD 299.00" in theirs
    assert "1,039.00" not in theirs and "7,400" not in theirs
    assert "No month with a forecast has been invoiced yet" in theirs
    ours = text(signed_in(weekly, "owner").get("/portal/forecast/").content.decode())
    assert "299.00" not in ours


def test_signed_out_visitors_go_to_the_login_page(weekly):
    response = Client().get("/portal/forecast/")
    assert (response.status_code, response["Location"]) == (302, "/portal/login/?next=/portal/forecast/")


def test_the_summary_fragment_shows_the_expected_total_and_its_range(weekly):
    context = forecast_summary_context(weekly, DEC_10)
    summary = context["forecast_summary"]
    assert (summary["so_far"], summary["url"]) == (
        month_forecast(account=weekly, now=DEC_10).so_far,
        "/portal/forecast/",
    )
    words = text(render_to_string("portal/_forecast_summary.html", context))
    assert words == (
        f"Forecast for December 2026 USD {summary['expected']:,} expected before tax at the month's end, range "
        f"USD {summary['low']:,} to USD {summary['high']:,} (USD 219.00 so far) The forecast, day by day"
    )
