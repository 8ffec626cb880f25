"""A chargeback at the customer's bank (Stripe's ``charge.dispute.created``, through dj-stripe's real webhook
endpoint and the local fake of Stripe's API) opens a case of its own about the invoice the payment paid: once
per Stripe dispute however often the event arrives, for the amount disputed, beside any case the customer
opened; staff are told, the customer is not sent an acknowledgement of a case they did not open with us."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
import time_machine
from django.test import Client

from accounts.models import AccountUser
from billing.models import EmailDelivery, Payment, PaymentProfile
from common.models import OutboxEvent
from disputes.models import Dispute, DisputeEvent
from disputes.services import dispute_investigate, dispute_open
from tests.accounts.factories import AccountFactory
from tests.billing.cycle import CLOSE_AT
from tests.billing.factories import finalized_invoice
from tests.billing.stripe_fake import stripe_fake_start, webhook_endpoint_create, webhook_post
from tests.disputes.factories import billing_staff, portal_user
from tests.usage.factories import usage_event

pytestmark = pytest.mark.django_db
UTC = dt.UTC
DEC_9 = dt.datetime(2026, 12, 9, 15, 0, tzinfo=UTC)
DEC_10 = dt.datetime(2026, 12, 10, 9, 0, tzinfo=UTC)


@pytest.fixture
def fake(httpserver, settings, monkeypatch):
    return stripe_fake_start(httpserver, settings, monkeypatch)


@pytest.fixture
def deliver(db, django_capture_on_commit_callbacks):
    """Post an event to dj-stripe's endpoint at 10 December 09:00 UTC (what runs after the commit runs too);
    returns the HTTP status."""
    endpoint = webhook_endpoint_create()
    client = Client()

    def post(event) -> int:
        with time_machine.travel(DEC_10, tick=False), django_capture_on_commit_callbacks(execute=True):
            return webhook_post(client, endpoint, event).status_code

    return post


@pytest.fixture
def paid(fake, plan, settings, django_capture_on_commit_callbacks):
    """Northwind's November invoice, $299 + 6,000 × $0.03 = $479.00 + 20 % = $574.80, charged to its card when
    it was finalized on 1 December."""
    settings.DISPUTES_STAFF_EMAILS = ["disputes@ledgerline.example"]
    account = AccountFactory(name="Northwind", tax_rate=D("20"), billing_emails=["ap@northwind.example"])
    customer, card = fake.customer_with_card()
    PaymentProfile.objects.create(
        account=account,
        stripe_customer_id=customer,
        auto_collection=True,
        payment_method_id=card,
        payment_method_type="card",
        payment_method_brand="visa",
        payment_method_last4="4242",
    )
    messages = usage_event(transaction_id="m1", tenant="ten_nw", quantity=31_000, at="2026-11-10T10:00:00Z")
    with time_machine.travel(CLOSE_AT, tick=False), django_capture_on_commit_callbacks(execute=True):
        invoice = finalized_invoice(plan("messaging-business"), account=account, usage=[messages])
    invoice.refresh_from_db()
    (payment,) = Payment.objects.filter(invoice=invoice)
    assert (invoice.number, invoice.status, payment.amount) == ("INV-2026-000001", "paid", D("574.80"))
    return invoice, payment


def timeline(case):
    return [
        (e.kind, e.to_state, e.actor_id, e.actor_label, e.public) for e in DisputeEvent.objects.filter(dispute=case)
    ]


def test_a_chargeback_opens_a_case_of_its_own_once_beside_the_customers_case(fake, paid, deliver):
    invoice, payment = paid
    owner = portal_user(invoice.account, AccountUser.Role.OWNER)
    with time_machine.travel(DEC_9, tick=False):
        complaint = dispute_open(
            account=invoice.account,
            invoice=invoice,
            subject="Messages counted twice",
            description="Our gateway retried during the outage.",
            source=Dispute.Source.PORTAL,
            channel=Dispute.Channel.PORTAL,
            actor=owner,
        )
    dispute = fake.dispute(payment.stripe_charge_id, reason="product_unacceptable")

    # Stripe sends the event again (and again): still one case.
    for _ in range(3):
        assert deliver(fake.event("charge.dispute.created", dispute)) == 200

    chargeback = Dispute.objects.exclude(pk=complaint.pk).get()
    assert (chargeback.public_id, chargeback.account, chargeback.invoice, chargeback.payment) == (
        "dsp_000002",
        invoice.account,
        invoice,
        payment,
    )
    assert (chargeback.source, chargeback.channel, chargeback.category, chargeback.state) == (
        "stripe",
        "bank",
        "chargeback",
        "open",
    )
    assert (chargeback.stripe_dispute_id, chargeback.amount, chargeback.currency) == (dispute["id"], D("574.80"), "USD")
    assert chargeback.subject == "Chargeback: product unacceptable"
    assert (chargeback.opened_by, chargeback.opened_by_key, chargeback.opened_at) == (None, None, DEC_10)
    # SLA as for any case: an answer within 24 hours, a resolution within 10 days.
    assert (chargeback.response_due_at, chargeback.resolution_due_at) == (
        dt.datetime(2026, 12, 11, 9, 0, tzinfo=UTC),
        dt.datetime(2026, 12, 20, 9, 0, tzinfo=UTC),
    )
    assert timeline(chargeback) == [("opened", "open", None, "Stripe", True), ("message", "", None, "Stripe", True)]
    message = chargeback.messages.get()
    assert (message.author_kind, message.author_name) == ("system", "Stripe")
    assert message.body == (
        f"The customer's bank disputes {payment.public_id} (USD 574.80), reason “product unacceptable”, Stripe "
        f"dispute {dispute['id']} (needs_response). Answer it with evidence in Stripe's dashboard before its deadline."
    )
    assert chargeback.history.count() == 1
    # The customer's own case is untouched and still open.
    complaint.refresh_from_db()
    assert complaint.state == "open"

    opened = OutboxEvent.objects.filter(type="billing.dispute_opened").order_by("id")
    assert [e.payload["data"]["dispute_id"] for e in opened] == ["dsp_000001", "dsp_000002"]
    assert {k: opened[1].payload["data"][k] for k in ("invoice_id", "state", "category", "amount")} == {
        "invoice_id": "INV-2026-000001",
        "state": "open",
        "category": "chargeback",
        "amount": "574.80",
    }
    # Staff are told of the chargeback; the customer's acknowledgement is for the case they opened only.
    mails = EmailDelivery.objects.filter(kind__startswith="dispute").order_by("id")
    assert [(m.kind, m.recipients, m.dedup_key) for m in mails] == [
        ("dispute_opened", ["ap@northwind.example"], f"dispute_opened:{complaint.pk}:opened"),
        ("dispute_staff", ["disputes@ledgerline.example"], f"dispute_staff:{complaint.pk}:opened"),
        ("dispute_staff", ["disputes@ledgerline.example"], f"dispute_staff:{chargeback.pk}:opened"),
    ]
    assert mails[2].context["author"] == "Stripe"

    # It is worked like any other case.
    staff = billing_staff()
    with time_machine.travel(DEC_10 + dt.timedelta(hours=1), tick=False):
        dispute_investigate(dispute=chargeback, actor=staff, note="Evidence sent to Stripe.")
    chargeback.refresh_from_db()
    assert (chargeback.state, chargeback.assigned_to, chargeback.first_response_at) == (
        "investigating",
        staff,
        DEC_10 + dt.timedelta(hours=1),
    )


def test_a_partial_chargeback_opens_its_case_for_the_amount_disputed(fake, paid, deliver):
    invoice, payment = paid
    dispute = fake.dispute(payment.stripe_charge_id, reason="duplicate")
    # The bank disputes $200.00 of the $574.80 charge (20,000 cents).
    fake.objects[dispute["id"]]["amount"] = 20_000
    dispute["amount"] = 20_000

    assert deliver(fake.event("charge.dispute.created", dispute)) == 200

    payment.refresh_from_db()
    assert (payment.disputed_amount, payment.dispute_reference) == (D("200.00"), dispute["id"])
    (case,) = Dispute.objects.all()
    assert (case.amount, case.subject, case.category) == (D("200.00"), "Chargeback: duplicate", "chargeback")
    assert f"{payment.public_id} (USD 200.00)" in case.messages.get().body
