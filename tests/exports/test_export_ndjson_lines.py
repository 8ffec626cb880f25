"""An NDJSON stream of events on PostgreSQL is written by the database, line by line: each line holds exactly what
the JSON page holds for the same event (cursor, ids, times to the micro-second, quantity, properties, nulls), and the
CSV stream is unchanged."""

from __future__ import annotations

import orjson
import pytest
import time_machine

from tests.exports.test_export_api import LATER, T0, get, key, streamed, two_accounts  # noqa: F401 - the fixture
from tests.usage.factories import usage_event
from usage.services import events_ingest

pytestmark = pytest.mark.django_db


def test_every_streamed_line_equals_the_pages_row(api, two_accounts):  # noqa: F811 - the imported fixture
    northwind = two_accounts["Northwind"]
    items = [
        usage_event(tenant="ten_nw_eu", at="2026-11-10T08:00:00.5Z", transaction_id="sms-1", quantity="2.50"),
        usage_event(tenant="ten_nw_us", at="2026-11-10T09:30:00Z", transaction_id="sms-2", quantity="1"),
        usage_event(tenant="ten_nw_us", at="2026-11-11T23:59:59.000001Z", transaction_id="sms-3", quantity="1000"),
    ]
    items[0]["properties"] = {"channel": "sms", "partner_id": "prt_nw_1", "note": 'é "quoted"'}
    with time_machine.travel(T0, tick=False):
        events_ingest(account=northwind, items=items, now=T0)
    secret = key("export")

    page = get(api, secret, "/v1/export/events").json()["data"]
    lines = streamed(get(api, secret, "/v1/export/events?format=ndjson")).splitlines()

    assert [orjson.loads(line) for line in lines] == page
    assert [row["timestamp"] for row in page] == [
        "2026-11-10T08:00:00.500000Z",
        "2026-11-10T09:30:00Z",
        "2026-11-11T23:59:59.000001Z",
    ]
    assert [row["quantity"] for row in page] == ["2.5", "1", "1000"]
    assert [row["partner_id"] for row in page] == ["prt_nw_1", None, None]
    resumed = streamed(get(api, secret, f"/v1/export/events?format=ndjson&cursor={page[0]['cursor']}"))
    assert [orjson.loads(line)["transaction_id"] for line in resumed.splitlines()] == ["sms-2", "sms-3"]
