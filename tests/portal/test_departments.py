"""The portal's Departments, Allocation and journal pages: owners and admins assign departments (audited),
billing users and members read them (a POST is a 403), another account's partner or tenant is a 404; the
Allocation page shows the worked month's figures (``tests.billing.test_allocation``) as a chart and a table."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
import time_machine
from django.test import Client

from tests.accounts.factories import AccountFactory, AccountUserFactory
from tests.billing.test_allocation import worked_month
from tests.tenants.factories import MasterPartnerFactory, TenantFactory

pytestmark = pytest.mark.django_db
UTC = dt.UTC
NOW = dt.datetime(2026, 12, 10, 9, tzinfo=UTC)
PASSWORD = "portal-pass-123"


@pytest.fixture(autouse=True)
def _frozen_time():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def invoice(catalogue):
    return worked_month()


def signed_in(account, role: str) -> Client:
    membership = AccountUserFactory(account=account, role=role)
    client = Client()
    assert client.login(username=membership.user.username, password=PASSWORD)
    return client


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_owners_and_admins_assign_departments_and_the_change_is_audited(invoice, role):
    account = invoice.account
    client = signed_in(account, role)
    page = client.get("/portal/departments/")
    assert page.status_code == 200
    assert 'name="partner:prt_free"' in page.content.decode()
    nw = account.tenants.get(name="Northwind EU")
    data = {
        "partner:prt_log": "Logistics",
        "partner:prt_proc": "Procurement",
        "partner:prt_free": "  Field   Sales ",
        f"tenant:{nw.public_id}": "Logistics",
        f"tenant:{account.tenants.get(name='Northwind Lab').public_id}": "Procurement",
    }
    response = client.post("/portal/departments/", data, follow=True)
    assert response.redirect_chain == [("/portal/departments/", 302)]
    assert "Departments saved (2 changes)." in response.content.decode()
    partner = account.partners.get(public_id="prt_free")
    nw.refresh_from_db()
    assert (partner.department, nw.department) == ("Field Sales", "Logistics")
    latest = partner.history.first()
    assert (latest.department, latest.history_user.account_membership.role) == ("Field Sales", role)
    assert nw.history.first().history_change_reason == "updated"


@pytest.mark.parametrize("role", ["billing", "member"])
def test_billing_users_and_members_read_departments_but_cannot_change_them(invoice, role):
    client = signed_in(invoice.account, role)
    page = client.get("/portal/departments/")
    assert page.status_code == 200
    body = page.content.decode()
    assert 'name="partner:prt_log"' not in body
    assert "Owners and admins assign departments" in body
    assert client.post("/portal/departments/", {"partner:prt_log": "Sales"}).status_code == 403
    assert client.post("/portal/departments/partners/prt_log/", {"department": "Sales"}).status_code == 403
    assert invoice.account.partners.get(public_id="prt_log").department == "Logistics"


def test_one_partner_or_tenant_is_edited_on_its_own_page(invoice):
    client = signed_in(invoice.account, "admin")
    response = client.post("/portal/departments/partners/prt_free/", {"department": "Support"})
    assert response.status_code == 302
    assert invoice.account.partners.get(public_id="prt_free").department == "Support"
    tenant = invoice.account.tenants.get(name="Northwind EU")
    assert client.post(f"/portal/departments/tenants/{tenant.public_id}/", {"department": ""}).status_code == 302
    refused = client.post("/portal/departments/partners/prt_free/", {"department": "unallocated"})
    assert refused.status_code == 400
    assert "leave the field empty instead" in refused.content.decode()


def test_another_accounts_partner_or_tenant_is_not_found(invoice):
    other = AccountFactory(name="Globex")
    MasterPartnerFactory(account=other, public_id="prt_globex")
    tenant = TenantFactory(account=other, public_id="ten_globex")
    client = signed_in(invoice.account, "owner")
    assert client.get("/portal/departments/partners/prt_globex/").status_code == 404
    assert client.post("/portal/departments/partners/prt_globex/", {"department": "X"}).status_code == 404
    assert client.post(f"/portal/departments/tenants/{tenant.public_id}/", {"department": "X"}).status_code == 404
    # A field naming another account's partner in the page's form is ignored.
    client.post("/portal/departments/", {"partner:prt_globex": "Stolen"})
    assert other.partners.get().department == "Procurement"


def test_the_allocation_page_shows_each_departments_cost_for_the_month(invoice):
    client = signed_in(invoice.account, "member")
    page = client.get("/portal/allocation/?month=2026-11")
    assert page.status_code == 200
    body = page.content.decode()
    assert "Cost per department, November 2026" in body
    for department, total in (("Logistics", "57.76"), ("Procurement", "57.74"), ("Unallocated", "32.10")):
        assert f'<tr data-department="{department}">' in body
        assert f"USD {total}" in body
    assert 'id="allocation-total">USD 147.60<' in body
    assert '<svg class="chart"' in body and "as a table</summary>" in body
    # Members read the allocation; the journal is for owners, admins and billing users.
    assert 'id="journal-csv"' not in body
    # Without a month the page opens on the latest invoiced month.
    assert "Cost per department, November 2026" in client.get("/portal/allocation/").content.decode()
    assert client.get("/portal/allocation/?month=nope").status_code == 400


@pytest.mark.parametrize(("role", "status"), [("owner", 200), ("admin", 200), ("billing", 200), ("member", 403)])
def test_the_journal_csv_is_for_owners_admins_and_billing_users(invoice, role, status):
    client = signed_in(invoice.account, role)
    response = client.get("/portal/journal.csv?month=2026-12")
    assert response.status_code == status
    if status == 200:
        table = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
        assert [(row["account_code"], row["department"], row["debit"], row["credit"]) for row in table[:2]] == [
            ("1100", "", "147.60", ""),
            ("4000", "Logistics", "", "39.13"),
        ]
        assert {row["account"] for row in table} == {invoice.account.public_id}


def test_the_navigation_links_the_departments_page(invoice):
    body = signed_in(invoice.account, "member").get("/portal/departments/").content.decode()
    assert '<a href="/portal/departments/" aria-current="page">Departments</a>' in body
