"""The hourly usage report (billing.usage_reported): only for accounts that asked for it, the last full hour's
usage from the rollups and the month's charges so far, to the cent, once per account and hour."""

import datetime as dt

import pytest
import time_machine

from common.models import OutboxEvent
from tests.accounts.factories import AccountFactory
from tests.webhooks.factories import endpoint_for
from usage.services import events_ingest
from webhooks.services.endpoints import endpoint_disable
from webhooks.usage_report import usage_reports_emit

pytestmark = pytest.mark.django_db
UTC = dt.UTC
REPORT_AT = dt.datetime(2026, 12, 7, 16, 5, tzinfo=UTC)
URL = "https://hooks.example.com/ledgerline"


def _messages(account, items, now):
    with time_machine.travel(now, tick=False):
        events_ingest(account=account, items=items, now=now)


def _message(txn, quantity, at):
    return {
        "transaction_id": txn,
        "tenant": "ten_northwind_eu",
        "metric": "messages",
        "quantity": quantity,
        "timestamp": at,
        "properties": {"partner_id": "prt_supplier_001"},
    }


@pytest.fixture
def reporting(business):
    account = business["account"]
    endpoint_for(account, URL, ["billing.usage_reported"])
    _messages(
        account,
        [
            _message("m-before", 500, "2026-12-07T14:30:00Z"),
            _message("m-1", 20000, "2026-12-07T15:10:00Z"),
            _message("m-2", 6000, "2026-12-07T15:59:59Z"),
            _message("m-after", 700, "2026-12-07T16:00:00Z"),
        ],
        dt.datetime(2026, 12, 7, 16, 1, tzinfo=UTC),
    )
    return account


def test_the_report_has_the_hours_usage_and_the_months_charges_to_the_cent(reporting):
    with time_machine.travel(REPORT_AT, tick=False):
        assert usage_reports_emit(now=REPORT_AT) == 1

    event = OutboxEvent.objects.get(type="billing.usage_reported")
    assert event.account_id == reporting.pk
    data = event.payload["data"]
    assert data["account_id"] == reporting.public_id
    assert data["hour"] == {"start": "2026-12-07T15:00:00Z", "end": "2026-12-07T16:00:00Z"}
    # 15:10 and 15:59:59 are in the hour; 14:30 and 16:00 are not.
    assert data["usage"] == [
        {"metric": "messages", "name": "Messages", "unit": "message", "quantity": "26000", "event_count": 2}
    ]
    # Business: $299.00 base fee; 27,200 messages this month, 25,000 included, 2,200 x $0.03 = $66.00.
    assert data["month"] == {
        "start": "2026-12-01T00:00:00Z",
        "end": "2027-01-01T00:00:00Z",
        "currency": "USD",
        "charges_to_date": "365.00",
        "tax_to_date": "0.00",
        "total_to_date": "365.00",
    }


def test_an_hour_is_reported_once(reporting):
    with time_machine.travel(REPORT_AT, tick=False):
        assert usage_reports_emit(now=REPORT_AT) == 1
        assert usage_reports_emit(now=REPORT_AT + dt.timedelta(minutes=20)) == 0
    next_hour = REPORT_AT + dt.timedelta(hours=1)
    with time_machine.travel(next_hour, tick=False):
        assert usage_reports_emit(now=next_hour) == 1
    hours = [e.payload["data"]["hour"]["start"] for e in OutboxEvent.objects.filter(type="billing.usage_reported")]
    assert sorted(hours) == ["2026-12-07T15:00:00Z", "2026-12-07T16:00:00Z"]


def test_an_hour_without_usage_reports_an_empty_list(business):
    endpoint_for(business["account"], URL, ["billing.usage_reported"])
    with time_machine.travel(REPORT_AT, tick=False):
        assert usage_reports_emit(now=REPORT_AT) == 1
    data = OutboxEvent.objects.get(type="billing.usage_reported").payload["data"]
    assert data["usage"] == []
    assert data["month"]["charges_to_date"] == "299.00"


def test_only_accounts_that_asked_get_a_report(reporting, plan):
    every_type = AccountFactory(name="Catch-all")
    endpoint_for(every_type, URL, [])  # every event type, but the hourly report is opt-in
    switched_off = AccountFactory(name="Switched off")
    endpoint, _ = endpoint_for(switched_off, URL, ["billing.usage_reported"])
    endpoint_disable(endpoint=endpoint, reason="Maintenance")
    with time_machine.travel(REPORT_AT, tick=False):
        assert usage_reports_emit(now=REPORT_AT) == 1
    assert list(OutboxEvent.objects.filter(type="billing.usage_reported").values_list("account_id", flat=True)) == [
        reporting.pk
    ]


def test_the_last_hour_of_a_month_is_reported_with_that_months_charges(business):
    endpoint_for(business["account"], URL, ["billing.usage_reported"])
    _messages(
        business["account"],
        [_message("m-late-nov", 1000, "2026-11-30T23:30:00Z")],
        dt.datetime(2026, 11, 30, 23, 50, tzinfo=UTC),
    )
    at = dt.datetime(2026, 12, 1, 0, 5, tzinfo=UTC)
    with time_machine.travel(at, tick=False):
        assert usage_reports_emit(now=at) == 1
    data = OutboxEvent.objects.get(type="billing.usage_reported").payload["data"]
    assert data["hour"] == {"start": "2026-11-30T23:00:00Z", "end": "2026-12-01T00:00:00Z"}
    assert data["month"]["start"] == "2026-11-01T00:00:00Z"
    assert data["usage"][0]["quantity"] == "1000"
