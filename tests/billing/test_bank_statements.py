"""Importing a bank statement: credits matched to invoices by number and amount to the cent and recorded as bank
transfers, the rest left for staff, nothing recorded twice, a malformed file refused whole; matching and
ignoring by hand; only Finance admins import or match."""

import datetime as dt
from decimal import Decimal as D

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.permissions import BILLING_STAFF, FINANCE_ADMIN
from billing.models import BankStatementLine, Invoice, Payment
from billing.selectors import credit_balance
from billing.services.bank_statements import (
    ERR_DENIED,
    ERR_LINE_NOT_OPEN,
    ERR_NOTE,
    bank_statement_import,
    bank_statement_line_ignore,
    bank_statement_line_match,
    statement_line_key,
    statement_parse,
)
from billing.services.credit_notes import credit_note_issue
from common.errors import BillingError
from tests.accounts.factories import AccountFactory, StaffUserFactory
from tests.admin_html import table_rows
from tests.billing.cycle import JAN_1, UTC, close, subscribe
from tests.tenants.factories import TenantFactory

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 12, 10, 9, tzinfo=UTC)
LINES = "/admin/billing/bankstatementline/"
IMPORT = "/admin/billing/bankstatementline/import/"

STATEMENT = """date,amount,reference,currency
2026-12-03,50.00,Payment INV-2026-000001 thank you,USD
2026-12-03,49.99,INV-2026-000002,USD
2026-12-04,-12.50,Bank fee,USD
2026-12-05,80.00,no reference,
2026-12-05,80.00,no reference,
"""


@pytest.fixture
def invoices(plan):
    """Northwind and Contoso each owe USD 50.00 (Platform Basic for November, issued December 1)."""
    found = []
    for name, tenant in (("Northwind", "ten_nw"), ("Contoso", "ten_co")):
        account = AccountFactory(name=name)
        subscribe(account, plan("platform-basic"))
        TenantFactory(account=account, public_id=tenant, activated_at=JAN_1)
        found.append(account)
    close()
    northwind, contoso = (Invoice.objects.get(account=a) for a in found)
    assert [(i.number, i.amount_due) for i in (northwind, contoso)] == [
        ("INV-2026-000001", D("50.00")),
        ("INV-2026-000002", D("50.00")),
    ]
    return northwind, contoso


@pytest.fixture
def billing_staff():
    return StaffUserFactory(username="bianca", groups=[Group.objects.get(name=BILLING_STAFF)])


@pytest.fixture
def finance_admin():
    return StaffUserFactory(username="fiona", groups=[Group.objects.get(name=FINANCE_ADMIN)])


def _lines():
    return [
        (str(line.booked_on), line.amount, line.reference, line.status, line.note)
        for line in BankStatementLine.objects.order_by("booked_on", "id")
    ]


def test_a_credit_naming_an_invoice_and_its_amount_to_the_cent_is_recorded(invoices, finance_admin):
    northwind, contoso = invoices

    outcome = bank_statement_import(content=STATEMENT, currency="USD", actor=finance_admin, now=NOW)

    assert (outcome.read, outcome.matched, outcome.unmatched, outcome.duplicates, outcome.debits) == (5, 1, 3, 0, 1)
    assert outcome.message == (
        "5 line(s) read: 1 matched and recorded, 3 left to match by hand, 0 imported before, 1 debit(s) skipped."
    )
    assert _lines() == [
        (
            "2026-12-03",
            D("50.00"),
            "Payment INV-2026-000001 thank you",
            "matched",
            "Matched to INV-2026-000001 by its number and amount.",
        ),
        (
            "2026-12-03",
            D("49.99"),
            "INV-2026-000002",
            "unmatched",
            "USD 49.99 is neither what is due on INV-2026-000002 (USD 50.00) nor its total (USD 50.00).",
        ),
        ("2026-12-05", D("80.00"), "no reference", "unmatched", "No invoice number in the reference."),
        ("2026-12-05", D("80.00"), "no reference", "unmatched", "No invoice number in the reference."),
    ]
    matched = BankStatementLine.objects.get(status="matched")
    payment = Payment.objects.get()
    assert matched.payment == payment
    assert (payment.provider, payment.amount, payment.account, payment.received_at, payment.recorded_by) == (
        "bank_transfer",
        D("50.00"),
        northwind.account,
        dt.datetime(2026, 12, 3, tzinfo=UTC),
        finance_admin,
    )
    assert payment.external_id == matched.line_key
    assert list(payment.allocations.values_list("invoice__number", "amount")) == [("INV-2026-000001", D("50.00"))]
    northwind.refresh_from_db()
    contoso.refresh_from_db()
    assert (northwind.status, northwind.amount_due) == ("paid", D("0.00"))
    assert (contoso.status, contoso.amount_due) == ("finalized", D("50.00"))
    assert BankStatementLine.objects.get(status="matched").imported_by == finance_admin


