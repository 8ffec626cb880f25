"""A dispute from complaint to credit note, in real Chromium: the customer disputes a line of their invoice in the
portal with a CSV attached; billing staff pick it up in the admin, review the events behind the line, reply and
propose a partial credit; a Finance admin approves it; the customer sees the credit note's PDF and the lower
amount due."""

import datetime as dt
from decimal import Decimal as D

import pytest
from django.apps import apps
from playwright.sync_api import expect

from accounts.permissions import staff_groups_sync
from accounts.services import account_user_create
from billing.models import CreditNote, Invoice
from common import clock
from disputes.models import CreditProposal, Dispute
from tests.disputes.factories import billing_staff, finance_admin, issued_invoice

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]
PASSWORD = "portal-pass-123"
STAFF_PASSWORD = "staff-pass-123"
CSV = b"transaction_id,timestamp,quantity\nretry-1,2026-11-10T10:00:00Z,3000\nretry-2,2026-11-10T10:05:00Z,3000\n"


def sign_in_admin(context, base, user):
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{base}/admin/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(STAFF_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    return page


def test_a_customer_dispute_ends_in_an_approved_partial_credit(
    live_server, browser, page, plan, artifacts, settings, tmp_path
):
    staff_groups_sync(apps)  # another transactional test may have flushed the groups
    settings.DISPUTES_CREDIT_APPROVAL_ABOVE = "100.00"
    invoice = issued_invoice(plan, name="Northwind Logistics")  # $479.00 + 20 % = $574.80, finalized Dec 1
    account_user_create(account=invoice.account, email="owner@northwind.example", role="owner", password=PASSWORD)
    bianca = billing_staff(first_name="Bianca")
    fiona = finance_admin(first_name="Fiona")
    clock.clock_set(at=dt.datetime(2026, 12, 10, 9, tzinfo=dt.UTC), allow_backwards=True)
    attachment = tmp_path / "retries.csv"
    attachment.write_bytes(CSV)
    base = live_server.url

    # The customer disputes 6,000 of the invoice's messages, with the export of the retried requests.
    page.goto(f"{base}/portal/login/")
    page.get_by_label("E-mail address").fill("owner@northwind.example")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"{base}/portal/invoices/{invoice.number}/")
    page.get_by_role("link", name="Dispute this invoice").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Dispute invoice {invoice.number}")
    page.get_by_role("checkbox", name="Messages", exact=True).check()
    page.get_by_label("Quantity disputed of Messages").fill("6000")
    page.get_by_label("Subject").fill("Retries counted twice")
    page.get_by_label("What is wrong").fill("Our gateway retried 6,000 messages during the outage on the 10th.")
    page.get_by_label("Attachments (optional)").set_input_files(str(attachment))
    page.get_by_role("button", name="Open dispute").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Dispute dsp_000001: Retries counted twice")
    expect(page.locator("#state")).to_have_text("Open")
    expect(page.get_by_role("list", name="Files").get_by_role("link", name="retries.csv")).to_be_visible()
    page.screenshot(path=str(artifacts / "portal-dispute-opened.png"), full_page=True)
    dispute = Dispute.objects.get()
    assert (dispute.state, dispute.lines.get().disputed_quantity) == ("open", D("6000"))

    # Billing staff pick it up, review the events behind the line and answer.
    staff_context = browser.new_context(viewport={"width": 1366, "height": 900})
    try:
        admin = sign_in_admin(staff_context, base, bianca)
        admin.goto(f"{base}/admin/disputes/dispute/")
        admin.get_by_role("link", name="dsp_000001").click()
        expect(admin.locator(f"#evidence-{dispute.lines.get().invoice_line_id}-reconciles")).to_contain_text(
            "reconciles"
        )
        admin.locator("#action-investigate summary").click()
        admin.locator("#action-investigate").get_by_role("button", name="Investigate").click()
        expect(admin.locator("ul.messagelist")).to_contain_text("Investigating dsp_000001.")
        admin.locator("#action-reply summary").click()
        admin.locator("#action-reply").get_by_label("Message").fill(
            "We found the retries in your export; we are crediting them."
        )
        admin.locator("#action-reply").get_by_role("button", name="Reply to the customer").click()
        expect(admin.locator("ul.messagelist")).to_contain_text("Reply sent to the customer")

        # A partial credit: 6,000 messages at $0.03 = $180.00 + $36.00 tax, above the $100.00 threshold.
        admin.locator("#action-propose_credit").click()
        admin.get_by_label("Credit on Messages").select_option(label="quantity at the unit price")
        admin.get_by_label("Quantity or amount on Messages").fill("6000")
        admin.get_by_label("Reason").fill("Gateway retries during the outage, confirmed in the export.")
        admin.get_by_role("button", name="Preview").click()
        expect(admin.locator("body")).to_contain_text("USD 216.00")
        admin.get_by_role("button", name="Propose for approval").click()
        expect(admin.locator("#pending-credit")).to_contain_text("Credit of USD 216.00 awaiting Finance approval")
        admin.screenshot(path=str(artifacts / "admin-dispute-pending-credit.png"), full_page=True)
    finally:
        staff_context.close()
    assert not CreditNote.objects.exists()

    # A Finance admin approves it: the credit note is issued and the case resolved.
    finance_context = browser.new_context(viewport={"width": 1366, "height": 900})
    try:
        admin = sign_in_admin(finance_context, base, fiona)
        admin.goto(f"{base}/admin/disputes/dispute/{dispute.pk}/change/")
        admin.locator("#action-approve summary").click()
        admin.locator("#action-approve").get_by_role("button", name="Approve credit").click()
        expect(admin.locator("ul.messagelist")).to_contain_text("Credit approved")
    finally:
        finance_context.close()
    note = CreditNote.objects.get()
    assert (note.number, note.subtotal, note.tax, note.total) == (
        "CN-2026-000001",
        D("180.00"),
        D("36.00"),
        D("216.00"),
    )
    assert CreditProposal.objects.get().decided_by == fiona
    invoice.refresh_from_db()
    assert invoice.amount_due == D("358.80")  # $574.80 − $216.00

    # The customer sees the outcome, downloads the credit note and finds the lower amount due.
    page.goto(f"{base}/portal/disputes/dsp_000001/")
    expect(page.locator("#state")).to_have_text("Resolved")
    outcome = page.locator("#outcome")
    expect(outcome).to_contain_text("CN-2026-000001")
    expect(outcome).to_contain_text("USD 216.00")
    expect(page.locator("body")).to_contain_text("We found the retries in your export; we are crediting them.")
    page.screenshot(path=str(artifacts / "portal-dispute-credited.png"), full_page=True)
    with page.expect_download() as download:
        outcome.get_by_role("link", name="Download").click()
    assert download.value.suggested_filename == "CN-2026-000001.pdf"
    assert open(download.value.path(), "rb").read(5) == b"%PDF-"
    page.goto(f"{base}/portal/invoices/{invoice.number}/")
    expect(page.locator("#credited")).to_have_text("USD 216.00")
    expect(page.locator("#amount-due")).to_have_text("USD 358.80")
    assert Invoice.objects.get(pk=invoice.pk).status == "finalized"
