"""Properties of the payments ledger over random sequences of payments (to the oldest invoice first, or allocated
by hand), refunds of the credit balance, provider refunds, reversals and credit notes on two finalized invoices.

After every step, whatever the sequence:
- an invoice's ``amount_paid`` is the sum of its allocations and ``amount_due`` = total − paid − credited
  (the issued credit notes), never negative; it is paid exactly when nothing is due;
- a payment's allocations plus its refunds never exceed its amount, and none of them leaves an invoice with a
  negative share of it; a reversed payment pays nothing any more;
- the credit balance is what succeeded payments left unapplied and unrefunded, never negative;
- and each step did what it says, figured from the state before it: a payment goes to the oldest invoice first,
  a refund takes what is unapplied before what paid invoices (the newest invoice first), a reversal makes the
  invoices owe again what the payment paid, a credit note beyond what is due releases the rest to the balance.

Each example runs in a savepoint that is rolled back, so every example starts from the same two invoices."""

import datetime as dt
from decimal import Decimal as D

import pytest
from django.db import transaction
from django.db.models import Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.models import CreditNote, Invoice, Payment, PaymentAllocation, Refund
from billing.selectors import credit_balance
from billing.services.credit_notes import credit_note_issue
from billing.services.payments import account_balance_refund, payment_record, payment_refund, payment_reverse
from common.errors import BillingError
from common.periods import month_period
from tests.accounts.factories import AccountFactory
from tests.billing.cycle import JAN_1, UTC, close, ingest, subscribe
from tests.tenants.factories import TenantFactory
from tests.usage.factories import usage_event

pytestmark = pytest.mark.django_db
ZERO = D("0")
CENT = D("0.01")
START = dt.datetime(2026, 12, 2, 9, tzinfo=UTC)
LEDGER_EXAMPLES = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


class RolledBack(Exception):
    """Raised at the end of an example to roll its savepoint back."""


@pytest.fixture
def books(plan):
    """Northwind on Business: October $299.00 and November $299.00 + 6,000 messages × $0.03 = $479.00."""
    account = AccountFactory(name="Northwind")
    subscribe(account, plan("messaging-business"), at=dt.datetime(2026, 10, 2, tzinfo=UTC))
    TenantFactory(account=account, public_id="ten_nw", activated_at=JAN_1)
    close(period=month_period(2026, 10), now=dt.datetime(2026, 11, 1, 0, 5, tzinfo=UTC))
    ingest(account, [usage_event(transaction_id="m1", tenant="ten_nw", quantity=31_000, at="2026-11-10T10:00Z")])
    close()
    invoices = list(Invoice.objects.filter(account=account).order_by("period_start"))
    assert [(i.status, i.total) for i in invoices] == [("finalized", D("299.00")), ("finalized", D("479.00"))]
    return account, invoices


def cents(n: int) -> D:
    return D(n) / 100


amounts = st.integers(min_value=1, max_value=90_000).map(cents)
percent = st.integers(min_value=1, max_value=100)
steps = st.one_of(
    st.tuples(st.just("pay"), amounts),
    st.tuples(
        st.just("pay_allocated"),
        st.lists(st.tuples(st.integers(0, 1), percent), max_size=3),
        st.integers(min_value=0, max_value=20_000).map(cents),
    ),
    st.tuples(
        st.just("pay_too_much"), st.integers(0, 1), st.integers(min_value=1, max_value=5_000).map(cents), st.booleans()
    ),
    st.tuples(st.just("refund_balance"), amounts),
    st.tuples(st.just("refund_payment"), st.integers(0, 7), amounts, st.booleans()),
    st.tuples(st.just("reverse"), st.integers(0, 7)),
    st.tuples(st.just("credit"), st.integers(0, 1), percent),
)


# --- what the ledger holds -----------------------------------------------------------------------------------


def _sum(qs, field="amount"):
    return qs.aggregate(total=Sum(field, default=ZERO))["total"]


