"""The payments ledger (billing/services/payments.py): money received goes to an account's invoices (oldest
first, or as staff allocate it), what is left over is its credit balance, applied to its next invoice; refunds,
reversals and credit notes take money back off invoices, which then owe it again.

Every account here is Northwind on Business ($299.00 a month), subscribed since January 1, no tax: October's
invoice INV-2026-000001 is $299.00 due December 1 00:05 UTC; November's INV-2026-000002 is $299.00 plus
6,000 messages over the 25,000 included at $0.03 = $479.00, due December 31 00:05 UTC."""

import datetime as dt
from decimal import Decimal as D

import pytest
from django.contrib.auth.models import Group

from accounts.permissions import BILLING_STAFF, FINANCE_ADMIN
from billing.models import Collection, EmailDelivery, Invoice, Payment, PaymentAllocation, Refund
from billing.selectors import credit_balance
from billing.services.credit_notes import credit_note_issue
from billing.services.invoices import invoice_finalize, invoice_mark_uncollectible
from billing.services.payments import (
    ERR_ALLOCATION_ACCOUNT,
    ERR_ALLOCATION_AMOUNT,
    ERR_ALLOCATION_TOO_MUCH,
    ERR_AMOUNT,
    ERR_BALANCE_TOO_LOW,
    ERR_CURRENCY,
    ERR_DUPLICATE,
    ERR_RECORD_DENIED,
    ERR_REFUND_DENIED,
    ERR_REFUND_TOO_MUCH,
    account_balance_refund,
    payment_record,
    payment_refund,
    payment_reverse,
)
from common.errors import BillingError
from common.models import OutboxEvent
from common.periods import month_period
from tests.accounts.factories import AccountFactory, StaffUserFactory
from tests.billing.cycle import JAN_1, UTC, close, ingest, subscribe
from tests.tenants.factories import TenantFactory
from tests.usage.factories import usage_event

pytestmark = pytest.mark.django_db

OCTOBER = month_period(2026, 10)
OCT_2 = dt.datetime(2026, 10, 2, tzinfo=UTC)
NOV_1 = dt.datetime(2026, 11, 1, 0, 5, tzinfo=UTC)
DEC_5 = dt.datetime(2026, 12, 5, 9, 30, tzinfo=UTC)
DEC_8 = dt.datetime(2026, 12, 8, 14, tzinfo=UTC)
BANK = Payment.Provider.BANK_TRANSFER


def northwind(plan, *, name="Northwind", tenant="ten_nw", november_review_hours=0):
    """The account with October finalized and November closed (finalized, or a draft in review)."""
    account = AccountFactory(name=name)
    subscribe(account, plan("messaging-business"), at=OCT_2)
    TenantFactory(account=account, public_id=tenant, activated_at=JAN_1)
    close(period=OCTOBER, now=NOV_1)
    ingest(
        account, [usage_event(transaction_id=f"{tenant}-m1", tenant=tenant, quantity=31_000, at="2026-11-10T10:00Z")]
    )
    close(review_hours=november_review_hours)
    october, november = Invoice.objects.filter(account=account).order_by("period_start")
    return account, october, november


@pytest.fixture
def books(plan):
    account, october, november = northwind(plan)
    assert (october.number, october.status, october.total) == ("INV-2026-000001", "finalized", D("299.00"))
    assert (november.number, november.status, november.total) == ("INV-2026-000002", "finalized", D("479.00"))
    return account, october, november


@pytest.fixture
def finance_admin():
    return StaffUserFactory(username="fiona", groups=[Group.objects.get(name=FINANCE_ADMIN)])


@pytest.fixture
def billing_staff():
    return StaffUserFactory(username="bianca", groups=[Group.objects.get(name=BILLING_STAFF)])


def money(invoice):
    """(status, amount paid, amount due) as the invoice stands in the database."""
    invoice.refresh_from_db()
    return invoice.status, invoice.amount_paid, invoice.amount_due


