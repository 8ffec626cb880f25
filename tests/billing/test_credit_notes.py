"""Credit notes: the only correction of a finalized invoice. Whole lines, a quantity at a line's unit price, an
amount or goodwill; never more than the invoice nor a line; voided only while not applied; money already paid
goes to the credit balance or is refunded (a transfer recorded as sent back, card money through Stripe)."""

import datetime as dt
import io
import re
from decimal import Decimal as D

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.test import Client
from pypdf import PdfReader

from accounts.permissions import BILLING_STAFF, FINANCE_ADMIN
from billing.models import CreditNote, Document, EmailDelivery, Payment, PaymentAllocation, PaymentProfile, Refund
from billing.selectors import credit_balance, payment_unapplied
from billing.services.credit_notes import (
    ERR_CREDIT_LINE_TOO_MUCH,
    ERR_NO_UNIT_PRICE,
    ERR_QUANTITY_POSITIVE,
    ERR_QUANTITY_TOO_MUCH,
    ERR_REFUND_DENIED,
    ERR_REFUND_STRIPE_OFF,
    ERR_VOID_RELEASED,
    ERR_VOID_SETTLED,
    CreditLine,
    CreditPreview,
    credit_line_for_quantity,
    credit_note_issue,
    credit_note_void,
    credit_preview,
)
from billing.services.documents import document_ready
from billing.services.emails.sending import ERR_LAPSED_NOTE_VOID, email_send
from billing.services.invoices import invoice_void
from billing.services.payments import invoice_payment_record
from common.errors import BillingError
from common.models import OutboxEvent
from tests.accounts.factories import AccountFactory, StaffUserFactory
from tests.billing.cycle import CLOSE_AT, UTC
from tests.billing.factories import business_invoice, finalized_invoice
from tests.billing.stripe_fake import stripe_fake_start, webhook_endpoint_create, webhook_post
from tests.usage.factories import usage_event

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
    credit_note_issue(invoice=invoice, lines=[(None, "goodwill", D("10.00"))], reason="r", now=DEC_5)
    with pytest.raises(BillingError) as caught:
        invoice_void(invoice=invoice, reason="mistake")
    assert (caught.value.code, caught.value.status) == ("invoice_not_voidable", 409)
    invoice.refresh_from_db()
    assert invoice.status == "finalized"


# --- Crediting a quantity, the per-line cap, the preview ------------------------------------------------------

DEC_6 = dt.datetime(2026, 12, 6, tzinfo=UTC)


@pytest.fixture
def finance():
    return StaffUserFactory(username="fiona", groups=[Group.objects.get(name=FINANCE_ADMIN)])


@pytest.fixture
def staff():
    return StaffUserFactory(username="bianca", groups=[Group.objects.get(name=BILLING_STAFF)])


def messages_line(invoice):
    return invoice.lines.get(metric__code="messages")


def test_a_quantity_is_credited_at_the_lines_unit_price(invoice):
    credit = credit_line_for_quantity(line=messages_line(invoice), quantity=D("6000"))
    # 6,000 / 1 × $0.03 = $180.00
    assert (credit.amount, credit.quantity, credit.description) == (
        D("180.00"),
        D("6000"),
        "6,000 messages credited at USD 0.03",
    )
    note = credit_note_issue(invoice=invoice, lines=[credit], reason="gateway retries", now=DEC_5)
    invoice.refresh_from_db()
    # $180.00 + 20 % = $36.00 tax: $216.00; $574.80 − $216.00 = $358.80 still due
    assert (note.subtotal, note.tax, note.total, note.released, note.excess_to) == (
        D("180.00"),
        D("36.00"),
        D("216.00"),
        D("0.00"),
        "balance",
    )
    assert [(line.description, line.amount) for line in note.lines.all()] == [
        ("6,000 messages credited at USD 0.03", D("180.00"))
    ]
    assert (invoice.status, invoice.amount_credited, invoice.amount_due) == ("finalized", D("216.00"), D("358.80"))
    event = OutboxEvent.objects.get(type="billing.credit_note_issued")
    assert event.dedup_key == f"credit_note_issued:{note.pk}"
    assert event.payload["data"] == {
        "credit_note_id": "CN-2026-000001",
        "invoice_id": "INV-2026-000001",
        "subtotal": "180.00",
        "tax": "36.00",
        "total": "216.00",
        "currency": "USD",
        "reason": "gateway retries",
        "excess_to": "balance",
        "released": "0.00",
        "issued_at": "2026-12-05T00:00:00Z",
    }


