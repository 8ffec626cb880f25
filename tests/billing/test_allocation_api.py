"""``GET /v1/billing/allocation``: the worked month's departments (``tests.billing.test_allocation``) for a read
key's own account and for the account an export key names; what is refused (401, 403, 400, 404)."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.test import Client

from accounts.services import api_key_create
from billing.allocation import RULE
from tests.billing.test_allocation import worked_month

pytestmark = pytest.mark.django_db
DEC_10 = dt.datetime(2026, 12, 10, 9, tzinfo=dt.UTC)
NOVEMBER = "/v1/billing/allocation?year=2026&month=11"


@pytest.fixture(autouse=True)
def _frozen_time():
    with time_machine.travel(DEC_10, tick=False):
        yield


@pytest.fixture
def invoice(catalogue):
    return worked_month()


def key(scopes, account=None, tenant=None) -> Client:
    _, secret = api_key_create(name="k", scopes=scopes, account=account, tenant=tenant)
    return Client(headers={"Authorization": f"Bearer {secret}"})


def test_a_read_key_reads_its_accounts_departments_to_the_cent(invoice):
    response = key(["read"], invoice.account).get(NOVEMBER)
    assert response.status_code == 200
    assert response.json() == {
        "account_id": invoice.account.public_id,
        "period": {"start": "2026-11-01T00:00:00Z", "end": "2026-12-01T00:00:00Z"},
        "invoice": invoice.number,
        "currency": "USD",
        "total": "147.60",
        "rule": RULE,
        "departments": [
            {
                "department": "Logistics",
                "message_count": "1000",
                "usage": "10.00",
                "fees": "39.13",
                "discounts": "-1.00",
                "tax": "9.63",
                "total": "57.76",
            },
            {
                "department": "Procurement",
                "message_count": "1000",
                "usage": "10.00",
                "fees": "39.12",
                "discounts": "-1.00",
                "tax": "9.62",
                "total": "57.74",
            },
            {
                "department": "Unallocated",
                "message_count": "556",
                "usage": "5.56",
                "fees": "21.75",
                "discounts": "-0.56",
                "tax": "5.35",
                "total": "32.10",
            },
        ],
    }


def test_a_month_not_invoiced_yet_has_no_departments(invoice):
    body = key(["read"], invoice.account).get("/v1/billing/allocation?year=2026&month=12").json()
    assert (body["invoice"], body["departments"], body["total"]) == (None, [], "0.00")


def test_an_export_key_names_the_account(invoice):
    client = key(["export"])
    named = client.get(f"{NOVEMBER}&account={invoice.account.public_id}")
    assert (named.status_code, named.json()["total"]) == (200, "147.60")
    missing = client.get(NOVEMBER)
    assert (missing.status_code, missing.json()["error"]["field"]) == (400, "account")
    unknown = client.get(f"{NOVEMBER}&account=acc_nobody")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "not_found")


def test_a_read_key_never_reads_another_account(invoice, catalogue):
    other = worked_month(name="Globex")
    body = key(["read"], other.account).get(f"{NOVEMBER}&account={invoice.account.public_id}").json()
    assert (body["account_id"], body["invoice"]) == (other.account.public_id, other.number)


def test_the_allocation_refuses_what_it_must(invoice):
    assert Client().get(NOVEMBER).status_code == 401
    assert key(["ingest"], invoice.account).get(NOVEMBER).status_code == 403
    pinned = key(["read"], invoice.account, invoice.account.tenants.first()).get(NOVEMBER)
    assert pinned.status_code == 403
    reader = key(["read"], invoice.account)
    bad = reader.get("/v1/billing/allocation?year=2026&month=13")
    assert (bad.status_code, bad.json()["error"]["field"]) == (400, "month")
    future = reader.get("/v1/billing/allocation?year=2027&month=1")
    assert (future.status_code, future.json()["error"]["code"]) == (400, "future_period")
