"""A billing-staff user works an account in the admin console, in real Chromium."""

import datetime as dt

import pytest
from django.apps import apps
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from accounts.permissions import BILLING_STAFF, staff_groups_sync
from accounts.services import account_user_create, budget_create
from billing.services.subscriptions import subscription_create
from tests.accounts.factories import AccountFactory, StaffUserFactory
from tests.tenants.factories import MasterPartnerFactory, TenantFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_billing_staff_log_in_and_open_an_account_with_its_inlines(live_server, page, plan, artifacts):
    # Another transactional test may have flushed the groups migrations seed; they are re-seeded the same way.
    staff_groups_sync(apps)
    staff = StaffUserFactory(username="bianca", groups=[Group.objects.get(name=BILLING_STAFF)])
    account = AccountFactory(name="Northwind Logistics")
    subscription_create(
        account=account, plan_version=plan("messaging-business"), started_at=dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
    )
    TenantFactory(account=account, public_id="ten_northwind_eu", name="Northwind EU")
    TenantFactory(account=account, public_id="ten_northwind_us", name="Northwind US")
    MasterPartnerFactory(account=account, public_id="prt_supplier_001", name="Acme Supplies")
    account_user_create(account=account, email="olivia@northwind.example", role="owner")
    budget_create(account=account, name="Monthly spend", amount="450.00")

    page.goto(f"{live_server.url}/admin/")
    page.get_by_label("Username").fill(staff.username)
    page.get_by_label("Password").fill("staff-pass-123")
    page.get_by_role("button", name="Log in").click()
    page.locator("#content-main a[href='/admin/accounts/account/']").first.click()
    page.get_by_placeholder("Search").or_(page.locator("#searchbar")).first.fill("Northwind")
    page.keyboard.press("Enter")
    page.get_by_role("link", name=account.public_id).click()

    expect(page.get_by_role("heading", name="Subscriptions")).to_be_visible()
    expect(page.get_by_text("Business v1").first).to_be_visible()
    tenants = page.locator("#tenants-group")
    expect(tenants.get_by_text("ten_northwind_eu")).to_be_visible()
    expect(tenants.get_by_text("ten_northwind_us")).to_be_visible()
    expect(page.locator("#partners-group").get_by_text("prt_supplier_001")).to_be_visible()
    expect(page.locator("#users-group").get_by_role("link", name="olivia@northwind.example")).to_be_visible()
    expect(page.locator("#budgets-group input[value='Monthly spend']")).to_be_visible()
    # Billing staff may edit accounts: the page has a save button; and the catalogue stays read-only.
    expect(page.locator("input[name='_save']")).to_be_visible()
    page.screenshot(path=str(artifacts / "admin-account.png"), full_page=True)

    page.goto(f"{live_server.url}/admin/billing/plan/")
    page.get_by_role("link", name="Business").first.click()
    expect(page.get_by_role("heading", name="View plan")).to_be_visible()
    expect(page.locator("input[name='_save']")).to_have_count(0)