def allocations(payment):
    return list(payment.allocations.order_by("pk").values_list("invoice__number", "kind", "amount"))


def record(account, amount, *, reference="wire 1001", now=DEC_5, **kwargs):
    return payment_record(account=account, amount=D(amount), provider=BANK, reference=reference, now=now, **kwargs)


# --- payments over two invoices ------------------------------------------------------------------------------


def test_a_payment_settles_the_oldest_invoice_first_and_pays_part_of_the_next(books):
    account, october, november = books
    first = record(account, "400.00")
    assert allocations(first) == [
        ("INV-2026-000001", "payment", D("299.00")),
        ("INV-2026-000002", "payment", D("101.00")),
    ]
    # October $299.00 in full; November $479.00 − $101.00 = $378.00 still due
    assert money(october) == ("paid", D("299.00"), D("0.00"))
    assert october.paid_at == DEC_5
    assert money(november) == ("finalized", D("101.00"), D("378.00"))
    assert credit_balance(account) == D("0")

    second = record(account, "378.00", reference="wire 1002", now=DEC_8)
    assert allocations(second) == [("INV-2026-000002", "payment", D("378.00"))]
    assert money(november) == ("paid", D("479.00"), D("0.00"))
    assert november.paid_at == DEC_8
    assert credit_balance(account) == D("0")


def test_allocations_name_the_invoices_a_payment_settles_and_the_rest_is_credit(books):
    account, october, november = books
    payment = record(account, "500.00", allocations=[(november, D("479.00")), (october, D("10.00"))])
    assert allocations(payment) == [
        ("INV-2026-000002", "payment", D("479.00")),
        ("INV-2026-000001", "payment", D("10.00")),
    ]
    assert money(november) == ("paid", D("479.00"), D("0.00"))
    # October: $299.00 − $10.00
    assert money(october) == ("finalized", D("10.00"), D("289.00"))
    # $500.00 − $479.00 − $10.00
    assert credit_balance(account) == D("11.00")


def test_an_overpayment_of_everything_due_is_the_accounts_credit_balance(books):
    account, october, november = books
    record(account, "800.00")
    assert money(october)[0] == money(november)[0] == "paid"
    # $800.00 − $299.00 − $479.00
    assert credit_balance(account) == D("22.00")


# --- the credit balance pays the next invoice ----------------------------------------------------------------


def test_the_credit_balance_pays_part_of_the_next_invoice_when_staff_finalize_it(plan):
    account, october, november = northwind(plan, november_review_hours=24)
    assert november.status == "draft"
    overpayment = record(account, "399.00", now=dt.datetime(2026, 11, 20, tzinfo=UTC))
    assert money(october) == ("paid", D("299.00"), D("0.00"))
    assert credit_balance(account) == D("100.00")

    invoice_finalize(invoice=november, now=dt.datetime(2026, 12, 2, 9, tzinfo=UTC))
    # $479.00 − the $100.00 balance
    assert money(november) == ("finalized", D("100.00"), D("379.00"))
    assert list(november.allocations.values_list("payment", "kind", "amount")) == [
        (overpayment.pk, "balance", D("100.00"))
    ]
    assert credit_balance(account) == D("0")
    generated = OutboxEvent.objects.get(type="billing.invoice_generated", payload__data__invoice_id=november.number)
    assert (generated.payload["data"]["total"], generated.payload["data"]["amount_due"]) == ("479.00", "379.00")


