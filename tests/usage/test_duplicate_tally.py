"""Duplicates refused at ingestion are tallied per account, tenant, metric and hour (usage.RefusedDuplicate),
from each refused event as it was sent, whichever road the request took; the answers are unchanged, and a
batch without duplicates never touches the tally."""

import datetime as dt
import json
from decimal import Decimal as D

import pytest
import time_machine
from django.core import signals
from django.db import close_old_connections, connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

from tests.tenants.factories import TenantFactory
from usage.fast_ingest import EventsFastPath
from usage.models import RefusedDuplicate, UsageEvent
from usage.services import IngestRejected, events_ingest, events_ingest_grouped

pytestmark = pytest.mark.django_db
UTC = dt.UTC
NOW = dt.datetime(2026, 11, 26, 10, 30, tzinfo=UTC)
LATER = dt.datetime(2026, 11, 26, 16, 45, tzinfo=UTC)


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def event(txn, quantity=1, at="2026-11-26T10:00:00Z", tenant="ten_northwind_eu", metric="messages", **properties):
    item = {"transaction_id": txn, "tenant": tenant, "metric": metric, "quantity": quantity, "timestamp": at}
    if properties:
        item["properties"] = properties
    return item


def post(client, body):
    return client.post("/v1/events", body, format="json")


def tallies():
    return sorted(
        (t.tenant.public_id, t.metric.code, t.hour, t.count, t.quantity_sum, t.first_refused_at, t.last_refused_at)
        for t in RefusedDuplicate.objects.select_related("tenant", "metric")
    )


def test_a_batch_tallies_keys_already_stored_and_keys_repeated_in_it_as_sent(business, api):
    client = api(business["key"])
    TenantFactory(account=business["account"], public_id="ten_northwind_us")
    first = post(client, {"events": [event("a", 10), event("b", 20, "2026-11-26T09:15:00Z")]})
    assert (first.status_code, first.json()) == (202, {"accepted": 2, "duplicates": 0})
    assert RefusedDuplicate.objects.count() == 0

    # "a" again, sent with another quantity, hour and tenant: tallied as sent (ten_northwind_us, 08:00, 7).
    # "c" twice: the first is stored, the repeat (3, at 10:20) refused.
    second = post(
        client,
        {
            "events": [
                event("a", 7, "2026-11-26T08:40:00Z", tenant="ten_northwind_us"),
                event("c", 5, "2026-11-26T10:10:00Z"),
                event("c", 3, "2026-11-26T10:20:00Z"),
            ]
        },
    )
    assert (second.status_code, second.json()) == (202, {"accepted": 1, "duplicates": 2})
    assert tallies() == [
        ("ten_northwind_eu", "messages", dt.datetime(2026, 11, 26, 10, tzinfo=UTC), 1, D(3), NOW, NOW),
        ("ten_northwind_us", "messages", dt.datetime(2026, 11, 26, 8, tzinfo=UTC), 1, D(7), NOW, NOW),
    ]
    # Nothing refused was stored: "a" is still the first one sent, "c" the first of the two.
    assert sorted(UsageEvent.objects.values_list("transaction_id", "quantity")) == [
        ("a", D(10)),
        ("b", D(20)),
        ("c", D(5)),
    ]


def test_refusals_in_one_hour_add_up_in_one_row(business, api):
    client = api(business["key"])
    post(client, event("a", 10, "2026-11-26T10:05:00Z"))
    post(client, {"events": [event("a", 4, "2026-11-26T10:05:00Z"), event("a", 6, "2026-11-26T10:25:00Z")]})
    with time_machine.travel(LATER, tick=False):
        response = post(client, {"events": [event("a", 2.5, "2026-11-26T10:30:00Z"), event("d", 1)]})
    assert response.json() == {"accepted": 1, "duplicates": 1}
    # Three refusals of "a" stamped in the 10:00 hour: 4 + 6 + 2.5, refused at NOW, NOW and LATER.
    assert tallies() == [
        ("ten_northwind_eu", "messages", dt.datetime(2026, 11, 26, 10, tzinfo=UTC), 3, D("12.5"), NOW, LATER)
    ]


