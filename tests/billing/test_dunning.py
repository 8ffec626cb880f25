"""Dunning on the test clock: a declined card is retried on the days after the first failure that
``BILLING_DUNNING_RETRY_DAYS`` gives, each failure e-mailed (to a real SMTP server on 127.0.0.1) with the next
retry date; after the last the account is suspended; a bank transfer then reactivates it. Staff pause, resume,
retry now and write off, each within their permissions."""

from __future__ import annotations

import datetime as dt
import email
import socket
from decimal import Decimal as D
from email.policy import default as default_policy

import pytest
import time_machine
from aiosmtpd.controller import Controller
from django.contrib.auth.models import Group
from django.test import Client, override_settings

from accounts.models import Account
from accounts.permissions import BILLING_STAFF, FINANCE_ADMIN
from billing.models import Collection, Invoice, Payment, PaymentProfile
from billing.services.collection import collection_pause, collection_resume, collection_retry_now, collection_write_off
from billing.services.payments import payment_record
from billing.tasks import collections_due_task
from common.errors import BillingError
from common.models import OutboxEvent
from tests.accounts.factories import AccountFactory, StaffUserFactory
from tests.billing.cycle import CLOSE_AT, UTC
from tests.billing.factories import finalized_invoice
from tests.billing.stripe_fake import stripe_fake_start
from tests.usage.factories import usage_event

pytestmark = pytest.mark.django_db
ADDRESSES = ["ap@northwind.example"]
RECEIPT_SUBJECT = "Receipt: USD 574.80 received for invoice INV-2026-000001"


class Mailbox:
    def __init__(self) -> None:
        self.received: list = []

    async def handle_DATA(self, server, session, envelope):
        self.received.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self):
        return [email.message_from_bytes(e.content, policy=default_policy) for e in self.received]

    def subjects(self) -> list[str]:
        return [m["Subject"] for m in self.messages()]


@pytest.fixture
def smtp():
    mailbox = Mailbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with override_settings(
            EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=port,
            EMAIL_USE_TLS=False,
            EMAIL_USE_SSL=False,
            EMAIL_HOST_USER="",
            EMAIL_HOST_PASSWORD="",
            EMAIL_TIMEOUT=5,
        ):
            yield mailbox
    finally:
        controller.stop()


@pytest.fixture
def fake(httpserver, settings, monkeypatch):
    return stripe_fake_start(httpserver, settings, monkeypatch)


@pytest.fixture
def account(fake):
    account = AccountFactory(name="Northwind", tax_rate=D("20"), billing_emails=ADDRESSES)
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
    return account


@pytest.fixture
def run(django_capture_on_commit_callbacks):
    """Run ``step`` at ``at`` on the test clock, with what it queues after commit (tasks, e-mails)."""

    def at(moment: dt.datetime, step):
        with time_machine.travel(moment, tick=False), django_capture_on_commit_callbacks(execute=True):
            return step()

    return at


def _bill_november(account, plan, run) -> Invoice:
    """$574.80 (with 20 % tax), finalized on 1 December 00:05 UTC: attempt 1 runs then."""
    messages = usage_event(transaction_id="m1", tenant="ten_nw", quantity=31_000, at="2026-11-10T10:00:00Z")
    invoice = run(CLOSE_AT, lambda: finalized_invoice(plan("messaging-business"), account=account, usage=[messages]))
    invoice.refresh_from_db()
    return invoice