def test_a_credit_balance_that_covers_the_next_invoice_leaves_it_paid_at_the_billing_run(plan):
    account = AccountFactory(name="Northwind")
    subscribe(account, plan("messaging-business"), at=OCT_2)
    TenantFactory(account=account, public_id="ten_nw", activated_at=JAN_1)
    close(period=OCTOBER, now=NOV_1)
    october = Invoice.objects.get(account=account)
    record(account, "800.00", now=dt.datetime(2026, 11, 20, tzinfo=UTC))
    assert money(october) == ("paid", D("299.00"), D("0.00"))
    assert credit_balance(account) == D("501.00")

    close()  # November: $299.00, paid out of the balance when the run finalizes it
    november = Invoice.objects.get(account=account, period_start=month_period(2026, 11).start)
    assert money(november) == ("paid", D("299.00"), D("0.00"))
    assert november.paid_at == dt.datetime(2026, 12, 1, 0, 5, tzinfo=UTC)
    assert list(november.allocations.values_list("kind", "amount")) == [("balance", D("299.00"))]
    # $501.00 − $299.00
    assert credit_balance(account) == D("202.00")


# --- refunds -------------------------------------------------------------------------------------------------


def test_finance_refunds_part_of_the_credit_balance(books, finance_admin):
    account, _, _ = books
    payment = record(account, "878.00")  # $100.00 more than the $778.00 due
    assert credit_balance(account) == D("100.00")

    (refund,) = account_balance_refund(account=account, amount=D("40.00"), reason="customer asked", actor=finance_admin)
    assert (refund.payment, refund.amount, refund.status, refund.created_by) == (
        payment,
        D("40.00"),
        "succeeded",
        finance_admin,
    )
    assert credit_balance(account) == D("60.00")
    payment.refresh_from_db()
    assert payment.status == "succeeded"  # most of it paid invoices
    event = OutboxEvent.objects.get(type="billing.payment_refunded")
    assert (event.payload["data"]["amount"], event.payload["data"]["refund_id"]) == ("40.00", refund.public_id)

    with pytest.raises(BillingError) as caught:
        account_balance_refund(account=account, amount=D("60.01"), reason="again", actor=finance_admin)
    assert (caught.value.code, caught.value.status) == ("refund_exceeds_balance", 400)
    assert caught.value.message == ERR_BALANCE_TOO_LOW.format(amount="60.01", balance="60.00")
    assert caught.value.message == "A refund of 60.01 exceeds the account's credit balance (60.00)."
    assert Refund.objects.count() == 1


def test_a_refund_of_a_payment_beyond_what_it_left_unapplied_is_refused(books, finance_admin):
    account, october, _ = books
    payment = record(account, "320.00", allocations=[(october, D("299.00"))])  # $21.00 unapplied
    with pytest.raises(BillingError) as caught:
        payment_refund(payment=payment, amount=D("21.01"), reason="overpaid", actor=finance_admin)
    assert caught.value.code == "refund_exceeds_unapplied"
    assert caught.value.message == ERR_REFUND_TOO_MUCH.format(amount="21.01", payment=payment.public_id, left="21.00")
    assert caught.value.message == f"A refund of 21.01 exceeds what is unapplied on {payment.public_id} (21.00)."
    assert (Refund.objects.count(), money(october)) == (0, ("paid", D("299.00"), D("0.00")))

    refund = payment_refund(payment=payment, amount=D("21.00"), reason="overpaid", actor=finance_admin)
    assert refund.amount == D("21.00")
    assert credit_balance(account) == D("0")


def test_a_provider_refund_reopens_the_paid_invoice_it_takes_money_back_from(books):
    account, october, _ = books
    payment = payment_record(
        account=account,
        amount=D("320.00"),
        provider=Payment.Provider.STRIPE,
        payment_method="card_ending_4242",
        allocations=[(october, D("299.00"))],
        now=DEC_5,
    )
    assert money(october) == ("paid", D("299.00"), D("0.00"))

    # Stripe reports a refund of $100.00: the $21.00 unapplied, then $79.00 off October.
    refund = payment_refund(
        payment=payment,
        amount=D("100.00"),
        reason="customer dispute",
        external_id="re_1",
        release_invoices=True,
        now=DEC_8,
    )
    assert money(october) == ("finalized", D("220.00"), D("79.00"))
    assert october.paid_at is None
    assert allocations(payment) == [
        ("INV-2026-000001", "payment", D("299.00")),
        ("INV-2026-000001", "refund", D("-79.00")),
    ]
    assert credit_balance(account) == D("0")
    payment.refresh_from_db()
    assert payment.status == "succeeded"  # $220.00 of it still pays October

    # The provider tells us again: the same refund, nothing moves twice.
    again = payment_refund(
        payment=payment,
        amount=D("100.00"),
        reason="customer dispute",
        external_id="re_1",
        release_invoices=True,
        now=DEC_8,
    )
    assert again == refund
    assert money(october) == ("finalized", D("220.00"), D("79.00"))

    # The rest of it: October owes its whole $299.00 again and the payment is refunded.
    payment_refund(
        payment=payment, amount=D("220.00"), reason="rest", external_id="re_2", release_invoices=True, now=DEC_8
    )
    assert money(october) == ("finalized", D("0.00"), D("299.00"))
    payment.refresh_from_db()
    assert payment.status == "refunded"


