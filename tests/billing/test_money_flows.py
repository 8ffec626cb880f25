"""Money flows end to end, where two of them meet: a card or debit payment that lands after the invoice was paid
by bank transfer, written off or credited; a retry while the previous attempt's debit is still processing; a
refund of money that paid a later invoice through the credit balance; EUR and zero-decimal JPY through
Stripe (faked at its HTTP boundary, tests/billing/stripe_fake.py); the month's close with many accounts, some
with a credit balance; an account suspended after its retries, paid in part and then in full.

Northwind is on Business with 20 % tax: November is $479.00 + $95.80 = $574.80, finalized on 1 December
00:05 UTC, when the first attempt charges its card; a declined attempt is retried on 4, 6 and 8 December."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
import time_machine
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext

from billing.models import (
    BankStatementLine,
    Collection,
    EmailDelivery,
    Invoice,
    Payment,
    PaymentAllocation,
    PaymentProfile,
    Refund,
)
from billing.selectors import credit_balance
from billing.services.bank_statements import NOTE_NOT_OPEN, bank_statement_import, bank_statement_line_match
from billing.services.collection import collection_retry_now, collection_write_off, collections_run_due
from billing.services.credit_notes import credit_note_issue
from billing.services.invoices import invoice_mark_uncollectible
from billing.services.payments import invoice_payment_record, invoices_apply_balance, payment_record
from billing.tasks import collections_due_task
from common.models import OutboxEvent
from tests.accounts.factories import AccountFactory
from tests.billing.cycle import CLOSE_AT, DECEMBER, JAN_1, NOVEMBER, UTC, close, subscribe
from tests.billing.factories import PlanVersionFactory, finalized_invoice
from tests.billing.stripe_fake import stripe_fake_start, webhook_endpoint_create, webhook_post
from tests.usage.factories import usage_event

pytestmark = pytest.mark.django_db

DEC_2 = dt.datetime(2026, 12, 2, 10, tzinfo=UTC)
DEC_3 = dt.datetime(2026, 12, 3, 9, tzinfo=UTC)
DEC_4 = dt.datetime(2026, 12, 4, 0, 15, tzinfo=UTC)  # the first retry's 15-minute run
DEC_5 = dt.datetime(2026, 12, 5, 9, 30, tzinfo=UTC)
JAN_CLOSE = dt.datetime(2027, 1, 1, 0, 5, tzinfo=UTC)
BANK = Payment.Provider.BANK_TRANSFER


@pytest.fixture
def fake(httpserver, settings, monkeypatch):
    return stripe_fake_start(httpserver, settings, monkeypatch)


@pytest.fixture
def run(django_capture_on_commit_callbacks):
    """Run ``step`` at ``moment`` on the test clock, with what it queues after commit (tasks, signals)."""

    def at(moment: dt.datetime, step):
        with time_machine.travel(moment, tick=False), django_capture_on_commit_callbacks(execute=True):
            return step()

    return at


@pytest.fixture
def deliver(db, run):
    """Stripe posts a signed event to dj-stripe's endpoint at ``moment``; returns the HTTP status."""
    endpoint, client = webhook_endpoint_create(), Client()

    def post(moment: dt.datetime, event: dict) -> int:
        return run(moment, lambda: webhook_post(client, endpoint, event).status_code)

    return post


def _with_card(account, fake) -> PaymentProfile:
    customer, pm = fake.customer_with_card()
    return PaymentProfile.objects.create(
        account=account,
        stripe_customer_id=customer,
        auto_collection=True,
        payment_method_id=pm,
        payment_method_type="card",
        payment_method_brand="visa",
        payment_method_last4="4242",
    )


@pytest.fixture
def account(fake):
    account = AccountFactory(name="Northwind", tax_rate=D("20"), billing_emails=["ap@northwind.example"])
    _with_card(account, fake)
    return account


def _bill_november(account, plan, run) -> Invoice:
    messages = usage_event(transaction_id="m1", tenant="ten_nw", quantity=31_000, at="2026-11-10T10:00:00Z")
    invoice = run(CLOSE_AT, lambda: finalized_invoice(plan("messaging-business"), account=account, usage=[messages]))
    invoice.refresh_from_db()
    assert (invoice.number, invoice.total, invoice.amount_due) == ("INV-2026-000001", D("574.80"), D("574.80"))
    return invoice


