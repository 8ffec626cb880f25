"""The payment surfaces against what an attacker or a careless client sends: forged API cursors, Stripe webhooks
whose PaymentIntent is another customer's, in another currency or of another amount than the payment, webhook
bodies that are not JSON objects, and staff forms given boxes, files and references no screen would produce.
Each is a clear 400 or form error, never a 500, and the ledger is left as it was."""

from __future__ import annotations

import base64
import json
from decimal import Decimal as D
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from djstripe.models import WebhookEventTrigger

from accounts.permissions import FINANCE_ADMIN
from billing.admin.reconciliation import StatementImportForm
from billing.apis_ledger import ERR_CURSOR
from billing.models import BankStatementLine, Invoice, Payment, PaymentAllocation, PaymentProfile
from billing.services.bank_statements import ERR_TOO_LARGE, MAX_STATEMENT_BYTES
from tests.accounts.factories import AccountFactory, StaffUserFactory
from tests.billing.cycle import close, subscribe
from tests.billing.stripe_fake import signature, stripe_fake_start, webhook_endpoint_create, webhook_post
from tests.billing.test_ledger_api import key, pay

pytestmark = pytest.mark.django_db


# --- API: cursors -------------------------------------------------------------------------------------------


def cursor(position: str) -> str:
    """A cursor as DRF encodes one, at ``position``."""
    return base64.b64encode(urlencode({"o": "0", "r": "0", "p": position}).encode()).decode()


@pytest.fixture
def northwind(plan):
    from tests.billing.factories import business_invoice

    invoice = business_invoice(plan)
    return {"invoice": invoice, "account": invoice.account, "key": key(invoice.account, "read")}


