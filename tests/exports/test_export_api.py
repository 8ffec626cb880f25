"""The export API as an ERP system uses it: pages and streams of events and documents, exactly once while events
arrive, least privilege for export keys, and the audit of every request."""

from __future__ import annotations

import csv
import datetime as dt
import io
import threading

import orjson
import pytest
import time_machine
from django.db import connection, transaction
from django.http import StreamingHttpResponse

from accounts.services import api_key_create
from billing.services.subscriptions import subscription_create
from exports.models import ExportRequest
from tests.accounts.factories import AccountFactory
from tests.tenants.factories import MasterPartnerFactory, TenantFactory
from tests.usage.factories import usage_event
from usage.models import UsageEvent
from usage.services import events_ingest

pytestmark = pytest.mark.django_db
UTC = dt.UTC
T0 = dt.datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
LATER = T0 + dt.timedelta(minutes=5)  # every event ingested at T0 has settled


def ingest(account, tenant, count, *, now=T0, at="2026-11-10T08:00:00Z", metric="messages", prefix="evt", **props):
    items = [
        {**usage_event(tenant=tenant, at=at, metric=metric, transaction_id=f"{prefix}-{n}"), **props}
        for n in range(count)
    ]
    with time_machine.travel(now, tick=False):
        return events_ingest(account=account, items=items, now=now)


@pytest.fixture
def two_accounts(plan):
    """Northwind (tenants EU and US, partner prt_nw_1) and Globex (tenant ten_globex), on Business since January."""
    accounts = {}
    for name, tenants in (("Northwind", ("ten_nw_eu", "ten_nw_us")), ("Globex", ("ten_globex",))):
        account = AccountFactory(name=name)
        subscription_create(
            account=account, plan_version=plan("messaging-business"), started_at=dt.datetime(2026, 1, 1, tzinfo=UTC)
        )
        for public_id in tenants:
            TenantFactory(account=account, public_id=public_id, activated_at=dt.datetime(2026, 1, 1, tzinfo=UTC))
        accounts[name] = account
    MasterPartnerFactory(
        account=accounts["Northwind"], public_id="prt_nw_1", activated_at=dt.datetime(2026, 1, 1, tzinfo=UTC)
    )
    return accounts


def key(*scopes, account=None, tenant=None, **limits) -> str:
    return api_key_create(name="k", scopes=list(scopes), account=account, tenant=tenant, **limits)[1]


def get(api, secret, path, at=LATER, **headers):
    with time_machine.travel(at, tick=False):
        return api(secret).get(path, **headers)


def streamed(response) -> bytes:
    assert isinstance(response, StreamingHttpResponse)
    return b"".join(response.streaming_content)


def txns(body) -> list[str]:
    return [row["transaction_id"] for row in body["data"]]


# --- Events: pages ---------------------------------------------------------------------------------------


def test_a_page_of_events_has_every_documented_field(api, two_accounts):
    northwind = two_accounts["Northwind"]
    items = [usage_event(tenant="ten_nw_eu", at="2026-11-10T08:00:00.5Z", transaction_id="sms-1", quantity="2.50")]
    items[0]["properties"] = {"channel": "sms", "partner_id": "prt_nw_1"}
    with time_machine.travel(T0, tick=False):
        events_ingest(account=northwind, items=items, now=T0)

    response = get(api, key("export"), "/v1/export/events")

    assert response.status_code == 200
    body = response.json()
    assert body["has_more"] is False
    assert body["data"] == [
        {
            "cursor": body["next_cursor"],
            "transaction_id": "sms-1",
            "account_id": northwind.public_id,
            "tenant_id": "ten_nw_eu",
            "metric": "messages",
            "partner_id": "prt_nw_1",
            "timestamp": "2026-11-10T08:00:00.500000Z",
            "quantity": "2.5",
            "properties": {"channel": "sms", "partner_id": "prt_nw_1"},
            "billing_month": "2026-11",
            "received_at": "2026-11-20T12:00:00Z",
            "is_late": False,
        }
    ]


