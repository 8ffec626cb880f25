"""Credit notes: the only correction of a finalized invoice."""

import datetime as dt
from decimal import Decimal as D

import pytest

from billing.models import CreditNote
from billing.services.credit_notes import credit_note_issue
from common.errors import BillingError
from tests.billing.cycle import UTC
from tests.billing.factories import business_invoice

pytestmark = pytest.mark.django_db
DEC_5 = dt.datetime(2026, 12, 5, tzinfo=UTC)


@pytest.fixture
def invoice(plan):
    """$479.00 with 20 % tax: $574.80."""
    invoice = business_invoice(plan, tax_rate="20")
    # $299 + 6,000 × $0.03 = $479.00; tax 20 % = $95.80
    assert (invoice.subtotal, invoice.tax, invoice.total) == (D("479.00"), D("95.80"), D("574.80"))
    return invoice


def test_a_partial_credit_reduces_what_is_due(invoice):
    line = invoice.lines.get(metric__code="messages")
    note = credit_note_issue(
        invoice=invoice, lines=[(line, "1,000 messages in dispute", D("30.00"))], reason="dispute", now=DEC_5
    )
    invoice.refresh_from_db()
    # $30.00 credited plus 20 % tax ($6.00)
    assert (note.number, note.subtotal, note.tax, note.total) == ("CN-2026-000001", D("30.00"), D("6.00"), D("36.00"))
    assert note.lines.get().invoice_line == line
    # $574.80 − $36.00
    assert (invoice.status, invoice.amount_credited, invoice.amount_due) == ("finalized", D("36.00"), D("538.80"))
    # the invoice itself is unchanged
    assert (invoice.total, invoice.number) == (D("574.80"), "INV-2026-000001")


def test_credit_beyond_what_is_left_is_refused(invoice):
    credit_note_issue(invoice=invoice, lines=[(None, "goodwill", D("400.00"))], reason="goodwill", now=DEC_5)
    # $400 + $80 tax = $480 credited; $94.80 left. $79.01 + 20 % = $94.81 is one cent too much.
    with pytest.raises(BillingError) as caught:
        credit_note_issue(invoice=invoice, lines=[(None, "more", D("79.01"))], reason="too much", now=DEC_5)
    assert caught.value.code == "credit_exceeds_invoice"
    assert caught.value.message == "A credit of 94.81 exceeds what is left to credit on INV-2026-000001 (94.80)."
    assert CreditNote.objects.count() == 1

    # Exactly what is left: $79.00 + $15.80 = $94.80 settles the invoice; the series has no gap.
    last = credit_note_issue(invoice=invoice, lines=[(None, "rest", D("79.00"))], reason="settle", now=DEC_5)
    invoice.refresh_from_db()
    assert (last.number, last.total) == ("CN-2026-000002", D("94.80"))
    assert (invoice.status, invoice.amount_due, invoice.amount_credited) == ("paid", D("0.00"), D("574.80"))


def test_credits_that_add_up_to_the_invoice_give_back_exactly_its_tax(invoice):
    line = invoice.lines.get(metric__code="messages")
    base = invoice.lines.get(kind="base_fee")
    # Three credits of $159.67 + $159.67 + $159.66 = $479.00: tax per note is computed on the running
    # total (31.93, then 63.87 − 31.93 = 31.94, then 95.80 − 63.87 = 31.93), so the tax credited is $95.80.
    notes = [
        credit_note_issue(invoice=invoice, lines=[(base, "part 1", D("159.67"))], reason="r", now=DEC_5),
        credit_note_issue(
            invoice=invoice, lines=[(base, "part 2", D("139.33")), (line, "x", D("20.34"))], reason="r", now=DEC_5
        ),
        credit_note_issue(invoice=invoice, lines=[(line, "part 3", D("159.66"))], reason="r", now=DEC_5),
    ]
    assert [n.tax for n in notes] == [D("31.93"), D("31.94"), D("31.93")]
    invoice.refresh_from_db()
    assert (invoice.amount_credited, invoice.amount_due, invoice.status) == (D("574.80"), D("0"), "paid")


def test_a_credited_invoice_cannot_be_voided(invoice):
    from billing.services.invoices import invoice_void

    credit_note_issue(invoice=invoice, lines=[(None, "goodwill", D("10.00"))], reason="r", now=DEC_5)
    with pytest.raises(BillingError) as caught:
        invoice_void(invoice=invoice, reason="mistake")
    assert (caught.value.code, caught.value.status) == ("invoice_not_voidable", 409)
    invoice.refresh_from_db()
    assert invoice.status == "finalized"
