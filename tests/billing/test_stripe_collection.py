"""Automatic collection through Stripe, with Stripe's HTTP API faked at the boundary (tests/billing/stripe_fake.py):
a finalized invoice is charged once, with its idempotency key, however often the attempt runs; a decline
schedules the retry; cards are added and invoices paid through Stripe-hosted Checkout pages."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
import time_machine
from django.test import Client
from djstripe.models import Customer

from billing.models import Collection, EmailDelivery, Invoice, Payment, PaymentProfile
from billing.services.collection import collection_attempt, collection_retry_now
from billing.services.payments import payment_record
from billing.services.stripe_gateway import (
    StripeUnavailable,
    customer_ensure,
    payment_method_details,
    payment_method_label,
    payment_method_sync,
)
from billing.tasks import collection_attempt_task
from common.models import OutboxEvent
from tests.accounts.factories import AccountFactory, AccountUserFactory
from tests.billing.cycle import CLOSE_AT
from tests.billing.factories import finalized_invoice
from tests.billing.stripe_fake import stripe_fake_start
from tests.usage.factories import usage_event

pytestmark = pytest.mark.django_db
ADDRESSES = ["ap@northwind.example"]


@pytest.fixture
def fake(httpserver, settings, monkeypatch):
    return stripe_fake_start(httpserver, settings, monkeypatch)


@pytest.fixture
def account():
    return AccountFactory(name="Northwind", tax_rate=D("20"), billing_emails=ADDRESSES)


def _with_card(account, fake, *, auto: bool = True) -> PaymentProfile:
    customer, pm = fake.customer_with_card()
    return PaymentProfile.objects.create(
        account=account,
        stripe_customer_id=customer,
        auto_collection=auto,
        payment_method_id=pm,
        payment_method_type="card",
        payment_method_brand="visa",
        payment_method_last4="4242",
        payment_method_exp_month=12,
        payment_method_exp_year=2030,
    )


def _bill_november(account, plan, capture) -> Invoice:
    """$479.00 + 20 % tax = $574.80, finalized on 1 December 00:05 UTC; what runs after commit runs then."""
    messages = usage_event(transaction_id="m1", tenant="ten_nw", quantity=31_000, at="2026-11-10T10:00:00Z")
    with time_machine.travel(CLOSE_AT, tick=False), capture(execute=True):
        invoice = finalized_invoice(plan("messaging-business"), account=account, usage=[messages])
    invoice.refresh_from_db()
    return invoice


def test_finalization_charges_the_default_card_once_and_pays_the_invoice(
    fake, account, plan, django_capture_on_commit_callbacks
):
    _with_card(account, fake)
    invoice = _bill_november(account, plan, django_capture_on_commit_callbacks)

    (charge,) = fake.posts("/v1/payment_intents")
    assert charge.idempotency_key == f"invoice-{invoice.pk}-attempt-1"
    assert {k: charge.params[k] for k in ("amount", "currency", "confirm", "off_session")} == {
        "amount": "57480",
        "currency": "usd",
        "confirm": "true",
        "off_session": "true",
    }
    assert charge.params["customer"] == account.payment_profile.stripe_customer_id
    assert charge.params["payment_method"] == account.payment_profile.payment_method_id
    assert (charge.params["metadata[invoice_number]"], charge.params["metadata[attempt]"]) == ("INV-2026-000001", "1")
    (payment,) = Payment.objects.filter(invoice=invoice)
    intent = fake.get(payment.external_id)
    assert (payment.status, payment.amount, payment.attempt) == ("succeeded", D("574.80"), 1)
    assert (payment.provider, payment.stripe_charge_id, payment.payment_method) == (
        "stripe",
        intent["latest_charge"],
        "card_ending_4242",
    )
    assert (invoice.status, invoice.amount_paid, invoice.amount_due) == ("paid", D("574.80"), D("0.00"))
    collection = Collection.objects.get(invoice=invoice)
    assert (collection.state, collection.attempts, collection.next_attempt_at) == ("succeeded", 1, None)
    assert list(EmailDelivery.objects.filter(payment=payment).values_list("kind", flat=True)) == ["receipt"]


def test_an_attempt_task_that_runs_twice_charges_once(fake, account, plan, django_capture_on_commit_callbacks):
    _with_card(account, fake)
    invoice = _bill_november(account, plan, django_capture_on_commit_callbacks)
    collection = Collection.objects.get(invoice=invoice)

    with django_capture_on_commit_callbacks(execute=True):
        collection_attempt_task.delay(collection.pk)

    (charge,) = fake.posts("/v1/payment_intents")
    assert charge.idempotency_key == f"invoice-{invoice.pk}-attempt-1"
    assert Payment.objects.filter(invoice=invoice).count() == 1
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_paid) == ("paid", D("574.80"))


def test_a_lost_answer_is_asked_again_with_the_same_key_and_charges_once(
    fake, account, plan, django_capture_on_commit_callbacks
):
    """Stripe charged, but its answer never arrived: the attempt's payment row stays pending and the next run
    of the same attempt asks again with the same idempotency key, so Stripe answers with the same charge."""
    _with_card(account, fake, auto=False)
    invoice = _bill_november(account, plan, django_capture_on_commit_callbacks)
    fake.lose_next_answer = True

    with time_machine.travel(CLOSE_AT + dt.timedelta(minutes=15), tick=False):
        collection = collection_retry_now(collection=Collection.objects.get(invoice=invoice))
        with pytest.raises(StripeUnavailable):
            collection_attempt(collection_id=collection.pk)
        (pending,) = Payment.objects.filter(invoice=invoice)
        assert (pending.status, pending.attempt, pending.external_id) == ("pending", 1, None)
        with django_capture_on_commit_callbacks(execute=True):
            collection_attempt_task.delay(collection.pk)

    charges = fake.posts("/v1/payment_intents")
    assert [c.idempotency_key for c in charges] == [f"invoice-{invoice.pk}-attempt-1"] * 2
    pending.refresh_from_db()
    assert [o["id"] for o in fake.objects.values() if o["object"] == "payment_intent"] == [pending.external_id]
    assert pending.status == "succeeded"
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_paid) == ("paid", D("574.80"))


def test_a_lost_answer_is_not_asked_again_once_the_invoice_was_paid_by_transfer(
    fake, account, plan, django_capture_on_commit_callbacks
):
    """Stripe's answer never arrived, and the customer paid by bank transfer before the attempt ran again: the
    attempt is not sent again (a charge would only add to the credit balance); its payment is marked not sent."""
    _with_card(account, fake, auto=False)
    invoice = _bill_november(account, plan, django_capture_on_commit_callbacks)
    fake.lose_next_answer = True

    with time_machine.travel(CLOSE_AT + dt.timedelta(minutes=15), tick=False):
        collection = collection_retry_now(collection=Collection.objects.get(invoice=invoice))
        with pytest.raises(StripeUnavailable):
            collection_attempt(collection_id=collection.pk)
        payment_record(account=account, amount=D("574.80"), provider="bank_transfer", reference="wire 77")
        with django_capture_on_commit_callbacks(execute=True):
            collection_attempt_task.delay(collection.pk)

    assert len(fake.posts("/v1/payment_intents")) == 1  # the lost one only
    attempt = Payment.objects.get(invoice=invoice, attempt=1)
    assert (attempt.status, attempt.failure_code) == ("failed", "not_sent")
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_paid, invoice.amount_due) == ("paid", D("574.80"), D("0.00"))
    assert Collection.objects.get(invoice=invoice).state == "succeeded"


def test_a_declined_charge_records_the_failure_and_schedules_the_retry(
    fake, account, plan, django_capture_on_commit_callbacks
):
    _with_card(account, fake)
    fake.declines = ["insufficient_funds"]
    invoice = _bill_november(account, plan, django_capture_on_commit_callbacks)

    (payment,) = Payment.objects.filter(invoice=invoice)
    assert (payment.status, payment.failure_code, payment.failure_message) == (
        "failed",
        "insufficient_funds",
        "Your card has insufficient funds.",
    )
    assert payment.external_id.startswith("pi_")
    collection = Collection.objects.get(invoice=invoice)
    assert (collection.state, collection.attempts) == ("retrying", 1)
    assert collection.next_attempt_at == dt.datetime(2026, 12, 4, 0, 5, tzinfo=dt.UTC)
    assert collection.last_failure == "Your card has insufficient funds."
    (event,) = OutboxEvent.objects.filter(type="billing.payment_failed")
    assert event.payload["data"] == {
        "invoice_id": "INV-2026-000001",
        "amount": "574.80",
        "currency": "USD",
        "payment_id": payment.public_id,
        "attempt": 1,
        "failure_reason": "Your card has insufficient funds.",
        "retry_date": "2026-12-04",
        "failed_at": "2026-12-01T00:05:00Z",
    }
    assert list(EmailDelivery.objects.filter(payment=payment).values_list("kind", flat=True)) == ["payment_failed"]
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_due) == ("finalized", D("574.80"))


def test_an_account_without_automatic_collection_awaits_a_manual_payment(
    fake, account, plan, django_capture_on_commit_callbacks
):
    _with_card(account, fake, auto=False)
    invoice = _bill_november(account, plan, django_capture_on_commit_callbacks)

    collection = Collection.objects.get(invoice=invoice)
    assert (collection.state, collection.attempts, collection.next_attempt_at) == ("manual", 0, None)
    assert fake.posts("/v1/payment_intents") == []


def test_a_stripe_customer_is_created_once_per_account(fake, account):
    first = customer_ensure(account=account)
    again = customer_ensure(account=account)

    (created,) = fake.posts("/v1/customers")
    assert created.params["metadata[account_id]"] == account.public_id
    assert created.params["email"] == "ap@northwind.example"
    assert first.stripe_customer_id == again.stripe_customer_id == fake.get(first.stripe_customer_id)["id"]
    assert Customer.objects.filter(id=first.stripe_customer_id).count() == 1


def _portal(account, role: str) -> Client:
    member = AccountUserFactory(account=account, email=f"{role}@northwind.example", role=role)
    client = Client()
    client.force_login(member.user)
    return client


def test_an_owner_adds_a_card_through_stripe_checkout_in_setup_mode(fake, account):
    owner = _portal(account, "owner")

    response = owner.post("/portal/billing/card/")

    (request,) = fake.posts("/v1/checkout/sessions")
    session_id = next(o["id"] for o in fake.objects.values() if o["object"] == "checkout.session")
    assert response.status_code == 302
    assert response["Location"] == f"https://checkout.stripe.com/c/pay/{session_id}"
    assert request.params["mode"] == "setup"
    assert (
        request.params["success_url"] == "http://testserver/portal/billing/card/saved/?session_id={CHECKOUT_SESSION_ID}"
    )
    profile = PaymentProfile.objects.get(account=account)
    assert request.params["customer"] == profile.stripe_customer_id
    assert profile.payment_method_id == ""

    fake.complete_setup(session_id, card="pm_card_mastercard")
    back = owner.get(f"/portal/billing/card/saved/?session_id={session_id}")

    assert (back.status_code, back["Location"]) == (302, "/portal/billing/")
    profile.refresh_from_db()
    assert (
        profile.payment_method_type,
        profile.payment_method_brand,
        profile.payment_method_last4,
        profile.payment_method_exp_month,
        profile.payment_method_exp_year,
    ) == ("card", "mastercard", "4444", 3, 2031)
    assert profile.payment_method_label == "card_ending_4444"
    customer = fake.get(profile.stripe_customer_id)
    assert customer["invoice_settings"]["default_payment_method"] == profile.payment_method_id


def test_a_member_may_not_set_up_a_card_or_pay(fake, account, plan, django_capture_on_commit_callbacks):
    invoice = _bill_november(account, plan, django_capture_on_commit_callbacks)
    member = _portal(account, "member")

    assert member.post("/portal/billing/card/").status_code == 403
    assert member.post(f"/portal/invoices/{invoice.number}/pay/").status_code == 403
    assert fake.requests == []


def test_pay_now_opens_a_checkout_session_for_the_amount_due(fake, account, plan, django_capture_on_commit_callbacks):
    invoice = _bill_november(account, plan, django_capture_on_commit_callbacks)
    billing_user = _portal(account, "billing")

    response = billing_user.post(f"/portal/invoices/{invoice.number}/pay/")

    (request,) = fake.posts("/v1/checkout/sessions")
    assert response.status_code == 302
    assert response["Location"].startswith("https://checkout.stripe.com/c/pay/cs_test_")
    assert {
        key: request.params[key]
        for key in (
            "mode",
            "line_items[0][price_data][unit_amount]",
            "line_items[0][price_data][currency]",
            "metadata[invoice_number]",
            "payment_intent_data[metadata][invoice_number]",
        )
    } == {
        "mode": "payment",
        "line_items[0][price_data][unit_amount]": "57480",
        "line_items[0][price_data][currency]": "usd",
        "metadata[invoice_number]": "INV-2026-000001",
        "payment_intent_data[metadata][invoice_number]": "INV-2026-000001",
    }


def test_a_linked_stripe_customer_brings_its_default_payment_method(fake, account):
    customer, pm = fake.customer_with_card(card="pm_card_visa")
    PaymentProfile.objects.create(account=account, stripe_customer_id=customer)

    profile = payment_method_sync(account=account)

    assert fake.posts("/v1/customers") == []
    assert (profile.payment_method_id, profile.payment_method_label, profile.payment_method_exp_year) == (
        pm,
        "card_ending_4242",
        2030,
    )
    assert Customer.objects.get(id=customer).default_payment_method_id is not None


def test_a_bank_debit_method_is_described_by_its_last_four_digits():
    sepa = {"id": "pm_1", "type": "sepa_debit", "sepa_debit": {"last4": "3000", "country": "DE"}}

    assert payment_method_details(sepa) == {
        "payment_method_id": "pm_1",
        "payment_method_type": "sepa_debit",
        "payment_method_brand": "",
        "payment_method_last4": "3000",
        "payment_method_exp_month": None,
        "payment_method_exp_year": None,
    }
    assert payment_method_label(sepa) == "sepa_debit_ending_3000"