def test_paging_through_a_month_returns_each_event_once_while_new_events_arrive(api, two_accounts):
    northwind = two_accounts["Northwind"]
    ingest(northwind, "ten_nw_eu", 25, prefix="first")
    secret = key("export")
    seen: list[str] = []
    cursor = None
    at = LATER
    for round_ in range(12):
        # New events keep arriving between pages, each batch a little later.
        ingest(northwind, "ten_nw_us", 3, now=at, prefix=f"new{round_}")
        query = "/v1/export/events?billing_month=2026-11&page_size=7" + (f"&cursor={cursor}" if cursor else "")
        at += dt.timedelta(seconds=4)
        body = get(api, secret, query, at=at).json()
        seen += txns(body)
        cursor = body["next_cursor"]
    # Once the last batch has settled, the rest follows.
    at += dt.timedelta(minutes=1)
    while True:
        body = get(api, secret, f"/v1/export/events?page_size=7&cursor={cursor}", at=at).json()
        seen += txns(body)
        cursor = body["next_cursor"]
        if not body["has_more"]:
            break
    assert len(seen) == len(set(seen)) == 25 + 12 * 3
    assert sorted(seen) == sorted(UsageEvent.objects.values_list("transaction_id", flat=True))


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("settle_seconds, exported_once", [(10, True), (0, False)])
def test_an_event_committed_after_a_page_passed_its_id_is_still_exported(
    api, two_accounts, settings, settle_seconds, exported_once
):
    """A slow ingest transaction takes its ids, then a quick one commits higher ids; a page read in between sees
    the higher ids only. With the settle horizon the page stops before the young events, and the slow batch comes
    with the next page; without it (0 s) the page passes the slow batch's ids and it is never exported. (Two
    accounts: one account's ingests wait for each other.)"""
    settings.EXPORT_SETTLE_SECONDS = settle_seconds
    northwind = two_accounts["Northwind"]
    ingest(northwind, "ten_nw_eu", 4, prefix="old")
    inserted, release = threading.Event(), threading.Event()

    def slow_batch():
        try:
            with transaction.atomic():
                ingest(two_accounts["Globex"], "ten_globex", 3, now=LATER, prefix="slow")
                inserted.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=slow_batch)
    thread.start()
    assert inserted.wait(10)
    ingest(northwind, "ten_nw_eu", 2, now=LATER, prefix="quick")
    secret = key("export")
    first = get(api, secret, "/v1/export/events", at=LATER + dt.timedelta(seconds=1)).json()
    release.set()
    thread.join()
    rest = get(api, secret, f"/v1/export/events?cursor={first['next_cursor']}", at=LATER + dt.timedelta(minutes=1))
    seen = txns(first) + txns(rest.json())
    slow = {"slow-0", "slow-1", "slow-2"}
    assert len(seen) == len(set(seen))
    assert slow <= set(seen) if exported_once else not slow & set(seen)
    assert {"old-0", "old-3", "quick-0", "quick-1"} <= set(seen)


def test_young_events_wait_for_the_settle_horizon(api, two_accounts):
    northwind = two_accounts["Northwind"]
    ingest(northwind, "ten_nw_eu", 3)
    secret = key("export")
    young = get(api, secret, "/v1/export/events", at=T0 + dt.timedelta(seconds=10)).json()
    assert young == {"data": [], "next_cursor": None, "has_more": False}
    settled = get(api, secret, "/v1/export/events", at=T0 + dt.timedelta(seconds=10, microseconds=1)).json()
    assert txns(settled) == ["evt-0", "evt-1", "evt-2"]


