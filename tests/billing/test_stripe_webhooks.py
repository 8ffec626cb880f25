"""Stripe's webhooks through dj-stripe's real endpoint (``/stripe/webhook/<uuid>/``), signed with the endpoint's
secret as Stripe signs them; dj-stripe's own sync of each event's object is answered by the local fake of
Stripe's API. Each event is applied to the ledger exactly once, whatever the order and however often it
arrives; an event with a bad signature is refused and changes nothing."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
import time_machine
from django.test import Client
from djstripe.models import Dispute, Event, PaymentIntent, WebhookEventTrigger

from billing.models import Collection, EmailDelivery, Invoice, Payment, PaymentAllocation, PaymentProfile, Refund
from billing.services.collection import collection_attempt, collection_retry_now
from billing.services.stripe_gateway import StripeUnavailable
from common.models import OutboxEvent
from disputes.models import Dispute as DisputeCase
from tests.accounts.factories import AccountFactory, AccountUserFactory
from tests.billing.cycle import CLOSE_AT
from tests.billing.factories import finalized_invoice
from tests.billing.stripe_fake import stripe_fake_start, webhook_endpoint_create, webhook_post
from tests.usage.factories import usage_event

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake(httpserver, settings, monkeypatch):
    return stripe_fake_start(httpserver, settings, monkeypatch)


@pytest.fixture
def endpoint(db):
    return webhook_endpoint_create()


@pytest.fixture
def account():
    return AccountFactory(name="Northwind", tax_rate=D("20"), billing_emails=["ap@northwind.example"])


@pytest.fixture
def deliver(endpoint, django_capture_on_commit_callbacks):
    """Post an event to the endpoint (what runs after the commit runs too); returns the HTTP status."""
    client = Client()

    def post(event, **kwargs) -> int:
        with django_capture_on_commit_callbacks(execute=True):
            return webhook_post(client, endpoint, event, **kwargs).status_code

    return post


def _with_card(account, fake, *, auto=True):
    customer, pm = fake.customer_with_card()
    return PaymentProfile.objects.create(
        account=account,
        stripe_customer_id=customer,
        auto_collection=auto,
        payment_method_id=pm,
        payment_method_type="card",
        payment_method_brand="visa",
        payment_method_last4="4242",
    )


def _bill_november(account, plan, capture) -> Invoice:
    """$574.80 (with 20 % tax), finalized on 1 December 00:05 UTC."""
    messages = usage_event(transaction_id="m1", tenant="ten_nw", quantity=31_000, at="2026-11-10T10:00:00Z")
    with time_machine.travel(CLOSE_AT, tick=False), capture(execute=True):
        invoice = finalized_invoice(plan("messaging-business"), account=account, usage=[messages])
    invoice.refresh_from_db()
    return invoice


def _ledger(invoice) -> tuple:
    invoice.refresh_from_db()
    return (
        invoice.status,
        invoice.amount_paid,
        invoice.amount_due,
        sorted((a.kind, a.amount) for a in PaymentAllocation.objects.filter(invoice=invoice)),
    )


PAID = ("paid", D("574.80"), D("0.00"), [("payment", D("574.80"))])
OPEN = ("finalized", D("0.00"), D("574.80"), [])


def _pay_now(account, invoice, fake) -> dict:
    owner = AccountUserFactory(account=account, email="olivia@northwind.example", role="owner")
    client = Client()
    client.force_login(owner.user)
    assert client.post(f"/portal/invoices/{invoice.number}/pay/").status_code == 302
    session_id = next(o["id"] for o in fake.objects.values() if o["object"] == "checkout.session")
    return fake.complete_payment(session_id)


def test_a_checkout_payment_arrives_by_webhook_and_pays_that_invoice_once(
    fake, account, plan, deliver, django_capture_on_commit_callbacks
):
    invoice = _bill_november(account, plan, django_capture_on_commit_callbacks)
    assert Collection.objects.get(invoice=invoice).state == "manual"
    session = _pay_now(account, invoice, fake)
    completed = fake.event("checkout.session.completed", fake.get(session["id"]))
    succeeded = fake.event("payment_intent.succeeded", fake.get(session["payment_intent"]))

    assert deliver(completed) == 200
    assert deliver(succeeded) == 200
    assert deliver(completed) == 200  # Stripe delivers again

    assert _ledger(invoice) == PAID
    (payment,) = Payment.objects.filter(account=account)
    assert (payment.status, payment.amount, payment.external_id, payment.invoice_id) == (
        "succeeded",
        D("574.80"),
        session["payment_intent"],
        invoice.pk,
    )
    assert payment.payment_method == "card_ending_4242"
    assert Collection.objects.get(invoice=invoice).state == "succeeded"
    assert OutboxEvent.objects.filter(type="billing.payment_succeeded").count() == 1
    assert list(EmailDelivery.objects.filter(payment=payment).values_list("kind", flat=True)) == ["receipt"]
    assert Event.objects.filter(type="checkout.session.completed").count() == 1
    # dj-stripe synced the objects too, fetching them from the (fake) API
    assert PaymentIntent.objects.get(id=session["payment_intent"]).stripe_data["status"] == "succeeded"
    assert ("GET", f"/v1/payment_intents/{session['payment_intent']}") in [(r.method, r.path) for r in fake.requests]


def test_an_event_delivered_twice_is_applied_once(fake, account, plan, deliver, django_capture_on_commit_callbacks):
    invoice = _bill_november(account, plan, django_capture_on_commit_callbacks)
    session = _pay_now(account, invoice, fake)
    succeeded = fake.event("payment_intent.succeeded", fake.get(session["payment_intent"]))

    assert deliver(succeeded) == 200
    assert deliver(succeeded) == 200

    assert _ledger(invoice) == PAID
    assert Payment.objects.filter(account=account).count() == 1
    assert WebhookEventTrigger.objects.filter(valid=True).count() == 2
    assert Event.objects.filter(id=succeeded["id"]).count() == 1


def test_a_bad_signature_is_refused_and_nothing_is_recorded(
    fake, account, plan, deliver, django_capture_on_commit_callbacks
):
    invoice = _bill_november(account, plan, django_capture_on_commit_callbacks)
    session = _pay_now(account, invoice, fake)
    succeeded = fake.event("payment_intent.succeeded", fake.get(session["payment_intent"]))

    assert deliver(succeeded, secret="whsec_someone_else") == 400

    assert _ledger(invoice) == OPEN
    assert Payment.objects.filter(account=account).count() == 0
    assert Event.objects.count() == 0
    assert list(WebhookEventTrigger.objects.values_list("valid", "processed")) == [(False, False)]


def test_a_failure_delivered_after_the_success_changes_nothing(
    fake, account, plan, deliver, django_capture_on_commit_callbacks
):
    _with_card(account, fake)
    invoice = _bill_november(account, plan, django_capture_on_commit_callbacks)
    (payment,) = Payment.objects.filter(invoice=invoice)
    intent = fake.get(payment.external_id)
    failed = dict(intent, status="requires_payment_method", last_payment_error={"code": "card_declined"})

    assert deliver(fake.event("payment_intent.succeeded", intent)) == 200
    assert deliver(fake.event("payment_intent.payment_failed", failed)) == 200

    assert _ledger(invoice) == PAID
    payment.refresh_from_db()
    assert (payment.status, payment.failure_code) == ("succeeded", "")
    assert Collection.objects.get(invoice=invoice).state == "succeeded"
    assert not OutboxEvent.objects.filter(type="billing.payment_failed").exists()


def test_a_success_delivered_after_the_failure_of_the_same_intent_wins(
    fake, account, plan, deliver, django_capture_on_commit_callbacks
):
    """The off-session charge was declined; the customer's bank then approved the same PaymentIntent."""
    _with_card(account, fake)
    fake.declines = ["card_declined"]
    invoice = _bill_november(account, plan, django_capture_on_commit_callbacks)
    (payment,) = Payment.objects.filter(invoice=invoice)
    assert payment.status == "failed"
    approved = dict(fake.get(payment.external_id), status="succeeded", last_payment_error=None)
    fake.objects[payment.external_id].update(status="succeeded", last_payment_error=None)

    assert deliver(fake.event("payment_intent.succeeded", approved)) == 200
    assert deliver(fake.event("payment_intent.payment_failed", dict(approved, status="requires_payment_method"))) == 200

    assert _ledger(invoice) == PAID
    payment.refresh_from_db()
    assert (payment.status, payment.failure_code) == ("succeeded", "")
    collection = Collection.objects.get(invoice=invoice)
    assert (collection.state, collection.next_attempt_at) == ("succeeded", None)
    assert OutboxEvent.objects.filter(type="billing.payment_failed").count() == 1  # the decline, once


