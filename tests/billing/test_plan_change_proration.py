"""An upgrade Startup → Business on the 15th of a 30-day month, usage on both sides: the invoice to the cent.

November 2026 has 30 days. The change at Nov 15 00:00 UTC leaves 14 days (14/30 of the month) on Startup and
16 days (16/30) on Business. Figures are worked by hand in the comments; prices are in docs/catalogue.md.
"""

import datetime as dt
from decimal import Decimal as D

import pytest
import time_machine

from billing.models import Invoice
from billing.services.subscriptions import subscription_change_plan
from tests.accounts.factories import AccountFactory
from tests.billing.cycle import JAN_1, NOVEMBER, UTC, close, event, ingest, subscribe
from tests.tenants.factories import TenantFactory

pytestmark = pytest.mark.django_db
NOV_15 = dt.datetime(2026, 11, 15, tzinfo=UTC)


def lines_of(invoice):
    return [
        (line.kind, line.description, line.quantity, line.included, line.billable, line.amount)
        for line in invoice.lines.order_by("position")
    ]


def test_upgrade_startup_to_business_on_the_15th_with_usage_on_both_sides(plan):
    account = AccountFactory(name="Contoso", tax_rate=D(0))
    startup = subscribe(account, plan("messaging-startup"), started_at=JAN_1)
    for n in range(4):
        TenantFactory(account=account, public_id=f"ten_co_{n}", activated_at=JAN_1)
    with time_machine.travel(NOV_15, tick=False):
        business = subscription_change_plan(subscription=startup, plan_version=plan("messaging-business"), at=NOV_15)
    ingest(
        account,
        [
            event("before", "ten_co_0", "messages", 4_000, "2026-11-05T10:00:00Z"),
            event("after", "ten_co_1", "messages", 20_000, "2026-11-20T10:00:00Z"),
        ],
    )
    close()

    startup.refresh_from_db()
    assert (startup.status, startup.ended_at, business.started_at, business.trial_end) == (
        "cancelled",
        NOV_15,
        NOV_15,
        None,
    )
    invoice = Invoice.objects.get(account=account, period_start=NOVEMBER.start)
    assert lines_of(invoice) == [
        # $99.00 × 14/30 = $46.20
        ("base_fee", "Startup base fee (Nov 1–Nov 14)", None, None, None, D("46.20")),
        ("usage", "Master partners (Nov 1–Nov 14)", D(0), None, D(0), D(0)),
        # 4,000 messages before the 15th; 5,000 × 14/30 = 2,333.33 included:
        # 1,666.67 × $0.05 = $83.333… → $83.33
        ("usage", "Messages (Nov 1–Nov 14)", D(4_000), D("2333.33333333"), D("1666.66666667"), D("83.33")),
        # 1 GB-month × 14/30 included, nothing stored
        ("usage", "Storage (Nov 1–Nov 14)", D(0), D("0.46666667"), D(0), D(0)),
        # 4 tenants over the month, 3 included: 1 × $29.00 = $29.00 × 14/30 = $13.533… → $13.53
        ("usage", "Active tenants (Nov 1–Nov 14)", D(4), D(3), D(1), D("13.53")),
        # $299.00 × 16/30 = $159.466… → $159.47
        ("base_fee", "Business base fee (Nov 15–Nov 30)", None, None, None, D("159.47")),
        ("usage", "Master partners (Nov 15–Nov 30)", D(0), None, D(0), D(0)),
        # 20,000 messages after the change; 25,000 × 16/30 = 13,333.33 included:
        # 6,666.67 × $0.03 = $200.00
        ("usage", "Messages (Nov 15–Nov 30)", D(20_000), D("13333.33333333"), D("6666.66666667"), D("200.00")),
        # 10 GB-months × 16/30 included, nothing stored
        ("usage", "Storage (Nov 15–Nov 30)", D(0), D("5.33333333"), D(0), D(0)),
        # 4 tenants, 10 included on Business
        ("usage", "Active tenants (Nov 15–Nov 30)", D(4), D(10), D(0), D(0)),
    ]
    spans = [(line.period_start, line.period_end) for line in invoice.lines.order_by("position")]
    assert spans == [(NOVEMBER.start, NOV_15)] * 5 + [(NOV_15, NOVEMBER.end)] * 5
    # $46.20 + $83.33 + $13.53 + $159.47 + $200.00 = $502.53; tax rate 0
    assert (invoice.subtotal, invoice.discount_total, invoice.tax, invoice.total) == (
        D("502.53"),
        D("0.00"),
        D("0.00"),
        D("502.53"),
    )
