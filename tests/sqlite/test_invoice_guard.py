"""The SQLite triggers that keep an issued invoice as it was issued (billing migration 0004, put back by 0006
after it rebuilt the table): statements that change its money or identity, or its lines, are refused by the
database itself; paying it still goes through, and so does opening a paid invoice again (billing migration
0013: the money that paid it was refunded or reversed)."""

import datetime as dt
import io
from decimal import Decimal as D

import pytest
import time_machine
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.db.models import F

from billing.models import Invoice

pytestmark = pytest.mark.django_db
UTC = dt.UTC
IMMUTABLE = "finalized invoice is immutable: issue a credit note instead"


@pytest.fixture
def issued(northwind, settings):
    """Northwind's November invoice, finalized as the month closed (no review window): $299.00."""
    settings.BILLING_REVIEW_HOURS = 0
    with time_machine.travel(dt.datetime(2026, 11, 30, 12, tzinfo=UTC), tick=False):
        book = northwind()
        call_command("test_clock", "set", "2026-12-01T00:05Z", stdout=io.StringIO())
        call_command("bill_period", "2026-11", stdout=io.StringIO())
    invoice = Invoice.objects.get(account=book["account"])
    assert (invoice.status, invoice.total, invoice.lines.count()) == ("finalized", D("299.00"), 5)
    return invoice


def sql(statement: str, *params) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, params)


def as_issued(invoice: Invoice) -> tuple:
    invoice.refresh_from_db()
    lines = list(invoice.lines.order_by("position").values_list("position", "description", "amount"))
    return invoice.number, invoice.status, invoice.subtotal, invoice.total, invoice.amount_due, lines


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE billing_invoice SET subtotal = 1, total = 1, amount_due = 1 WHERE id = %s",
        "UPDATE billing_invoice SET number = 'INV-2026-999999' WHERE id = %s",
        "UPDATE billing_invoice SET status = 'draft' WHERE id = %s",
        "UPDATE billing_invoice SET snapshot = '{}' WHERE id = %s",
        "DELETE FROM billing_invoice WHERE id = %s",
    ],
)
def test_sql_that_changes_or_deletes_an_issued_invoice_is_refused(issued, statement):
    before = as_issued(issued)
    with pytest.raises(IntegrityError, match=IMMUTABLE):
        sql(statement, issued.pk)
    assert as_issued(issued) == before


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE billing_invoiceline SET amount = 0 WHERE invoice_id = %s",
        "DELETE FROM billing_invoiceline WHERE invoice_id = %s",
        "INSERT INTO billing_invoiceline (invoice_id, position, kind, description, period_start, period_end, amount,"
        " breakdown, transaction_ids) SELECT id, 99, 'usage', 'Smuggled in', period_start, period_end, 10, '{}', '[]'"
        " FROM billing_invoice WHERE id = %s",
    ],
)
def test_sql_that_changes_adds_or_deletes_an_issued_invoices_lines_is_refused(issued, statement):
    before = as_issued(issued)
    with pytest.raises(IntegrityError, match=f"invoice line: {IMMUTABLE}"):
        sql(statement, issued.pk)
    assert as_issued(issued) == before


def test_the_orm_is_refused_as_well(issued):
    with pytest.raises(IntegrityError, match=IMMUTABLE), transaction.atomic():
        Invoice.objects.filter(pk=issued.pk).update(total=D("1.00"), subtotal=D("1.00"), amount_due=D("1.00"))
    with pytest.raises(IntegrityError, match=IMMUTABLE), transaction.atomic():
        issued.lines.all().delete()
    assert Invoice.objects.get(pk=issued.pk).total == D("299.00")


def test_an_issued_invoice_may_be_paid_and_opened_again_but_never_made_a_draft(issued):
    paid_at = dt.datetime(2026, 12, 10, tzinfo=UTC)
    Invoice.objects.filter(pk=issued.pk).update(status="paid", amount_paid=F("total"), amount_due=0, paid_at=paid_at)
    issued.refresh_from_db()
    assert (issued.status, issued.amount_paid, issued.amount_due, issued.paid_at) == (
        "paid",
        D("299.00"),
        D("0.00"),
        paid_at,
    )
    # A paid invoice never goes back to draft, and its total stays as issued.
    with pytest.raises(IntegrityError, match=IMMUTABLE), transaction.atomic():
        Invoice.objects.filter(pk=issued.pk).update(status="draft", amount_paid=0, amount_due=F("total"))
    with pytest.raises(IntegrityError, match=IMMUTABLE), transaction.atomic():
        Invoice.objects.filter(pk=issued.pk).update(total=D("1.00"))
    issued.refresh_from_db()
    assert (issued.status, issued.total, issued.amount_due) == ("paid", D("299.00"), D("0.00"))

    # The money that paid it was refunded (or the payment reversed): it owes the amount again.
    Invoice.objects.filter(pk=issued.pk).update(status="finalized", amount_paid=0, amount_due=F("total"), paid_at=None)
    issued.refresh_from_db()
    assert (issued.status, issued.amount_paid, issued.amount_due, issued.paid_at) == (
        "finalized",
        D("0.00"),
        D("299.00"),
        None,
    )
