"""Late usage: events for an invoiced month, accepted in the grace window and billed on the next invoice."""

import datetime as dt
from decimal import Decimal as D

import pytest
import time_machine

from billing.models import Invoice, InvoiceLine
from tests.accounts.factories import AccountFactory
from tests.billing.cycle import CLOSE_AT, DECEMBER, JAN_1, UTC, close, event, ingest, subscribe
from tests.tenants.factories import TenantFactory
from usage.models import UsageEvent
from usage.services import IngestRejected

pytestmark = pytest.mark.django_db
JANUARY_CLOSE = dt.datetime(2027, 1, 1, 0, 5, tzinfo=UTC)


@pytest.fixture
def november_invoiced(plan):
    """Business account, 31,000 messages in November, invoiced and finalized Dec 1 00:05."""
    account = AccountFactory(name="Northwind")
    subscribe(account, plan("messaging-business"))
    TenantFactory(account=account, public_id="ten_nw", activated_at=JAN_1)
    ingest(account, [event("nov-1", "ten_nw", "messages", 31_000, "2026-11-10T10:00:00Z")])
    close()
    return account


def test_an_event_inside_the_grace_window_is_late_and_billed_on_the_next_invoice(november_invoiced):
    account = november_invoiced
    # Dec 3 is inside the 7 days after November closed (Dec 1 00:05 → Dec 8 00:05).
    result = ingest(
        account,
        [event("nov-late", "ten_nw", "messages", 1_000, "2026-11-29T23:00:00Z")],
        now=dt.datetime(2026, 12, 3, 9, tzinfo=UTC),
    )
    assert result.accepted == 1
    late = UsageEvent.objects.get(transaction_id="nov-late")
    assert (late.is_late, late.billing_month) == (True, dt.date(2026, 12, 1))
    ingest(
        account,
        [event("dec-1", "ten_nw", "messages", 5_000, "2026-12-10T10:00:00Z")],
        now=dt.datetime(2026, 12, 31, tzinfo=UTC),
    )
    close(period=DECEMBER, now=JANUARY_CLOSE)

    november = Invoice.objects.get(account=account, period_start__month=11)
    december = Invoice.objects.get(account=account, period_start__month=12)
    assert december.number == "INV-2027-000001"
    late_line = december.lines.get(kind=InvoiceLine.Kind.LATE_USAGE)
    # November already billed 31,000 messages (6,000 over the 25,000 included): 1,000 more cost 1,000 × $0.03.
    assert (late_line.description, late_line.quantity, late_line.amount, late_line.usage_month) == (
        "Late usage: Messages, November 2026",
        D(1_000),
        D("30.00"),
        dt.date(2026, 11, 1),
    )
    assert late_line.transaction_ids == ["nov-late"]
    # December's own 5,000 messages are inside the included 25,000.
    assert december.lines.get(kind="usage", metric__code="messages").quantity == D(5_000)
    # $299 base fee + $30.00 late usage
    assert december.total == D("329.00")

    # Every message is billed on exactly one invoice: 31,000 on November's, 1,000 late + 5,000 on December's.
    billed = sum(
        line.quantity
        for invoice in (november, december)
        for line in invoice.lines.filter(metric__code="messages", kind__in=["usage", "late_usage"])
    )
    assert billed == D(37_000) == sum(e.quantity for e in UsageEvent.objects.filter(account=account))
    assert november.lines.get(metric__code="messages").quantity == D(31_000)


def test_an_event_after_the_grace_window_is_refused(november_invoiced):
    with pytest.raises(IngestRejected) as caught:
        ingest(
            november_invoiced,
            [event("too-late", "ten_nw", "messages", 1_000, "2026-11-29T23:00:00Z")],
            now=CLOSE_AT + dt.timedelta(days=7, seconds=1),
        )
    assert caught.value.status == 400
    assert caught.value.errors == [
        {
            "index": 0,
            "field": "timestamp",
            "code": "period_closed",
            "message": "Usage for 2026-11 was invoiced and its grace window for late usage ended on "
            "2026-12-08 00:05 UTC.",
        }
    ]
    assert not UsageEvent.objects.filter(transaction_id="too-late").exists()


def test_a_storage_reading_for_an_invoiced_month_is_refused_at_once(november_invoiced):
    with pytest.raises(IngestRejected) as caught:
        ingest(
            november_invoiced,
            [event("nov-storage", "ten_nw", "storage_gb", 12, "2026-11-29T23:00:00Z")],
            now=dt.datetime(2026, 12, 2, 9, tzinfo=UTC),
        )
    assert caught.value.status == 400
    assert [(e["field"], e["code"]) for e in caught.value.errors] == [("timestamp", "gauge_period_closed")]
    assert not UsageEvent.objects.filter(transaction_id="nov-storage").exists()


def test_late_usage_of_an_account_that_left_is_still_billed(plan):
    from billing.services.subscriptions import subscription_cancel

    account = AccountFactory(name="Leaving")
    subscription = subscribe(account, plan("messaging-business"))
    TenantFactory(account=account, public_id="ten_lv", activated_at=JAN_1)
    ingest(account, [event("nov-1", "ten_lv", "messages", 26_000, "2026-11-10T10:00:00Z")])
    with time_machine.travel(dt.datetime(2026, 11, 20, tzinfo=UTC), tick=False):
        subscription_cancel(subscription=subscription, at_period_end=True)
    close()  # November billed in full; the subscription ends Dec 1
    ingest(
        account,
        [event("nov-late", "ten_lv", "messages", 1_000, "2026-11-30T20:00:00Z")],
        now=dt.datetime(2026, 12, 2, tzinfo=UTC),
    )
    close(period=DECEMBER, now=JANUARY_CLOSE)
    december = Invoice.objects.get(account=account, period_start__month=12)
    # November had 26,000 messages (1,000 over the 25,000 included); 1,000 more at $0.03 = $30.00.
    assert [(line.kind, line.amount, line.transaction_ids) for line in december.lines.all()] == [
        ("late_usage", D("30.00"), ["nov-late"])
    ]
    assert december.total == D("30.00")