def test_a_failed_payment_webhook_schedules_the_next_retry(
    fake, account, plan, deliver, django_capture_on_commit_callbacks
):
    """Stripe declined, but its answer to the charge was lost: the webhook records the failure."""
    _with_card(account, fake, auto=False)
    invoice = _bill_november(account, plan, django_capture_on_commit_callbacks)
    fake.declines = ["expired_card"]
    fake.lose_next_answer = True
    with time_machine.travel(CLOSE_AT + dt.timedelta(minutes=15), tick=False):
        collection = collection_retry_now(collection=Collection.objects.get(invoice=invoice))
        with pytest.raises(StripeUnavailable):
            collection_attempt(collection_id=collection.pk)
        intent_id = next(o["id"] for o in fake.objects.values() if o["object"] == "payment_intent")
        assert deliver(fake.event("payment_intent.payment_failed", fake.get(intent_id))) == 200

    (payment,) = Payment.objects.filter(invoice=invoice)
    assert (payment.status, payment.failure_code, payment.external_id) == ("failed", "expired_card", intent_id)
    collection.refresh_from_db()
    assert (collection.state, collection.attempts) == ("retrying", 1)
    assert collection.next_attempt_at == dt.datetime(2026, 12, 4, 0, 20, tzinfo=dt.UTC)
    (event,) = OutboxEvent.objects.filter(type="billing.payment_failed")
    assert {k: event.payload["data"][k] for k in ("invoice_id", "amount", "failure_reason", "retry_date")} == {
        "invoice_id": "INV-2026-000001",
        "amount": "574.80",
        "failure_reason": "Your card was declined.",
        "retry_date": "2026-12-04",
    }
    assert list(EmailDelivery.objects.filter(payment=payment).values_list("kind", flat=True)) == ["payment_failed"]


