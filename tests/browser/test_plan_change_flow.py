"""A plan upgrade from comparison to approval, in real Chromium: the owner compares the plans on the portal's Plan
page (what the account's own usage of August, September and October would have cost on each), previews an
upgrade to Business and requests it; it waits for approval (``SUBSCRIPTIONS_UPGRADES_APPLY_AT_ONCE`` off); billing
staff approve it in the admin; the portal then shows Business and its limits.

Vandelay is on Startup (USD 99.00; 3 tenants, then 29.00 each; 5,000 messages, then 0.05 each) with 7 tenants and
10,000 messages a month: 99 + 4 × 29 + 5,000 × 0.05 = USD 465.00 a month; on Business (USD 299.00, 10 tenants and
25,000 messages included) USD 299.00. On November 16 at 00:00 UTC a change now is Startup for Nov 1–15 (49.50) and
its extra tenants for half the month (58.00), Business for Nov 16–30 (149.50): USD 257.00 against USD 215.00.
"""

import datetime as dt
from decimal import Decimal as D

import pytest
from django.apps import apps
from playwright.sync_api import expect

from accounts.permissions import staff_groups_sync
from accounts.services import account_user_create
from billing.models import PlanChangeRequest, Subscription
from common import clock
from tests.accounts.factories import AccountFactory
from tests.billing.cycle import JAN_1, event, ingest, subscribe
from tests.disputes.factories import billing_staff
from tests.tenants.factories import TenantFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]
PASSWORD = "portal-pass-123"
STAFF_PASSWORD = "staff-pass-123"
UTC = dt.UTC
NOV_16 = dt.datetime(2026, 11, 16, tzinfo=UTC)


def vandelay(plan):
    account = AccountFactory(name="Vandelay Industries", billing_emails=["ap@vandelay.example"], tax_rate=D("0"))
    subscribe(account, plan("messaging-startup"), started_at=JAN_1)
    for n in range(7):
        TenantFactory(account=account, public_id=f"ten_vandelay_{n}", activated_at=JAN_1)
    for month in (8, 9, 10):
        at = dt.datetime(2026, month, 15, 10, tzinfo=UTC)
        ingest(
            account,
            [event(f"vandelay-{month}", "ten_vandelay_0", "messages", 10_000, at.isoformat())],
            now=dt.datetime(2026, month, 28, tzinfo=UTC),
        )
    return account


def test_an_owner_compares_plans_requests_an_upgrade_and_billing_staff_approve_it(
    live_server, browser, page, plan, artifacts, settings
):
    staff_groups_sync(apps)  # another transactional test may have flushed the groups
    settings.SUBSCRIPTIONS_UPGRADES_APPLY_AT_ONCE = False
    account = vandelay(plan)
    account_user_create(account=account, email="owner@vandelay.example", role="owner", password=PASSWORD)
    bianca = billing_staff(first_name="Bianca")
    clock.clock_set(at=NOV_16, allow_backwards=True)
    base = live_server.url

    # The owner compares the plans with the account's own usage.
    page.goto(f"{base}/portal/login/")
    page.get_by_label("E-mail address").fill("owner@vandelay.example")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Plan").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Plan")
    expect(page.locator("#current-plan-name")).to_have_text("Startup")
    startup = page.locator('tr[data-plan="messaging-startup"]')
    business = page.locator('tr[data-plan="messaging-business"]')
    for month in ("Aug 2026", "Sep 2026", "Oct 2026"):
        expect(page.locator("#plan-comparison thead")).to_contain_text(month)
    expect(startup).to_contain_text("USD 465.00")
    expect(business).to_contain_text("USD 299.00")
    expect(business).to_contain_text("−USD 166.00")
    page.screenshot(path=str(artifacts / "portal-plan-compare.png"), full_page=True)

    # … previews the upgrade and asks for it.
    business.get_by_role("link", name="Preview change to Business").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Change plan")
    expect(page.get_by_label("Now: both plans are prorated on this month's invoice")).to_be_checked()
    lines = page.locator("#preview-lines")
    expect(lines).to_contain_text("Startup base fee (Nov 1–Nov 15)")
    expect(lines).to_contain_text("Business base fee (Nov 16–Nov 30)")
    expect(page.locator("#preview-current")).to_have_text("USD 215.00")
    expect(page.locator("#preview-new")).to_have_text("USD 257.00")
    expect(page.locator("#preview-approval")).to_have_text("It waits for approval by our billing team")
    page.screenshot(path=str(artifacts / "portal-plan-preview.png"), full_page=True)
    page.get_by_label("Note for our billing team (optional)").fill("Three more tenants next month.")
    page.get_by_role("button", name="Request change").click()
    expect(page.locator(".messages[role=status]")).to_contain_text("Waiting for approval by our billing team.")
    expect(page.locator("#open-change-state")).to_have_text("Waiting for approval")
    expect(page.locator("#current-plan-name")).to_have_text("Startup")
    change = PlanChangeRequest.objects.get()
    assert (change.state, change.channel, change.note) == ("pending", "portal", "Three more tenants next month.")

    # Billing staff approve it in the admin.
    staff_context = browser.new_context(viewport={"width": 1366, "height": 900})
    try:
        admin = staff_context.new_page()
        admin.set_default_timeout(15_000)
        admin.goto(f"{base}/admin/")
        admin.get_by_label("Username").fill(bianca.username)
        admin.get_by_label("Password").fill(STAFF_PASSWORD)
        admin.get_by_role("button", name="Log in").click()
        admin.goto(f"{base}/admin/billing/planchangerequest/{change.pk}/change/")
        expect(admin.locator("#plan-change-figures")).to_contain_text("USD 257.00")
        admin.get_by_role("button", name="Approve").click()
        expect(admin.locator("ul.messagelist")).to_contain_text(f"Plan change {change.public_id} is applied.")
        admin.screenshot(path=str(artifacts / "admin-plan-change-approved.png"), full_page=True)
    finally:
        staff_context.close()
    change.refresh_from_db()
    assert (change.state, change.decided_by) == ("applied", bianca)
    live = account.subscriptions.exclude(status=Subscription.Status.CANCELLED).get()
    assert live.plan_version.plan.code == "messaging-business"

    # The portal shows the new plan and its limits.
    page.reload()
    expect(page.locator("#current-plan-name")).to_have_text("Business")
    expect(page.locator("#current-base-fee")).to_have_text("USD 299.00 a month")
    tenants = page.locator('#limits tr[data-metric="tenants"]')
    expect(tenants).to_contain_text("10")
    expect(tenants).to_contain_text("USD 19.00 per tenant-month")
    expect(page.locator('#limits tr[data-metric="messages"]')).to_contain_text("25,000")
    expect(page.locator("#open-change")).to_have_count(0)
    page.screenshot(path=str(artifacts / "portal-plan-business.png"), full_page=True)
