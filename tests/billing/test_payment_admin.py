"""Payments in the admin: a Finance admin records a bank transfer against an account's open invoices (from the
account's or an invoice's page), refunds the credit balance and reverses a payment; billing staff read the
ledger but may do none of it; bad input stays on the form and records nothing; payments are read-only."""

import datetime as dt
import html as html_lib
import re
from decimal import Decimal as D

import pytest
import time_machine
from django.contrib.auth.models import Group

from accounts.permissions import BILLING_STAFF, FINANCE_ADMIN
from accounts.services import account_user_create
from billing.forms_payments import ERR_FUTURE_DAY
from billing.models import Invoice, Payment, PaymentAllocation, Refund
from billing.selectors import credit_balance
from billing.services.payments import (
    ERR_ALLOCATIONS_EXCEED,
    ERR_AMOUNT,
    ERR_BALANCE_TOO_LOW,
    ERR_REASON,
    payment_record,
)
from common.periods import month_period
from tests.accounts.factories import AccountFactory, StaffUserFactory
from tests.admin_html import table_header, table_rows
from tests.billing.cycle import JAN_1, close, ingest, subscribe
from tests.tenants.factories import TenantFactory
from tests.usage.factories import usage_event

pytestmark = pytest.mark.django_db
UTC = dt.UTC
TODAY = dt.datetime(2026, 12, 10, 14, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _december_10():
    """Staff work on December 10, 2026 (14:30 UTC), after both invoices were issued."""
    with time_machine.travel(TODAY, tick=False):
        yield


@pytest.fixture
def account(plan):
    """Northwind on Business (no tax) with two open invoices: October, 31,000 messages,
    $299 + 6,000 × $0.03 = $479.00; November, 26,234 messages, $299 + 1,234 × $0.03 = $336.02."""
    with time_machine.travel(dt.datetime(2026, 10, 1, tzinfo=UTC), tick=False):
        account = AccountFactory(name="Northwind Logistics")
    subscribe(account, plan("messaging-business"))
    TenantFactory(account=account, public_id="ten_nw", activated_at=JAN_1)
    october = [usage_event(transaction_id="oct", tenant="ten_nw", quantity=31_000, at="2026-10-10T10:00:00Z")]
    ingest(account, october, now=dt.datetime(2026, 10, 31, 23, tzinfo=UTC))
    close(period=month_period(2026, 10), now=dt.datetime(2026, 11, 1, 0, 5, tzinfo=UTC))
    ingest(account, [usage_event(transaction_id="nov", tenant="ten_nw", quantity=26_234, at="2026-11-10T10:00:00Z")])
    close()
    assert [(i.number, i.status, i.amount_due) for i in invoices_of(account)] == [
        ("INV-2026-000001", "finalized", D("479.00")),
        ("INV-2026-000002", "finalized", D("336.02")),
    ]
    return account


def invoices_of(account):
    return list(Invoice.objects.filter(account=account).order_by("period_start"))


@pytest.fixture
def finance_user():
    return StaffUserFactory(username="fiona", groups=[Group.objects.get(name=FINANCE_ADMIN)])


@pytest.fixture
def finance(client, finance_user):
    client.force_login(finance_user)
    return client


@pytest.fixture
def billing_staff_user():
    return StaffUserFactory(username="bianca", groups=[Group.objects.get(name=BILLING_STAFF)])


@pytest.fixture
def billing_staff(client, billing_staff_user):
    client.force_login(billing_staff_user)
    return client


def record_url(account, invoice=None):
    return f"/admin/billing/payment/record/{account.pk}/" + (f"?invoice={invoice.pk}" if invoice else "")


def form_data(**values):
    return {"amount": "", "received_at": "2026-12-09", "provider": "bank_transfer", "reference": "", "note": ""} | {
        key: str(value) for key, value in values.items()
    }


def box(invoice):
    return f"invoice_{invoice.pk}"


def page_of(client, url):
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def field_errors(html, name):
    """The messages listed under the form field ``name``."""
    listed = re.search(rf'<ul class="errorlist" id="id_{name}_error">(.*?)</ul>', html, re.S)
    return [html_lib.unescape(m) for m in re.findall(r"<li>(.*?)</li>", listed.group(1))] if listed else []


def form_errors(html):
    listed = re.search(r'<ul class="errorlist nonfield">(.*?)</ul>', html, re.S)
    return [html_lib.unescape(m) for m in re.findall(r"<li>(.*?)</li>", listed.group(1))] if listed else []


def state(account):
    return [(i.status, i.amount_paid, i.amount_due) for i in invoices_of(account)]


def test_a_finance_admin_records_a_partial_payment_over_two_invoices(finance, account):
    october, november = invoices_of(account)
    response = finance.post(
        record_url(account),
        form_data(amount="600.00", reference="NW-TRF-1209", **{box(october): "479.00", box(november): "121.00"}),
    )
    payment = Payment.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/admin/billing/payment/{payment.pk}/change/"
    assert (payment.amount, payment.currency, payment.provider, payment.status, payment.reference) == (
        D("600.00"),
        "USD",
        "bank_transfer",
        "succeeded",
        "NW-TRF-1209",
    )
    assert payment.received_at == dt.datetime(2026, 12, 9, tzinfo=UTC)
    assert payment.recorded_by.username == "fiona"
    assert state(account) == [("paid", D("479.00"), D("0.00")), ("finalized", D("121.00"), D("215.02"))]
    assert credit_balance(account) == D("0.00")
    html = finance.get(response["Location"]).content.decode()
    assert (
        "Recorded pay_000001: USD 600.00 (Bank transfer); applied USD 479.00 to INV-2026-000001, "
        "USD 121.00 to INV-2026-000002." in html
    )
    rows = table_rows(html, "allocations-group")
    assert [row[1:6] for row in rows] == [
        ["INV-2026-000001", "Payment", "USD 479.00", "2026-12-10 14:30 UTC", "fiona"],
        ["INV-2026-000002", "Payment", "USD 121.00", "2026-12-10 14:30 UTC", "fiona"],
    ]


def test_with_every_box_empty_the_payment_pays_the_oldest_invoices_first(finance, account):
    response = finance.post(record_url(account), form_data(amount="500.00", provider="check", reference="000417"))
    assert response.status_code == 302
    assert state(account) == [("paid", D("479.00"), D("0.00")), ("finalized", D("21.00"), D("315.02"))]
    assert Payment.objects.get().provider == "check"


def test_a_payment_received_today_is_recorded_at_the_moment_it_is_saved(finance, account):
    finance.post(record_url(account), form_data(amount="10.00", received_at="2026-12-10"))
    assert Payment.objects.get().received_at == TODAY


def test_an_overpayment_from_the_invoice_page_becomes_the_credit_balance(finance, account):
    october, november = invoices_of(account)
    invoice_page = page_of(finance, f"/admin/billing/invoice/{november.pk}/change/")
    assert f'href="{record_url(account, november)}" id="record-payment">Record payment</a>' in invoice_page
    form = page_of(finance, record_url(account, november))
    assert 'name="amount" value="336.02"' in form
    assert f'name="{box(november)}" id="id_{box(november)}" value="336.02"' in form
    assert f'name="{box(october)}" id="id_{box(october)}" value=""' in form
    assert "becomes the account's <strong>credit balance</strong> (USD 0.00 now)" in form
    assert table_header(form, "open-invoices") == ["Invoice", "Month", "Due date", "Total", "Amount due", "Apply"]
    assert [row[:5] for row in table_rows(form, "open-invoices")] == [
        ["INV-2026-000001", "2026-10", "2026-12-01", "USD 479.00", "USD 479.00"],
        ["INV-2026-000002", "2026-11", "2026-12-31", "USD 336.02", "USD 336.02"],
    ]

    response = finance.post(record_url(account, november), form_data(amount="900.00", **{box(november): "336.02"}))
    assert response.status_code == 302
    assert response["Location"] == f"/admin/billing/invoice/{november.pk}/change/"
    assert state(account) == [("finalized", D("0.00"), D("479.00")), ("paid", D("336.02"), D("0.00"))]
    assert credit_balance(account) == D("563.98")

    html = page_of(finance, response["Location"])
    assert "USD 563.98 added to the credit balance." in html
    assert 'id="record-payment"' not in html  # paid: nothing left to record against it
    (row,) = table_rows(html, "allocations-group")
    assert row[1:5] == ["pay_000001", "Bank transfer", "Payment", "USD 336.02"]
    account_page = page_of(finance, f"/admin/accounts/account/{account.pk}/change/")
    assert '<span id="credit-balance">USD 563.98</span>' in account_page
    assert "USD 479.00 on 1 open invoice" in account_page
    assert 'id="refund-balance">Refund balance</a>' in account_page
    assert f'href="{record_url(account)}" id="record-payment">Record payment</a>' in account_page


def test_an_account_with_no_open_invoice_takes_the_whole_payment_as_credit_balance(finance, plan):
    account = AccountFactory(name="Contoso")
    assert "The account has no open invoices" in page_of(finance, record_url(account))
    assert finance.post(record_url(account), form_data(amount="250.00")).status_code == 302
    assert credit_balance(account) == D("250.00")


def test_zero_in_every_box_keeps_the_whole_payment_as_credit_balance(finance, account):
    october, november = invoices_of(account)
    finance.post(record_url(account), form_data(amount="100.00", **{box(october): "0", box(november): "0"}))
    assert state(account) == [("finalized", D("0.00"), D("479.00")), ("finalized", D("0.00"), D("336.02"))]
    assert credit_balance(account) == D("100.00")


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"amount": "-5.00"}, "amount", ERR_AMOUNT),
        ({"amount": "0"}, "amount", ERR_AMOUNT),
        ({"amount": "12.345"}, "amount", "Ensure that there are no more than 2 decimal places."),
        ({"amount": "50.00", "received_at": "2026-12-11"}, "received_at", ERR_FUTURE_DAY.format(
            day="2026-12-11", today="2026-12-10")),
        ({"amount": "", "received_at": ""}, "amount", "This field is required."),
    ],
    ids=["negative", "zero", "sub-cent", "future", "empty"],
)  # fmt: skip
def test_bad_input_is_shown_on_its_field_and_nothing_is_recorded(finance, account, values, field, message):
    response = finance.post(record_url(account), form_data(**values))
    assert response.status_code == 200
    html = response.content.decode()
    assert field_errors(html, field) == [message]
    assert "Please correct the error" in html and "nothing was recorded" in html
    assert Payment.objects.count() == PaymentAllocation.objects.count() == 0
    assert state(account) == [("finalized", D("0.00"), D("479.00")), ("finalized", D("0.00"), D("336.02"))]