@pytest.mark.parametrize("path", ["/v1/invoices", "/v1/payments"])
@pytest.mark.parametrize("position", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"])
def test_a_forged_cursor_at_a_moment_outside_the_calendar_in_utc_is_a_400(api, northwind, path, position):
    response = api(northwind["key"]).get(path, {"cursor": cursor(position)})

    assert response.status_code == 400
    assert response.json()["error"]["field"] == "cursor"
    assert response.json()["error"]["message"] == ERR_CURSOR


def test_a_cursor_at_an_offset_postgresql_refuses_reads_as_the_same_moment_in_utc(api, northwind):
    """PostgreSQL takes no offset beyond ±15:59: the moment is compared in UTC."""
    pay(northwind["account"], "479.00", invoice=northwind["invoice"])  # received on December 5, 09:00 UTC
    client = api(northwind["key"])

    before = client.get("/v1/payments", {"cursor": cursor("2026-12-05T10:00:00-16:00")})  # December 6, 02:00 UTC
    after = client.get("/v1/payments", {"cursor": cursor("2026-12-05T10:00:00+15:00")})  # December 4, 19:00 UTC

    assert (before.status_code, after.status_code) == (200, 200)
    assert [p["amount"] for p in before.json()["results"]] == ["479.00"]
    assert after.json()["results"] == []


# --- Stripe webhooks ----------------------------------------------------------------------------------------


@pytest.fixture
def fake(httpserver, settings, monkeypatch):
    return stripe_fake_start(httpserver, settings, monkeypatch)


@pytest.fixture
def ledger(fake, plan):
    """Northwind's and Umbrella's November invoices ($299.00 each, Business base fee), each account with its own
    Stripe customer and card."""
    northwind, umbrella = AccountFactory(name="Northwind"), AccountFactory(name="Umbrella")
    for account in (northwind, umbrella):
        subscribe(account, plan("messaging-business"))
    close()
    customers = {}
    for account in (northwind, umbrella):
        customer, pm = fake.customer_with_card(email=f"ap@{account.name.lower()}.example")
        PaymentProfile.objects.create(
            account=account, stripe_customer_id=customer, payment_method_id=pm, payment_method_type="card"
        )
        customers[account.name] = (customer, pm)
    return {
        "invoice": Invoice.objects.get(account=northwind),
        "northwind": northwind,
        "umbrella": umbrella,
        "customers": customers,
    }


@pytest.fixture
def deliver(db, django_capture_on_commit_callbacks):
    endpoint = webhook_endpoint_create()
    client = Client()

    def post(event) -> int:
        with django_capture_on_commit_callbacks(execute=True):
            return webhook_post(client, endpoint, event).status_code

    post.endpoint = endpoint
    post.client = client
    return post


def succeeded_intent(fake, customer_pm, *, amount: int, currency: str, metadata: dict) -> dict:
    """A succeeded PaymentIntent (and its charge) of ``customer_pm``'s card, as Stripe keeps it."""
    customer, pm = customer_pm
    intent = fake._intent(
        amount=amount, currency=currency, customer=customer, pm=fake.objects[pm], metadata=metadata, description="x"
    )
    return fake.get(intent["id"])


def open_ledger(invoice) -> tuple:
    invoice.refresh_from_db()
    return invoice.status, invoice.amount_paid, invoice.amount_due, PaymentAllocation.objects.count()


OPEN = ("finalized", D("0.00"), D("299.00"), 0)


@pytest.mark.parametrize(
    ("customer", "currency", "named_account"),
    [
        ("Umbrella", "usd", "northwind"),  # another customer's card; the metadata names Northwind's invoice
        ("Northwind", "usd", "umbrella"),  # the metadata names another account than the invoice's
        ("Northwind", "eur", None),  # another currency than the invoice's
    ],
)
def test_a_payment_that_is_not_the_invoices_own_does_not_pay_it(
    fake, ledger, deliver, customer, currency, named_account
):
    invoice = ledger["invoice"]
    metadata = {"invoice_number": invoice.number}
    if named_account:
        metadata["account_id"] = ledger[named_account].public_id
    intent = succeeded_intent(fake, ledger["customers"][customer], amount=29900, currency=currency, metadata=metadata)

    assert deliver(fake.event("payment_intent.succeeded", intent)) == 200

    assert open_ledger(invoice) == OPEN
    assert Payment.objects.count() == 0


def test_the_accounts_own_payment_of_part_of_the_invoice_is_applied_as_paid(fake, ledger, deliver):
    invoice = ledger["invoice"]
    intent = succeeded_intent(
        fake,
        ledger["customers"]["Northwind"],
        amount=10000,
        currency="usd",
        metadata={"invoice_number": invoice.number},
    )

    assert deliver(fake.event("payment_intent.succeeded", intent)) == 200

    assert open_ledger(invoice) == ("finalized", D("100.00"), D("199.00"), 1)
    payment = Payment.objects.get()
    assert (payment.account, payment.amount, payment.currency, payment.status) == (
        ledger["northwind"],
        D("100.00"),
        "USD",
        "succeeded",
    )


def test_a_success_of_another_amount_than_the_attempt_charged_leaves_the_attempt_as_it_was(
    fake, ledger, deliver, django_capture_on_commit_callbacks
):
    """Northwind's automatic attempt was declined; a success of the same PaymentIntent for $1.00 arrives."""
    from billing.services.collection import collections_start

    account = ledger["northwind"]
    PaymentProfile.objects.filter(account=account).update(auto_collection=True)
    fake.declines = ["card_declined"]
    with django_capture_on_commit_callbacks(execute=True):
        collections_start(invoice_ids=[ledger["invoice"].pk])
    (attempt,) = Payment.objects.filter(account=account)
    assert (attempt.status, attempt.amount) == ("failed", D("299.00"))
    tampered = dict(fake.get(attempt.external_id), status="succeeded", amount=100, amount_received=100)

    assert deliver(fake.event("payment_intent.succeeded", tampered)) == 200

    attempt.refresh_from_db()
    assert attempt.status == "failed"
    assert open_ledger(ledger["invoice"]) == OPEN


@pytest.mark.parametrize("body", ["null", "1", '"evt_1"', "[]", "not json", '{"id": "evt_1"'])
def test_a_signed_webhook_body_that_is_not_a_json_object_is_a_400(fake, ledger, deliver, body):
    response = deliver.client.post(
        f"/stripe/webhook/{deliver.endpoint.djstripe_uuid}/",
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=signature(body),
    )

    assert response.status_code == 400
    assert WebhookEventTrigger.objects.count() == 0
    assert open_ledger(ledger["invoice"]) == OPEN


def test_an_unsigned_event_is_refused(fake, ledger, deliver):
    invoice = ledger["invoice"]
    intent = succeeded_intent(
        fake,
        ledger["customers"]["Northwind"],
        amount=29900,
        currency="usd",
        metadata={"invoice_number": invoice.number},
    )
    response = deliver.client.post(
        f"/stripe/webhook/{deliver.endpoint.djstripe_uuid}/",
        data=json.dumps(fake.event("payment_intent.succeeded", intent)),
        content_type="application/json",
    )

    assert response.status_code == 400
    assert open_ledger(invoice) == OPEN


# --- Admin: Record payment and bank statements --------------------------------------------------------------


@pytest.fixture
def finance(client):
    client.force_login(StaffUserFactory(username="fiona", groups=[Group.objects.get(name=FINANCE_ADMIN)]))
    return client


@pytest.fixture
def northwind_open(plan):
    account = AccountFactory(name="Northwind")
    subscribe(account, plan("messaging-business"))
    close()
    return Invoice.objects.get(account=account)


def test_a_record_payment_box_named_with_a_non_ascii_digit_is_ignored_not_a_500(finance, northwind_open):
    response = finance.post(
        f"/admin/billing/payment/record/{northwind_open.account.pk}/",
        {"amount": "", "received_at": "2026-12-01", "provider": "bank_transfer", "invoice_²": "1.00"},
    )

    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert Payment.objects.count() == 0


def upload(content: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile("statement.csv", content, content_type="text/csv")


IMPORT = "/admin/billing/bankstatementline/import/"


@pytest.mark.parametrize(
    "content, error",
    [
        (
            b"2026-11-30,299.00,INV-2026-000001 \x00\n",
            "line 1: the reference has control characters (such as NUL)",
        ),
        ("2026-11-30,٢٩٩.٠٠,INV-2026-000001\n".encode(), "line 1: amount “٢٩٩.٠٠” is not a number"),
        ("٢٠٢٦-١١-٣٠,299.00,INV-2026-000001\n".encode(), "line 1: date “٢٠٢٦-١١-٣٠” is not a date as YYYY-MM-DD"),
        (b"\x00\xff\xfe\x89PNG" * 50, "the file is not UTF-8 text (save the CSV as UTF-8)."),
    ],
)
def test_a_statement_with_characters_no_bank_writes_is_refused_whole(finance, northwind_open, content, error):
    response = finance.post(IMPORT, {"file": upload(content), "currency": "USD"})

    assert response.status_code == 200
    assert error in response.content.decode()
    assert BankStatementLine.objects.count() == 0
    assert Payment.objects.count() == 0
    northwind_open.refresh_from_db()
    assert northwind_open.amount_due == D("299.00")


def test_a_statement_larger_than_any_months_is_refused_before_it_is_read(finance):
    line = b"2026-11-30,1.00,interest\n"
    big = line * (MAX_STATEMENT_BYTES // len(line) + 1)

    response = finance.post(IMPORT, {"file": upload(big), "currency": "USD"})

    assert response.status_code == 200
    assert ERR_TOO_LARGE.format(limit=2) in response.content.decode()
    assert BankStatementLine.objects.count() == 0
    form = StatementImportForm({"currency": "USD"}, {"file": upload(big)})
    assert form.errors == {"file": ["The file is larger than 2 MB: split the statement, or export a shorter period."]}