def test_event_filters_combine(api, two_accounts):
    northwind, globex = two_accounts["Northwind"], two_accounts["Globex"]
    ingest(northwind, "ten_nw_eu", 2, at="2026-11-10T08:00:00Z", prefix="eu-early")
    ingest(northwind, "ten_nw_eu", 2, at="2026-11-15T08:00:00Z", prefix="eu-mid")
    ingest(northwind, "ten_nw_eu", 2, at="2026-11-18T00:00:00Z", prefix="eu-edge")  # exactly `to`: excluded
    ingest(northwind, "ten_nw_us", 2, at="2026-11-15T08:00:00Z", prefix="us-mid")
    ingest(northwind, "ten_nw_eu", 1, at="2026-11-15T08:00:00Z", metric="api_requests", prefix="eu-api")
    ingest(globex, "ten_globex", 2, at="2026-11-15T08:00:00Z", prefix="gx")
    secret = key("export")
    query = f"account={northwind.public_id}&tenant=ten_nw_eu&metric=messages&from=2026-11-12&to=2026-11-18T00:00:00Z"
    assert txns(get(api, secret, f"/v1/export/events?{query}").json()) == ["eu-mid-0", "eu-mid-1"]
    assert txns(get(api, secret, "/v1/export/events?tenant=ten_globex&billing_month=2026-11").json()) == [
        "gx-0",
        "gx-1",
    ]
    assert get(api, secret, "/v1/export/events?billing_month=2026-10").json()["data"] == []
    assert get(api, secret, "/v1/export/events?partner=prt_nw_1").json()["data"] == []


@pytest.mark.parametrize(
    "query, field",
    [
        ("billing_month=2026-13", "billing_month"),
        ("from=yesterday", "from"),
        ("from=2026-11-10T00:00:00", "from"),  # no time zone
        ("from=2026-11-12&to=2026-11-12", "to"),
        ("page_size=0", "page_size"),
        ("page_size=1001", "page_size"),
        ("cursor=not-ours", "cursor"),
        ("cursor=aTEuMg", "cursor"),  # an invoices cursor
        ("format=xml", "format"),
    ],
)
def test_bad_filters_cursors_and_page_sizes_are_a_400_naming_the_field(api, two_accounts, query, field):
    response = get(api, key("export"), f"/v1/export/events?{query}")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == field


# --- Events: streams -------------------------------------------------------------------------------------


def test_an_ndjson_stream_carries_every_row_with_its_cursor_and_resumes_from_one(api, two_accounts, settings):
    settings.EXPORT_STREAM_CHUNK_BYTES = 1000  # several chunks
    northwind = two_accounts["Northwind"]
    ingest(northwind, "ten_nw_eu", 10)
    secret = key("export")
    response = get(api, secret, "/v1/export/events", HTTP_ACCEPT="application/x-ndjson")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-ndjson"
    chunks = list(response.streaming_content)
    lines = [orjson.loads(line) for line in b"".join(chunks).splitlines()]
    assert [row["transaction_id"] for row in lines] == [f"evt-{n}" for n in range(10)]
    assert len(chunks) > 1
    resumed = get(api, secret, f"/v1/export/events?format=ndjson&cursor={lines[6]['cursor']}")
    assert [orjson.loads(line)["transaction_id"] for line in streamed(resumed).splitlines()] == [
        "evt-7",
        "evt-8",
        "evt-9",
    ]


def test_a_csv_stream_has_a_header_and_flat_rows(api, two_accounts):
    northwind = two_accounts["Northwind"]
    ingest(northwind, "ten_nw_eu", 2, properties={"channel": "sms"})
    response = get(api, key("export"), "/v1/export/events", HTTP_ACCEPT="text/csv")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(streamed(response).decode())))
    assert rows[0] == [
        "cursor",
        "transaction_id",
        "account_id",
        "tenant_id",
        "metric",
        "partner_id",
        "timestamp",
        "quantity",
        "billing_month",
        "received_at",
        "is_late",
        "properties",
    ]
    assert [r[1:] for r in rows[1:]] == [
        [
            f"evt-{n}",
            northwind.public_id,
            "ten_nw_eu",
            "messages",
            "",
            "2026-11-10T08:00:00Z",
            "1",
            "2026-11",
            "2026-11-20T12:00:00Z",
            "false",
            '{"channel": "sms"}',
        ]
        for n in range(2)
    ]


