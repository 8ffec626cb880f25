"""The account's admin page leads to everything of the account: counts that link to its filtered lists, and
long inlines that start collapsed so the page stays short."""

import re
from decimal import Decimal as D

import pytest
from django.contrib.auth.models import Group

from accounts.permissions import BILLING_STAFF, FINANCE_ADMIN
from accounts.services import budget_create
from billing.models import Invoice
from billing.services.credit_notes import credit_note_issue
from tests.accounts.factories import AccountFactory, StaffUserFactory
from tests.billing.cycle import JAN_1, close, subscribe
from tests.tenants.factories import MasterPartnerFactory, TenantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def accounts(plan):
    """Northwind with ten tenants, two partners, an invoice with a credit note and a budget; Contoso with one
    tenant and its own invoice (which Northwind's lists must not show)."""
    northwind, contoso = AccountFactory(name="Northwind"), AccountFactory(name="Contoso")
    for account in (northwind, contoso):
        subscribe(account, plan("platform-basic"))
    for n in range(10):
        TenantFactory(account=northwind, public_id=f"ten_nw_{n}", activated_at=JAN_1)
    TenantFactory(account=contoso, public_id="ten_co", activated_at=JAN_1)
    MasterPartnerFactory(account=northwind, public_id="prt_nw_1")
    MasterPartnerFactory(account=northwind, public_id="prt_nw_2")
    budget_create(account=northwind, name="Monthly spend", amount=D("448.50"))
    close()
    invoice = Invoice.objects.get(account=northwind)
    credit_note_issue(invoice=invoice, lines=[(None, "goodwill", D("5.00"))], reason="goodwill")
    return northwind, contoso


@pytest.fixture
def billing_staff(client):
    client.force_login(StaffUserFactory(groups=[Group.objects.get(name=BILLING_STAFF)]))
    return client


def related_links(html):
    block = html.split("field-related", 1)[1].split("form-row", 1)[0]
    return {text: href.replace("&amp;", "&") for href, text in re.findall(r'<a href="([^"]+)">([^<]+)</a>', block)}


def test_the_account_page_counts_and_links_the_accounts_documents(billing_staff, accounts):
    northwind, contoso = accounts
    html = billing_staff.get(f"/admin/accounts/account/{northwind.pk}/change/").content.decode()
    only = f"?account__id__exact={northwind.pk}"
    assert related_links(html) == {
        "Invoices: 1": f"/admin/billing/invoice/{only}",
        "Credit notes: 1": f"/admin/billing/creditnote/{only}",
        "Payments: 0": f"/admin/billing/payment/{only}",
        "Disputes: 0": f"/admin/disputes/dispute/{only}",
        "Subscriptions: 1": f"/admin/billing/subscription/{only}",
        "Tenants: 10": f"/admin/tenants/tenant/{only}",
        "Master partners: 2": f"/admin/tenants/masterpartner/{only}",
        "Budgets: 1": f"/admin/accounts/budget/{only}",
        "Usage events": f"/admin/usage/usageevent/{only}",
    }
    for url in related_links(html).values():
        listing = billing_staff.get(url)
        assert listing.status_code == 200, url
        assert "Contoso" not in listing.content.decode(), url  # filtered to the account
    tenants = billing_staff.get(f"/admin/tenants/tenant/{only}").content.decode()
    assert "ten_nw_9" in tenants and "ten_co" not in tenants
    invoices = billing_staff.get(f"/admin/billing/invoice/{only}").content.decode()
    assert "1 invoice" in invoices and "INV-2026-000001" in invoices


def test_long_inlines_start_collapsed_and_say_how_many_rows_they_hold(billing_staff, accounts):
    northwind, _ = accounts
    html = billing_staff.get(f"/admin/accounts/account/{northwind.pk}/change/").content.decode()
    tenants = html.split('id="tenants-group"', 1)[1].split('id="partners-group"', 1)[0]
    assert "<details>" in tenants and "Tenants (10)" in tenants
    assert "ten_nw_0" in tenants  # on the page, one click away
    partners = html.split('id="partners-group"', 1)[1].split('id="users-group"', 1)[0]
    assert "<details>" not in partners and "prt_nw_1" in partners
    # The budget reads at its currency's minor unit, in its row and in its input.
    assert "Monthly spend: USD 448.50 monthly" in html and 'value="448.50"' in html
    assert "448.5000" not in html


def test_a_new_account_page_has_no_related_line(client):
    client.force_login(StaffUserFactory(groups=[Group.objects.get(name=FINANCE_ADMIN)]))
    html = client.get("/admin/accounts/account/add/").content.decode()
    assert "field-related" not in html and 'name="name"' in html
