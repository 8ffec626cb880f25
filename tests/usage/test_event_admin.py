"""The admin's usage event list: totals of the filtered set above it, per metric; the filtered set as CSV for staff
who may view events (and nobody else); the invoice line's "list events" link still opens exactly its events."""

import csv
import datetime as dt
import io
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.permissions import BILLING_STAFF
from billing.models import InvoiceLine
from tests.accounts.factories import AccountFactory, AccountUserFactory, StaffUserFactory
from tests.billing.cycle import close, event, ingest, subscribe
from tests.tenants.factories import MasterPartnerFactory, TenantFactory

pytestmark = pytest.mark.django_db
LIST = "/admin/usage/usageevent/"
EXPORT = "/admin/usage/usageevent/export.csv"
JAN_1 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.fixture
def northwind(plan):
    """November: 20,000 + 500 messages and 3,000 API requests on ten_eu, 11,000 messages on ten_us; another
    account's 7 messages, which no Northwind filter shows."""
    account = AccountFactory(name="Northwind")
    subscribe(account, plan("messaging-business"))
    TenantFactory(account=account, public_id="ten_eu", activated_at=JAN_1)
    TenantFactory(account=account, public_id="ten_us", activated_at=JAN_1)
    MasterPartnerFactory(account=account, public_id="prt_acme", activated_at=JAN_1)
    ingest(
        account,
        [
            event("m1", "ten_eu", "messages", 20_000, "2026-11-10T10:00:00Z", partner_id="prt_acme"),
            event("m2", "ten_us", "messages", 11_000, "2026-11-20T10:00:00Z"),
            event("m3", "ten_eu", "messages", 500, "2026-11-20T11:30:00Z", partner_id="prt_acme"),
            event("a1", "ten_eu", "api_requests", "3000", "2026-11-21T08:00:00Z"),
        ],
    )
    other = AccountFactory(name="Other")
    TenantFactory(account=other, public_id="ten_other", activated_at=JAN_1)
    ingest(other, [event("o1", "ten_other", "messages", 7, "2026-11-12T10:00:00Z")])
    return account


@pytest.fixture
def bianca(client):
    client.force_login(StaffUserFactory(username="bianca", groups=[Group.objects.get(name=BILLING_STAFF)]))
    return client


def totals_html(html: str) -> str:
    return html.split('<div id="event-totals"', 1)[1].split("</div>", 1)[0]


def csv_rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_filtered_list_shows_totals_per_metric_from_one_query(bianca, northwind):
    with CaptureQueriesContext(connection) as queries:
        html = bianca.get(f"{LIST}?account__id__exact={northwind.pk}").content.decode()
    totals = totals_html(html)
    assert "Totals of the filtered events: 4 events" in totals
    assert '<td>api_requests</td><td class="number">1</td><td class="number">3,000</td><td>request</td>' in totals
    assert '<td>messages</td><td class="number">3</td><td class="number">31,500</td><td>message</td>' in totals
    grouped = [q["sql"] for q in queries.captured_queries if "GROUP BY" in q["sql"] and "usage_usageevent" in q["sql"]]
    assert len(grouped) == 1


def test_one_metric_is_one_line_of_totals(bianca, northwind):
    messages = InvoiceLine._meta.get_field("metric").related_model.objects.get(code="messages")
    html = bianca.get(f"{LIST}?account__id__exact={northwind.pk}&metric__id__exact={messages.pk}").content.decode()
    assert "<strong>3</strong> events · quantity <strong>31,500</strong> message (messages)" in totals_html(html)


def test_the_unfiltered_list_adds_nothing_up(bianca, northwind):
    with CaptureQueriesContext(connection) as queries:
        html = bianca.get(LIST).content.decode()
    assert "Filter the list (by account, metric, month or a search) to see its totals." in totals_html(html)
    assert not [q for q in queries.captured_queries if "GROUP BY" in q["sql"] and "usage_usageevent" in q["sql"]]
    # The export link carries the list's filters.
    filtered = bianca.get(f"{LIST}?account__id__exact={northwind.pk}&is_late__exact=0").content.decode()
    assert f'href="{EXPORT}?account__id__exact={northwind.pk}&amp;is_late__exact=0" id="export-events-csv"' in filtered


def test_the_csv_export_streams_the_filtered_set(bianca, northwind):
    response = bianca.get(f"{EXPORT}?account__id__exact={northwind.pk}&o=6")  # ordered by timestamp
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="usage-events.csv"'
    rows = csv_rows(response)
    assert rows[0] == [
        "transaction_id",
        "account",
        "tenant",
        "partner",
        "metric",
        "timestamp",
        "quantity",
        "received_at",
        "billing_month",
        "late",
    ]
    account = northwind.public_id
    assert rows[1:] == [
        ["m1", account, "ten_eu", "prt_acme", "messages", "2026-11-10T10:00:00Z", "20000", "2026-11-30T12:00:00Z",
         "2026-11", "no"],
        ["m2", account, "ten_us", "", "messages", "2026-11-20T10:00:00Z", "11000", "2026-11-30T12:00:00Z",
         "2026-11", "no"],
        ["m3", account, "ten_eu", "prt_acme", "messages", "2026-11-20T11:30:00Z", "500", "2026-11-30T12:00:00Z",
         "2026-11", "no"],
        ["a1", account, "ten_eu", "", "api_requests", "2026-11-21T08:00:00Z", "3000", "2026-11-30T12:00:00Z",
         "2026-11", "no"],
    ]  # fmt: skip


def test_the_invoice_lines_link_lists_and_exports_exactly_its_events(bianca, northwind):
    close()
    line = InvoiceLine.objects.select_related("invoice").get(kind="usage", metric__code="messages")
    page = bianca.get(f"/admin/billing/invoice/{line.invoice_id}/change/").content.decode()
    links = [part.split('"')[0].replace("&amp;", "&") for part in page.split(f'href="{LIST}?')[1:]]
    (link,) = [link for link in links if f"metric__id__exact={line.metric_id}" in link]
    listing = bianca.get(f"{LIST}?{link}")
    assert listing.status_code == 200
    assert "<strong>3</strong> events · quantity <strong>31,500</strong> message (messages)" in totals_html(
        listing.content.decode()
    )
    exported = csv_rows(bianca.get(f"{EXPORT}?{link}"))
    assert sorted(row[0] for row in exported[1:]) == ["m1", "m2", "m3"]


def test_only_staff_who_may_view_events_export_them(client, northwind):
    query = "?" + urlencode({"account__id__exact": northwind.pk})
    anonymous = client.get(EXPORT + query)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/admin/login/")

    owner = AccountUserFactory(account=northwind, role="owner")
    client.force_login(owner.user)
    portal = client.get(EXPORT + query)
    assert portal.status_code == 302 and portal["Location"].startswith("/admin/login/")

    client.force_login(StaffUserFactory(username="nobody"))  # staff, but no permission on events
    assert client.get(EXPORT + query).status_code == 403
    assert client.get(LIST + query).status_code == 403


def test_refused_duplicates_are_listed_for_staff(bianca, northwind):
    ingest(northwind, [event("m1", "ten_eu", "messages", 5, "2026-11-10T10:10:00Z")])
    html = bianca.get("/admin/usage/refusedduplicate/").content.decode()
    assert "ten_eu" in html and northwind.public_id in html