def test_a_part_of_a_base_fee_is_credited_at_its_price(invoice):
    base = invoice.lines.get(kind="base_fee")
    # Half a month of the $299.00 base fee: 0.5 × $299.00 = $149.50 (a line of no metric is described by itself)
    credit = credit_line_for_quantity(line=base, quantity=D("0.5"))
    assert (credit.amount, credit.description) == (D("149.50"), "0.5 × Business base fee credited at USD 299.00")


def test_a_quantity_beyond_what_was_billed_is_refused(invoice):
    line = messages_line(invoice)
    with pytest.raises(BillingError) as caught:
        credit_line_for_quantity(line=line, quantity=D("6001"))
    # 31,000 sent, 25,000 included: 6,000 billed
    assert (caught.value.code, caught.value.field, caught.value.status) == ("quantity_exceeds_billable", "lines", 400)
    assert caught.value.message == ERR_QUANTITY_TOO_MUCH.format(quantity="6,001", billable="6,000", line="Messages")
    for quantity in (D("0"), D("-5")):
        with pytest.raises(BillingError) as caught:
            credit_line_for_quantity(line=line, quantity=quantity)
        assert (caught.value.code, caught.value.message) == (
            "invalid_quantity",
            ERR_QUANTITY_POSITIVE.format(line="Messages"),
        )


def test_a_line_without_a_single_unit_price_is_credited_by_amount_only(invoice):
    partners = invoice.lines.get(metric__code="master_partners")  # included in the plan: no unit price
    with pytest.raises(BillingError) as caught:
        credit_line_for_quantity(line=partners, quantity=D("1"))
    assert (caught.value.code, caught.value.field) == ("no_unit_price", "lines")
    assert caught.value.message == ERR_NO_UNIT_PRICE.format(line="Master partners")
    assert "credit an amount instead" in caught.value.message


def test_the_credits_of_a_line_never_exceed_its_amount(invoice):
    line = messages_line(invoice)  # $180.00
    credit_note_issue(invoice=invoice, lines=[(line, "first part", D("100.00"))], reason="r", now=DEC_5)
    with pytest.raises(BillingError) as caught:
        credit_note_issue(invoice=invoice, lines=[(line, "second part", D("80.01"))], reason="r", now=DEC_5)
    assert (caught.value.code, caught.value.field) == ("credit_exceeds_line", "lines")
    assert caught.value.message == ERR_CREDIT_LINE_TOO_MUCH.format(
        amount="USD 80.01", line="Messages", left="USD 80.00"
    )
    # Two parts of one credit count together: $50.00 + $30.01 is a cent too much as well.
    with pytest.raises(BillingError) as caught:
        credit_preview(
            invoice=invoice,
            lines=[CreditLine(line, "a", D("50.00")), CreditLine(line, "b", D("30.01"))],
        )
    assert caught.value.code == "credit_exceeds_line"
    # Exactly what is left of the line: $80.00 + $16.00 tax
    note = credit_note_issue(invoice=invoice, lines=[(line, "the rest", D("80.00"))], reason="r", now=DEC_5)
    assert (note.number, note.total) == ("CN-2026-000002", D("96.00"))
    assert CreditNote.objects.count() == 2


def test_the_preview_has_the_figures_and_the_errors_of_the_issue(invoice):
    line = messages_line(invoice)
    credit = credit_line_for_quantity(line=line, quantity=D("6000"))
    preview = credit_preview(invoice=invoice, lines=[credit])
    # $180.00 + $36.00 = $216.00; $574.80 − $216.00 = $358.80 left to credit after it, nothing paid to give back
    assert preview == CreditPreview(
        subtotal=D("180.00"), tax=D("36.00"), total=D("216.00"), left_to_credit=D("358.80"), released=D("0.00")
    )
    assert CreditNote.objects.count() == 0  # a preview writes nothing
    note = credit_note_issue(invoice=invoice, lines=[credit], reason="r", now=DEC_5)
    assert (note.subtotal, note.tax, note.total) == (preview.subtotal, preview.tax, preview.total)
    # the same credit again: the line has nothing left; a goodwill credit previews against what is left
    with pytest.raises(BillingError) as caught:
        credit_preview(invoice=invoice, lines=[credit])
    assert caught.value.code == "credit_exceeds_line"
    assert credit_preview(invoice=invoice, lines=[(None, "goodwill", D("299.00"))]) == CreditPreview(
        # $299.00 + $59.80 = $358.80: all that is left
        subtotal=D("299.00"),
        tax=D("59.80"),
        total=D("358.80"),
        left_to_credit=D("0.00"),
        released=D("0.00"),
    )
    with pytest.raises(BillingError) as caught:
        credit_preview(invoice=invoice, lines=[(None, "goodwill", D("299.01"))])
    assert caught.value.code == "credit_exceeds_invoice"