def test_a_csv_stream_reads_from_a_server_side_cursor_in_chunks(api, two_accounts, settings):
    """Constant memory: the rows come from a PostgreSQL cursor, EXPORT_STREAM_CHUNK_ROWS at a time, inside the
    stream's own transaction — not a list of the month."""
    settings.EXPORT_STREAM_CHUNK_ROWS = 3
    ingest(two_accounts["Northwind"], "ten_nw_eu", 9)
    response = get(api, key("export"), "/v1/export/events?format=csv")
    content = iter(response.streaming_content)
    first = next(content)
    with connection.cursor() as cursor:
        cursor.execute("SELECT name, is_holdable FROM pg_cursors WHERE name LIKE '_django_curs_%%'")
        open_cursors = cursor.fetchall()
    assert len(open_cursors) == 1 and open_cursors[0][1] is False  # streamed, not materialized WITH HOLD
    assert first.count(b"\r\n") == 1 + 3  # the header and the first chunk
    assert sum(chunk.count(b"\r\n") for chunk in content) == 6
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_cursors WHERE name LIKE '_django_curs_%%'")
        assert cursor.fetchone()[0] == 0


def test_an_ndjson_stream_comes_from_copy_in_chunks_that_end_on_a_line(api, two_accounts, settings):
    """Constant memory: the lines come from one COPY of the database, passed on in chunks of about
    EXPORT_STREAM_CHUNK_BYTES, each ending on a whole line; the audit counts the lines and keeps the last cursor."""
    settings.EXPORT_STREAM_CHUNK_BYTES = 700
    ingest(two_accounts["Northwind"], "ten_nw_eu", 12)
    response = get(api, key("export"), "/v1/export/events?format=ndjson")
    chunks = list(response.streaming_content)
    assert len(chunks) >= 3
    assert all(chunk.endswith(b"\n") for chunk in chunks)
    rows = [orjson.loads(line) for line in b"".join(chunks).splitlines()]
    assert sorted(row["transaction_id"] for row in rows) == sorted(f"evt-{n}" for n in range(12))
    record = ExportRequest.objects.get()
    assert (record.row_count, record.status, record.last_cursor) == (12, "completed", rows[-1]["cursor"])


# --- Least privilege -------------------------------------------------------------------------------------


def test_a_key_limited_to_one_account_sees_only_its_rows_and_404_for_another(api, two_accounts):
    northwind, globex = two_accounts["Northwind"], two_accounts["Globex"]
    ingest(northwind, "ten_nw_eu", 2, prefix="nw")
    ingest(globex, "ten_globex", 2, prefix="gx")
    secret = key("export", export_accounts=[northwind])
    assert txns(get(api, secret, "/v1/export/events").json()) == ["nw-0", "nw-1"]
    assert txns(get(api, secret, f"/v1/export/events?account={northwind.public_id}").json()) == ["nw-0", "nw-1"]
    for public_id in (globex.public_id, "acc_999999"):
        response = get(api, secret, f"/v1/export/events?account={public_id}")
        assert response.status_code == 404
        assert response.json()["error"] == {
            "code": "not_found",
            "field": "account",
            "message": f"No account '{public_id}'.",
        }
    assert get(api, secret, "/v1/export/events?tenant=ten_globex").json()["data"] == []
    streamed_rows = streamed(get(api, secret, "/v1/export/events?format=ndjson")).splitlines()
    assert [orjson.loads(line)["account_id"] for line in streamed_rows] == [northwind.public_id] * 2


def test_a_key_limited_to_datasets_gets_403_naming_the_dataset(api, two_accounts):
    secret = key("export", export_datasets=["invoices", "payments"])
    response = get(api, secret, "/v1/export/events")
    assert response.status_code == 403
    assert response.json()["error"]["message"] == (
        "This API key may not export events; it may export invoices, payments."
    )
    assert get(api, secret, "/v1/export/usage?year=2026&month=10").status_code == 403
    assert get(api, secret, "/v1/export/invoices").status_code == 200
    assert get(api, secret, "/v1/export/payments").status_code == 200