def test_a_refund_at_stripe_reopens_the_invoice(fake, account, plan, deliver, django_capture_on_commit_callbacks):
    _with_card(account, fake)
    invoice = _bill_november(account, plan, django_capture_on_commit_callbacks)
    (payment,) = Payment.objects.filter(invoice=invoice)

    part = fake.refund(payment.stripe_charge_id, 10000)
    assert deliver(fake.event("charge.refunded", part)) == 200
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_paid, invoice.amount_due) == ("finalized", D("474.80"), D("100.00"))

    rest = fake.refund(payment.stripe_charge_id, 47480)
    event = fake.event("charge.refunded", rest)
    assert deliver(event) == 200
    assert deliver(fake.event("charge.refunded", rest)) == 200  # the same refunds, reported again

    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_paid, invoice.amount_due) == ("finalized", D("0.00"), D("574.80"))
    refunds = Refund.objects.filter(payment=payment).order_by("pk")
    assert [(r.amount, r.external_id[:3]) for r in refunds] == [(D("100.00"), "re_"), (D("474.80"), "re_")]
    payment.refresh_from_db()
    assert payment.status == "refunded"
    assert OutboxEvent.objects.filter(type="billing.payment_refunded").count() == 2


def test_a_dispute_is_recorded_on_the_payment_for_staff(
    fake, account, plan, deliver, django_capture_on_commit_callbacks
):
    _with_card(account, fake)
    invoice = _bill_november(account, plan, django_capture_on_commit_callbacks)
    (payment,) = Payment.objects.filter(invoice=invoice)
    dispute = fake.dispute(payment.stripe_charge_id, reason="fraudulent")

    assert deliver(fake.event("charge.dispute.created", dispute)) == 200
    assert deliver(fake.event("charge.dispute.created", dispute)) == 200

    payment.refresh_from_db()
    assert (payment.disputed_amount, payment.dispute_reference) == (D("574.80"), dispute["id"])
    (event,) = OutboxEvent.objects.filter(type="billing.payment_disputed")
    assert {k: event.payload["data"][k] for k in ("payment_id", "invoice_id", "amount", "currency", "reason")} == {
        "payment_id": payment.public_id,
        "invoice_id": "INV-2026-000001",
        "amount": "574.80",
        "currency": "USD",
        "reason": "fraudulent",
    }
    assert Dispute.objects.get(id=dispute["id"]).stripe_data["reason"] == "fraudulent"
    # ... and a case of its own, exactly once, for billing staff to answer (admin: Disputes).
    (case,) = DisputeCase.objects.all()
    assert (case.source, case.channel, case.category, case.state) == ("stripe", "bank", "chargeback", "open")
    assert (case.invoice, case.payment, case.stripe_dispute_id, case.amount) == (
        invoice,
        payment,
        dispute["id"],
        D("574.80"),
    )
    assert case.subject == "Chargeback: fraudulent"
    assert OutboxEvent.objects.filter(type="billing.dispute_opened").count() == 1
    collection = Collection.objects.get(invoice=invoice)
    assert collection.last_failure == (
        f"{payment.public_id} disputed at the bank (fraudulent): USD 574.80, dispute {dispute['id']}"
    )