def snapshot(account, invoices):
    state = {"invoices": {}, "payments": {}}
    for invoice in invoices:
        invoice.refresh_from_db()
        state["invoices"][invoice.pk] = {
            "total": invoice.total,
            "paid": invoice.amount_paid,
            "credited": invoice.amount_credited,
            "due": invoice.amount_due,
            "status": invoice.status,
        }
    for payment in Payment.objects.filter(account=account).order_by("pk"):
        nets = {invoice.pk: _sum(payment.allocations.filter(invoice=invoice)) for invoice in invoices}
        refunded = _sum(payment.refunds.filter(status=Refund.Status.SUCCEEDED))
        state["payments"][payment.pk] = {
            "amount": payment.amount,
            "status": payment.status,
            "nets": nets,
            "refunded": refunded,
            "has_refunds": payment.refunds.exists(),
            "unapplied": payment.amount - sum(nets.values(), ZERO) - refunded,
        }
    state["balance"] = sum(
        (p["unapplied"] for p in state["payments"].values() if p["status"] == Payment.Status.SUCCEEDED), ZERO
    )
    return state


def check_invariants(account, invoices, state):
    for invoice in invoices:
        row = state["invoices"][invoice.pk]
        allocated = _sum(PaymentAllocation.objects.filter(invoice=invoice))
        credited = _sum(CreditNote.objects.filter(invoice=invoice, status=CreditNote.Status.ISSUED), "total")
        assert row["paid"] == allocated
        assert row["credited"] == credited
        assert row["due"] == row["total"] - allocated - credited
        assert row["due"] >= 0
        assert row["status"] == (Invoice.Status.PAID if row["due"] == 0 else Invoice.Status.FINALIZED)
    for payment in state["payments"].values():
        assert sum(payment["nets"].values(), ZERO) + payment["refunded"] <= payment["amount"]
        assert all(net >= 0 for net in payment["nets"].values())
        if payment["status"] == Payment.Status.REVERSED:
            assert all(net == 0 for net in payment["nets"].values())
        if payment["status"] == Payment.Status.REFUNDED:
            assert payment["refunded"] == payment["amount"]
    assert state["balance"] >= 0
    assert credit_balance(account) == state["balance"]


# --- what each step should do, figured from the state before it ----------------------------------------------


def expect_paid(before, shares, amount):
    """``shares``: invoice pk → amount applied to it."""
    after = {pk: row["due"] - shares.get(pk, ZERO) for pk, row in before["invoices"].items()}
    return after, before["balance"] + amount - sum(shares.values(), ZERO)