def _processing_next(fake) -> None:
    """Stripe answers the next charge with ``processing`` (a SEPA debit: its outcome comes days later)."""
    original = fake._intent

    def intent(**kwargs):
        fake._intent = original
        created = original(**kwargs)
        created.update(status="processing", amount_received=0)
        fake.objects[created["latest_charge"]].update(status="pending", paid=False)
        return created

    fake._intent = intent


def _debit_settles(fake, intent_id: str, *, succeeded: bool) -> dict:
    """The processing debit succeeds (or bounces) at Stripe: the PaymentIntent as its webhook carries it."""
    intent = fake.objects[intent_id]
    if succeeded:
        intent.update(status="succeeded", amount_received=intent["amount"])
        fake.objects[intent["latest_charge"]].update(status="succeeded", paid=True)
    else:
        intent.update(
            status="requires_payment_method",
            last_payment_error={"code": "insufficient_funds", "message": "The debit was returned."},
        )
        fake.objects[intent["latest_charge"]].update(status="failed")
    return fake.get(intent_id)


def _money(invoice) -> tuple:
    invoice.refresh_from_db()
    return invoice.status, invoice.amount_paid, invoice.amount_due


def _collection(invoice) -> tuple:
    collection = Collection.objects.get(invoice=invoice)
    return collection.state, collection.attempts, collection.next_attempt_at


def _allocations(payment) -> list[tuple]:
    return list(payment.allocations.order_by("pk").values_list("invoice__number", "kind", "amount"))


# --- 1. a card payment that lands after the invoice was paid by bank transfer ---------------------------------


def test_a_debit_that_succeeds_after_a_bank_transfer_paid_the_invoice_becomes_credit_balance(
    fake, account, plan, run, deliver
):
    _processing_next(fake)
    invoice = _bill_november(account, plan, run)
    (debit,) = Payment.objects.filter(invoice=invoice)
    assert (debit.status, debit.amount, _collection(invoice)[0]) == ("pending", D("574.80"), "scheduled")

    run(DEC_3, lambda: invoice_payment_record(invoice=invoice, amount=D("574.80"), reference="wire NW-1203"))
    assert _money(invoice) == ("paid", D("574.80"), D("0.00"))
    assert _collection(invoice) == ("succeeded", 1, None)

    succeeded = _debit_settles(fake, debit.external_id, succeeded=True)
    assert deliver(DEC_5, fake.event("payment_intent.succeeded", succeeded)) == 200

    debit.refresh_from_db()
    assert (debit.status, debit.amount, _allocations(debit)) == ("succeeded", D("574.80"), [])
    assert credit_balance(account) == D("574.80")
    assert _money(invoice) == ("paid", D("574.80"), D("0.00"))  # not overpaid
    assert _collection(invoice) == ("succeeded", 1, None)
    event = OutboxEvent.objects.get(type="billing.payment_succeeded", payload__data__payment_id=debit.public_id)
    assert (event.payload["data"]["invoice_id"], event.payload["data"]["amount_paid"]) == (None, "574.80")
    assert run(dt.datetime(2026, 12, 10, 0, 15, tzinfo=UTC), collections_due_task) == 0
    assert len(fake.posts("/v1/payment_intents")) == 1  # never charged again


def test_a_debit_that_bounces_after_a_bank_transfer_paid_the_invoice_asks_the_customer_for_nothing(
    fake, account, plan, run, deliver
):
    _processing_next(fake)
    invoice = _bill_november(account, plan, run)
    (debit,) = Payment.objects.filter(invoice=invoice)
    run(DEC_3, lambda: invoice_payment_record(invoice=invoice, amount=D("574.80"), reference="wire NW-1203"))

    returned = _debit_settles(fake, debit.external_id, succeeded=False)
    assert deliver(DEC_5, fake.event("payment_intent.payment_failed", returned)) == 200

    debit.refresh_from_db()
    assert (debit.status, debit.failure_code) == ("failed", "insufficient_funds")
    assert _money(invoice) == ("paid", D("574.80"), D("0.00"))
    assert _collection(invoice) == ("succeeded", 1, None)
    # No "we could not collect … please pay the invoice" e-mail for an invoice that is paid.
    assert not EmailDelivery.objects.filter(kind="payment_failed").exists()
    assert len(fake.posts("/v1/payment_intents")) == 1


# --- 2. no second charge while an attempt is still processing ------------------------------------------------