def test_importing_the_same_statement_again_records_nothing_twice(invoices, finance_admin):
    bank_statement_import(content=STATEMENT, currency="USD", actor=finance_admin, now=NOW)
    keys = set(BankStatementLine.objects.values_list("line_key", flat=True))

    again = bank_statement_import(content=STATEMENT, currency="USD", actor=finance_admin, now=NOW)

    assert (again.read, again.matched, again.unmatched, again.duplicates, again.debits) == (5, 0, 0, 4, 1)
    assert set(BankStatementLine.objects.values_list("line_key", flat=True)) == keys
    assert (BankStatementLine.objects.count(), Payment.objects.count()) == (4, 1)

    # A later statement that repeats a day and adds one: only the new line is recorded; it pays Contoso.
    later = "2026-12-05,80.00,no reference\n2026-12-06,50.00,inv-2026-000002 contoso\n"
    outcome = bank_statement_import(content=later, currency="USD", actor=finance_admin, now=NOW)
    assert (outcome.matched, outcome.unmatched, outcome.duplicates) == (1, 0, 1)
    assert Invoice.objects.get(pk=invoices[1].pk).status == "paid"
    assert Payment.objects.count() == 2


def test_identical_lines_of_one_file_are_told_apart_by_their_occurrence(invoices):
    first, second = [line for line in statement_parse(content=STATEMENT, currency="USD", today=NOW.date())][3:]
    assert (first.row, second.row) == (5, 6)
    assert (first.booked_on, first.amount, first.reference) == (second.booked_on, second.amount, second.reference)
    assert statement_line_key(first, 1) != statement_line_key(second, 2)
    assert len(statement_line_key(first, 1)) == 64


def test_the_amount_may_be_the_invoice_total_when_a_credit_note_lowered_what_is_due(invoices):
    northwind, _ = invoices
    credit_note_issue(invoice=northwind, lines=[(None, "goodwill", D("10.00"))], reason="outage", now=NOW)
    # The customer paid the invoice as printed: 40.00 settles it, 10.00 is left on the account's balance.
    outcome = bank_statement_import(content="2026-12-07,50.00,INV-2026-000001\n", currency="USD", now=NOW)
    assert outcome.matched == 1
    northwind.refresh_from_db()
    assert (northwind.status, northwind.amount_paid, northwind.amount_credited) == ("paid", D("40.00"), D("10.00"))
    assert credit_balance(northwind.account) == D("10.00")


@pytest.mark.parametrize(
    ("content", "left_because"),
    [
        ("2026-12-07,50.00,INV-2026-000009\n", "INV-2026-000009 is not one of our invoices."),
        ("2026-12-07,50.00,INV-2026-000001,EUR\n", "INV-2026-000001 is billed in USD; the line is in EUR."),
        (
            "2026-12-07,100.00,INV-2026-000001 INV-2026-000002\n",
            "Several invoice numbers in the reference (INV-2026-000001, INV-2026-000002): match by hand.",
        ),
        (
            "2026-12-07,50.01,INV-2026-000001\n",
            "USD 50.01 is neither what is due on INV-2026-000001 (USD 50.00) nor its total (USD 50.00).",
        ),
    ],
)
def test_a_line_that_does_not_name_one_open_invoice_and_its_amount_waits_for_staff(invoices, content, left_because):
    outcome = bank_statement_import(content=content, currency="USD", now=NOW)
    assert (outcome.matched, outcome.unmatched) == (0, 1)
    assert BankStatementLine.objects.get().note == left_because
    assert Payment.objects.count() == 0


def test_a_line_for_a_paid_invoice_waits_for_staff(invoices):
    bank_statement_import(content="2026-12-03,50.00,INV-2026-000001\n", currency="USD", now=NOW)
    outcome = bank_statement_import(content="2026-12-04,50.00,INV-2026-000001 again\n", currency="USD", now=NOW)
    assert outcome.unmatched == 1
    assert BankStatementLine.objects.get(status="unmatched").note == "INV-2026-000001 is paid: nothing is due on it."