@pytest.mark.parametrize(
    "kind, events, invoices",
    [
        ("no key", 401, 401),
        ("bad key", 401, 401),
        ("ingest", 403, 403),
        ("disputes", 403, 403),
        ("subscription", 403, 403),
        ("webhooks", 403, 403),
        ("read", 200, 200),
        ("read pinned", 200, 403),
        ("export", 200, 200),
    ],
)
def test_every_role_and_scope(api, two_accounts, kind, events, invoices):
    northwind = two_accounts["Northwind"]
    ingest(northwind, "ten_nw_eu", 1, prefix="eu")
    ingest(northwind, "ten_nw_us", 1, prefix="us")
    ingest(two_accounts["Globex"], "ten_globex", 1, prefix="gx")
    eu = northwind.tenants.get(public_id="ten_nw_eu")
    secrets = {
        "no key": None,
        "bad key": "ll_000000000000_" + "0" * 48,
        "read pinned": key("read", account=northwind, tenant=eu),
        "read": key("read", account=northwind),
        "export": key("export"),
    }
    secret = secrets[kind] if kind in secrets else key(kind, account=northwind)
    response = get(api, secret, "/v1/export/events")
    assert response.status_code == events
    if events == 200:
        expected = {"read": ["eu-0", "us-0"], "read pinned": ["eu-0"], "export": ["eu-0", "us-0", "gx-0"]}[kind]
        assert txns(response.json()) == expected
    assert get(api, secret, "/v1/export/invoices").status_code == invoices


def test_a_read_key_cannot_name_another_account(api, two_accounts):
    northwind, globex = two_accounts["Northwind"], two_accounts["Globex"]
    response = get(api, key("read", account=northwind), f"/v1/export/events?account={globex.public_id}")
    assert response.status_code == 404


# --- Audit -----------------------------------------------------------------------------------------------


def test_every_export_request_is_recorded_with_its_row_count(api, two_accounts):
    ingest(two_accounts["Northwind"], "ten_nw_eu", 5)
    secret = key("export", export_datasets=["events"])
    get(api, secret, "/v1/export/events?page_size=2&metric=messages")
    streamed(get(api, secret, "/v1/export/events?format=csv"))
    get(api, secret, "/v1/export/payments")
    records = list(ExportRequest.objects.order_by("id"))
    assert [(r.dataset, r.format, r.row_count, r.status, r.http_status) for r in records] == [
        ("events", "json", 2, "completed", 200),
        ("events", "csv", 5, "completed", 200),
        ("payments", "json", 0, "refused", 403),
    ]
    assert records[0].filters == {"page_size": "2", "metric": "messages"}
    assert records[0].started_at == records[0].finished_at == LATER
    assert (
        records[1].last_cursor == orjson.loads(get(api, secret, "/v1/export/events?page_size=5").content)["next_cursor"]
    )


# The server ends the request as a real one does (request_finished), outside a test transaction.
@pytest.mark.django_db(transaction=True)
def test_a_stream_the_client_leaves_is_recorded_as_interrupted(api, two_accounts, settings):
    settings.EXPORT_STREAM_CHUNK_BYTES = 1  # a chunk per line
    ingest(two_accounts["Northwind"], "ten_nw_eu", 6)
    response = get(api, key("export"), "/v1/export/events?format=ndjson")
    content = response.streaming_content
    next(content)
    next(content)
    response.close()  # the client went away after two chunks: the server closes the response
    record = ExportRequest.objects.get()
    # Counted are the rows of chunks the server finished writing (it asked for the next one): the second chunk's
    # write is the one that failed.
    assert (record.status, record.row_count) == ("interrupted", 1)
    assert record.error == "The client closed the connection before the last row."
