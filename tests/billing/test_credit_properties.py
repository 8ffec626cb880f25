"""Properties of credit notes over random sequences of partial credits (quantities at a line's unit price, amounts
of a line, goodwill, several in one note), voids and payments, on the $574.80 invoice (20 % tax):
$299.00 base fee (1 × $299.00) + 6,000 messages × $0.03 = $180.00; $479.00 + $95.80 tax.

After every step, whatever the sequence:
- the issued notes credit at most the invoice's total, the credits of a line at most its amount, and the tax
  credited at most the invoice's tax; the invoice's ``amount_credited`` is the issued notes' total, and
  ``amount_due`` = total − paid − credited;
- each step did what it says, figured by hand from the state before it: a credit is refused exactly when a line
  or the invoice has too little left (with that code), else credits its amounts with tax on the running total;
  a void is allowed exactly while the note is not applied and gives the amount due back.

Each example runs in a savepoint that is rolled back, so every example starts from the same invoice."""

import datetime as dt
from decimal import ROUND_HALF_UP
from decimal import Decimal as D

import pytest
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import Sum
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from accounts.permissions import FINANCE_ADMIN
from billing.models import CreditNote, CreditNoteLine, Invoice
from billing.services.credit_notes import (
    CreditLine,
    credit_line_for_quantity,
    credit_note_issue,
    credit_note_void,
    credit_preview,
)
from billing.services.payments import invoice_payment_record
from common.errors import BillingError
from tests.accounts.factories import StaffUserFactory
from tests.billing.cycle import UTC
from tests.billing.factories import business_invoice

pytestmark = pytest.mark.django_db
ZERO = D("0")
CENT = D("0.01")
START = dt.datetime(2026, 12, 2, 9, tzinfo=UTC)
EXAMPLES = settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
# What each line is priced at: (unit price, billed quantity) — base fee 1 × $299.00, messages 6,000 × $0.03.
PRICES = {"base_fee": (D("299.00"), D("1")), "messages": (D("0.03"), D("6000"))}


class RolledBack(Exception):
    """Raised at the end of an example to roll its savepoint back."""


@pytest.fixture
def books(plan):
    invoice = business_invoice(plan, tax_rate="20")
    assert (invoice.subtotal, invoice.tax, invoice.total) == (D("479.00"), D("95.80"), D("574.80"))
    lines = {
        "base_fee": invoice.lines.get(kind="base_fee"),
        "messages": invoice.lines.get(metric__code="messages"),
    }
    assert [(lines[k].amount, lines[k].unit_price) for k in PRICES] == [
        (D("299.00"), D("299.00")),
        (D("180.00"), D("0.03")),
    ]
    finance = StaffUserFactory(username="fiona", groups=[Group.objects.get(name=FINANCE_ADMIN)])
    return invoice, lines, finance


def cents(n: int) -> D:
    return D(n) / 100


def money(value: D) -> D:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


which = st.sampled_from(["base_fee", "messages"])
items = st.one_of(
    # a quantity: the base fee in tenths of a month (up to 1.2), messages up to 6,600 (10 % beyond what was billed)
    st.tuples(st.just("quantity"), st.just("base_fee"), st.integers(1, 12).map(lambda n: D(n) / 10)),
    st.tuples(st.just("quantity"), st.just("messages"), st.integers(1, 6_600).map(D)),
    st.tuples(st.just("amount"), which, st.integers(1, 32_000).map(cents)),
    # goodwill: any amount, and often a large one (what a whole invoice is credited with)
    st.tuples(
        st.just("goodwill"), st.none(), st.one_of(st.integers(1, 60_000), st.integers(30_000, 60_000)).map(cents)
    ),
)
steps = st.one_of(
    st.tuples(st.just("credit"), st.lists(items, min_size=1, max_size=3), st.booleans()),
    st.tuples(st.just("void"), st.integers(0, 5)),
    st.tuples(st.just("pay"), st.integers(1, 100)),
)