def test_card_money_is_refunded_through_stripe_not_recorded_by_hand(books, finance_admin):
    account, october, _ = books
    card = payment_record(
        account=account,
        amount=D("320.00"),
        provider=Payment.Provider.STRIPE,
        payment_method="card_ending_4242",
        allocations=[(october, D("299.00"))],
        now=DEC_5,
    )  # $21.00 of it unapplied
    transfer = record(account, "30.00", reference="wire 1002", allocations=[])  # all of it unapplied
    assert credit_balance(account) == D("51.00")

    with pytest.raises(BillingError) as caught:
        payment_refund(payment=card, amount=D("21.00"), reason="overpaid", actor=finance_admin)
    assert (caught.value.code, caught.value.status) == ("refund_through_stripe", 409)
    assert caught.value.message == (
        f"{card.public_id} was paid through Stripe: refund it in Stripe's dashboard; the refund is recorded here "
        "when Stripe reports it."
    )
    with pytest.raises(BillingError) as caught:
        account_balance_refund(account=account, amount=D("51.00"), reason="overpaid", actor=finance_admin)
    assert caught.value.message == (
        "Only USD 30.00 of the credit balance came by bank transfer, check or other means; the rest was paid "
        "through Stripe: refund that in Stripe's dashboard, and it is recorded here when Stripe reports it."
    )
    assert Refund.objects.count() == 0

    (refund,) = account_balance_refund(account=account, amount=D("30.00"), reason="overpaid", actor=finance_admin)
    assert (refund.payment, refund.amount) == (transfer, D("30.00"))
    # Stripe reports the card refund made in its dashboard.
    payment_refund(payment=card, amount=D("21.00"), reason="overpaid", external_id="re_9", release_invoices=True)
    assert credit_balance(account) == D("0")
    assert money(october) == ("paid", D("299.00"), D("0.00"))


def test_an_invoice_paid_without_a_collection_gets_one_when_a_refund_reopens_it(books):
    account, october, november = books
    assert not Collection.objects.filter(invoice__account=account).exists()
    card = payment_record(account=account, amount=D("778.00"), provider=Payment.Provider.STRIPE, now=DEC_5)
    assert (money(october)[0], money(november)[0]) == ("paid", "paid")

    payment_refund(payment=card, amount=D("479.00"), reason="chargeback", external_id="re_7", release_invoices=True)
    assert money(november) == ("finalized", D("0.00"), D("479.00"))
    assert Collection.objects.get(invoice=november).state == "manual"  # staff can retry or write it off
    assert not Collection.objects.filter(invoice=october).exists()


# --- reversal ------------------------------------------------------------------------------------------------


