"""The admin console reads well on a 1366 px laptop screen, in real Chromium: lists fit without sideways
scrolling, money shows its currency at the minor unit, an invoice links to its account and the account
to its documents. Saves the screenshots docs/operations.md shows."""

import datetime as dt
from pathlib import Path

import pytest
import time_machine
from django.apps import apps
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from accounts.permissions import BILLING_STAFF, staff_groups_sync
from accounts.services import budget_create
from common.money import format_money
from tests.accounts.factories import StaffUserFactory
from tests.portal.billing_fixtures import billing_book

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
LAPTOP = {"width": 1366, "height": 768}
BOOK_MADE_AT = dt.datetime(2026, 11, 5, 9, tzinfo=dt.UTC)


def log_in(page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/admin/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("staff-pass-123")
    page.get_by_role("button", name="Log in").click()


def test_billing_staff_read_invoices_and_accounts_on_a_laptop_screen(live_server, browser, plan):
    staff_groups_sync(apps)  # a transactional test before this one may have flushed the seeded groups
    with time_machine.travel(BOOK_MADE_AT, tick=False):  # the same page, hence screenshot, on every run
        StaffUserFactory(username="bianca", groups=[Group.objects.get(name=BILLING_STAFF)])
        book = billing_book(plan)
        northwind, invoice = book["northwind"]["account"], book["northwind"]["invoice"]
        budget_create(account=northwind, name="Monthly spend", amount="1200.00")
    total, due = format_money(invoice.total, "USD"), format_money(invoice.amount_due, "USD")

    context = browser.new_context(viewport=LAPTOP)
    page = context.new_page()
    page.set_default_timeout(15_000)
    log_in(page, live_server.url, "bianca")

    # The invoice list: every column on screen, no sideways scrolling, money as USD 1,234.56.
    page.goto(f"{live_server.url}/admin/billing/invoice/")
    last_column = page.locator("#result_list thead th").last
    expect(last_column).to_have_text("PDF status")
    expect(last_column).to_be_in_viewport()
    assert last_column.bounding_box()["x"] + last_column.bounding_box()["width"] <= LAPTOP["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= LAPTOP["width"]
    assert page.evaluate("(r => r.scrollWidth <= r.clientWidth)(document.querySelector('.results'))")
    row = page.locator("#result_list tbody tr", has_text=invoice.number)
    expect(row).to_contain_text(total)
    expect(row).to_contain_text(due)
    html = page.content()
    assert f"{invoice.total}" not in html and f"{invoice.amount_due}" not in html  # e.g. 618.3800
    expect(page.locator("#result_list tbody tr", has_text="Draft")).to_contain_text("Draft")

    # The invoice page: read-only, money with its currency, the snapshot as a table, the account linked.
    row.get_by_role("link", name=invoice.number).click()
    expect(page.get_by_role("heading", name="View invoice")).to_be_visible()
    expect(page.locator("input[name='_save']")).to_have_count(0)
    expect(page.locator(".field-total_display .readonly")).to_have_text(total)
    expect(page.locator(".field-due_display .readonly")).to_have_text(due)
    expect(page.locator(".field-finalized_at .readonly")).to_have_text("2026-11-01 00:05 UTC")
    page.get_by_text("Issued with (names as they were at finalization)").click()
    snapshot = page.locator("table.snapshot")
    expect(snapshot).to_be_visible()
    expect(snapshot.locator("tr", has_text="Account")).to_contain_text(f"Northwind Logistics ({northwind.public_id})")
    expect(page.locator("#lines-group")).to_contain_text("the whole period")
    assert page.evaluate("document.documentElement.scrollWidth") <= LAPTOP["width"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "admin-invoice.png"), full_page=True)

    # The account page: its documents counted and linked, short enough to read.
    page.locator(".field-account_link").get_by_role("link", name=str(northwind)).click()
    related = page.locator(".field-related")
    expect(related.get_by_role("link", name="Invoices: 2")).to_be_visible()
    expect(related.get_by_role("link", name="Credit notes: 1")).to_be_visible()
    expect(related.get_by_role("link", name="Tenants: 4")).to_be_visible()
    expect(related.get_by_role("link", name="Usage events")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= LAPTOP["width"]
    assert page.evaluate("document.documentElement.scrollHeight") < 3000
    page.screenshot(path=str(SCREENSHOTS / "admin-account.png"), full_page=True)

    related.get_by_role("link", name="Invoices: 2").click()
    expect(page.locator("#result_list tbody tr")).to_have_count(2)
    expect(page.locator("#result_list tbody")).to_contain_text(invoice.number)
    context.close()