def test_a_statement_without_a_header_is_read_by_position(invoices):
    outcome = bank_statement_import(content=" 2026-12-03 , 50.00 , INV-2026-000001 \n", currency="USD", now=NOW)
    assert outcome.matched == 1
    assert BankStatementLine.objects.get().reference == "INV-2026-000001"


MALFORMED = """date,amount,reference
2026-12-03,50.00,INV-2026-000001
2026-13-01,50.00,INV-2026-000002
2026-12-04,"1,234.50",big one
2026-12-04,12.345,too precise
2026-12-04,ten,words
2026-12-04,10.00,one,two
2027-03-01,10.00,not yet
"""


def test_a_malformed_statement_is_refused_whole_naming_each_bad_line(invoices, finance_admin):
    with pytest.raises(BillingError) as refused:
        bank_statement_import(content=MALFORMED, currency="USD", actor=finance_admin, now=NOW)
    assert (refused.value.code, refused.value.field) == ("invalid_statement", "file")
    assert refused.value.message == (
        "The statement was not imported (nothing was written): "
        "line 3: date “2026-13-01” is not a date as YYYY-MM-DD; "
        "line 4: amount “1,234.50” must be a plain number such as 1234.50 (no thousands separators); "
        "line 5: amount 12.345 has more decimal places than USD has (2); "
        "line 6: amount “ten” is not a number; "
        "line 7: expected 3 values (date, amount, reference[, currency]), found 4; "
        "line 8: date 2027-03-01 is in the future"
    )
    # Not even the good line 2 was recorded.
    assert (BankStatementLine.objects.count(), Payment.objects.count()) == (0, 0)
    assert Invoice.objects.get(pk=invoices[0].pk).amount_due == D("50.00")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("", "the file has no statement lines."),
        (
            "date,amount,memo\n2026-12-03,1.00,x\n",
            "line 1: unknown column “memo”; the columns are date, amount, reference and currency; "
            "line 1: the header has no “reference” column",
        ),
        (
            "2026-12-03,1.00,x,XYZ\n",
            "line 1: currency “XYZ” is not one we bill in (USD, EUR, GBP, CHF, CAD, AUD, SEK, NOK, DKK, JPY)",
        ),
        (b"2026-12-03,1.00,caf\xe9\n", "the file is not UTF-8 text (save the CSV as UTF-8)."),
    ],
)
def test_other_malformed_statements(invoices, content, problem):
    with pytest.raises(BillingError) as refused:
        bank_statement_import(content=content, currency="USD", now=NOW)
    assert refused.value.message == f"The statement was not imported (nothing was written): {problem}"
    assert BankStatementLine.objects.count() == 0


def test_staff_match_a_line_to_an_invoice_by_hand(invoices, finance_admin):
    _, contoso = invoices
    bank_statement_import(content="2026-12-05,80.00,CONTOSO LTD\n", currency="USD", now=NOW)
    line = BankStatementLine.objects.get()

    line = bank_statement_line_match(
        line=line, invoice=contoso, note="their remittance e-mail", actor=finance_admin, now=NOW
    )

    assert (line.status, line.note) == (
        "matched",
        "Matched by hand to INV-2026-000002 by fiona. their remittance e-mail",
    )
    assert (line.payment.amount, line.payment.provider, line.payment.external_id) == (
        D("80.00"),
        "bank_transfer",
        line.line_key,
    )
    contoso.refresh_from_db()
    # 50.00 pays the invoice; 30.00 is Contoso's credit balance
    assert (contoso.status, contoso.amount_due) == ("paid", D("0.00"))
    assert credit_balance(contoso.account) == D("30.00")
    with pytest.raises(BillingError) as twice:
        bank_statement_line_match(line=line, invoice=contoso, actor=finance_admin, now=NOW)
    assert twice.value.message == ERR_LINE_NOT_OPEN.format(status="matched and recorded")


def test_staff_ignore_a_line_with_a_note(invoices, finance_admin):
    bank_statement_import(content="2026-12-05,3.21,INTEREST\n", currency="USD", now=NOW)
    line = BankStatementLine.objects.get()
    with pytest.raises(BillingError) as no_note:
        bank_statement_line_ignore(line=line, note=" ", actor=finance_admin, now=NOW)
    assert no_note.value.message == ERR_NOTE
    line = bank_statement_line_ignore(line=line, note="interest from the bank", actor=finance_admin, now=NOW)
    assert (line.status, line.note, line.payment) == ("ignored", "Ignored by fiona: interest from the bank", None)