def state(invoice, lines):
    invoice = Invoice.objects.get(pk=invoice.pk)
    issued = CreditNote.objects.filter(invoice=invoice, status=CreditNote.Status.ISSUED)
    sums = issued.aggregate(subtotal=Sum("subtotal", default=ZERO), tax=Sum("tax", default=ZERO))
    per_line = {
        key: CreditNoteLine.objects.filter(invoice_line=line, credit_note__status=CreditNote.Status.ISSUED).aggregate(
            t=Sum("amount", default=ZERO)
        )["t"]
        for key, line in lines.items()
    }
    return {
        "invoice": invoice,
        "subtotal": sums["subtotal"],
        "tax": sums["tax"],
        "credited": sums["subtotal"] + sums["tax"],
        "per_line": per_line,
        "notes": list(CreditNote.objects.filter(invoice=invoice).order_by("pk")),
    }


def check_invariants(now_state, lines):
    invoice = now_state["invoice"]
    assert now_state["credited"] <= invoice.total
    assert now_state["tax"] <= invoice.tax
    for key, line in lines.items():
        assert now_state["per_line"][key] <= line.amount, key
    assert invoice.amount_credited == now_state["credited"]
    assert invoice.amount_due == invoice.total - invoice.amount_paid - invoice.amount_credited
    assert invoice.amount_due >= 0
    assert invoice.status == ("paid" if invoice.amount_due == 0 else "finalized")


def expected_credit(before, parts):
    """(code of the refusal or None, subtotal, tax) of a credit, by hand from the state before it."""
    invoice = before["invoice"]
    amounts: list[tuple[str | None, D]] = []
    for kind, key, value in parts:
        if kind == "quantity":
            price, billed = PRICES[key]
            if value > billed:
                return "quantity_exceeds_billable", None, None
            amounts.append((key, money(value * price)))
        elif kind == "amount":
            amounts.append((key, value))
        else:
            amounts.append((None, value))
    lines_of = {}
    for key, amount in amounts:
        if key is not None:
            lines_of[key] = lines_of.get(key, ZERO) + amount
    for key, amount in lines_of.items():
        line_amount = D("299.00") if key == "base_fee" else D("180.00")
        if amount > line_amount - before["per_line"][key]:
            return "credit_exceeds_line", None, None
    subtotal = sum((amount for _, amount in amounts), ZERO)
    tax = money((before["subtotal"] + subtotal) * D("0.20")) - before["tax"]
    tax = max(min(tax, invoice.tax - before["tax"]), ZERO)
    if subtotal + tax > invoice.total - before["credited"]:
        return "credit_exceeds_invoice", None, None
    return None, subtotal, tax


def credit_lines(lines, parts):
    built = []
    for kind, key, value in parts:
        if kind == "quantity":
            built.append(credit_line_for_quantity(line=lines[key], quantity=value))
        elif kind == "amount":
            built.append(CreditLine(invoice_line=lines[key], description=f"part of {key}", amount=value))
        else:
            built.append(CreditLine(invoice_line=None, description="goodwill", amount=value))
    return built