def run_step(step, account, invoices, before, now):
    """Perform ``step``; return the expected dues per invoice and credit balance (unchanged when refused)."""
    dues = {pk: row["due"] for pk, row in before["invoices"].items()}
    balance = before["balance"]
    payments = list(before["payments"])
    kind = step[0]

    if kind == "pay":
        amount = step[1]
        payment_record(account=account, amount=amount, provider="bank_transfer", reference="wire", now=now)
        shares, left = {}, amount
        for invoice in invoices:  # October is due first
            share = min(left, dues[invoice.pk])
            if share > 0:
                shares[invoice.pk], left = share, left - share
        return expect_paid(before, shares, amount)

    if kind == "pay_allocated":
        _, picks, extra = step
        remaining = dict(dues)
        allocation, shares = [], {}
        for index, pct in picks:
            invoice = invoices[index]
            share = max(CENT, (remaining[invoice.pk] * pct / 100).quantize(CENT))
            if remaining[invoice.pk] < share:
                continue
            remaining[invoice.pk] -= share
            allocation.append((invoice, share))
            shares[invoice.pk] = shares.get(invoice.pk, ZERO) + share
        amount = sum(shares.values(), ZERO) + extra
        if amount <= 0:
            return dues, balance
        payment_record(
            account=account, amount=amount, provider="check", reference="check", allocations=allocation, now=now
        )
        return expect_paid(before, shares, amount)

    if kind == "pay_too_much":
        # More than is due on one invoice, in one allocation or in two: refused, nothing changes.
        _, index, extra, split = step
        invoice = invoices[index]
        due = dues[invoice.pk]
        allocation = [(invoice, due), (invoice, extra)] if split and due > 0 else [(invoice, due + extra)]
        with pytest.raises(BillingError) as caught:
            payment_record(
                account=account,
                amount=due + extra,
                provider="check",
                reference="check",
                allocations=allocation,
                now=now,
            )
        assert caught.value.code == ("allocation_exceeds_due" if due > 0 else "invoice_not_payable")
        return dues, balance

    if kind == "refund_balance":
        amount = step[1]
        if amount > balance:
            with pytest.raises(BillingError) as caught:
                account_balance_refund(account=account, amount=amount, reason="asked", now=now)
            assert caught.value.code == "refund_exceeds_balance"
            return dues, balance
        account_balance_refund(account=account, amount=amount, reason="asked", now=now)
        return dues, balance - amount

    if kind == "refund_payment":
        _, index, amount, release = step
        if not payments:
            return dues, balance
        pk = payments[index % len(payments)]
        row = before["payments"][pk]
        payment = Payment.objects.get(pk=pk)
        applied = sum(row["nets"].values(), ZERO)
        refusal = None
        if row["status"] != Payment.Status.SUCCEEDED:
            refusal = "payment_not_refundable"
        elif amount > row["unapplied"] and not release:
            refusal = "refund_exceeds_unapplied"
        elif amount > row["unapplied"] + applied:
            refusal = "refund_exceeds_payment"
        if refusal:
            with pytest.raises(BillingError) as caught:
                payment_refund(payment=payment, amount=amount, reason="r", release_invoices=release, now=now)
            assert caught.value.code == refusal
            return dues, balance
        payment_refund(payment=payment, amount=amount, reason="r", release_invoices=release, now=now)
        left = amount - min(amount, row["unapplied"])
        for invoice in reversed(invoices):  # the newest invoice gives its share back first
            share = min(left, row["nets"][invoice.pk])
            dues[invoice.pk] += share
            left -= share
        return dues, balance - min(amount, row["unapplied"])

    if kind == "reverse":
        if not payments:
            return dues, balance
        pk = payments[step[1] % len(payments)]
        row = before["payments"][pk]
        payment = Payment.objects.get(pk=pk)
        if row["status"] != Payment.Status.SUCCEEDED or row["has_refunds"]:
            with pytest.raises(BillingError) as caught:
                payment_reverse(payment=payment, reason="wrong account", now=now)
            assert caught.value.code == "payment_not_reversible"
            return dues, balance
        payment_reverse(payment=payment, reason="wrong account", now=now)
        for invoice_pk, net in row["nets"].items():
            dues[invoice_pk] += net
        return dues, balance - row["unapplied"]

    if kind == "credit":
        _, index, pct = step
        invoice = invoices[index]
        row = before["invoices"][invoice.pk]
        left = row["total"] - row["credited"]
        if left <= 0:
            return dues, balance
        amount = max(CENT, (left * pct / 100).quantize(CENT))
        credit_note_issue(invoice=invoice, lines=[(None, "credit", amount)], reason="credit", now=now)
        released = max(amount - row["due"], ZERO)
        dues[invoice.pk] = max(row["due"] - amount, ZERO)
        return dues, balance + released

    raise AssertionError(kind)


@LEDGER_EXAMPLES
@given(sequence=st.lists(steps, min_size=1, max_size=8))
def test_the_ledger_adds_up_after_every_step(books, sequence):
    account, invoices = books
    try:
        with transaction.atomic():
            state = snapshot(account, invoices)
            check_invariants(account, invoices, state)
            for position, step in enumerate(sequence):
                now = START + dt.timedelta(hours=position)
                dues, balance = run_step(step, account, invoices, state, now)
                state = snapshot(account, invoices)
                check_invariants(account, invoices, state)
                assert {pk: row["due"] for pk, row in state["invoices"].items()} == dues, step
                assert state["balance"] == balance, step
            raise RolledBack
    except RolledBack:
        pass