def test_reversing_a_wrongly_recorded_transfer_makes_the_invoices_owe_again(books, finance_admin):
    account, october, november = books
    payment = record(account, "800.00", reference="wire 7781")
    assert credit_balance(account) == D("22.00")

    payment_reverse(payment=payment, reason="wire 7781 was Contoso's", actor=finance_admin, now=DEC_8)
    assert money(october) == ("finalized", D("0.00"), D("299.00"))
    assert money(november) == ("finalized", D("0.00"), D("479.00"))
    assert (october.paid_at, november.paid_at) == (None, None)
    assert credit_balance(account) == D("0")
    payment.refresh_from_db()
    assert (payment.status, payment.reversed_at, payment.reversal_reason) == (
        "reversed",
        DEC_8,
        "wire 7781 was Contoso's",
    )
    assert allocations(payment)[2:] == [
        ("INV-2026-000001", "reversal", D("-299.00")),
        ("INV-2026-000002", "reversal", D("-479.00")),
    ]
    row = payment.history.order_by("-history_id").first()
    assert (row.status, row.history_user, row.history_change_reason, row.history_date) == (
        "reversed",
        finance_admin,
        "reversed: wire 7781 was Contoso's",
        DEC_8,
    )

    with pytest.raises(BillingError) as caught:
        payment_reverse(payment=payment, reason="twice", actor=finance_admin)
    assert (caught.value.code, caught.value.status) == ("payment_not_reversible", 409)


def test_reversing_a_payment_of_a_written_off_invoice_leaves_nothing_due_on_it(books, finance_admin):
    account, october, _ = books
    payment = record(account, "100.00", allocations=[(october, D("100.00"))])
    invoice_mark_uncollectible(invoice=october, reason="customer insolvent", actor=finance_admin)
    assert money(october) == ("uncollectible", D("100.00"), D("0.00"))

    payment_reverse(payment=payment, reason="the transfer bounced", actor=finance_admin, now=DEC_8)
    # Written off is written off: the $100.00 taken back adds to the loss, not to what is due.
    assert money(october) == ("uncollectible", D("0.00"), D("0.00"))
    assert credit_balance(account) == D("0")


# --- credit notes on paid invoices ---------------------------------------------------------------------------


def test_a_credit_note_on_a_paid_invoice_releases_the_money_to_the_credit_balance(books):
    account, october, november = books
    payment = record(account, "299.00")
    assert money(october) == ("paid", D("299.00"), D("0.00"))

    note = credit_note_issue(
        invoice=october, lines=[(None, "outage on October 12", D("50.00"))], reason="SLA", now=DEC_8
    )
    assert note.total == D("50.00")
    october.refresh_from_db()
    # $299.00 − $249.00 paid − $50.00 credited = $0.00 due; $50.00 of the payment goes to the balance.
    assert (october.status, october.amount_paid, october.amount_credited, october.amount_due) == (
        "paid",
        D("249.00"),
        D("50.00"),
        D("0.00"),
    )
    assert october.amount_due == october.total - october.amount_paid - october.amount_credited
    assert allocations(payment)[-1] == ("INV-2026-000001", "release", D("-50.00"))
    assert credit_balance(account) == D("50.00")
    assert money(november) == ("finalized", D("0.00"), D("479.00"))


def test_a_credit_note_larger_than_what_is_due_releases_only_the_difference(books):
    account, october, _ = books
    record(account, "200.00")  # October: $99.00 still due
    credit_note_issue(invoice=october, lines=[(None, "goodwill", D("150.00"))], reason="goodwill", now=DEC_8)
    october.refresh_from_db()
    # $150.00 credited: $99.00 of it was due, $51.00 of the payment is released
    assert (october.status, october.amount_paid, october.amount_credited, october.amount_due) == (
        "paid",
        D("149.00"),
        D("150.00"),
        D("0.00"),
    )
    assert credit_balance(account) == D("51.00")


# --- what is refused -----------------------------------------------------------------------------------------


def refused(**kwargs):
    with pytest.raises(BillingError) as caught:
        payment_record(**{"provider": BANK, "reference": "wire", "now": DEC_5, **kwargs})
    return caught.value


def test_a_payment_in_another_currency_is_refused(books):
    account, _, _ = books
    error = refused(account=account, amount=D("100.00"), currency="EUR")
    assert (error.code, error.field) == ("currency_mismatch", "currency")
    assert error.message == ERR_CURRENCY.format(account="USD", currency="EUR")
    assert Payment.objects.count() == 0