def test_retry_now_while_the_debit_is_processing_charges_once(fake, account, plan, run, deliver):
    _processing_next(fake)
    invoice = _bill_november(account, plan, run)
    (debit,) = Payment.objects.filter(invoice=invoice)

    collection = Collection.objects.get(invoice=invoice)
    run(DEC_2, lambda: collection_retry_now(collection=collection))
    assert run(DEC_2 + dt.timedelta(minutes=15), collections_due_task) == 1  # queued, and finds the attempt open
    assert run(DEC_3, collections_due_task) == 1

    charges = fake.posts("/v1/payment_intents")
    assert [c.idempotency_key for c in charges] == [f"invoice-{invoice.pk}-attempt-1"]
    assert list(Payment.objects.filter(invoice=invoice).values_list("attempt", "status")) == [(1, "pending")]

    succeeded = _debit_settles(fake, debit.external_id, succeeded=True)
    assert deliver(DEC_5, fake.event("payment_intent.succeeded", succeeded)) == 200
    assert _money(invoice) == ("paid", D("574.80"), D("0.00"))
    assert _collection(invoice) == ("succeeded", 1, None)
    assert credit_balance(account) == D("0.00")


def test_a_scheduled_retry_waits_for_the_debit_still_processing_and_its_return_schedules_the_next(
    fake, account, plan, run, deliver
):
    fake.declines = ["card_declined"]
    invoice = _bill_november(account, plan, run)
    _processing_next(fake)
    assert run(DEC_4, collections_due_task) == 1  # attempt 2: a debit, processing
    for moment in (DEC_4 + dt.timedelta(minutes=15), dt.datetime(2026, 12, 6, 0, 15, tzinfo=UTC)):
        run(moment, collections_due_task)

    assert [c.idempotency_key for c in fake.posts("/v1/payment_intents")] == [
        f"invoice-{invoice.pk}-attempt-1",
        f"invoice-{invoice.pk}-attempt-2",
    ]
    second = Payment.objects.get(invoice=invoice, attempt=2)
    assert (second.status, second.amount) == ("pending", D("574.80"))

    returned = _debit_settles(fake, second.external_id, succeeded=False)
    assert (
        deliver(dt.datetime(2026, 12, 7, 8, tzinfo=UTC), fake.event("payment_intent.payment_failed", returned)) == 200
    )
    # The second failure: the third attempt is due on day 5 after the first failure (6 December), i.e. now.
    assert _collection(invoice) == ("retrying", 2, dt.datetime(2026, 12, 6, 0, 5, tzinfo=UTC))
    assert run(dt.datetime(2026, 12, 7, 8, 15, tzinfo=UTC), collections_due_task) == 1
    assert len(fake.posts("/v1/payment_intents")) == 3
    assert _money(invoice) == ("paid", D("574.80"), D("0.00"))


# --- 3. a credit note during the retries -------------------------------------------------------------------


def test_a_retry_after_a_credit_note_charges_the_new_amount_due(fake, account, plan, run):
    fake.declines = ["card_declined"]
    invoice = _bill_november(account, plan, run)
    assert _collection(invoice) == ("retrying", 1, dt.datetime(2026, 12, 4, 0, 5, tzinfo=UTC))

    # $100.00 credited plus its 20 % tax: $120.00 off.
    run(
        DEC_2,
        lambda: credit_note_issue(invoice=invoice, lines=[(None, "Outage on 12 November", D("100.00"))], reason="SLA"),
    )
    assert _money(invoice) == ("finalized", D("0.00"), D("454.80"))

    assert run(DEC_4, collections_due_task) == 1
    retry = fake.posts("/v1/payment_intents")[1]
    assert (retry.idempotency_key, retry.params["amount"]) == (f"invoice-{invoice.pk}-attempt-2", "45480")
    assert Payment.objects.get(invoice=invoice, attempt=2).amount == D("454.80")
    assert _money(invoice) == ("paid", D("454.80"), D("0.00"))
    assert credit_balance(account) == D("0.00")


def test_a_credit_note_that_settles_the_invoice_stops_the_retries(fake, account, plan, run):
    fake.declines = ["card_declined"]
    invoice = _bill_november(account, plan, run)

    run(DEC_2, lambda: credit_note_issue(invoice=invoice, lines=[(None, "Waived", D("479.00"))], reason="waived"))

    assert _money(invoice) == ("paid", D("0.00"), D("0.00"))
    assert _collection(invoice) == ("succeeded", 1, None)
    assert run(DEC_4, collections_due_task) == 0
    assert len(fake.posts("/v1/payment_intents")) == 1


