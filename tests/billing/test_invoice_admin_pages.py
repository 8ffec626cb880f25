"""What staff read on the invoice and credit-note pages of the admin: money with its currency at the minor
unit, quantities without trailing zeros, one date format, the snapshot as a table, no Save on documents,
and the outbox (an internal table) linked only for Finance admin."""

from decimal import Decimal as D

import pytest
from django.contrib.auth.models import Group

from accounts.permissions import BILLING_STAFF, FINANCE_ADMIN
from billing.models import Invoice
from billing.services.credit_notes import credit_note_issue
from tests.accounts.factories import AccountFactory, StaffUserFactory
from tests.admin_html import table_header, table_rows
from tests.billing.cycle import JAN_1, close, subscribe
from tests.billing.factories import business_invoice
from tests.tenants.factories import TenantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def invoice(plan):
    """Business plan, 31,000 messages, 20 % tax: $299 + 6,000 × $0.03 = $479.00 + $95.80 = $574.80."""
    invoice = business_invoice(plan, name="Northwind Logistics", tax_rate="20", tenant_name="Northwind EU")
    assert (invoice.total, invoice.tax) == (D("574.80"), D("95.80"))
    return invoice


@pytest.fixture
def billing_staff(client):
    client.force_login(StaffUserFactory(groups=[Group.objects.get(name=BILLING_STAFF)]))
    return client


@pytest.fixture
def finance_admin(client):
    client.force_login(StaffUserFactory(groups=[Group.objects.get(name=FINANCE_ADMIN)]))
    return client


def page_of(client, url):
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def test_the_invoice_list_shows_money_with_its_currency(billing_staff, invoice):
    html = page_of(billing_staff, "/admin/billing/invoice/")
    assert table_header(html, "result_list")[1:] == [
        "Invoice",
        "Account",
        "Month",
        "Status",
        "Total",
        "Due",
        "Due date",
        "PDF status",
    ]
    (row,) = table_rows(html, "result_list")
    assert row[1:8] == [
        "INV-2026-000001",
        "Northwind Logistics",
        "2026-11",
        "Finalized",
        "USD 574.80",
        "USD 574.80",
        "2026-12-31",
    ]
    assert "574.8000" not in html


def test_an_issued_invoice_page_reads_cleanly_and_offers_no_save(billing_staff, invoice):
    url = f"/admin/billing/invoice/{invoice.pk}/change/"
    html = page_of(billing_staff, url)
    assert "View invoice" in html
    assert 'name="_save"' not in html and 'name="_continue"' not in html
    for text in (
        "USD 479.00",  # subtotal
        "USD 95.80 at 20 %",
        "USD 574.80",
        "2026-11 (2026-11-01 – 2026-11-30, UTC)",
        "2026-12-01 00:05 UTC",  # finalized
        "2026-12-31 00:05 UTC",  # due
        f'<a href="/admin/accounts/account/{invoice.account_id}/change/">Northwind Logistics',
        f'href="/admin/billing/invoice/?account__id__exact={invoice.account_id}">all its invoices</a>',
    ):
        assert text in html, text
    for raw in ("574.8000", "479.0000", "31000.00000000", "Dec. 1, 2026", "a.m."):
        assert raw not in html, raw
    assert [heading for heading in table_header(html, "lines-group") if heading] == [
        "Position",
        "Kind",
        "Description",
        "Covers",
        "Quantity",
        "Included",
        "Billable",
        "Amount",
        "Billed events",
    ]
    lines = {row[3]: row[4:9] for row in table_rows(html, "lines-group")}
    assert lines["Messages"] == ["the whole period", "31,000", "25,000", "6,000", "USD 180.00"]
    assert lines["Business base fee"] == ["the whole period", "1", "–", "–", "USD 299.00"]
    # The snapshot is a table of names, not JSON.
    snapshot = dict(row for row in table_rows(html, "snapshot") if len(row) == 2)
    assert snapshot["Account"] == f"Northwind Logistics ({invoice.account.public_id})"
    assert snapshot["Plans"] == "Business v1"
    assert snapshot["Tenants"] == "1: Northwind EU (ten_nw)"
    assert '{"account"' not in html and "{&quot;account" not in html
    # Saving the page is refused: every change is an action.
    assert billing_staff.post(url, {"held": "on"}).status_code == 403


def test_a_draft_page_shows_its_review_and_offers_no_save(billing_staff, plan):
    account = AccountFactory(name="Tailspin")
    subscribe(account, plan("platform-basic"))
    TenantFactory(account=account, public_id="ten_ts", activated_at=JAN_1)
    close(review_hours=24)
    draft = Invoice.objects.get(account=account)
    html = page_of(billing_staff, f"/admin/billing/invoice/{draft.pk}/change/")
    assert "Review until" in html and "2026-12-02 00:05 UTC" in html
    assert 'name="_save"' not in html
    assert f"Draft #{draft.pk}" in page_of(billing_staff, "/admin/billing/invoice/")


def test_the_outbox_is_linked_for_finance_admin_and_only_named_for_billing_staff(client, invoice):
    url = f"/admin/billing/invoice/{invoice.pk}/change/"
    client.force_login(StaffUserFactory(groups=[Group.objects.get(name=BILLING_STAFF)]))
    html = page_of(client, url)
    assert "billing.invoice_generated 2026-12-01 00:05 UTC (not delivered yet)" in html
    assert "/admin/common/outboxevent/" not in html
    client.force_login(StaffUserFactory(groups=[Group.objects.get(name=FINANCE_ADMIN)]))
    assert 'href="/admin/common/outboxevent/' in page_of(client, url)


def test_a_credit_note_page_is_read_only_with_money_in_its_currency(finance_admin, invoice):
    note = credit_note_issue(invoice=invoice, lines=[(None, "goodwill", D("10.00"))], reason="goodwill")
    html = page_of(finance_admin, f"/admin/billing/creditnote/{note.pk}/change/")
    assert "View credit note" in html and 'name="_save"' not in html
    assert "USD 10.00" in html and "USD 2.00" in html and "USD 12.00" in html
    assert "12.0000" not in html
    (row,) = table_rows(page_of(finance_admin, "/admin/billing/creditnote/"), "result_list")
    assert row[1:] == ["CN-2026-000001", "INV-2026-000001", "Northwind Logistics", "Issued", "USD 12.00", row[-1]]
    # The invoice's history reads the credit in money, not in stored decimals.
    newest = table_rows(page_of(finance_admin, f"/admin/billing/invoice/{invoice.pk}/history/"), "change-history")[0]
    assert newest[4] == "credited CN-2026-000001"
    assert newest[5].split(" | ") == ["Amount credited: USD 0.00 → USD 12.00", "Amount due: USD 574.80 → USD 562.80"]