@pytest.mark.parametrize("amount", ["0.00", "-5.00", "0.004"])
def test_a_payment_of_nothing_or_less_is_refused(books, amount):
    account, _, _ = books
    error = refused(account=account, amount=D(amount))
    assert (error.code, error.field, error.message) == ("invalid_amount", "amount", ERR_AMOUNT)
    assert Payment.objects.count() == 0


def test_an_allocation_above_what_is_due_is_refused(books):
    account, october, _ = books
    error = refused(account=account, amount=D("400.00"), allocations=[(october, D("299.01"))])
    assert error.code == "allocation_exceeds_due"
    assert error.message == ERR_ALLOCATION_TOO_MUCH.format(amount="299.01", number="INV-2026-000001", due="299.00")
    assert error.message == "299.01 exceeds what is due on INV-2026-000001 (299.00)."
    assert (Payment.objects.count(), money(october)) == (0, ("finalized", D("0.00"), D("299.00")))


def test_two_allocations_to_one_invoice_may_not_add_up_to_more_than_is_due(books):
    account, october, _ = books
    error = refused(account=account, amount=D("400.00"), allocations=[(october, D("200.00")), (october, D("100.00"))])
    assert error.code == "allocation_exceeds_due"
    assert error.message == "300.00 exceeds what is due on INV-2026-000001 (299.00)."
    assert (Payment.objects.count(), money(october)) == (0, ("finalized", D("0.00"), D("299.00")))


def test_allocations_above_the_payment_are_refused(books):
    account, october, november = books
    error = refused(account=account, amount=D("300.00"), allocations=[(october, D("299.00")), (november, D("1.01"))])
    assert error.code == "allocation_exceeds_payment"
    assert error.message == "The amounts applied (300.01) exceed the payment (300.00)."


def test_an_allocation_of_nothing_is_refused(books):
    account, october, _ = books
    error = refused(account=account, amount=D("100.00"), allocations=[(october, D("0"))])
    assert (error.code, error.message) == ("invalid_amount", ERR_ALLOCATION_AMOUNT)


def test_an_allocation_to_another_accounts_invoice_is_refused(plan, books):
    account, _, _ = books
    _, contoso_october, _ = northwind(plan, name="Contoso", tenant="ten_co")
    error = refused(account=account, amount=D("100.00"), allocations=[(contoso_october, D("100.00"))])
    assert (error.code, error.field) == ("invalid_invoice", "invoices")
    assert error.message == ERR_ALLOCATION_ACCOUNT.format(number=contoso_october.number)
    assert money(contoso_october) == ("finalized", D("0.00"), D("299.00"))


def test_a_paid_invoice_takes_no_further_allocation(books):
    account, october, _ = books
    record(account, "299.00")
    error = refused(account=account, amount=D("10.00"), allocations=[(october, D("10.00"))])
    assert (error.code, error.status) == ("invoice_not_payable", 409)
    assert error.message == "Payments apply to finalized invoices with an amount due; INV-2026-000001 is paid."


def test_the_same_bank_statement_line_is_recorded_once(books):
    account, october, november = books
    first = record(account, "100.00", external_id="stmt-2026-12-05-0007")
    error = refused(account=account, amount=D("100.00"), external_id="stmt-2026-12-05-0007")
    assert (error.code, error.status) == ("duplicate_payment", 409)
    assert error.message == ERR_DUPLICATE.format(payment=first.public_id)
    assert Payment.objects.count() == 1
    assert money(october) == ("finalized", D("100.00"), D("199.00"))


