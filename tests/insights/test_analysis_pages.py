"""The portal's Cost analysis page (every role of the account reads it, with the worked months' figures of
``tests.insights.test_analysis_worked`` and none of another account's tenants), and the admin's cost-analysis
pages (billing staff read them; a customer never reaches the admin)."""

from __future__ import annotations

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.test import Client

from accounts.permissions import BILLING_STAFF
from tests.accounts.factories import AccountFactory, AccountUserFactory, StaffUserFactory
from tests.insights.test_analysis_worked import DEC_10, worked_account

pytestmark = pytest.mark.django_db
PASSWORD = "portal-pass-123"
RANGE = "from=2026-10&to=2026-11"


@pytest.fixture(autouse=True)
def _frozen_time():
    with time_machine.travel(DEC_10, tick=False):
        yield


@pytest.fixture
def accounts(catalogue):
    return worked_account(), worked_account(name="Umbrella", ids="u_")


def signed_in(account, role: str) -> Client:
    membership = AccountUserFactory(account=account, role=role)
    client = Client()
    assert client.login(username=membership.user.username, password=PASSWORD)
    return client


@pytest.mark.parametrize("role", ["owner", "admin", "member", "billing"])
def test_every_role_reads_the_analysis_with_its_figures(accounts, role):
    account, other = accounts
    page = signed_in(account, role).get(f"/portal/analysis/?{RANGE}")
    assert page.status_code == 200
    html = page.content.decode()
    assert '<dd id="analysis-subtotal">USD 267.00</dd>' in html
    assert '<dd id="analysis-total">USD 293.70</dd>' in html
    assert "Messages +USD 18.00, mostly Beta (ten_beta) +USD 14.45" in html
    assert 'data-tenant="ten_alpha"' in html and "USD 174.24" in html
    assert "USD 0.0066" in html  # a message over the range: USD 38.00 / 5,800
    assert "37.5 %" in html  # active users of the allowance
    assert "barely used" in html and "Paid for (USD 10.00) in November 2026" in html
    assert 'role="img"' in html and "as a table</summary>" in html  # the charts, with their tables
    assert "ten_u_alpha" not in html and "ten_u_beta" not in html and other.public_id not in html


def test_the_default_range_and_a_bad_month(accounts):
    client = signed_in(accounts[0], "member")
    page = client.get("/portal/analysis/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'value="2026-09"' in html and 'value="2026-12"' in html
    assert "Running month (estimate)" in html
    bad = client.get("/portal/analysis/?from=2026-11&to=2026-10")
    assert bad.status_code == 400
    assert "The range ends before it starts." in bad.content.decode()


def test_the_page_needs_a_signed_in_user(accounts):
    response = Client().get("/portal/analysis/")
    assert response.status_code == 302 and "/portal/login/" in response["Location"]


def test_billing_staff_read_an_accounts_analysis_in_the_admin(accounts):
    account, _ = accounts
    staff = StaffUserFactory(groups=[Group.objects.get(name=BILLING_STAFF)])
    client = Client()
    client.force_login(staff)
    listing = client.get("/admin/insights/accountcostanalysis/")
    assert listing.status_code == 200
    html = listing.content.decode()
    assert "Globex" in html and "USD 143.50" in html  # November, the last closed month
    page = client.get(f"/admin/insights/accountcostanalysis/{account.pk}/change/?{RANGE}")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Cost analysis: Globex" in html
    assert "USD 267.00" in html and "Alpha (ten_alpha)" in html and "USD 174.24" in html
    assert "barely_used" in html
    assert "ten_u_alpha" not in html
    assert client.get("/admin/insights/accountcostanalysis/add/").status_code == 403
    assert client.get(f"/admin/insights/accountcostanalysis/{account.pk}/delete/").status_code == 403


def test_a_customer_never_reaches_the_admin(accounts):
    account, _ = accounts
    client = signed_in(account, "owner")
    for url in ("/admin/insights/accountcostanalysis/", f"/admin/insights/accountcostanalysis/{account.pk}/change/"):
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_an_account_without_invoices_or_plan_reads_an_empty_analysis(catalogue):
    page = signed_in(AccountFactory(name="Fresh"), "owner").get("/portal/analysis/")
    assert page.status_code == 200
    html = page.content.decode()
    assert '<dd id="analysis-subtotal">USD 0.00</dd>' in html
    assert "No cost in these months." in html