# --- 4. write-off during dunning, and money that arrives afterwards ------------------------------------------


def test_a_write_off_during_dunning_stops_the_retries(fake, account, plan, run):
    fake.declines = ["card_declined"]
    invoice = _bill_november(account, plan, run)

    run(DEC_2, lambda: collection_write_off(collection=Collection.objects.get(invoice=invoice), reason="insolvent"))

    assert _money(invoice) == ("uncollectible", D("0.00"), D("0.00"))
    assert _collection(invoice) == ("written_off", 1, None)
    assert run(DEC_4, collections_due_task) == 0
    assert len(fake.posts("/v1/payment_intents")) == 1


def test_an_invoice_written_off_from_the_invoice_also_closes_its_collection(fake, account, plan, run):
    fake.declines = ["card_declined"]
    invoice = _bill_november(account, plan, run)

    run(DEC_2, lambda: invoice_mark_uncollectible(invoice=invoice, reason="insolvent"))

    assert _collection(invoice) == ("written_off", 1, None)
    assert run(DEC_4, collections_due_task) == 0
    assert len(fake.posts("/v1/payment_intents")) == 1


def test_a_debit_that_succeeds_after_the_write_off_becomes_credit_balance(fake, account, plan, run, deliver):
    _processing_next(fake)
    invoice = _bill_november(account, plan, run)
    (debit,) = Payment.objects.filter(invoice=invoice)
    run(DEC_2, lambda: collection_write_off(collection=Collection.objects.get(invoice=invoice), reason="insolvent"))

    succeeded = _debit_settles(fake, debit.external_id, succeeded=True)
    assert deliver(DEC_5, fake.event("payment_intent.succeeded", succeeded)) == 200

    debit.refresh_from_db()
    assert (debit.status, _allocations(debit)) == ("succeeded", [])
    assert _money(invoice) == ("uncollectible", D("0.00"), D("0.00"))
    assert _collection(invoice) == ("written_off", 1, None)
    assert credit_balance(account) == D("574.80")


def test_a_bank_transfer_for_a_written_off_invoice_matched_by_hand_becomes_credit_balance(fake, account, plan, run):
    fake.declines = ["card_declined"]
    invoice = _bill_november(account, plan, run)
    run(DEC_2, lambda: collection_write_off(collection=Collection.objects.get(invoice=invoice), reason="insolvent"))

    imported = run(
        DEC_5, lambda: bank_statement_import(content="2026-12-05,574.80,INV-2026-000001 Northwind\n", currency="USD")
    )
    (line,) = imported.lines
    assert (line.status, line.note) == (
        "unmatched",
        NOTE_NOT_OPEN.format(number=invoice.number, status="uncollectible"),
    )

    run(DEC_5, lambda: bank_statement_line_match(line=line, invoice=invoice, note="late payment"))

    line = BankStatementLine.objects.get(pk=line.pk)
    assert line.status == "matched"
    assert (line.payment.status, line.payment.amount, _allocations(line.payment)) == ("succeeded", D("574.80"), [])
    assert _money(invoice) == ("uncollectible", D("0.00"), D("0.00"))
    assert credit_balance(account) == D("574.80")


# --- 5. refunds at Stripe ----------------------------------------------------------------------------------