def test_billing_staff_may_not_record_refund_or_reverse_payments(books, billing_staff, finance_admin):
    account, october, _ = books
    assert [billing_staff.has_perm(p) for p in ("billing.view_payment", "billing.add_payment")] == [True, False]
    error = refused(account=account, amount=D("100.00"), actor=billing_staff)
    assert (error.code, error.status, error.message) == ("permission_denied", 403, ERR_RECORD_DENIED)
    assert Payment.objects.count() == 0

    payment = record(account, "320.00", allocations=[(october, D("299.00"))], actor=finance_admin)
    assert payment.recorded_by == finance_admin
    for attempt in (
        lambda: payment_refund(payment=payment, amount=D("21.00"), reason="overpaid", actor=billing_staff),
        lambda: account_balance_refund(account=account, amount=D("21.00"), reason="overpaid", actor=billing_staff),
        lambda: payment_reverse(payment=payment, reason="mistake", actor=billing_staff),
    ):
        with pytest.raises(BillingError) as caught:
            attempt()
        assert (caught.value.code, caught.value.status, caught.value.message) == (
            "permission_denied",
            403,
            ERR_REFUND_DENIED,
        )
    payment.refresh_from_db()
    assert (payment.status, Refund.objects.count(), credit_balance(account)) == ("succeeded", 0, D("21.00"))
    assert money(october) == ("paid", D("299.00"), D("0.00"))


# --- what others learn ---------------------------------------------------------------------------------------


def test_a_payment_emits_one_succeeded_event_per_invoice_and_queues_a_receipt(books):
    account, october, november = books
    payment = payment_record(
        account=account,
        amount=D("400.00"),
        provider=BANK,
        reference="wire 1001",
        payment_method="sepa_credit_transfer",
        received_at=dt.datetime(2026, 12, 4, 16, 45, tzinfo=UTC),
        now=DEC_5,
    )
    events = OutboxEvent.objects.filter(type="billing.payment_succeeded").order_by("pk")
    assert [
        {
            key: e.payload["data"][key]
            for key in ("invoice_id", "amount_paid", "payment_method", "paid_at", "amount_due")
        }
        for e in events
    ] == [
        {
            "invoice_id": "INV-2026-000001",
            "amount_paid": "299.00",
            "payment_method": "sepa_credit_transfer",
            "paid_at": "2026-12-04T16:45:00Z",
            "amount_due": "0.00",
        },
        {
            "invoice_id": "INV-2026-000002",
            "amount_paid": "101.00",
            "payment_method": "sepa_credit_transfer",
            "paid_at": "2026-12-04T16:45:00Z",
            "amount_due": "378.00",
        },
    ]
    assert {e.payload["data"]["payment_id"] for e in events} == {payment.public_id}
    assert {e.account_id for e in events} == {account.pk}
    receipt = EmailDelivery.objects.get(kind="receipt")
    assert (receipt.payment, receipt.invoice, receipt.status, receipt.recipients) == (
        payment,
        october,
        "queued",
        ["ap-northwind@example.com"],
    )


def test_a_payment_that_only_adds_to_the_balance_emits_one_event_without_an_invoice(books):
    account, _, _ = books
    record(account, "778.00")
    payment = record(account, "25.00", reference="wire 1003")
    event = OutboxEvent.objects.get(type="billing.payment_succeeded", payload__data__payment_id=payment.public_id)
    assert (event.payload["data"]["invoice_id"], event.payload["data"]["amount_paid"]) == (None, "25.00")
    assert credit_balance(account) == D("25.00")
    assert not EmailDelivery.objects.filter(kind="receipt", payment=payment).exists()


def test_allocation_rows_record_who_applied_the_money(books, finance_admin):
    account, october, _ = books
    payment = record(account, "299.00", actor=finance_admin)
    row = PaymentAllocation.objects.get(payment=payment)
    assert (row.created_by, row.created_at, row.account, row.currency, row.reason) == (
        finance_admin,
        DEC_5,
        account,
        "USD",
        "wire 1001",
    )
    history = october.history.order_by("-history_id").first()
    assert (history.status, history.history_user, history.history_change_reason, history.history_date) == (
        "paid",
        finance_admin,
        f"{payment.public_id} applied: 299.00 (wire 1001)",
        DEC_5,
    )
