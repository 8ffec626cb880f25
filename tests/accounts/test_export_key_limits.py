"""Least privilege for export keys everywhere in the API, not only under /v1/export: a key limited to some accounts
reads those and answers every other as if it did not exist (404); a key limited to some datasets reads only the
endpoints of those datasets (403 naming them), and nothing outside the five datasets (disputes, the subscription)."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine

from accounts.services import api_key_create
from billing.models import Invoice, Payment
from billing.services.payments import payment_record
from common.periods import month_period
from disputes.models import Dispute
from disputes.services import dispute_open
from tests.accounts.factories import AccountFactory
from tests.billing.cycle import close, subscribe
from tests.tenants.factories import TenantFactory

pytestmark = pytest.mark.django_db
UTC = dt.UTC
NOW = dt.datetime(2026, 11, 20, 9, tzinfo=UTC)


@pytest.fixture
def book(plan):
    accounts = {}
    for name in ("Acme", "Bolt"):
        account = AccountFactory(name=name)
        subscribe(account, plan("messaging-business"))
        TenantFactory(
            account=account, public_id=f"ten_{name.lower()}", activated_at=dt.datetime(2026, 1, 1, tzinfo=UTC)
        )
        accounts[name] = account
    close(period=month_period(2026, 10), now=dt.datetime(2026, 11, 1, 0, 5, tzinfo=UTC))
    with time_machine.travel(dt.datetime(2026, 11, 5, tzinfo=UTC), tick=False):
        for account in accounts.values():
            payment_record(account=account, amount=Decimal("10.00"), provider=Payment.Provider.BANK_TRANSFER)
            disputes_key, _ = api_key_create(name="support desk", scopes=["disputes"], account=account)
            dispute_open(
                actor=disputes_key,
                account=account,
                invoice=Invoice.objects.get(account=account, number__isnull=False),
                subject="Messages over-counted",
                description="Fewer messages.",
                source=Dispute.Source.API,
                channel=Dispute.Channel.API,
            )
    return accounts


def _key(api, **limits):
    _, secret = api_key_create(name="erp", scopes=["export"], **limits)
    return api(secret)


@pytest.fixture(autouse=True)
def _now():
    with time_machine.travel(NOW, tick=False):
        yield


def test_a_key_limited_to_one_account_finds_no_other(book, api):
    acme, bolt = book["Acme"], book["Bolt"]
    client = _key(api, export_accounts=[acme])
    bolt_invoice = Invoice.objects.get(account=bolt, number__isnull=False).number
    bolt_dispute = Dispute.objects.get(account=bolt).public_id
    for url in (
        f"/v1/invoices?account={bolt.public_id}",
        f"/v1/invoices/{bolt_invoice}",
        f"/v1/invoices/{bolt_invoice}/pdf",
        f"/v1/accounts/{bolt.public_id}/billing",
        f"/v1/payments?account={bolt.public_id}",
        f"/v1/billing/usage/current?account={bolt.public_id}",
        f"/v1/billing/usage?year=2026&month=10&account={bolt.public_id}",
        "/v1/tenants/ten_bolt/quota",
        f"/v1/disputes?account={bolt.public_id}",
        f"/v1/disputes/{bolt_dispute}",
        f"/v1/subscription?account={bolt.public_id}",
        f"/v1/billing/journal?year=2026&month=11&account={bolt.public_id}",
        f"/v1/billing/allocation?year=2026&month=10&account={bolt.public_id}",
    ):
        response = client.get(url)
        assert response.status_code == 404, url
        assert response.json()["error"]["code"] == "not_found", url
    # The account it is limited to reads as before.
    assert client.get(f"/v1/invoices?account={acme.public_id}").status_code == 200
    assert client.get(f"/v1/accounts/{acme.public_id}/billing").status_code == 200
    assert client.get("/v1/tenants/ten_acme/quota").status_code == 200
    listed = client.get("/v1/disputes").json()["results"]
    assert [case["account_id"] for case in listed] == [acme.public_id]


def test_a_key_limited_to_datasets_reads_only_their_endpoints(book, api):
    acme = book["Acme"].public_id
    client = _key(api, export_datasets=["invoices"])
    assert client.get(f"/v1/invoices?account={acme}").status_code == 200
    assert client.get(f"/v1/billing/journal?year=2026&month=11&account={acme}").status_code == 200
    for url, reads in (
        (f"/v1/payments?account={acme}", "payments"),
        (f"/v1/billing/usage/current?account={acme}", "usage"),
        ("/v1/tenants/ten_acme/quota", "usage"),
    ):
        response = client.get(url)
        assert response.status_code == 403, url
        assert response.json()["error"]["message"] == (
            f"This export key is limited to the datasets invoices; this endpoint reads {reads}."
        )
    for url in (f"/v1/disputes?account={acme}", f"/v1/subscription?account={acme}"):
        response = client.get(url)
        assert response.status_code == 403, url
        assert "needs an export key without a dataset limit" in response.json()["error"]["message"]


def test_an_unlimited_export_key_reads_every_account(book, api):
    client = _key(api)
    for account in book.values():
        assert client.get(f"/v1/accounts/{account.public_id}/billing").status_code == 200
        assert client.get(f"/v1/disputes?account={account.public_id}").status_code == 200
    assert len(client.get("/v1/disputes").json()["results"]) == 2
