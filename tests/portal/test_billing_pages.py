"""The portal's sign-in, dashboard, invoices and credit notes, through Django's test client."""

import re
from decimal import Decimal

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from billing.models import Document
from common.money import format_money
from tests.portal.billing_fixtures import PASSWORD, billing_book

pytestmark = pytest.mark.django_db


@pytest.fixture
def book(plan):
    return billing_book(plan)


@pytest.fixture
def northwind(book, client):
    client.login(username="owner@northwind.example", password=PASSWORD)
    return book["northwind"]


def text_of(html: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', html)
    assert match, f"#{element_id} not on the page"
    return match.group(1).strip()


def test_anonymous_visitors_are_sent_to_the_login_page(client):
    for path in ("/portal/", "/portal/invoices/", "/portal/invoices/INV-2026-000001/pdf", "/portal/credit-notes/"):
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"] == f"/portal/login/?next={path}"


def test_a_customer_signs_in_with_e_mail_and_password_and_signs_out(book, client):
    page = client.get("/portal/login/")
    assert b'<label for="id_username">E-mail address</label>' in page.content
    assert b'href="/portal/password-reset/">Forgot your password?</a>' in page.content

    wrong = client.post("/portal/login/", {"username": "owner@northwind.example", "password": "nope"})
    assert wrong.status_code == 200
    assert b'role="alert"' in wrong.content and b"Please enter a correct" in wrong.content

    response = client.post("/portal/login/", {"username": " Owner@Northwind.example", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/portal/"
    assert b"Northwind Logistics" in client.get("/portal/").content

    out = client.post("/portal/logout/")
    assert out["Location"] == "/portal/login/"
    assert client.get("/portal/").status_code == 302


def test_staff_without_an_account_see_the_no_account_page(client, django_user_model):
    django_user_model.objects.create_user("bianca", "bianca@ledgerline.example", "staff-pass-123", is_staff=True)
    client.login(username="bianca", password="staff-pass-123")
    response = client.get("/portal/")
    assert response.status_code == 403
    assert b"This login has no customer account" in response.content


def test_password_reset_sends_an_absolute_link_that_sets_a_new_password(book, client):
    response = client.post("/portal/password-reset/", {"email": "Owner@Northwind.example"})
    assert response["Location"] == "/portal/password-reset/sent/"
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["owner@northwind.example"]
    assert message.subject == "Reset your Ledgerline billing portal password"
    link = re.search(r"http://testserver(/portal/reset/[^/\s]+/[^/\s]+/)", message.body).group(1)

    form = client.get(link, follow=True)
    assert b"Choose a new password" in form.content
    done = client.post(
        form.redirect_chain[-1][0], {"new_password1": "Fresh-ledger-42", "new_password2": "Fresh-ledger-42"}
    )
    assert done["Location"] == "/portal/reset/done/"
    assert client.login(username="owner@northwind.example", password="Fresh-ledger-42")
    assert not client.login(username="owner@northwind.example", password=PASSWORD)
    # The link works once.
    assert b"This link no longer works" in client.get(link, follow=True).content


def test_password_reset_for_an_unknown_address_sends_nothing_and_says_the_same(book, client):
    response = client.post("/portal/password-reset/", {"email": "nobody@northwind.example"}, follow=True)
    assert b"Check your e-mail" in response.content
    assert mail.outbox == []


def test_the_dashboard_shows_the_same_figures_as_the_usage_api(northwind, client):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {northwind['key']}")
    body = api.get("/v1/billing/usage/current").json()
    html = client.get("/portal/").content.decode()

    assert text_of(html, "estimated-charges") == format_money(
        Decimal(body["usage_to_date"]["estimated_charges"]), "USD"
    )
    assert text_of(html, "estimated-total") == format_money(Decimal(body["usage_to_date"]["estimated_total"]), "USD")
    assert Decimal(body["usage_to_date"]["estimated_charges"]) > Decimal("299.00")
    for metric in body["metrics"]:
        row = re.search(rf'<tr data-metric="{metric["metric"]}">(.*?)</tr>', html, re.S).group(1)
        assert f'data-label="Charge">{format_money(Decimal(metric["charge"]), "USD")}<' in row
        assert f'data-label="Quantity">{Decimal(metric["quantity"]):,.0f}<' in row or metric["metric"] == "storage_gb"
    for tenant in body["tenants"]:
        assert format_money(Decimal(tenant["cost"]), "USD") in html
        assert tenant["tenant_name"] in html
    for partner in body["partner_breakdown"]:
        assert f"{partner['partner_name']} <span" in html
        assert format_money(Decimal(partner["cost"]), "USD") in html
    assert "Nov 1, 2026 – Nov 30, 2026" in html
    assert "11 days left including today" in html


def test_the_dashboard_meters_the_message_limit_and_charts_daily_usage(northwind, client):
    html = client.get("/portal/").content.decode()
    row = re.search(r'<tr data-metric="messages">(.*?)</tr>', html, re.S).group(1)
    assert re.search(r'class="meter (warn|high|over)?"', row)
    assert "of 25,000" in row
    # A chart per metric and one by tenant, as accessible SVG with a data table.
    assert html.count('<svg class="chart"') == 4  # messages and storage: in total and by tenant
    assert 'role="img"' in html and "<title" in html
    assert "<summary>Messages per day as a table</summary>" in html
    assert "Nov 20" in html  # today's bar is in the table


def test_the_invoice_list_shows_issued_invoices_and_hides_drafts(book, northwind, client):
    html = client.get("/portal/invoices/").content.decode()
    invoice = northwind["invoice"]
    assert invoice.number in html
    assert "October 2026" in html
    assert "September 2026" not in html
    assert book["globex"]["invoice"].number not in html
    assert format_money(invoice.total, "USD") in html and format_money(invoice.amount_due, "USD") in html


def test_the_invoice_page_shows_every_money_figure_and_its_credit_note(northwind, client):
    invoice = northwind["invoice"]
    html = client.get(f"/portal/invoices/{invoice.number}/").content.decode()
    assert text_of(html, "subtotal") == format_money(invoice.subtotal, "USD")
    assert text_of(html, "tax") == format_money(invoice.tax, "USD")
    assert text_of(html, "total") == format_money(invoice.total, "USD")
    assert text_of(html, "paid") == "USD 200.00"
    assert text_of(html, "credited") == "USD 25.00"
    assert text_of(html, "amount-due") == format_money(invoice.total - Decimal("225.00"), "USD")
    for line in invoice.lines.all():
        assert line.description in html
        assert format_money(line.amount, "USD") in html
    # Grouped by tenant from the lines' breakdown, and by partner.
    assert "Northwind Europe" in html and "ten_northwind_latam" in html
    messages = invoice.lines.get(metric__code="messages")
    for share in messages.breakdown["tenants"]:
        assert format_money(Decimal(share["amount"]), "USD") in html
    assert "Northwind Carrier 2" in html
    assert northwind["credit_note"].number in html
    assert "Goodwill credit for the October 14 delivery outage" in html


def test_the_invoice_pdf_downloads_as_an_attachment_named_after_its_number(northwind, client):
    invoice = northwind["invoice"]
    response = client.get(f"/portal/invoices/{invoice.number}/pdf")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'attachment; filename="{invoice.number}.pdf"'
    assert response["Cache-Control"] == "private, no-store"
    assert b"".join(response.streaming_content).startswith(b"%PDF")


def test_a_pdf_whose_file_is_gone_is_rendered_again_for_the_download(northwind, client):
    invoice, note = northwind["invoice"], northwind["credit_note"]
    for url in (f"/portal/invoices/{invoice.number}/pdf", f"/portal/credit-notes/{note.number}/pdf"):
        b"".join(client.get(url).streaming_content)
    for document in Document.objects.filter(invoice=invoice) | Document.objects.filter(credit_note=note):
        document.file.storage.delete(document.file.name)

    response = client.get(f"/portal/invoices/{invoice.number}/pdf")
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="{invoice.number}.pdf"'
    assert b"".join(response.streaming_content).startswith(b"%PDF")
    response = client.get(f"/portal/credit-notes/{note.number}/pdf")
    assert response.status_code == 200
    assert b"".join(response.streaming_content).startswith(b"%PDF")


def test_a_failed_pdf_is_queued_again_not_rendered_in_the_request(
    northwind, client, django_capture_on_commit_callbacks
):
    invoice = northwind["invoice"]
    b"".join(client.get(f"/portal/invoices/{invoice.number}/pdf").streaming_content)
    # As the render task records a failure (a real one is in tests/billing/test_documents.py).
    Document.objects.filter(invoice=invoice).update(status=Document.Status.FAILED, error="OSError: cannot load font")
    renders = Document.objects.get(invoice=invoice).renders

    with django_capture_on_commit_callbacks() as callbacks:
        for _ in range(3):
            response = client.get(f"/portal/invoices/{invoice.number}/pdf")
            assert response.status_code == 503
            assert response["Retry-After"] == "300"
            assert response["Cache-Control"] == "private, no-store"
            assert f"The PDF of {invoice.number} is not ready" in response.content.decode()
    # One render queued for the three clicks, none done in the requests.
    assert len(callbacks) == 1
    document = Document.objects.get(invoice=invoice)
    assert (document.status, document.renders) == ("pending", renders)

    for callback in callbacks:
        callback()  # the worker renders it
    response = client.get(f"/portal/invoices/{invoice.number}/pdf")
    assert response.status_code == 200
    assert b"".join(response.streaming_content).startswith(b"%PDF")
    assert Document.objects.get(invoice=invoice).renders == renders + 1


def test_credit_notes_are_listed_with_their_pdf(northwind, client):
    note = northwind["credit_note"]
    html = client.get("/portal/credit-notes/").content.decode()
    assert note.number in html and "USD 25.00" in html
    response = client.get(f"/portal/credit-notes/{note.number}/pdf")
    assert response["Content-Disposition"] == f'attachment; filename="{note.number}.pdf"'
    assert b"".join(response.streaming_content).startswith(b"%PDF")


def test_another_accounts_invoice_pdf_and_credit_note_are_not_found(book, northwind, client):
    globex = book["globex"]
    number, note = globex["invoice"].number, globex["credit_note"].number
    assert client.get(f"/portal/invoices/{number}/").status_code == 404
    assert client.get(f"/portal/invoices/{number}/pdf").status_code == 404
    assert client.get(f"/portal/credit-notes/{note}/pdf").status_code == 404
    assert note not in client.get("/portal/credit-notes/").content.decode()


def test_a_draft_invoice_is_not_found(book, northwind, client):
    # A draft has no number yet; neither its id nor anything else reaches it.
    draft = book["draft"]
    assert draft.status == "draft" and draft.number is None
    assert client.get(f"/portal/invoices/{draft.pk}/").status_code == 404
    assert client.get(f"/portal/invoices/{draft.pk}/pdf").status_code == 404
    assert client.get("/portal/invoices/None/").status_code == 404


def test_the_daily_charts_add_up_to_the_months_quantities(northwind):
    from billing.rating.engine import charges_estimate
    from common import clock
    from common.periods import month_containing
    from usage.selectors import daily_usage

    now = clock.now()
    period = month_containing(now)
    usage = daily_usage(account=northwind["account"], period=period, now=now)
    estimate = charges_estimate(account=northwind["account"], period=period, now=now)
    assert len(usage.days) == 20
    daily = {entry.metric.code: entry for entry in usage.metrics}
    messages, storage = daily["messages"], daily["storage_gb"]
    assert sum(messages.totals) == estimate.usage["messages"].quantity
    for i in range(20):
        assert sum(values[i] for values in messages.by_tenant.values()) == messages.totals[i]
    # One tenant's own days are its row of the account's.
    tenant = northwind["account"].tenants.get(public_id="ten_northwind_eu")
    alone = {
        e.metric.code: e
        for e in daily_usage(account=northwind["account"], period=period, now=now, tenant=tenant).metrics
    }
    assert alone["messages"].by_tenant == {tenant.pk: messages.by_tenant[tenant.pk]}
    assert alone["messages"].totals == messages.by_tenant[tenant.pk]
    assert alone["storage_gb"].by_tenant == {tenant.pk: storage.by_tenant[tenant.pk]}
    # Gauges accrue GB-months day by day: the days add up to the month so far (to rounding of the days).
    assert abs(sum(storage.totals) - estimate.usage["storage_gb"].quantity) < Decimal("0.0000005")


def test_a_new_account_without_a_plan_or_usage_sees_empty_pages_that_say_so(client, catalogue):
    from tests.accounts.factories import AccountUserFactory

    member = AccountUserFactory(email="new@fresh.example")
    client.login(username=member.user.username, password="portal-pass-123")
    dashboard = client.get("/portal/")
    assert dashboard.status_code == 200
    assert b"No usage charges on your plan this month." in dashboard.content
    assert b"No invoices yet." in client.get("/portal/invoices/").content
    assert b"No credit notes." in client.get("/portal/credit-notes/").content


def test_a_reverse_charge_invoice_says_so_and_shows_its_discount(client, catalogue):
    from billing.models import Invoice, Plan, PlanCharge
    from billing.services.catalogue import ChargeSpec, plan_create, plan_version_create
    from tests.accounts.factories import AccountFactory, AccountUserFactory
    from tests.billing.cycle import JAN_1, close, event, ingest, subscribe
    from tests.tenants.factories import TenantFactory

    account = AccountFactory(
        name="Umbrella Pharma", currency="EUR", tax_country="DE", tax_id="DE811569869", tax_reverse_charge=True
    )
    custom = plan_create(
        code="custom-umbrella", name="Umbrella contract", product=Plan.Product.MESSAGING, account=account
    )
    version = plan_version_create(
        plan=custom,
        currency="EUR",
        base_fee=Decimal("2500.00"),
        discount_percent=Decimal("10"),
        charges=[
            ChargeSpec("tenants", included_quantity=None, pricing_model=PlanCharge.PricingModel.INCLUDED_ONLY),
            ChargeSpec("messages", included_quantity=Decimal("1000"), unit_price=Decimal("0.01")),
        ],
        publish=True,
    )
    subscribe(account, version, started_at=JAN_1)
    TenantFactory(account=account, public_id="ten_umbrella_de", name="Umbrella Berlin", activated_at=JAN_1)
    ingest(account, [event("m1", "ten_umbrella_de", "messages", 41_000, "2026-11-10T10:00:00Z")])
    close()
    invoice = Invoice.objects.get(account=account)
    member = AccountUserFactory(account=account, email="ap@umbrella.example")
    client.login(username=member.user.username, password="portal-pass-123")

    html = client.get(f"/portal/invoices/{invoice.number}/").content.decode()
    # 40,000 billable messages × €0.01 = €400.00, less 10 % (€40.00) on usage; no VAT charged.
    assert text_of(html, "subtotal") == "EUR 2,860.00"
    assert text_of(html, "discount") == "−EUR 40.00"
    assert text_of(html, "tax") == "EUR 0.00"
    assert text_of(html, "total") == "EUR 2,860.00"
    assert "reverse charge applies, the customer accounts for the VAT (VAT ID DE811569869)" in html
    assert "Umbrella Berlin" in html


def test_tenant_shares_show_quantity_and_amount_without_a_unit_price(northwind, client):
    invoice = northwind["invoice"]
    html = client.get(f"/portal/invoices/{invoice.number}/").content.decode()
    charges, by_tenant = html.split('id="tenants-heading"', 1)
    by_tenant = by_tenant.split("</table>", 1)[0]
    assert "Unit price" in charges
    assert "Unit price" not in by_tenant
    assert "included quantities and price tiers apply to the account as a whole" in by_tenant
    messages = invoice.lines.get(metric__code="messages")
    for share in messages.breakdown["tenants"]:
        assert format_money(Decimal(share["amount"]), "USD") in by_tenant


def test_the_invoice_page_reads_the_lines_and_their_metrics_once(northwind, client):
    invoice = northwind["invoice"]
    assert invoice.lines.filter(metric__isnull=False).count() > 1
    with CaptureQueriesContext(connection) as queries:
        assert client.get(f"/portal/invoices/{invoice.number}/").status_code == 200
    line_reads = [q["sql"] for q in queries if 'FROM "billing_invoiceline"' in q["sql"]]
    metric_reads = [q["sql"] for q in queries if 'FROM "billing_metric"' in q["sql"]]
    assert (len(line_reads), metric_reads) == (1, [])
