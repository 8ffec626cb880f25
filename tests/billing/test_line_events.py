"""From any invoice line, staff list the events it billed; every event is on exactly one line."""

import datetime as dt

import pytest
from django.contrib.auth import get_user_model

from billing.models import Invoice, InvoiceLine
from billing.selectors import invoice_line_events
from tests.accounts.factories import AccountFactory
from tests.billing.cycle import DECEMBER, JAN_1, UTC, close, event, ingest, subscribe
from tests.tenants.factories import TenantFactory

pytestmark = pytest.mark.django_db


def test_each_line_lists_the_events_it_billed(plan, client):
    account = AccountFactory(name="Northwind")
    subscribe(account, plan("messaging-business"))
    TenantFactory(account=account, public_id="ten_nw", activated_at=JAN_1)
    ingest(
        account,
        [
            event("nov-a", "ten_nw", "messages", 20_000, "2026-11-10T10:00:00Z"),
            event("nov-b", "ten_nw", "messages", 11_000, "2026-11-20T10:00:00Z"),
        ],
    )
    close()
    ingest(
        account,
        [event("nov-late", "ten_nw", "messages", 500, "2026-11-30T22:00:00Z")],
        now=dt.datetime(2026, 12, 2, tzinfo=UTC),
    )
    ingest(
        account,
        [event("dec-a", "ten_nw", "messages", 100, "2026-12-05T10:00:00Z")],
        now=dt.datetime(2026, 12, 20, tzinfo=UTC),
    )
    close(period=DECEMBER, now=dt.datetime(2027, 1, 1, 0, 5, tzinfo=UTC))

    november = InvoiceLine.objects.get(invoice__period_start__month=11, kind="usage", metric__code="messages")
    late = InvoiceLine.objects.get(kind="late_usage")
    december = InvoiceLine.objects.get(invoice__period_start__month=12, kind="usage", metric__code="messages")
    assert sorted(invoice_line_events(november).values_list("transaction_id", flat=True)) == ["nov-a", "nov-b"]
    assert list(invoice_line_events(late).values_list("transaction_id", flat=True)) == ["nov-late"]
    assert late.transaction_ids == ["nov-late"]
    assert list(invoice_line_events(december).values_list("transaction_id", flat=True)) == ["dec-a"]
    assert Invoice.objects.count() == 2

    # The admin's "list events" link on the line opens exactly those events.
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw-123456"))
    page = client.get(f"/admin/billing/invoice/{late.invoice_id}/change/").content.decode()
    links = [part.split('"')[0].replace("&amp;", "&") for part in page.split('href="/admin/usage/usageevent/?')[1:]]
    (link,) = [link for link in links if "is_late__exact=1" in link]
    listing = client.get(f"/admin/usage/usageevent/?{link}")
    assert listing.status_code == 200
    html = listing.content.decode()
    assert "nov-late" in html and "dec-a" not in html and "nov-a" not in html