def test_a_refund_of_a_payment_that_paid_a_later_invoice_through_the_balance_reopens_that_invoice(
    fake, account, plan, run, deliver
):
    """The debit that landed after the bank transfer became credit; December's invoice ($299.00 + 20 % =
    $358.80) took $358.80 of it at finalization, $216.00 stayed credit. Stripe then refunds the debit: first
    $300.00 (the $216.00 of credit and $84.00 of December's), then the remaining $274.80."""
    _processing_next(fake)
    november = _bill_november(account, plan, run)
    (debit,) = Payment.objects.filter(invoice=november)
    run(DEC_3, lambda: invoice_payment_record(invoice=november, amount=D("574.80"), reference="wire NW-1203"))
    deliver(DEC_5, fake.event("payment_intent.succeeded", _debit_settles(fake, debit.external_id, succeeded=True)))
    debit.refresh_from_db()

    run(JAN_CLOSE, lambda: close(period=DECEMBER, now=JAN_CLOSE))
    december = Invoice.objects.get(account=account, period_start=DECEMBER.start)
    assert (december.total, *_money(december)) == (D("358.80"), "paid", D("358.80"), D("0.00"))
    assert _allocations(debit) == [("INV-2027-000001", "balance", D("358.80"))]
    assert credit_balance(account) == D("216.00")

    first = fake.refund(debit.stripe_charge_id, 30000)
    assert deliver(dt.datetime(2027, 1, 5, tzinfo=UTC), fake.event("charge.refunded", first)) == 200
    assert _money(december) == ("finalized", D("274.80"), D("84.00"))
    assert credit_balance(account) == D("0.00")

    rest = fake.refund(debit.stripe_charge_id, 27480)
    assert deliver(dt.datetime(2027, 1, 6, tzinfo=UTC), fake.event("charge.refunded", rest)) == 200
    assert deliver(dt.datetime(2027, 1, 6, 1, tzinfo=UTC), fake.event("charge.refunded", rest)) == 200  # again

    assert _money(december) == ("finalized", D("0.00"), D("358.80"))
    assert _money(november) == ("paid", D("574.80"), D("0.00"))  # the bank transfer still pays November
    debit.refresh_from_db()
    assert debit.status == "refunded"
    assert list(Refund.objects.filter(payment=debit).order_by("pk").values_list("amount", flat=True)) == [
        D("300.00"),
        D("274.80"),
    ]
    assert sorted(PaymentAllocation.objects.filter(payment=debit).values_list("kind", "amount")) == [
        ("balance", D("358.80")),
        ("refund", D("-274.80")),
        ("refund", D("-84.00")),
    ]
    assert credit_balance(account) == D("0.00")


# --- 6. currencies -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "tax_rate", "base_fee", "total", "charged", "refunded", "refund"),
    [
        # €150.00: 15000 cents both ways; a refund of 2550 cents is €25.50.
        ("EUR", D("0"), D("150.00"), D("150.00"), "15000", 2550, D("25.50")),
        # ¥12,345 + 10 % tax (¥1,234.5, rounded half up) = ¥13,580: yen have no minor unit.
        ("JPY", D("10"), D("12345"), D("13580"), "13580", 580, D("580")),
    ],
)
def test_stripe_amounts_are_in_the_currencys_minor_unit_both_ways(
    fake, run, deliver, currency, tax_rate, base_fee, total, charged, refunded, refund
):
    account = AccountFactory(name="Globex", currency=currency, tax_rate=tax_rate)
    _with_card(account, fake)
    version = PlanVersionFactory(currency=currency, base_fee=base_fee)
    invoice = run(CLOSE_AT, lambda: finalized_invoice(version, account=account))

    (charge,) = fake.posts("/v1/payment_intents")
    assert (charge.params["amount"], charge.params["currency"]) == (charged, currency.lower())
    (payment,) = Payment.objects.filter(invoice=invoice)
    assert (payment.status, payment.amount, payment.currency) == ("succeeded", total, currency)
    assert _money(invoice) == ("paid", total, D("0"))

    part = fake.refund(payment.stripe_charge_id, refunded)
    assert deliver(DEC_5, fake.event("charge.refunded", part)) == 200
    (recorded,) = Refund.objects.filter(payment=payment)
    assert (recorded.amount, recorded.currency) == (refund, currency)
    assert _money(invoice) == ("finalized", total - refund, refund)


# --- 7. the month's close with many accounts -------------------------------------------------------------


class _Rollback(Exception):
    pass