# --- Voiding ----------------------------------------------------------------------------------------------


def test_voiding_a_credit_note_gives_the_invoice_its_amount_due_back(invoice, finance):
    credit = credit_line_for_quantity(line=messages_line(invoice), quantity=D("6000"))
    note = credit_note_issue(invoice=invoice, lines=[credit], reason="gateway retries", now=DEC_5)
    (email,) = EmailDelivery.objects.filter(credit_note=note)
    Document.objects.filter(credit_note=note).update(status=Document.Status.READY)
    Document.objects.filter(invoice=invoice).update(status=Document.Status.READY)

    voided = credit_note_void(credit_note=note, reason="issued on the wrong invoice", actor=finance, now=DEC_6)

    note.refresh_from_db()
    invoice.refresh_from_db()
    assert (voided.status, note.status, note.voided_at, note.void_reason) == (
        "void",
        "void",
        DEC_6,
        "issued on the wrong invoice",
    )
    # $358.80 + $216.00 = $574.80 due again; nothing credited
    assert (invoice.status, invoice.amount_credited, invoice.amount_due) == ("finalized", D("0.00"), D("574.80"))
    assert (invoice.total, invoice.number) == (D("574.80"), "INV-2026-000001")
    # both PDFs are rendered again
    assert set(Document.objects.values_list("status", flat=True)) == {"pending"}
    event = OutboxEvent.objects.get(type="billing.credit_note_voided")
    assert (event.dedup_key, event.payload["data"]) == (
        f"credit_note_voided:{note.pk}",
        {
            "credit_note_id": "CN-2026-000001",
            "invoice_id": "INV-2026-000001",
            "total": "216.00",
            "currency": "USD",
            "reason": "issued on the wrong invoice",
            "voided_at": "2026-12-06T00:00:00Z",
            "amount_due": "574.80",
        },
    )
    latest = note.history.latest("history_id")
    assert (latest.history_user, latest.history_change_reason) == (finance, "voided: issued on the wrong invoice")
    assert invoice.history.latest("history_id").history_change_reason == (
        "CN-2026-000001 voided: issued on the wrong invoice"
    )
    # the note's e-mail, still queued, is not sent
    email_send(delivery_id=email.pk, now=DEC_6)
    email.refresh_from_db()
    assert (email.status, email.last_error) == ("cancelled", ERR_LAPSED_NOTE_VOID.format(number="CN-2026-000001"))
    # a void note credits nothing: the line can be credited in full again
    again = credit_note_issue(invoice=invoice, lines=[credit], reason="right invoice", now=DEC_6)
    assert (again.number, again.total) == ("CN-2026-000002", D("216.00"))


def test_the_pdf_of_a_voided_note_says_so_and_shows_the_quantity_credited(invoice, finance):
    credit = credit_line_for_quantity(line=messages_line(invoice), quantity=D("6000"))
    note = credit_note_issue(invoice=invoice, lines=[credit], reason="gateway retries", now=DEC_5)
    text = pdf_text(document_ready(credit_note=note))
    assert "6,000 messages credited at USD 0.03" in text and "VOID" not in text
    credit_note_void(credit_note=note, reason="issued on the wrong invoice", actor=finance, now=DEC_6)
    text = pdf_text(document_ready(credit_note=note))
    assert "VOID" in text
    assert "Voided 6 December 2026: issued on the wrong invoice" in text


def pdf_text(document):
    with document.file.open("rb") as handle:
        reader = PdfReader(io.BytesIO(handle.read()))
    return "\n".join(page.extract_text() for page in reader.pages)


