"""A Finance admin records a customer's bank transfer in the admin, in real Chromium; the customer then sees
the invoice paid in the portal."""

import datetime as dt
from decimal import Decimal as D
from pathlib import Path

import pytest
from django.apps import apps
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from accounts.permissions import FINANCE_ADMIN, staff_groups_sync
from accounts.services import account_user_create
from billing.models import Invoice, Payment
from common import clock
from tests.accounts.factories import StaffUserFactory
from tests.billing.factories import business_invoice

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]
PASSWORD = "portal-pass-123"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def test_a_bank_transfer_recorded_in_the_admin_shows_the_invoice_paid_in_the_portal(
    live_server, browser, page, plan, artifacts
):
    # Another transactional test may have flushed the groups migrations seed; they are re-seeded the same way.
    staff_groups_sync(apps)
    finance = StaffUserFactory(username="fiona", groups=[Group.objects.get(name=FINANCE_ADMIN)])
    invoice = business_invoice(plan, name="Northwind Logistics", tax_rate="20")  # USD 574.80, finalized Dec 1
    account_user_create(account=invoice.account, email="owner@northwind.example", role="owner", password=PASSWORD)
    clock.clock_set(at=dt.datetime(2026, 12, 10, 9, tzinfo=dt.UTC), allow_backwards=True)

    page.goto(f"{live_server.url}/admin/")
    page.get_by_label("Username").fill(finance.username)
    page.get_by_label("Password").fill("staff-pass-123")
    page.get_by_role("button", name="Log in").click()
    page.goto(f"{live_server.url}/admin/billing/invoice/{invoice.pk}/change/")
    page.get_by_role("link", name="Record payment").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Record a payment from Northwind Logistics")
    expect(page.get_by_label("Amount (USD)")).to_have_value("574.80")  # what is due on the invoice it came from
    expect(page.get_by_label(f"Apply to {invoice.number}")).to_have_value("574.80")
    expect(page.locator("#allocation-help")).to_contain_text("becomes the account's credit balance")
    # Typing another amount refills the invoice's box, up to what is due.
    page.get_by_label("Amount (USD)").fill("100")
    expect(page.get_by_label(f"Apply to {invoice.number}")).to_have_value("100.00")
    page.get_by_label("Amount (USD)").fill("574.80")
    expect(page.get_by_label(f"Apply to {invoice.number}")).to_have_value("574.80")
    page.get_by_label("Received on").fill("2026-12-09")
    page.get_by_label("Method").select_option(label="Bank transfer")
    page.get_by_label("Reference").fill("NW-TRF-20261209")
    page.screenshot(path=str(artifacts / "admin-record-payment.png"), full_page=True)
    page.get_by_role("button", name="Record payment").click()

    expect(page.locator("ul.messagelist")).to_contain_text("applied USD 574.80 to " + invoice.number)
    expect(page.locator("#allocations-group")).to_contain_text("NW-TRF-20261209")
    expect(page.get_by_role("link", name="Record payment")).to_have_count(0)  # nothing left to pay
    page.get_by_role("link", name="Northwind Logistics", exact=False).first.click()
    expect(page.locator("#credit-balance")).to_have_text("USD 0.00")
    expect(page.locator(".field-amount_due_shown")).to_contain_text("USD 0.00 (no open invoices)")
    page.screenshot(path=str(artifacts / "admin-account-payments.png"), full_page=True)
    payment = Payment.objects.get()
    assert (payment.amount, payment.provider, payment.status) == (D("574.80"), "bank_transfer", "succeeded")
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_paid, invoice.amount_due) == (Invoice.Status.PAID, D("574.80"), D("0.00"))

    customer = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        portal = customer.new_page()
        portal.set_default_timeout(15_000)
        portal.goto(f"{live_server.url}/portal/login/")
        portal.get_by_label("E-mail address").fill("owner@northwind.example")
        portal.get_by_label("Password").fill(PASSWORD)
        portal.get_by_role("button", name="Sign in").click()
        expect(portal.get_by_role("heading", level=1)).to_be_visible()
        portal.goto(f"{live_server.url}/portal/invoices/")
        row = portal.get_by_role("row").filter(has=portal.get_by_role("link", name=invoice.number, exact=True))
        expect(row.locator(".badge")).to_have_text("Paid")
        row.get_by_role("link", name=invoice.number, exact=True).click()
        expect(portal.get_by_role("heading", level=1)).to_contain_text(f"Invoice {invoice.number}")
        expect(portal.locator("h1 .badge")).to_have_text("Paid")
        expect(portal.locator("#paid")).to_have_text("USD 574.80")
        expect(portal.locator("#amount-due")).to_have_text("USD 0.00")
        portal.screenshot(path=str(artifacts / "portal-invoice-paid.png"), full_page=True)

        portal.get_by_role("link", name="Billing", exact=True).click()
        expect(portal.locator("#open-balance")).to_have_text("USD 0.00")
        payments = portal.get_by_role("table").filter(has_text="NW-TRF-20261209")
        expect(payments).to_contain_text("USD 574.80")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        portal.screenshot(path=str(SCREENSHOTS / "portal-billing.png"), full_page=True)
    finally:
        customer.close()
