"""Customers use the portal's billing pages in real Chromium: sign in, read the month's usage charts,
open an invoice and download its PDF; phones get no sideways scrolling; other accounts' invoices are 404."""

from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.portal.billing_fixtures import PASSWORD, billing_book

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PHONE = {"width": 390, "height": 844}


def sign_in(page, base_url: str, email: str) -> None:
    page.goto(f"{base_url}/portal/login/")
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def horizontal_overflow(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def test_a_customer_reads_the_dashboard_chart_and_downloads_an_invoice_pdf(
    live_server, browser, page, plan, tmp_path, artifacts
):
    book = billing_book(plan)
    invoice = book["northwind"]["invoice"]
    sign_in(page, live_server.url, "owner@northwind.example")

    expect(page.get_by_role("heading", level=1)).to_have_text("Usage and estimated charges, November 2026")
    expect(page.get_by_role("link", name="Usage")).to_have_attribute("aria-current", "page")
    chart = page.get_by_role("img", name="Messages per day").first
    expect(chart).to_be_visible()
    bars = page.locator("svg.chart").first.locator("rect.bar")
    assert bars.count() == 20  # one per day, November 1 to 20
    assert bars.first.bounding_box()["height"] > 0
    expect(page.locator("svg.chart").nth(1).locator("rect.bar").first).to_be_visible()  # stacked by tenant
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "dashboard.png"), full_page=True)

    page.get_by_role("link", name="Invoices").click()
    page.get_by_role("link", name=invoice.number, exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Invoice {invoice.number}")
    expect(page.locator("#amount-due")).to_have_text(f"USD {invoice.amount_due:,.2f}")
    page.screenshot(path=str(SCREENSHOTS / "invoice.png"), full_page=True)

    with page.expect_download() as info:
        page.get_by_role("link", name="Download PDF").click()
    download = info.value
    assert download.suggested_filename == f"{invoice.number}.pdf"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    assert saved.read_bytes().startswith(b"%PDF")

    # The same pages on a phone: nothing runs off the side of the screen.
    phone = browser.new_context(viewport=PHONE, storage_state=page.context.storage_state())
    try:
        small = phone.new_page()
        for path in ("/portal/", f"/portal/invoices/{invoice.number}/", "/portal/invoices/"):
            small.goto(f"{live_server.url}{path}")
            expect(small.get_by_role("heading", level=1)).to_be_visible()
            assert horizontal_overflow(small) <= 0, path
            small.screenshot(
                path=str(artifacts / f"portal-phone-{path.strip('/').replace('/', '-')}.png"), full_page=True
            )
    finally:
        phone.close()


def test_a_customer_of_another_account_gets_404_for_that_invoice(live_server, browser, plan):
    book = billing_book(plan)
    number = book["northwind"]["invoice"].number
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        sign_in(page, live_server.url, "owner@globex.example")
        expect(page.get_by_role("heading", level=1)).to_contain_text("Usage and estimated charges")
        for path in (f"/portal/invoices/{number}/", f"/portal/invoices/{number}/pdf"):
            response = page.goto(f"{live_server.url}{path}")
            assert response.status == 404, path
        response = page.goto(f"{live_server.url}/portal/invoices/{book['globex']['invoice'].number}/")
        assert response.status == 200
    finally:
        context.close()
