"""An account owner sets a budget and issues and revokes an API key in the portal, in real Chromium."""

import datetime as dt
import re

import pytest
from playwright.sync_api import expect

from accounts.models import ApiKey, Budget
from billing.services.subscriptions import subscription_create
from tests.accounts.factories import AccountFactory, AccountUserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_owner_sets_a_budget_and_creates_then_revokes_an_api_key(live_server, page, plan, artifacts):
    account = AccountFactory(name="Northwind Logistics")
    subscription_create(
        account=account, plan_version=plan("messaging-business"), started_at=dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
    )
    AccountUserFactory(account=account, email="olivia@northwind.example", role="owner")

    page.goto(f"{live_server.url}/portal/budgets/")
    page.get_by_label("E-mail address").fill("olivia@northwind.example")
    page.get_by_label("Password").fill("portal-pass-123")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Budgets")).to_be_visible()

    # A budget: a mistake first, shown next to its field, then the fix.
    page.get_by_role("link", name="New budget").click()
    page.get_by_label("Name").fill("Monthly spend")
    page.get_by_label("Amount (USD)").fill("-5")
    page.get_by_label("Alert thresholds (%)").fill("50, 80, 100")
    page.get_by_role("button", name="Create budget").click()
    expect(page.get_by_text("Ensure this value is greater than or equal to 0.01.")).to_be_visible()
    expect(page.get_by_label("Amount (USD)")).to_be_focused()
    page.screenshot(path=str(artifacts / "portal-budget-error.png"), full_page=True)
    page.get_by_label("Amount (USD)").fill("500")
    page.get_by_role("button", name="Create budget").click()
    expect(page.get_by_text("Budget “Monthly spend” created.")).to_be_visible()
    row = page.get_by_role("row").filter(has_text="Monthly spend")
    expect(row.get_by_text("USD 500.00")).to_be_visible()
    expect(row.get_by_text("50%, 80%, 100%")).to_be_visible()
    expect(row.get_by_role("meter")).to_be_visible()
    assert Budget.objects.get(account=account).alert_thresholds == [50, 80, 100]
    expect(row.get_by_text(re.compile(r"^[A-Z][a-z]{2} 1 – [A-Z][a-z]{2} (28|29|30|31), \d{4}$"))).to_be_visible()
    page.screenshot(path=str(artifacts / "portal-budgets.png"), full_page=True)
    # On a phone the table becomes labelled rows.
    page.set_viewport_size({"width": 390, "height": 844})
    expect(row.locator("td[data-label='Spend this period']")).to_be_visible()
    page.screenshot(path=str(artifacts / "portal-budgets-phone.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})

    # An API key: the secret once, then never again.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="API keys").click()
    page.get_by_role("link", name="New API key").click()
    page.get_by_label("Name").fill("production ingest")
    page.get_by_label("Ingest: send usage events").check()
    page.screenshot(path=str(artifacts / "portal-api-key-form.png"), full_page=True)
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_text("Copy it now: it is shown only this once.")).to_be_visible()
    secret = page.get_by_label("Secret key").input_value()
    assert re.fullmatch(r"ll_[0-9a-f]{12}_[0-9a-f]{48}", secret)
    expect(page.get_by_text("curl -X POST")).to_be_visible()
    page.screenshot(path=str(artifacts / "portal-api-key-created.png"), full_page=True)
    page.reload()
    expect(page.get_by_role("heading", name="API keys")).to_be_visible()
    expect(page.get_by_label("Secret key")).to_have_count(0)
    assert secret not in page.content()

    key = ApiKey.objects.get(account=account)
    row = page.get_by_role("row").filter(has_text="production ingest")
    expect(row.get_by_text(f"{key.prefix}…")).to_be_visible()
    expect(row.get_by_text("active")).to_be_visible()
    row.get_by_role("link", name="Revoke production ingest").click()
    expect(page.get_by_role("heading", name="Revoke API key “production ingest”?")).to_be_visible()
    page.get_by_role("button", name="Revoke key").click()
    expect(page.get_by_text("revoked. It no longer works.")).to_be_visible()
    expect(page.get_by_role("row").filter(has_text="production ingest").get_by_text("revoked")).to_be_visible()
    key.refresh_from_db()
    assert key.revoked_at is not None
