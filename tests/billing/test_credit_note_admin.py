"""Credit notes in the admin: a Finance admin previews and issues one from the invoice's page (whole lines, a
quantity at a line's unit price, an amount, goodwill) and voids one not yet applied from its page; billing staff
see neither button and are refused both pages; a refused credit stays on the form and issues nothing; history
offers no revert."""

import datetime as dt
import html as html_lib
import re
from decimal import Decimal as D

import pytest
import time_machine
from django.contrib.auth.models import Group

from accounts.permissions import BILLING_STAFF, FINANCE_ADMIN
from billing.models import CreditNote, Invoice
from billing.services.credit_notes import ERR_CREDIT_LINE_TOO_MUCH, ERR_QUANTITY_TOO_MUCH, credit_note_issue
from tests.accounts.factories import StaffUserFactory
from tests.billing.factories import business_invoice

pytestmark = pytest.mark.django_db
TODAY = dt.datetime(2026, 12, 10, 14, 30, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _december_10():
    with time_machine.travel(TODAY, tick=False):
        yield


@pytest.fixture
def invoice(plan):
    """$299 + 6,000 × $0.03 = $479.00 + 20 % = $574.80."""
    invoice = business_invoice(plan, tax_rate="20")
    assert (invoice.total, invoice.amount_due) == (D("574.80"), D("574.80"))
    return invoice


@pytest.fixture
def finance(client):
    client.force_login(StaffUserFactory(username="fiona", groups=[Group.objects.get(name=FINANCE_ADMIN)]))
    return client


@pytest.fixture
def billing_staff(client):
    client.force_login(StaffUserFactory(username="bianca", groups=[Group.objects.get(name=BILLING_STAFF)]))
    return client


def invoice_url(invoice):
    return f"/admin/billing/invoice/{invoice.pk}/change/"


def credit_url(invoice):
    return f"/admin/billing/invoice/{invoice.pk}/credit/"


def note_url(note):
    return f"/admin/billing/creditnote/{note.pk}/change/"


def void_url(note):
    return f"/admin/billing/creditnote/{note.pk}/void/"


def line(invoice, code):
    return invoice.lines.get(metric__code=code) if code != "base_fee" else invoice.lines.get(kind="base_fee")


def credit_data(invoice, *, reason="gateway retries", excess_to="balance", goodwill="", **modes):
    """The form as posted: every line "nothing" unless ``modes`` names it (``messages=("quantity", "6000")``)."""
    data = {"reason": reason, "excess_to": excess_to, "goodwill_amount": goodwill, "goodwill_description": "Goodwill"}
    for row in invoice.lines.all():
        data[f"line_{row.pk}_mode"], data[f"line_{row.pk}_value"] = "none", ""
    for code, (mode, value) in modes.items():
        row = line(invoice, code)
        data[f"line_{row.pk}_mode"], data[f"line_{row.pk}_value"] = mode, value
    return data


def text_of(html, element_id):
    found = re.search(rf'id="{element_id}"[^>]*>(.*?)</td>', html, re.S)
    return re.sub(r"<[^>]+>", "", found.group(1)).strip() if found else None


def errors_of(html, name):
    listed = re.search(rf'<ul class="errorlist" id="id_{name}_error">(.*?)</ul>', html, re.S)
    return [html_lib.unescape(m) for m in re.findall(r"<li>(.*?)</li>", listed.group(1))] if listed else []


def test_a_finance_admin_previews_then_issues_a_partial_line_credit(finance, invoice):
    page = finance.get(invoice_url(invoice)).content.decode()
    assert f'href="{credit_url(invoice)}" id="issue-credit-note"' in page

    form = finance.get(credit_url(invoice))
    assert form.status_code == 200
    shown = form.content.decode()
    assert "6,000" in shown and "USD 0.03" in shown and "USD 180.00" in shown  # the messages line, as money

    data = credit_data(invoice, messages=("quantity", "6000"))
    preview = finance.post(credit_url(invoice), {**data, "_preview": "Preview"})
    assert preview.status_code == 200
    html = preview.content.decode()
    # 6,000 × $0.03 = $180.00 + 20 % = $36.00: $216.00; $574.80 − $216.00 = $358.80 left to credit
    assert [text_of(html, f"preview-{k}") for k in ("subtotal", "tax", "total", "left")] == [
        "USD 180.00",
        "USD 36.00",
        "USD 216.00",
        "USD 358.80",
    ]
    assert 'name="_issue"' in html
    assert CreditNote.objects.count() == 0

    assert 'name="previewed_total" value="216.00"' in html
    issued = finance.post(credit_url(invoice), {**data, "_issue": "Issue credit note", "previewed_total": "216.00"})
    note = CreditNote.objects.get()
    assert (issued.status_code, issued["Location"]) == (302, note_url(note))
    assert (note.subtotal, note.tax, note.total, note.reason, note.created_by.username) == (
        D("180.00"),
        D("36.00"),
        D("216.00"),
        "gateway retries",
        "fiona",
    )
    assert list(note.lines.values_list("description", "amount")) == [
        ("6,000 messages credited at USD 0.03", D("180.00"))
    ]
    invoice.refresh_from_db()
    assert (invoice.amount_credited, invoice.amount_due) == (D("216.00"), D("358.80"))
    followed = finance.get(issued["Location"]).content.decode()
    assert "Issued CN-2026-000001: USD 216.00 credited on INV-2026-000001." in followed


def test_whole_lines_amounts_and_goodwill_add_up(finance, invoice):
    # the base fee whole ($299.00), $30.00 of the messages, $10.00 goodwill: $339.00 + $67.80 = $406.80
    data = credit_data(invoice, goodwill="10.00", base_fee=("whole", ""), messages=("amount", "30.00"))
    response = finance.post(credit_url(invoice), {**data, "_issue": "Issue credit note", "previewed_total": "406.80"})
    assert response.status_code == 302
    note = CreditNote.objects.get()
    assert (note.subtotal, note.tax, note.total) == (D("339.00"), D("67.80"), D("406.80"))
    assert sorted(note.lines.values_list("description", "amount")) == [
        ("Business base fee", D("299.00")),
        ("Goodwill", D("10.00")),
        ("Messages", D("30.00")),
    ]


def test_a_refused_credit_stays_on_the_form_and_issues_nothing(finance, invoice):
    messages = line(invoice, "messages")
    response = finance.post(credit_url(invoice), {**credit_data(invoice, messages=("quantity", "6001")), "_issue": "1"})
    assert response.status_code == 200
    assert errors_of(response.content.decode(), f"line_{messages.pk}_value") == [
        ERR_QUANTITY_TOO_MUCH.format(quantity="6,001", billable="6,000", line="Messages")
    ]
    # more than is left of the line, after an earlier credit of $100.00 of it
    credit_note_issue(invoice=invoice, lines=[(messages, "part", D("100.00"))], reason="earlier")
    response = finance.post(
        credit_url(invoice), {**credit_data(invoice, messages=("amount", "80.01")), "_preview": "1"}
    )
    assert errors_of(response.content.decode(), f"line_{messages.pk}_value") == [
        ERR_CREDIT_LINE_TOO_MUCH.format(amount="USD 80.01", line="Messages", left="USD 80.00")
    ]
    assert 'name="_issue"' not in response.content.decode()
    # no reason
    response = finance.post(credit_url(invoice), {**credit_data(invoice, reason="", goodwill="5.00"), "_issue": "1"})
    assert errors_of(response.content.decode(), "reason") == ["This field is required."]
    assert CreditNote.objects.count() == 1


def test_a_credit_is_issued_only_as_previewed(finance, invoice):
    data = credit_data(invoice, messages=("whole", ""))
    preview = finance.post(credit_url(invoice), {**data, "_preview": "1"}).content.decode()
    assert text_of(preview, "preview-total") == "USD 216.00"  # $180.00 + $36.00
    # meanwhile $100.00 of the line is credited elsewhere: the whole line is now $80.00 + $16.00 = $96.00
    credit_note_issue(invoice=invoice, lines=[(line(invoice, "messages"), "part", D("100.00"))], reason="earlier")
    response = finance.post(credit_url(invoice), {**data, "_issue": "1", "previewed_total": "216.00"})
    assert response.status_code == 200
    html = response.content.decode()
    assert text_of(html, "preview-total") == "USD 96.00"
    assert 'name="previewed_total" value="96.00"' in html
    assert CreditNote.objects.count() == 1
    response = finance.post(credit_url(invoice), {**data, "_issue": "1", "previewed_total": "96.00"})
    assert response.status_code == 302
    assert CreditNote.objects.get(number="CN-2026-000002").total == D("96.00")


def test_billing_staff_get_no_button_and_no_page(billing_staff, invoice):
    page = billing_staff.get(invoice_url(invoice))
    assert page.status_code == 200
    assert b"issue-credit-note" not in page.content
    assert billing_staff.get(credit_url(invoice)).status_code == 403
    data = credit_data(invoice, goodwill="10.00")
    assert billing_staff.post(credit_url(invoice), {**data, "_issue": "1"}).status_code == 403
    assert CreditNote.objects.count() == 0


def test_a_finance_admin_voids_a_note_not_yet_applied(finance, invoice):
    note = credit_note_issue(invoice=invoice, lines=[(None, "goodwill", D("10.00"))], reason="goodwill")
    page = finance.get(note_url(note)).content.decode()
    assert f'href="{void_url(note)}" id="void-credit-note"' in page
    form = finance.get(void_url(note)).content.decode()
    # $562.80 due; voiding the $12.00 credit: $574.80 again
    assert 'id="amount-due-after">USD 574.80<' in form
    refused = finance.post(void_url(note), {"reason": ""})
    assert errors_of(refused.content.decode(), "reason") == ["Give a reason."]
    response = finance.post(void_url(note), {"reason": "issued by mistake"})
    assert (response.status_code, response["Location"]) == (302, note_url(note))
    note.refresh_from_db()
    invoice.refresh_from_db()
    assert (note.status, note.void_reason, invoice.amount_due) == ("void", "issued by mistake", D("574.80"))
    page = finance.get(note_url(note)).content.decode()
    assert "void-credit-note" not in page  # void already
    assert "issued by mistake" in page


def test_an_applied_note_offers_no_void(finance, invoice):
    # $479.00 + $95.80 = $574.80: the invoice is settled by the note
    note = credit_note_issue(invoice=invoice, lines=[(None, "waived", D("479.00"))], reason="waived")
    assert Invoice.objects.get(pk=invoice.pk).status == "paid"
    assert "void-credit-note" not in finance.get(note_url(note)).content.decode()
    response = finance.post(void_url(note), {"reason": "mistake"})
    assert response.status_code == 200
    assert "is applied" in response.content.decode()
    assert CreditNote.objects.get(pk=note.pk).status == "issued"


def test_billing_staff_cannot_void(billing_staff, invoice):
    note = credit_note_issue(invoice=invoice, lines=[(None, "goodwill", D("10.00"))], reason="goodwill")
    assert "void-credit-note" not in billing_staff.get(note_url(note)).content.decode()
    assert billing_staff.get(void_url(note)).status_code == 403
    assert billing_staff.post(void_url(note), {"reason": "mistake"}).status_code == 403
    assert CreditNote.objects.get(pk=note.pk).status == "issued"


def test_history_of_a_credited_invoice_and_a_voided_note_offers_no_revert(finance, invoice):
    finance.post(
        credit_url(invoice), {**credit_data(invoice, goodwill="10.00"), "_issue": "1", "previewed_total": "12.00"}
    )
    note = CreditNote.objects.get()
    finance.post(void_url(note), {"reason": "issued by mistake"})
    for model, obj in (("invoice", invoice), ("creditnote", note)):
        page = finance.get(f"/admin/billing/{model}/{obj.pk}/history/")
        assert page.status_code == 200
        assert b"Revert" not in page.content
        assert f'href="/admin/billing/{model}/{obj.pk}/history/'.encode() not in page.content  # no entry links
        versions = list(type(obj).history.filter(id=obj.pk).values_list("history_id", flat=True))
        assert len(versions) >= 2
        for version in versions:
            assert finance.get(f"/admin/billing/{model}/{obj.pk}/history/{version}/").status_code == 403
            response = finance.post(f"/admin/billing/{model}/{obj.pk}/history/{version}/", {"_save": "Revert"})
            assert response.status_code == 403
    note.refresh_from_db()
    assert note.status == "void"
