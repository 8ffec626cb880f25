"""Refused duplicates on SQLite (the demo's database): the generic writer names the refused rows and the tally
is kept with plain ORM statements instead of PostgreSQL's ON CONFLICT upsert."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine

from usage.models import RefusedDuplicate, UsageEvent
from usage.services import events_ingest_grouped

pytestmark = pytest.mark.django_db
UTC = dt.UTC
NOW = dt.datetime(2026, 11, 26, 10, 30, tzinfo=UTC)
LATER = dt.datetime(2026, 11, 26, 11, 0, tzinfo=UTC)
HOUR = dt.datetime(2026, 11, 26, 10, tzinfo=UTC)


def event(txn: str, quantity="1", at: str = "2026-11-26T10:00:00Z") -> dict:
    return {"transaction_id": txn, "tenant": "ten_nw_1", "metric": "messages", "quantity": quantity, "timestamp": at}


def post(client, body):
    return client.post("/v1/events", body, format="json")


def tallies():
    return [
        (t.tenant.public_id, t.hour, t.count, t.quantity_sum, t.first_refused_at, t.last_refused_at)
        for t in RefusedDuplicate.objects.select_related("tenant").order_by("hour")
    ]


def test_batches_tally_stored_and_repeated_keys_and_add_to_the_hours_row(northwind):
    client = northwind()["client"]
    with time_machine.travel(NOW, tick=False):
        assert post(client, {"events": [event("a", "10"), event("b", "2")]}).json() == {"accepted": 2, "duplicates": 0}
        assert RefusedDuplicate.objects.count() == 0
        second = post(client, {"events": [event("a", "4", "2026-11-26T10:20:00Z"), event("c", "1"), event("c", "3")]})
        assert second.json() == {"accepted": 1, "duplicates": 2}
    assert tallies() == [("ten_nw_1", HOUR, 2, Decimal(7), NOW, NOW)]
    with time_machine.travel(LATER, tick=False):
        assert post(client, event("b", "0.5", "2026-11-26T10:59:00Z")).json() == {"accepted": 0, "duplicates": 1}
    assert tallies() == [("ten_nw_1", HOUR, 3, Decimal("7.5"), NOW, LATER)]
    assert sorted(UsageEvent.objects.values_list("transaction_id", "quantity")) == [
        ("a", Decimal(10)),
        ("b", Decimal(2)),
        ("c", Decimal(1)),
    ]


def test_single_events_through_group_commit_are_tallied(northwind):
    account = northwind()["account"]
    with time_machine.travel(NOW, tick=False):
        events_ingest_grouped(account=account, items=[event("s", "5")], now=NOW)
        result = events_ingest_grouped(account=account, items=[event("s", "6")], now=NOW)
    assert (result.accepted, result.duplicates) == (0, 1)
    assert tallies() == [("ten_nw_1", HOUR, 1, Decimal(6), NOW, NOW)]