def run_step(step, invoice, lines, finance, before, now):
    kind = step[0]
    if kind == "credit":
        _, parts, refund = step
        code, subtotal, tax = expected_credit(before, parts)
        excess_to = "refund" if refund else "balance"
        event(f"credit: {code or 'issued'}")
        if code is not None:
            with pytest.raises(BillingError) as caught:
                built = credit_lines(lines, parts)
                credit_preview(invoice=invoice, lines=built)
            assert caught.value.code == code, parts
            with pytest.raises(BillingError) as caught:
                credit_note_issue(
                    invoice=invoice, lines=credit_lines(lines, parts), reason="r", excess_to=excess_to, now=now
                )
            assert caught.value.code == code, parts
            return
        built = credit_lines(lines, parts)
        preview = credit_preview(invoice=invoice, lines=built)
        note = credit_note_issue(invoice=invoice, lines=built, reason="r", excess_to=excess_to, actor=finance, now=now)
        assert (note.subtotal, note.tax, note.total) == (subtotal, tax, subtotal + tax), parts
        assert (preview.subtotal, preview.tax, preview.total) == (note.subtotal, note.tax, note.total)
        released = max(subtotal + tax - before["invoice"].amount_due, ZERO)
        assert note.released == released
        event("credit released money" if released else "credit lowered the amount due")
        assert preview.left_to_credit == before["invoice"].total - before["credited"] - note.total
        return

    if kind == "void":
        notes = before["notes"]
        if not notes:
            return
        note = notes[step[1] % len(notes)]
        invoice_before = before["invoice"]
        voidable = (
            note.status == "issued"
            and note.released == 0
            and invoice_before.status == "finalized"
            and invoice_before.amount_due > 0
        )
        event(f"void: {'allowed' if voidable else 'refused'}")
        if not voidable:
            with pytest.raises(BillingError) as caught:
                credit_note_void(credit_note=note, reason="mistake", actor=finance, now=now)
            assert caught.value.code in ("credit_note_applied", "credit_note_void")
            return
        credit_note_void(credit_note=note, reason="mistake", actor=finance, now=now)
        after = Invoice.objects.get(pk=invoice.pk)
        assert after.amount_due == invoice_before.amount_due + note.total
        return

    if kind == "pay":
        due = before["invoice"].amount_due
        if before["invoice"].status != "finalized" or due <= 0:
            return
        amount = max(CENT, money(due * step[1] / 100))
        invoice_payment_record(invoice=invoice, amount=amount, reference="transfer", now=now)
        return

    raise AssertionError(kind)


@EXAMPLES
@given(sequence=st.lists(steps, min_size=1, max_size=7))
def test_credits_never_exceed_the_invoice_its_lines_or_its_tax(books, sequence):
    invoice, lines, finance = books
    try:
        with transaction.atomic():
            before = state(invoice, lines)
            check_invariants(before, lines)
            for position, step in enumerate(sequence):
                now = START + dt.timedelta(hours=position)
                run_step(step, invoice, lines, finance, before, now)
                before = state(invoice, lines)
                check_invariants(before, lines)
            raise RolledBack
    except RolledBack:
        pass


def test_credits_that_add_up_to_the_invoice_give_back_exactly_its_tax(books):
    invoice, lines, finance = books
    # 3,001 messages ($90.03) and 2,999 messages ($89.97) make the line's $180.00; the base fee in two amounts,
    # $149.51 + $149.49. Tax on the running total: 20 % of $90.03 = 18.006 → 18.01; of $180.00: 36.00 − 18.01 = 17.99;
    # of $329.51: 65.902 → 65.90 − 36.00 = 29.90; of $479.00: 95.80 − 65.90 = 29.90. $95.80 in all, to the cent.
    parts = [
        [credit_line_for_quantity(line=lines["messages"], quantity=D("3001"))],
        [credit_line_for_quantity(line=lines["messages"], quantity=D("2999"))],
        [CreditLine(lines["base_fee"], "base fee, part", D("149.51"))],
        [CreditLine(lines["base_fee"], "base fee, rest", D("149.49"))],
    ]
    notes = [credit_note_issue(invoice=invoice, lines=p, reason="r", now=START) for p in parts]
    assert [(n.subtotal, n.tax) for n in notes] == [
        (D("90.03"), D("18.01")),
        (D("89.97"), D("17.99")),
        (D("149.51"), D("29.90")),
        (D("149.49"), D("29.90")),
    ]
    invoice.refresh_from_db()
    assert (invoice.amount_credited, invoice.amount_due, invoice.status) == (D("574.80"), D("0.00"), "paid")
    assert sum((n.tax for n in notes), ZERO) == invoice.tax == D("95.80")
