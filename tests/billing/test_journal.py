"""The ERP journal (``billing.journal``, ``GET /v1/billing/journal``, the admin's and the portal's CSV): the worked
month of ``tests.billing.test_allocation`` (an invoice finalized on December 1 with two departments, an
unmapped partner, a discount and tax) and a credit note issued on December 5, as balanced entries."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal as D

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.test import Client, override_settings

from accounts.permissions import BILLING_STAFF, FINANCE_ADMIN
from accounts.services import api_key_create
from billing.journal import month_journal
from billing.models import GlAccount
from billing.services.credit_notes import credit_note_issue
from billing.services.invoices import invoice_void
from billing.services.journal import ERR_NOT_ALLOWED, gl_account_update
from common.errors import BillingError
from common.periods import month_period
from tests.accounts.factories import StaffUserFactory
from tests.billing.cycle import NOVEMBER
from tests.billing.test_allocation import worked_month

pytestmark = pytest.mark.django_db
UTC = dt.UTC
DECEMBER = month_period(2026, 12)
DEC_5 = dt.datetime(2026, 12, 5, 9, tzinfo=UTC)
DEC_10 = dt.datetime(2026, 12, 10, 9, tzinfo=UTC)
L, P, U = "Logistics", "Procurement", "Unallocated"


@pytest.fixture
def invoice(catalogue):
    invoice = worked_month()
    line = invoice.lines.get(metric__code="messages")
    # $5.00 of messages credited, with 20 % tax: $1.00; $6.00 in all.
    credit_note_issue(
        invoice=invoice, lines=[(line, "500 messages sent twice", D("5.00"))], reason="dispute", now=DEC_5
    )
    invoice.refresh_from_db()
    return invoice


def rows(entry):
    return [(line.account_code, line.department, line.debit, line.credit) for line in entry.lines]


def test_the_invoice_and_the_credit_note_are_balanced_entries_worked_by_hand(invoice):
    journal = month_journal(period=DECEMBER)
    assert journal.reference == "AS2-2026-12"
    sale, reversal = journal.entries
    assert (sale.number, sale.document, sale.date) == (invoice.number, "invoice", dt.date(2026, 12, 1))
    # Receivables: the total. Revenue per department as allocated (tests/billing/test_allocation.py).
    assert rows(sale) == [
        ("1100", "", D("147.60"), D(0)),
        ("4000", L, D(0), D("39.13")),
        ("4000", P, D(0), D("39.12")),
        ("4000", U, D(0), D("21.75")),
        ("4110", L, D(0), D("10.00")),
        ("4110", P, D(0), D("10.00")),
        ("4110", U, D(0), D("5.56")),
        ("4900", L, D("1.00"), D(0)),
        ("4900", P, D("1.00"), D(0)),
        ("4900", U, D("0.56"), D(0)),
        ("2200", L, D(0), D("9.63")),
        ("2200", P, D(0), D("9.62")),
        ("2200", U, D(0), D("5.35")),
    ]
    # Debits 147.60 + 2.56 = 150.16 = credits 100.00 + 25.56 + 24.60.
    assert sale.debit == sale.credit == D("150.16")
    assert [line.account_name for line in sale.lines[:2]] == ["Receivables", "Subscription revenue"]
    assert sale.lines[4].description.startswith("Messages usage · ")

    # The credit note: $5.00 split by the messages line's 10.00 : 10.00 : 5.56 — exact 1.9562, 1.9562, 1.0876;
    # floors 4.98; two cents to the largest remainders, Unallocated (.76) then the Logistics–Procurement tie (.62
    # each) to Logistics. Tax $1.00 by the invoice's tax 9.63 : 9.62 : 5.35 — exact .3915, .3911, .2175; the cent
    # left to Unallocated.
    assert (reversal.number, reversal.document, reversal.date) == (
        "CN-2026-000001",
        "credit_note",
        dt.date(2026, 12, 5),
    )
    assert rows(reversal) == [
        ("4110", L, D("1.96"), D(0)),
        ("4110", P, D("1.95"), D(0)),
        ("4110", U, D("1.09"), D(0)),
        ("2200", L, D("0.39"), D(0)),
        ("2200", P, D("0.39"), D(0)),
        ("2200", U, D("0.22"), D(0)),
        ("1100", "", D(0), D("6.00")),
    ]
    assert reversal.debit == reversal.credit == D("6.00")
    # Every line carries the reference and currency; receivables debits are the invoices' totals to the cent.
    assert {(line.reference, line.currency) for line in journal.lines} == {("AS2-2026-12", "USD")}
    receivables = [line for line in journal.lines if line.account_code == "1100"]
    assert sum(line.debit for line in receivables) == invoice.total
    assert sum(line.credit for line in receivables) == invoice.amount_credited == D("6.00")


def test_documents_are_journaled_in_the_month_they_were_issued(invoice):
    # November's invoice was finalized on December 1: November's journal has nothing of it.
    assert month_journal(period=NOVEMBER).entries == []


@override_settings(BILLING_JOURNAL_REFERENCE_PREFIX="ERP7")
def test_the_reference_prefix_is_a_setting(invoice):
    assert {line.reference for line in month_journal(period=DECEMBER).lines} == {"ERP7-2026-12"}


def test_finance_admin_changes_an_account_code_and_the_journal_follows(invoice):
    finance = StaffUserFactory(groups=[Group.objects.get(name=FINANCE_ADMIN)])
    messaging = GlAccount.objects.get(kind="metric", metric_code="messages")
    gl_account_update(account=messaging, data={"code": "4111", "name": "Messages"}, actor=finance)
    codes = {line.account_code for line in month_journal(period=DECEMBER).entries[0].lines}
    assert codes == {"1100", "4000", "4111", "4900", "2200"}
    assert messaging.history.first().history_user == finance


def test_billing_staff_cannot_change_account_codes(invoice):
    staff = StaffUserFactory(groups=[Group.objects.get(name=BILLING_STAFF)])
    with pytest.raises(BillingError) as caught:
        gl_account_update(account=GlAccount.objects.get(kind="receivables"), data={"code": "9"}, actor=staff)
    assert caught.value.message == ERR_NOT_ALLOWED


def test_a_metric_without_its_own_account_posts_to_usage_revenue(invoice):
    GlAccount.objects.filter(kind="metric", metric_code="messages").delete()
    lines = month_journal(period=DECEMBER).entries[0].lines
    assert {(line.account_code, line.account_name) for line in lines if line.description.startswith("Messages")} == {
        ("4100", "Usage revenue")
    }


def parse_csv(response) -> list[dict]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


def test_staff_download_the_months_journal_as_csv_from_the_admin(invoice):
    client = Client()
    client.force_login(StaffUserFactory(groups=[Group.objects.get(name=BILLING_STAFF)]))
    response = client.get("/admin/billing/glaccount/journal/?month=2026-12")
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="journal-AS2-2026-12.csv"'
    table = parse_csv(response)
    assert len(table) == 20
    assert table[0] == {
        "date": "2026-12-01",
        "reference": "AS2-2026-12",
        "entry": invoice.number,
        "document": "invoice",
        "account": invoice.account.public_id,
        "account_code": "1100",
        "account_name": "Receivables",
        "description": f"Invoice {invoice.number}, November 2026",
        "department": "",
        "debit": "147.60",
        "credit": "",
        "currency": "USD",
    }
    debits = sum(D(row["debit"] or 0) for row in table)
    credits = sum(D(row["credit"] or 0) for row in table)
    assert debits == credits == D("156.16")  # 150.16 + 6.00
    page = client.get("/admin/billing/glaccount/")
    assert "Journal (CSV)" in page.content.decode()


def test_the_admin_journal_needs_a_month_and_a_staff_login(invoice):
    client = Client()
    assert client.get("/admin/billing/glaccount/journal/?month=2026-12").status_code == 302  # to the sign-in
    client.force_login(StaffUserFactory(groups=[Group.objects.get(name=BILLING_STAFF)]))
    response = client.get("/admin/billing/glaccount/journal/?month=December", follow=True)
    assert "Give the journal&#x27;s month as YYYY-MM." in response.content.decode()


# --- The API -------------------------------------------------------------------------------------------------


def key(scopes, account=None, tenant=None) -> Client:
    _, secret = api_key_create(name="k", scopes=scopes, account=account, tenant=tenant)
    return Client(headers={"Authorization": f"Bearer {secret}"})


@pytest.fixture
def other(catalogue):
    return worked_month(name="Globex")


def test_a_read_key_reads_its_own_accounts_journal(invoice, other):
    with time_machine.travel(DEC_10, tick=False):
        response = key(["read"], invoice.account).get("/v1/billing/journal?year=2026&month=12")
    assert response.status_code == 200
    body = response.json()
    assert body["reference"] == "AS2-2026-12"
    assert [(e["number"], e["debit"], e["credit"]) for e in body["entries"]] == [
        (invoice.number, "150.16", "150.16"),
        ("CN-2026-000001", "6.00", "6.00"),
    ]
    assert body["entries"][0]["lines"][0] == {
        "date": "2026-12-01",
        "reference": "AS2-2026-12",
        "entry": invoice.number,
        "document": "invoice",
        "account_id": invoice.account.public_id,
        "account_code": "1100",
        "account_name": "Receivables",
        "description": f"Invoice {invoice.number}, November 2026",
        "department": "",
        "debit": "147.60",
        "credit": "0.00",
        "currency": "USD",
    }


def test_an_export_key_reads_every_account_or_the_one_it_names(invoice, other):
    client = key(["export"])
    with time_machine.travel(DEC_10, tick=False):
        every = client.get("/v1/billing/journal?year=2026&month=12").json()
        one = client.get(f"/v1/billing/journal?year=2026&month=12&account={other.account.public_id}").json()
        unknown = client.get("/v1/billing/journal?year=2026&month=12&account=acc_nobody")
    assert sorted(e["number"] for e in every["entries"]) == sorted([invoice.number, other.number, "CN-2026-000001"])
    assert [e["number"] for e in one["entries"]] == [other.number]
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "not_found")


def test_the_journal_refuses_what_it_must(invoice):
    with time_machine.travel(DEC_10, tick=False):
        assert Client().get("/v1/billing/journal?year=2026&month=12").status_code == 401
        assert key(["ingest"], invoice.account).get("/v1/billing/journal?year=2026&month=12").status_code == 403
        tenant = invoice.account.tenants.first()
        pinned = key(["read"], invoice.account, tenant).get("/v1/billing/journal?year=2026&month=12")
        assert pinned.status_code == 403
        reader = key(["read"], invoice.account)
        missing = reader.get("/v1/billing/journal?year=2026")
        future = reader.get("/v1/billing/journal?year=2027&month=1")
    assert (missing.status_code, missing.json()["error"]["field"]) == (400, "month")
    assert (future.status_code, future.json()["error"]["code"]) == (400, "future_period")


def test_finance_admin_edits_an_account_in_the_admin_and_billing_staff_only_see_it(invoice):
    account = GlAccount.objects.get(kind="receivables")
    url = f"/admin/billing/glaccount/{account.pk}/change/"
    staff = Client()
    staff.force_login(StaffUserFactory(groups=[Group.objects.get(name=BILLING_STAFF)]))
    assert staff.get(url).status_code == 200
    assert staff.post(url, {"code": "9999", "name": "Nope"}).status_code == 403
    finance = Client()
    finance.force_login(StaffUserFactory(groups=[Group.objects.get(name=FINANCE_ADMIN)]))
    assert finance.post(url, {"code": "1200", "name": "Trade debtors"}).status_code == 302
    account.refresh_from_db()
    assert (account.code, account.name) == ("1200", "Trade debtors")
    assert GlAccount.objects.count() == 15  # the seeded chart, none added or removed


def test_an_issued_invoice_voided_in_the_month_is_reversed(invoice, other):
    invoice_void(invoice=other, reason="billed twice", now=DEC_5)
    entries = [e for e in month_journal(period=DECEMBER).entries if e.number == other.number]
    sale, void = entries
    assert (void.document, void.date) == ("invoice_void", dt.date(2026, 12, 5))
    # The same lines, debits and credits swapped: Receivables credited with the $147.60 total.
    assert rows(void) == [(code, department, credit, debit) for code, department, debit, credit in rows(sale)]
    assert void.lines[0].description == f"Void of Invoice {other.number}, November 2026"
    assert void.debit == void.credit == D("150.16")


def test_an_export_key_limited_to_some_accounts_journals_those_only(invoice, other):
    _, secret = api_key_create(name="erp", scopes=["export"], export_accounts=[invoice.account])
    client = Client(headers={"Authorization": f"Bearer {secret}"})
    with time_machine.travel(DEC_10, tick=False):
        every = client.get("/v1/billing/journal?year=2026&month=12").json()
        refused = client.get(f"/v1/billing/journal?year=2026&month=12&account={other.account.public_id}")
        allocation = client.get(f"/v1/billing/allocation?year=2026&month=11&account={other.account.public_id}")
    assert [e["number"] for e in every["entries"]] == [invoice.number, "CN-2026-000001"]
    assert (refused.status_code, refused.json()["error"]["code"]) == (404, "not_found")
    assert allocation.status_code == 404