def _body(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def test_four_declines_suspend_the_account_on_the_last_retry_day_and_a_bank_transfer_reactivates_it(
    fake, smtp, account, plan, run
):
    fake.declines = ["card_declined"] * 4
    invoice = _bill_november(account, plan, run)
    collection = Collection.objects.get(invoice=invoice)
    assert (collection.state, collection.next_attempt_at) == ("retrying", dt.datetime(2026, 12, 4, 0, 5, tzinfo=UTC))

    assert run(dt.datetime(2026, 12, 3, 23, 45, tzinfo=UTC), collections_due_task) == 0  # not due yet
    for day in (4, 6, 8):  # days 3, 5 and 7 after the first failure, at the next 15-minute run
        assert run(dt.datetime(2026, 12, day, 0, 15, tzinfo=UTC), collections_due_task) == 1

    charges = fake.posts("/v1/payment_intents")
    assert [c.idempotency_key for c in charges] == [f"invoice-{invoice.pk}-attempt-{n}" for n in (1, 2, 3, 4)]
    assert list(Payment.objects.filter(invoice=invoice).order_by("attempt").values_list("attempt", "status")) == [
        (1, "failed"),
        (2, "failed"),
        (3, "failed"),
        (4, "failed"),
    ]
    collection.refresh_from_db()
    assert (collection.state, collection.attempts, collection.next_attempt_at) == ("exhausted", 4, None)
    retry_dates = [
        e.payload["data"]["retry_date"]
        for e in OutboxEvent.objects.filter(type="billing.payment_failed").order_by("created_at", "pk")
    ]
    assert retry_dates == ["2026-12-04", "2026-12-06", "2026-12-08", None]
    account.refresh_from_db()
    assert (account.status, account.status_reason) == ("suspended", "all payment retries for INV-2026-000001 failed")
    assert account.status_changed_at == dt.datetime(2026, 12, 8, 0, 15, tzinfo=UTC)
    assert smtp.subjects() == [
        "Invoice INV-2026-000001 for November 2026: USD 574.80",
        "Payment failed: invoice INV-2026-000001 (USD 574.80)",
        "Payment failed: invoice INV-2026-000001 (USD 574.80)",
        "Payment failed: invoice INV-2026-000001 (USD 574.80)",
        "Payment failed: invoice INV-2026-000001 (USD 574.80)",
        "Your account is suspended: invoice INV-2026-000001 is unpaid",
    ]
    failed = [_body(m) for m in smtp.messages()[1:5]]
    assert "We will try again on 4 December 2026." in failed[0]
    assert "We will try again on 6 December 2026." in failed[1]
    assert "We will try again on 8 December 2026." in failed[2]
    assert "We will not try again automatically; please pay the invoice from the portal." in failed[3]
    assert all("update your payment method: http://127.0.0.1:8000/portal/billing/" in body for body in failed)
    assert all(m["To"] == "ap@northwind.example" for m in smtp.messages())

    assert run(dt.datetime(2026, 12, 10, 0, 15, tzinfo=UTC), collections_due_task) == 0  # no more attempts
    run(
        dt.datetime(2026, 12, 11, 9, tzinfo=UTC),
        lambda: payment_record(account=account, amount=D("574.80"), provider="bank_transfer", reference="NW-1211"),
    )

    invoice.refresh_from_db()
    account.refresh_from_db()
    collection.refresh_from_db()
    assert (invoice.status, invoice.amount_due) == ("paid", D("0.00"))
    assert collection.state == "succeeded"
    assert (account.status, account.status_reason) == ("active", "overdue invoices settled")
    assert smtp.subjects()[6:] == [RECEIPT_SUBJECT, "Your account is active again"]
    assert len(fake.posts("/v1/payment_intents")) == 4


def test_the_schedule_follows_the_configured_retry_days(fake, smtp, account, plan, run, settings):
    settings.BILLING_DUNNING_RETRY_DAYS = [2]
    fake.declines = ["card_declined"] * 2
    invoice = _bill_november(account, plan, run)

    assert run(dt.datetime(2026, 12, 3, 0, 15, tzinfo=UTC), collections_due_task) == 1

    collection = Collection.objects.get(invoice=invoice)
    assert (collection.state, collection.attempts) == ("exhausted", 2)
    account.refresh_from_db()
    assert account.status == "suspended"
    assert account.status_changed_at == dt.datetime(2026, 12, 3, 0, 15, tzinfo=UTC)


def test_a_bank_transfer_during_dunning_stops_the_retries(fake, smtp, account, plan, run):
    fake.declines = ["card_declined"]
    invoice = _bill_november(account, plan, run)

    run(
        dt.datetime(2026, 12, 2, 10, tzinfo=UTC),
        lambda: payment_record(account=account, amount=D("574.80"), provider="bank_transfer", reference="NW-1202"),
    )
    assert run(dt.datetime(2026, 12, 4, 0, 15, tzinfo=UTC), collections_due_task) == 0

    collection = Collection.objects.get(invoice=invoice)
    assert (collection.state, collection.next_attempt_at) == ("succeeded", None)
    assert len(fake.posts("/v1/payment_intents")) == 1


@pytest.fixture
def billing_staff():
    return StaffUserFactory(groups=[Group.objects.get(name=BILLING_STAFF)])


@pytest.fixture
def finance():
    return StaffUserFactory(groups=[Group.objects.get(name=FINANCE_ADMIN)])


def test_staff_pause_resume_and_retry_now(fake, smtp, account, plan, run, billing_staff):
    fake.declines = ["card_declined"]
    invoice = _bill_november(account, plan, run)
    collection = Collection.objects.get(invoice=invoice)

    paused = run(
        dt.datetime(2026, 12, 2, tzinfo=UTC), lambda: collection_pause(collection=collection, actor=billing_staff)
    )
    assert (paused.state, paused.next_attempt_at) == ("paused", None)
    assert run(dt.datetime(2026, 12, 4, 0, 15, tzinfo=UTC), collections_due_task) == 0

    resumed = run(
        dt.datetime(2026, 12, 4, 12, tzinfo=UTC), lambda: collection_resume(collection=collection, actor=billing_staff)
    )
    # The retry of 4 December has passed: it runs at once, and succeeds this time.
    assert len(fake.posts("/v1/payment_intents")) == 2
    resumed.refresh_from_db()
    invoice.refresh_from_db()
    assert (resumed.state, invoice.status) == ("succeeded", "paid")
    with pytest.raises(BillingError) as refused:
        collection_retry_now(collection=resumed, actor=billing_staff)
    assert refused.value.message == "Collection of INV-2026-000001 cannot be retried: it is paid."


def test_retry_now_charges_at_once_and_a_member_of_neither_group_may_not(fake, smtp, account, plan, run, billing_staff):
    fake.declines = ["card_declined"]
    invoice = _bill_november(account, plan, run)
    collection = Collection.objects.get(invoice=invoice)
    outsider = StaffUserFactory()

    with pytest.raises(BillingError) as refused:
        collection_retry_now(collection=collection, actor=outsider)
    assert (refused.value.status, refused.value.message) == (
        403,
        "Only billing staff and Finance admins may pause, resume or retry collection.",
    )
    run(
        dt.datetime(2026, 12, 2, 9, tzinfo=UTC),
        lambda: collection_retry_now(collection=collection, actor=billing_staff),
    )

    _, second = fake.posts("/v1/payment_intents")
    assert second.idempotency_key == f"invoice-{invoice.pk}-attempt-2"
    invoice.refresh_from_db()
    assert invoice.status == "paid"


def test_only_finance_writes_an_invoice_off(fake, smtp, account, plan, run, billing_staff, finance):
    fake.declines = ["card_declined"]
    invoice = _bill_november(account, plan, run)
    collection = Collection.objects.get(invoice=invoice)

    with pytest.raises(BillingError) as refused:
        collection_write_off(collection=collection, reason="customer insolvent", actor=billing_staff)
    assert refused.value.status == 403
    collection.refresh_from_db()
    assert collection.state == "retrying"

    written_off = collection_write_off(collection=collection, reason="customer insolvent", actor=finance)

    invoice.refresh_from_db()
    assert (written_off.state, written_off.next_attempt_at) == ("written_off", None)
    assert (invoice.status, invoice.amount_due) == ("uncollectible", D("0.00"))
    assert run(dt.datetime(2026, 12, 4, 0, 15, tzinfo=UTC), collections_due_task) == 0


def test_the_admin_lists_collections_and_pauses_them(fake, smtp, account, plan, run, billing_staff):
    fake.declines = ["card_declined"]
    invoice = _bill_november(account, plan, run)
    client = Client()
    client.force_login(billing_staff)

    page = client.get("/admin/billing/collection/?state__exact=retrying").content.decode()
    assert "INV-2026-000001" in page
    assert "Your card was declined." in page
    assert "USD 574.80" in page
    assert "Write off the invoice" not in page  # Finance admin's action

    response = client.post(
        "/admin/billing/collection/",
        {"action": "pause_action", "_selected_action": [Collection.objects.get(invoice=invoice).pk]},
        follow=True,
    )

    assert "1 paused." in [str(m) for m in response.context["messages"]]
    assert Collection.objects.get(invoice=invoice).state == "paused"
    assert Account.objects.get(pk=account.pk).status != "suspended"