def test_the_close_applies_credit_balances_and_costs_the_same_queries_however_many_accounts_have_none(plan):
    """205 accounts on Business ($299.00, no tax); four of them hold credit when November closes."""
    version = plan("messaging-business")
    accounts = [AccountFactory(name=f"Account {n:03}") for n in range(205)]
    for account in accounts:
        subscribe(account, version, started_at=JAN_1)
    received = dt.datetime(2026, 11, 20, tzinfo=UTC)
    credits = [(0, "100.00"), (1, "299.00"), (2, "500.00"), (3, "50.00"), (3, "60.00")]
    payments = [
        payment_record(
            account=accounts[n], amount=D(a), provider=BANK, allocations=[], now=received + dt.timedelta(hours=i)
        )
        for i, (n, a) in enumerate(credits)
    ]

    close()

    invoices = {i.account_id: i for i in Invoice.objects.filter(period_start=NOVEMBER.start)}
    assert len(invoices) == 205
    assert _money(invoices[accounts[0].pk]) == ("finalized", D("100.00"), D("199.00"))
    assert _money(invoices[accounts[1].pk]) == ("paid", D("299.00"), D("0.00"))
    assert _money(invoices[accounts[2].pk]) == ("paid", D("299.00"), D("0.00"))
    assert _money(invoices[accounts[3].pk]) == ("finalized", D("110.00"), D("189.00"))
    assert _allocations(payments[3]) == [(invoices[accounts[3].pk].number, "balance", D("50.00"))]
    assert _allocations(payments[4]) == [(invoices[accounts[3].pk].number, "balance", D("60.00"))]
    assert [credit_balance(accounts[n]) for n in range(5)] == [D("0.00"), D("0.00"), D("201.00"), D("0.00"), D("0.00")]
    assert {_money(invoices[a.pk]) for a in accounts[4:]} == {("finalized", D("0.00"), D("299.00"))}

    def apply(pks: list[int]) -> tuple[list[PaymentAllocation], int]:
        batch = list(Invoice.objects.select_for_update().filter(pk__in=pks).order_by("pk"))
        with CaptureQueriesContext(connection) as captured:
            allocations = invoices_apply_balance(invoices=batch, now=CLOSE_AT)
        return allocations, len(captured)

    every = [i.pk for i in invoices.values()]
    few = [invoices[a.pk].pk for a in accounts[:10]]
    with transaction.atomic():
        assert apply(every) == ([], apply(few)[1])  # nobody has a balance: as cheap for 205 as for 10
        assert apply(every)[1] <= 4

    # Three accounts with open invoices get credit; the cost does not grow with the 200 without.
    for n, amount in ((4, "20.00"), (5, "30.00"), (0, "199.00")):
        payment_record(account=accounts[n], amount=D(amount), provider=BANK, allocations=[], now=DEC_2)
    with pytest.raises(_Rollback), transaction.atomic():
        _, for_few = apply(few)
        raise _Rollback
    allocations, for_every = apply(every)
    assert for_every == for_few
    assert sorted((a.invoice.account_id, a.amount) for a in allocations) == sorted(
        [(accounts[0].pk, D("199.00")), (accounts[4].pk, D("20.00")), (accounts[5].pk, D("30.00"))]
    )
    assert _money(invoices[accounts[0].pk]) == ("paid", D("299.00"), D("0.00"))
    assert _money(invoices[accounts[4].pk]) == ("finalized", D("20.00"), D("279.00"))
    assert _money(invoices[accounts[5].pk]) == ("finalized", D("30.00"), D("269.00"))
    assert _money(invoices[accounts[6].pk]) == ("finalized", D("0.00"), D("299.00"))


# --- 8. account status ---------------------------------------------------------------------------------------


def test_a_suspended_account_stays_suspended_after_a_part_payment_and_is_active_once_paid(fake, account, plan, run):
    fake.declines = ["card_declined"] * 4
    invoice = _bill_november(account, plan, run)
    for day in (4, 6, 8):
        run(dt.datetime(2026, 12, day, 0, 15, tzinfo=UTC), collections_due_task)
    account.refresh_from_db()
    assert (account.status, _collection(invoice)[0]) == ("suspended", "exhausted")

    def transfer(amount: str, reference: str):
        return payment_record(
            account=account, amount=D(amount), provider=BANK, reference=reference, allocations=[(invoice, D(amount))]
        )

    run(dt.datetime(2026, 12, 9, 9, tzinfo=UTC), lambda: transfer("300.00", "NW-1209"))
    account.refresh_from_db()
    assert _money(invoice) == ("finalized", D("300.00"), D("274.80"))
    assert (account.status, _collection(invoice)[0]) == ("suspended", "exhausted")

    run(dt.datetime(2026, 12, 10, 9, tzinfo=UTC), lambda: transfer("274.80", "NW-1210"))
    account.refresh_from_db()
    assert _money(invoice) == ("paid", D("574.80"), D("0.00"))
    assert _collection(invoice)[0] == "succeeded"
    assert (account.status, account.status_reason) == ("active", "overdue invoices settled")
    assert collections_run_due(now=dt.datetime(2026, 12, 11, tzinfo=UTC)) == 0