def test_voiding_needs_a_finance_admin_and_a_reason(invoice, staff, finance):
    note = credit_note_issue(invoice=invoice, lines=[(None, "goodwill", D("10.00"))], reason="r", now=DEC_5)
    with pytest.raises(BillingError) as caught:
        credit_note_void(credit_note=note, reason="mistake", actor=staff, now=DEC_6)
    assert (caught.value.code, caught.value.status) == ("permission_denied", 403)
    with pytest.raises(BillingError) as caught:
        credit_note_void(credit_note=note, reason="  ", actor=finance, now=DEC_6)
    assert (caught.value.code, caught.value.field, caught.value.status) == ("required", "reason", 400)
    note.refresh_from_db()
    assert note.status == "issued"
    credit_note_void(credit_note=note, reason="mistake", actor=finance, now=DEC_6)
    with pytest.raises(BillingError) as caught:
        credit_note_void(credit_note=note, reason="again", actor=finance, now=DEC_6)
    assert (caught.value.code, caught.value.status) == ("credit_note_void", 409)


def test_a_note_that_settled_the_invoice_cannot_be_voided(invoice, finance):
    # $479.00 + $95.80 = $574.80: the invoice is paid by the credit
    note = credit_note_issue(invoice=invoice, lines=[(None, "waived", D("479.00"))], reason="waived", now=DEC_5)
    with pytest.raises(BillingError) as caught:
        credit_note_void(credit_note=note, reason="mistake", actor=finance, now=DEC_6)
    assert (caught.value.code, caught.value.status) == ("credit_note_applied", 409)
    assert caught.value.message == ERR_VOID_SETTLED.format(
        number="CN-2026-000001", invoice="INV-2026-000001", status="paid"
    )
    invoice.refresh_from_db()
    note.refresh_from_db()
    assert (note.status, invoice.status, invoice.amount_due) == ("issued", "paid", D("0.00"))


def test_a_note_that_released_money_cannot_be_voided(invoice, finance):
    # $300.00 paid by transfer: $274.80 due. $250.00 + $50.00 tax = $300.00 credited: $25.20 is released.
    invoice_payment_record(invoice=invoice, amount=D("300.00"), reference="NW-1", now=DEC_5)
    note = credit_note_issue(invoice=invoice, lines=[(None, "goodwill", D("250.00"))], reason="r", now=DEC_5)
    invoice.refresh_from_db()
    assert (note.released, invoice.status, invoice.amount_paid) == (D("25.20"), "paid", D("274.80"))
    with pytest.raises(BillingError) as caught:
        credit_note_void(credit_note=note, reason="mistake", actor=finance, now=DEC_6)
    assert (caught.value.code, caught.value.status) == ("credit_note_applied", 409)
    assert caught.value.message == ERR_VOID_RELEASED.format(
        number="CN-2026-000001", amount="USD 25.20", invoice="INV-2026-000001"
    )


# --- Money already paid: to the credit balance, or refunded -------------------------------------------------


def test_money_already_paid_goes_to_the_credit_balance_by_default(invoice):
    invoice_payment_record(invoice=invoice, amount=D("574.80"), reference="NW-1", now=DEC_5)
    credit = credit_line_for_quantity(line=messages_line(invoice), quantity=D("6000"))
    note = credit_note_issue(invoice=invoice, lines=[credit], reason="r", now=DEC_5)
    invoice.refresh_from_db()
    # paid in full, so all of the $216.00 is released: $574.80 − $216.00 = $358.80 stays paid
    assert (note.released, note.excess_to) == (D("216.00"), "balance")
    assert (invoice.status, invoice.amount_paid, invoice.amount_credited, invoice.amount_due) == (
        "paid",
        D("358.80"),
        D("216.00"),
        D("0.00"),
    )
    assert credit_balance(invoice.account) == D("216.00")
    assert Refund.objects.count() == 0