def test_more_than_is_due_on_an_invoice_is_shown_on_its_box_and_nothing_is_recorded(finance, account):
    october, november = invoices_of(account)
    response = finance.post(
        record_url(account), form_data(amount="900.00", **{box(october): "479.00", box(november): "400.00"})
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert field_errors(html, box(november)) == ["400.00 exceeds what is due on INV-2026-000002 (336.02)."]
    assert field_errors(html, box(october)) == []
    assert 'value="400.00"' in html  # what was typed stays in its box
    assert Payment.objects.count() == PaymentAllocation.objects.count() == 0
    # Nothing half-written: October, which was fine, was not paid either.
    assert state(account) == [("finalized", D("0.00"), D("479.00")), ("finalized", D("0.00"), D("336.02"))]


def test_boxes_adding_up_to_more_than_the_payment_are_a_form_error(finance, account):
    october, november = invoices_of(account)
    response = finance.post(
        record_url(account), form_data(amount="500.00", **{box(october): "479.00", box(november): "100.00"})
    )
    assert response.status_code == 200
    assert form_errors(response.content.decode()) == [
        ERR_ALLOCATIONS_EXCEED.format(applied=D("579.00"), amount=D("500.00"))
    ]
    assert Payment.objects.count() == 0


def test_reversing_a_payment_reopens_the_invoice_it_paid(finance, finance_user, account):
    october, _ = invoices_of(account)
    payment = payment_record(
        account=account, amount=D("479.00"), provider="bank_transfer", reference="dup", actor=finance_user
    )
    assert state(account)[0] == ("paid", D("479.00"), D("0.00"))
    page = page_of(finance, f"/admin/billing/payment/{payment.pk}/change/")
    url = f"/admin/billing/payment/{payment.pk}/reverse/"
    assert f'href="{url}" id="reverse-payment">Reverse payment</a>' in page
    assert "USD 479.00" in page_of(finance, url)

    refused = finance.post(url, {"reason": "  "})
    assert refused.status_code == 200
    assert field_errors(refused.content.decode(), "reason") == [ERR_REASON]
    payment.refresh_from_db()
    assert payment.status == "succeeded"

    response = finance.post(url, {"reason": "recorded twice"})
    assert response.status_code == 302
    assert response["Location"] == f"/admin/billing/payment/{payment.pk}/change/"
    payment.refresh_from_db()
    assert (payment.status, payment.reversal_reason) == ("reversed", "recorded twice")
    assert state(account)[0] == ("finalized", D("0.00"), D("479.00"))
    html = page_of(finance, response["Location"])
    assert "Reversed pay_000001: INV-2026-000001 owes USD 479.00 again." in html
    assert 'id="reverse-payment"' not in html
    rows = table_rows(html, "allocations-group")
    assert [row[1:4] for row in rows] == [
        ["INV-2026-000001", "Payment", "USD 479.00"],
        ["INV-2026-000001", "Payment reversed", "USD -479.00"],
    ]
    assert rows[1][6] == "reversed: recorded twice"
    # The invoice is open again: it can be paid from its page.
    assert 'id="record-payment"' in page_of(finance, f"/admin/billing/invoice/{october.pk}/change/")


def test_refunding_part_of_the_credit_balance(finance, finance_user, account):
    payment_record(account=account, amount=D("900.00"), provider="bank_transfer", actor=finance_user)
    assert credit_balance(account) == D("84.98")  # 900.00 − 479.00 − 336.02
    url = f"/admin/billing/payment/refund/{account.pk}/"
    assert '<strong id="account-credit-balance">USD 84.98</strong>' in page_of(finance, url)

    too_much = finance.post(url, {"amount": "85.00", "reason": "returned"})
    assert too_much.status_code == 200
    assert field_errors(too_much.content.decode(), "amount") == [
        ERR_BALANCE_TOO_LOW.format(amount="85.00", balance="84.98")
    ]
    no_reason = finance.post(url, {"amount": "50.00", "reason": ""})
    assert field_errors(no_reason.content.decode(), "reason") == [ERR_REASON]
    assert Refund.objects.count() == 0

    response = finance.post(url, {"amount": "50.00", "reason": "returned by bank transfer"})
    assert response.status_code == 302
    assert response["Location"] == f"/admin/accounts/account/{account.pk}/change/"
    refund = Refund.objects.get()
    assert (refund.amount, refund.reason, refund.created_by.username) == (
        D("50.00"),
        "returned by bank transfer",
        "fiona",
    )
    assert credit_balance(account) == D("34.98")
    html = page_of(finance, response["Location"])
    assert "Refunded USD 50.00 of the credit balance (ref_000001); the balance is now USD 34.98." in html
    assert '<span id="credit-balance">USD 34.98</span>' in html
    payment_page = page_of(finance, f"/admin/billing/payment/{Payment.objects.get().pk}/change/")
    (row,) = table_rows(payment_page, "refunds-group")
    assert row[1:5] == ["ref_000001", "USD 50.00", "Succeeded", "returned by bank transfer"]
    assert 'id="reverse-payment"' not in payment_page  # refunded in part: no longer reversible


def test_billing_staff_see_the_ledger_but_no_button_and_are_refused(billing_staff, finance_user, account):
    october, november = invoices_of(account)
    payment = payment_record(account=account, amount=D("900.00"), provider="bank_transfer", actor=finance_user)
    for url in (f"/admin/billing/invoice/{october.pk}/change/", f"/admin/accounts/account/{account.pk}/change/"):
        html = page_of(billing_staff, url)
        assert "Record payment" not in html and "Refund balance" not in html
    assert "Reverse payment" not in page_of(billing_staff, f"/admin/billing/payment/{payment.pk}/change/")
    (row,) = table_rows(page_of(billing_staff, f"/admin/billing/invoice/{october.pk}/change/"), "allocations-group")
    assert row[1:5] == ["pay_000001", "Bank transfer", "Payment", "USD 479.00"]

    before = state(account)
    for url, data in (
        (record_url(account), form_data(amount="100.00")),
        (record_url(account, november), form_data(amount="100.00")),
        (f"/admin/billing/payment/refund/{account.pk}/", {"amount": "10.00", "reason": "returned"}),
        (f"/admin/billing/payment/{payment.pk}/reverse/", {"reason": "mistake"}),
    ):
        assert billing_staff.get(url).status_code == 403, url
        assert billing_staff.post(url, data).status_code == 403, url
    assert Payment.objects.count() == 1 and Refund.objects.count() == 0
    payment.refresh_from_db()
    assert payment.status == "succeeded"
    assert state(account) == before


def test_portal_users_are_sent_to_the_admin_login_and_record_nothing(client, account):
    owner = account_user_create(account=account, email="owner@northwind.example", role="owner", password="pw-123456")
    client.force_login(owner.user)
    response = client.post(record_url(account), form_data(amount="100.00"))
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=")
    assert Payment.objects.count() == 0


def test_the_payment_list_and_page_are_read_only(finance, finance_user, account):
    october, november = invoices_of(account)
    payment_record(
        account=account,
        amount=D("500.00"),
        provider="bank_transfer",
        reference="NW-TRF-1209",
        allocations=[(november, D("336.02"))],
        note="paid early",
        actor=finance_user,
    )
    html = page_of(finance, "/admin/billing/payment/")
    assert table_header(html, "result_list") == [
        "Public id",
        "Account",
        "Provider",
        "Reference",
        "Amount",
        "Status",
        "Received at",
        "Unapplied",
        "Payment method",
    ]
    (row,) = table_rows(html, "result_list")
    assert row == [
        "pay_000001",
        "Northwind Logistics",
        "Bank transfer",
        "NW-TRF-1209",
        "USD 500.00",
        "Succeeded",
        "2026-12-10 14:30 UTC",
        "USD 163.98",
        "-",
    ]
    assert 'href="/admin/billing/payment/add/"' not in html
    for query in ("q=pay_000001", "q=NW-TRF", f"q={account.public_id}", "q=Northwind", "status__exact=succeeded"):
        assert len(table_rows(page_of(finance, f"/admin/billing/payment/?{query}"), "result_list")) == 1, query
    assert "0 payments" in page_of(finance, "/admin/billing/payment/?provider__exact=stripe")

    payment = Payment.objects.get()
    url = f"/admin/billing/payment/{payment.pk}/change/"
    page = page_of(finance, url)
    assert "View payment" in page and 'name="_save"' not in page
    assert "USD 163.98" in page and "paid early" in page
    history = page_of(finance, f"/admin/billing/payment/{payment.pk}/history/")
    assert "recorded: Bank transfer NW-TRF-1209" in history
    assert finance.post(url, {"reference": "changed"}).status_code == 403
    assert finance.get("/admin/billing/payment/add/").status_code == 403
    assert finance.post(f"/admin/billing/payment/{payment.pk}/delete/", {"post": "yes"}).status_code == 403
    payment.refresh_from_db()
    assert payment.reference == "NW-TRF-1209"


def test_an_amount_for_an_invoice_paid_meanwhile_is_refused_on_its_box(finance, finance_user, account):
    october, november = invoices_of(account)
    form = page_of(finance, record_url(account))
    assert f'name="{box(october)}"' in form
    payment_record(account=account, amount=D("479.00"), provider="check", actor=finance_user)  # October, paid now
    response = finance.post(record_url(account), form_data(amount="479.00", **{box(october): "479.00"}))
    assert response.status_code == 200
    html = response.content.decode()
    assert field_errors(html, box(october)) == [
        "Payments apply to finalized invoices with an amount due; INV-2026-000001 is paid."
    ]
    assert Payment.objects.count() == 1
    assert state(account) == [("paid", D("479.00"), D("0.00")), ("finalized", D("0.00"), D("336.02"))]


def test_record_payment_is_an_action_on_the_invoice_and_account_lists_for_finance_only(
    finance, billing_staff_user, account
):
    october, november = invoices_of(account)
    action = {"action": "record_payment_action", "_selected_action": [str(november.pk)]}
    response = finance.post("/admin/billing/invoice/", action)
    assert (response.status_code, response["Location"]) == (302, record_url(account, november))
    response = finance.post(
        "/admin/accounts/account/", {"action": "record_payment_action", "_selected_action": [str(account.pk)]}
    )
    assert (response.status_code, response["Location"]) == (302, record_url(account))
    # Two invoices at once: refused with the reason, nothing happens.
    both = finance.post(
        "/admin/billing/invoice/",
        {"action": "record_payment_action", "_selected_action": [str(october.pk), str(november.pk)]},
        follow=True,
    )
    assert "Select one finalized invoice with an amount due to record a payment for it." in both.content.decode()

    finance.force_login(billing_staff_user)
    assert "record_payment_action" not in finance.get("/admin/billing/invoice/").content.decode()
    refused = finance.post("/admin/billing/invoice/", action)
    # The action does not exist for them: back to the list, not on to the form.
    assert (refused.status_code, refused["Location"]) == (302, "/admin/billing/invoice/")
    assert Payment.objects.count() == 0