def test_a_batch_without_duplicates_never_touches_the_tally(business, api):
    client = api(business["key"])
    with CaptureQueriesContext(connection) as queries:
        response = post(client, {"events": [event(f"n-{i}", i) for i in range(1, 6)]})
    assert response.json() == {"accepted": 5, "duplicates": 0}
    assert not [q["sql"] for q in queries.captured_queries if "usage_refusedduplicate" in q["sql"]]


def test_a_refused_batch_tallies_nothing(business, api):
    client = api(business["key"])
    post(client, event("a", 10))
    response = post(client, {"events": [event("a", 1), event("b", 1, metric="no_such_metric")]})
    assert response.status_code == 400
    assert RefusedDuplicate.objects.count() == 0


def test_a_large_batch_staged_by_copy_tallies_its_duplicates(business):
    """Over 50 rows the batch goes through the COPY staging table: 60 stored, then 58 of them sent again
    (2 each, one hour) with 2 new ones."""
    account = business["account"]
    items = [event(f"big-{i:03d}", 2, f"2026-11-26T0{i % 2 + 8}:00:00Z") for i in range(60)]
    assert events_ingest(account=account, items=items, now=NOW).accepted == 60
    again = [event(f"big-{i:03d}", 1, "2026-11-26T07:30:00Z") for i in range(58)]
    result = events_ingest(account=account, items=[*again, event("new-1", 1), event("new-2", 1)], now=NOW)
    assert (result.accepted, result.duplicates) == (2, 58)
    assert tallies() == [
        ("ten_northwind_eu", "messages", dt.datetime(2026, 11, 26, 7, tzinfo=UTC), 58, D(58), NOW, NOW)
    ]


def test_single_events_written_by_group_commit_are_tallied(business):
    account = business["account"]
    assert events_ingest_grouped(account=account, items=[event("s-1", 4)], now=NOW).accepted == 1
    again = events_ingest_grouped(account=account, items=[event("s-1", 9, "2026-11-26T09:59:00Z")], now=NOW)
    twice = events_ingest_grouped(account=account, items=[event("s-2", 1), event("s-2", 2)], now=NOW)
    assert ((again.accepted, again.duplicates), (twice.accepted, twice.duplicates)) == ((0, 1), (1, 1))
    assert tallies() == [
        ("ten_northwind_eu", "messages", dt.datetime(2026, 11, 26, 9, tzinfo=UTC), 1, D(9), NOW, NOW),
        ("ten_northwind_eu", "messages", dt.datetime(2026, 11, 26, 10, tzinfo=UTC), 1, D(2), NOW, NOW),
    ]


@pytest.fixture
def lean_handler():
    """The WSGI fast path in this process. Its request signals would close the test's connection (inside the
    test's transaction), so the connection-recycling receiver is off meanwhile, as Django's test client does."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)

    def django_app(environ, start_response):
        raise AssertionError("a single event of this month is answered by the lean handler")

    handler = EventsFastPath(django_app)

    def send(secret, body):
        environ = (
            RequestFactory()
            .post(
                "/v1/events",
                data=json.dumps(body),
                content_type="application/json",
                HTTP_AUTHORIZATION=f"Bearer {secret}",
            )
            .environ
        )
        answer = {}

        def start_response(status, headers):
            answer["status"] = status

        content = b"".join(handler(environ, start_response))
        return answer["status"], content

    yield send
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def test_the_lean_single_event_handler_answers_as_before_and_tallies(business, lean_handler):
    assert lean_handler(business["key"], event("w-1", 5)) == ("202 Accepted", b'{"accepted":1,"duplicates":0}')
    assert lean_handler(business["key"], event("w-1", 6)) == ("202 Accepted", b'{"accepted":0,"duplicates":1}')
    assert tallies() == [("ten_northwind_eu", "messages", dt.datetime(2026, 11, 26, 10, tzinfo=UTC), 1, D(6), NOW, NOW)]


def test_validation_failures_are_not_duplicates(business):
    with pytest.raises(IngestRejected):
        events_ingest(account=business["account"], items=[event("x", -1), event("x", -1)], now=NOW)
    assert RefusedDuplicate.objects.count() == 0