def test_a_refund_of_a_bank_transfer_is_recorded(invoice, finance):
    invoice_payment_record(invoice=invoice, amount=D("574.80"), reference="NW-1", now=DEC_5)
    (payment,) = Payment.objects.all()
    credit = credit_line_for_quantity(line=messages_line(invoice), quantity=D("6000"))
    note = credit_note_issue(
        invoice=invoice, lines=[credit], reason="gateway retries", excess_to="refund", actor=finance, now=DEC_6
    )
    invoice.refresh_from_db()
    assert (note.released, note.excess_to, note.created_by) == (D("216.00"), "refund", finance)
    (refund,) = Refund.objects.all()
    assert (refund.payment, refund.amount, refund.reason, refund.created_by, refund.external_id) == (
        payment,
        D("216.00"),
        "CN-2026-000001: gateway retries",
        finance,
        None,
    )
    # $574.80 paid − $216.00 released and sent back: nothing unapplied, no credit balance
    assert (invoice.status, invoice.amount_paid, invoice.amount_due) == ("paid", D("358.80"), D("0.00"))
    assert (payment_unapplied(payment), credit_balance(invoice.account)) == (D("0.00"), D("0.00"))
    assert list(PaymentAllocation.objects.filter(invoice=invoice).order_by("pk").values_list("kind", "amount")) == [
        ("payment", D("574.80")),
        ("release", D("-216.00")),
    ]
    issued = OutboxEvent.objects.get(type="billing.credit_note_issued").payload["data"]
    assert (issued["excess_to"], issued["released"]) == ("refund", "216.00")
    assert OutboxEvent.objects.get(type="billing.payment_refunded").payload["data"]["amount"] == "216.00"


def test_a_refund_needs_a_finance_admin_and_nothing_is_written_otherwise(invoice, staff):
    invoice_payment_record(invoice=invoice, amount=D("574.80"), reference="NW-1", now=DEC_5)
    with pytest.raises(BillingError) as caught:
        credit_note_issue(
            invoice=invoice, lines=[(None, "goodwill", D("10.00"))], reason="r", excess_to="refund", actor=staff
        )
    assert (caught.value.code, caught.value.status) == ("permission_denied", 403)
    assert caught.value.message == ERR_REFUND_DENIED.format(amount="USD 12.00")
    assert (CreditNote.objects.count(), Refund.objects.count(), PaymentAllocation.objects.count()) == (0, 0, 1)


def test_a_credit_that_gives_nothing_back_needs_no_refund_permission(invoice, staff):
    # unpaid: the credit only lowers what is due, so "refund" has nothing to refund
    note = credit_note_issue(
        invoice=invoice, lines=[(None, "goodwill", D("10.00"))], reason="r", excess_to="refund", actor=staff
    )
    invoice.refresh_from_db()
    assert (note.released, note.total, invoice.amount_due) == (D("0.00"), D("12.00"), D("562.80"))


def test_excess_to_is_balance_or_refund(invoice):
    with pytest.raises(BillingError) as caught:
        credit_note_issue(invoice=invoice, lines=[(None, "goodwill", D("10.00"))], reason="r", excess_to="cheque")
    assert (caught.value.code, caught.value.field) == ("invalid_choice", "excess_to")


# --- Card money goes back through Stripe ------------------------------------------------------------------


def _answer_refunds(fake):
    """Stripe's ``POST /v1/refunds`` on the fake: the refund of (part of) a charge, named by the charge or by its
    PaymentIntent, as Stripe answers it."""
    route = fake._route

    def routed(method, path, params):
        if method == "POST" and path == "/v1/refunds":
            charge_id = params.get("charge") or fake.objects[params["payment_intent"]]["latest_charge"]
            fake.refund(charge_id, int(params["amount"]), reason=params.get("reason") or "requested_by_customer")
            refund = [o for o in fake.objects.values() if o["object"] == "refund"][-1]
            refund["metadata"] = {k[len("metadata[") : -1]: v for k, v in params.items() if k.startswith("metadata[")}
            return 200, fake.get(refund["id"])
        return route(method, path, params)

    fake._route = routed


@pytest.fixture
def fake(httpserver, settings, monkeypatch):
    fake = stripe_fake_start(httpserver, settings, monkeypatch)
    _answer_refunds(fake)
    return fake


