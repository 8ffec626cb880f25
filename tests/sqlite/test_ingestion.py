"""POST /v1/events on SQLite: events land through the generic writers (plain ORM statements instead of
PostgreSQL's COPY and ON CONFLICT), counted once, rolled up per hour, and refused whole when one is bad."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.db import connection

from usage.models import EventKey, UsageEvent, UsageRollup, UsageUniqueValue

pytestmark = pytest.mark.django_db
UTC = dt.UTC
NOW = dt.datetime(2026, 11, 26, 10, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def event(txn: str, quantity="1", at: str = "2026-11-26T10:00:00Z") -> dict:
    return {"transaction_id": txn, "tenant": "ten_nw_1", "metric": "messages", "quantity": quantity, "timestamp": at}


def with_partner(item: dict) -> dict:
    return {**item, "properties": {"partner_id": "prt_supplier_001"}}


def post(client, body, **headers):
    return client.post("/v1/events", body, format="json", **headers)


def rollups() -> dict[tuple, tuple]:
    """Every rollup: (hour, partner) -> (sum, count, max)."""
    return {
        (r.hour, r.partner.public_id if r.partner else None): (r.quantity_sum, r.event_count, r.quantity_max)
        for r in UsageRollup.objects.select_related("partner")
    }


def test_the_database_is_the_demos_sqlite_in_write_ahead_log_mode():
    assert connection.vendor == "sqlite"
    assert connection.settings_dict["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone() == ("wal",)


def test_a_single_event_is_accepted_stored_and_rolled_up(northwind):
    client = northwind()["client"]
    response = post(client, with_partner(event("txn-1", quantity="2.5")))
    assert (response.status_code, response.json()) == (202, {"accepted": 1, "duplicates": 0})
    stored = UsageEvent.objects.get()
    assert (stored.transaction_id, stored.quantity, stored.partner.public_id, stored.billing_month) == (
        "txn-1",
        Decimal("2.5"),
        "prt_supplier_001",
        dt.date(2026, 11, 1),
    )
    assert rollups() == {
        (dt.datetime(2026, 11, 26, 10, tzinfo=UTC), "prt_supplier_001"): (Decimal("2.5"), 1, Decimal("2.5"))
    }


def test_batches_count_each_transaction_once_and_add_to_the_hours_they_fall_in(northwind):
    client = northwind()["client"]
    first = post(
        client,
        {
            "events": [
                with_partner(event("m1", "2", "2026-11-26T10:00:00Z")),
                with_partner(event("m2", "3", "2026-11-26T10:15:00Z")),
                event("m3", "5", "2026-11-26T09:10:00Z"),
                with_partner(event("m1", "99", "2026-11-26T10:20:00Z")),  # a repeat inside the batch
            ]
        },
    )
    assert (first.status_code, first.json()) == (202, {"accepted": 3, "duplicates": 1})
    # The second batch adds to a stored hour (updated in place) and repeats a stored transaction.
    second = post(
        client, {"events": [with_partner(event("m2", "3")), with_partner(event("m4", "4", "2026-11-26T10:20:00Z"))]}
    )
    assert (second.status_code, second.json()) == (202, {"accepted": 1, "duplicates": 1})
    assert UsageEvent.objects.count() == EventKey.objects.count() == 4
    assert rollups() == {
        (dt.datetime(2026, 11, 26, 9, tzinfo=UTC), None): (Decimal("5"), 1, Decimal("5")),
        (dt.datetime(2026, 11, 26, 10, tzinfo=UTC), "prt_supplier_001"): (Decimal("9"), 3, Decimal("4")),
    }


def test_a_replay_returns_the_same_answer_and_counts_nothing_twice(northwind):
    client = northwind()["client"]
    batch = {"events": [event("r1", "7"), event("r2", "8", "2026-11-26T10:25:00Z"), event("r3", "1")]}
    first = post(client, batch, HTTP_IDEMPOTENCY_KEY="batch-7")
    again = post(client, batch, HTTP_IDEMPOTENCY_KEY="batch-7")
    assert (first.status_code, again.status_code) == (202, 202)
    assert first.json() == again.json() == {"accepted": 3, "duplicates": 0}
    assert again["Idempotent-Replayed"] == "true"
    # Without the key the same events are recognised by their transaction ids.
    resent = post(client, batch)
    assert (resent.status_code, resent.json()) == (202, {"accepted": 0, "duplicates": 3})
    assert UsageEvent.objects.count() == 3
    assert rollups() == {(dt.datetime(2026, 11, 26, 10, tzinfo=UTC), None): (Decimal("16"), 3, Decimal("8"))}


def test_a_bad_event_is_a_400_naming_its_field_and_reason_and_nothing_is_stored(northwind):
    client = northwind()["client"]
    response = post(client, {"events": [event("b1"), event("b2", quantity="-1"), event("b3")]})
    assert response.status_code == 400
    body = response.json()
    assert body["error"]["code"] == "invalid_events"
    assert body["errors"] == [
        {"index": 1, "field": "quantity", "code": "negative_quantity", "message": "The quantity must not be negative."}
    ]
    assert (UsageEvent.objects.count(), EventKey.objects.count(), UsageRollup.objects.count()) == (0, 0, 0)


def test_gauge_readings_and_distinct_users_are_kept_by_the_generic_writer(northwind):
    client = northwind()["client"]
    storage = {"tenant": "ten_nw_1", "metric": "storage_gb"}
    post(client, {**storage, "transaction_id": "s1", "quantity": "2", "timestamp": "2026-11-26T10:00:00Z"})
    post(client, {**storage, "transaction_id": "s2", "quantity": "4", "timestamp": "2026-11-26T10:30:00Z"})
    rollup = UsageRollup.objects.get(metric__code="storage_gb")
    # 2 GB for the half hour between the readings: 1 GB-hour inside the hour, 4 GB from 10:30 on.
    assert (rollup.event_count, rollup.gauge_first_value, rollup.gauge_last_value, rollup.gauge_inner_area) == (
        2,
        Decimal("2"),
        Decimal("4"),
        Decimal("1"),
    )
    assert (rollup.gauge_first_at, rollup.gauge_last_at) == (
        dt.datetime(2026, 11, 26, 10, tzinfo=UTC),
        dt.datetime(2026, 11, 26, 10, 30, tzinfo=UTC),
    )
    users = [
        {"transaction_id": f"u{n}", "tenant": "ten_nw_1", "metric": "active_users", "properties": {"user_id": user}}
        for n, user in enumerate(["ada", "bob", "ada"])
    ]
    assert post(client, {"events": users}).json() == {"accepted": 3, "duplicates": 0}
    assert sorted(UsageUniqueValue.objects.values_list("value", flat=True)) == ["ada", "bob"]