def test_billing_staff_cannot_import_match_or_ignore(invoices, billing_staff):
    with pytest.raises(BillingError) as denied:
        bank_statement_import(content=STATEMENT, currency="USD", actor=billing_staff, now=NOW)
    assert (denied.value.status, denied.value.message) == (403, ERR_DENIED)
    bank_statement_import(content="2026-12-05,3.21,INTEREST\n", currency="USD", now=NOW)
    line = BankStatementLine.objects.get()
    with pytest.raises(BillingError):
        bank_statement_line_match(line=line, invoice=invoices[0], actor=billing_staff, now=NOW)
    with pytest.raises(BillingError):
        bank_statement_line_ignore(line=line, note="no", actor=billing_staff, now=NOW)
    line.refresh_from_db()
    assert (line.status, Payment.objects.count()) == ("unmatched", 0)


# --- the admin -----------------------------------------------------------------------------------------------


def _upload(content: str) -> SimpleUploadedFile:
    return SimpleUploadedFile("statement.csv", content.encode(), content_type="text/csv")


def test_billing_staff_get_403_on_import_match_and_ignore(client, invoices, billing_staff):
    bank_statement_import(content="2026-12-05,3.21,INTEREST\n", currency="USD", now=NOW)
    line = BankStatementLine.objects.get()
    client.force_login(billing_staff)
    with time_machine.travel(NOW, tick=False):
        listing = client.get(LINES)
        assert listing.status_code == 200
        assert "Import a statement" not in listing.content.decode()
        assert client.get(IMPORT).status_code == 403
        assert client.post(IMPORT, {"file": _upload(STATEMENT), "currency": "USD"}).status_code == 403
        assert client.post(f"{LINES}{line.pk}/match/", {"invoice_number": "INV-2026-000001"}).status_code == 403
        assert client.post(f"{LINES}{line.pk}/ignore/", {"note": "interest"}).status_code == 403
    line.refresh_from_db()
    assert (line.status, BankStatementLine.objects.count(), Payment.objects.count()) == ("unmatched", 1, 0)


def test_finance_admin_import_a_statement_in_the_admin(client, invoices, finance_admin):
    client.force_login(finance_admin)
    with time_machine.travel(NOW, tick=False):
        done = client.post(IMPORT, {"file": _upload(STATEMENT), "currency": "USD"}, follow=True)
    html = done.content.decode()
    assert (
        "5 line(s) read: 1 matched and recorded, 3 left to match by hand, 0 imported before, 1 debit(s) skipped."
        in html
    )
    rows = table_rows(html, "result_list")
    assert [row[1:5] for row in rows] == [
        ["2026-12-05", "USD 80.00", "no reference", "Waiting for staff"],
        ["2026-12-05", "USD 80.00", "no reference", "Waiting for staff"],
        ["2026-12-03", "USD 50.00", "Payment INV-2026-000001 thank you", "Matched and recorded"],
        ["2026-12-03", "USD 49.99", "INV-2026-000002", "Waiting for staff"],
    ]


def test_a_malformed_upload_shows_the_error_and_writes_nothing(client, invoices, finance_admin):
    client.force_login(finance_admin)
    with time_machine.travel(NOW, tick=False):
        page = client.post(IMPORT, {"file": _upload("2026-12-03,abc,INV-2026-000001\n"), "currency": "USD"})
    assert page.status_code == 200
    assert "line 1: amount “abc” is not a number" in page.content.decode()
    assert BankStatementLine.objects.count() == 0


def test_finance_admin_match_a_line_by_hand_in_the_admin(client, invoices, finance_admin):
    _, contoso = invoices
    bank_statement_import(content="2026-12-05,50.00,CONTOSO LTD\n", currency="USD", now=NOW)
    line = BankStatementLine.objects.get()
    client.force_login(finance_admin)
    with time_machine.travel(NOW, tick=False):
        form = client.get(f"{LINES}{line.pk}/match/").content.decode()
        # The open invoices of exactly that amount are suggested.
        assert "INV-2026-000001: Northwind (acc_000001), USD 50.00 due" in form
        assert "INV-2026-000002: Contoso (acc_000002), USD 50.00 due" in form
        unknown = client.post(f"{LINES}{line.pk}/match/", {"invoice_number": "INV-2026-000042"})
        assert "There is no invoice INV-2026-000042." in unknown.content.decode()
        done = client.post(f"{LINES}{line.pk}/match/", {"invoice_number": "INV-2026-000002"})
    assert (done.status_code, done["Location"]) == (302, LINES)
    line.refresh_from_db()
    contoso.refresh_from_db()
    assert (line.status, contoso.status, line.payment.recorded_by) == ("matched", "paid", finance_admin)