@pytest.fixture
def card_paid(fake, plan, django_capture_on_commit_callbacks):
    """Northwind's November invoice ($574.80 with 20 % tax), charged to its card when it was finalized."""
    account = AccountFactory(name="Northwind", tax_rate=D("20"), billing_emails=["ap@northwind.example"])
    customer, pm = fake.customer_with_card()
    PaymentProfile.objects.create(
        account=account,
        stripe_customer_id=customer,
        auto_collection=True,
        payment_method_id=pm,
        payment_method_type="card",
        payment_method_brand="visa",
        payment_method_last4="4242",
    )
    messages = usage_event(transaction_id="m1", tenant="ten_nw", quantity=31_000, at="2026-11-10T10:00:00Z")
    with time_machine.travel(CLOSE_AT, tick=False), django_capture_on_commit_callbacks(execute=True):
        invoice = finalized_invoice(plan("messaging-business"), account=account, usage=[messages])
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_paid, invoice.amount_due) == ("paid", D("574.80"), D("0.00"))
    return invoice


def test_card_money_is_refunded_through_stripe_and_recorded_once(
    fake, card_paid, finance, django_capture_on_commit_callbacks
):
    invoice = card_paid
    (payment,) = Payment.objects.filter(invoice=invoice)
    assert payment.provider == "stripe" and payment.stripe_charge_id
    credit = credit_line_for_quantity(line=messages_line(invoice), quantity=D("6000"))
    note = credit_note_issue(
        invoice=invoice, lines=[credit], reason="gateway retries", excess_to="refund", actor=finance, now=DEC_6
    )

    # $216.00 = 21,600 cents, asked once, with the key of this note and payment
    (asked,) = fake.posts("/v1/refunds")
    assert (asked.params["charge"], asked.params["amount"], asked.idempotency_key) == (
        payment.stripe_charge_id,
        "21600",
        f"credit-note-{note.pk}-payment-{payment.pk}",
    )
    assert asked.params["metadata[credit_note]"] == "CN-2026-000001"
    (refund,) = Refund.objects.all()
    assert (refund.payment, refund.amount, refund.created_by) == (payment, D("216.00"), finance)
    assert re.fullmatch(r"re_fake\d+", refund.external_id)
    assert refund.reason == f"Stripe refund {refund.external_id}: CN-2026-000001: gateway retries"

    # Stripe then reports the refund: it is in the ledger already, so nothing more is recorded
    endpoint = webhook_endpoint_create()
    with django_capture_on_commit_callbacks(execute=True):
        response = webhook_post(Client(), endpoint, fake.event("charge.refunded", fake.get(payment.stripe_charge_id)))
    assert response.status_code == 200
    assert list(Refund.objects.values_list("external_id", "amount")) == [(refund.external_id, D("216.00"))]
    invoice.refresh_from_db()
    # $574.80 paid − $216.00 released and refunded = $358.80 paid; $216.00 credited; nothing due
    assert (invoice.status, invoice.amount_paid, invoice.amount_credited, invoice.amount_due) == (
        "paid",
        D("358.80"),
        D("216.00"),
        D("0.00"),
    )
    assert (payment_unapplied(payment), credit_balance(invoice.account)) == (D("0.00"), D("0.00"))


def test_card_money_is_not_refunded_when_stripe_is_not_configured(fake, card_paid, finance, settings):
    invoice = card_paid
    (payment,) = Payment.objects.filter(invoice=invoice)
    key = settings.STRIPE_TEST_SECRET_KEY
    settings.STRIPE_TEST_SECRET_KEY = ""
    with pytest.raises(BillingError) as caught:
        credit_note_issue(
            invoice=invoice, lines=[(None, "goodwill", D("100.00"))], reason="r", excess_to="refund", actor=finance
        )
    # $100.00 + $20.00 tax, all of it paid already
    assert (caught.value.code, caught.value.status) == ("stripe_not_configured", 409)
    assert caught.value.message == ERR_REFUND_STRIPE_OFF.format(payment=payment.public_id, amount="USD 120.00")
    # nothing was written, nothing asked of Stripe
    invoice.refresh_from_db()
    assert (invoice.amount_paid, invoice.amount_credited) == (D("574.80"), D("0.00"))
    assert (CreditNote.objects.count(), Refund.objects.count()) == (0, 0)
    assert list(PaymentAllocation.objects.values_list("kind", flat=True)) == ["payment"]
    assert fake.posts("/v1/refunds") == []
    # ... not even a number: the next note is the series' first
    settings.STRIPE_TEST_SECRET_KEY = key
    note = credit_note_issue(invoice=invoice, lines=[(None, "goodwill", D("100.00"))], reason="r", actor=finance)
    assert (note.number, note.released, credit_balance(invoice.account)) == ("CN-2026-000001", D("120.00"), D("120.00"))
